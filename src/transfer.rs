//! `idpool export` and `idpool import`: every pool (with its settings, roles, tags and tag
//! maps), identity, login, developer user, signing key and server secret, as JSON lines, from
//! either engine to either engine, keeping every id, time and link — so a team can move from
//! the embedded SQLite file to PostgreSQL (and back) without any user changing identity.
//!
//! # The format
//! One JSON object per line. The first is `{"idpool_export": 1, …}`; then `{"pool": …}`
//! lines, `{"identity": …}`, `{"login": …}`, `{"developer_user": …}`, `{"signing_key": …}`
//! and `{"secret": …}` lines, in that order; the last is `{"end": {counts}}`, so a file cut
//! short is recognised. Field names are the tables' column names; times are UTC text. The
//! file holds the private signing keys: keep it as secret as the database.
//!
//! # Consistency and memory
//! The export is one read transaction (a snapshot) streamed page by page, so a server may go
//! on serving while it runs, and memory stays flat however many identities there are. The
//! import checks the whole file first (every line parses, the end line's counts match), then
//! writes it in transactions of [`BATCH`] rows, parents before children.

use std::io::{BufRead, Write};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::model::{
    DeveloperUserRecord, IdentityRecord, KeyRecord, LoginRecord, PoolRecord, PrincipalTagMap,
};
use crate::store::{Store, StoreError, Tx};

/// Rows per page of the export and per transaction of the import.
pub const BATCH: usize = 1000;
/// The format version this binary writes and reads.
pub const FORMAT: u32 = 1;

/// Why an export or import failed.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("line {line}: {message}")]
    Format { line: u64, message: String },
    #[error("the target database already holds {pools} pools and {identities} identities; import into an empty database, or pass --on-clash skip to keep what it has and add the rest")]
    NotEmpty { pools: i64, identities: i64 },
}

/// What an import does with rows whose key the target already has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnClash {
    /// Refuse to import into a database that holds pools or identities.
    Refuse,
    /// Keep the target's row; import everything else.
    Skip,
}

/// How many rows of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub pools: u64,
    pub identities: u64,
    pub logins: u64,
    pub developer_users: u64,
    pub signing_keys: u64,
    pub secrets: u64,
}

impl Counts {
    fn total(&self) -> u64 {
        self.pools
            + self.identities
            + self.logins
            + self.developer_users
            + self.signing_keys
            + self.secrets
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    idpool_export: u32,
    engine: String,
    exported_at: String,
}

#[derive(Serialize, Deserialize)]
struct Secret {
    name: String,
    value: String,
}

/// One line of the file.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Line {
    Pool(Box<PoolRecord>),
    Identity(IdentityRecord),
    Login(LoginRecord),
    DeveloperUser(DeveloperUserRecord),
    SigningKey(KeyRecord),
    Secret(Secret),
    End(Counts),
}

fn write_line<T: Serialize>(out: &mut dyn Write, v: &T) -> Result<(), TransferError> {
    serde_json::to_writer(&mut *out, v).map_err(std::io::Error::other)?;
    out.write_all(b"\n")?;
    Ok(())
}

/// Writes the whole database to `out`; `progress(rows so far)` is called now and then.
pub fn export(
    store: &Store,
    out: &mut (dyn Write + Send),
    progress: &(dyn Fn(&Counts) + Sync),
) -> Result<Counts, TransferError> {
    store.read_blocking(|tx| export_in(tx, store.engine(), out, progress))
}

