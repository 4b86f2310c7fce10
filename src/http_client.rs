//! The one outbound HTTP(S) client: JWKS and discovery fetches, token introspection, STS.
//!
//! Every outbound call is bounded: a connect timeout, an overall timeout (headers and body, and
//! any wait for a free slot), a response-size cap, at most [`MAX_PER_HOST`] calls to one host at
//! once, and no redirects (a 3xx comes back to the caller as a status). Errors say what went
//! wrong and where, never what was sent: request bodies carry tokens.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::{ConfigBuilderExt, HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::protocol::ApiError;

/// Limits of one outbound call. `Default` is 5 s to connect, 10 s overall, 1 MiB of body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallOptions {
    /// Time allowed for the TCP connect (the TLS handshake counts against `total_timeout`).
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange: connect, request, response headers and body.
    pub total_timeout: Duration,
    /// The largest response body accepted, in bytes.
    pub max_body: usize,
}

impl Default for CallOptions {
    fn default() -> Self {
        CallOptions {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(10),
            max_body: 1024 * 1024,
        }
    }
}

/// Why an outbound call failed. Display names the failure and, at most, the scheme, host and
/// path of the URL — never a query string, a header or a body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The URL is not an absolute http(s) URL.
    InvalidUrl(String),
    /// The TLS configuration could not be built (a broken crypto provider).
    Tls(String),
    /// The connection could not be made or broke before a response came.
    Connect(String),
    /// The call took longer than its overall timeout.
    Timeout(Duration),
    /// The response body is larger than the cap.
    TooLarge(usize),
    /// Any other transport failure (malformed response, reset while reading the body).
    Transport(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::InvalidUrl(why) => write!(f, "invalid URL: {why}"),
            HttpError::Tls(why) => write!(f, "TLS setup failed: {why}"),
            HttpError::Connect(why) => write!(f, "connection failed: {why}"),
            HttpError::Timeout(d) => write!(f, "no complete response within {}s", d.as_secs()),
            HttpError::TooLarge(max) => write!(f, "response larger than {max} bytes"),
            HttpError::Transport(why) => write!(f, "transport error: {why}"),
        }
    }
}

impl std::error::Error for HttpError {}

type Inner = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// Calls to one host (scheme, host and port) at once, whichever provider or STS it serves; more
/// wait for a slot within their overall timeout.
pub const MAX_PER_HOST: usize = 16;

type Slots = Arc<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>>;

/// A shared, pooled HTTP/1.1 client for http and https URLs (Mozilla's roots via webpki-roots).
/// Cheap to clone: clones share the connection pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Inner,
    tls: Arc<rustls::ClientConfig>,
    defaults: CallOptions,
    /// One semaphore per host called (hosts come from the configuration and discovery).
    slots: Slots,
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("defaults", &self.defaults)
            .finish_non_exhaustive()
    }
}

impl HttpClient {
    /// A client with the default limits. Fails only if the TLS provider cannot be set up.
    pub fn new() -> Result<HttpClient, HttpError> {
        Self::with_defaults(CallOptions::default())
    }

    /// A client whose `get` and `post_form` use `defaults`.
    pub fn with_defaults(defaults: CallOptions) -> Result<HttpClient, HttpError> {
        // The provider is named explicitly: rustls's process default panics when more than one
        // provider is compiled in.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HttpError::Tls(e.to_string()))?
            .with_webpki_roots()
            .with_no_client_auth();
        let tls = Arc::new(tls);
        Ok(HttpClient {
            inner: build(&tls, defaults.connect_timeout),
            tls,
            defaults,
            slots: Slots::default(),
        })
    }

    /// The limits `get` and `post_form` apply.
    pub fn defaults(&self) -> CallOptions {
        self.defaults
    }

    /// GET `url`; any status comes back as `(status, body)`.
    pub async fn get(&self, url: &str) -> Result<(u16, Bytes), HttpError> {
        self.get_with(url, &self.defaults).await
    }

    /// GET with per-call limits.
    pub async fn get_with(&self, url: &str, opts: &CallOptions) -> Result<(u16, Bytes), HttpError> {
        let req = http::Request::get(parse_url(url)?)
            .header(http::header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| HttpError::InvalidUrl(e.to_string()))?;
        self.send(req, opts).await
    }

