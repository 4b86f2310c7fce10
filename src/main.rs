//! The `idpool` command: read the configuration, open the database, serve until SIGTERM/SIGINT;
//! `idpool keys rotate` replaces the token signing key; `idpool backup` copies a live database;
//! `idpool health` asks a running server whether it is ready.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use idpool::{Config, Server};

/// mimalloc for the server's own allocations (see Cargo.toml); SQLite keeps its own pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A self-hosted, persistent, wire-compatible Amazon Cognito Identity server.
#[derive(Parser)]
#[command(name = "idpool", version)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults apply.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:4666 (port 0 picks a free port). Overrides the file.
    #[arg(long, value_name = "ADDR", global = true)]
    listen: Option<SocketAddr>,
    /// SQLite database file. Overrides the file.
    #[arg(long, value_name = "PATH", global = true)]
    database: Option<PathBuf>,
    /// PostgreSQL URL (`postgres://user@host:5432/db`), instead of a SQLite file. Overrides
    /// the file and `IDPOOL_DATABASE_URL`.
    #[arg(long, value_name = "URL", global = true)]
    database_url: Option<String>,
    /// Seed file of declared pools, applied at start-up. Overrides `[seed] file`.
    #[arg(long, value_name = "FILE")]
    seed: Option<PathBuf>,
    /// Without a command, serve.
    #[command(subcommand)]
    command: Option<Command>,
}

/// Maintenance commands; they work on the database file, with or without a server running.
#[derive(Subcommand)]
enum Command {
    /// The keys that sign this server's OpenID tokens.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Declared pools (seed files).
    Seed {
        #[command(subcommand)]
        action: SeedAction,
    },
    /// Writes a consistent copy of the SQLite database to a new file, while a server may keep
    /// serving from it: every write answered before the backup began is in the copy. Restore by
    /// starting idpool on the copy (`--database FILE`).
    Backup {
        /// The new file to write; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Writes every pool, identity, login, developer user and signing key to a new file (JSON
    /// lines), from either engine, while a server may keep serving: one consistent snapshot.
    Export {
        /// The new file to write; an existing file is never overwritten.
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Imports a file written by `idpool export` into the configured database (either engine),
    /// keeping every id and link. Refuses a database that holds pools or identities unless
    /// `--on-clash skip` (keep what it has, add the rest).
    Import {
        /// The export file.
        #[arg(long, value_name = "FILE")]
        from: PathBuf,
        /// What to do with rows the database has already: `refuse` (default) or `skip`.
        #[arg(long, value_name = "WHAT", default_value = "refuse")]
        on_clash: String,
    },
    /// Asks a running server whether it is ready (`GET /ready`): prints its answer and exits 0
    /// when ready, 1 otherwise (not ready, not answering). For container and systemd checks.
    Health {
        /// The readiness URL; default: `/ready` on the configured listen address.
        #[arg(long, value_name = "URL")]
        url: Option<String>,
    },
}

/// What to do with a seed file.
#[derive(Subcommand)]
enum SeedAction {
    /// Checks a seed file by every rule the server applies, on a scratch database: exits 0
    /// when it would apply, 2 (with the file, the pool and the reason) when not.
    Check {
        /// The seed file.
        file: PathBuf,
    },
}

/// What to do with the signing keys.
#[derive(Subcommand)]
enum KeysAction {
    /// Add a new signing key that becomes current. Older keys stay published (and accepted)
    /// for 24 h 5 min, the longest a token they signed can still be valid. Running servers
    /// switch to the new key within seconds, without a restart. Prints the new key id.
    Rotate,
}

fn main() -> ExitCode {
    let cli = Cli::parse();

    let mut config = match &cli.config {
        Some(path) => match Config::load(path) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("idpool: config error: {e}");
                return ExitCode::from(2);
            }
        },
        None => Config::default(),
    };
    if let Some(l) = cli.listen {
        config.listen = l;
    }
    let url = cli.database_url.clone().or_else(|| {
        std::env::var("IDPOOL_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
    });
    if url.is_some() && (cli.database.is_some() || config.database.path_given)
        || cli.database.is_some() && config.database.url.is_some()
    {
        eprintln!("idpool: config error: {}", idpool::config::BOTH_ENGINES);
        return ExitCode::from(2);
    }
    if let Some(u) = url {
        config.database.url = Some(idpool::config::Secret::new(u));
    }
    if let Some(d) = cli.database {
        config.database.path = d;
    }
    if let Some(s) = cli.seed {
        config.seed.file = Some(s);
    }
    let _logs = init_logs(config.log.format);
    if let Some(Command::Keys {
        action: KeysAction::Rotate,
    }) = cli.command
    {
        return rotate_keys(&config);
    }

    if let Some(Command::Seed {
        action: SeedAction::Check { file },
    }) = &cli.command
    {
        return seed_check(&config, file);
    }
    if let Some(Command::Backup { to }) = &cli.command {
        return backup(&config, to);
    }
    if let Some(Command::Export { to }) = &cli.command {
        return export(&config, to);
    }
    if let Some(Command::Import { from, on_clash }) = &cli.command {
        return import(&config, from, on_clash);
    }
    if let Some(Command::Health { url }) = &cli.command {
        let url = url.clone().unwrap_or_else(|| ready_url(config.listen));
        return match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(health(&url)),
            Err(e) => {
                eprintln!("idpool: cannot start the runtime: {e}");
                ExitCode::from(1)
            }
        };
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("idpool: cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run(config))
}

/// `idpool keys rotate`: migrates the database if needed, adds the new current key and prints
/// one line naming it. A missing database file is an error, not a new database: a wrong path
/// must not look like a successful rotation.
fn rotate_keys(config: &Config) -> ExitCode {
    let store = match open_for_tool(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("idpool: {e} (the server creates the database when it first starts)");
            return ExitCode::from(1);
        }
    };
    let rotated = idpool::tokens::Tokens::rotate(&store);
    store.close();
    match rotated {
        Ok(r) if r.retiring.is_empty() => {
            println!("new signing key {} is current", r.kid);
            ExitCode::SUCCESS
        }
        Ok(r) => {
            println!(
                "new signing key {} is current; older keys ({}) stay published until {} UTC",
                r.kid,
                r.retiring.join(", "),
                r.retire_after.text()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idpool: cannot rotate the signing key: {e}");
            ExitCode::from(1)
        }
    }
}

/// Logs to stderr, as text or as one JSON object a line; `RUST_LOG` sets the levels. Info
/// lines are written in batches (see `logsink`); the guard writes what waits when `main`
/// returns, and a panic writes it before its own message.
fn init_logs(format: idpool::config::LogFormat) -> idpool::logsink::FlushOnDrop<std::io::Stderr> {
    let sink = idpool::logsink::LogSink::stderr();
    let on_panic = sink.clone();
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        on_panic.flush();
        previous(info);
    }));
    let guard = sink.flush_on_drop();
    let json = format == idpool::config::LogFormat::Json;
    let ansi = !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    if !ansi {
        // Coloured text for a terminal stays with tracing's formatter.
        idpool::access_log::install(sink.clone(), json);
    }
    // RUST_LOG as plain `target=level` directives (the usual case) is a static filter that
    // costs nothing per span; span and field directives need the full EnvFilter.
    let directives = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string());
    match directives.parse::<tracing_subscriber::filter::Targets>() {
        Ok(targets) => init_subscriber(targets, json, ansi, sink),
        Err(_) => init_subscriber(
            tracing_subscriber::EnvFilter::try_new(&directives)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
            json,
            ansi,
            sink,
        ),
    }
    guard
}

