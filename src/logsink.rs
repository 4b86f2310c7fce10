//! Where log lines go: stderr, gathered in memory and written by a background thread at most
//! [`FLUSH_EVERY`] later (or as soon as [`HIGH_WATER`] bytes wait), so that the access line of
//! each request costs no system call of its own. Warnings and errors are written at once,
//! after whatever waited before them, so the lines stay in order and a line that explains an
//! exit is never lost. [`LogSink::flush`] (and dropping the [`FlushOnDrop`] guard) writes the
//! rest; on a crash (SIGKILL, power loss) at most the last [`FLUSH_EVERY`] of info lines are
//! lost.

use std::io::Write;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tracing::{Level, Metadata};
use tracing_subscriber::fmt::MakeWriter;

/// How long an info line may wait in memory.
pub const FLUSH_EVERY: Duration = Duration::from_millis(20);
/// How many bytes may wait before the line that passes it writes them all.
pub const HIGH_WATER: usize = 64 * 1024;

/// The shared buffer; `out` is held while writing, so writes never interleave or reorder.
struct Inner<W> {
    pending: Mutex<Vec<u8>>,
    out: Mutex<W>,
}

/// A `MakeWriter` for tracing-subscriber's fmt layer.
pub struct LogSink<W: Write + Send + 'static = std::io::Stderr> {
    inner: Arc<Inner<W>>,
}

impl<W: Write + Send + 'static> Clone for LogSink<W> {
    fn clone(&self) -> Self {
        LogSink {
            inner: self.inner.clone(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves bytes, not broken invariants: go on.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl LogSink<std::io::Stderr> {
    /// A sink on stderr with its flushing thread started.
    pub fn stderr() -> LogSink {
        let sink = LogSink::new(std::io::stderr());
        sink.start_flusher();
        sink
    }
}

impl<W: Write + Send + 'static> LogSink<W> {
    /// A sink on `out`; nothing is written in the background until [`LogSink::start_flusher`].
    pub fn new(out: W) -> Self {
        LogSink {
            inner: Arc::new(Inner {
                pending: Mutex::new(Vec::with_capacity(HIGH_WATER)),
                out: Mutex::new(out),
            }),
        }
    }

    /// Starts the thread that writes waiting lines every [`FLUSH_EVERY`]. It holds only a
    /// weak reference: it ends once every handle on the sink is gone.
    pub fn start_flusher(&self) {
        let weak = Arc::downgrade(&self.inner);
        let _ = std::thread::Builder::new()
            .name("idpool-log".into())
            .spawn(move || loop {
                std::thread::sleep(FLUSH_EVERY);
                match weak.upgrade() {
                    Some(inner) => LogSink { inner }.flush(),
                    None => break,
                }
            });
    }

    /// Writes every waiting line now.
    pub fn flush(&self) {
        let mut out = lock(&self.inner.out);
        let batch = std::mem::take(&mut *lock(&self.inner.pending));
        if !batch.is_empty() {
            let _ = out.write_all(&batch);
            let _ = out.flush();
            // Give the buffer back, so steady logging does not allocate.
            let mut pending = lock(&self.inner.pending);
            if pending.is_empty() && batch.capacity() <= 4 * HIGH_WATER {
                let mut batch = batch;
                batch.clear();
                *pending = batch;
            }
        }
    }

    /// The writer of one line of `level`: warnings and errors are written at once.
    pub fn writer_for(&self, level: Level) -> LineWriter<W> {
        LineWriter {
            sink: self.clone(),
            at_once: level <= Level::WARN,
        }
    }

    /// A guard that flushes when dropped: hold it in `main`.
    pub fn flush_on_drop(&self) -> FlushOnDrop<W> {
        FlushOnDrop(self.clone())
    }
}

/// Flushes its sink when dropped.
pub struct FlushOnDrop<W: Write + Send + 'static>(LogSink<W>);

impl<W: Write + Send + 'static> Drop for FlushOnDrop<W> {
    fn drop(&mut self) {
        self.0.flush();
    }
}

/// One line's writer: buffered, or written through.
pub struct LineWriter<W: Write + Send + 'static> {
    sink: LogSink<W>,
    at_once: bool,
}

impl<W: Write + Send + 'static> Write for LineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let full = {
            let mut pending = lock(&self.sink.inner.pending);
            pending.extend_from_slice(buf);
            pending.len() >= HIGH_WATER
        };
        if self.at_once || full {
            self.sink.flush();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a, W: Write + Send + 'static> MakeWriter<'a> for LogSink<W> {
    type Writer = LineWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        LineWriter {
            sink: self.clone(),
            at_once: true,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        // WARN and ERROR are the levels at or above WARN (ERROR is the "smallest").
        self.writer_for(*meta.level())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared byte vector standing in for stderr.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn line(sink: &LogSink<Shared>, at_once: bool, text: &str) {
        let mut w = LineWriter {
            sink: sink.clone(),
            at_once,
        };
        w.write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn info_lines_wait_and_a_warning_writes_them_first_in_order() {
        let out = Shared::default();
        let sink = LogSink::new(out.clone());
        line(&sink, false, "one\n");
        line(&sink, false, "two\n");
        assert_eq!(out.text(), "", "info lines wait for the flusher");
        line(&sink, true, "warn\n");
        assert_eq!(out.text(), "one\ntwo\nwarn\n");
    }

    #[test]
    fn the_guard_and_the_high_water_mark_write_what_waits() {
        let out = Shared::default();
        let sink = LogSink::new(out.clone());
        line(&sink, false, "kept\n");
        drop(sink.flush_on_drop());
        assert_eq!(out.text(), "kept\n");
        let big = "x".repeat(HIGH_WATER);
        line(&sink, false, &big);
        assert_eq!(
            out.text().len(),
            5 + HIGH_WATER,
            "a full buffer is written at once"
        );
    }

    #[test]
    fn the_flusher_writes_waiting_lines_by_itself() {
        let out = Shared::default();
        let sink = LogSink::new(out.clone());
        sink.start_flusher();
        line(&sink, false, "later\n");
        // Bounded wait for the background thread; asserts what was written, not when.
        for _ in 0..500 {
            if !out.text().is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(out.text(), "later\n");
    }
}