    /// POST `form` as `application/x-www-form-urlencoded` with extra `headers`; any status
    /// comes back as `(status, body)`.
    pub async fn post_form(
        &self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Result<(u16, Bytes), HttpError> {
        self.post_form_with(url, form, headers, &self.defaults)
            .await
    }

    /// `post_form` with per-call limits.
    pub async fn post_form_with(
        &self,
        url: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
        opts: &CallOptions,
    ) -> Result<(u16, Bytes), HttpError> {
        let mut req = http::Request::post(parse_url(url)?)
            .header(
                http::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .header(http::header::ACCEPT, "application/json");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        // The builder's error would describe a header; say which without echoing its value.
        let req = req
            .body(Full::new(Bytes::from(form_urlencode(form))))
            .map_err(|_| HttpError::InvalidUrl("a request header is malformed".to_string()))?;
        self.send(req, opts).await
    }

    async fn send(
        &self,
        req: http::Request<Full<Bytes>>,
        opts: &CallOptions,
    ) -> Result<(u16, Bytes), HttpError> {
        // The pooled client carries the default connect timeout; another one gets a client of
        // its own for this call (same TLS configuration, no shared pool).
        let client = if opts.connect_timeout == self.defaults.connect_timeout {
            self.inner.clone()
        } else {
            build(&self.tls, opts.connect_timeout)
        };
        let max = opts.max_body;
        let slots = self.host_slots(req.uri());
        let exchange = async move {
            let _slot = slots.acquire_owned().await.map_err(|_| {
                HttpError::Transport("the outbound call slots are closed".to_string())
            })?;
            let resp = client.request(req).await.map_err(|e| {
                if e.is_connect() {
                    HttpError::Connect(chain(&e))
                } else {
                    HttpError::Transport(chain(&e))
                }
            })?;
            let status = resp.status().as_u16();
            let declared = resp
                .headers()
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok());
            if declared.is_some_and(|n| n > max as u64) {
                return Err(HttpError::TooLarge(max));
            }
            let body = Limited::new(resp.into_body(), max)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        HttpError::TooLarge(max)
                    } else {
                        HttpError::Transport(e.to_string())
                    }
                })?
                .to_bytes();
            Ok((status, body))
        };
        tokio::time::timeout(opts.total_timeout, exchange)
            .await
            .map_err(|_| HttpError::Timeout(opts.total_timeout))?
    }
}

impl HttpClient {
    fn host_slots(&self, uri: &http::Uri) -> Arc<tokio::sync::Semaphore> {
        let host = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or(""),
            uri.authority().map(|a| a.as_str()).unwrap_or("")
        );
        let fresh = || Arc::new(tokio::sync::Semaphore::new(MAX_PER_HOST));
        match self.slots.lock() {
            Ok(mut m) => m.entry(host).or_insert_with(fresh).clone(),
            Err(poisoned) => poisoned
                .into_inner()
                .entry(host)
                .or_insert_with(fresh)
                .clone(),
        }
    }
}

fn build(tls: &Arc<rustls::ClientConfig>, connect_timeout: Duration) -> Inner {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(Some(connect_timeout));
    http.set_nodelay(true);
    let https = HttpsConnectorBuilder::new()
        .with_tls_config((**tls).clone())
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(30))
        .build(https)
}

/// Parses an absolute http(s) URL with a host.
fn parse_url(url: &str) -> Result<http::Uri, HttpError> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| HttpError::InvalidUrl("not an absolute http(s) URL".to_string()))?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http") | Some("https"));
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(HttpError::InvalidUrl(
            "not an absolute http(s) URL".to_string(),
        ));
    }
    Ok(uri)
}

/// Whether `url` is an absolute http(s) URL this client can call.
pub fn is_valid_url(url: &str) -> bool {
    parse_url(url).is_ok()
}

