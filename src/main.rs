//! The `idpool` command: read the configuration, open the database, serve until SIGTERM/SIGINT;
//! `idpool keys rotate` replaces the token signing key.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use idpool::{Config, Server};

/// A self-hosted, persistent, wire-compatible Amazon Cognito Identity server.
#[derive(Parser)]
#[command(name = "idpool", version)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults apply.
    #[arg(long, value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:4666 (port 0 picks a free port). Overrides the file.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// SQLite database file. Overrides the file.
    #[arg(long, value_name = "PATH", global = true)]
    database: Option<PathBuf>,
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

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
    if let Some(d) = cli.database {
        config.database.path = d;
    }
    if let Some(Command::Keys {
        action: KeysAction::Rotate,
    }) = cli.command
    {
        return rotate_keys(&config);
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
    let path = &config.database.path;
    if !path.is_file() {
        eprintln!(
            "idpool: no database at {}: check --database or [database] path (the server creates it when it first starts)",
            path.display()
        );
        return ExitCode::from(1);
    }
    match idpool::tokens::Tokens::rotate(path) {
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
    wait_for_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    server.stop().await;
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
