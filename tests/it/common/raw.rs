//! Raw HTTP/1.1 over loopback, for what an SDK would never send: request bytes written by
//! hand, responses parsed without a client library, keep-alive connections read one response
//! at a time. Every function takes the server's `host:port`, so it works against a
//! `TestServer`, a bare `idpool::Server` or a spawned binary alike.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub const JSON_TYPE: &str = "application/x-amz-json-1.1";

/// `host:port` of an `http://host:port` URL.
pub fn host_of(url: &str) -> &str {
    url.trim_start_matches("http://")
}

/// The `X-Amz-Target` of an operation.
pub fn target(op: &str) -> String {
    format!("AWSCognitoIdentityService.{op}")
}

/// Exactly these request bytes: the request line, `Host`, then `headers` in order, then `body`
/// (no header is added).
pub fn request(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// A request for a kept-alive connection: `Content-Length` first, then `headers`.
pub fn framed(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let len = body.len().to_string();
    let mut all = vec![("Content-Length", len.as_str())];
    all.extend_from_slice(headers);
    request(host, method, path, &all, body)
}

/// A request after which the server closes: `Connection: close`, `Content-Length`, `headers`.
pub fn closing(
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let len = body.len().to_string();
    let mut all = vec![("Connection", "close"), ("Content-Length", len.as_str())];
    all.extend_from_slice(headers);
    request(host, method, path, &all, body)
}

/// A kept-alive awsJson call of `op`, the way the SDKs frame it.
pub fn op_request(host: &str, op: &str, body: &str) -> Vec<u8> {
    let t = target(op);
    framed(
        host,
        "POST",
        "/",
        &[("X-Amz-Target", &t), ("Content-Type", JSON_TYPE)],
        body.as_bytes(),
    )
}

/// `body` in chunked transfer encoding, `chunk` bytes a chunk, with the final empty chunk.
pub fn chunked(body: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Sends exactly these bytes and reads the response until the server closes.
pub async fn exchange(host: &str, bytes: &[u8]) -> RawResponse {
    let mut s = TcpStream::connect(host).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    RawResponse::parse(&out)
}

/// As [`exchange`], but `None` when the server is gone or closes without answering (a server
/// that may exit at any moment).
pub async fn try_exchange(host: &str, bytes: &[u8]) -> Option<RawResponse> {
    let mut s = TcpStream::connect(host).await.ok()?;
    s.write_all(bytes).await.ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.ok()?;
    if out.is_empty() {
        return None;
    }
    Some(RawResponse::parse(&out))
}

/// The awsJson call of `op` the way the SDKs send it, unsigned, on a connection of its own.
pub fn call_bytes(host: &str, op: &str, body: &str) -> Vec<u8> {
    let t = target(op);
    closing(
        host,
        "POST",
        "/",
        &[("X-Amz-Target", &t), ("Content-Type", JSON_TYPE)],
        body.as_bytes(),
    )
}

/// `method path` with no body, on a connection of its own.
pub async fn fetch(host: &str, method: &str, path: &str) -> RawResponse {
    exchange(
        host,
        &request(host, method, path, &[("Connection", "close")], b""),
    )
    .await
}

/// A connection for several requests in a row, Nagle off so each write leaves at once.
pub async fn connect(host: &str) -> TcpStream {
    let s = TcpStream::connect(host).await.unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Parses one Content-Length-framed response from the start of `buf`, returning it and how
/// many bytes it took; `None` while it is incomplete. A response without Content-Length is
/// taken to have an empty body.
pub fn parse_one(buf: &[u8]) -> Option<(RawResponse, usize)> {
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = parse_headers(lines);
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .map(|(_, v)| v.parse().unwrap())
        .unwrap_or(0);
    let end = split + 4 + len;
    if buf.len() < end {
        return None;
    }
    let body = buf[split + 4..end].to_vec();
    Some((
        RawResponse {
            status,
            headers,
            body,
        },
        end,
    ))
}

/// Reads one response from a kept-alive connection, keeping what follows it in `buf`; panics
/// if the connection closes first.
pub async fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    loop {
        if let Some((r, used)) = parse_one(buf) {
            buf.drain(..used);
            return r;
        }
        let mut chunk = [0u8; 8192];
        let n = s.read(&mut chunk).await.unwrap_or(0);
        assert!(n > 0, "the connection closed before a full response");
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Everything read from `rd` until the server closes it (or the read fails).
pub async fn read_until_closed(rd: &mut (impl AsyncReadExt + Unpin)) -> Vec<u8> {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Writes `bytes` while reading whatever the server answers, tolerating the server closing the
/// connection before it has read everything (as it may after refusing an oversized body).
pub async fn send_tolerant(host: &str, bytes: Vec<u8>) -> RawResponse {
    let s = TcpStream::connect(host).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&bytes).await;
        // Keep the write half open: the server decides when the exchange ends.
        wr
    });
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
        if parse_one(&out).is_some() {
            break;
        }
    }
    writer.abort();
    parse_one(&out)
        .unwrap_or_else(|| panic!("no full response in {:?}", String::from_utf8_lossy(&out)))
        .0
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// A parsed HTTP response; header names are lower-case.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// A whole response read until the server closed: the body is everything after the head,
    /// de-chunked when sent chunked.
    pub fn parse(raw: &[u8]) -> RawResponse {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let headers = parse_headers(lines);
        let mut body = raw[split + 4..].to_vec();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        if chunked {
            body = dechunk(&body);
        }
        RawResponse {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The `__type` of an error response.
    pub fn error_type(&self) -> String {
        self.json()["__type"].as_str().unwrap_or("").to_string()
    }

    pub fn message(&self) -> String {
        self.json()["message"].as_str().unwrap_or("").to_string()
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(i) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..i]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[i + 2..i + 2 + n]);
        b = &b[i + 2 + n + 2..];
    }
}
