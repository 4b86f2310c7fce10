//! The accept loop: HTTP/1.1 connections served by hyper under a connection limit, each watched
//! so that slow, stalled or idle clients cannot hold it, with a graceful drain of in-flight
//! requests on shutdown.
//!
//! A connection is always in one of three phases, tracked in its [`ConnState`]:
//! - *reading* a request, from its first byte (or from the accept, for a new connection) until
//!   its body is read: the request must be whole within `request_timeout`, and after a short
//!   grace its bytes must keep arriving at `min_request_rate` on average;
//! - *busy* answering it: no limit here, the work is the server's own;
//! - *idle* between requests: after `idle_timeout` the connection is closed.
//!
//! The watchdog of each connection enforces the first and the last; a request's body is read by
//! `service` against the same deadline, so a stalled body gets an answer rather than silence.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::time::Instant;

use crate::config::ServerConfig;
use crate::App;

/// How long shutdown waits for in-flight requests.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// The start of a request during which its rate is not yet judged (shortened to
/// `request_timeout` when that is less).
const RATE_GRACE: Duration = Duration::from_secs(5);
/// How long past its deadline a request whose body `service` is reading may still take to be
/// answered before the watchdog closes the connection anyway.
const BACKSTOP: Duration = Duration::from_secs(2);

/// The limits every connection is held to, and the body bytes buffered server-wide.
#[derive(Debug)]
pub struct Limits {
    request_timeout: Duration,
    grace: Duration,
    min_rate: u64,
    idle_timeout: Duration,
    buffered: Arc<Semaphore>,
}

impl Limits {
    pub fn new(c: &ServerConfig) -> Limits {
        let request_timeout = Duration::from_secs(c.request_timeout);
        Limits {
            request_timeout,
            grace: RATE_GRACE.min(request_timeout),
            min_rate: c.min_request_rate,
            idle_timeout: Duration::from_secs(c.idle_timeout),
            buffered: Arc::new(Semaphore::new(
                c.max_buffered_body_bytes.min(Semaphore::MAX_PERMITS),
            )),
        }
    }

    /// When a request that started at `start` and has sent `bytes` so far is too late.
    fn reading_deadline(&self, start: Instant, bytes: u64) -> Instant {
        let by_rate = match bytes.saturating_mul(1000).checked_div(self.min_rate) {
            Some(ms) => self.grace.saturating_add(Duration::from_millis(ms)),
            None => self.request_timeout,
        };
        start + self.request_timeout.min(by_rate)
    }

    /// The seconds a whole request may take, for messages.
    pub fn request_timeout_secs(&self) -> u64 {
        self.request_timeout.as_secs()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving a request: since `start`, `bytes` have arrived; `head` once hyper handed it over.
    Reading {
        start: Instant,
        bytes: u64,
        head: bool,
    },
    /// The request is read; the server is answering it.
    Busy,
    /// Between requests since `since`.
    Idle { since: Instant },
}

/// What the watchdog should do about a connection now.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// Nothing yet; look again at this instant (if any).
    Wait(Option<Instant>),
    /// No request for `idle_timeout`: close it once the response in flight is out.
    Idle,
    /// A request too slow to arrive: close the connection now.
    TooSlow,
}

/// One connection's phase, shared by its socket reader, its requests and its watchdog.
#[derive(Debug)]
pub struct ConnState {
    limits: Arc<Limits>,
    phase: Mutex<Phase>,
}

impl ConnState {
    /// A new connection: it is reading its first request from now, so a client that connects and
    /// sends nothing is held to the request limits, not the (longer) idle time.
    pub fn new(limits: Arc<Limits>) -> ConnState {
        ConnState {
            limits,
            phase: Mutex::new(Phase::Reading {
                start: Instant::now(),
                bytes: 0,
                head: false,
            }),
        }
    }