fn export_in(
    tx: &dyn Tx,
    engine: &str,
    out: &mut dyn Write,
    progress: &dyn Fn(&Counts),
) -> Result<Counts, TransferError> {
    let mut n = Counts::default();
    write_line(
        out,
        &Header {
            idpool_export: FORMAT,
            engine: engine.to_string(),
            exported_at: crate::times::now().text(),
        },
    )?;
    let mut after = String::new();
    loop {
        let page = tx.export_pools(&after, BATCH)?;
        for mut p in page.iter().cloned() {
            p.tags = tx.tags(&p.id)?;
            p.principal_tag_maps = tx
                .principal_tag_maps(&p.id)?
                .into_iter()
                .map(|(k, m)| (k, (m.use_defaults, m.principal_tags)))
                .collect();
            write_line(out, &Line::Pool(Box::new(p)))?;
            n.pools += 1;
        }
        match page.last() {
            Some(last) if page.len() == BATCH => after = last.id.clone(),
            _ => break,
        }
    }
    let mut after = String::new();
    loop {
        let page = tx.export_identities(&after, BATCH)?;
        for i in &page {
            write_line(out, &Line::Identity(i.clone()))?;
        }
        n.identities += page.len() as u64;
        progress(&n);
        match page.last() {
            Some(last) if page.len() == BATCH => after = last.id.clone(),
            _ => break,
        }
    }
    let mut after = (String::new(), String::new(), String::new());
    loop {
        let page = tx.export_logins(&after, BATCH)?;
        for l in &page {
            write_line(out, &Line::Login(l.clone()))?;
        }
        n.logins += page.len() as u64;
        progress(&n);
        match page.last() {
            Some(l) if page.len() == BATCH => {
                after = (l.pool_id.clone(), l.provider.clone(), l.subject.clone())
            }
            _ => break,
        }
    }
    let mut after = (String::new(), String::new());
    loop {
        let page = tx.export_developer_users(&after, BATCH)?;
        for d in &page {
            write_line(out, &Line::DeveloperUser(d.clone()))?;
        }
        n.developer_users += page.len() as u64;
        match page.last() {
            Some(d) if page.len() == BATCH => {
                after = (d.pool_id.clone(), d.developer_user_id.clone())
            }
            _ => break,
        }
    }
    for k in tx.export_signing_keys()? {
        write_line(out, &Line::SigningKey(k))?;
        n.signing_keys += 1;
    }
    if let Some(value) = tx.secret("cursor")? {
        write_line(
            out,
            &Line::Secret(Secret {
                name: "cursor".into(),
                value: STANDARD.encode(value),
            }),
        )?;
        n.secrets += 1;
    }
    write_line(out, &Line::End(n.clone()))?;
    out.flush()?;
    Ok(n)
}

fn format_error(line: u64, message: impl Into<String>) -> TransferError {
    TransferError::Format {
        line,
        message: message.into(),
    }
}

/// Reads every line of an export, calling `each` with the records in order; checks the header
/// and that the end line's counts match what was read.
fn scan(
    input: &mut dyn BufRead,
    mut each: impl FnMut(u64, Line) -> Result<(), TransferError>,
) -> Result<Counts, TransferError> {
    let mut text = String::new();
    let mut number = 0u64;
    let mut seen = Counts::default();
    let mut ended: Option<Counts> = None;
    loop {
        text.clear();
        if input.read_line(&mut text)? == 0 {
            break;
        }
        number += 1;
        let trimmed = text.trim_end();
        if trimmed.is_empty() {
            continue;
        }
        if number == 1 {
            let h: Header = serde_json::from_str(trimmed)
                .map_err(|_| format_error(1, "not an idpool export (no header line)"))?;
            if h.idpool_export != FORMAT {
                return Err(format_error(
                    1,
                    format!(
                        "format version {} (this idpool reads {FORMAT})",
                        h.idpool_export
                    ),
                ));
            }
            continue;
        }
        if ended.is_some() {
            return Err(format_error(number, "lines after the end line"));
        }
        let line: Line =
            serde_json::from_str(trimmed).map_err(|e| format_error(number, e.to_string()))?;
        match &line {
            Line::Pool(_) => seen.pools += 1,
            Line::Identity(_) => seen.identities += 1,
            Line::Login(_) => seen.logins += 1,
            Line::DeveloperUser(_) => seen.developer_users += 1,
            Line::SigningKey(_) => seen.signing_keys += 1,
            Line::Secret(_) => seen.secrets += 1,
            Line::End(c) => {
                ended = Some(c.clone());
                continue;
            }
        }
        each(number, line)?;
    }
    match ended {
        None => Err(format_error(
            number,
            "the file ends before its end line: it was cut short",
        )),
        Some(c) if c != seen => Err(format_error(
            number,
            format!("the end line counts {c:?}, the file holds {seen:?}"),
        )),
        Some(_) => Ok(seen),
    }
}

/// Checks an export file without importing it.
pub fn check(input: &mut dyn BufRead) -> Result<Counts, TransferError> {
    scan(input, |_, _| Ok(()))
}

/// Rows waiting for their transaction.
#[derive(Default, Clone)]
struct Batch {
    pools: Vec<PoolRecord>,
    identities: Vec<IdentityRecord>,
    logins: Vec<LoginRecord>,
    developer_users: Vec<DeveloperUserRecord>,
    keys: Vec<(KeyRecord, Vec<u8>)>,
    secrets: Vec<(String, Vec<u8>)>,
}

