//! Load shapes and what they measure: a closed loop (N workers, each sends
//! its next request when the previous one answered) and an open loop (a
//! request every 1/rate seconds whether or not earlier ones answered, so a
//! server that falls behind shows up as queueing latency instead of hiding
//! it), both recording latencies into an HDR histogram.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::sync::Mutex;
use tonic::transport::Endpoint;

use crate::cli::client::{Conn, Credentials, conn};

/// Latencies in microseconds, from 1 µs to 10 minutes, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("constant, valid histogram bounds")
}

/// What one measured run produced.
#[derive(Debug, Clone)]
pub struct Sample {
    pub latency: Histogram<u64>,
    pub errors: u64,
    pub first_error: Option<String>,
    /// The measured window (warm-up excluded).
    pub elapsed: Duration,
    /// Cores the server and the load generator kept busy meanwhile, when
    /// the caller measured them.
    pub server_cores: Option<f64>,
    pub client_cores: Option<f64>,
}

impl Sample {
    pub fn new() -> Self {
        Self {
            latency: histogram(),
            errors: 0,
            first_error: None,
            elapsed: Duration::ZERO,
            server_cores: None,
            client_cores: None,
        }
    }

    pub fn ok(&mut self, d: Duration) {
        self.latency.saturating_record(d.as_micros().max(1) as u64);
    }

    pub fn err(&mut self, e: impl std::fmt::Display) {
        add_errors(&mut self.errors, &mut self.first_error, 1, || {
            Some(e.to_string())
        });
    }

    pub fn merge(&mut self, other: &Sample) {
        let _ = self.latency.add(&other.latency);
        add_errors(
            &mut self.errors,
            &mut self.first_error,
            other.errors,
            || other.first_error.clone(),
        );
    }

    pub fn count(&self) -> u64 {
        self.latency.len()
    }

    /// Successful operations per second of the measured window.
    pub fn rate(&self) -> f64 {
        if self.elapsed.is_zero() {
            0.0
        } else {
            self.count() as f64 / self.elapsed.as_secs_f64()
        }
    }

    /// A quantile in milliseconds (0 when nothing was recorded).
    pub fn ms(&self, q: f64) -> f64 {
        if self.latency.is_empty() {
            0.0
        } else {
            self.latency.value_at_quantile(q) as f64 / 1000.0
        }
    }

    pub fn max_ms(&self) -> f64 {
        self.latency.max() as f64 / 1000.0
    }
}

/// What one of many small tasks measured, kept as it came and recorded into
/// one [`Sample`] at the end: a histogram of its own per task would cost
/// each of 10,000 watchers a quarter of a megabyte, and merging one walks
/// all its buckets (that merge once took a third of the load generator's
/// time while the last watchers were still being measured).
#[derive(Debug, Default)]
pub struct Tally {
    durations: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    pub fn ok(&mut self, d: Duration) {
        self.durations.push(d);
    }

    pub fn err(&mut self, e: impl std::fmt::Display) {
        add_errors(&mut self.errors, &mut self.first_error, 1, || {
            Some(e.to_string())
        });
    }
}

impl Sample {
    /// Records everything `t` measured.
    pub fn absorb(&mut self, t: Tally) {
        for d in t.durations {
            self.ok(d);
        }
        add_errors(&mut self.errors, &mut self.first_error, t.errors, || {
            t.first_error
        });
    }
}

/// Adds `n` errors to a count, keeping the first message ever seen (`first`
/// is asked only while none is kept).
fn add_errors(
    count: &mut u64,
    kept: &mut Option<String>,
    n: u64,
    first: impl FnOnce() -> Option<String>,
) {
    *count += n;
    if kept.is_none() {
        *kept = first();
    }
}

impl Default for Sample {
    fn default() -> Self {
        Self::new()
    }
}

/// Several HTTP/2 connections to one server, handed out in turn, so load is
/// not funnelled through a single connection's task on either side.
#[derive(Clone)]
pub struct Pool {
    channels: Arc<Vec<Conn>>,
    next: Arc<AtomicUsize>,
}

