//! This server's own OpenID tokens: RSA signing keys kept in the database, RS512 issuing and
//! verifying, the JWKS and the discovery document, and key rotation.
//!
//! # Keys
//! Keys live in the database (table `signing_keys`) so tokens survive restarts and every
//! process on the same database signs with the same keys. The key with the highest `seq`
//! is *current*: it signs every new token. Every key whose `retire_after` is unset or still in
//! the future is *published* (JWKS) and accepted by [`Tokens::verify`].
//!
//! # Rotation and reloading
//! [`Tokens::rotate`] (the `idpool keys rotate` command) adds a new key, which becomes current,
//! and sets `retire_after` on every older key still in use to now + 24 h + 5 min: the longest
//! lifetime a token can have (developer tokens, 86,400 s) plus the verification leeway, so no
//! token signed by an older key becomes unverifiable while it is still valid.
//!
//! A running server notices a rotation by itself, without a restart: issuing and serving the
//! JWKS start, at most once every [`RELOAD_INTERVAL`], a background check of whether the key
//! table changed (one aggregate query, on a blocking thread) and reload it if so; the request
//! that started it goes on with the loaded keys, so a rotation is in use everywhere within
//! about [`RELOAD_INTERVAL`]. A token whose `kid` is unknown makes its verification wait for
//! such a check (at most once every [`UNKNOWN_KID_RECHECK`]), so a token signed by a key that
//! another process or replica just created is accepted at once. Between checks nothing touches
//! the database: the current key is held parsed in memory.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use aws_lc_rs::digest;
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{
    KeyPair as _, ParsedPublicKey, RsaKeyPair, RSA_PKCS1_2048_8192_SHA512, RSA_PKCS1_SHA512,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};

use crate::model::{KeysVersion, SigningKey};
use crate::protocol::ApiError;
use crate::store::{Store, StoreError, Tx};
use crate::times::{self, Millis};

/// The one algorithm issued and accepted, as AWS uses it.
pub const ALG: &str = "RS512";
/// Clock skew tolerated on `exp` and `nbf`: one leeway for every login token, ours and
/// providers', with the exact boundaries documented at its definition.
pub use crate::verify::jwt::LEEWAY_SECS;
/// The longest lifetime of a token we issue (GetOpenIdTokenForDeveloperIdentity's maximum).
pub const MAX_TOKEN_LIFETIME_SECS: i64 = 86_400;
/// How long a key stays published after a rotation replaced it: any token it signed has
/// expired (beyond the leeway) by then.
pub const RETIRE_AFTER_SECS: i64 = MAX_TOKEN_LIFETIME_SECS + LEEWAY_SECS;
/// How often the issuing and publishing paths look for keys added by a rotation.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(5);
/// How often a token with an unknown `kid` may make us look in the database again.
pub const UNKNOWN_KID_RECHECK: Duration = Duration::from_secs(1);

/// AWS's texts for a token that cannot be verified and for one of another issuer, the same
/// for our tokens as for providers'.
pub use crate::verify::jwt::{MSG_COULD_NOT_VERIFY, MSG_WRONG_ISSUER};

fn could_not_verify() -> ApiError {
    ApiError::NotAuthorized(MSG_COULD_NOT_VERIFY.to_string())
}

/// The refusal of a token whose `exp` is past.
pub fn expired(now_secs: i64, exp: impl fmt::Display) -> ApiError {
    ApiError::NotAuthorized(crate::verify::jwt::expired_message(now_secs, exp))
}

/// Epoch seconds now.
pub fn now_secs() -> i64 {
    times::now().0.div_euclid(1000)
}

/// A key that verifies and is published.
struct PublicKey {
    kid: String,
    /// The JWK exactly as stored and published.
    jwk: Value,
    verifier: ParsedPublicKey,
    retire_after: Option<Millis>,
}

impl PublicKey {
    fn published_at(&self, now: Millis) -> bool {
        self.retire_after.is_none_or(|t| now < t)
    }
}

/// The current key, parsed once, ready to sign.
struct Signer {
    kid: String,
    /// `base64url({"kid":…,"typ":"JWS","alg":"RS512"})`, the same for every token.
    header_b64: String,
    pair: RsaKeyPair,
}

/// One consistent snapshot of the key table.
struct KeySet {
    /// Newest first.
    keys: Vec<Arc<PublicKey>>,
    signer: Signer,
    version: KeysVersion,
}

/// Lets one caller in per interval, without locks; the others go on with what they have.
struct Throttle {
    /// Milliseconds since `Tokens::base`, plus one; 0 means never.
    last: AtomicU64,
}

impl Throttle {
    fn new(last: u64) -> Throttle {
        Throttle {
            last: AtomicU64::new(last),
        }
    }

