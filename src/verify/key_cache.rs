//! Where a provider's signing keys come from, and the per-provider cache that loads them
//! lazily (file, URL, or OpenID discovery), refreshes it when a token names an unknown `kid`
//! (at most once per [`REFRESH_MIN_INTERVAL`]) and re-reads it when it is older than
//! [`MAX_AGE`].

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::jwt::Alg;
use super::keys::{Jwk, KeySet, Selection};
use crate::http_client::HttpClient;

/// The shortest time between two refreshes caused by unknown `kid`s: a stream of forged
/// tokens cannot turn into a stream of fetches.
pub const REFRESH_MIN_INTERVAL: Duration = Duration::from_secs(30);

/// Keys older than this are fetched again before use (providers rotate and revoke keys); if
/// that fetch fails the old keys stay in use.
pub const MAX_AGE: Duration = Duration::from_secs(3600);

/// Where a provider's keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A JWKS file on this machine.
    File(PathBuf),
    /// A JWKS URL.
    Url(String),
    /// An OpenID discovery document whose `jwks_uri` names the JWKS.
    Discovery(String),
}

impl Source {
    /// The source for a provider: its configured `jwks` (an http(s) URL, else a file path,
    /// `file://` allowed), else `https://<provider>/.well-known/jwks.json` for Cognito user
    /// pools, else OpenID discovery at `https://<provider>/.well-known/openid-configuration`.
    pub fn for_provider(provider: &str, jwks: Option<&str>) -> Source {
        match jwks {
            Some(j) if j.starts_with("http://") || j.starts_with("https://") => {
                Source::Url(j.to_string())
            }
            Some(j) => Source::File(PathBuf::from(j.strip_prefix("file://").unwrap_or(j))),
            None if crate::model::names_user_pool(provider) => {
                Source::Url(format!("https://{provider}/.well-known/jwks.json"))
            }
            None => Source::Discovery(format!(
                "https://{provider}/.well-known/openid-configuration"
            )),
        }
    }

    /// Whether the keys come over plain http or from a file: then an `http://` issuer is
    /// accepted too (a local or test issuer).
    pub fn allows_http_issuer(&self) -> bool {
        match self {
            Source::File(_) => true,
            Source::Url(u) => u.starts_with("http://"),
            Source::Discovery(_) => false,
        }
    }

    /// Whether fetching needs the HTTP client.
    pub fn needs_http(&self) -> bool {
        !matches!(self, Source::File(_))
    }
}

/// After a failed refresh of stale keys, how long the old keys are used before trying again.
pub const STALE_RETRY: Duration = Duration::from_secs(60);

/// Without any keys, how long after a failed fetch the failure is answered again rather than
/// fetching once more: a provider that is down sees one fetch per interval, not one per login.
/// (Fetches of one provider are one at a time anyway; files are read again at once.)
pub const FAILURE_RETRY: Duration = Duration::from_secs(5);

/// Keys as last loaded.
#[derive(Debug)]
struct Loaded {
    keys: KeySet,
    /// Until when the keys are used without fetching them again.
    fresh_until: Instant,
}

/// The fetch side of the cache; its mutex makes fetches single-flight.
#[derive(Debug, Default)]
struct FetchState {
    /// The last refresh caused by an unknown `kid` (the rate-bounded kind).
    last_kid_refresh: Option<Instant>,
    /// How the last attempt failed, if it did.
    last_error: Option<String>,
    /// When the last attempt failed.
    failed_at: Option<Instant>,
    /// The JWKS URL found by discovery.
    discovered: Option<String>,
}

/// Why a key could not be had.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyError {
    /// The token cannot be verified with any key we have (after a refresh, if one was due).
    Unverifiable,
    /// The keys could not be loaded: the provider is unreachable or serves garbage.
    Unavailable(String),
}

/// One provider's key cache.
#[derive(Debug)]
pub struct JwksCache {
    /// The provider name, for logs.
    provider: String,
    source: Source,
    loaded: RwLock<Option<Arc<Loaded>>>,
    /// Bumped by every fetch attempt, so tasks that waited for the fetch lock reuse its result.
    attempts: AtomicU64,
    fetch: tokio::sync::Mutex<FetchState>,
}

/// Why the keys are being fetched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    Initial,
    Stale,
    UnknownKid,
}

impl JwksCache {
    /// An empty cache: nothing is read until the first token.
    pub fn new(provider: &str, source: Source) -> JwksCache {
        JwksCache {
            provider: provider.to_string(),
            source,
            loaded: RwLock::new(None),
            attempts: AtomicU64::new(0),
            fetch: tokio::sync::Mutex::new(FetchState::default()),
        }
    }

