//! Health for supervisors and load balancers: `GET /health` says the process answers;
//! `GET /ready` says it can do its job now — the database answers a read, the writer commits
//! a transaction within a short bound, and a token signing key is loaded. Both answer JSON,
//! 200 or 503. They are not part of the AWS API (which is only `POST /`) and need no signature:
//! they reveal nothing but "ok" or which check failed.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Map, Value};

use crate::App;

/// How long the readiness probe waits for the database before it calls it not ready.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The two paths, for `GET` and `HEAD`; `None` for every other request.
pub async fn respond(app: &App, method: &Method, path: &str) -> Option<Response<Full<Bytes>>> {
    if method != Method::GET && method != Method::HEAD {
        return None;
    }
    match path {
        "/health" => Some(reply(StatusCode::OK, json!({ "status": "ok" }))),
        "/ready" => {
            let (ready, checks) = readiness(app).await;
            let (status, word) = if ready {
                (StatusCode::OK, "ready")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "not ready")
            };
            Some(reply(status, json!({ "status": word, "checks": checks })))
        }
        _ => None,
    }
}

/// Runs every check; true when all pass. Each check's failure is logged here in full and
/// answered only as "failing".
pub async fn readiness(app: &App) -> (bool, Value) {
    let mut checks = Map::new();
    let mut ready = true;
    let mut record = |name: &str, outcome: Result<(), String>| {
        let word = match outcome {
            Ok(()) => "ok",
            Err(why) => {
                tracing::warn!(check = name, cause = %why, "readiness check failed");
                ready = false;
                "failing"
            }
        };
        checks.insert(name.to_string(), json!(word));
    };
    let read = match tokio::time::timeout(PROBE_TIMEOUT, app.store.ping_read()).await {
        Ok(r) => r.map_err(|e| e.to_string()),
        Err(_) => Err(format!(
            "no answer within {} s",
            PROBE_TIMEOUT.as_secs_f32()
        )),
    };
    record("database_read", read);
    let write = if app.store.fatal().is_tripped() {
        Err("the writer has given up".to_string())
    } else {
        match tokio::time::timeout(PROBE_TIMEOUT, app.store.ping_write()).await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(_) => Err(format!(
                "no commit within {} s",
                PROBE_TIMEOUT.as_secs_f32()
            )),
        }
    };
    record("database_write", write);
    let key = if app.tokens.current_kid().is_empty() {
        Err("no signing key loaded".to_string())
    } else {
        Ok(())
    };
    record("signing_keys", key);
    (ready, Value::Object(checks))
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
