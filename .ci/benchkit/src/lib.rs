//! What the helpers share: an RS512 token signer built the way src/tokens.rs signs (an RSA 2048
//! key generated and parsed once by aws-lc-rs, the JWT assembled by hand).
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{RsaKeyPair, RSA_PKCS1_SHA512};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

/// Claims of the size and shape of a GetOpenIdToken token; `i` makes each one different.
pub fn claims(i: u64) -> serde_json::Value {
    json!({
        "iss": "https://bench.example.test",
        "sub": format!("us-east-1:0190a1b2-c3d4-7e5f-8a9b-{i:012x}"),
        "aud": "us-east-1:11a86fa8-fc2c-46da-a38b-e46762e447ed",
        "amr": ["authenticated", "accounts.google.com", "accounts.google.com:us-east-1:x:user-1"],
        "https://aws.amazon.com/tags": {"principal_tags": {}},
        "iat": 1_780_000_000u64 + i,
        "exp": 1_780_000_600u64 + i,
    })
}

/// A freshly generated RSA 2048 key, parsed once, signing RS512 JWTs.
pub struct Rs512 {
    /// The key in PKCS#8 DER (for signers that take a PEM).
    pub pkcs8: Vec<u8>,
    pair: RsaKeyPair,
    rng: aws_lc_rs::rand::SystemRandom,
    head: String,
}

impl Rs512 {
    pub fn generate() -> Rs512 {
        let pair = aws_lc_rs::rsa::KeyPair::generate(KeySize::Rsa2048).expect("generate RSA 2048");
        let pkcs8 = pair.as_der().expect("PKCS#8").as_ref().to_vec();
        Rs512 {
            pair: RsaKeyPair::from_pkcs8(&pkcs8).expect("PKCS#8 key"),
            pkcs8,
            rng: aws_lc_rs::rand::SystemRandom::new(),
            head: URL_SAFE_NO_PAD
                .encode(br#"{"kid":"idpool-1-00000000","typ":"JWS","alg":"RS512"}"#),
        }
    }

    /// A signed token over `claims(i)`.
    pub fn token(&self, i: u64) -> String {
        let mut token = self.head.clone();
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(serde_json::to_vec(&claims(i)).unwrap(), &mut token);
        let mut sig = vec![0u8; self.pair.public_modulus_len()];
        self.pair
            .sign(&RSA_PKCS1_SHA512, &self.rng, token.as_bytes(), &mut sig)
            .expect("sign");
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&sig, &mut token);
        token
    }
}
