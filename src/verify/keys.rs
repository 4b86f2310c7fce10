//! A provider's public signing keys: a JWKS document parsed into the keys this server can use,
//! which of them fit a token's `kid` and algorithm, and the signature check with one key.
//!
//! Where the documents come from, and how long they are kept, is [`super::key_cache`]'s
//! business; the token side (taking a JWT apart, the algorithm policy) is [`super::jwt`]'s.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;

use super::jwt::Alg;

/// One usable public key of a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The key's own `alg`, when it names one: then only that algorithm may use it.
    pub alg: Option<String>,
    pub material: KeyMaterial,
}

/// The public key itself, ready for aws-lc-rs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyMaterial {
    /// Big-endian modulus and exponent, without leading zero bytes.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// Uncompressed SEC1 point `04 || x || y`.
    P256 {
        point: Vec<u8>,
    },
    P384 {
        point: Vec<u8>,
    },
}

impl Jwk {
    /// Whether this key may verify `alg`: the key type (and EC curve) must fit, and a key that
    /// names its own `alg` allows only that one.
    pub fn fits(&self, alg: Alg) -> bool {
        if self.alg.as_deref().is_some_and(|a| a != alg.name()) {
            return false;
        }
        matches!(
            (&self.material, alg),
            (
                KeyMaterial::Rsa { .. },
                Alg::RS256 | Alg::RS384 | Alg::RS512 | Alg::PS256 | Alg::PS384 | Alg::PS512,
            ) | (KeyMaterial::P256 { .. }, Alg::ES256)
                | (KeyMaterial::P384 { .. }, Alg::ES384)
        )
    }