    fn with<R>(&self, f: impl FnOnce(&mut Phase) -> R) -> R {
        let mut p = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut p)
    }

    /// `n` bytes arrived from the client.
    fn on_read(&self, n: usize) {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        self.with(|p| match p {
            Phase::Idle { .. } => {
                *p = Phase::Reading {
                    start: Instant::now(),
                    bytes: n,
                    head: false,
                }
            }
            Phase::Reading { bytes, .. } => *bytes = bytes.saturating_add(n),
            // Bytes of a pipelined next request; its time starts when it is taken up.
            Phase::Busy => {}
        })
    }

    /// A request's headers are in and its handling starts.
    pub fn request_started(&self) {
        self.with(|p| match p {
            Phase::Reading { head, .. } => *head = true,
            Phase::Idle { .. } | Phase::Busy => {
                *p = Phase::Reading {
                    start: Instant::now(),
                    bytes: 0,
                    head: true,
                }
            }
        })
    }

    /// When the request being read must be whole.
    pub fn deadline(&self) -> Instant {
        self.with(|p| match *p {
            Phase::Reading { start, bytes, .. } => self.limits.reading_deadline(start, bytes),
            Phase::Idle { .. } | Phase::Busy => Instant::now() + self.limits.request_timeout,
        })
    }

    /// The request's body is read (or will not be).
    pub fn body_read(&self) {
        self.with(|p| *p = Phase::Busy)
    }

    /// The response is ready: the connection is idle until the next request.
    pub fn response_ready(&self) {
        self.with(|p| {
            *p = Phase::Idle {
                since: Instant::now(),
            }
        })
    }

    /// Request body bytes buffered server-wide.
    pub fn buffered(&self) -> &Arc<Semaphore> {
        &self.limits.buffered
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    fn verdict(&self, now: Instant) -> Verdict {
        self.with(|p| match *p {
            Phase::Reading { start, bytes, head } => {
                let mut deadline = self.limits.reading_deadline(start, bytes);
                if head {
                    // `service` is reading the body against this deadline and answers a late
                    // one itself; this is only the backstop.
                    deadline += BACKSTOP;
                }
                if now >= deadline {
                    Verdict::TooSlow
                } else {
                    Verdict::Wait(Some(deadline))
                }
            }
            Phase::Busy => Verdict::Wait(None),
            Phase::Idle { since } => {
                let deadline = since + self.limits.idle_timeout;
                if now >= deadline {
                    Verdict::Idle
                } else {
                    Verdict::Wait(Some(deadline))
                }
            }
        })
    }
}

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
                    hard_close_at = Some(now + state.limits.request_timeout);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(timeout: u64, rate: u64, idle: u64) -> Arc<Limits> {
        Arc::new(Limits::new(&ServerConfig {
            request_timeout: timeout,
            min_request_rate: rate,
            idle_timeout: idle,
            ..ServerConfig::default()
        }))
    }

    #[test]
    fn a_request_gets_the_grace_plus_time_for_its_bytes_at_the_minimum_rate() {
        let l = limits(30, 100, 60);
        let t = Instant::now();
        assert_eq!(l.reading_deadline(t, 0), t + Duration::from_secs(5));
        assert_eq!(l.reading_deadline(t, 250), t + Duration::from_millis(7500));
        // Never past the whole-request timeout, however fast the bytes came.
        assert_eq!(l.reading_deadline(t, 1 << 30), t + Duration::from_secs(30));
        // A rate of 0 leaves only the timeout; a short timeout shortens the grace.
        assert_eq!(
            limits(30, 0, 60).reading_deadline(t, 0),
            t + Duration::from_secs(30)
        );
        assert_eq!(
            limits(2, 100, 60).reading_deadline(t, 0),
            t + Duration::from_secs(2)
        );
    }

    #[tokio::test]
    async fn a_connection_moves_through_reading_busy_and_idle() {
        let s = ConnState::new(limits(30, 100, 60));
        let t0 = Instant::now();
        // A new connection that sends nothing is judged like a stalled request.
        assert!(matches!(s.verdict(t0), Verdict::Wait(Some(_))));
        assert_eq!(s.verdict(t0 + Duration::from_secs(6)), Verdict::TooSlow);
        s.on_read(300);
        s.request_started();
        // While the body is read, the watchdog waits past the deadline: `service` answers it.
        assert_eq!(
            s.verdict(t0 + Duration::from_millis(8100)),
            Verdict::Wait(Some(s.deadline() + BACKSTOP))
        );
        s.body_read();
        // Answering is never cut short.
        assert_eq!(
            s.verdict(t0 + Duration::from_secs(3600)),
            Verdict::Wait(None)
        );
        s.response_ready();
        let idle_from = Instant::now();
        assert!(matches!(s.verdict(idle_from), Verdict::Wait(Some(_))));
        assert_eq!(
            s.verdict(idle_from + Duration::from_secs(60)),
            Verdict::Idle
        );
        // The next request's first bytes start its own clock.
        s.on_read(10);
        assert!(matches!(
            s.verdict(idle_from + Duration::from_secs(60)),
            Verdict::TooSlow | Verdict::Wait(Some(_))
        ));
        assert!(matches!(
            *s.phase.lock().unwrap(),
            Phase::Reading { bytes: 10, .. }
        ));
    }
}