fn init_subscriber<F>(filter: F, json: bool, ansi: bool, sink: idpool::logsink::LogSink)
where
    F: tracing_subscriber::Layer<tracing_subscriber::Registry> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(tracing_subscriber::fmt::layer().json().with_writer(sink))
            .init();
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(ansi)
                    .with_writer(sink),
            )
            .init();
    }
}

/// `idpool seed check FILE`: applies the seed to a scratch database that is thrown away.
fn seed_check(config: &Config, file: &std::path::Path) -> ExitCode {
    let scratch = std::env::temp_dir().join(format!("idpool-seed-check-{}", std::process::id()));
    let mut c = config.clone();
    // Always a scratch SQLite file, whatever engine the configuration names.
    c.database.path = scratch.join("check.db");
    c.database.url = None;
    c.seed.file = None;
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| {
            rt.block_on(async {
                let app = idpool::App::open(c).await.map_err(|e| e.to_string())?;
                let applied = idpool::seed::apply(&app, file).await;
                app.store.close();
                applied.map_err(|e| e.to_string())
            })
        });
    let _ = std::fs::remove_dir_all(&scratch);
    match outcome {
        Ok(applied) => {
            println!(
                "seed file {}: {} pools, all valid",
                file.display(),
                applied.pools.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idpool: {e}");
            ExitCode::from(2)
        }
    }
}

/// Opens the configured database for a command-line tool (migrating it); a SQLite file must
/// exist already: a typo in a path must not create a stray database.
fn open_for_tool(config: &Config) -> Result<idpool::store::Store, String> {
    let db = &config.database;
    if db.url.is_none() && !db.path.is_file() {
        return Err(format!(
            "no database at {}: check --database or [database] path",
            db.path.display()
        ));
    }
    idpool::store::Store::open_configured(db).map_err(|e| e.to_string())
}