impl Batch {
    fn len(&self) -> usize {
        self.pools.len()
            + self.identities.len()
            + self.logins.len()
            + self.developer_users.len()
            + self.keys.len()
            + self.secrets.len()
    }
}

fn apply(tx: &dyn Tx, b: &Batch, seq_offset: i64) -> Result<(), StoreError> {
    for p in &b.pools {
        if tx.import_pool(p)? {
            if !p.tags.is_empty() {
                tx.set_tags(&p.id, &p.tags)?;
            }
            for (provider, (use_defaults, tags)) in &p.principal_tag_maps {
                tx.set_principal_tag_map(
                    &p.id,
                    provider,
                    &PrincipalTagMap {
                        use_defaults: *use_defaults,
                        principal_tags: tags.clone(),
                    },
                )?;
            }
        }
    }
    for i in &b.identities {
        tx.import_identity(i)?;
    }
    for l in &b.logins {
        tx.import_login(l)?;
    }
    for d in &b.developer_users {
        tx.import_developer_user(d)?;
    }
    for (k, der) in &b.keys {
        tx.import_signing_key(k, der, seq_offset + k.seq)?;
    }
    for (name, value) in &b.secrets {
        tx.set_secret(name, value)?;
    }
    Ok(())
}

fn flush(store: &Store, b: &mut Batch, seq_offset: i64) -> Result<(), StoreError> {
    if b.len() == 0 {
        return Ok(());
    }
    let batch = std::mem::take(b);
    store.write_blocking(move |tx| apply(tx, &batch, seq_offset))
}

/// Imports an export file. `reopen` gives the file again from its start: it is read twice,
/// once to check it whole, once to import it.
pub fn import(
    store: &Store,
    reopen: &dyn Fn() -> std::io::Result<Box<dyn BufRead>>,
    on_clash: OnClash,
    progress: &dyn Fn(&Counts),
) -> Result<Counts, TransferError> {
    let expected = check(&mut *reopen()?)?;
    let (pools, identities) = store.read_blocking(|tx| tx.count_all())?;
    let empty = pools == 0 && identities == 0;
    if !empty && on_clash == OnClash::Refuse {
        return Err(TransferError::NotEmpty { pools, identities });
    }
    // Imported keys come after the target's own, in their order: the source's current key
    // signs from now on, and every key stays published as it was.
    let seq_offset = store.read_blocking(|tx| tx.next_key_seq())? - 1;
    let mut batch = Batch::default();
    let mut done = Counts::default();
    scan(&mut *reopen()?, |number, line| {
        match line {
            Line::Pool(p) => {
                batch.pools.push(*p);
                done.pools += 1;
            }
            Line::Identity(i) => {
                batch.identities.push(i);
                done.identities += 1;
            }
            Line::Login(l) => {
                batch.logins.push(l);
                done.logins += 1;
            }
            Line::DeveloperUser(d) => {
                batch.developer_users.push(d);
                done.developer_users += 1;
            }
            Line::SigningKey(k) => {
                let der = STANDARD
                    .decode(&k.private_key)
                    .map_err(|_| format_error(number, "signing key: private_key is not base64"))?;
                batch.keys.push((k, der));
                done.signing_keys += 1;
            }
            Line::Secret(s) => {
                let value = STANDARD
                    .decode(&s.value)
                    .map_err(|_| format_error(number, "secret: value is not base64"))?;
                // A target that keeps its own data keeps its own cursor secret too.
                if empty {
                    batch.secrets.push((s.name, value));
                }
                done.secrets += 1;
            }
            Line::End(_) => {}
        }
        if batch.len() >= BATCH {
            flush(store, &mut batch, seq_offset)?;
            progress(&done);
        }
        Ok(())
    })?;
    flush(store, &mut batch, seq_offset)?;
    progress(&done);
    debug_assert_eq!(done.total(), expected.total());
    Ok(done)
}

/// A progress line for a terminal: `\r`-rewritten, every so many rows.
pub fn progress_line(verb: &'static str) -> impl Fn(&Counts) + Sync {
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    move |c: &Counts| {
        if tty {
            eprint!(
                "\r{verb}: {} pools, {} identities, {} logins",
                c.pools, c.identities, c.logins
            );
        }
    }
}
