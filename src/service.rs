//! One HTTP request: request id, routing, body limit, authentication, decoding, validation,
//! dispatch — and THE place where every outcome becomes a wire response.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::{Body as _, Incoming};
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;
use tokio::sync::OwnedSemaphorePermit;

use crate::connection::ConnState;
use crate::protocol::{ApiError, Operation};
use crate::App;

/// The largest request body accepted: ten 50,000-character tokens with room to spare.
pub const MAX_BODY: usize = 1 << 20;
/// How much of an oversized body is read and discarded (never kept) so the client still gets
/// its answer; past it, or past the request's deadline, the connection is closed instead.
const DRAIN_LIMIT: usize = 16 << 20;
/// How much of the body of a request answered without it (an unknown operation, say) is read
/// and discarded to keep the connection: any body a valid request could have. A larger one
/// gets `Connection: close`.
pub const DISCARD_LIMIT: usize = MAX_BODY;

const JSON_TYPE: &str = "application/x-amz-json-1.1";
/// Looked up by a parsed name: a `&str` name is parsed again on every lookup.
const X_AMZ_TARGET: HeaderName = HeaderName::from_static("x-amz-target");
const EXPOSE_HEADERS: &str = "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date";
const ALLOW_HEADERS: &str = "content-type, x-amz-target, x-amz-user-agent, amz-sdk-invocation-id, \
     amz-sdk-request, authorization, x-amz-date, x-amz-security-token, x-amz-content-sha256";

/// The hyper service: never fails, so a connection is never dropped for a request's sake.
///
/// Every response leaves the connection usable for the next request, or says
/// `Connection: close`: a body not read by the time the answer is ready is read and discarded
/// (up to [`DISCARD_LIMIT`], within the request's deadline) before answering.
pub async fn handle(
    app: Arc<App>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // Encoded straight into a buffer: `to_string` goes through the formatting machinery.
    let request_id = uuid::Uuid::new_v4()
        .hyphenated()
        .encode_lower(&mut uuid::Uuid::encode_buffer())
        .to_owned();
    // Every line logged for this request carries its id (and, for an admin call, the
    // caller's account once its signature is checked).
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        account = tracing::field::Empty
    );
    tracing::Instrument::instrument(respond(app, conn, req, request_id), span).await
}

/// What the request was, for the access line and the metrics.
struct Outcome {
    /// The operation, when the request named one.
    operation: Option<Operation>,
    op: &'static str,
    outcome: &'static str,
    /// The account of a signed admin caller.
    account: Option<String>,
}

async fn respond(
    app: Arc<App>,
    conn: Arc<ConnState>,
    req: Request<Incoming>,
    request_id: String,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = std::time::Instant::now();
    conn.request_started();
    let (parts, body) = req.into_parts();
    let mut seen = Outcome {
        operation: None,
        op: "-",
        outcome: "ok",
        account: None,
    };
    let mut body = ReqBody {
        inner: body,
        ended: false,
        polled: false,
    };
    let mut api = false;
    let mut resp = if parts.method == Method::OPTIONS {
        preflight(&parts)
    } else if let Some(r) = well_known(&app, &parts) {
        r
    } else if let Some(r) = crate::health::respond(&app, &parts.method, parts.uri.path()).await {
        r
    } else if parts.method == Method::GET && parts.uri.path() == "/metrics" {
        metrics_page()
    } else {
        api = true;
        let (op, outcome) = route(&app, &conn, &parts, &mut body, &mut seen.account).await;
        seen.operation = op;
        seen.op = op.map(Operation::name).unwrap_or("-");
        match outcome {
            Ok(body) => ok(body),
            Err(Failure::Api(e)) => {
                seen.outcome = e.type_name();
                log_error(op, &e, &request_id);
                error(&e)
            }
            Err(Failure::Timeout) => {
                seen.outcome = "RequestTimeoutException";
                tracing::info!(op = seen.op, request_id, "request not received in time");
                timed_out(conn.limits().request_timeout_secs())
            }
        }
    };
    if api {
        let elapsed = started.elapsed();
        crate::metrics::request(seen.operation, seen.outcome, elapsed.as_secs_f64());
        crate::access_log::log(&crate::access_log::Line {
            request_id: &request_id,
            account: seen.account.as_deref(),
            op: seen.op,
            outcome: seen.outcome,
            status: resp.status().as_u16(),
            duration: elapsed,
        });
    }
    if !body.finish(&parts, &conn).await {
        close(&mut resp);
    }
    conn.response_ready();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        h.insert(HeaderName::from_static("x-amzn-requestid"), v);
    }
    h.insert(
        HeaderName::from_static("access-control-allow-origin"),
        HeaderValue::from_static("*"),
    );
    h.insert(
        HeaderName::from_static("access-control-expose-headers"),
        HeaderValue::from_static(EXPOSE_HEADERS),
    );
    Ok(resp)
}