    fn claim(&self, base: Instant, every: Duration) -> bool {
        let now = u64::try_from(base.elapsed().as_millis())
            .unwrap_or(u64::MAX - 1)
            .saturating_add(1);
        let last = self.last.load(Ordering::Acquire);
        let every = u64::try_from(every.as_millis()).unwrap_or(u64::MAX);
        if last != 0 && now.saturating_sub(last) < every {
            return false;
        }
        self.last
            .compare_exchange(last, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
}

/// Issues and checks this server's own OpenID tokens.
///
/// Cheap to use from many tasks at once: issuing reads an in-memory snapshot of the keys
/// (see the module documentation for when it is refreshed from the database).
pub struct Tokens {
    issuer: String,
    store: Store,
    keys: Arc<RwLock<Arc<KeySet>>>,
    base: Instant,
    periodic: Throttle,
    unknown_kid: Throttle,
}

impl fmt::Debug for Tokens {
    /// Names the issuer and the key ids; never key material.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.snapshot();
        let kids: Vec<&str> = set.keys.iter().map(|k| k.kid.as_str()).collect();
        f.debug_struct("Tokens")
            .field("issuer", &self.issuer)
            .field("current", &set.signer.kid)
            .field("kids", &kids)
            .finish()
    }
}

/// What [`Tokens::rotate`] did.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The new current key.
    pub kid: String,
    /// Older keys that were in use and now stop being published after `retire_after`.
    pub retiring: Vec<String>,
    /// When they stop being published.
    pub retire_after: Millis,
    /// Keys already past their retirement that were deleted.
    pub deleted: usize,
}

/// A freshly generated key, not yet stored.
struct NewKey {
    pkcs8: Vec<u8>,
    n: String,
    e: String,
}

impl NewKey {
    fn generate() -> Result<NewKey, StoreError> {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| keygen_failed("generate"))?;
        let pkcs8 = pair
            .as_der()
            .map_err(|_| keygen_failed("serialise"))?
            .as_ref()
            .to_vec();
        let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        Ok(NewKey {
            pkcs8,
            n: URL_SAFE_NO_PAD.encode(&parts.n),
            e: URL_SAFE_NO_PAD.encode(&parts.e),
        })
    }

    /// `idpool-<seq>-<8 hex of the RFC 7638 thumbprint>`: ordered for people, and unique
    /// even across databases (a recreated database never reuses a kid a verifier has cached
    /// with another key).
    fn kid(&self, seq: i64) -> String {
        let canonical = format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, self.e, self.n);
        let d = digest::digest(&digest::SHA256, canonical.as_bytes());
        let hex: String = d
            .as_ref()
            .iter()
            .take(4)
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("idpool-{seq}-{hex}")
    }

    fn jwk(&self, kid: &str) -> Value {
        json!({"kty": "RSA", "alg": ALG, "use": "sig", "kid": kid, "n": self.n, "e": self.e})
    }

    /// Stores this key with the next `seq`, inside the caller's write transaction.
    fn insert(&self, tx: &dyn Tx, now: Millis) -> Result<String, StoreError> {
        let seq = tx.next_key_seq()?;
        let kid = self.kid(seq);
        let key = SigningKey {
            kid: kid.clone(),
            seq,
            public_jwk: self.jwk(&kid).to_string(),
            retire_after: None,
        };
        tx.insert_signing_key(&key, &self.pkcs8, now)?;
        Ok(kid)
    }
}

fn keygen_failed(step: &str) -> StoreError {
    StoreError::KeyGeneration(format!("RSA key generation failed ({step})"))
}

fn corrupt(kid: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("signing key {kid}: {what}"))
}

fn parse_public(
    kid: &str,
    text: &str,
    retire_after: Option<Millis>,
) -> Result<PublicKey, StoreError> {
    let jwk: Value = serde_json::from_str(text).map_err(|_| corrupt(kid, "public_jwk"))?;
    let part = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .ok_or_else(|| corrupt(kid, "public_jwk n/e"))
    };
    let components = PublicKeyComponents {
        n: part("n")?,
        e: part("e")?,
    };
    let verifier = components
        .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA512)
        .map_err(|_| corrupt(kid, "public key rejected"))?;
    Ok(PublicKey {
        kid: kid.to_string(),
        jwk,
        verifier,
        retire_after,
    })
}

fn parse_signer(kid: &str, pkcs8: &[u8], public: &PublicKey) -> Result<Signer, StoreError> {
    let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|_| corrupt(kid, "private key rejected"))?;
    let n = PublicKeyComponents::<Vec<u8>>::from(pair.public_key()).n;
    if public.jwk.get("n").and_then(Value::as_str) != Some(URL_SAFE_NO_PAD.encode(n).as_str()) {
        return Err(corrupt(kid, "private key does not match public_jwk"));
    }
    let header = json!(kid).to_string();
    let header = format!(r#"{{"kid":{header},"typ":"JWS","alg":"{ALG}"}}"#);
    Ok(Signer {
        kid: kid.to_string(),
        header_b64: URL_SAFE_NO_PAD.encode(header),
        pair,
    })
}

/// Reads the whole key table in one transaction; only the newest private key is parsed.
fn load(tx: &dyn Tx) -> Result<KeySet, StoreError> {
    let version = tx.keys_version()?;
    let mut keys = Vec::new();
    for k in tx.signing_keys()? {
        keys.push(Arc::new(parse_public(
            &k.kid,
            &k.public_jwk,
            k.retire_after,
        )?));
    }
    let Some(current) = keys.first() else {
        return Err(StoreError::Corrupt("no token signing key".to_string()));
    };
    let pkcs8 = tx
        .private_key(&current.kid)?
        .ok_or_else(|| corrupt(&current.kid, "private key missing"))?;
    let signer = parse_signer(&current.kid, &pkcs8, current)?;
    Ok(KeySet {
        keys,
        signer,
        version,
    })
}

