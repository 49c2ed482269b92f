//! Real `promoflow serve` processes sharing one database (the external
//! system they call is `common::hook::Hook`).

use std::process::{Child, Command, Stdio};

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
