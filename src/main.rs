//! The `idpool` command: read the configuration, open the database, serve until SIGTERM/SIGINT.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use idpool::{Config, Server};

/// A self-hosted, persistent, wire-compatible Amazon Cognito Identity server.
#[derive(Parser)]
#[command(name = "idpool", version)]
struct Cli {
    /// Configuration file (TOML). Without it the embedded defaults apply.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:4666 (port 0 picks a free port). Overrides the file.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// SQLite database file. Overrides the file.
    #[arg(long, value_name = "PATH")]
    database: Option<PathBuf>,
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

async fn run(config: Config) -> ExitCode {
    let server = match Server::start(config).await {
        Ok(s) => s,
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
