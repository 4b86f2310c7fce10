//! What SQLite alone allows ListIdentities on this machine: the statement idpool runs for one
//! page of 60 identities (with each one's provider names), on the bench's database file, as
//! fast as it goes, decoding every column. Args: DB SECONDS. Figures for 1 and 2 threads:
//!   sqlpage threads=<n> pages_per_s=<x> us_per_page=<x>
//! The statement is `list_sql` of src/store/sqlite/identities.rs (a pool without a developer
//! provider), kept in step with it by hand.
use std::time::{Duration, Instant};

const PAGE: &str = "SELECT i.id, i.pool_id, i.created_at, i.updated_at, i.disabled, \
     (SELECT group_concat(provider, char(31)) FROM \
     (SELECT provider FROM logins WHERE identity_id = i.id ORDER BY provider)), 0 \
     FROM identities i WHERE i.pool_id = ?1 AND (i.created_at, i.id) > (?2, ?3) \
     AND (?4 = 0 OR i.disabled = 0) ORDER BY i.created_at, i.id LIMIT ?5";

/// Pages read on one connection for `secs`.
fn pages(db: &str, secs: f64) -> u64 {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the database");
    let pool: String = c
        .query_row(
            "SELECT id FROM pools ORDER BY created_at LIMIT 1",
            [],
            |r| r.get(0),
        )
        .expect("a pool");
    let mut st = c.prepare(PAGE).expect("prepare the page statement");
    let (dur, start) = (Duration::from_secs_f64(secs), Instant::now());
    let mut n = 0u64;
    while start.elapsed() < dur {
        let mut rows = st
            .query(rusqlite::params![pool, "", "", 0, 61])
            .expect("query");
        let mut seen = 0usize;
        while let Some(r) = rows.next().expect("row") {
            let id: String = r.get(0).expect("id");
            let pool: String = r.get(1).expect("pool");
            let created: String = r.get(2).expect("created");
            let updated: String = r.get(3).expect("updated");
            let disabled: bool = r.get(4).expect("disabled");
            let providers: Option<String> = r.get(5).expect("providers");
            let developer: bool = r.get(6).expect("developer");
            seen += id.len() + pool.len() + created.len() + updated.len();
            seen += usize::from(disabled) + usize::from(developer);
            seen += providers.map_or(0, |p| p.split('\u{1f}').count());
        }
        std::hint::black_box(seen);
        n += 1;
    }
    n
}

fn main() {
    let mut args = std::env::args().skip(1);
    let db = args.next().expect("DB");
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    for threads in [1usize, 2] {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..threads).map(|_| s.spawn(|| pages(&db, secs))).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        let rate = total as f64 / start.elapsed().as_secs_f64();
        println!(
            "sqlpage threads={threads} pages_per_s={rate:.0} us_per_page={:.1}",
            threads as f64 * 1e6 / rate
        );
    }
}