fn close(r: &mut Response<Full<Bytes>>) {
    r.headers_mut()
        .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
}

/// Why a request got no answer of its own.
enum Failure {
    /// An error the client is told about.
    Api(ApiError),
    /// The request did not arrive whole in time.
    Timeout,
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Failure::Api(e)
    }
}

/// `GET /metrics`: every metric in the Prometheus text format. Unsigned, like `/health`: it
/// holds counts and timings, never an id, a token or a secret.
fn metrics_page() -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(crate::metrics::render())));
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    r
}

/// `408 RequestTimeoutException`, AWS-shaped, closing the connection (its body is unread).
fn timed_out(secs: u64) -> Response<Full<Bytes>> {
    let message = format!(
        "The request was not received in time: send it whole within {secs} seconds, without pauses."
    );
    let body = serde_json::json!({"__type": "RequestTimeoutException", "message": message});
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = StatusCode::REQUEST_TIMEOUT;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    h.insert(
        HeaderName::from_static("x-amzn-errortype"),
        HeaderValue::from_static("RequestTimeoutException:"),
    );
    if let Ok(v) = HeaderValue::from_str(&message) {
        h.insert(HeaderName::from_static("x-amzn-errormessage"), v);
    }
    close(&mut r);
    r
}

/// A request body and how far it has been read.
struct ReqBody {
    inner: Incoming,
    /// Read to its end.
    ended: bool,
    /// Asked for data at least once (which sends `100 Continue` when the client expects it).
    polled: bool,
}

/// The next piece of a body.
enum Piece {
    Data(Bytes),
    End,
    /// The request's deadline passed first.
    Late,
    /// The connection broke or the framing was wrong.
    Broken,
}

impl ReqBody {
    /// The next data frame, waiting no later than the request's deadline.
    async fn next(&mut self, conn: &ConnState) -> Piece {
        if self.ended {
            return Piece::End;
        }
        self.polled = true;
        loop {
            let deadline = conn.deadline();
            match tokio::time::timeout_at(deadline, self.inner.frame()).await {
                // Bytes that arrived meanwhile (say, a chunk header) move the deadline on.
                Err(_) if conn.deadline() > tokio::time::Instant::now() => continue,
                Err(_) => return Piece::Late,
                Ok(None) => {
                    self.ended = true;
                    return Piece::End;
                }
                Ok(Some(Err(_))) => return Piece::Broken,
                Ok(Some(Ok(frame))) => match frame.into_data() {
                    Ok(d) if d.is_empty() => continue,
                    Ok(d) => return Piece::Data(d),
                    // Trailers carry nothing this service reads.
                    Err(_) => continue,
                },
            }
        }
    }

    /// Reads and drops up to `limit` bytes; true when the body ended within them, in time.
    async fn discard(&mut self, limit: usize, conn: &ConnState) -> bool {
        let mut seen = 0usize;
        loop {
            match self.next(conn).await {
                Piece::Data(d) => {
                    seen = seen.saturating_add(d.len());
                    if seen > limit {
                        return false;
                    }
                }
                Piece::End => return true,
                Piece::Late | Piece::Broken => return false,
            }
        }
    }

    /// Before answering: makes sure the connection can carry the next request, reading and
    /// dropping a small unread body. False when it cannot (the answer must close it).
    async fn finish(&mut self, parts: &http::request::Parts, conn: &ConnState) -> bool {
        if self.ended || self.inner.is_end_stream() {
            return true;
        }
        let expects_continue = parts
            .headers
            .get(hyper::header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if !self.polled && expects_continue {
            // The client waits for a go-ahead that will not come: it must not send the body.
            return false;
        }
        if declared_length(parts).is_some_and(|n| n > DISCARD_LIMIT) {
            return false;
        }
        let clean = self.discard(DISCARD_LIMIT, conn).await;
        conn.body_read();
        clean
    }
}

fn declared_length(parts: &http::request::Parts) -> Option<usize> {
    parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok())
}

