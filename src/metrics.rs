//! What idpool counts, for `GET /metrics` in the Prometheus text format. One process-wide set
//! of metrics (a Prometheus registry is per process, as the scraper sees it); recording is an
//! atomic add on a pre-resolved series, so the hot path pays a few nanoseconds.

use std::sync::{LazyLock, OnceLock};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

use crate::protocol::Operation;

/// Every metric idpool exports.
pub struct Metrics {
    registry: Registry,
    /// `idpool_requests_total{operation, outcome}`: outcome is `ok` or the error type.
    pub requests: IntCounterVec,
    /// `idpool_request_duration_seconds{operation}`.
    pub request_seconds: HistogramVec,
    /// `idpool_commit_batch_requests`: requests committed by one group commit.
    pub batch_size: HistogramVec,
    /// `idpool_commit_duration_seconds`: one group commit's BEGIN…COMMIT, fsync included.
    pub commit_seconds: HistogramVec,
    /// `idpool_getid_cache_total{result}`: GetId login lookups answered from memory or not.
    pub cache: IntCounterVec,
    /// `idpool_outbound_requests_total{kind, provider, outcome}`: JWKS, introspection, STS.
    pub outbound: IntCounterVec,
    /// `idpool_connections_open`.
    pub connections: IntGauge,
    /// Each operation's `ok` counter and its duration histogram, each resolved on first use
    /// (so a series appears only once it has something to count): finding a series by its
    /// labels hashes them under a lock, on every request otherwise.
    answered: [(OnceLock<IntCounter>, OnceLock<Histogram>); Operation::ALL.len()],
    /// The cache's `hit` and `miss` counters, resolved on first use.
    lookups: [OnceLock<IntCounter>; 2],
}

fn build() -> Result<Metrics, prometheus::Error> {
    let registry = Registry::new();
    let requests = IntCounterVec::new(
        Opts::new(
            "idpool_requests_total",
            "API requests answered, by operation and outcome (ok or the error type).",
        ),
        &["operation", "outcome"],
    )?;
    let request_seconds = HistogramVec::new(
        HistogramOpts::new(
            "idpool_request_duration_seconds",
            "Time from a request's headers to its answer, by operation.",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
            2.5, 5.0, 10.0,
        ]),
        &["operation"],
    )?;
    let batch_size = HistogramVec::new(
        HistogramOpts::new(
            "idpool_commit_batch_requests",
            "Write requests committed together in one transaction (group commit).",
        )
        .buckets(vec![
            1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0,
        ]),
        &[],
    )?;
    let commit_seconds = HistogramVec::new(
        HistogramOpts::new(
            "idpool_commit_duration_seconds",
            "Duration of one write transaction, from BEGIN to a durable COMMIT.",
        )
        .buckets(vec![
            0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
        ]),
        &[],
    )?;
    let cache = IntCounterVec::new(
        Opts::new(
            "idpool_getid_cache_total",
            "GetId login lookups, by whether memory answered them (hit) or the database (miss).",
        ),
        &["result"],
    )?;
    let outbound = IntCounterVec::new(
        Opts::new(
            "idpool_outbound_requests_total",
            "Calls to outside services (jwks, introspection, sts), by provider and outcome.",
        ),
        &["kind", "provider", "outcome"],
    )?;
    let connections = IntGauge::new("idpool_connections_open", "Client connections open now.")?;
    registry.register(Box::new(requests.clone()))?;
    registry.register(Box::new(request_seconds.clone()))?;
    registry.register(Box::new(batch_size.clone()))?;
    registry.register(Box::new(commit_seconds.clone()))?;
    registry.register(Box::new(cache.clone()))?;
    registry.register(Box::new(outbound.clone()))?;
    registry.register(Box::new(connections.clone()))?;
    Ok(Metrics {
        registry,
        requests,
        request_seconds,
        batch_size,
        commit_seconds,
        cache,
        outbound,
        connections,
        answered: std::array::from_fn(|_| (OnceLock::new(), OnceLock::new())),
        lookups: std::array::from_fn(|_| OnceLock::new()),
    })
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match build() {
    Ok(m) => Some(m),
    Err(e) => {
        // Only a programming error (a bad name) gets here; serve without metrics then.
        tracing::error!(error = %e, "metrics could not be set up");
        None
    }
});

/// The metrics, when they could be set up.
pub fn get() -> Option<&'static Metrics> {
    METRICS.as_ref()
}

/// Records one answered API request (`op` is `None` for a request naming no operation).
pub fn request(op: Option<Operation>, outcome: &str, seconds: f64) {
    let Some(m) = get() else { return };
    let name = op.map(Operation::name).unwrap_or("-");
    let slot = op.and_then(|o| m.answered.get(o as usize));
    match slot {
        Some((ok, duration)) => {
            if outcome == "ok" {
                ok.get_or_init(|| m.requests.with_label_values(&[name, "ok"]))
                    .inc();
            } else {
                m.requests.with_label_values(&[name, outcome]).inc();
            }
            duration
                .get_or_init(|| m.request_seconds.with_label_values(&[name]))
                .observe(seconds);
        }
        None => {
            m.requests.with_label_values(&[name, outcome]).inc();
            m.request_seconds
                .with_label_values(&[name])
                .observe(seconds);
        }
    }
}

/// Records one group commit.
pub fn commit(requests: usize, seconds: f64) {
    if let Some(m) = get() {
        m.batch_size
            .with_label_values(&[] as &[&str])
            .observe(requests as f64);
        m.commit_seconds
            .with_label_values(&[] as &[&str])
            .observe(seconds);
    }
}

/// Records GetId cache lookups.
pub fn cache(hit: bool) {
    if let Some(m) = get() {
        let result = if hit { "hit" } else { "miss" };
        m.lookups[usize::from(!hit)]
            .get_or_init(|| m.cache.with_label_values(&[result]))
            .inc();
    }
}

/// Records one outbound call.
pub fn outbound(kind: &str, provider: &str, outcome: &str) {
    if let Some(m) = get() {
        m.outbound
            .with_label_values(&[kind, provider, outcome])
            .inc();
    }
}

/// A connection opened; the returned guard counts it closed when dropped.
pub fn connection() -> ConnectionGuard {
    if let Some(m) = get() {
        m.connections.inc();
    }
    ConnectionGuard
}

/// Counts a connection as open while it lives.
pub struct ConnectionGuard;

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if let Some(m) = get() {
            m.connections.dec();
        }
    }
}

/// The text exposition of every metric.
pub fn render() -> String {
    let Some(m) = get() else {
        return String::new();
    };
    let mut out = Vec::new();
    if TextEncoder::new()
        .encode(&m.registry.gather(), &mut out)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}
