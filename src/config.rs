//! Configuration: the TOML file's schema, its defaults, and the one-line errors a broken file gets.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The port the embedded default listens on (loopback only).
pub const DEFAULT_PORT: u16 = 4566 + 100; // 4666: clear of LocalStack's 4566 and moto's 5000

/// The whole configuration. Every key is optional; unknown keys are an error, so a typo never
/// silently falls back to a default.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to accept connections on.
    pub listen: SocketAddr,
    /// The region this server serves: the prefix of every new pool and identity id.
    #[serde(deserialize_with = "de_region")]
    pub region: String,
    /// Account that owns pools created by keys without their own `account_id`.
    #[serde(deserialize_with = "de_account")]
    pub account_id: String,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub tokens: TokensConfig,
    pub providers: ProvidersConfig,
    pub credentials: CredentialsConfig,
    pub rate_limit: RateLimitConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            region: "us-east-1".to_string(),
            account_id: "000000000000".to_string(),
            database: DatabaseConfig::default(),
            admin: AdminConfig::default(),
            tokens: TokensConfig::default(),
            providers: ProvidersConfig::default(),
            credentials: CredentialsConfig::default(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// The SQLite file; its folder is created when missing.
    pub path: PathBuf,
    /// `full`: a response is sent only once its change is on disk. `normal`: faster, but the
    /// last commits before a power loss may be lost.
    pub synchronous: Synchronous,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: PathBuf::from("data/idpool.db"),
            synchronous: Synchronous::Full,
        }
    }
}

/// SQLite's `synchronous` setting for the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    Full,
    Normal,
}

/// `[admin]`: who may call the 19 signed operations.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Accept admin operations without a valid signature. For throwaway test environments only.
    pub allow_unsigned: bool,
    pub keys: Vec<AdminKey>,
}

/// One `[[admin.keys]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminKey {
    #[serde(deserialize_with = "de_nonempty")]
    pub access_key_id: String,
    pub secret_access_key: Secret,
    /// The account this key acts for; defaults to the server's `account_id`.
    #[serde(default, deserialize_with = "de_opt_account")]
    pub account_id: Option<String>,
}

/// A secret string whose Debug and Display print `***`, so it never reaches a log.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for the one place that needs it (signature verification).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// `[tokens]`: OpenID token issuance.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokensConfig {
    /// The `iss` of issued tokens; default `http://<listen>`.
    pub issuer: Option<String>,
}

/// How a provider's login tokens are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VerifyMode {
    /// A JWT checked against the provider's JWKS.
    Oidc,
    /// An opaque token checked at an OAuth 2.0 introspection endpoint (RFC 7662).
    Introspect,
    /// The token itself is the user id. For test environments.
    Trust,
}

/// What happens to providers that have no table of their own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DefaultVerify {
    Trust,
    Reject,
}

/// One `[providers."name"]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub verify: VerifyMode,
    /// oidc: a JWKS URL (http or https) or a file path.
    #[serde(default)]
    pub jwks: Option<String>,
    /// oidc: client ids accepted besides those the pool lists.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// introspect: the endpoint URL.
    #[serde(default)]
    pub url: Option<String>,
}

/// `[providers]`: `default` plus one table per provider name.
#[derive(Debug, Clone)]
pub struct ProvidersConfig {
    pub default: DefaultVerify,
    pub named: BTreeMap<String, ProviderConfig>,
}

impl Default for ProvidersConfig {
    fn default() -> Self {
        ProvidersConfig {
            default: DefaultVerify::Trust,
            named: BTreeMap::new(),
        }
    }
}

impl<'de> Deserialize<'de> for ProvidersConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ProvidersConfig;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a table of provider settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = ProvidersConfig::default();
                while let Some(key) = map.next_key::<String>()? {
                    if key == "default" {
                        out.default = map.next_value()?;
                    } else {
                        let p: ProviderConfig = map.next_value()?;
                        check_provider(&key, &p).map_err(de::Error::custom)?;
                        out.named.insert(key, p);
                    }
                }
                Ok(out)
            }
        }
        d.deserialize_map(V)
    }
}

fn check_provider(name: &str, p: &ProviderConfig) -> Result<(), String> {
    match p.verify {
        VerifyMode::Introspect if p.url.is_none() => Err(format!(
            "provider \"{name}\" has verify = \"introspect\" but no url"
        )),
        VerifyMode::Oidc | VerifyMode::Introspect | VerifyMode::Trust => Ok(()),
    }
}

/// Where GetCredentialsForIdentity's credentials come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CredentialsSource {
    /// Well-formed credentials minted here; accepted by nothing but test doubles.
    Local,
    /// AssumeRoleWithWebIdentity on `sts_endpoint`.
    Sts,
}

/// `[credentials]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CredentialsConfig {
    pub source: CredentialsSource,
    pub sts_endpoint: Option<String>,
}

impl Default for CredentialsConfig {
    fn default() -> Self {
        CredentialsConfig {
            source: CredentialsSource::Local,
            sts_endpoint: None,
        }
    }
}

/// `[rate_limit]`: per client address limits on the public operations (see `rate_limit`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Requests per second one client address may send to GetId, GetOpenIdToken,
    /// GetCredentialsForIdentity and UnlinkIdentity; 0 (the default) limits nothing.
    #[serde(deserialize_with = "de_rate")]
    pub public_per_second: f64,
    /// Requests a client may send at once before the rate applies; 0 (the default): the rate,
    /// at least 1.
    pub public_burst: u32,
}

