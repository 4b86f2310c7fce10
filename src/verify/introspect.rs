//! `verify = "introspect"`: opaque tokens checked at an OAuth 2.0 introspection endpoint
//! (RFC 7662), with a short cache of answers keyed by the token's SHA-256 (never the token).
//!
//! Bounded outbound work: at most [`MAX_IN_FLIGHT`] calls to one endpoint at a time, one call
//! at a time for one token (callers presenting the same token wait for its answer), inactive
//! answers are remembered for [`NEGATIVE_TTL`] and failed calls for [`FAILURE_TTL`], so a flood
//! of one bad token costs one call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::claims::{Audiences, Refusal};
use crate::http_client::HttpClient;

/// How long an active answer is reused (shortened to the token's `exp` when it says one).
/// Revocation at the provider takes at most this long to be seen here.
pub const CACHE_TTL: Duration = Duration::from_secs(60);

/// How long an inactive answer is reused: a token that becomes active this long after being
/// refused (rare: tokens are active when issued) is accepted this much later.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(10);

/// How long a failed call (endpoint down, slow, or answering garbage) is answered again for
/// the same token instead of calling once more.
pub const FAILURE_TTL: Duration = Duration::from_secs(2);

/// Cached answers at most, of each kind; beyond that expired ones are dropped, then all of
/// that kind (a flood of bad tokens never evicts the good answers).
const CACHE_MAX: usize = 10_000;

/// Calls to one endpoint at once; more callers wait, at most [`QUEUE_WAIT`].
pub const MAX_IN_FLIGHT: usize = 8;

/// How long a caller waits for a free call slot before the endpoint counts as unavailable.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);

/// One introspection provider.
#[derive(Debug)]
pub struct Introspector {
    url: String,
    /// The provider's name, for metrics.
    provider: String,
    cache: Mutex<HashMap<[u8; 32], Cached>>,
    /// Token hashes the endpoint said are not active, or could not answer for.
    refused: Mutex<HashMap<[u8; 32], Failed>>,
    /// One lock per token hash being introspected: the second caller waits for the first.
    pending: Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>,
    slots: Semaphore,
}

#[derive(Debug, Clone)]
struct Cached {
    claims: Arc<Map<String, Value>>,
    until: Instant,
}

/// A remembered failure of one token: not active (`unreachable: None`), or the endpoint's.
#[derive(Debug, Clone)]
struct Failed {
    until: Instant,
    unreachable: Option<String>,
}

/// Why introspection gave no answer: the endpoint is down, slow, or speaks something else.
#[derive(Debug, PartialEq, Eq)]
pub struct Unreachable(pub String);

type Answer = Result<Result<Arc<Map<String, Value>>, Refusal>, Unreachable>;

impl Introspector {
    /// A provider whose endpoint is `url` (checked by the caller).
    pub fn new(url: String) -> Introspector {
        Introspector {
            url,
            provider: String::new(),
            cache: Mutex::new(HashMap::new()),
            refused: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            slots: Semaphore::new(MAX_IN_FLIGHT),
        }
    }

    /// Names the provider this endpoint serves (for `idpool_outbound_requests_total`).
    pub fn for_provider(mut self, name: &str) -> Introspector {
        self.provider = name.to_string();
        self
    }

    /// The endpoint's answer for an active token: the response object. An inactive token is
    /// `Ok(Err(NotActive))`; an endpoint that cannot be used is `Err`.
    pub async fn introspect(&self, http: &HttpClient, token: &str) -> Answer {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(hit) = self.known(&key) {
            return hit;
        }
        let lock = self.pending_lock(key);
        let answer = {
            let _one_at_a_time = lock.lock().await;
            match self.known(&key) {
                Some(hit) => hit,
                None => {
                    let answer = self.call(http, token, key).await;
                    if let Err(Unreachable(why)) = &answer {
                        self.remember_failure(key, Some(why.clone()));
                    }
                    answer
                }
            }
        };
        self.done(key, &lock);
        answer
    }

