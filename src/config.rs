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
    /// More regions this server answers for, beside `region` (test environments serve every
    /// region from one endpoint, as moto and LocalStack do).
    #[serde(deserialize_with = "de_regions")]
    pub regions: Vec<String>,
    /// Account that owns pools created by keys without their own `account_id`.
    #[serde(deserialize_with = "de_account")]
    pub account_id: String,
    pub database: DatabaseConfig,
    pub admin: AdminConfig,
    pub security: SecurityConfig,
    pub tokens: TokensConfig,
    pub providers: ProvidersConfig,
    pub credentials: CredentialsConfig,
    pub seed: SeedConfig,
    pub backup: BackupConfig,
    pub server: ServerConfig,
    pub log: LogConfig,
    pub rate_limit: RateLimitConfig,
}

/// `[log]`: how log lines are written (to stderr; `RUST_LOG` picks the levels).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    pub format: LogFormat,
}

/// `text` for people, `json` (one object a line) for log collectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[backup]`: scheduled backups of the SQLite database into a folder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackupConfig {
    /// How often: `"90s"`, `"15m"`, `"1h"`, `"1d"`. None: no scheduled backups.
    #[serde(deserialize_with = "de_duration")]
    pub every: Option<std::time::Duration>,
    /// How many scheduled backups to keep; older ones are removed.
    pub keep: usize,
    /// Where they go; default: `backups/` beside the database file.
    pub dir: Option<PathBuf>,
}

impl Default for BackupConfig {
    fn default() -> Self {
        BackupConfig {
            every: None,
            keep: 24,
            dir: None,
        }
    }
}

/// `"90s"`, `"15m"`, `"1h"`, `"1d"`: a whole number and one unit.
pub fn parse_duration(s: &str) -> Option<std::time::Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let secs = match unit {
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        "d" => n.checked_mul(86_400)?,
        _ => return None,
    };
    Some(std::time::Duration::from_secs(secs))
}

fn de_duration<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<std::time::Duration>, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map(Some).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{s:?} is not a duration: use a whole number and s, m, h or d, like \"1h\""
        ))
    })
}

/// `[seed]`: declared pools applied at start-up (see `seed.rs` and the README).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SeedConfig {
    /// A TOML file of `[[pool]]` tables; relative paths are taken from the working directory.
    pub file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)),
            region: "us-east-1".to_string(),
            regions: Vec::new(),
            account_id: "000000000000".to_string(),
            database: DatabaseConfig::default(),
            admin: AdminConfig::default(),
            security: SecurityConfig::default(),
            tokens: TokensConfig::default(),
            providers: ProvidersConfig::default(),
            credentials: CredentialsConfig::default(),
            seed: SeedConfig::default(),
            backup: BackupConfig::default(),
            server: ServerConfig::default(),
            log: LogConfig::default(),
            rate_limit: RateLimitConfig::default(),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseConfig {
    /// The SQLite file; its folder is created when missing. The default engine.
    pub path: PathBuf,
    /// `postgres://user:password@host:port/db?sslmode=…`: PostgreSQL instead of the SQLite
    /// file, shared by every replica. Also `--database-url` and `IDPOOL_DATABASE_URL`.
    pub url: Option<Secret>,
    /// PostgreSQL: connections each replica keeps at most.
    pub pool_size: u32,
    /// PostgreSQL: how long one statement may run before it is cancelled (milliseconds).
    pub statement_timeout_ms: u64,
    /// PostgreSQL: how long opening a connection may take (milliseconds).
    pub connect_timeout_ms: u64,
    /// Whether the configuration file named `path` (so that a URL given elsewhere conflicts).
    #[serde(skip)]
    pub path_given: bool,
    /// PostgreSQL: how long start-up keeps retrying a database that does not answer, with
    /// backoff, before idpool gives up and exits 1 (seconds).
    pub start_timeout_secs: u64,
    /// `full`: a response is sent only once its change is on disk. `normal`: faster, but the
    /// last commits before a power loss may be lost.
    pub synchronous: Synchronous,
    /// How long a write waits for a lock that another process holds on the database file
    /// before it fails with InternalErrorException (milliseconds).
    pub busy_timeout_ms: u64,
    /// How long every write may fail, with no success in between, before idpool exits
    /// non-zero so that its supervisor restarts it (seconds).
    pub give_up_after_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            path: PathBuf::from("data/idpool.db"),
            url: None,
            path_given: false,
            pool_size: 16,
            statement_timeout_ms: 5_000,
            connect_timeout_ms: 5_000,
            start_timeout_secs: 60,
            synchronous: Synchronous::Full,
            busy_timeout_ms: 5_000,
            give_up_after_secs: 60,
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
    /// The public host name (with `:port` when not the scheme's default) that signed requests
    /// must carry in their signed `Host` header. `None`: any host.
    #[serde(deserialize_with = "de_opt_host")]
    pub host: Option<String>,
    pub keys: Vec<AdminKey>,
}