/// The key table, if it changed since `loaded` was read.
fn reload(tx: &dyn Tx, loaded: &KeysVersion) -> Result<Option<KeySet>, StoreError> {
    if tx.keys_version()? == *loaded {
        return Ok(None);
    }
    load(tx).map(Some)
}

async fn refresh_keys(store: &Store, keys: &RwLock<Arc<KeySet>>) -> Result<bool, StoreError> {
    let loaded = snapshot_of(keys).version.clone();
    let set = store.read(move |tx| reload(tx, &loaded)).await?;
    Ok(set.is_some_and(|set| install(keys, set)))
}

fn snapshot_of(keys: &RwLock<Arc<KeySet>>) -> Arc<KeySet> {
    match keys.read() {
        Ok(g) => g.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

/// Makes a freshly loaded key set the one in use, unless a newer one is in use already.
fn install(keys: &RwLock<Arc<KeySet>>, set: KeySet) -> bool {
    let new = set.signer.kid.clone();
    let mut g = match keys.write() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    // Two checks racing: never let the older snapshot win.
    if set.version.max_seq < g.version.max_seq {
        return false;
    }
    let old = std::mem::replace(&mut *g, Arc::new(set)).signer.kid.clone();
    drop(g);
    if old != new {
        tracing::info!(old, new, "token signing key changed");
    }
    true
}

impl Tokens {
    /// Loads the signing keys from the store, generating the first one when there is none.
    ///
    /// Blocking (key generation takes a moment, and it reads the database): call it off the
    /// async workers. The first key is generated outside any transaction and inserted by a
    /// write that checks again that there is none, so two processes (or replicas) starting at
    /// once end up sharing one first key.
    pub fn open(store: &Store, issuer: String) -> Result<Tokens, StoreError> {
        if store.read_blocking(|tx| tx.keys_version())?.count == 0 {
            let fresh = NewKey::generate()?;
            store.write_blocking(move |tx| {
                if tx.keys_version()?.count == 0 {
                    let kid = fresh.insert(tx, times::now())?;
                    tracing::info!(kid, "generated the first token signing key");
                }
                Ok::<_, StoreError>(())
            })?;
        }
        let set = store.read_blocking(load)?;
        Ok(Tokens {
            issuer,
            store: store.clone(),
            keys: Arc::new(RwLock::new(Arc::new(set))),
            base: Instant::now(),
            // Just loaded: the first periodic check is due one interval from now.
            periodic: Throttle::new(1),
            unknown_kid: Throttle::new(0),
        })
    }

    /// The `iss` of issued tokens.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `kid` of the key that signs new tokens, as of the last check.
    pub fn current_kid(&self) -> String {
        self.snapshot().signer.kid.clone()
    }

    fn snapshot(&self) -> Arc<KeySet> {
        snapshot_of(&self.keys)
    }

    /// Checks the store for a changed key table now and reloads it if it changed; returns
    /// whether it did. The server does this on its own (see the module documentation); tools
    /// and tests call it to see a rotation at once. Blocking.
    pub fn refresh_blocking(&self) -> Result<bool, StoreError> {
        let loaded = self.snapshot().version.clone();
        let set = self.store.read_blocking(|tx| reload(tx, &loaded))?;
        Ok(set.is_some_and(|set| install(&self.keys, set)))
    }

    /// [`Tokens::refresh_blocking`] on a blocking thread.
    pub async fn refresh(&self) -> Result<bool, StoreError> {
        refresh_keys(&self.store, &self.keys).await
    }

    /// Starts a [`Tokens::refresh`] in the background if `throttle` lets this caller in; the
    /// caller goes on with the loaded keys. Outside a tokio runtime (tools), it does nothing.
    fn refresh_in_background(&self, throttle: &Throttle, every: Duration) {
        if !throttle.claim(self.base, every) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (store, keys) = (self.store.clone(), self.keys.clone());
        runtime.spawn(async move {
            if let Err(e) = refresh_keys(&store, &keys).await {
                tracing::warn!(
                    error = %e,
                    "could not check the token signing keys; keeping the loaded ones"
                );
            }
        });
    }

    /// [`Tokens::refresh`] now if `throttle` lets this caller in; failures keep the loaded keys.
    async fn refresh_throttled(&self, throttle: &Throttle, every: Duration) {
        if !throttle.claim(self.base, every) {
            return;
        }
        if let Err(e) = self.refresh().await {
            tracing::warn!(
                error = %e,
                "could not check the token signing keys; keeping the loaded ones"
            );
        }
    }

    /// Signs `claims` (RS512, current key) after adding `iss`, `iat` and `exp = iat + ttl_secs`
    /// (those three replace any the caller set). The header is
    /// `{"kid":…,"typ":"JWS","alg":"RS512"}`, as AWS sends it.
    pub fn issue(&self, claims: Map<String, Value>, ttl_secs: u64) -> Result<String, ApiError> {
        self.issue_until(claims, ttl_secs, None)
    }

    /// [`Tokens::issue`], but the token expires no later than `not_after` (epoch seconds):
    /// a token issued on the strength of another token of ours must not outlive it. When
    /// `not_after` is already past (a token accepted only within the clock-skew leeway), no
    /// token is issued: NotAuthorizedException, as for an expired login token.
    pub fn issue_until(
        &self,
        mut claims: Map<String, Value>,
        ttl_secs: u64,
        not_after: Option<i64>,
    ) -> Result<String, ApiError> {
        self.refresh_in_background(&self.periodic, RELOAD_INTERVAL);
        let set = self.snapshot();
        let iat = now_secs();
        let mut exp = iat.saturating_add(i64::try_from(ttl_secs).unwrap_or(i64::MAX));
        if let Some(limit) = not_after {
            if limit <= iat {
                return Err(expired(iat, limit));
            }
            exp = exp.min(limit);
        }
        claims.insert("iss".into(), Value::from(self.issuer.as_str()));
        claims.insert("iat".into(), Value::from(iat));
        claims.insert("exp".into(), Value::from(exp));
        let payload = serde_json::to_vec(&claims).map_err(|e| {
            tracing::error!(error = %e, "could not encode token claims");
            ApiError::InternalError
        })?;
        let signer = &set.signer;
        let mut token =
            String::with_capacity(signer.header_b64.len() + payload.len() * 4 / 3 + 360);
        token.push_str(&signer.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let mut signature = vec![0u8; signer.pair.public_modulus_len()];
        signer
            .pair
            .sign(
                &RSA_PKCS1_SHA512,
                &aws_lc_rs::rand::SystemRandom::new(),
                token.as_bytes(),
                &mut signature,
            )
            .map_err(|_| {
                tracing::error!(kid = signer.kid, "RSA signing failed");
                ApiError::InternalError
            })?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }

    /// The published key with this kid, if any.
    fn find(&self, kid: &str, now: Millis) -> Option<Arc<PublicKey>> {
        self.snapshot()
            .keys
            .iter()
            .find(|k| k.kid == kid && k.published_at(now))
            .cloned()
    }

    /// Checks a token this server issued (signature by a published key, `iss`, `exp`, `nbf`)
    /// and returns its claims; failures are NotAuthorizedException with AWS's messages.
    ///
    /// The token is taken apart and its times checked by the verifier shared with provider
    /// tokens ([`crate::verify::jwt`]), with the same [`LEEWAY_SECS`]. On top of that, only
    /// `alg: RS512` is accepted (never `none`, never an HMAC keyed with our public key), the
    /// `kid` must name a published key, and `exp` is required.
    ///
    /// A `kid` this server has not loaded makes it look in the database first (at most once
    /// every [`UNKNOWN_KID_RECHECK`]): another process or replica may just have rotated.
    pub async fn verify(&self, token: &str) -> Result<Map<String, Value>, ApiError> {
        let now = times::now();
        let first = self.verify_at(token, now);
        if first.is_err() && self.names_unknown_kid(token, now) {
            self.refresh_throttled(&self.unknown_kid, UNKNOWN_KID_RECHECK)
                .await;
            return self.verify_at(token, now);
        }
        first
    }

    /// Whether the token's header names a key that is not among the loaded published ones.
    fn names_unknown_kid(&self, token: &str, now: Millis) -> bool {
        crate::verify::jwt::parse(token)
            .and_then(|p| p.kid)
            .is_some_and(|kid| self.find(&kid, now).is_none())
    }

    /// [`Tokens::verify`] as of `now`.
    fn verify_at(&self, token: &str, now: Millis) -> Result<Map<String, Value>, ApiError> {
        use crate::verify::jwt::{self, TimeRefusal};
        let parsed = jwt::parse(token).ok_or_else(could_not_verify)?;
        let kid = match parsed.kid.as_deref() {
            Some(kid) if parsed.alg.name() == ALG => kid,
            _ => return Err(could_not_verify()),
        };
        let key = self.find(kid, now).ok_or_else(could_not_verify)?;
        key.verifier
            .verify_sig(parsed.signed, &parsed.signature)
            .map_err(|_| could_not_verify())?;
        let claims = parsed.claims;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(ApiError::NotAuthorized(MSG_WRONG_ISSUER.to_string()));
        }
        let now_secs = now.0.div_euclid(1000);
        match jwt::check_times(&claims, now_secs) {
            Ok(()) => Ok(claims),
            // The message shows `exp` as the token wrote it.
            Err(TimeRefusal::Expired { .. }) => {
                let exp = claims.get("exp").map(Value::to_string).unwrap_or_default();
                Err(expired(now_secs, exp))
            }
            Err(TimeRefusal::NotYetValid) => {
                Err(ApiError::NotAuthorized(jwt::MSG_NOT_YET_VALID.to_string()))
            }
            Err(TimeRefusal::NoExpiry | TimeRefusal::Malformed) => Err(could_not_verify()),
        }
    }

    /// The JWKS document served at `/.well-known/jwks_uri`: every published key, newest
    /// first, as `{"kty":"RSA","alg":"RS512","use":"sig","kid":…,"n":…,"e":…}`.
    pub fn jwks(&self) -> Value {
        self.refresh_in_background(&self.periodic, RELOAD_INTERVAL);
        let now = times::now();
        let keys: Vec<Value> = self
            .snapshot()
            .keys
            .iter()
            .filter(|k| k.published_at(now))
            .map(|k| k.jwk.clone())
            .collect();
        json!({ "keys": keys })
    }

    /// The discovery document served at `/.well-known/openid-configuration` (OpenID Connect
    /// Discovery 1.0 provider metadata).
    ///
    /// `authorization_endpoint` is REQUIRED by the specification and some verifiers refuse a
    /// document without it, so it is given as `<issuer>/authorize`; this server does not serve
    /// it (tokens come from GetOpenIdToken and GetOpenIdTokenForDeveloperIdentity, never from
    /// a browser flow). Verifiers only use `issuer` and `jwks_uri`.
    pub fn discovery(&self) -> Value {
        let iss = &self.issuer;
        json!({
            "issuer": iss,
            "jwks_uri": format!("{iss}/.well-known/jwks_uri"),
            "authorization_endpoint": format!("{iss}/authorize"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": [ALG],
            "claims_supported": ["sub", "aud", "amr", "iss", "exp", "iat"],
        })
    }

    /// Adds a new signing key that becomes current and schedules the older keys in use for
    /// retirement [`RETIRE_AFTER_SECS`] from now; deletes keys already past retirement.
    ///
    /// Works with or without servers running on the same database: one write transaction, so
    /// concurrent rotations and a server generating its first key cannot interleave. Running
    /// servers pick the new key up within [`RELOAD_INTERVAL`] (see the module documentation).
    /// Blocking.
    pub fn rotate(store: &Store) -> Result<Rotation, StoreError> {
        let fresh = NewKey::generate()?;
        let rotation = store.write_blocking(move |tx| {
            let now = times::now();
            let retire_after = Millis(now.0.saturating_add(RETIRE_AFTER_SECS * 1000));
            let retiring = tx.retire_signing_keys(retire_after)?;
            // Inserted before the retired ones go, so `seq` only ever grows.
            let kid = fresh.insert(tx, now)?;
            let deleted = tx.delete_retired_keys(now)?;
            Ok::<_, StoreError>(Rotation {
                kid,
                retiring,
                retire_after,
                deleted,
            })
        })?;
        tracing::info!(
            kid = rotation.kid,
            retiring = ?rotation.retiring,
            deleted = rotation.deleted,
            "rotated the token signing key"
        );
        Ok(rotation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Synchronous;

    const ISS: &str = "https://id.example.test";

    fn fresh_db() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("t.db"), Synchronous::Full).unwrap();
        (dir, store)
    }

    fn open(store: &Store) -> Tokens {
        Tokens::open(store, ISS.to_string()).unwrap()
    }

    /// Runs a verification to its end, as a request would.
    fn block<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn claims() -> Map<String, Value> {
        let Value::Object(m) =
            json!({"sub": "us-east-1:abc", "aud": "us-east-1:pool", "amr": ["unauthenticated"]})
        else {
            unreachable!()
        };
        m
    }

    /// The stored `retire_after` of a key: `None` while it is in use.
    fn retire_after(store: &Store, kid: &str) -> Option<String> {
        store
            .read_blocking(|tx| tx.signing_keys())
            .unwrap()
            .into_iter()
            .find(|k| k.kid == kid)
            .unwrap()
            .retire_after
            .map(|t| t.text())
    }

    fn b64json(v: &Value) -> String {
        URL_SAFE_NO_PAD.encode(v.to_string())
    }

    /// Signs an arbitrary header and payload with the current key, bypassing `issue`.
    fn sign_raw(t: &Tokens, header: &Value, payload: &Value) -> String {
        let input = format!("{}.{}", b64json(header), b64json(payload));
        let set = t.snapshot();
        let mut sig = vec![0u8; set.signer.pair.public_modulus_len()];
        set.signer
            .pair
            .sign(
                &RSA_PKCS1_SHA512,
                &aws_lc_rs::rand::SystemRandom::new(),
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    fn parts(token: &str) -> (Value, Value) {
        let p: Vec<&str> = token.split('.').collect();
        assert_eq!(p.len(), 3);
        let h = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[0]).unwrap()).unwrap();
        let c = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p[1]).unwrap()).unwrap();
        (h, c)
    }

    fn refused(t: &Tokens, token: &str) -> String {
        match block(t.verify(token)) {
            Err(ApiError::NotAuthorized(m)) => m,
            other => panic!("expected NotAuthorized for {token:?}, got {other:?}"),
        }
    }

    #[test]
    fn issue_then_verify_round_trips_with_aws_header_and_claims() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let before = now_secs();
        let token = t.issue(claims(), 600).unwrap();
        let (h, c) = parts(&token);
        assert_eq!(
            h,
            json!({"kid": t.current_kid(), "typ": "JWS", "alg": "RS512"})
        );
        let raw_header = String::from_utf8(
            URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert!(
            raw_header.starts_with(r#"{"kid":"idpool-1-"#),
            "{raw_header}"
        );
        assert_eq!(c["iss"], ISS);
        let iat = c["iat"].as_i64().unwrap();
        assert!(iat >= before && iat <= now_secs());
        assert_eq!(c["exp"].as_i64().unwrap(), iat + 600);
        assert_eq!(c["sub"], "us-east-1:abc");

        let back = block(t.verify(&token)).unwrap();
        assert_eq!(Value::Object(back), c);
    }

    #[test]
    fn issue_overrides_caller_iss_iat_exp() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let mut m = claims();
        m.insert("iss".into(), json!("https://evil"));
        m.insert("exp".into(), json!(1));
        let (_, c) = parts(&t.issue(m, 900).unwrap());
        assert_eq!(c["iss"], ISS);
        assert_eq!(c["exp"].as_i64().unwrap(), c["iat"].as_i64().unwrap() + 900);
    }

    #[test]
    fn issue_until_never_outlives_the_limit() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let now = now_secs();
        let (_, c) = parts(&t.issue_until(claims(), 600, Some(now + 60)).unwrap());
        assert!(c["exp"].as_i64().unwrap() <= now + 60);
        // A limit beyond the lifetime changes nothing.
        let (_, c) = parts(&t.issue_until(claims(), 600, Some(now + 6000)).unwrap());
        assert_eq!(c["exp"].as_i64().unwrap(), c["iat"].as_i64().unwrap() + 600);
        // A limit already past issues nothing.
        match t.issue_until(claims(), 600, Some(now - 1)) {
            Err(ApiError::NotAuthorized(m)) => {
                assert!(m.starts_with("Invalid login token. Token expired: "), "{m}")
            }
            other => panic!("expected NotAuthorized, got {other:?}"),
        }
    }

    #[test]
    fn tampering_and_algorithm_tricks_are_refused() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let token = t.issue(claims(), 600).unwrap();
        let p: Vec<&str> = token.split('.').collect();

        // Another payload under the original signature.
        let (_, mut c) = parts(&token);
        c["sub"] = json!("us-east-1:someone-else");
        let forged = format!("{}.{}.{}", p[0], b64json(&c), p[2]);
        assert_eq!(refused(&t, &forged), MSG_COULD_NOT_VERIFY);

        // One bit of the signature flipped.
        let mut sig = URL_SAFE_NO_PAD.decode(p[2]).unwrap();
        sig[10] ^= 0x01;
        let flipped = format!("{}.{}.{}", p[0], p[1], URL_SAFE_NO_PAD.encode(&sig));
        assert_eq!(refused(&t, &flipped), MSG_COULD_NOT_VERIFY);

        // alg none, with and without a signature part.
        let none = b64json(&json!({"kid": t.current_kid(), "typ": "JWS", "alg": "none"}));
        assert_eq!(
            refused(&t, &format!("{none}.{}.", p[1])),
            MSG_COULD_NOT_VERIFY
        );
        assert_eq!(
            refused(&t, &format!("{none}.{}.{}", p[1], p[2])),
            MSG_COULD_NOT_VERIFY
        );

        // HS256 keyed with what an attacker knows: the published JWK and the public key DER.
        let hs = b64json(&json!({"kid": t.current_kid(), "typ": "JWS", "alg": "HS256"}));
        let input = format!("{hs}.{}", p[1]);
        let jwks = t.jwks();
        let jwk_text = jwks["keys"][0].to_string();
        let der = t.snapshot().signer.pair.public_key().as_ref().to_vec();
        for secret in [jwk_text.as_bytes(), der.as_slice()] {
            let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
            let mac = aws_lc_rs::hmac::sign(&key, input.as_bytes());
            let hmac_token = format!("{input}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()));
            assert_eq!(refused(&t, &hmac_token), MSG_COULD_NOT_VERIFY);
        }

        // A header naming another RSA algorithm is refused, whatever the signature.
        let rs256 = sign_raw(
            &t,
            &json!({"kid": t.current_kid(), "typ": "JWS", "alg": "RS256"}),
            &c,
        );
        assert_eq!(refused(&t, &rs256), MSG_COULD_NOT_VERIFY);

        // A header with `crit` we do not understand.
        let crit = sign_raw(
            &t,
            &json!({"kid": t.current_kid(), "alg": "RS512", "crit": ["exp"]}),
            &json!({"iss": ISS, "exp": now_secs() + 600}),
        );
        assert_eq!(refused(&t, &crit), MSG_COULD_NOT_VERIFY);
    }

    #[test]
    fn unknown_kid_and_missing_kid_are_refused() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let payload = json!({"iss": ISS, "exp": now_secs() + 600});
        let unknown = sign_raw(
            &t,
            &json!({"kid": "idpool-99-deadbeef", "alg": "RS512"}),
            &payload,
        );
        assert_eq!(refused(&t, &unknown), MSG_COULD_NOT_VERIFY);
        let missing = sign_raw(&t, &json!({"alg": "RS512"}), &payload);
        assert_eq!(refused(&t, &missing), MSG_COULD_NOT_VERIFY);
        // The same claims with the right kid do verify: the refusals above were about the kid.
        let good = sign_raw(
            &t,
            &json!({"kid": t.current_kid(), "alg": "RS512"}),
            &payload,
        );
        block(t.verify(&good)).unwrap();
    }

    #[test]
    fn wrong_issuer_is_refused_with_aws_text() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let token = t.issue(claims(), 600).unwrap();
        let other = Tokens::open(&store, "https://other.example.test".to_string()).unwrap();
        assert_eq!(refused(&other, &token), MSG_WRONG_ISSUER);
        let no_iss = sign_raw(
            &t,
            &json!({"kid": t.current_kid(), "alg": "RS512"}),
            &json!({"exp": now_secs() + 600}),
        );
        assert_eq!(refused(&t, &no_iss), MSG_WRONG_ISSUER);
    }

    #[test]
    fn expiry_refuses_from_exp_plus_the_leeway_on() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let header = json!({"kid": t.current_kid(), "typ": "JWS", "alg": "RS512"});
        let exp = now_secs() - 100;
        let token = sign_raw(
            &t,
            &header,
            &json!({"iss": ISS, "iat": exp - 600, "exp": exp}),
        );
        // The last millisecond of the last second accepted, then the first one refused.
        let last = Millis((exp + LEEWAY_SECS) * 1000 - 1);
        t.verify_at(&token, last).unwrap();
        let first = Millis((exp + LEEWAY_SECS) * 1000);
        match t.verify_at(&token, first) {
            Err(ApiError::NotAuthorized(m)) => assert_eq!(
                m,
                format!(
                    "Invalid login token. Token expired: {} >= {exp}",
                    exp + LEEWAY_SECS
                )
            ),
            other => panic!("expected NotAuthorized, got {other:?}"),
        }
        // Within the leeway on the real clock, and without any exp at all.
        block(t.verify(&token)).unwrap();
        let no_exp = sign_raw(&t, &header, &json!({"iss": ISS}));
        assert_eq!(refused(&t, &no_exp), MSG_COULD_NOT_VERIFY);
        let bad_exp = sign_raw(&t, &header, &json!({"iss": ISS, "exp": "later"}));
        assert_eq!(refused(&t, &bad_exp), MSG_COULD_NOT_VERIFY);
    }

    #[test]
    fn not_before_accepts_from_nbf_minus_the_leeway_on() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let header = json!({"kid": t.current_kid(), "alg": "RS512"});
        let nbf = now_secs() + 100;
        let token = sign_raw(
            &t,
            &header,
            &json!({"iss": ISS, "nbf": nbf, "exp": nbf + 600}),
        );
        let too_early = Millis((nbf - LEEWAY_SECS) * 1000 - 1);
        match t.verify_at(&token, too_early) {
            Err(ApiError::NotAuthorized(m)) => {
                assert_eq!(m, "Invalid login token. Token is not yet valid.")
            }
            other => panic!("expected NotAuthorized, got {other:?}"),
        }
        t.verify_at(&token, Millis((nbf - LEEWAY_SECS) * 1000))
            .unwrap();
        block(t.verify(&token)).unwrap();
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let token = t.issue(claims(), 600).unwrap();
        let p: Vec<&str> = token.split('.').collect();
        for bad in [
            String::new(),
            "a.b".to_string(),
            "a.b.c".to_string(),
            "!!!.@@@.###".to_string(),
            "....".to_string(),
            format!("{token}.extra"),
            format!("{}=.{}.{}", p[0], p[1], p[2]),
            format!("{}.{}.{}=", p[0], p[1], p[2]),
            format!("{}.{}", p[0], p[1]),
            format!(
                "{}.{}.{}",
                b64json(&json!(["not", "an", "object"])),
                p[1],
                p[2]
            ),
            format!("{}.{}.{}", p[0], URL_SAFE_NO_PAD.encode("not json"), p[2]),
        ] {
            assert_eq!(refused(&t, &bad), MSG_COULD_NOT_VERIFY, "{bad:?}");
        }
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_signs_with_the_new_key() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        // Another process's view, loaded before the rotation.
        let other = open(&store);
        let old_kid = t.current_kid();
        let old_token = t.issue(claims(), 86_400).unwrap();

        let r = Tokens::rotate(&store).unwrap();
        assert_ne!(r.kid, old_kid);
        assert!(r.kid.starts_with("idpool-2-"), "{}", r.kid);
        assert_eq!(r.retiring, vec![old_kid.clone()]);
        let stored = retire_after(&store, &old_kid).unwrap();
        let retire = Millis::parse(&stored).unwrap();
        let expect = times::now().0 + RETIRE_AFTER_SECS * 1000;
        assert!((retire.0 - expect).abs() < 60_000, "{stored}");
        assert_eq!(retire_after(&store, &r.kid), None);

        assert!(t.refresh_blocking().unwrap());
        assert!(!t.refresh_blocking().unwrap(), "nothing changed since");
        assert_eq!(t.current_kid(), r.kid);
        let new_token = t.issue(claims(), 600).unwrap();
        assert_eq!(parts(&new_token).0["kid"], r.kid.as_str());
        block(t.verify(&old_token)).unwrap();
        block(t.verify(&new_token)).unwrap();

        let kids: Vec<String> = t.jwks()["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kids, vec![r.kid.clone(), old_kid.clone()]);

        // The other process has never heard of the new kid: it looks in the database once.
        assert_eq!(other.current_kid(), old_kid);
        block(other.verify(&new_token)).unwrap();
        assert_eq!(other.current_kid(), r.kid);
    }

    #[test]
    fn retired_keys_leave_the_jwks_stop_verifying_and_go_at_the_next_rotation() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let old_kid = t.current_kid();
        let old_token = t.issue(claims(), 600).unwrap();
        // Its retirement passed long ago.
        let past = Millis::parse("2000-01-01 00:00:00.000").unwrap();
        let retired = store
            .write_blocking(move |tx| tx.retire_signing_keys(past))
            .unwrap();
        assert_eq!(retired, vec![old_kid.clone()]);
        let r = Tokens::rotate(&store).unwrap();
        assert_eq!(r.deleted, 1);
        assert!(r.retiring.is_empty());
        t.refresh_blocking().unwrap();
        let jwks = t.jwks();
        assert_eq!(jwks["keys"].as_array().unwrap().len(), 1);
        assert_ne!(jwks["keys"][0]["kid"], old_kid.as_str());
        assert_eq!(refused(&t, &old_token), MSG_COULD_NOT_VERIFY);
        Tokens::rotate(&store).unwrap();
        assert_eq!(
            store.read_blocking(|tx| tx.keys_version()).unwrap().count,
            2
        );
    }

    #[test]
    fn keys_survive_reopening_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let (kid, token) = {
            let store = Store::open(&path, Synchronous::Full).unwrap();
            let t = open(&store);
            let out = (t.current_kid(), t.issue(claims(), 600).unwrap());
            store.close();
            out
        };
        let store = Store::open(&path, Synchronous::Full).unwrap();
        let t = open(&store);
        assert_eq!(t.current_kid(), kid);
        block(t.verify(&token)).unwrap();
        let keys = store.read_blocking(|tx| tx.signing_keys()).unwrap();
        assert_eq!(keys.len(), 1);
        let der = store
            .read_blocking(|tx| tx.private_key(&kid))
            .unwrap()
            .unwrap();
        assert!(der.len() > 1000, "a PKCS#8 RSA-2048 key is about 1.2 kB");
        let jwk: Value = serde_json::from_str(&keys[0].public_jwk).unwrap();
        assert_eq!(jwk["kty"], "RSA");
        assert_eq!(jwk["alg"], "RS512");
        assert_eq!(jwk["use"], "sig");
        assert_eq!(jwk["e"], "AQAB");
        assert_eq!(jwk["kid"], kid.as_str());
    }

    #[test]
    fn processes_starting_at_once_share_one_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        Store::open(&path, Synchronous::Full).unwrap().close();
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let path = path.clone();
                std::thread::spawn(move || {
                    // Each its own store on the file, as separate processes would have.
                    let store = Store::open(&path, Synchronous::Full).unwrap();
                    let kid = open(&store).current_kid();
                    store.close();
                    kid
                })
            })
            .collect();
        let kids: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert!(kids.iter().all(|k| *k == kids[0]), "{kids:?}");
        let store = Store::open(&path, Synchronous::Full).unwrap();
        assert_eq!(
            store.read_blocking(|tx| tx.keys_version()).unwrap().count,
            1
        );
    }

    #[test]
    fn jwks_and_discovery_documents() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let jwks = t.jwks();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        let k = &keys[0];
        let mut names: Vec<&str> = k.as_object().unwrap().keys().map(|s| s.as_str()).collect();
        names.sort();
        assert_eq!(names, ["alg", "e", "kid", "kty", "n", "use"]);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(k["n"].as_str().unwrap())
                .unwrap()
                .len(),
            256
        );
        assert!(!k["n"].as_str().unwrap().contains('='));

        let d = t.discovery();
        assert_eq!(d["issuer"], ISS);
        assert_eq!(d["jwks_uri"], format!("{ISS}/.well-known/jwks_uri"));
        assert_eq!(d["id_token_signing_alg_values_supported"], json!(["RS512"]));
        assert_eq!(d["response_types_supported"], json!(["id_token"]));
        assert_eq!(d["subject_types_supported"], json!(["public"]));
        assert!(d["authorization_endpoint"].is_string());
    }

    #[test]
    fn debug_output_shows_no_key_material() {
        let (_d, store) = fresh_db();
        let t = open(&store);
        let kid = t.current_kid();
        let der = store
            .read_blocking(|tx| tx.private_key(&kid))
            .unwrap()
            .unwrap();
        let shown = format!("{t:?}");
        assert!(shown.contains(&t.current_kid()), "{shown}");
        assert!(shown.len() < 300, "{shown}");
        let b64 = base64::engine::general_purpose::STANDARD.encode(&der);
        let hex: String = der.iter().map(|b| format!("{b:02x}")).collect();
        assert!(!shown.contains(&b64[40..80]) && !shown.contains(&hex[80..160]));
    }

    #[test]
    fn the_throttle_lets_one_caller_in_per_interval() {
        let base = Instant::now();
        let never = Throttle::new(0);
        assert!(never.claim(base, Duration::from_secs(60)));
        assert!(!never.claim(base, Duration::from_secs(60)));
        assert!(never.claim(base, Duration::ZERO));
        let loaded = Throttle::new(1);
        assert!(!loaded.claim(base, Duration::from_secs(60)));
    }
}
