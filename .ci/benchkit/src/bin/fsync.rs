//! The disk's durable-commit floor: what one SQLite commit with `synchronous = full` in WAL mode
//! waits for at the least — a write of a few pages at the end of the log, then `fsync` of it
//! (the bundled SQLite calls fsync, not fdatasync). Args: DIR SECONDS. Two figures, each one
//! thread committing one after another in a file of DIR (so on the disk the database is on):
//!   alone   — nothing else writes;
//!   beside  — another thread writes 256 pages (1 MiB) at random places in a second file and
//!             fsyncs it every 500 ms, as a WAL checkpoint copies pages into the database file.
//! One line per figure:
//!   fsync <mode> commits_per_s=<n> p50_ms=<x> p99_ms=<x> max_ms=<x>
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Bytes of one commit: two 4 KiB WAL frames with their headers.
const COMMIT: usize = 2 * (4096 + 24);
/// The log is written from its start again past this (SQLite restarts its WAL too).
const LOG: u64 = 16 << 20;

fn open(path: &Path, len: u64) -> File {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .expect("open a probe file");
    // Written out once, so the commits overwrite blocks as a reused WAL does.
    let chunk = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < len {
        f.write_all_at(&chunk, at).expect("fill a probe file");
        at += chunk.len() as u64;
    }
    f.sync_all().expect("fsync a probe file");
    f
}

/// Commits one after another for `secs`: how many per second, and each one's latency.
fn commits(log: &File, secs: f64) -> (f64, Vec<Duration>) {
    let frame = vec![7u8; COMMIT];
    let mut lat = Vec::new();
    let mut at = 0u64;
    let start = Instant::now();
    while start.elapsed().as_secs_f64() < secs {
        let t = Instant::now();
        log.write_all_at(&frame, at).expect("write the log");
        log.sync_all().expect("fsync the log");
        lat.push(t.elapsed());
        at = (at + COMMIT as u64) % (LOG - COMMIT as u64);
    }
    (lat.len() as f64 / start.elapsed().as_secs_f64(), lat)
}

fn report(mode: &str, rate: f64, mut lat: Vec<Duration>) {
    lat.sort();
    let ms = |q: f64| {
        let i = ((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1));
        lat.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "fsync {mode} commits_per_s={rate:.0} p50_ms={:.2} p99_ms={:.2} max_ms={:.2}",
        ms(0.50),
        ms(0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = std::path::PathBuf::from(args.next().unwrap_or_else(|| ".".into()));
    let secs: f64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(2.0);
    let log_path = dir.join("fsync-probe.log");
    let db_path = dir.join("fsync-probe.db");
    let log = open(&log_path, LOG);

    let (rate, lat) = commits(&log, secs);
    report("alone", rate, lat);

    let db = open(&db_path, 64 << 20);
    let done = AtomicBool::new(false);
    let (rate, lat) = std::thread::scope(|s| {
        s.spawn(|| {
            let page = vec![9u8; 4096];
            let mut x = 0x9e37_79b9_7f4a_7c15u64;
            while !done.load(Ordering::Relaxed) {
                for _ in 0..256 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let at = (x % ((64 << 20) / 4096)) * 4096;
                    db.write_all_at(&page, at).expect("write the database file");
                }
                db.sync_all().expect("fsync the database file");
                let pause = Instant::now();
                while pause.elapsed() < Duration::from_millis(500) && !done.load(Ordering::Relaxed)
                {
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        });
        let out = commits(&log, secs);
        done.store(true, Ordering::Relaxed);
        out
    });
    report("beside", rate, lat);
    let _ = std::fs::remove_file(&log_path);
    let _ = std::fs::remove_file(&db_path);
}