    /// Where the keys come from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    fn snapshot(&self) -> Option<Arc<Loaded>> {
        match self.loaded.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, l: Arc<Loaded>) {
        match self.loaded.write() {
            Ok(mut g) => *g = Some(l),
            Err(poisoned) => *poisoned.into_inner() = Some(l),
        }
    }

    /// Runs `check` with the keys a token of `kid`/`alg` may use, loading or refreshing them
    /// first when needed. `check` returns whether one of the keys verified the token.
    pub async fn verify_with(
        &self,
        http: Option<&HttpClient>,
        kid: Option<&str>,
        alg: Alg,
        check: impl Fn(&Jwk) -> bool,
    ) -> Result<(), KeyError> {
        let try_keys = |set: &KeySet| -> Option<bool> {
            match set.select(kid, alg) {
                Selection::Keys(keys) => Some(keys.into_iter().any(&check)),
                Selection::Unfit => Some(false),
                Selection::UnknownKid => None,
            }
        };
        let verdict = |ok: bool| {
            if ok {
                Ok(())
            } else {
                Err(KeyError::Unverifiable)
            }
        };

        let seen = self.attempts.load(Ordering::Acquire);
        let snap = self.snapshot();
        let need = match &snap {
            Some(l) if Instant::now() < l.fresh_until => match try_keys(&l.keys) {
                Some(ok) => return verdict(ok),
                None => Need::UnknownKid,
            },
            Some(_) => Need::Stale,
            None => Need::Initial,
        };

        let mut st = self.fetch.lock().await;
        if self.attempts.load(Ordering::Acquire) != seen {
            // Another task fetched while this one waited: use its outcome.
            return match (self.snapshot(), &st.last_error) {
                (Some(l), err) => match try_keys(&l.keys) {
                    Some(ok) => verdict(ok),
                    None => match err {
                        Some(e) => Err(KeyError::Unavailable(e.clone())),
                        None => Err(KeyError::Unverifiable),
                    },
                },
                (None, Some(e)) => Err(KeyError::Unavailable(e.clone())),
                (None, None) => Err(KeyError::Unverifiable),
            };
        }
        if need == Need::Initial
            && self.source.needs_http()
            && st.failed_at.is_some_and(|t| t.elapsed() < FAILURE_RETRY)
        {
            if let Some(e) = &st.last_error {
                return Err(KeyError::Unavailable(e.clone()));
            }
        }
        if need == Need::UnknownKid {
            if st
                .last_kid_refresh
                .is_some_and(|t| t.elapsed() < REFRESH_MIN_INTERVAL)
            {
                return Err(KeyError::Unverifiable);
            }
            st.last_kid_refresh = Some(Instant::now());
        }
        self.attempts.fetch_add(1, Ordering::AcqRel);
        match self.load(http, &mut st).await {
            Ok(keys) => {
                st.last_error = None;
                st.failed_at = None;
                let result = try_keys(&keys).unwrap_or(false);
                self.store(Arc::new(Loaded {
                    keys,
                    fresh_until: Instant::now() + MAX_AGE,
                }));
                verdict(result)
            }
            Err(e) => {
                st.last_error = Some(e.clone());
                st.failed_at = Some(Instant::now());
                match (need, snap) {
                    // Stale keys beat no keys while the provider is down.
                    (Need::Stale, Some(l)) => {
                        tracing::warn!(provider = ?self.provider, error = ?e, "JWKS refresh failed; using the keys loaded earlier");
                        let ok = try_keys(&l.keys).unwrap_or(false);
                        self.store(Arc::new(Loaded {
                            keys: l.keys.clone(),
                            fresh_until: Instant::now() + STALE_RETRY,
                        }));
                        verdict(ok)
                    }
                    _ => Err(KeyError::Unavailable(e)),
                }
            }
        }
    }

    async fn load(&self, http: Option<&HttpClient>, st: &mut FetchState) -> Result<KeySet, String> {
        let bytes = match &self.source {
            Source::File(path) => {
                let p = path.clone();
                tokio::task::spawn_blocking(move || std::fs::read(p))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map_err(|e| {
                        tracing::warn!(provider = ?self.provider, path = ?path.display().to_string(), error = ?e, "cannot read the JWKS file");
                        "the JWKS file cannot be read".to_string()
                    })?
            }
            Source::Url(url) => get(http, &self.provider, "JWKS", url).await?,
            Source::Discovery(url) => {
                let jwks_uri = match &st.discovered {
                    Some(u) => u.clone(),
                    None => {
                        let doc = get(http, &self.provider, "OpenID configuration", url).await?;
                        let uri = discovered_jwks_uri(&doc)?;
                        st.discovered = Some(uri.clone());
                        uri
                    }
                };
                match get(http, &self.provider, "JWKS", &jwks_uri).await {
                    Ok(b) => b,
                    Err(e) => {
                        // The provider may have moved its keys: discover again next time.
                        st.discovered = None;
                        return Err(e);
                    }
                }
            }
        };
        KeySet::parse(&bytes).map_err(|e| e.0)
    }
}

