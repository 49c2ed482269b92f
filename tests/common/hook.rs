//! A local HTTP endpoint that plays the external system of `http`
//! workflows: it records every call's body, answers after an optional delay,
//! and fails (500) for the environments it is told to.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Hook {
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    failing: Arc<Mutex<HashSet<String>>>,
    delay: Arc<Mutex<Duration>>,
}

impl Hook {
    /// Starts a hook that fails for `failing` environments and answers at
    /// once; returns it with its URL.
    pub async fn start(failing: &[&str]) -> (Self, String) {
        Self::start_with(failing, Duration::ZERO).await
    }

    /// Starts a hook that succeeds for every environment after `delay`.
    pub async fn slow(delay: Duration) -> (Self, String) {
        Self::start_with(&[], delay).await
    }

    async fn start_with(failing: &[&str], delay: Duration) -> (Self, String) {
        let hook = Hook::default();
        hook.failing
            .lock()
            .unwrap()
            .extend(failing.iter().map(|s| s.to_string()));
        *hook.delay.lock().unwrap() = delay;
        let app = axum::Router::new()
            .route("/", axum::routing::post(Self::handle))
            .with_state(hook.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind hook");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        (hook, url)
    }

    async fn handle(
        axum::extract::State(hook): axum::extract::State<Hook>,
        body: axum::body::Bytes,
    ) -> (axum::http::StatusCode, String) {
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let env = v["environment"].as_str().unwrap_or_default().to_string();
        hook.bodies.lock().unwrap().push(v);
        let delay = *hook.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        if hook.failing.lock().unwrap().contains(&env) {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "deploy check exploded".into(),
            )
        } else {
            // Each environment leaves a trace in the promotion context.
            let out = serde_json::json!({ "outputs": { format!("from_{env}"): env } });
            (axum::http::StatusCode::OK, out.to_string())
        }
    }

    /// From now on every environment succeeds.
    pub fn heal(&self) {
        self.failing.lock().unwrap().clear();
    }

    /// The bodies of every call so far, in arrival order.
    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }

    /// `field` of every call so far (empty when missing).
    fn field(&self, field: &str) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .map(|v| v[field].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Calls per environment.
    pub fn counts(&self) -> HashMap<String, usize> {
        tally(self.field("environment"))
    }

    /// Idempotency keys of the calls for `env`, in arrival order.
    pub fn keys(&self, env: &str) -> Vec<String> {
        self.field("environment")
            .into_iter()
            .zip(self.field("idempotency_key"))
            .filter(|(e, _)| e == env)
            .map(|(_, k)| k)
            .collect()
    }

    /// Calls per idempotency key.
    pub fn per_key(&self) -> HashMap<String, usize> {
        tally(self.field("idempotency_key"))
    }

    /// Calls per (release, environment).
    pub fn per_step(&self) -> HashMap<(String, String), usize> {
        tally(
            self.field("release_id")
                .into_iter()
                .zip(self.field("environment")),
        )
    }
}

fn tally<K: std::hash::Hash + Eq>(items: impl IntoIterator<Item = K>) -> HashMap<K, usize> {
    let mut m = HashMap::new();
    for k in items {
        *m.entry(k).or_insert(0) += 1;
    }
    m
}