/// The access key id of the development key published in `config.example.toml`.
pub const DEV_ACCESS_KEY_ID: &str = "AKIDIDPOOLLOCALDEV";
/// Its secret, published too: anyone can sign with it.
pub const DEV_SECRET_ACCESS_KEY: &str = "idpool-local-development-secret-do-not-use-in-production";

/// `[security]`: acknowledgements for settings that are only safe on loopback.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Serve a non-loopback address even with the published development key, `trust`
    /// providers or `admin.allow_unsigned`. Without it such a configuration does not start.
    pub allow_insecure_public: bool,
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
            default: DefaultVerify::Reject,
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

/// `[server]`: connection limits and timeouts, so slow, stalled or idle clients cannot hold
/// the server. Times are whole seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// The longest a client may take to send one request, headers and body together.
    pub request_timeout: u64,
    /// After the first seconds of a request (`request_timeout` or 5, whichever is less), its
    /// bytes must have arrived at least this fast on average (bytes per second); 0 turns it off.
    /// A new connection's first request is judged from the moment it was accepted.
    pub min_request_rate: u64,
    /// A keep-alive connection with no request for this long is closed.
    pub idle_timeout: u64,
    /// Request body bytes held in memory at once, all connections together.
    pub max_buffered_body_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: 10_000,
            request_timeout: 30,
            min_request_rate: 256,
            idle_timeout: 60,
            max_buffered_body_bytes: 64 << 20,
        }
    }
}

impl ServerConfig {
    fn check(&self) -> Result<(), String> {
        if self.max_connections == 0 || self.request_timeout == 0 || self.idle_timeout == 0 {
            return Err(
                "server: max_connections, request_timeout and idle_timeout must be at least 1"
                    .to_string(),
            );
        }
        if self.max_connections > 1 << 24
            || self.request_timeout > 86_400
            || self.idle_timeout > 86_400
        {
            return Err(
                "server: max_connections is at most 16777216, request_timeout and idle_timeout at most 86400 seconds"
                    .to_string(),
            );
        }
        if self.max_buffered_body_bytes < crate::service::MAX_BODY
            || self.max_buffered_body_bytes > 1 << 40
        {
            return Err(format!(
                "server: max_buffered_body_bytes must be at least {} (one request's largest body) and at most 2^40",
                crate::service::MAX_BODY
            ));
        }
        Ok(())
    }
}

fn de_regions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    for r in &list {
        if !is_region(r) {
            return Err(de::Error::custom(format!(
                "{r:?} is not a region: a region is lowercase letters, digits and '-', like \"us-east-1\""
            )));
        }
    }
    Ok(list)
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
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

fn de_opt_host<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let ok = !s.is_empty()
        && s.len() <= 255
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]_".contains(&b));
    if ok {
        Ok(Some(s))
    } else {
        Err(de::Error::custom(
            "a host name as clients send it in the Host header, with :port when not the default, like \"identity.example.com\" or \"10.0.0.5:4666\" (no scheme or path)",
        ))
    }
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

