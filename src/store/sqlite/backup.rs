//! Online backups of the SQLite database: a consistent copy of a live file, taken while a
//! server keeps serving from it. `VACUUM INTO` copies one read transaction's snapshot, so the
//! copy holds every write committed before the backup began, and — the database being in WAL
//! mode — the server's writer is never blocked while it runs (SQLite's page-by-page backup API
//! would restart at every write of the server, and never finish under load).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::StoreError;

/// What a finished backup wrote.
#[derive(Debug, Clone)]
pub struct Backup {
    pub path: PathBuf,
    pub bytes: u64,
    pub identities: i64,
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Copies the database at `from` into a new file `to` (which must not exist yet), calling
/// `progress(bytes written, bytes expected)` now and then while it runs. The copy is written
/// beside its destination under a temporary name and renamed into place only once complete
/// and checked, so `to` is never a half-written file.
pub fn backup(
    from: &Path,
    to: &Path,
    progress: impl Fn(u64, u64) + Send + 'static,
) -> Result<Backup, StoreError> {
    if !from.is_file() {
        return Err(io(
            from,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no database here"),
        ));
    }
    if to.exists() {
        return Err(io(
            to,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the backup file exists already; choose a new name",
            ),
        ));
    }
    let part = to.with_file_name(format!(
        ".{}.part",
        to.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "backup".into())
    ));
    let _ = std::fs::remove_file(&part);
    let src = Connection::open_with_flags(
        from,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.busy_timeout(Duration::from_secs(5))?;
    let expected: i64 = src.query_row(
        "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()",
        [],
        |r| r.get(0),
    )?;
    let expected = expected.max(0) as u64;

    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let done = done.clone();
        let part = part.clone();
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                let written = std::fs::metadata(&part).map(|m| m.len()).unwrap_or(0);
                progress(written, expected);
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let copied = src.execute("VACUUM INTO ?1", [part.to_string_lossy().as_ref()]);
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    if let Err(e) = copied {
        let _ = std::fs::remove_file(&part);
        return Err(e.into());
    }

    // The copy must be whole before it takes the name an operator will restore from.
    let check = (|| -> Result<i64, StoreError> {
        let c = Connection::open_with_flags(&part, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        let ok: String = c.query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if ok != "ok" {
            return Err(StoreError::Corrupt(format!(
                "the copy failed its check: {ok}"
            )));
        }
        Ok(c.query_row("SELECT count(*) FROM identities", [], |r| r.get(0))?)
    })();
    let identities = match check {
        Ok(n) => n,
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            return Err(e);
        }
    };
    std::fs::rename(&part, to).map_err(|e| io(to, e))?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename itself is durable only once the folder is synced.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    let bytes = std::fs::metadata(to)
        .map(|m| m.len())
        .map_err(|e| io(to, e))?;
    Ok(Backup {
        path: to.to_path_buf(),
        bytes,
        identities,
    })
}

/// Scheduled backups: a new file in `dir` every so often, the newest `keep` kept.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub dir: PathBuf,
    pub every: Duration,
    pub keep: usize,
}

/// The backups of `dir` made by `scheduled`, oldest first (their names sort by time).
pub fn scheduled_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("idpool-") && n.ends_with(".db"))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// Takes one scheduled backup of `db` into `s.dir`, then removes all but the newest `s.keep`.
pub fn scheduled(db: &Path, s: &Schedule) -> Result<Backup, StoreError> {
    std::fs::create_dir_all(&s.dir).map_err(|e| io(&s.dir, e))?;
    let stamp = crate::times::now().text().replace([' ', ':'], "-");
    let to = s.dir.join(format!("idpool-{stamp}.db"));
    let made = backup(db, &to, |_, _| {})?;
    let files = scheduled_files(&s.dir);
    let extra = files.len().saturating_sub(s.keep.max(1));
    for old in &files[..extra] {
        if let Err(e) = std::fs::remove_file(old) {
            tracing::warn!(file = %old.display(), error = %e, "could not remove an old backup");
        }
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_never_overwrites_and_never_leaves_a_partial_file() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("a.db");
        {
            let mut c = Connection::open(&db).unwrap();
            crate::store::sqlite::migrate::migrate(&mut c).unwrap();
        }
        let to = dir.path().join("b.db");
        let b = backup(&db, &to, |_, _| {}).unwrap();
        assert_eq!(b.identities, 0);
        assert!(b.bytes > 0);
        let again = backup(&db, &to, |_, _| {}).unwrap_err();
        assert!(again.to_string().contains("exists already"), "{again}");
        let missing = backup(
            &dir.path().join("none.db"),
            &dir.path().join("c.db"),
            |_, _| {},
        );
        assert!(missing.is_err());
        assert!(!dir.path().join("c.db").exists());
        assert!(!dir.path().join(".b.db.part").exists());
    }
}
