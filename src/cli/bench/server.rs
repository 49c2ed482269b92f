//! The server under test: started as a child process of this very binary
//! (so its resident memory is its own, not the load generator's), or an
//! already running one given by `--target`.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tonic::transport::Channel;

/// A server to measure.
pub struct Server {
    pub endpoint: String,
    /// The process whose memory is read, when known.
    pub pid: Option<u32>,
    /// What the figures were taken on (`sqlite`, `postgres` or `target`).
    pub backend: String,
    /// The API token the load generator sends: one made for the run in
    /// the store of a started server, `PROMOFLOW_TOKEN` for `--target`.
    pub token: String,
    child: Option<Child>,
    dir: Option<PathBuf>,
}

/// A fresh directory under the system's temporary one, named `prefix-…`,
/// and the URL of a SQLite file in it: the caller removes the directory.
pub fn temp_sqlite(prefix: &str) -> Result<(String, PathBuf), String> {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let url = format!("sqlite://{}?mode=rwc", dir.join("promoflow.db").display());
    Ok((url, dir))
}

impl Server {
    /// Starts `promoflow serve` on a free port with `database_url` (a fresh
    /// SQLite file in a temporary directory when `None`) and waits until it
    /// answers health checks.
    pub async fn start(database_url: Option<&str>, extra: &[String]) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|e| format!("own executable: {e}"))?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| format!("no free port: {e}"))?;
        let (url, dir) = match database_url {
            Some(u) => (u.to_string(), None),
            None => {
                let (url, dir) = temp_sqlite("promoflow-bench")?;
                (url, Some(dir))
            }
        };
        let backend = if url.starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        };
        // A token of its own, written to the store before the server starts
        // (a given database may already hold tokens, so the server's first
        // admin token cannot be relied on).
        let name = format!("bench-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let admin = crate::domain::access::Grant::global(crate::domain::access::Role::Admin);
        let token = crate::auth::create_token_at(&url, &name, &admin, "system:bench", None)
            .await
            .map_err(|e| format!("cannot create the bench token: {e}"))?;
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(exe)
            .arg("serve")
            .args(["--listen", &listen, "--database-url", &url])
            // Large-flow scenarios go up to 10,000 environments.
            .args(["--max-flow-steps", "10000"])
            .args(extra)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        let server = Self {
            endpoint: format!("http://{listen}"),
            pid: Some(child.id()),
            backend: backend.into(),
            token,
            child: Some(child),
            dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    /// An already running server; memory is read only when its pid is given.
    pub async fn attach(endpoint: &str, pid: Option<u32>) -> Result<Self, String> {
        let server = Self {
            endpoint: endpoint.to_string(),
            pid,
            backend: "target".into(),
            token: std::env::var("PROMOFLOW_TOKEN").unwrap_or_default(),
            child: None,
            dir: None,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&self) -> Result<(), String> {
        let channel = Channel::from_shared(self.endpoint.clone())
            .map_err(|e| format!("{:?} is not a URL: {e}", self.endpoint))?
            .connect_lazy();
        crate::cli::wait_ready(&channel, Duration::from_secs(60)).await
    }

    /// The server's resident memory in bytes, when it can be read.
    pub fn rss(&self) -> Option<u64> {
        rss_of(self.pid?)
    }

    /// CPU time the server has used so far (user + system), when readable.
    pub fn cpu(&self) -> Option<Duration> {
        cpu_of(self.pid?)
    }

    /// Stops a started server with SIGTERM (graceful) and removes its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            for _ in 0..100 {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `VmRSS` of a process, from `/proc/<pid>/status` (Linux only).
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// User + system CPU time of a process, from `/proc/<pid>/stat` (in the
/// kernel's USER_HZ ticks, 100 per second on Linux).
pub fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// The machine the figures come from: logical cores and total memory.
pub fn machine() -> (usize, u64) {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0);
    (cores, mem)
}

/// Raises this process's open-file limit to its hard limit (children, the
/// server among them, inherit it); returns the new soft limit.
pub fn raise_fd_limit() -> Option<u64> {
    rlimit::increase_nofile_limit(u64::MAX).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_and_cpu_of_this_process_are_read_from_proc() {
        let pid = std::process::id();
        let rss = rss_of(pid).expect("VmRSS of this process");
        assert!(rss > 1024 * 1024, "{rss}");
        let before = cpu_of(pid).expect("CPU time of this process");
        // Spin until the clock moves (bounded, for a starved machine): it
        // must move, in 10 ms ticks.
        let t = std::time::Instant::now();
        let mut after = before;
        while after < before + Duration::from_millis(30) && t.elapsed() < Duration::from_secs(20) {
            for _ in 0..100_000 {
                std::hint::black_box(after);
            }
            after = cpu_of(pid).expect("CPU time of this process");
        }
        assert!(
            after >= before + Duration::from_millis(30),
            "{before:?} → {after:?}"
        );
        assert_eq!(rss_of(u32::MAX), None);
        let (cores, mem) = machine();
        assert!(cores >= 1 && mem > 0);
    }
}