    /// A cached answer: active claims, the refusal of a token known to be inactive, or the
    /// endpoint's recent failure for this token.
    fn known(&self, key: &[u8; 32]) -> Option<Answer> {
        if let Some(hit) = self.cached(key) {
            return Some(Ok(Ok(hit)));
        }
        let refused = self.refused.lock().ok()?;
        let failed = refused.get(key).filter(|f| Instant::now() < f.until)?;
        Some(match &failed.unreachable {
            None => Ok(Err(Refusal::NotActive)),
            Some(why) => Err(Unreachable(why.clone())),
        })
    }

    fn pending_lock(&self, key: [u8; 32]) -> Arc<tokio::sync::Mutex<()>> {
        match self.pending.lock() {
            Ok(mut p) => p.entry(key).or_default().clone(),
            // A poisoned map only loses the sharing, not the answer.
            Err(_) => Arc::default(),
        }
    }

    /// Forgets the token's lock once no other caller holds it.
    fn done(&self, key: [u8; 32], lock: &Arc<tokio::sync::Mutex<()>>) {
        if let Ok(mut p) = self.pending.lock() {
            // Two references: the map's and ours.
            if p.get(&key).is_some_and(|l| Arc::ptr_eq(l, lock)) && Arc::strong_count(lock) <= 2 {
                p.remove(&key);
            }
        }
    }

    async fn call(&self, http: &HttpClient, token: &str, key: [u8; 32]) -> Answer {
        let _slot = match tokio::time::timeout(QUEUE_WAIT, self.slots.acquire()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) | Err(_) => {
                return Err(Unreachable(format!(
                    "more than {MAX_IN_FLIGHT} introspection calls in flight for {}s",
                    QUEUE_WAIT.as_secs()
                )))
            }
        };
        let answer = http.post_form(&self.url, &[("token", token)], &[]).await;
        crate::metrics::outbound(
            "introspection",
            &self.provider,
            match &answer {
                Ok((200, _)) => "ok",
                Ok(_) => "http_error",
                Err(_) => "unreachable",
            },
        );
        let (status, body) = answer.map_err(|e| Unreachable(e.to_string()))?;
        if status != 200 {
            return Err(Unreachable(format!(
                "the introspection endpoint answered HTTP {status}"
            )));
        }
        let claims = match serde_json::from_slice::<Value>(&body) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(Unreachable(
                    "the introspection endpoint did not answer a JSON object".to_string(),
                ))
            }
        };
        if claims.get("active") != Some(&Value::Bool(true)) {
            self.remember_failure(key, None);
            return Ok(Err(Refusal::NotActive));
        }
        let claims = Arc::new(claims);
        self.remember(key, &claims);
        Ok(Ok(claims))
    }

    fn cached(&self, key: &[u8; 32]) -> Option<Arc<Map<String, Value>>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|c| Instant::now() < c.until)
            .map(|c| c.claims.clone())
    }

    fn remember_failure(&self, key: [u8; 32], unreachable: Option<String>) {
        let Ok(mut refused) = self.refused.lock() else {
            return;
        };
        let now = Instant::now();
        if refused.len() >= CACHE_MAX {
            refused.retain(|_, f| now < f.until);
            if refused.len() >= CACHE_MAX {
                refused.clear();
            }
        }
        let ttl = if unreachable.is_some() {
            FAILURE_TTL
        } else {
            NEGATIVE_TTL
        };
        refused.insert(
            key,
            Failed {
                until: now + ttl,
                unreachable,
            },
        );
    }

    fn remember(&self, key: [u8; 32], claims: &Arc<Map<String, Value>>) {
        let mut ttl = CACHE_TTL;
        if let Some(exp) = claims.get("exp").and_then(Value::as_u64) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            ttl = ttl.min(Duration::from_secs(exp.saturating_sub(now)));
        }
        if ttl.is_zero() {
            return;
        }
        let Ok(mut cache) = self.cache.lock() else {
            return;
        };
        if cache.len() >= CACHE_MAX {
            let now = Instant::now();
            cache.retain(|_, c| now < c.until);
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                claims: claims.clone(),
                until: Instant::now() + ttl,
            },
        );
    }
}

