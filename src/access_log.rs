//! The access line: one per API request, target `idpool::access`, in the shape tracing's own
//! formatter gives every other line (text or JSON, see `[log] format`), but written straight
//! into the log sink — formatting it through the general machinery cost a fifth of a cached
//! GetId. Whether it is written at all follows `RUST_LOG` as for any line
//! (`RUST_LOG=info,idpool::access=off` turns it off). A process that never called [`install`]
//! (a library user, the tests' in-process servers) gets the line through `tracing`.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::logsink::LogSink;

/// Where the line goes and in which format.
struct AccessLog {
    sink: LogSink,
    json: bool,
}

static ACCESS: OnceLock<AccessLog> = OnceLock::new();

/// Sends access lines to `sink`, as JSON or as text without colours.
pub fn install(sink: LogSink, json: bool) {
    let _ = ACCESS.set(AccessLog { sink, json });
}

/// One request's access line.
pub struct Line<'a> {
    pub request_id: &'a str,
    /// The caller's account, for an admin call whose signature was checked.
    pub account: Option<&'a str>,
    pub op: &'static str,
    pub outcome: &'static str,
    pub status: u16,
    pub duration: Duration,
}

/// Logs the line.
pub fn log(line: &Line<'_>) {
    if !tracing::enabled!(target: "idpool::access", tracing::Level::INFO) {
        return;
    }
    let Some(access) = ACCESS.get() else {
        tracing::info!(
            target: "idpool::access",
            op = line.op,
            outcome = line.outcome,
            status = line.status,
            duration_ms = millis(line.duration),
            "request"
        );
        return;
    };
    thread_local! {
        static BUF: RefCell<String> = RefCell::new(String::with_capacity(512));
    }
    BUF.with(|b| {
        let Ok(mut b) = b.try_borrow_mut() else {
            return;
        };
        b.clear();
        if access.json {
            json_line(&mut b, line, SystemTime::now());
        } else {
            text_line(&mut b, line, SystemTime::now());
        }
        let _ = access
            .sink
            .writer_for(tracing::Level::INFO)
            .write_all(b.as_bytes());
    });
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// `2026-12-02T20:46:30.069230Z`, as tracing writes it; the part up to the second is kept
/// per thread for the second it names.
fn timestamp(out: &mut String, now: SystemTime) {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    SECOND.with(|s| {
        let mut s = s.borrow_mut();
        if s.0 != secs {
            s.1.clear();
            let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).unwrap_or(0))
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let _ = write!(
                s.1,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            );
            s.0 = secs;
        }
        out.push_str(&s.1);
    });
    let _ = write!(out, ".{:06}Z", since.subsec_micros());
}

fn text_line(out: &mut String, l: &Line<'_>, now: SystemTime) {
    timestamp(out, now);
    out.push_str("  INFO request{request_id=");
    out.push_str(l.request_id);
    if let Some(a) = l.account {
        let _ = write!(out, " account={a:?}");
    }
    // `op` and `outcome` are identifiers: quoted as `{:?}` would, without its escaping pass.
    out.push_str("}: idpool::access: request op=\"");
    out.push_str(l.op);
    out.push_str("\" outcome=\"");
    out.push_str(l.outcome);
    let _ = write!(out, "\" status={} duration_ms=", l.status);
    millis_3(out, l.duration);
    out.push('\n');
}

/// A duration in milliseconds with three decimals, as `{:.3}` of [`millis`] prints it, in
/// integer arithmetic (float formatting cost a tenth of the line).
fn millis_3(out: &mut String, d: Duration) {
    let micros = (d.as_nanos() + 500) / 1000;
    let _ = write!(out, "{}.{:03}", micros / 1000, micros % 1000);
}

fn json_str(out: &mut String, s: &str) {
    // Every value here is an identifier, a UUID or digits; escaping keeps it JSON regardless.
    match serde_json::to_string(s) {
        Ok(q) => out.push_str(&q),
        Err(_) => out.push_str("\"\""),
    }
}

fn json_line(out: &mut String, l: &Line<'_>, now: SystemTime) {
    out.push_str("{\"timestamp\":\"");
    timestamp(out, now);
    out.push_str("\",\"level\":\"INFO\",\"fields\":{\"message\":\"request\",\"op\":");
    json_str(out, l.op);
    out.push_str(",\"outcome\":");
    json_str(out, l.outcome);
    let _ = write!(out, ",\"status\":{},\"duration_ms\":", l.status);
    millis_3(out, l.duration);
    out.push_str("},\"target\":\"idpool::access\",");
    let mut span = String::with_capacity(96);
    span.push('{');
    if let Some(a) = l.account {
        span.push_str("\"account\":");
        json_str(&mut span, a);
        span.push(',');
    }
    span.push_str("\"request_id\":");
    json_str(&mut span, l.request_id);
    span.push_str(",\"name\":\"request\"}");
    let _ = writeln!(out, "\"span\":{span},\"spans\":[{span}]}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(account: Option<&'static str>) -> Line<'static> {
        Line {
            request_id: "1fa72298-369c-413a-b0dd-834df4d457f7",
            account,
            op: "ListIdentityPools",
            outcome: "ok",
            status: 200,
            duration: Duration::from_micros(568),
        }
    }

    fn at() -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(1_796_243_190_069_230)
    }

    #[test]
    fn milliseconds_print_as_float_formatting_does() {
        for nanos in [
            0u64,
            1,
            499,
            501,
            999,
            1_000,
            34_123,
            567_890,
            1_000_499,
            2_345_678_901,
        ] {
            let d = Duration::from_nanos(nanos);
            let mut s = String::new();
            millis_3(&mut s, d);
            assert_eq!(s, format!("{:.3}", millis(d)), "{nanos} ns");
        }
    }

    #[test]
    fn text_has_the_shape_tracing_gives() {
        let mut s = String::new();
        text_line(&mut s, &line(Some("000000000000")), at());
        assert_eq!(
            s,
            "2026-12-02T20:26:30.069230Z  INFO request{request_id=1fa72298-369c-413a-b0dd-834df4d457f7 \
             account=\"000000000000\"}: idpool::access: request op=\"ListIdentityPools\" \
             outcome=\"ok\" status=200 duration_ms=0.568\n"
        );
    }

    #[test]
    fn json_has_the_shape_tracing_gives() {
        for account in [Some("000000000000"), None] {
            let mut s = String::new();
            json_line(&mut s, &line(account), at());
            assert!(s.ends_with('\n'));
            let v: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert_eq!(v["timestamp"], "2026-12-02T20:26:30.069230Z");
            assert_eq!(v["level"], "INFO");
            assert_eq!(v["target"], "idpool::access");
            assert_eq!(v["fields"]["message"], "request");
            assert_eq!(v["fields"]["op"], "ListIdentityPools");
            assert_eq!(v["fields"]["outcome"], "ok");
            assert_eq!(v["fields"]["status"], 200);
            assert_eq!(v["fields"]["duration_ms"], 0.568);
            assert_eq!(
                v["span"]["request_id"],
                "1fa72298-369c-413a-b0dd-834df4d457f7"
            );
            assert_eq!(v["span"]["name"], "request");
            assert_eq!(v["spans"][0], v["span"]);
            match account {
                Some(a) => assert_eq!(v["span"]["account"], a),
                None => assert!(v["span"].get("account").is_none()),
            }
        }
    }
}