/// `idpool export --to FILE`: written beside its name, renamed into place once complete.
fn export(config: &Config, to: &std::path::Path) -> ExitCode {
    if to.exists() {
        eprintln!("idpool: {} exists already; choose a new name", to.display());
        return ExitCode::from(1);
    }
    let store = match open_for_tool(config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("idpool: {e}");
            return ExitCode::from(1);
        }
    };
    let part = to.with_extension("part");
    let outcome = std::fs::File::create(&part)
        .map_err(|e| e.to_string())
        .and_then(|f| {
            let mut w = std::io::BufWriter::new(f);
            let n = idpool::transfer::export(
                &store,
                &mut w,
                &idpool::transfer::progress_line("exporting"),
            )
            .map_err(|e| e.to_string())?;
            w.into_inner()
                .map_err(|e| e.to_string())?
                .sync_all()
                .map_err(|e| e.to_string())?;
            std::fs::rename(&part, to).map_err(|e| e.to_string())?;
            Ok(n)
        });
    store.close();
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    match outcome {
        Ok(n) => {
            println!(
                "exported {} to {}: {} pools, {} identities, {} logins, {} developer users, {} signing keys",
                store.location(),
                to.display(),
                n.pools,
                n.identities,
                n.logins,
                n.developer_users,
                n.signing_keys
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            let _ = std::fs::remove_file(&part);
            eprintln!("idpool: export failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// `idpool import --from FILE [--on-clash skip]`.
fn import(config: &Config, from: &std::path::Path, on_clash: &str) -> ExitCode {
    let on_clash = match on_clash {
        "refuse" => idpool::transfer::OnClash::Refuse,
        "skip" => idpool::transfer::OnClash::Skip,
        other => {
            eprintln!("idpool: --on-clash {other:?}: use refuse or skip");
            return ExitCode::from(2);
        }
    };
    let db = &config.database;
    // Importing creates a SQLite file that does not exist yet: that is what it is for.
    let store = match idpool::store::Store::open_configured(db) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("idpool: {e}");
            return ExitCode::from(1);
        }
    };
    let path = from.to_path_buf();
    let reopen = move || -> std::io::Result<Box<dyn std::io::BufRead>> {
        Ok(Box::new(std::io::BufReader::new(std::fs::File::open(
            &path,
        )?)))
    };
    let outcome = idpool::transfer::import(
        &store,
        &reopen,
        on_clash,
        &idpool::transfer::progress_line("importing"),
    );
    if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        eprintln!();
    }
    let location = store.location();
    store.close();
    match outcome {
        Ok(n) => {
            println!(
                "imported {} into {location}: {} pools, {} identities, {} logins, {} developer users, {} signing keys",
                from.display(),
                n.pools,
                n.identities,
                n.logins,
                n.developer_users,
                n.signing_keys
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("idpool: import failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// `idpool backup --to FILE`, with progress on a terminal.
fn backup(config: &Config, to: &std::path::Path) -> ExitCode {
    let from = &config.database.path;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let progress = move |written: u64, expected: u64| {
        if tty && expected > 0 {
            let pct = (written.saturating_mul(100) / expected).min(100);
            eprint!(
                "\rbacking up: {pct:3}% ({:.1} of {:.1} MB)",
                written as f64 / 1e6,
                expected as f64 / 1e6
            );
        }
    };
    match idpool::store::sqlite::backup::backup(from, to, progress) {
        Ok(b) => {
            if tty {
                eprintln!();
            }
            println!(
                "backup of {} written to {}: {} identities, {} bytes",
                from.display(),
                b.path.display(),
                b.identities,
                b.bytes
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            if tty {
                eprintln!();
            }
            eprintln!("idpool: backup failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// `/ready` on the listen address; an unspecified address (0.0.0.0, ::) is asked on loopback.
fn ready_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::IpAddr::from([127, 0, 0, 1]),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}/ready", SocketAddr::new(ip, listen.port()))
}

/// `idpool health`: 0 when the server answers 200 at `url`, 1 otherwise.
async fn health(url: &str) -> ExitCode {
    let client = match idpool::http_client::HttpClient::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("idpool: {e}");
            return ExitCode::from(1);
        }
    };
    match client.get(url).await {
        Ok((status, body)) => {
            println!("{status} {}", String::from_utf8_lossy(&body).trim());
            if status == 200 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("idpool: {url} did not answer: {e}");
            ExitCode::from(1)
        }
    }
}

async fn run(config: Config) -> ExitCode {
    let server = match Server::start(config).await {
        Ok(s) => s,
        Err(e @ idpool::StartError::Exposed(_)) => {
            eprintln!("idpool: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("idpool: {e}");
            return ExitCode::from(1);
        }
    };
    println!("listening on http://{}", server.local_addr());
    let _ = std::io::stdout().flush();
    let failed = tokio::select! {
        _ = wait_for_signal() => false,
        _ = server.failed() => true,
    };
    tracing::info!("shutting down: finishing in-flight requests");
    server.stop().await;
    if failed {
        tracing::error!("stopped: the database could not be written (see above)");
        return ExitCode::from(1);
    }
    tracing::info!("stopped cleanly");
    ExitCode::SUCCESS
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
