//! The real binary: `promoflow serve` as a child process on a test's
//! database, for what an in-process [`super::TestServer`] cannot show: a
//! `kill -9`, a pause (SIGSTOP), several replicas on one database.
//!
//! [`Serve`] says how to start it (flags, environment), [`Binary`] is one
//! running process: it listens on a port picked here, is ready (health
//! `SERVING`) when `start` returns, can be killed with SIGKILL and restarted
//! on the same address and data, and is killed when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use super::{Api, READY_TIMEOUT, TestDb};

/// How to start `promoflow serve`; `start` runs it.
#[derive(Clone, Debug, Default)]
pub struct Serve {
    name: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
    show_warnings: bool,
}

impl Serve {
    /// `promoflow serve` with its defaults, output discarded.
    pub fn new() -> Self {
        Self {
            name: "promoflow serve".into(),
            ..Default::default()
        }
    }

    /// Replica `id` of several on one database: short leases, a small
    /// pool, and its warnings on the test's stderr.
    pub fn replica(id: &str) -> Self {
        let mut serve = Self::new()
            .args(["--replica-id", id])
            .short_leases()
            .args(["--db-max-connections", "6"]);
        serve.name = format!("replica {id}");
        serve.show_warnings = true;
        serve
    }

    /// Leases of 2 s and a catch-up every 200 ms: a process started after a
    /// killed one is another replica, and takes over the killed one's
    /// releases once their leases expire; this keeps that short.
    pub fn short_leases(self) -> Self {
        self.args(["--lease-duration", "2s", "--catch-up-interval", "200ms"])
    }

    /// More flags after `serve` (`--listen` and `--database-url` are set
    /// by `start`).
    pub fn args<'a>(mut self, args: impl IntoIterator<Item = &'a str>) -> Self {
        self.args.extend(args.into_iter().map(String::from));
        self
    }

    /// An environment variable of the process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Starts the process on `db` on a free port and waits until it is
    /// ready.
    pub async fn start(&self, db: &TestDb) -> Binary {
        let addr = format!("127.0.0.1:{}", free_port());
        let raw = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_lazy();
        let channel = super::conn(
            raw.clone(),
            super::Credentials::bearer(&db.token).expect("token"),
        );
        let mut binary = Binary {
            raw,
            child: self.spawn(&addr, &db.url),
            serve: self.clone(),
            database_url: db.url.clone(),
            addr,
            channel,
        };
        binary.wait_ready().await;
        binary
    }

    fn spawn(&self, addr: &str, database_url: &str) -> Child {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_promoflow"));
        cmd.args(["serve", "--listen", addr, "--database-url", database_url])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null());
        if self.show_warnings {
            cmd.env("RUST_LOG", "warn").stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::null());
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name))
    }
}

/// A free port on 127.0.0.1 (bound, then released for the child).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// One running `promoflow serve`; killed (SIGKILL) when dropped.
pub struct Binary {
    /// `127.0.0.1:PORT`, the same across restarts.
    pub addr: String,
    /// A lazy channel to `addr`: it reconnects after a restart. Its calls
    /// carry the database's admin token.
    pub channel: super::Conn,
    /// The same without credentials.
    pub raw: Channel,
    child: Child,
    serve: Serve,
    database_url: String,
}

impl Api for Binary {
    fn channel(&self) -> super::Conn {
        self.channel.clone()
    }
}

impl Binary {
    /// Waits for health `SERVING`; panics at once if the process exits.
    async fn wait_ready(&mut self) {
        let start = Instant::now();
        loop {
            let step = promoflow::cli::wait_ready(&self.raw, Duration::from_secs(1)).await;
            if step.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited before it was ready: {status}", self.serve.name);
            }
            if start.elapsed() > READY_TIMEOUT {
                panic!(
                    "{} on {}: {}",
                    self.serve.name,
                    self.addr,
                    step.unwrap_err()
                );
            }
        }
    }

    /// `kill -9`: the process dies at once, holding its leases; reaped here.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Kills the process (when it still runs) and starts it again with the
    /// same flags on the same address and database; waits until ready.
    pub async fn restart(&mut self) {
        self.kill();
        self.child = self.serve.spawn(&self.addr, &self.database_url);
        self.wait_ready().await;
    }

    /// SIGSTOP: a long pause, as a stalled VM or GC would cause.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// SIGCONT after [`Binary::pause`].
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {sig} failed");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        self.kill();
    }
}
