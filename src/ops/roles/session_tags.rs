//! The session tags an authenticated identity carries into its credentials: the pool's
//! principal tag attribute maps applied to its logins' claims (docs/behaviour.md §5.6).

use std::collections::BTreeMap;

use serde_json::Value;

use super::choice::{is_user_pool, scalar_text};
use super::PrincipalTagMap;
use crate::model::Pool;
use crate::ops::logins::Login;
use crate::protocol::ApiError;
use crate::App;

/// A claim's value as a session tag value: scalars as `scalar_text`, arrays as their scalar
/// elements joined with `,`; objects, null, empty arrays and absent claims give no tag.
fn tag_value(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().filter_map(scalar_text).collect();
            (!parts.is_empty()).then(|| parts.join(","))
        }
        other => scalar_text(other),
    }
}

/// The session tags of an identity authenticated with `logins` (docs/behaviour.md §5.6), from the
/// pool's principal tag attribute maps. Only logins whose provider has a map contribute.
///
/// - `UseDefaults`: user pools give `{"client": <aud>, "username": <sub>}`; other providers
///   `{"aud": <aud claim, else the SupportedLoginProviders app id>, "sub": <subject>}`
///   (AWS documents the user-pool names; the others follow DG/provider-mappings).
/// - `PrincipalTags` (tag key → claim name) add the named claims, overriding a default of the
///   same key. Claims become text as `tag_value` says; a claim the token lacks gives no tag.
/// - With several logins, the first login in slice order that yields a tag key keeps it.
///
/// Values are passed as they are; STS limits (50 tags, 256-character values) are the
/// credential issuer's to enforce.
pub async fn principal_tags(
    app: &App,
    pool: &Pool,
    logins: &[Login],
) -> Result<BTreeMap<String, String>, ApiError> {
    if logins.is_empty() {
        return Ok(BTreeMap::new());
    }
    let id = pool.id.clone();
    let maps = app.store.read(move |tx| tx.principal_tag_maps(&id)).await?;
    Ok(principal_tags_from(&maps, pool, logins))
}