    /// Checks `sig` over `message` made with `alg`; false for any mismatch or failure.
    pub fn verifies(&self, alg: Alg, message: &[u8], sig: &[u8]) -> bool {
        use aws_lc_rs::signature as s;
        if !self.fits(alg) {
            return false;
        }
        match &self.material {
            KeyMaterial::Rsa { n, e } => {
                let params = match alg {
                    Alg::RS256 => &s::RSA_PKCS1_2048_8192_SHA256,
                    Alg::RS384 => &s::RSA_PKCS1_2048_8192_SHA384,
                    Alg::RS512 => &s::RSA_PKCS1_2048_8192_SHA512,
                    Alg::PS256 => &s::RSA_PSS_2048_8192_SHA256,
                    Alg::PS384 => &s::RSA_PSS_2048_8192_SHA384,
                    Alg::PS512 => &s::RSA_PSS_2048_8192_SHA512,
                    Alg::ES256 | Alg::ES384 => return false,
                };
                s::RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok()
            }
            KeyMaterial::P256 { point } => {
                s::UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
            KeyMaterial::P384 { point } => {
                s::UnparsedPublicKey::new(&s::ECDSA_P384_SHA384_FIXED, point)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// The usable keys of one JWKS document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    pub keys: Vec<Jwk>,
}

/// Why a JWKS document is unusable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksError(pub String);

impl KeySet {
    /// Parses a JWKS document. Keys this verifier cannot use (symmetric keys, other curves,
    /// encryption keys, malformed members) are skipped; a document that is not a JWKS at all
    /// is an error.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, JwksError> {
        let doc: Value = serde_json::from_slice(bytes)
            .map_err(|e| JwksError(format!("the JWKS is not JSON ({e})")))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError("the JWKS has no \"keys\" array".to_string()))?;
        Ok(KeySet {
            keys: keys.iter().filter_map(parse_key).collect(),
        })
    }

    /// The keys a token may be checked with.
    pub fn select(&self, kid: Option<&str>, alg: Alg) -> Selection<'_> {
        let mut named = false;
        let mut fitting = Vec::new();
        for k in &self.keys {
            if let Some(kid) = kid {
                if k.kid.as_deref() != Some(kid) {
                    continue;
                }
                named = true;
            }
            if k.fits(alg) {
                fitting.push(k);
            }
        }
        if !fitting.is_empty() {
            Selection::Keys(fitting)
        } else if kid.is_some() && !named {
            Selection::UnknownKid
        } else {
            Selection::Unfit
        }
    }
}

/// What a key set offers a token.
#[derive(Debug, PartialEq, Eq)]
pub enum Selection<'a> {
    /// Keys of the token's `kid` (all keys when it names none) that fit its algorithm.
    Keys(Vec<&'a Jwk>),
    /// The token names a `kid` this set does not have: worth a refresh.
    UnknownKid,
    /// Keys exist but none fits the algorithm: refused, no refresh.
    Unfit,
}

fn b64_field(key: &Value, name: &str) -> Option<Vec<u8>> {
    let s = key.get(name)?.as_str()?;
    URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok()
}

fn parse_key(key: &Value) -> Option<Jwk> {
    let use_ = key.get("use").and_then(Value::as_str);
    if use_.is_some_and(|u| u != "sig") {
        return None;
    }
    if let Some(ops) = key.get("key_ops").and_then(Value::as_array) {
        if !ops.iter().any(|o| o.as_str() == Some("verify")) {
            return None;
        }
    }
    let material = match key.get("kty")?.as_str()? {
        "RSA" => {
            let n = strip_zeros(b64_field(key, "n")?);
            let e = strip_zeros(b64_field(key, "e")?);
            if n.is_empty() || e.is_empty() {
                return None;
            }
            KeyMaterial::Rsa { n, e }
        }
        "EC" => {
            let (len, p384) = match key.get("crv")?.as_str()? {
                "P-256" => (32, false),
                "P-384" => (48, true),
                _ => return None,
            };
            let x = b64_field(key, "x")?;
            let y = b64_field(key, "y")?;
            if x.len() != len || y.len() != len {
                return None;
            }
            let mut point = Vec::with_capacity(1 + 2 * len);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            if p384 {
                KeyMaterial::P384 { point }
            } else {
                KeyMaterial::P256 { point }
            }
        }
        _ => return None,
    };
    let text = |name: &str| key.get(name).and_then(Value::as_str).map(str::to_string);
    Some(Jwk {
        kid: text("kid"),
        alg: text("alg"),
        material,
    })
}

fn strip_zeros(mut v: Vec<u8>) -> Vec<u8> {
    let zeros = v.iter().take_while(|b| **b == 0).count();
    v.drain(..zeros);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(b: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(b)
    }

    fn rsa(kid: &str) -> Value {
        json!({"kty": "RSA", "kid": kid, "use": "sig", "n": b64(&[0, 0xc1, 2, 3]), "e": "AQAB"})
    }

    fn ec(kid: &str, crv: &str, len: usize) -> Value {
        json!({"kty": "EC", "kid": kid, "crv": crv, "x": b64(&vec![1; len]), "y": b64(&vec![2; len])})
    }

    #[test]
    fn jwks_parsing_keeps_usable_signing_keys_only() {
        let doc = json!({"keys": [
            rsa("r1"),
            ec("e1", "P-256", 32),
            ec("e2", "P-384", 48),
            ec("bad-len", "P-256", 31),
            ec("p521", "P-521", 66),
            {"kty": "oct", "kid": "h", "k": "c2VjcmV0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AAAA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "wQ", "e": "AQAB"},
            {"kty": "RSA", "kid": "no-n", "e": "AQAB"},
            {"kty": "RSA", "kid": "bad-b64", "n": "***", "e": "AQAB"},
            {"kid": "no-kty"},
            "not an object",
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        let kids: Vec<_> = set.keys.iter().map(|k| k.kid.clone().unwrap()).collect();
        assert_eq!(kids, ["r1", "e1", "e2"]);
        assert_eq!(
            set.keys[0].material,
            KeyMaterial::Rsa {
                n: vec![0xc1, 2, 3],
                e: vec![1, 0, 1]
            }
        );
        match &set.keys[1].material {
            KeyMaterial::P256 { point } => {
                assert_eq!(point.len(), 65);
                assert_eq!(point[0], 4);
            }
            other => panic!("{other:?}"),
        }
        assert!(KeySet::parse(b"nope").is_err());
        assert!(KeySet::parse(b"{\"issuer\":\"x\"}").is_err());
        assert_eq!(KeySet::parse(b"{\"keys\":[]}").unwrap().keys.len(), 0);
    }

    #[test]
    fn selection_matches_kid_kty_curve_and_the_keys_own_alg() {
        let mut pinned = rsa("pinned");
        pinned["alg"] = json!("RS512");
        let doc = json!({"keys": [rsa("r1"), ec("e1", "P-256", 32), pinned]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        let kids = |s: Selection<'_>| match s {
            Selection::Keys(k) => k.iter().map(|k| k.kid.clone().unwrap()).collect::<Vec<_>>(),
            other => panic!("{other:?}"),
        };
        assert_eq!(kids(set.select(Some("r1"), Alg::RS256)), ["r1"]);
        assert_eq!(kids(set.select(Some("r1"), Alg::PS256)), ["r1"]);
        assert_eq!(kids(set.select(Some("e1"), Alg::ES256)), ["e1"]);
        assert_eq!(set.select(Some("e1"), Alg::RS256), Selection::Unfit);
        assert_eq!(set.select(Some("e1"), Alg::ES384), Selection::Unfit);
        assert_eq!(set.select(Some("r1"), Alg::ES256), Selection::Unfit);
        assert_eq!(set.select(Some("pinned"), Alg::RS256), Selection::Unfit);
        assert_eq!(kids(set.select(Some("pinned"), Alg::RS512)), ["pinned"]);
        assert_eq!(set.select(Some("zzz"), Alg::RS256), Selection::UnknownKid);
        // No kid: every key that fits.
        assert_eq!(kids(set.select(None, Alg::RS256)), ["r1"]);
        assert_eq!(kids(set.select(None, Alg::RS512)), ["r1", "pinned"]);
        assert_eq!(set.select(None, Alg::ES384), Selection::Unfit);
    }
}