impl Pool {
    pub async fn connect(endpoint: &str, token: &str, connections: usize) -> Result<Self, String> {
        let mut channels = Vec::with_capacity(connections.max(1));
        for _ in 0..connections.max(1) {
            channels.push(connect(endpoint, token).await?);
        }
        Ok(Self {
            channels: Arc::new(channels),
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The next connection, round-robin.
    pub fn channel(&self) -> Conn {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.channels.len();
        self.channels[i].clone()
    }
}

/// One eagerly connected HTTP/2 connection with generous message limits
/// (large-flow requests are hundreds of kilobytes), whose calls carry
/// `token` (none when empty).
pub async fn connect(endpoint: &str, token: &str) -> Result<Conn, String> {
    let credentials = if token.is_empty() {
        Credentials::none()
    } else {
        Credentials::bearer(token)?
    };
    let channel = Endpoint::from_shared(endpoint.to_string())
        .map_err(|e| format!("{endpoint:?} is not a URL: {e}"))?
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|e| format!("cannot connect to {endpoint}: {e}"))?;
    Ok(conn(channel, credentials))
}

/// How long to run and how much of the start to leave out of the figures
/// (connection set-up, caches and the pool filling).
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub warmup: Duration,
    pub measure: Duration,
}

impl Window {
    pub fn new(measure: Duration) -> Self {
        Self {
            warmup: (measure / 5).min(Duration::from_secs(1)),
            measure,
        }
    }
}

/// `concurrency` workers call `op(worker, iteration)` back to back for the
/// window; latencies of calls that start after the warm-up are recorded.
pub async fn closed_loop<F, Fut, E>(concurrency: usize, window: Window, op: F) -> Sample
where
    F: Fn(usize, u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let start = Instant::now();
    let from = start + window.warmup;
    let until = from + window.measure;
    let mut tasks = Vec::with_capacity(concurrency);
    for w in 0..concurrency.max(1) {
        let op = op.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = Sample::new();
            let mut i = 0u64;
            loop {
                let t = Instant::now();
                if t >= until {
                    break;
                }
                let r = op(w, i).await;
                i += 1;
                if t < from {
                    continue;
                }
                match r {
                    Ok(()) => s.ok(t.elapsed()),
                    Err(e) => s.err(e),
                }
            }
            s
        }));
    }
    let mut total = Sample::new();
    for t in tasks {
        match t.await {
            Ok(s) => total.merge(&s),
            Err(e) => total.err(format!("worker panicked: {e}")),
        }
    }
    total.elapsed = window.measure;
    total
}

/// Starts `op(i)` at a fixed `rate` per second for the window, whatever
/// the answers, and measures each from its scheduled start (so time spent
/// queued behind a slow server counts). Waits up to `grace` for the last
/// ones; those still out then count as errors.
pub async fn open_loop<F, Fut, E>(rate: f64, window: Window, grace: Duration, op: F) -> Sample
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: std::fmt::Display + Send + 'static,
{
    let rate = rate.max(0.1);
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = Instant::now();
    let from = start + window.warmup;
    let until = from + window.measure;
    let shared = Arc::new(Mutex::new(Sample::new()));
    let mut tasks = tokio::task::JoinSet::new();
    let mut i = 0u64;
    loop {
        let scheduled = start + period.mul_f64(i as f64);
        if scheduled >= until {
            break;
        }
        tokio::time::sleep_until(scheduled.into()).await;
        let op = op.clone();
        let shared = shared.clone();
        let measured = scheduled >= from;
        tasks.spawn(async move {
            let r = op(i).await;
            if measured {
                let mut s = shared.lock().await;
                match r {
                    Ok(()) => s.ok(scheduled.elapsed()),
                    Err(e) => s.err(e),
                }
            }
        });
        i += 1;
    }
    let late = tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err();
    let mut total = shared.lock().await.clone();
    if late {
        let left = tasks.len();
        tasks.abort_all();
        for _ in 0..left {
            total.err(format!("still unanswered {grace:?} after the load stopped"));
        }
    }
    total.elapsed = window.measure;
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_counts_rates_and_quantiles() {
        let mut s = Sample::new();
        for ms in 1..=100 {
            s.ok(Duration::from_millis(ms));
        }
        s.err("boom");
        s.err("second");
        s.elapsed = Duration::from_secs(2);
        assert_eq!(s.count(), 100);
        assert_eq!(s.errors, 2);
        assert_eq!(s.first_error.as_deref(), Some("boom"));
        assert!((s.rate() - 50.0).abs() < 1e-9);
        assert!((s.ms(0.5) - 50.0).abs() < 0.1, "p50 {}", s.ms(0.5));
        assert!((s.ms(0.99) - 99.0).abs() < 0.1, "p99 {}", s.ms(0.99));
        assert!((s.max_ms() - 100.0).abs() < 0.1);
        let mut total = Sample::new();
        total.merge(&s);
        total.merge(&s);
        assert_eq!(total.count(), 200);
        assert_eq!(total.errors, 4);
    }

    #[tokio::test]
    async fn the_closed_loop_keeps_every_worker_busy_and_counts_failures() {
        let window = Window {
            warmup: Duration::from_millis(20),
            measure: Duration::from_millis(200),
        };
        let s = closed_loop(4, window, |w, i| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if w == 0 && i % 2 == 0 {
                Err("even")
            } else {
                Ok(())
            }
        })
        .await;
        // Four workers, 10 ms a call, 200 ms: about 80 calls, a eighth failing.
        assert!((40..=90).contains(&(s.count() + s.errors)), "{s:?}");
        assert!(s.errors >= 4 && s.errors < s.count(), "{s:?}");
        assert!(s.ms(0.5) >= 10.0, "{s:?}");
    }

    #[tokio::test]
    async fn the_open_loop_keeps_its_rate_whatever_the_answers() {
        let window = Window {
            warmup: Duration::ZERO,
            measure: Duration::from_millis(500),
        };
        // Each call takes 100 ms; at 100/s a closed loop of one would do 5.
        let s = open_loop(100.0, window, Duration::from_secs(2), |_| async {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Ok::<(), String>(())
        })
        .await;
        assert!((45..=51).contains(&s.count()), "{s:?}");
        assert_eq!(s.errors, 0);
        assert!(s.ms(0.5) >= 100.0, "{s:?}");
    }
}