/// The audience rule for introspection answers: only when the answer names a `client_id` or
/// an `aud` and the pool (or configuration) lists client ids must one of them be accepted.
/// Endpoints that say nothing about clients, and pools that list none, are not checked.
pub fn check_audience(
    claims: &Map<String, Value>,
    accepted: &Audiences<'_>,
) -> Result<(), Refusal> {
    let client_id = claims.get("client_id").and_then(Value::as_str);
    let aud = claims.get("aud");
    if (client_id.is_none() && aud.is_none()) || accepted.is_empty() {
        return Ok(());
    }
    let by_client = client_id.is_some_and(|c| accepted.accepts(c));
    let by_aud = match aud {
        Some(Value::String(a)) => accepted.accepts(a),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .any(|a| accepted.accepts(a)),
        _ => false,
    };
    if by_client || by_aud {
        Ok(())
    } else {
        Err(Refusal::NotSupported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn the_audience_is_checked_only_when_both_sides_name_clients() {
        let ids = ["app"];
        let acc = Audiences::from_list(&ids);
        let none = Audiences::from_list(&[]);
        assert!(check_audience(&obj(json!({"sub": "u"})), &acc).is_ok());
        assert!(check_audience(&obj(json!({"client_id": "other"})), &none).is_ok());
        assert!(check_audience(&obj(json!({"client_id": "app"})), &acc).is_ok());
        assert!(check_audience(&obj(json!({"aud": ["x", "app"]})), &acc).is_ok());
        assert!(check_audience(&obj(json!({"client_id": "x", "aud": "app"})), &acc).is_ok());
        assert_eq!(
            check_audience(&obj(json!({"client_id": "other"})), &acc),
            Err(Refusal::NotSupported)
        );
        assert_eq!(
            check_audience(&obj(json!({"aud": "other"})), &acc),
            Err(Refusal::NotSupported)
        );
    }

    #[test]
    fn the_cache_keeps_active_answers_briefly_and_by_hash() {
        let i = Introspector::new("http://127.0.0.1:1/".into());
        let key: [u8; 32] = Sha256::digest(b"tok").into();
        let claims = Arc::new(obj(json!({"active": true, "sub": "u"})));
        i.remember(key, &claims);
        assert_eq!(i.cached(&key).unwrap().get("sub"), Some(&json!("u")));
        // An answer whose token has expired is not kept.
        let other: [u8; 32] = Sha256::digest(b"old").into();
        i.remember(other, &Arc::new(obj(json!({"active": true, "exp": 1}))));
        assert!(i.cached(&other).is_none());
    }

    #[test]
    fn refusals_are_kept_briefly_by_hash_and_apart_from_answers() {
        let i = Introspector::new("http://127.0.0.1:1/".into());
        let good: [u8; 32] = Sha256::digest(b"good").into();
        i.remember(good, &Arc::new(obj(json!({"active": true, "sub": "u"}))));
        for n in 0..(CACHE_MAX + 5) {
            i.remember_failure(Sha256::digest(n.to_string().as_bytes()).into(), None);
        }
        let bad: [u8; 32] = Sha256::digest(b"3").into();
        assert_eq!(i.known(&bad), None, "the full refusal table was cleared");
        let last: [u8; 32] = Sha256::digest((CACHE_MAX + 4).to_string().as_bytes()).into();
        assert_eq!(i.known(&last), Some(Ok(Err(Refusal::NotActive))));
        assert!(i.refused.lock().unwrap().len() <= CACHE_MAX);
        assert!(
            matches!(i.known(&good), Some(Ok(Ok(_)))),
            "answers survive a refusal flood"
        );
        // An endpoint failure is remembered too, briefly.
        let down: [u8; 32] = Sha256::digest(b"down").into();
        i.remember_failure(down, Some("HTTP 503".into()));
        assert_eq!(i.known(&down), Some(Err(Unreachable("HTTP 503".into()))));
    }
}
