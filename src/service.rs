//! One HTTP request: request id, routing, body limit, authentication, decoding, validation,
//! dispatch — and THE place where every outcome becomes a wire response.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::Value;

use crate::protocol::{ApiError, Operation};
use crate::App;

/// The largest request body accepted: ten 50,000-character tokens with room to spare.
pub const MAX_BODY: usize = 1 << 20;
/// How much of an oversized body is read and discarded so the client still gets its answer.
const DRAIN_LIMIT: usize = 16 << 20;

const JSON_TYPE: &str = "application/x-amz-json-1.1";
const EXPOSE_HEADERS: &str = "x-amzn-RequestId,x-amzn-ErrorType,x-amzn-ErrorMessage,Date";
const ALLOW_HEADERS: &str = "content-type, x-amz-target, x-amz-user-agent, amz-sdk-invocation-id, \
     amz-sdk-request, authorization, x-amz-date, x-amz-security-token, x-amz-content-sha256";

/// The hyper service: never fails, so a connection is never dropped for a request's sake.
pub async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let request_id = uuid::Uuid::new_v4().to_string();
    let mut resp = if req.method() == Method::OPTIONS {
        preflight(&req)
    } else if let Some(r) = well_known(&app, &req) {
        r
    } else {
        let (op, outcome) = route(&app, req).await;
        match outcome {
            Ok(body) => ok(body),
            Err(e) => {
                log_error(op, &e, &request_id);
                error(&e)
            }
        }
    };
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

/// `GET`/`HEAD` of the two OpenID documents verifiers fetch (discovery and JWKS, see `tokens`):
/// public, cacheable JSON. `None` for every other request, which takes the awsJson path.
fn well_known(app: &App, req: &Request<Incoming>) -> Option<Response<Full<Bytes>>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return None;
    }
    let doc = match req.uri().path() {
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

fn log_error(op: Option<Operation>, e: &ApiError, request_id: &str) {
    let op = op.map(Operation::name).unwrap_or("-");
    if e.status() >= 500 {
        tracing::error!(op, request_id, error = e.type_name(), "request failed");
    } else {
        tracing::info!(
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
    req: Request<Incoming>,
) -> (Option<Operation>, Result<Vec<u8>, ApiError>) {
    if req.method() != Method::POST || req.uri().path() != "/" {
        return (
            None,
            Err(ApiError::UnknownOperation(format!(
                "No operation at {} {}: Cognito Identity operations are POST / with an X-Amz-Target header.",
                req.method(),
                req.uri().path()
            ))),
        );
    }
    let op = match target(&req) {
        Ok(op) => op,
        Err(e) => return (None, Err(e)),
    };
    (Some(op), run(app, op, req).await)
}

fn target(req: &Request<Incoming>) -> Result<Operation, ApiError> {
    let Some(raw) = req.headers().get("x-amz-target") else {
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

fn check_content_type(req: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(v) = req.headers().get(CONTENT_TYPE) else {
        return Ok(());
    };
    let media = v
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "" | "application/x-amz-json-1.1" | "application/x-amz-json-1.0" | "application/json" => {
            Ok(())
        }
        _ => Err(ApiError::Serialization(format!(
            "Unsupported Content-Type '{}': send application/x-amz-json-1.1.",
            media.chars().take(64).collect::<String>()
        ))),
    }
}

fn too_large() -> ApiError {
    ApiError::RequestEntityTooLarge(format!(
        "Request body is larger than the {MAX_BODY} bytes this server accepts."
    ))
}

async fn read_body(body: Incoming, declared: Option<usize>) -> Result<Bytes, ApiError> {
    if declared.is_some_and(|n| n > MAX_BODY) {
        drain(body).await;
        return Err(too_large());
    }
    match Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(too_large())
        }
        Err(_) => Err(ApiError::Serialization(
            "The request body could not be read.".to_string(),
        )),
    }
}

/// Reads and discards an oversized body, up to a bound, so the client sees the 413.
async fn drain(body: Incoming) {
    let _ = Limited::new(body, DRAIN_LIMIT).collect().await;
}

async fn run(app: &App, op: Operation, req: Request<Incoming>) -> Result<Vec<u8>, ApiError> {
    app.rate_limit.check(op, req.extensions())?;
    check_content_type(&req)?;
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<usize>().ok());
    let (parts, body) = req.into_parts();
    let bytes = read_body(body, declared).await?;
    let caller = app.keys.authorize(op, &parts, &bytes, &app.config.region)?;
    let input: Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::Serialization(format!("The request body is not valid JSON: {e}."))
        })?
    };
    app.validator.validate(op, &input)?;
    let out = crate::ops::dispatch(app, op, &caller, input).await?;
    serde_json::to_vec(&out).map_err(|e| {
        tracing::error!(error = %e, "could not encode a response");
        ApiError::InternalError
    })
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

fn preflight(req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::new()));
    let h = r.headers_mut();
    h.insert(
        HeaderName::from_static("access-control-allow-methods"),
        HeaderValue::from_static("POST, GET, OPTIONS"),
    );
    let allow = req
        .headers()
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