/// `principal_tags` on maps already read: the pure part, by provider name.
pub fn principal_tags_from(
    maps: &BTreeMap<String, PrincipalTagMap>,
    pool: &Pool,
    logins: &[Login],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for login in logins {
        let Some(map) = maps.get(&login.provider) else {
            continue;
        };
        let mut tags = BTreeMap::new();
        if map.use_defaults {
            let aud = tag_value(login.claims.get("aud"));
            if is_user_pool(pool, &login.provider) {
                if let Some(aud) = aud {
                    tags.insert("client".to_string(), aud);
                }
                tags.insert("username".to_string(), login.subject.clone());
            } else {
                let aud = aud.or_else(|| {
                    pool.settings
                        .supported_login_providers
                        .get(&login.provider)
                        .cloned()
                });
                if let Some(aud) = aud {
                    tags.insert("aud".to_string(), aud);
                }
                tags.insert("sub".to_string(), login.subject.clone());
            }
        }
        for (tag, claim) in &map.principal_tags {
            if let Some(v) = tag_value(login.claims.get(claim)) {
                tags.insert(tag.clone(), v);
            }
        }
        for (k, v) in tags {
            out.entry(k).or_insert(v);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::roles::fixtures::*;
    use crate::ops::roles::{load_roles, PoolRoles};
    use crate::times;
    use serde_json::json;

    fn tag_map(use_defaults: bool, tags: &[(&str, &str)]) -> PrincipalTagMap {
        PrincipalTagMap {
            use_defaults,
            principal_tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn maps(entries: Vec<(&str, PrincipalTagMap)>) -> BTreeMap<String, PrincipalTagMap> {
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect()
    }

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn user_pool_defaults_are_client_and_username() {
        let p = pool();
        let m = maps(vec![(USER_POOL, tag_map(true, &[]))]);
        let u = [login(USER_POOL, json!({"aud": CLIENT, "sub": "abc-123"}))];
        assert_eq!(
            principal_tags_from(&m, &p, &u),
            tags(&[("client", CLIENT), ("username", "abc-123")])
        );
    }

    #[test]
    fn other_provider_defaults_are_aud_and_sub_with_the_app_id_as_fallback() {
        let p = pool();
        let m = maps(vec![
            (GOOGLE, tag_map(true, &[])),
            (FACEBOOK, tag_map(true, &[])),
        ]);
        let g = [login(GOOGLE, json!({"aud": "google-client", "sub": "g1"}))];
        assert_eq!(
            principal_tags_from(&m, &p, &g),
            tags(&[("aud", "google-client"), ("sub", "g1")])
        );
        // Facebook tokens are opaque: no aud claim, the configured app id stands in.
        let f = [login(FACEBOOK, json!({"sub": "f1"}))];
        assert_eq!(
            principal_tags_from(&m, &p, &f),
            tags(&[("aud", "fb-app"), ("sub", "f1")])
        );
        // OIDC without aud and without an app id: only sub.
        let m = maps(vec![(OIDC_HOST, tag_map(true, &[]))]);
        let o = [login(OIDC_HOST, json!({"sub": "o1"}))];
        assert_eq!(principal_tags_from(&m, &p, &o), tags(&[("sub", "o1")]));
    }

    #[test]
    fn custom_principal_tags_map_claims_and_override_defaults() {
        let p = pool();
        let m = maps(vec![(
            USER_POOL,
            tag_map(
                true,
                &[
                    ("dept", "custom:dept"),
                    ("groups", "cognito:groups"),
                    ("level", "custom:level"),
                    ("username", "email"),
                    ("missing", "custom:nope"),
                    ("object", "address"),
                ],
            ),
        )]);
        let u = [login(
            USER_POOL,
            json!({"aud": CLIENT, "sub": "s", "custom:dept": "eng", "cognito:groups": ["a", "b"],
                   "custom:level": 7, "email": "u@example.com", "address": {"x": 1}}),
        )];
        assert_eq!(
            principal_tags_from(&m, &p, &u),
            tags(&[
                ("client", CLIENT),
                ("dept", "eng"),
                ("groups", "a,b"),
                ("level", "7"),
                ("username", "u@example.com"),
            ])
        );
        // Without defaults only the mapped claims.
        let m = maps(vec![(
            USER_POOL,
            tag_map(false, &[("dept", "custom:dept")]),
        )]);
        assert_eq!(principal_tags_from(&m, &p, &u), tags(&[("dept", "eng")]));
        // A map with neither defaults nor tags gives nothing.
        let m = maps(vec![(USER_POOL, tag_map(false, &[]))]);
        assert_eq!(principal_tags_from(&m, &p, &u), BTreeMap::new());
    }

    #[test]
    fn providers_without_a_map_add_nothing_and_the_first_login_keeps_a_key() {
        let p = pool();
        let m = maps(vec![
            (GOOGLE, tag_map(false, &[("who", "sub"), ("g", "email")])),
            (FACEBOOK, tag_map(false, &[("who", "sub"), ("f", "sub")])),
        ]);
        let g = login(GOOGLE, json!({"sub": "g1", "email": "g@example.com"}));
        let f = login(FACEBOOK, json!({"sub": "f1"}));
        let o = login(OIDC_HOST, json!({"sub": "o1"}));
        assert_eq!(
            principal_tags_from(&m, &p, &[o.clone(), g.clone(), f.clone()]),
            tags(&[("who", "g1"), ("g", "g@example.com"), ("f", "f1")])
        );
        assert_eq!(
            principal_tags_from(&m, &p, &[f, g]),
            tags(&[("who", "f1"), ("g", "g@example.com"), ("f", "f1")])
        );
        assert_eq!(principal_tags_from(&m, &p, &[o]), BTreeMap::new());
        assert_eq!(principal_tags_from(&m, &p, &[]), BTreeMap::new());
    }

    #[test]
    fn principal_tags_reads_the_stored_maps() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut config = crate::Config::default();
        config.database.path = dir.path().join("t.db");
        rt.block_on(async {
            let app = App::open(config).await.unwrap();
            let p = pool();
            let settings = p.settings.clone();
            let id = p.id.clone();
            let account = p.account_id.clone();
            app.store
                .write(move |tx| {
                    tx.insert_pool(&id, &account, &settings, times::now())?;
                    tx.set_principal_tag_map(&id, GOOGLE, &tag_map(false, &[("e", "email")]))
                })
                .await
                .unwrap();
            let g = [login(GOOGLE, json!({"sub": "g", "email": "g@example.com"}))];
            assert_eq!(
                principal_tags(&app, &p, &g).await.unwrap(),
                tags(&[("e", "g@example.com")])
            );
            assert_eq!(
                principal_tags(&app, &p, &[]).await.unwrap(),
                BTreeMap::new()
            );
            let loaded = load_roles(&app, &p.id).await.unwrap();
            assert_eq!(loaded, PoolRoles::default());
            assert_eq!(
                load_roles(&app, "us-east-1:00000000-0000-4000-8000-000000000000").await,
                Err(ApiError::pool_not_found(
                    "us-east-1:00000000-0000-4000-8000-000000000000"
                ))
            );
            app.store.close();
        });
    }
}
