//! OpenID tokens for identities: GetOpenIdToken (public), and what every token of ours holds —
//! `sub`, `aud`, `amr`, the pool ARN, principal tags (docs/behaviour.md §6.12, §8).

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::access::{self, Links, Presented};
use super::roles;
use crate::model::{Pool, ProviderKind};
use crate::protocol::ApiError;
use crate::App;

/// GetOpenIdToken's tokens live ten minutes, as on AWS.
pub const OPENID_TOKEN_TTL: u64 = 600;

const CLASSIC_FLOW_DISABLED: &str =
    "Basic (classic) flow is not enabled, please use enhanced flow.";

#[derive(Deserialize)]
pub struct GetOpenIdTokenInput {
    #[serde(rename = "IdentityId")]
    identity_id: String,
    #[serde(rename = "Logins")]
    logins: Option<BTreeMap<String, String>>,
}

/// The pool ARN, as the tag operations and the token claim spell it.
pub fn pool_arn(pool: &Pool) -> String {
    format!(
        "arn:aws:cognito-identity:{}:{}:identitypool/{}",
        pool.region(),
        pool.account_id,
        pool.id
    )
}

/// The `amr` claim: `["unauthenticated"]`, or `["authenticated", <provider>, <provider login>, …]`.
///
/// When a token of ours was presented (`links` is the identity's links as they are now), the
/// claim is rebuilt from those links, never copied from the presented token: a login unlinked
/// since, or a developer user removed since, is not carried over.
pub fn amr(
    pool: &Pool,
    p: &Presented,
    developer: Option<(&str, &str)>,
    links: Option<&Links>,
) -> Vec<Value> {
    let mut out = Vec::new();
    if let Some(links) = links {
        if let Some(name) = &pool.settings.developer_provider_name {
            for user in &links.developer_users {
                out.push(json!(name));
                out.push(json!(format!("{name}:{}:{user}", pool.id)));
            }
        }
        for (provider, subject) in &links.logins {
            out.push(json!(provider));
            out.push(json!(reference(pool, provider, subject)));
        }
        return finish_amr(out);
    }
    if let Some((name, user)) = developer {
        out.push(json!(name));
        out.push(json!(format!("{name}:{}:{user}", pool.id)));
    }
    for l in &p.logins {
        out.push(json!(l.provider));
        out.push(json!(reference(pool, &l.provider, &l.subject)));
    }
    finish_amr(out)
}

fn finish_amr(mut out: Vec<Value>) -> Vec<Value> {
    if out.is_empty() {
        vec![json!("unauthenticated")]
    } else {
        out.insert(0, json!("authenticated"));
        out
    }
}

/// The third `amr` element for a login, as AWS writes it per kind of provider.
fn reference(pool: &Pool, provider: &str, subject: &str) -> String {
    match ProviderKind::of(pool, provider) {
        Some(ProviderKind::UserPool) => format!("{provider}:CognitoSignIn:{subject}"),
        Some(ProviderKind::Oidc { arn }) => format!("{arn}:OIDC:{subject}"),
        Some(ProviderKind::Saml) => format!("{provider}:SAML:{subject}"),
        Some(ProviderKind::Supported) | None => format!("{provider}:{subject}"),
    }
}

/// The claims of a token for `identity_id`: sub, aud, amr, the pool ARN, and principal tags.
pub fn claims(
    pool: &Pool,
    identity_id: &str,
    amr: Vec<Value>,
    tags: &BTreeMap<String, String>,
) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("sub".into(), json!(identity_id));
    m.insert("aud".into(), json!(pool.id));
    m.insert("amr".into(), Value::Array(amr));
    m.insert(
        "https://cognito-identity.amazonaws.com/identity-pool-arn".into(),
        json!(pool_arn(pool)),
    );
    if !tags.is_empty() {
        let principal: Map<String, Value> =
            tags.iter().map(|(k, v)| (k.clone(), json!([v]))).collect();
        m.insert(
            "https://aws.amazon.com/tags".into(),
            json!({ "principal_tags": principal }),
        );
    }
    m
}

/// GetOpenIdToken: links or merges as the presented logins require, then issues a ten-minute
/// token for the identity the caller ends on.
///
/// Renewing a token of ours with nothing else (the `cognito-identity.amazonaws.com` login
/// alone) yields a token that expires no later than the presented one: a developer token's
/// TokenDuration, or any token's life, cannot be stretched by renewing it again and again.
pub async fn get_open_id_token(app: &App, input: GetOpenIdTokenInput) -> Result<Value, ApiError> {
    let needs = access::Needs {
        roles: false,
        tag_maps: true,
    };
    let access::Access {
        pool,
        presented,
        settled,
        tag_maps,
        ..
    } = access::access(
        app,
        &input.identity_id,
        input.logins,
        needs,
        |pool, _| match pool.settings.allow_classic_flow {
            Some(false) => Err(ApiError::InvalidParameter(
                CLASSIC_FLOW_DISABLED.to_string(),
            )),
            _ => Ok(()),
        },
    )
    .await?;
    let tags = roles::principal_tags_from(&tag_maps, &pool, &presented.logins);
    let amr = amr(&pool, &presented, None, settled.links.as_ref());
    let token = app.tokens.issue_until(
        claims(&pool, &settled.id, amr, &tags),
        OPENID_TOKEN_TTL,
        presented.not_after(),
    )?;
    Ok(json!({ "IdentityId": settled.id, "Token": token }))
}
