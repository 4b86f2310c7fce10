//! Slow, stalled and idle clients cannot hold the server, and keep-alive connections survive
//! errors: raw sockets against short configured timeouts. The timeouts here are what the server
//! is configured with; the tests' own waits are generous guards, never measurements.

use std::time::Duration;

use idpool::config::{Config, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::raw::{self, parse_one, JSON_TYPE};
use crate::common::*;

/// The longest a test waits for the server to act on something it was configured to do in a
/// second or a few.
const GUARD: Duration = Duration::from_secs(20);

fn set(c: &mut Config, f: impl FnOnce(&mut ServerConfig)) {
    f(&mut c.server);
}

/// The head of a request for `op` declaring a body of `len` bytes, then `extra` headers.
fn head(host: &str, op: &str, len: usize, extra: &[(&str, &str)]) -> Vec<u8> {
    let (t, len) = (raw::target(op), len.to_string());
    let mut headers = vec![
        ("X-Amz-Target", t.as_str()),
        ("Content-Type", JSON_TYPE),
        ("Content-Length", len.as_str()),
    ];
    headers.extend_from_slice(extra);
    raw::request(host, "POST", "/", &headers, b"")
}

/// Headers cut off before their end.
fn half_head(host: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: {host}\r\n").into_bytes()
}

/// Reads one response from a kept-alive connection (panics if the connection closes first).
async fn read_one(s: &mut TcpStream, buf: &mut Vec<u8>) -> RawResponse {
    tokio::time::timeout(GUARD, raw::read_one(s, buf))
        .await
        .expect("no response in time")
}

/// What a connection ends with, read until the server closes it: the bytes it sent, or `None`
/// when it did not close within the guard.
async fn until_closed(s: &mut TcpStream) -> Option<Vec<u8>> {
    tokio::time::timeout(GUARD, raw::read_until_closed(s))
        .await
        .ok()
}

async fn guest_pool(ts: &TestServer) -> String {
    create_pool(&ts.client(), "slow").await
}

fn get_id_body(pool: &str) -> String {
    format!(r#"{{"IdentityPoolId":"{pool}"}}"#)
}

/// A 408 with the AWS error shape that closes the connection.
fn assert_timed_out(bytes: &[u8]) {
    let (r, _) = parse_one(bytes)
        .unwrap_or_else(|| panic!("no response in {:?}", String::from_utf8_lossy(bytes)));
    r.assert_error(408, "RequestTimeoutException");
    assert_eq!(r.header("connection"), Some("close"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stalls_is_answered_408_and_its_connection_closed() {
    let ts = TestServer::start_with(|c| set(c, |s| s.request_timeout = 1)).await;
    let mut s = raw::connect(ts.host()).await;
    s.write_all(&head(ts.host(), "GetId", 1000, &[]))
        .await
        .unwrap();
    s.write_all(b"{\"IdentityPoolId\":").await.unwrap();
    let got = until_closed(&mut s)
        .await
        .expect("the server kept a stalled request open");
    assert_timed_out(&got);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stalls_in_its_headers_or_sends_nothing_is_disconnected() {
    let ts = TestServer::start_with(|c| set(c, |s| s.request_timeout = 1)).await;
    let mut half = raw::connect(ts.host()).await;
    half.write_all(&half_head(ts.host())).await.unwrap();
    let mut silent = raw::connect(ts.host()).await;
    assert!(
        until_closed(&mut half).await.is_some(),
        "half-sent headers held the connection"
    );
    assert!(
        until_closed(&mut silent).await.is_some(),
        "a connection that sent nothing was held"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_trickling_below_the_minimum_rate_is_cut_off_before_the_timeout() {
    // The whole-request timeout is far off; only the rate can end this request in time.
    let ts = TestServer::start_with(|c| {
        set(c, |s| {
            s.request_timeout = 120;
            s.min_request_rate = 1000;
        })
    })
    .await;
    let s = raw::connect(ts.host()).await;
    let (mut rd, mut wr) = s.into_split();
    let hd = head(ts.host(), "GetId", 100_000, &[]);
    let trickle = tokio::spawn(async move {
        if wr.write_all(&hd).await.is_err() {
            return;
        }
        // Ten bytes a second, for far longer than the guard.
        for _ in 0..1000 {
            if wr.write_all(b" ").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let closed = tokio::time::timeout(GUARD, raw::read_until_closed(&mut rd)).await;
    trickle.abort();
    assert!(closed.is_ok(), "a trickling request held its connection");
    assert_timed_out(&closed.unwrap_or_default());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let ts = TestServer::start_with(|c| set(c, |s| s.idle_timeout = 1)).await;
    let pool = guest_pool(&ts).await;
    let mut s = raw::connect(ts.host()).await;
    let mut buf = Vec::new();
    let body = get_id_body(&pool);
    let mut req = head(ts.host(), "GetId", body.len(), &[]);
    req.extend_from_slice(body.as_bytes());
    s.write_all(&req).await.unwrap();
    let r = read_one(&mut s, &mut buf).await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_ne!(r.header("connection"), Some("close"));
    let rest = until_closed(&mut s)
        .await
        .expect("an idle connection was kept past idle_timeout");
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_stalled_connections_do_not_shut_out_a_normal_client() {
    // Twice as many stalled clients as the server has connection slots.
    let ts = TestServer::start_with(|c| {
        set(c, |s| {
            s.max_connections = 100;
            s.request_timeout = 1;
        })
    })
    .await;
    let pool = guest_pool(&ts).await;
    let mut stalled = Vec::new();
    for i in 0..200 {
        let mut s = TcpStream::connect(ts.host()).await.unwrap();
        // Half stall in the body, half in the headers.
        let bytes = if i % 2 == 0 {
            head(ts.host(), "GetId", 1000, &[])
        } else {
            half_head(ts.host())
        };
        s.write_all(&bytes).await.unwrap();
        stalled.push(s);
    }
    // A normal client, behind all of them.
    let answered = tokio::time::timeout(GUARD, ts.call("GetId", &get_id_body(&pool))).await;
    let r = answered.expect("a normal client was shut out by stalled ones");
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    // And the server let go of every stalled one, though they never closed.
    for s in &mut stalled {
        assert!(
            until_closed(s).await.is_some(),
            "a stalled connection was held"
        );
    }
}

/// Sends `bytes` as a request whose headers and body arrive apart, as SDKs write them.
async fn headers_then_body(s: &mut TcpStream, bytes: &[u8]) {
    let split = bytes.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    s.write_all(&bytes[..split]).await.unwrap();
    s.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    s.write_all(&bytes[split..]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_refused_before_its_body_arrives_leaves_the_connection_usable() {
    let ts = TestServer::start().await;
    let pool = guest_pool(&ts).await;
    let ok = get_id_body(&pool);
    let get_id = "AWSCognitoIdentityService.GetId";
    let refused = [
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[
                ("X-Amz-Target", "AWSCognitoIdentityService.Nope"),
                ("Content-Type", JSON_TYPE),
            ],
            ok.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[("Content-Type", JSON_TYPE)],
            ok.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "POST",
            "/elsewhere",
            &[("X-Amz-Target", get_id)],
            ok.as_bytes(),
        ),
        raw::framed(ts.host(), "GET", "/", &[], ok.as_bytes()),
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[("X-Amz-Target", get_id), ("Content-Type", "text/html")],
            ok.as_bytes(),
        ),
        raw::framed(
            ts.host(),
            "OPTIONS",
            "/",
            &[("Access-Control-Request-Method", "POST")],
            ok.as_bytes(),
        ),
        // 600 KiB: not small, but no more than a valid request may carry.
        raw::framed(
            ts.host(),
            "POST",
            "/",
            &[("X-Amz-Target", "AWSCognitoIdentityService.Nope")],
            &vec![b' '; 600 << 10],
        ),
    ];
    let mut s = raw::connect(ts.host()).await;
    let mut buf = Vec::new();
    let mut next = head(ts.host(), "GetId", ok.len(), &[]);
    next.extend_from_slice(ok.as_bytes());
    for (i, bytes) in refused.iter().enumerate() {
        headers_then_body(&mut s, bytes).await;
        let r = read_one(&mut s, &mut buf).await;
        if r.status >= 400 {
            r.assert_some_error();
            assert!(r.status < 500, "request {i}: {}", r.status);
        }
        assert_ne!(r.header("connection"), Some("close"), "request {i}");
        headers_then_body(&mut s, &next).await;
        let n = read_one(&mut s, &mut buf).await;
        assert_eq!(
            n.status,
            200,
            "after request {i}: {:?}",
            String::from_utf8_lossy(&n.body)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_whose_body_will_not_come_says_connection_close() {
    let ts = TestServer::start().await;
    // The client waits for 100 Continue before sending its body; none will come.
    let mut s = raw::connect(ts.host()).await;
    s.write_all(&head(ts.host(), "Nope", 500, &[("Expect", "100-continue")]))
        .await
        .unwrap();
    let got = until_closed(&mut s)
        .await
        .expect("the connection stayed open");
    let (r, _) = parse_one(&got).unwrap();
    r.assert_error(400, "UnknownOperationException");
    assert_eq!(r.header("connection"), Some("close"));

    // A body too large for any request is not waited for either.
    let mut s = raw::connect(ts.host()).await;
    s.write_all(&head(ts.host(), "Nope", 5 << 20, &[]))
        .await
        .unwrap();
    let got = until_closed(&mut s)
        .await
        .expect("the connection stayed open");
    let (r, _) = parse_one(&got).unwrap();
    r.assert_error(400, "UnknownOperationException");
    assert_eq!(r.header("connection"), Some("close"));
}

// It needs the held body to reach the server before the other request does; when both arrive
// together the cap may refuse either, and the test holds again. `.ci/run` runs it on its own.
#[ignore = "run alone: cargo test --test it -- --ignored"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_beyond_the_servers_buffer_cap_get_a_retryable_refusal() {
    let ts = TestServer::start_with(|c| set(c, |s| s.max_buffered_body_bytes = 1 << 20)).await;
    let pool = guest_pool(&ts).await;
    // One client holds 700,000 body bytes in the server and pauses before the rest.
    let hold = || async {
        let mut holder = raw::connect(ts.host()).await;
        holder
            .write_all(&head(ts.host(), "GetId", 1_000_000, &[]))
            .await
            .unwrap();
        holder.write_all(&vec![b' '; 700_000]).await.unwrap();
        // Time for the server to read them before the other client's body competes.
        tokio::time::sleep(Duration::from_millis(300)).await;
        holder
    };
    let mut holder = hold().await;

    // Another's valid 400,000-byte request does not fit beside it.
    let body = format!(
        "{}{}",
        " ".repeat(400_000 - get_id_body(&pool).len()),
        get_id_body(&pool)
    );
    let mut req = head(ts.host(), "GetId", body.len(), &[]);
    req.extend_from_slice(body.as_bytes());
    let mut s = raw::connect(ts.host()).await;
    let mut buf = Vec::new();
    // A generous bound: on a loaded machine the holder's bytes may take a while to be read.
    let refused = tokio::time::timeout(GUARD * 3, async {
        loop {
            s.write_all(&req).await.unwrap();
            let r = read_one(&mut s, &mut buf).await;
            if r.status != 200 {
                return r;
            }
            // When the two bodies arrived together, the cap may have refused the holder rather
            // than this client (whichever reached it second): the holder then has an answer
            // waiting. That is the cap working, but not what this test looks at: hold again.
            let mut byte = [0u8; 1];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), holder.read(&mut byte)).await
            {
                assert!(n > 0, "the holder's connection was closed");
                holder = hold().await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("a body beyond the buffer cap was accepted");
    refused.assert_error(400, "TooManyRequestsException");
    // Its body was dropped unread: the same connection carries the retry.
    assert_ne!(refused.header("connection"), Some("close"));

    // Once the first client is gone, the retry goes through.
    drop(holder);
    let ok = tokio::time::timeout(GUARD, async {
        loop {
            s.write_all(&req).await.unwrap();
            let r = read_one(&mut s, &mut buf).await;
            if r.status == 200 {
                return r;
            }
            r.assert_error(400, "TooManyRequestsException");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the buffer cap was not released");
    assert!(ok.json()["IdentityId"].is_string());
}

/// The peak resident memory of a process, in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_discarded_not_buffered() {
    if !std::path::Path::new("/proc/self/status").exists() {
        return; // peak memory is read from /proc (Linux)
    }
    // The real binary, so its memory is its own.
    let dir = tempfile::tempdir().unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["--listen".into(), "127.0.0.1:0".into()];
    args.extend(database_args(&base_config(&dir)));
    let mut server = Spawned::with_args(args).await;
    let addr = server.host().to_string();
    let pid = server.child.id();
    let before = peak_rss(pid);

    // Eight clients at once, each sending a 16 MiB body.
    const SIZE: usize = 16 << 20;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let s = TcpStream::connect(&addr).await.unwrap();
            let (mut rd, mut wr) = s.into_split();
            let writer = tokio::spawn(async move {
                wr.write_all(&head(&addr, "GetId", SIZE, &[]))
                    .await
                    .unwrap();
                let chunk = vec![b' '; 64 << 10];
                for _ in 0..SIZE / chunk.len() {
                    if wr.write_all(&chunk).await.is_err() {
                        break;
                    }
                }
                wr
            });
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(120), rd.read_to_end(&mut out)).await;
            let _ = writer.await;
            out
        }));
    }
    for t in tasks {
        let out = t.await.unwrap();
        let (r, _) = parse_one(&out)
            .unwrap_or_else(|| panic!("no response in {:?}", String::from_utf8_lossy(&out)));
        r.assert_error(413, "RequestEntityTooLargeException");
        assert_eq!(r.header("connection"), Some("close"));
    }
    let grown = peak_rss(pid).saturating_sub(before);
    server.kill();
    // Buffering them would take 128 MiB; discarding takes the read buffers only.
    assert!(
        grown < 32 << 20,
        "peak memory grew by {grown} bytes draining 8 x 16 MiB"
    );
}