/// The one-line error for a configuration that names both engines.
pub const BOTH_ENGINES: &str = "database: set either path (SQLite) or url (PostgreSQL), not both";

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
        let mut path_given = false;
        if let Ok(toml::Value::Table(t)) = toml::from_str::<toml::Value>(text) {
            if let Some(toml::Value::Table(db)) = t.get("database") {
                path_given = db.contains_key("path");
                if path_given && db.contains_key("url") {
                    return Err(ConfigError::Semantic {
                        path: origin.to_string(),
                        message: BOTH_ENGINES.to_string(),
                    });
                }
            }
        }
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
        let mut config = config;
        config.database.path_given = path_given;
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
        self.server.check()?;
        Ok(())
    }

    /// Refuses settings that are only safe while nothing but this machine can connect: the
    /// published development key, `trust` providers and `admin.allow_unsigned`, on a listen
    /// address that is not loopback — unless `[security] allow_insecure_public` says so. The
    /// error is one line naming every key to change.
    /// Every region served: `region` first, then the others of `regions`.
    pub fn served_regions(&self) -> Vec<String> {
        let mut out = vec![self.region.clone()];
        for r in &self.regions {
            if !out.contains(r) {
                out.push(r.clone());
            }
        }
        out
    }

    /// Whether this server answers for `region`.
    pub fn serves(&self, region: &str) -> bool {
        self.region == region || self.regions.iter().any(|r| r == region)
    }

    pub fn check_exposure(&self) -> Result<(), String> {
        let risks = self.exposure_risks();
        if risks.is_empty() || self.security.allow_insecure_public {
            return Ok(());
        }
        Err(format!(
            "listen = \"{}\" is not a loopback address, and these settings are safe on loopback only: {}. Change them, or set [security] allow_insecure_public = true to serve anyway",
            self.listen,
            risks.join("; ")
        ))
    }

    /// The loopback-only settings in use, each with the change that removes it; none when
    /// `listen` is a loopback address.
    pub fn exposure_risks(&self) -> Vec<String> {
        let mut risks = Vec::new();
        if self.listen.ip().to_canonical().is_loopback() {
            return risks;
        }
        for k in &self.admin.keys {
            if k.access_key_id == DEV_ACCESS_KEY_ID
                || k.secret_access_key.expose() == DEV_SECRET_ACCESS_KEY
            {
                risks.push(format!(
                    "[[admin.keys]] access_key_id = \"{}\" is the development key published in config.example.toml (replace it with a key of your own)",
                    k.access_key_id
                ));
            }
        }
        if self.admin.allow_unsigned {
            risks.push("[admin] allow_unsigned = true (set it to false)".to_string());
        }
        if self.providers.default == DefaultVerify::Trust {
            risks.push("[providers] default = \"trust\" (set it to \"reject\")".to_string());
        }
        for (name, p) in &self.providers.named {
            if p.verify == VerifyMode::Trust {
                risks.push(format!(
                    "[providers.\"{name}\"] verify = \"trust\" (use \"oidc\" or \"introspect\")"
                ));
            }
        }
        risks
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
    #[test]
    fn durations_take_one_whole_number_and_a_unit() {
        use std::time::Duration;
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Some(Duration::from_secs(172_800)));
        for bad in [
            "",
            "h",
            "0h",
            "1.5h",
            "1 h",
            "1w",
            "-1h",
            "99999999999999999999d",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn empty_file_is_the_embedded_default() {
        let c = Config::parse("", "x.toml").unwrap();
        assert_eq!(c.listen, SocketAddr::from(([127, 0, 0, 1], DEFAULT_PORT)));
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.database.synchronous, Synchronous::Full);
        assert!(!c.admin.allow_unsigned);
        assert_eq!(c.providers.default, DefaultVerify::Reject);
        assert_eq!(c.admin.host, None);
        assert!(!c.security.allow_insecure_public);
        assert_eq!(c.credentials.source, CredentialsSource::Local);
        assert_eq!(c.server.max_connections, 10_000);
        assert_eq!(c.server.request_timeout, 30);
        assert_eq!(c.server.min_request_rate, 256);
        assert_eq!(c.server.idle_timeout, 60);
        assert_eq!(c.server.max_buffered_body_bytes, 64 << 20);
    }

    #[test]
    fn the_example_config_parses() {
        let text = include_str!("../config.example.toml");
        let c = Config::parse(text, "config.example.toml").unwrap();
        assert!(!c.admin.keys.is_empty(), "the example ships a local key");
    }

    #[test]
    fn the_published_development_key_is_the_one_the_example_ships() {
        let text = include_str!("../config.example.toml");
        let c = Config::parse(text, "config.example.toml").unwrap();
        let k = &c.admin.keys[0];
        assert_eq!(k.access_key_id, DEV_ACCESS_KEY_ID);
        assert_eq!(k.secret_access_key.expose(), DEV_SECRET_ACCESS_KEY);
        // Local development keeps `trust`, and serves loopback only, so it starts.
        assert_eq!(c.providers.default, DefaultVerify::Trust);
        assert!(!c.security.allow_insecure_public);
        assert_eq!(c.check_exposure(), Ok(()));
    }

    fn exposed(extra: &str) -> Result<(), String> {
        Config::parse(&format!("listen = \"0.0.0.0:4666\"\n{extra}"), "t.toml")
            .unwrap()
            .check_exposure()
    }

    #[test]
    fn loopback_only_settings_are_refused_on_other_addresses() {
        let example = include_str!("../config.example.toml")
            .replace("listen = \"127.0.0.1:4666\"", "listen = \"0.0.0.0:4666\"");
        let err = Config::parse(&example, "config.example.toml")
            .unwrap()
            .check_exposure()
            .unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(err.contains("listen = \"0.0.0.0:4666\""), "{err}");
        assert!(
            err.contains("access_key_id = \"AKIDIDPOOLLOCALDEV\""),
            "{err}"
        );
        assert!(err.contains("[providers] default = \"trust\""), "{err}");
        assert!(
            err.contains("[security] allow_insecure_public = true"),
            "{err}"
        );
        assert!(!err.contains(DEV_SECRET_ACCESS_KEY), "{err}");

        // The secret alone, under another id, is still the published key.
        let renamed = format!(
            "[[admin.keys]]\naccess_key_id = \"MINE\"\nsecret_access_key = \"{DEV_SECRET_ACCESS_KEY}\""
        );
        assert!(exposed(&renamed).unwrap_err().contains("\"MINE\""));
        let err = exposed("[admin]\nallow_unsigned = true").unwrap_err();
        assert!(err.contains("[admin] allow_unsigned = true"), "{err}");
        let err = exposed("[providers]\ndefault = \"trust\"").unwrap_err();
        assert!(err.contains("[providers] default = \"trust\""), "{err}");
        let err = exposed("[providers.\"x.example\"]\nverify = \"trust\"").unwrap_err();
        assert!(
            err.contains("[providers.\"x.example\"] verify = \"trust\""),
            "{err}"
        );
        assert!(exposed(
            "[admin]\nallow_unsigned = true\n[security]\nallow_insecure_public = true"
        )
        .is_ok());
        // The built-in defaults, and real keys, serve any address.
        assert_eq!(exposed(""), Ok(()));
        assert_eq!(
            exposed("[[admin.keys]]\naccess_key_id = \"A\"\nsecret_access_key = \"s\""),
            Ok(())
        );
        for loopback in [
            "127.0.0.1:1",
            "127.8.9.10:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            let c = Config::parse(
                &format!("listen = \"{loopback}\"\n[admin]\nallow_unsigned = true"),
                "t.toml",
            )
            .unwrap();
            assert_eq!(c.check_exposure(), Ok(()), "{loopback}");
        }
        for public in ["[::]:1", "10.0.0.5:1", "[::ffff:10.0.0.5]:1"] {
            let c = Config::parse(
                &format!("listen = \"{public}\"\n[admin]\nallow_unsigned = true"),
                "t.toml",
            )
            .unwrap();
            assert!(c.check_exposure().is_err(), "{public}");
        }
    }

    #[test]
    fn admin_host_is_a_bare_host_name() {
        for good in [
            "identity.example.com",
            "10.0.0.5:4666",
            "[::1]:4666",
            "Idp.Example.COM",
        ] {
            let c = Config::parse(&format!("[admin]\nhost = \"{good}\""), "t.toml").unwrap();
            assert_eq!(c.admin.host.as_deref(), Some(good));
        }
        for bad in [
            "",
            "https://identity.example.com",
            "identity.example.com/",
            "a b",
            "u@h",
        ] {
            let err = Config::parse(&format!("[admin]\nhost = \"{bad}\""), "t.toml")
                .unwrap_err()
                .to_string();
            assert!(err.contains("admin.host"), "{bad}: {err}");
        }
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
            "[server]\nrequest_timeout = 0",
            "[server]\nmax_connections = 0",
            "[server]\nidle_timeout = -1",
            "[server]\nmax_buffered_body_bytes = 1000",
            "[server]\nslowloris = true",
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