/// `GET`/`HEAD` of the two OpenID documents verifiers fetch (discovery and JWKS, see `tokens`):
/// public, cacheable JSON. `None` for every other request, which takes the awsJson path.
fn well_known(app: &App, req: &http::request::Parts) -> Option<Response<Full<Bytes>>> {
    if req.method != Method::GET && req.method != Method::HEAD {
        return None;
    }
    let doc = match req.uri.path() {
        "/.well-known/openid-configuration" => app.tokens.discovery(),
        "/.well-known/jwks_uri" => app.tokens.jwks(),
        _ => return None,
    };
    // hyper sends the headers (with Content-Length) but no body for HEAD.
    let mut r = Response::new(Full::new(Bytes::from(doc.to_string())));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(
        hyper::header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Some(r)
}

/// The detail of a failed request, beside its access line (which names the outcome). A 5xx
/// was logged once, with its cause, where it arose (`ApiError::internal`, the store); here it
/// is only named at debug, as a refusal's message is (`RUST_LOG=idpool=debug`), so hostile
/// traffic does not fill the log with one long line per refusal.
fn log_error(op: Option<Operation>, e: &ApiError, request_id: &str) {
    let op = op.map(Operation::name).unwrap_or("-");
    if e.status() >= 500 {
        tracing::debug!(op, request_id, error = e.type_name(), "request failed");
    } else {
        tracing::debug!(
            op,
            request_id,
            error = e.type_name(),
            // Debug-formatted: request values in messages are escaped, never raw newlines.
            message = ?e.message(),
            "request refused"
        );
    }
}

async fn route(
    app: &App,
    conn: &ConnState,
    req: &http::request::Parts,
    body: &mut ReqBody,
    account: &mut Option<String>,
) -> (Option<Operation>, Result<Vec<u8>, Failure>) {
    if req.method != Method::POST || req.uri.path() != "/" {
        return (
            None,
            Err(ApiError::UnknownOperation(format!(
                "No operation at {} {}: Cognito Identity operations are POST / with an X-Amz-Target header.",
                req.method,
                req.uri.path()
            ))
            .into()),
        );
    }
    let op = match target(req) {
        Ok(op) => op,
        Err(e) => return (None, Err(e.into())),
    };
    (Some(op), run(app, conn, op, req, body, account).await)
}

fn target(req: &http::request::Parts) -> Result<Operation, ApiError> {
    let Some(raw) = req.headers.get(X_AMZ_TARGET) else {
        return Err(ApiError::UnknownOperation(
            "Missing X-Amz-Target header: it names the operation, e.g. AWSCognitoIdentityService.GetId."
                .to_string(),
        ));
    };
    let text = raw.to_str().unwrap_or("");
    Operation::from_target(text).ok_or_else(|| {
        let shown: String = text.chars().take(128).collect();
        ApiError::UnknownOperation(format!("Unknown operation: '{shown}'."))
    })
}

fn check_content_type(req: &http::request::Parts) -> Result<(), ApiError> {
    let Some(v) = req.headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let media = v
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim();
    const ACCEPTED: [&str; 4] = [
        "",
        "application/x-amz-json-1.1",
        "application/x-amz-json-1.0",
        "application/json",
    ];
    if ACCEPTED.iter().any(|a| a.eq_ignore_ascii_case(media)) {
        return Ok(());
    }
    Err(ApiError::Serialization(format!(
        "Unsupported Content-Type '{}': send application/x-amz-json-1.1.",
        media
            .to_ascii_lowercase()
            .chars()
            .take(64)
            .collect::<String>()
    )))
}

fn too_large() -> ApiError {
    ApiError::RequestEntityTooLarge(format!(
        "Request body is larger than the {MAX_BODY} bytes this server accepts."
    ))
}

fn too_busy() -> ApiError {
    ApiError::TooManyRequests(
        "The server is holding as many request bodies as it may at once; retry shortly."
            .to_string(),
    )
}

/// A request body read whole, and its share of the bytes buffered server-wide.
struct Buffered {
    bytes: Bytes,
    _permit: Option<OwnedSemaphorePermit>,
}

/// Reads a body of at most [`MAX_BODY`] bytes by the request's deadline. Every byte kept counts
/// against the server-wide `max_buffered_body_bytes`; an oversized body is read on and dropped
/// (see [`DRAIN_LIMIT`]) so the client sees the 413.
async fn read_body(body: &mut ReqBody, conn: &ConnState) -> Result<Buffered, Failure> {
    let declared = body.inner.size_hint().exact();
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        body.discard(DRAIN_LIMIT, conn).await;
        return Err(too_large().into());
    }
    let mut buf: Vec<u8> = Vec::new();
    let mut permit: Option<OwnedSemaphorePermit> = None;
    loop {
        let data = match body.next(conn).await {
            Piece::Data(d) => d,
            Piece::End => break,
            Piece::Late => return Err(Failure::Timeout),
            Piece::Broken => {
                return Err(ApiError::Serialization(
                    "The request body could not be read.".to_string(),
                )
                .into())
            }
        };
        if buf.len().saturating_add(data.len()) > MAX_BODY {
            drop(buf);
            drop(permit);
            body.discard(DRAIN_LIMIT, conn).await;
            return Err(too_large().into());
        }
        let n = u32::try_from(data.len()).map_err(|_| too_large())?;
        let Ok(more) = conn.buffered().clone().try_acquire_many_owned(n) else {
            drop(buf);
            drop(permit);
            // Dropped unread, so the connection still carries the client's retry.
            body.discard(DISCARD_LIMIT, conn).await;
            return Err(too_busy().into());
        };
        match &mut permit {
            Some(p) => p.merge(more),
            None => permit = Some(more),
        }
        // No room is reserved for bytes not yet here: what is held follows what arrived.
        buf.extend_from_slice(&data);
    }
    conn.body_read();
    Ok(Buffered {
        bytes: Bytes::from(buf),
        _permit: permit,
    })
}

