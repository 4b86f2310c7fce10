//! The accept loop: HTTP/1.1 connections served by hyper under a connection limit, each watched
//! so that slow, stalled or idle clients cannot hold it, with a graceful drain of in-flight
//! requests on shutdown.
//!
//! Each connection's phases and limits are in `connection`; the watchdog here enforces them.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::connection::{ConnState, Limits, Verdict};
use crate::App;

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The socket, counting the bytes the client sends into the connection's state.
struct Watched {
    io: TcpStream,
    state: Arc<ConnState>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before);
        if n > 0 {
            self.state.on_read(n);
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Serves `listener` until `shutdown` resolves, then stops accepting and waits for the
/// requests in flight.
pub async fn serve(listener: TcpListener, app: Arc<App>, shutdown: impl Future<Output = ()>) {
    let limits = Arc::new(Limits::new(&app.config.server));
    let max = app
        .config
        .server
        .max_connections
        .min(Semaphore::MAX_PERMITS);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // Each connection's watchdog times headers, bodies and idleness (see `ConnState`).
        .header_read_timeout(None)
        .keep_alive(true);
    let (stop_tx, stop_rx) = watch::channel(());
    let limit = Arc::new(Semaphore::new(max));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors and the like: wait, never give up serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let state = Arc::new(ConnState::new(limits.clone()));
        let app = app.clone();
        let svc_state = state.clone();
        let svc = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(crate::rate_limit::ClientAddr(peer.ip()));
            crate::service::handle(app.clone(), svc_state.clone(), req)
        });
        let io = TokioIo::new(Watched {
            io: stream,
            state: state.clone(),
        });
        let conn = builder.serve_connection(io, svc);
        let mut stop = stop_rx.clone();
        let open = crate::metrics::connection();
        tokio::spawn(async move {
            let _open = open;
            watch_connection(conn, &state, async move {
                let _ = stop.changed().await;
            })
            .await;
            drop(permit);
        });
    }
    drop(listener);
    drop(stop_tx);
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    tokio::select! {
        _ = limit.acquire_many(all) => {}
        _ = tokio::time::sleep(DRAIN_TIMEOUT) => {
            tracing::warn!("in-flight requests did not finish in time");
        }
    }
}

/// Drives one connection to its end, closing it when the client is too slow to send a request,
/// gracefully when it has been idle too long or the server stops.
async fn watch_connection<C, E>(conn: C, state: &ConnState, stop: impl Future<Output = ()>)
where
    C: Future<Output = Result<(), E>> + GracefulConn,
    E: std::fmt::Display,
{
    let mut conn = std::pin::pin!(conn);
    let mut stop = std::pin::pin!(stop);
    let mut timer = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
    let mut stopping = false;
    // After a graceful close starts, how long the response in flight may take to go out.
    let mut hard_close_at: Option<Instant> = None;
    let closed = std::future::poll_fn(|cx| loop {
        if !stopping && stop.as_mut().poll(cx).is_ready() {
            stopping = true;
            conn.as_mut().graceful_close();
        }
        if let Poll::Ready(r) = conn.as_mut().poll(cx) {
            if let Err(e) = r {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return Poll::Ready(true);
        }
        let now = Instant::now();
        let next = match state.verdict(now) {
            Verdict::TooSlow => return Poll::Ready(false),
            Verdict::Idle => match hard_close_at {
                Some(at) if now >= at => return Poll::Ready(false),
                Some(at) => Some(at),
                None => {
                    stopping = true;
                    hard_close_at = Some(now + state.limits().request_timeout());
                    conn.as_mut().graceful_close();
                    continue;
                }
            },
            Verdict::Wait(at) => at,
        };
        if let Some(at) = next {
            if timer.deadline() != at {
                timer.as_mut().reset(at);
            }
            if timer.as_mut().poll(cx).is_ready() {
                continue;
            }
        }
        return Poll::Pending;
    });
    if !closed.await {
        tracing::debug!("closed a connection whose client was too slow or idle");
    }
}

/// A connection that can be asked to finish its current request and close.
trait GracefulConn {
    fn graceful_close(self: Pin<&mut Self>);
}

impl<I, S> GracefulConn for http1::Connection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_close(self: Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
