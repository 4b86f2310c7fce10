//! The ceiling on this machine: a bare hyper 1 + tokio server that reads the request body and
//! answers GetId's response bytes, with nothing else. Prints `listening on http://ADDR`.
//!
//! `bare sign`: the same server, but each answer carries a fresh RS512 token signed on the
//! worker that serves the request, as idpool signs GetOpenIdToken's: what a token endpoint
//! can reach on this machine over HTTP, with the load generator sharing its cores.
//!
//! `bare page`: the same server answering a fixed ListIdentities page of 60 identities (the
//! bytes idpool sends for one, ~9.9 KB): what an answer that size costs over HTTP here.
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use benchkit::Rs512;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Response};
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() {
    let mode = std::env::args().nth(1);
    let signer = match mode.as_deref() {
        Some("sign") => Some(Arc::new((Rs512::generate(), AtomicU64::new(0)))),
        _ => None,
    };
    let fixed = match mode.as_deref() {
        Some("page") => Bytes::from(page()),
        _ => Bytes::from_static(
            b"{\"IdentityId\":\"us-east-1:11a86fa8-fc2c-46da-a38b-e46762e447ed\"}",
        ),
    };
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("listening on http://{}", l.local_addr().unwrap());
    loop {
        let Ok((s, _)) = l.accept().await else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let (signer, fixed) = (signer.clone(), fixed.clone());
        tokio::spawn(async move {
            let svc = service_fn(|req: Request<Incoming>| {
                let (signer, fixed) = (signer.clone(), fixed.clone());
                async move {
                    let _ = req.into_body().collect().await;
                    let body = match &signer {
                        None => fixed,
                        Some(s) => {
                            let token = s.0.token(s.1.fetch_add(1, Ordering::Relaxed));
                            Bytes::from(format!(
                                "{{\"IdentityId\":\"us-east-1:11a86fa8-fc2c-46da-a38b-e46762e447ed\",\"Token\":\"{token}\"}}"
                            ))
                        }
                    };
                    let mut resp = Response::new(Full::new(body));
                    resp.headers_mut().insert(
                        "content-type",
                        hyper::header::HeaderValue::from_static("application/x-amz-json-1.1"),
                    );
                    Ok::<_, Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(s), svc)
                .await;
        });
    }
}

/// A ListIdentities answer of 60 identities with one login each, as idpool encodes one.
fn page() -> String {
    let identities: Vec<String> = (0..60)
        .map(|i| {
            format!(
                "{{\"IdentityId\":\"us-east-1:0190a1b2-c3d4-7e5f-8a9b-{i:012x}\",\
                 \"Logins\":[\"accounts.google.com\"],\"CreationDate\":1780000000.{i:03},\
                 \"LastModifiedDate\":1780000000.{i:03}}}"
            )
        })
        .collect();
    format!(
        "{{\"Identities\":[{}],\"IdentityPoolId\":\"us-east-1:11a86fa8-fc2c-46da-a38b-e46762e447ed\",\
         \"NextToken\":\"{}\"}}",
        identities.join(","),
        "x".repeat(120)
    )
}