/// What a client is told when an outside service (a login provider, STS) cannot be used: a
/// fixed `ExternalServiceException` naming the service, nothing more. The detail (DNS, TCP,
/// TLS, timeout, status) goes to the log, escaped, and never to the client.
pub fn external_service_error(service: &str, detail: &dyn fmt::Display) -> ApiError {
    tracing::warn!(service = ?service, error = ?detail.to_string(), "outside service unavailable");
    ApiError::ExternalService(format!("{service} is unavailable. Try again later."))
}

/// The error and its causes, one line (hyper's own Display says only "client error (Connect)").
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// `application/x-www-form-urlencoded` serialisation (WHATWG URL standard): alphanumerics and
/// `*-._` stay, space becomes `+`, every other byte of the UTF-8 is `%XX`.
pub fn form_urlencode(form: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in form.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode_component(k, &mut out);
        out.push('=');
        encode_component(v, &mut out);
    }
    out
}

fn encode_component(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            _ => {
                out.push('%');
                out.push(char::from(HEX[usize::from(b >> 4)]));
                out.push(char::from(HEX[usize::from(b & 0x0f)]));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_encoding_escapes_everything_but_the_safe_set() {
        assert_eq!(form_urlencode(&[]), "");
        assert_eq!(form_urlencode(&[("token", "abc")]), "token=abc");
        assert_eq!(
            form_urlencode(&[("a b", "x+y&z=1"), ("k", "é/~!*-._")]),
            "a+b=x%2By%26z%3D1&k=%C3%A9%2F%7E%21*-._"
        );
        assert_eq!(
            form_urlencode(&[
                ("Action", "AssumeRoleWithWebIdentity"),
                ("Version", "2011-06-15")
            ]),
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
        );
    }

    #[test]
    fn only_absolute_http_urls_are_accepted() {
        assert!(is_valid_url("https://example.com/.well-known/jwks.json"));
        assert!(is_valid_url("http://127.0.0.1:8080/x"));
        for bad in [
            "",
            "/relative",
            "ftp://example.com/",
            "example.com",
            "https://",
        ] {
            assert!(!is_valid_url(bad), "{bad} accepted");
        }
    }

    #[test]
    fn clients_get_a_fixed_message_whatever_the_cause() {
        let causes = [
            HttpError::Connect("tcp connect error: Connection refused (os error 111)".into()),
            HttpError::Tls("invalid peer certificate: UnknownIssuer".into()),
            HttpError::Timeout(Duration::from_secs(10)),
        ];
        for cause in causes {
            assert_eq!(
                external_service_error("STS", &cause),
                ApiError::ExternalService("STS is unavailable. Try again later.".into())
            );
        }
    }

    #[test]
    fn errors_never_show_what_was_sent() {
        let e = HttpError::Timeout(Duration::from_secs(10));
        assert_eq!(e.to_string(), "no complete response within 10s");
    }

    #[tokio::test]
    async fn refused_connections_and_timeouts_are_errors() {
        let client = HttpClient::new().unwrap();
        // A port that was just free: nothing listens there.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let err = client
            .post_form(
                &format!("http://127.0.0.1:{port}/introspect"),
                &[("token", "secret-token-value")],
                &[],
            )
            .await
            .unwrap_err();
        assert!(matches!(err, HttpError::Connect(_)), "{err:?}");
        assert!(!err.to_string().contains("secret-token-value"));

        // A listener that accepts and never answers: the overall timeout fires.
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = silent.accept().await {
                held.push(s);
            }
        });
        let opts = CallOptions {
            total_timeout: Duration::from_millis(300),
            ..CallOptions::default()
        };
        let err = client
            .get_with(&format!("http://{addr}/"), &opts)
            .await
            .unwrap_err();
        assert_eq!(err, HttpError::Timeout(Duration::from_millis(300)));
        hold.abort();
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for _ in 0..2 {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = "x".repeat(2000);
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        let client = HttpClient::new().unwrap();
        let small = CallOptions {
            max_body: 100,
            ..CallOptions::default()
        };
        let err = client
            .get_with(&format!("http://{addr}/"), &small)
            .await
            .unwrap_err();
        assert_eq!(err, HttpError::TooLarge(100));
        let (status, body) = client.get(&format!("http://{addr}/")).await.unwrap();
        assert_eq!((status, body.len()), (200, 2000));
        server.await.unwrap();
    }
}
