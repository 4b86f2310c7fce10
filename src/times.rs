//! Time as this server stores and sends it: UTC milliseconds, written as readable text in the
//! database and as epoch seconds on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

const TEXT: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");

/// A moment, in milliseconds since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Millis(pub i64);

/// Now.
pub fn now() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Millis(ms)
}

impl Millis {
    /// `YYYY-MM-DD HH:MM:SS.SSS`, UTC: what the database stores.
    pub fn text(self) -> String {
        OffsetDateTime::from_unix_timestamp_nanos(self.0 as i128 * 1_000_000)
            .ok()
            .and_then(|t| t.format(TEXT).ok())
            .unwrap_or_else(|| "1970-01-01 00:00:00.000".to_string())
    }

    /// Reads the database's text form back.
    pub fn parse(s: &str) -> Option<Millis> {
        let t = time::PrimitiveDateTime::parse(s, TEXT).ok()?.assume_utc();
        Some(Millis((t.unix_timestamp_nanos() / 1_000_000) as i64))
    }

    /// Epoch seconds as a JSON number, the wire's `DateType`.
    pub fn json(self) -> serde_json::Value {
        if self.0 % 1000 == 0 {
            serde_json::Value::from(self.0 / 1000)
        } else {
            serde_json::Value::from(self.0 as f64 / 1000.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips() {
        let m = Millis(1_763_884_162_123);
        assert_eq!(m.text(), "2025-11-23 07:49:22.123");
        assert_eq!(Millis::parse(&m.text()), Some(m));
        assert_eq!(m.json(), serde_json::json!(1_763_884_162.123));
        assert_eq!(Millis(1_000).json(), serde_json::json!(1));
    }
}
