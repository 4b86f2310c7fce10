//! Pagination cursors (`NextToken`): opaque to clients and tamper-evident. A cursor holds where
//! the page ended (a creation time and id, or a developer user id) and an HMAC-SHA256 tag over
//! that position and what it pages over (the scope: which pool, which account and region), keyed
//! with a secret the database keeps (table `secrets`), so every replica and every restart
//! accepts the cursors the others made, and a cursor that was edited, forged, or made for
//! another listing is refused with InvalidParameterException.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::model::Position;
use crate::protocol::ApiError;
use crate::times::Millis;

/// Bytes of the tag kept: 128 bits.
const TAG_LEN: usize = 16;

/// Seals and opens cursors with the database's cursor secret.
#[derive(Clone)]
pub struct Cursors {
    key: Vec<u8>,
}

impl std::fmt::Debug for Cursors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cursors(..)")
    }
}

fn bad() -> ApiError {
    ApiError::InvalidParameter("The pagination token is invalid.".to_string())
}

impl Cursors {
    pub fn new(key: Vec<u8>) -> Cursors {
        Cursors { key }
    }

    fn tag(&self, scope: &str, payload: &[u8]) -> Result<Hmac<Sha256>, ApiError> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).map_err(|_| bad())?;
        mac.update(scope.as_bytes());
        mac.update(&[0]);
        mac.update(payload);
        Ok(mac)
    }

    /// A cursor for `payload` within `scope`.
    pub fn seal(&self, scope: &str, payload: &str) -> String {
        let tag = match self.tag(scope, payload.as_bytes()) {
            Ok(mac) => mac.finalize().into_bytes(),
            // HMAC takes keys of any length; this arm cannot be reached.
            Err(_) => Default::default(),
        };
        let mut out = URL_SAFE_NO_PAD.encode(payload);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&tag[..TAG_LEN], &mut out);
        out
    }

    /// The payload of a cursor sealed for `scope`, or InvalidParameterException.
    pub fn open(&self, scope: &str, token: &str) -> Result<String, ApiError> {
        let (p, t) = token.split_once('.').ok_or_else(bad)?;
        let payload = URL_SAFE_NO_PAD.decode(p).map_err(|_| bad())?;
        let tag = URL_SAFE_NO_PAD.decode(t).map_err(|_| bad())?;
        if tag.len() != TAG_LEN {
            return Err(bad());
        }
        self.tag(scope, &payload)?
            .verify_truncated_left(&tag)
            .map_err(|_| bad())?;
        String::from_utf8(payload).map_err(|_| bad())
    }

    /// A cursor for a position in a listing in creation order.
    pub fn seal_position(&self, scope: &str, p: &Position) -> String {
        self.seal(scope, &position_payload(p.created_at, &p.id))
    }

    /// The position a cursor made by `seal_position` for `scope` holds.
    pub fn open_position(&self, scope: &str, token: &str) -> Result<Position, ApiError> {
        let text = self.open(scope, token)?;
        let (t, id) = text.split_once('|').ok_or_else(bad)?;
        let ms = t.parse::<i64>().map_err(|_| bad())?;
        Ok(Position {
            created_at: Millis(ms),
            id: id.to_string(),
        })
    }

    /// The shared tail of every listing: `limit + 1` rows were read; keep `limit`, and when
    /// there was one more, put a `NextToken` for the last kept row into `out`.
    pub fn page<T>(
        &self,
        scope: &str,
        rows: Vec<T>,
        limit: usize,
        out: &mut Map<String, Value>,
        cursor: impl Fn(&T) -> String,
    ) -> Vec<T> {
        let (rows, next) = self.page_token(scope, rows, limit, cursor);
        if let Some(token) = next {
            out.insert("NextToken".into(), Value::from(token));
        }
        rows
    }

    /// [`Cursors::page`] for a listing that encodes its own response: the kept rows, and the
    /// `NextToken` when there was one more row.
    pub fn page_token<T>(
        &self,
        scope: &str,
        mut rows: Vec<T>,
        limit: usize,
        cursor: impl Fn(&T) -> String,
    ) -> (Vec<T>, Option<String>) {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = match rows.last() {
            Some(last) if more => Some(self.seal(scope, &cursor(last))),
            _ => None,
        };
        (rows, next)
    }
}

/// The `seal_position` payload of a position (a creation time and an id), for
/// [`Cursors::page`].
pub fn position_payload(created_at: Millis, id: &str) -> String {
    format!("{}|{id}", created_at.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursors() -> Cursors {
        Cursors::new(b"0123456789abcdef0123456789abcdef".to_vec())
    }

    #[test]
    fn cursors_round_trip_within_their_scope() {
        let c = cursors();
        let p = Position {
            created_at: Millis(1_700_000_000_123),
            id: "us-east-1:abc".into(),
        };
        let t = c.seal_position("identities|pool-1", &p);
        assert_eq!(c.open_position("identities|pool-1", &t).unwrap(), p);
        assert!(c.open_position("identities|pool-2", &t).is_err());
    }

    #[test]
    fn edited_forged_or_foreign_cursors_are_refused() {
        let c = cursors();
        let t = c.seal("s", "1|x");
        let (p, tag) = t.split_once('.').unwrap();
        let forged = format!("{}.{tag}", URL_SAFE_NO_PAD.encode("2|x"));
        assert!(c.open("s", &forged).is_err());
        assert!(c.open("s", p).is_err());
        assert!(c.open("s", &format!("{p}.")).is_err());
        assert!(c.open("s", "!!!.!!!").is_err());
        let other = Cursors::new(b"another secret of the same size..".to_vec());
        assert!(other.open("s", &t).is_err());
        assert_eq!(c.open("s", &t).unwrap(), "1|x");
    }
}