/// The `jwks_uri` of an OpenID discovery document.
pub fn discovered_jwks_uri(doc: &[u8]) -> Result<String, String> {
    let v: Value = serde_json::from_slice(doc)
        .map_err(|_| "the OpenID configuration is not JSON".to_string())?;
    match v.get("jwks_uri").and_then(Value::as_str) {
        Some(u) if crate::http_client::is_valid_url(u) => Ok(u.to_string()),
        _ => Err("the OpenID configuration has no usable jwks_uri".to_string()),
    }
}

/// Fetches `what` (a document name for messages). The error returned is what callers may
/// see — it names no URL; the URL goes to the log.
async fn get(
    http: Option<&HttpClient>,
    provider: &str,
    what: &str,
    url: &str,
) -> Result<Vec<u8>, String> {
    let http = http.ok_or_else(|| "no HTTP client".to_string())?;
    let answer = http.get(url).await;
    crate::metrics::outbound(
        "jwks",
        provider,
        match &answer {
            Ok((200, _)) => "ok",
            Ok(_) => "http_error",
            Err(_) => "unreachable",
        },
    );
    let err = match answer {
        Ok((200, body)) => return Ok(body.to_vec()),
        Ok((status, _)) => format!("the {what} answered HTTP {status}"),
        Err(e) => format!("the {what} fetch failed: {e}"),
    };
    tracing::warn!(provider, url = shown(url), error = ?err, "login provider fetch failed");
    Err(err)
}

/// A URL as it may appear in messages: without its query string.
fn shown(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn rsa(kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "n": "AMECAw", "e": "AQAB"})
    }

    #[test]
    fn sources_follow_the_configuration_then_the_provider_kind() {
        assert_eq!(
            Source::for_provider("x", Some("https://k.example/jwks")),
            Source::Url("https://k.example/jwks".into())
        );
        assert_eq!(
            Source::for_provider("x", Some("/etc/idpool/x.json")),
            Source::File("/etc/idpool/x.json".into())
        );
        assert_eq!(
            Source::for_provider("x", Some("file:///etc/x.json")),
            Source::File("/etc/x.json".into())
        );
        assert_eq!(
            Source::for_provider("cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc", None),
            Source::Url(
                "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_abc/.well-known/jwks.json"
                    .into()
            )
        );
        assert_eq!(
            Source::for_provider("accounts.google.com", None),
            Source::Discovery(
                "https://accounts.google.com/.well-known/openid-configuration".into()
            )
        );
        assert!(Source::File("x".into()).allows_http_issuer());
        assert!(Source::Url("http://127.0.0.1:1/j".into()).allows_http_issuer());
        assert!(!Source::Url("https://a/j".into()).allows_http_issuer());
        assert!(
            !Source::Discovery("https://a/.well-known/openid-configuration".into())
                .allows_http_issuer()
        );
    }

    #[test]
    fn discovery_yields_an_http_jwks_uri() {
        assert_eq!(
            discovered_jwks_uri(br#"{"jwks_uri":"https://a.example/keys"}"#).unwrap(),
            "https://a.example/keys"
        );
        assert!(discovered_jwks_uri(br#"{"jwks_uri":"file:///etc/passwd"}"#).is_err());
        assert!(discovered_jwks_uri(br#"{"issuer":"x"}"#).is_err());
        assert!(discovered_jwks_uri(b"<html>").is_err());
        assert_eq!(shown("https://a/b?secret=1"), "https://a/b");
    }

    #[tokio::test]
    async fn a_missing_file_is_unavailable_and_an_unknown_kid_refreshes_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jwks.json");
        let cache = JwksCache::new("test", Source::File(path.clone()));
        let r = cache
            .verify_with(None, Some("r1"), Alg::RS256, |_| true)
            .await;
        assert!(matches!(r, Err(KeyError::Unavailable(_))), "{r:?}");

        std::fs::write(&path, json!({"keys": [rsa("r1")]}).to_string()).unwrap();
        assert_eq!(
            cache
                .verify_with(None, Some("r1"), Alg::RS256, |_| true)
                .await,
            Ok(())
        );
        // Unknown kid: one refresh (the file now has it).
        std::fs::write(&path, json!({"keys": [rsa("r1"), rsa("r2")]}).to_string()).unwrap();
        assert_eq!(
            cache
                .verify_with(None, Some("r2"), Alg::RS256, |_| true)
                .await,
            Ok(())
        );
        // Another unknown kid within the interval: no refresh, refused.
        std::fs::write(&path, json!({"keys": [rsa("r3")]}).to_string()).unwrap();
        assert_eq!(
            cache
                .verify_with(None, Some("r3"), Alg::RS256, |_| true)
                .await,
            Err(KeyError::Unverifiable)
        );
        // Known keys keep working and a failing check is refused.
        assert_eq!(
            cache
                .verify_with(None, Some("r1"), Alg::RS256, |_| false)
                .await,
            Err(KeyError::Unverifiable)
        );
    }
}
