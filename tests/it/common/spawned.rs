//! The real `idpool` binary as a child process, for what only a process shows (exit codes,
//! signals, its own memory, its log). Killed when its handle is dropped.

use std::ffi::OsStr;
use std::io::{BufRead, Read};
use std::process::{Child, Command, Stdio};

/// The real `idpool` binary, started with a config file, its log read as it comes (so a full
/// pipe never blocks it).
pub struct Spawned {
    pub child: Child,
    pub url: String,
    log: Option<std::thread::JoinHandle<String>>,
}

impl Spawned {
    /// Starts `idpool --config <config> --listen 127.0.0.1:0` and waits for its address.
    pub async fn start(config: &std::path::Path) -> Spawned {
        Self::with_args([
            OsStr::new("--config"),
            config.as_os_str(),
            OsStr::new("--listen"),
            OsStr::new("127.0.0.1:0"),
        ])
        .await
    }

    /// Starts `idpool <args>` and waits for the address it prints first.
    pub async fn with_args<I, S>(args: I) -> Spawned
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_idpool"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let log = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr.read_to_string(&mut s);
            s
        });
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            line
        })
        .await
        .unwrap();
        let url = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        Spawned {
            child,
            url,
            log: Some(log),
        }
    }

    /// `host:port` it listens on.
    pub fn host(&self) -> &str {
        super::raw::host_of(&self.url)
    }

    /// A JSON call of `op` the way the SDKs send it, unsigned.
    pub async fn call(&self, op: &str, body: &str) -> super::RawResponse {
        self.try_call(op, body).await.expect("the server answers")
    }

    /// As [`Spawned::call`], but `None` when the server is gone (it may exit at any moment).
    pub async fn try_call(&self, op: &str, body: &str) -> Option<super::RawResponse> {
        let host = self.host();
        super::raw::try_exchange(host, &super::raw::call_bytes(host, op, body)).await
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Kills it (SIGKILL) and waits for the exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Everything it logged, once it has exited.
    pub fn log(&mut self) -> String {
        self.log
            .take()
            .map(|h| h.join().unwrap())
            .unwrap_or_default()
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        // Already exited (terminated, killed, or gone by itself): nothing is signalled.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