async fn run(
    app: &App,
    conn: &ConnState,
    op: Operation,
    parts: &http::request::Parts,
    body: &mut ReqBody,
    account: &mut Option<String>,
) -> Result<Vec<u8>, Failure> {
    app.rate_limit.check(op, &parts.extensions)?;
    check_content_type(parts)?;
    let body = read_body(body, conn).await?;
    let bytes = &body.bytes;
    let caller = app.keys.authorize(op, parts, bytes)?;
    if !op.is_public() {
        tracing::Span::current().record("account", caller.account_id.as_str());
        *account = Some(caller.account_id.clone());
    }
    if op == Operation::GetId {
        if let Some(input) = crate::ops::identities::plain_get_id(bytes) {
            let id = crate::ops::identities::get_id(app, input).await?;
            return Ok(crate::ops::identities::id_body(&id)?);
        }
    }
    let input: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(bytes).map_err(|e| {
            ApiError::Serialization(format!("The request body is not valid JSON: {e}."))
        })?
    };
    app.validator.validate(op, &input)?;
    Ok(crate::ops::dispatch(app, op, &caller, input).await?)
}

fn ok(body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    r
}

/// An error as AWS sends it: the status, `x-amzn-ErrorType: Name:`, `x-amzn-ErrorMessage`, and
/// the compact `{"__type":…,"message":…}` body.
pub fn error(e: &ApiError) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(e.body())));
    *r.status_mut() = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(JSON_TYPE));
    if let Ok(v) = HeaderValue::from_str(&format!("{}:", e.type_name())) {
        h.insert(HeaderName::from_static("x-amzn-errortype"), v);
    }
    // Header values must be visible ASCII; a message with anything else is sent in the body only.
    if let Ok(v) = HeaderValue::from_str(e.message()) {
        h.insert(HeaderName::from_static("x-amzn-errormessage"), v);
    }
    if e.status() == 413 {
        h.insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

fn preflight(req: &http::request::Parts) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    let h = r.headers_mut();
    h.insert(
        HeaderName::from_static("access-control-allow-methods"),
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    let allow = req
        .headers
        .get("access-control-request-headers")
        .cloned()
        .unwrap_or_else(|| HeaderValue::from_static(ALLOW_HEADERS));
    h.insert(
        HeaderName::from_static("access-control-allow-headers"),
        allow,
    );
    h.insert(
        HeaderName::from_static("access-control-max-age"),
        HeaderValue::from_static("86400"),
    );
    r
}
