//! One client connection's state, shared by the accept loop's watchdog (`server`) and the
//! request handler (`service`). A connection is always in one of three phases:
//! - *reading* a request, from its first byte (or from the accept, for a new connection) until
//!   its body is read: the request must be whole within `request_timeout`, and after a short
//!   grace its bytes must keep arriving at `min_request_rate` on average;
//! - *busy* answering it: no limit here, the work is the server's own;
//! - *idle* between requests: after `idle_timeout` the connection is closed.
//!
//! The watchdog of each connection enforces the first and the last; a request's body is read by
//! `service` against the same deadline, so a stalled body gets an answer rather than silence.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::ServerConfig;

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
    /// How long a whole request may take to arrive.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

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
pub enum Verdict {
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
    pub fn on_read(&self, n: usize) {
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

    pub fn verdict(&self, now: Instant) -> Verdict {
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
