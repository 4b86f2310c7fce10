//! Time as this server stores and sends it: UTC milliseconds, written as readable text in the
//! database and as epoch seconds on the wire.

use std::time::{SystemTime, UNIX_EPOCH};

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
    /// Written by hand (every write stores two or three): years 0 to 9999, earlier moments
    /// as the epoch, later ones as the last millisecond of 9999.
    pub fn text(self) -> String {
        const LAST: i64 = 253_402_300_799_999; // 9999-12-31 23:59:59.999
        let ms = self.0.clamp(0, LAST);
        let (days, in_day) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
        let (year, month, day) = civil_from_days(days);
        let mut b = *b"0000-00-00 00:00:00.000";
        let mut put = |at: usize, width: usize, mut v: i64| {
            for i in (at..at + width).rev() {
                b[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, year);
        put(5, 2, month);
        put(8, 2, day);
        put(11, 2, in_day / 3_600_000);
        put(14, 2, in_day / 60_000 % 60);
        put(17, 2, in_day / 1000 % 60);
        put(20, 3, in_day % 1000);
        b.iter().map(|&c| c as char).collect()
    }

    /// Reads the database's text form back.
    /// Read by hand, not through a format description: a ListIdentities page reads two per
    /// row, and the general parser cost more than the row's database lookups.
    pub fn parse(s: &str) -> Option<Millis> {
        let b = s.as_bytes();
        if b.len() != 23 || [b[4], b[7], b[10], b[13], b[16], b[19]] != *b"-- ::." {
            return None;
        }
        let num = |from: usize, to: usize| -> Option<i64> {
            b[from..to].iter().try_fold(0i64, |n, &d| {
                d.is_ascii_digit().then(|| n * 10 + i64::from(d - b'0'))
            })
        };
        let (year, month, day) = (num(0, 4)?, num(5, 7)?, num(8, 10)?);
        let (hour, minute, second, milli) =
            (num(11, 13)?, num(14, 16)?, num(17, 19)?, num(20, 23)?);
        if !(1..=12).contains(&month)
            || day < 1
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        let days = days_from_civil(year, month, day);
        Some(Millis(
            ((days * 24 + hour) * 60 + minute) * 60_000 + second * 1000 + milli,
        ))
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

/// A time as the wire sends it, for typed responses: what [`Millis::json`] makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epoch(pub Millis);

impl serde::Serialize for Epoch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let ms = self.0 .0;
        if ms % 1000 == 0 {
            s.serialize_i64(ms / 1000)
        } else {
            s.serialize_f64(ms as f64 / 1000.0)
        }
    }
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::{format_description::FormatItem, macros::format_description, OffsetDateTime};

    const TEXT: &[FormatItem<'static>] =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond digits:3]");

    #[test]
    fn an_epoch_in_a_typed_response_is_what_json_makes() {
        for ms in [
            0,
            1_000,
            1_764_000_000_000,
            1_764_000_000_001,
            1_764_000_000_500,
            999,
            -1,
        ] {
            let typed = serde_json::to_string(&Epoch(Millis(ms))).unwrap();
            assert_eq!(typed, Millis(ms).json().to_string(), "{ms}");
        }
        assert_eq!(serde_json::to_string(&Epoch(Millis(1_500))).unwrap(), "1.5");
        assert_eq!(serde_json::to_string(&Epoch(Millis(2_000))).unwrap(), "2");
    }

    #[test]
    fn text_is_what_a_calendar_library_writes() {
        let day = 86_400_000i64;
        for d in (0..(131 * 366)).chain([2_932_896]) {
            for m in [d * day, d * day + 45_296_789, d * day + day - 1] {
                let t = OffsetDateTime::from_unix_timestamp_nanos(m as i128 * 1_000_000).unwrap();
                assert_eq!(Millis(m).text(), t.format(TEXT).unwrap());
            }
        }
        assert_eq!(Millis(-5).text(), "1970-01-01 00:00:00.000");
        assert_eq!(Millis(i64::MAX).text(), "9999-12-31 23:59:59.999");
    }

    #[test]
    fn text_round_trips() {
        let m = Millis(1_763_884_162_123);
        assert_eq!(m.text(), "2025-11-23 07:49:22.123");
        assert_eq!(Millis::parse(&m.text()), Some(m));
        assert_eq!(m.json(), serde_json::json!(1_763_884_162.123));
        assert_eq!(Millis(1_000).json(), serde_json::json!(1));
    }

    #[test]
    fn parse_agrees_with_text_across_the_calendar() {
        // Every day from 1970 to 2100 (leap days, century rules), at a moment with every
        // field non-zero, and the first and last millisecond of a day.
        let day = 86_400_000i64;
        for d in 0..(131 * 366) {
            for m in [
                Millis(d * day),
                Millis(d * day + 45_296_789),
                Millis(d * day + day - 1),
            ] {
                assert_eq!(Millis::parse(&m.text()), Some(m), "{}", m.text());
            }
        }
    }

    #[test]
    fn parse_refuses_what_is_not_the_stored_form() {
        for bad in [
            "",
            "2025-11-23 07:49:22",
            "2025-11-23T07:49:22.123",
            "2025-11-23 07:49:22.12x",
            "2025-13-01 00:00:00.000",
            "2025-02-29 00:00:00.000",
            "2025-04-31 00:00:00.000",
            "2025-11-23 24:00:00.000",
            "2025-11-23 07:60:00.000",
            "+025-11-23 07:49:22.123",
            "2025-11-23 07:49:22.1234",
        ] {
            assert_eq!(Millis::parse(bad), None, "{bad:?}");
        }
        assert_eq!(
            Millis::parse("2024-02-29 00:00:00.000"),
            Some(Millis(1_709_164_800_000))
        );
    }
}
