//! Loopback stand-ins for what idpool calls out to (a JWKS endpoint, a token introspection
//! endpoint, STS): one small HTTP server answering with a handler, recording every request,
//! optionally slow, stopped when its handle is dropped.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One request a double received; header names are lower-case.
#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Req {
    /// The body as an `application/x-www-form-urlencoded` form (what STS is sent).
    pub fn form(&self) -> std::collections::HashMap<String, String> {
        self.body
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), urldecode(v)))
            .collect()
    }
}

/// What a double answers: a status, a content type and a body; the connection then closes.
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

impl Reply {
    pub fn json(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "application/json",
            body: body.into(),
        }
    }

    pub fn xml(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            content_type: "text/xml",
            body: body.into(),
        }
    }
}

/// A status and a JSON body.
impl From<(u16, String)> for Reply {
    fn from((status, body): (u16, String)) -> Reply {
        Reply::json(status, body)
    }
}

type Handler = Arc<dyn Fn(&Req) -> Reply + Send + Sync>;

/// A running double. Dropping it stops it accepting.
pub struct Double {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Req>>>,
    max_in_flight: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Double {
    /// A double answering every request with `handler` at once.
    pub async fn start<R: Into<Reply>>(
        handler: impl Fn(&Req) -> R + Send + Sync + 'static,
    ) -> Double {
        Self::slow(Duration::ZERO, handler).await
    }

    /// A double that takes `delay` over each request before it answers; it records how many
    /// it was working on at most at once.
    pub async fn slow<R: Into<Reply>>(
        delay: Duration,
        handler: impl Fn(&Req) -> R + Send + Sync + 'static,
    ) -> Double {
        let handler: Handler = Arc::new(move |r: &Req| handler(r).into());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let now = Arc::new(AtomicUsize::new(0));
        let (log, max) = (seen.clone(), max_in_flight.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let (handler, log, max, now) =
                    (handler.clone(), log.clone(), max.clone(), now.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut s).await else {
                        return;
                    };
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(current, Ordering::SeqCst);
                    let reply = handler(&req);
                    log.lock().unwrap().push(req);
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    now.fetch_sub(1, Ordering::SeqCst);
                    let resp = format!(
                        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
                        reply.status,
                        reason(reply.status),
                        reply.content_type,
                        reply.body.len(),
                        reply.body
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                    let _ = s.shutdown().await;
                });
            }
        });
        Double {
            addr,
            seen,
            max_in_flight,
            task,
        }
    }

    /// A JWKS endpoint at `/jwks` whose document can be replaced mid-test (404 elsewhere).
    pub async fn jwks(doc: String) -> (Double, Arc<Mutex<String>>) {
        let served = Arc::new(Mutex::new(doc));
        let s = served.clone();
        let d = Double::start(move |r: &Req| {
            if r.path == "/jwks" {
                Reply::json(200, s.lock().unwrap().clone())
            } else {
                Reply::json(404, "{}")
            }
        })
        .await;
        (d, served)
    }

    /// `host:port`.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://host:port{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// How many requests it has received.
    pub fn hits(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Every request it has received, in order.
    pub fn requests(&self) -> Vec<Req> {
        self.seen.lock().unwrap().clone()
    }

    /// The most requests it was working on at once.
    pub fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::SeqCst)
    }

    /// Stops accepting connections (as dropping it does).
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Double {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A successful AssumeRoleWithWebIdentity answer carrying these credentials.
pub fn sts_answer(access_key_id: &str, secret: &str, session: &str) -> String {
    format!(
        "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
         <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{access_key_id}</AccessKeyId>\
         <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>{session}</SessionToken>\
         <Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>\
         </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
    )
}

/// STS refusing an AssumeRoleWithWebIdentity (403).
pub const STS_ACCESS_DENIED: &str = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>";

/// A port nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `http://127.0.0.1:<port>{path}` where nothing listens.
pub fn dead_url(path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", closed_port())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "X",
    }
}

async fn read_request(s: &mut tokio::net::TcpStream) -> Option<Req> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, path) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Req {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

fn urldecode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}