fn de_rate<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let r = f64::deserialize(d)?;
    if r.is_finite() && r >= 0.0 {
        Ok(r)
    } else {
        Err(de::Error::custom(
            "a rate is a number of requests per second, 0 or more",
        ))
    }
}

fn de_region<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(s)
    } else {
        Err(de::Error::custom(
            "a region is lowercase letters, digits and '-', like \"us-east-1\"",
        ))
    }
}

fn check_account(s: &str) -> bool {
    !s.is_empty() && s.len() <= 15 && s.bytes().all(|b| b.is_ascii_digit())
}

fn de_account<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if check_account(&s) {
        Ok(s)
    } else {
        Err(de::Error::custom("an account id is 1 to 15 digits"))
    }
}

fn de_opt_account<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    de_account(d).map(Some)
}

fn de_nonempty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.is_empty() {
        Err(de::Error::custom("must not be empty"))
    } else {
        Ok(s)
    }
}

/// A configuration file that could not be used, said in one line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: line {line}: key `{key}`: {message}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
    #[error("{path}: {message}")]
    Semantic { path: String, message: String },
}

impl Config {
    /// Reads and checks a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Config::parse(&text, &path.display().to_string())
    }

    /// Parses configuration text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, key) = locate(text, e.span());
            ConfigError::Invalid {
                path: origin.to_string(),
                line,
                key,
                message: e.message().replace('\n', " "),
            }
        })?;
        config.check().map_err(|message| ConfigError::Semantic {
            path: origin.to_string(),
            message,
        })?;
        Ok(config)
    }

    /// Checks that span several keys.
    fn check(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for k in &self.admin.keys {
            if !seen.insert(k.access_key_id.as_str()) {
                return Err(format!(
                    "admin.keys: access_key_id \"{}\" is listed twice",
                    k.access_key_id
                ));
            }
        }
        if self.credentials.source == CredentialsSource::Sts
            && self.credentials.sts_endpoint.is_none()
        {
            return Err("credentials: source = \"sts\" needs sts_endpoint".to_string());
        }
        Ok(())
    }

    /// The `iss` of tokens this server issues.
    pub fn issuer(&self) -> String {
        match &self.tokens.issuer {
            Some(i) => i.trim_end_matches('/').to_string(),
            None => format!("http://{}", self.listen),
        }
    }
}

/// Finds the line and the key an error's span points into.
fn locate(text: &str, span: Option<std::ops::Range<usize>>) -> (usize, String) {
    let start = span.map(|s| s.start).unwrap_or(0).min(text.len());
    let line_no = text[..start].matches('\n').count() + 1;
    let line_start = text[..start].rfind('\n').map(|i| i + 1).unwrap_or(0);
    let line_end = text[start..]
        .find('\n')
        .map(|i| start + i)
        .unwrap_or(text.len());
    let line = text[line_start..line_end].trim();
    let key = if let Some((k, _)) = line.split_once('=') {
        k.trim().trim_matches('"').to_string()
    } else {
        line.trim_matches(|c| c == '[' || c == ']')
            .trim()
            .to_string()
    };
    // The innermost table the line belongs to gives the key its full path.
    let table = text[..line_start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let full = match table {
        Some(t) if !line.starts_with('[') && !key.is_empty() => format!("{t}.{key}"),
        _ => key,
    };
    (line_no, full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_is_the_embedded_default() {
        let c = Config::parse("", "x.toml").unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.database.synchronous, Synchronous::Full);
        assert!(!c.admin.allow_unsigned);
        assert_eq!(c.providers.default, DefaultVerify::Trust);
        assert_eq!(c.credentials.source, CredentialsSource::Local);
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../config.example.toml");
        let c = Config::parse(text, "config.example.toml").unwrap();
        assert!(!c.admin.keys.is_empty(), "the example ships a local key");
    }

    #[test]
    fn unknown_keys_name_file_line_and_key() {
        let err = Config::parse(
            "region = \"eu-west-1\"\n\n[database]\npth = \"x\"\n",
            "my.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("my.toml: line 4: key `database.pth`"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }

    #[test]
    fn bad_values_are_refused() {
        for bad in [
            "listen = \"nope\"",
            "region = \"US East\"",
            "account_id = \"12ab\"",
            "[database]\nsynchronous = \"sometimes\"",
            "[providers]\ndefault = \"maybe\"",
            "[providers.\"x.example\"]\nverify = \"oidc\"\nbogus = 1",
            "[providers.\"x.example\"]\nverify = \"introspect\"",
            "[credentials]\nsource = \"sts\"",
            "[rate_limit]\npublic_per_second = -1",
            "[[admin.keys]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\"\n[[admin.keys]]\naccess_key_id = \"A\"\nsecret_access_key = \"t\"",
        ] {
            assert!(Config::parse(bad, "t.toml").is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn secrets_never_print() {
        let c = Config::parse(
            "[[admin.keys]]\naccess_key_id = \"AKID\"\nsecret_access_key = \"hunter2\"\n",
            "t.toml",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }

    #[test]
    fn issuer_defaults_to_the_listen_address() {
        let c = Config::parse("listen = \"127.0.0.1:9000\"", "t").unwrap();
        assert_eq!(c.issuer(), "http://127.0.0.1:9000");
    }
}
