//! Real `promoflow serve` processes sharing one database, and a local HTTP
//! server that plays the external system and counts every hit.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;

/// One replica: a child process of the real binary.
pub struct Replica {
    pub id: String,
    pub addr: String,
    pub channel: Channel,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

impl Replica {
    /// Starts replica `id` on `database_url` with short leases, and waits
    /// until it is healthy.
    pub async fn start(database_url: &str, id: &str) -> Self {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_promoflow"))
            .args([
                "serve",
                "--listen",
                &addr,
                "--database-url",
                database_url,
                "--replica-id",
                id,
                "--lease-duration",
                "2s",
                "--catch-up-interval",
                "200ms",
                "--db-max-connections",
                "6",
            ])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start promoflow");
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        let replica = Self {
            id: id.to_string(),
            addr,
            channel,
            child,
        };
        replica.wait_ready().await;
        replica
    }

    async fn wait_ready(&self) {
        if let Err(e) =
            promoflow::cli::wait_ready(&self.channel, std::time::Duration::from_secs(30)).await
        {
            panic!("replica {}: {e}", self.id);
        }
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} failed");
    }

    /// `kill -9`: the replica dies holding its leases.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGSTOP / SIGCONT: a long pause, as a stalled VM or GC would cause.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A local HTTP endpoint for `http` workflows: answers 200 after `delay`
/// and records each hit's (release, environment, idempotency key).
#[derive(Clone, Default)]
pub struct HitCounter {
    hits: Arc<Mutex<Vec<(String, String, String)>>>,
    delay: Arc<Mutex<Duration>>,
}

impl HitCounter {
    pub async fn start(delay: Duration) -> (Self, String) {
        let counter = HitCounter::default();
        *counter.delay.lock().unwrap() = delay;
        let app = axum::Router::new()
            .route("/", axum::routing::post(Self::handle))
            .with_state(counter.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (counter, url)
    }

    async fn handle(
        axum::extract::State(c): axum::extract::State<HitCounter>,
        body: axum::body::Bytes,
    ) -> (axum::http::StatusCode, String) {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let field = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        c.hits.lock().unwrap().push((
            field("release_id"),
            field("environment"),
            field("idempotency_key"),
        ));
        let delay = *c.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        (axum::http::StatusCode::OK, r#"{"outputs":{}}"#.into())
    }

    /// Hits per idempotency key.
    pub fn per_key(&self) -> HashMap<String, usize> {
        let mut m = HashMap::new();
        for (_, _, key) in self.hits.lock().unwrap().iter() {
            *m.entry(key.clone()).or_insert(0) += 1;
        }
        m
    }

    /// Hits per (release, environment).
    pub fn per_step(&self) -> HashMap<(String, String), usize> {
        let mut m = HashMap::new();
        for (r, e, _) in self.hits.lock().unwrap().iter() {
            *m.entry((r.clone(), e.clone())).or_insert(0) += 1;
        }
        m
    }
}
