//! GetCredentialsForIdentity (the enhanced flow): the same identity and login checks as
//! GetOpenIdToken, then a role chosen per the pool's roles and role mappings, then credentials
//! from the configured source (docs/behaviour.md §5, §6.13).

use std::collections::BTreeMap;

use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

use super::access::{self, Links};
use super::openid::{amr, claims, OPENID_TOKEN_TTL};
use super::roles;
use crate::config::CredentialsSource;
use crate::protocol::ApiError;
use crate::times;
use crate::tokens;
use crate::App;

/// Credentials minted or fetched for an identity live an hour, as on AWS.
pub const CREDENTIALS_TTL_SECS: i64 = 3600;
/// The role session name AWS uses for identity-pool credentials.
pub const ROLE_SESSION_NAME: &str = "CognitoIdentityCredentials";

#[derive(Deserialize)]
pub struct GetCredentialsInput {
    #[serde(rename = "IdentityId")]
    identity_id: String,
    #[serde(rename = "Logins")]
    logins: Option<BTreeMap<String, String>>,
    #[serde(rename = "CustomRoleArn")]
    custom_role_arn: Option<String>,
}

/// Temporary AWS credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_key: String,
    pub session_token: String,
    /// Epoch milliseconds.
    pub expiration: i64,
}

/// GetCredentialsForIdentity.
///
/// With a token of ours as the only proof, the credentials carry no more than the token: the
/// role is the one the identity has now (authenticated only while it still has a link), and
/// their Expiration is no later than the token's `exp` (AWS would give them the usual hour).
/// Through STS, whose shortest session is 15 minutes, the session asked for is the token's
/// remaining life, kept within 15 minutes and an hour.
pub async fn get_credentials_for_identity(
    app: &App,
    input: GetCredentialsInput,
) -> Result<Value, ApiError> {
    let now = tokens::now_secs();
    let needs = access::Needs {
        roles: true,
        tag_maps: app.config.credentials.source == CredentialsSource::Sts,
    };
    let access::Access {
        pool,
        presented,
        settled,
        roles: loaded,
        tag_maps,
    } = access::access(app, &input.identity_id, input.logins, needs, move |_, p| {
        match p.not_after() {
            // Accepted within the clock-skew leeway only: nothing more is got with it.
            Some(limit) if limit <= now => Err(tokens::expired(now, limit)),
            _ => Ok(()),
        }
    })
    .await?;
    let not_after = presented.not_after();
    let id = settled.id.as_str();
    let through_ours =
        presented.logins.is_empty() && settled.links.as_ref().is_some_and(Links::authenticated);
    let role = roles::choose_role(
        &loaded,
        &pool,
        &presented.logins,
        through_ours,
        input.custom_role_arn.as_deref(),
    )?;
    let mut creds = match app.config.credentials.source {
        CredentialsSource::Local => local_credentials(),
        CredentialsSource::Sts => {
            let tags = roles::principal_tags_from(&tag_maps, &pool, &presented.logins);
            let amr = amr(&pool, &presented, None, settled.links.as_ref());
            let token = app.tokens.issue_until(
                claims(&pool, id, amr, &tags),
                OPENID_TOKEN_TTL,
                not_after,
            )?;
            let duration = sts_duration(not_after.map(|limit| limit - now));
            sts_credentials(app, &role, &token, duration).await?
        }
    };
    if let Some(limit) = not_after {
        // The Expiration clients refresh by is the token's, even where STS's 15-minute floor
        // leaves its session a little longer.
        creds.expiration = creds.expiration.min(limit.saturating_mul(1000));
    }
    Ok(json!({
        "IdentityId": id,
        "Credentials": {
            "AccessKeyId": creds.access_key_id,
            "SecretKey": creds.secret_key,
            "SessionToken": creds.session_token,
            "Expiration": times::Millis(creds.expiration).json(),
        }
    }))
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(uuid::Uuid::new_v4().as_bytes());
    }
    out.truncate(n);
    out
}

/// Well-formed temporary credentials minted here: an `ASIA…` key id, a 40-character secret and
/// a session token, valid an hour. Nothing but test doubles accepts them.
pub fn local_credentials() -> Credentials {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let key: String = random_bytes(16)
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    let b64 = base64::engine::general_purpose::STANDARD;
    Credentials {
        access_key_id: format!("ASIA{key}"),
        secret_key: b64.encode(random_bytes(30)),
        session_token: b64.encode(random_bytes(180)),
        expiration: times::now().0 + CREDENTIALS_TTL_SECS * 1000,
    }
}

/// STS's shortest session (AssumeRoleWithWebIdentity's DurationSeconds minimum).
pub const STS_MIN_DURATION_SECS: i64 = 900;

/// The DurationSeconds to ask STS for: an hour, or, when the credentials may not outlive a
/// presented token, its remaining life, no shorter than STS allows.
fn sts_duration(remaining: Option<i64>) -> i64 {
    match remaining {
        None => CREDENTIALS_TTL_SECS,
        Some(r) => r.clamp(STS_MIN_DURATION_SECS, CREDENTIALS_TTL_SECS),
    }
}

/// AssumeRoleWithWebIdentity on the configured STS endpoint with a token of ours.
async fn sts_credentials(
    app: &App,
    role: &str,
    token: &str,
    duration: i64,
) -> Result<Credentials, ApiError> {
    let Some(endpoint) = app.config.credentials.sts_endpoint.as_deref() else {
        return Err(roles::invalid_configuration());
    };
    let duration = duration.to_string();
    let form = [
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role),
        ("RoleSessionName", ROLE_SESSION_NAME),
        ("WebIdentityToken", token),
        ("DurationSeconds", duration.as_str()),
    ];
    let answer = app
        .http
        .post_form(endpoint, &form, &[("accept", "application/xml")])
        .await;
    crate::metrics::outbound(
        "sts",
        "sts",
        match &answer {
            Ok((200, _)) => "ok",
            Ok((400..=499, _)) => "refused",
            Ok(_) => "http_error",
            Err(_) => "unreachable",
        },
    );
    let (status, body) =
        answer.map_err(|e| crate::http_client::external_service_error("STS", &e))?;
    let text = String::from_utf8_lossy(&body);
    match status {
        200 => parse_sts(&text).ok_or_else(|| {
            tracing::warn!("STS answered 200 without credentials");
            ApiError::ExternalService("STS answered without credentials.".to_string())
        }),
        400..=499 => {
            let code = xml_text(&text, "Code").unwrap_or_default();
            tracing::info!(status, code = ?code, role, "STS refused AssumeRoleWithWebIdentity");
            Err(roles::invalid_configuration())
        }
        _ => Err(crate::http_client::external_service_error(
            "STS",
            &format!("HTTP {status}"),
        )),
    }
}

/// The text of the first `<tag>…</tag>` element.
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(
        xml[start..end]
            .trim()
            .replace("&amp;", "&")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'"),
    )
}

/// Reads an AssumeRoleWithWebIdentity response's credentials.
fn parse_sts(xml: &str) -> Option<Credentials> {
    let creds = {
        let start = xml.find("<Credentials>")?;
        let end = xml[start..].find("</Credentials>")? + start;
        &xml[start..end]
    };
    let expiration = xml_text(creds, "Expiration")?;
    let when =
        time::OffsetDateTime::parse(&expiration, &time::format_description::well_known::Rfc3339)
            .ok()?;
    Some(Credentials {
        access_key_id: xml_text(creds, "AccessKeyId")?,
        secret_key: xml_text(creds, "SecretAccessKey")?,
        session_token: xml_text(creds, "SessionToken")?,
        expiration: (when.unix_timestamp_nanos() / 1_000_000) as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_credentials_look_like_sts_ones() {
        let c = local_credentials();
        assert!(c.access_key_id.starts_with("ASIA"));
        assert_eq!(c.access_key_id.len(), 20);
        assert_eq!(c.secret_key.len(), 40);
        assert!(c.session_token.len() > 100);
        assert_ne!(local_credentials().access_key_id, c.access_key_id);
    }

    #[test]
    fn sts_is_asked_for_no_more_than_a_presented_token_has_left() {
        assert_eq!(sts_duration(None), 3600);
        assert_eq!(sts_duration(Some(2000)), 2000);
        assert_eq!(sts_duration(Some(7200)), 3600);
        assert_eq!(sts_duration(Some(60)), STS_MIN_DURATION_SECS);
    }

    #[test]
    fn sts_responses_parse() {
        let xml = r#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>FwoG&amp;token</SessionToken>
      <SecretAccessKey>secret</SecretAccessKey>
      <Expiration>2026-11-23T10:00:00Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let c = parse_sts(xml).unwrap();
        assert_eq!(c.access_key_id, "ASIAEXAMPLE");
        assert_eq!(c.secret_key, "secret");
        assert_eq!(c.session_token, "FwoG&token");
        assert_eq!(c.expiration, 1_795_428_000_000);
        assert!(parse_sts("<Error><Code>AccessDenied</Code></Error>").is_none());
    }
}
