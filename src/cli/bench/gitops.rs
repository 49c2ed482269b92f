//! The `gitops` scenario: COMMIT promotions into one repository of a
//! loopback Git smart-HTTP server ([`super::git_http`]), next to bare
//! `git push`es of an equivalent commit to the same branch in the same run.
//!
//! The shape: the trigger environment `qa` and four production regions
//! side by side (`prod`, `prod-eu`, `prod-asia`, `prod-us`), each a
//! Git-backed application whose source is `apps/<product>/<env>` on branch
//! `main` of repository `apps`, promoting `$.image.tag` of its
//! `values.yaml`. So one release is four commits racing for one branch.
//! The trigger applications read their version from `<product>/values.yaml`
//! on branch `ci` of the same repository; the bench plays CI and commits
//! the next version there (directly on disk, while the previous release
//! runs, so it is not on the measured path), which makes every release
//! change something.
//!
//! The baseline is what git itself needs for one such commit, with the
//! git CLI against the same server and branch, one after the other (the
//! promoflow server also writes one commit at a time per branch): fetch
//! the tip into a bare repository, write the blob, the tree (through a
//! temporary index) and the commit, push with a lease on the fetched tip.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use tokio::io::AsyncWriteExt;

use super::git_http::{self, Bridge};
use super::load::{self, Pool, Sample, Window};
use super::scenarios::{
    Finishes, concurrently, ensure_env, metered, status_text, trigger, wait_final,
};
use super::server::Server;
use super::{BenchArgs, Row, progress};
use crate::proto::v1 as pb;
use crate::proto::v1::flow_service_client::FlowServiceClient;
use crate::proto::v1::product_service_client::ProductServiceClient;
use crate::proto::v1::release_service_client::ReleaseServiceClient;

type Res<T> = Result<T, String>;

/// The user the loopback server accepts (its token is random per run).
const USER: &str = "promoflow-bench";
const REPO: &str = "apps";
const BRANCH: &str = "main";
const CI_BRANCH: &str = "ci";
const TARGETS: [&str; 4] = ["prod", "prod-eu", "prod-asia", "prod-us"];

/// The loopback Git server of the scenario and the flags that let the
/// started promoflow server push to it.
pub struct Remote {
    pub base: String,
    bridge: Arc<Bridge>,
    task: tokio::task::JoinHandle<()>,
    dir: PathBuf,
    token: String,
    /// `--git-credentials`, `--allow-insecure-git-http`, `--git-cache-dir`.
    pub server_args: Vec<String>,
}

impl Remote {
    pub async fn start() -> Res<Self> {
        let dir = std::env::temp_dir().join(format!(
            "promoflow-bench-git-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let root = dir.join("repos");
        std::fs::create_dir_all(&root)
            .map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let token = uuid::Uuid::new_v4().simple().to_string();
        let bridge = Arc::new(Bridge::new(root, USER, &token)?);
        let (base, task) = git_http::listen(bridge.clone().router()).await?;
        // The token travels in a file, never in the server's argv.
        let token_file = dir.join("token");
        let creds = dir.join("credentials.yaml");
        let write = |p: &Path, s: String| {
            std::fs::write(p, s).map_err(|e| format!("cannot write {}: {e}", p.display()))
        };
        write(&token_file, token.clone())?;
        write(
            &creds,
            format!(
                "- url_prefix: {base}\n  username: {USER}\n  token_file: {}\n",
                token_file.display()
            ),
        )?;
        let server_args = vec![
            format!("--git-credentials={}", creds.display()),
            "--allow-insecure-git-http".into(),
            format!("--git-cache-dir={}", dir.join("server-cache").display()),
        ];
        Ok(Self {
            base,
            bridge,
            task,
            dir,
            token,
            server_args,
        })
    }

    fn url(&self) -> String {
        format!("{}/{REPO}.git", self.base)
    }

    fn repo_dir(&self) -> PathBuf {
        self.bridge.repo_dir(REPO)
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A values file like the tests' and the demo's: the promoted tag, comments
/// and keys that must stay as they are.
fn values(what: &str, tag: &str) -> String {
    format!(
        "# {what} values: edited by people and by promoflow\n\
         image:\n  repository: registry.example.com/shop # the shop image\n  tag: \"{tag}\"  # promoted\n\
         replicas: 3\n\
         ingress: {{host: {what}.shop.example.com, tls: true}}\n"
    )
}

fn version(n: u64) -> String {
    format!("2.0.{n}")
}

/// Runs `f` off the runtime (git plumbing is blocking).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Res<T> + Send + 'static) -> Res<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("blocking task: {e}"))?
}

/// The names of one run.
struct Names {
    prefix: String,
}

impl Names {
    fn env(&self, e: &str) -> String {
        format!("{}-{e}", self.prefix)
    }
    fn product(&self, i: usize) -> String {
        format!("{}-git{i}", self.prefix)
    }
    fn flow(&self) -> String {
        format!("{}-gitops", self.prefix)
    }
}

/// Creates the repository, the environments, one product per concurrent
/// release and the flow.
async fn seed(names: &Names, remote: &Remote, pool: &Pool, products: usize) -> Res<()> {
    let dir = remote.repo_dir();
    let product_names: Vec<String> = (0..products).map(|i| names.product(i)).collect();
    let ps = product_names.clone();
    blocking(move || {
        git_http::init_bare(&dir, BRANCH)?;
        let mut files: Vec<(String, String)> =
            vec![("bare/values.yaml".into(), values("bare", "1.0.0"))];
        for p in &ps {
            for e in TARGETS {
                files.push((format!("apps/{p}/{e}/values.yaml"), values(e, "1.0.0")));
            }
        }
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        git_http::commit_files(&dir, BRANCH, &refs, "initial values")?;
        let ci: Vec<(String, String)> = ps
            .iter()
            .map(|p| (format!("{p}/values.yaml"), values("qa", &version(1))))
            .collect();
        let refs: Vec<(&str, &str)> = ci.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        git_http::commit_files(&dir, CI_BRANCH, &refs, "first versions").map(|_| ())
    })
    .await?;

    let envs: Vec<String> = std::iter::once("qa")
        .chain(TARGETS)
        .map(|e| names.env(e))
        .collect();
    concurrently(envs, 8, |e| ensure_env(pool.channel(), e)).await?;
    let url = remote.url();
    let source = |branch: &str, path: String| {
        Some(pb::GitSource {
            repo_url: url.clone(),
            branch: branch.into(),
            path,
        })
    };
    let value = "$.image.tag".to_string();
    for p in product_names {
        let mut applications = vec![pb::Application {
            environment: names.env("qa"),
            name: format!("{p}-qa"),
            source: source(CI_BRANCH, p.clone()),
            ..Default::default()
        }];
        applications.extend(TARGETS.iter().map(|e| pb::Application {
            environment: names.env(e),
            name: format!("{p}-{e}"),
            version: "1.0.0".into(),
            source: source(BRANCH, format!("apps/{p}/{e}")),
            ..Default::default()
        }));
        let product = pb::Product {
            name: p,
            description: "promoflow bench: gitops".into(),
            applications,
            promotion_template: Some(pb::PromotionTemplate {
                version_source: Some(pb::VersionSource {
                    file: "values.yaml".into(),
                    json_path: value.clone(),
                }),
                promotion: vec![pb::PromotedFile {
                    file: "values.yaml".into(),
                    json_paths: vec![value.clone()],
                }],
            }),
            ..Default::default()
        };
        ProductServiceClient::new(pool.channel())
            .create_product(pb::CreateProductRequest {
                product: Some(product),
            })
            .await
            .map_err(status_text)?;
    }
    let flow = pb::Flow {
        name: names.flow(),
        description: "promoflow bench: gitops".into(),
        trigger_environment: names.env("qa"),
        steps: TARGETS
            .iter()
            .map(|e| pb::FlowStep {
                environment: names.env(e),
                depends_on: vec![names.env("qa")],
                policy: Some(pb::Policy {
                    action: pb::PromotionAction::Commit as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    FlowServiceClient::new(pool.channel())
        .create_flow(pb::CreateFlowRequest { flow: Some(flow) })
        .await
        .map_err(status_text)?;
    Ok(())
}

/// The bare-git client: a bare repository of its own and git's hardened
/// environment, with the credentials in the environment as promoflow
/// passes them.
struct Client {
    dir: PathBuf,
    url: String,
    env: Vec<(String, String)>,
}

impl Client {
    async fn new(remote: &Remote) -> Res<Self> {
        let dir = remote.dir.join("client.git");
        let d = dir.clone();
        blocking(move || git_http::init_bare(&d, BRANCH)).await?;
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{}", remote.token));
        let url = remote.url();
        let env = vec![
            ("GIT_DIR".into(), dir.display().to_string()),
            ("HOME".into(), remote.dir.display().to_string()),
            ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
            ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
            ("GIT_TERMINAL_PROMPT".into(), "0".into()),
            ("GIT_CONFIG_COUNT".into(), "1".into()),
            ("GIT_CONFIG_KEY_0".into(), format!("http.{url}.extraHeader")),
            (
                "GIT_CONFIG_VALUE_0".into(),
                format!("Authorization: Basic {basic}"),
            ),
            ("GIT_AUTHOR_NAME".into(), "bench".into()),
            ("GIT_AUTHOR_EMAIL".into(), "bench@localhost".into()),
            ("GIT_COMMITTER_NAME".into(), "bench".into()),
            ("GIT_COMMITTER_EMAIL".into(), "bench@localhost".into()),
        ];
        Ok(Self { dir, url, env })
    }

    async fn git(
        &self,
        args: &[&str],
        env: &[(&str, &str)],
        stdin: Option<Vec<u8>>,
    ) -> Res<String> {
        let mut cmd = tokio::process::Command::new("git");
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .envs(env.iter().copied())
            .args(args)
            .current_dir(&self.dir)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| format!("git: {e}"))?;
        if let (Some(data), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(&data)
                .await
                .map_err(|e| format!("git {}: {e}", args[0]))?;
        }
        let out = child
            .wait_with_output()
            .await
            .map_err(|e| format!("git {}: {e}", args[0]))?;
        if !out.status.success() {
            // The header is in the environment, never in the output; only
            // the subcommand is named.
            return Err(format!(
                "git {} failed: {}",
                args[0],
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// One commit of `bare/values.yaml` with tag `tag` on the branch: the
    /// steps promoflow's COMMIT takes, minus its own bookkeeping. With
    /// `last`, the commit this client pushed before, it starts from there
    /// without fetching (as promoflow does for a branch it pushed last);
    /// returns the pushed commit.
    async fn push_once(&self, tag: &str, last: Option<String>) -> Res<String> {
        let tip = match last {
            Some(tip) => tip,
            None => self.fetch().await?,
        };
        self.commit_and_push(tag, &tip).await
    }

    async fn fetch(&self) -> Res<String> {
        let tracking = "refs/bench/main";
        self.git(
            &[
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--",
                &self.url,
                &format!("+refs/heads/{BRANCH}:{tracking}"),
            ],
            &[],
            None,
        )
        .await?;
        self.git(&["rev-parse", "--verify", tracking], &[], None)
            .await
    }

    async fn commit_and_push(&self, tag: &str, tip: &str) -> Res<String> {
        let blob = self
            .git(
                &["hash-object", "-w", "--stdin"],
                &[],
                Some(values("bare", tag).into_bytes()),
            )
            .await?;
        let index = self
            .dir
            .join(format!("index-{}", uuid::Uuid::new_v4().simple()));
        let index_s = index.display().to_string();
        let with = [("GIT_INDEX_FILE", index_s.as_str())];
        self.git(&["read-tree", tip], &with, None).await?;
        self.git(
            &["update-index", "--add", "--index-info"],
            &with,
            Some(format!("100644 {blob}\tbare/values.yaml\n").into_bytes()),
        )
        .await?;
        let tree = self.git(&["write-tree"], &with, None).await;
        let _ = std::fs::remove_file(&index);
        let tree = tree?;
        let sha = self
            .git(
                &[
                    "commit-tree",
                    &tree,
                    "-p",
                    tip,
                    "-m",
                    &format!("bare push {tag}"),
                ],
                &[],
                None,
            )
            .await?;
        let lease = format!("--force-with-lease=refs/heads/{BRANCH}:{tip}");
        let out = self
            .git(
                &[
                    "push",
                    "--porcelain",
                    "--no-verify",
                    &lease,
                    "--",
                    &self.url,
                    &format!("{sha}:refs/heads/{BRANCH}"),
                ],
                &[],
                None,
            )
            .await?;
        if out.lines().any(|l| l.starts_with('!')) {
            return Err(format!("bare push rejected: {out}"));
        }
        Ok(sha)
    }
}

/// The commits on `main` of the server's repository.
async fn commits_on_main(remote: &Remote) -> Res<u64> {
    count_commits(remote.repo_dir()).await
}

async fn count_commits(dir: PathBuf) -> Res<u64> {
    blocking(move || {
        let n = git_http::run_git(&dir, &["rev-list", "--count", BRANCH], &[], None)?;
        n.trim()
            .parse::<u64>()
            .map_err(|e| format!("rev-list --count: {e}"))
    })
    .await
}

/// One measured release: its id and when it was triggered.
struct Triggered {
    id: String,
    at: Instant,
}

pub async fn run(
    args: &BenchArgs,
    prefix: &str,
    pool: &Pool,
    window: Window,
    srv: &Server,
    remote: &Remote,
) -> Res<Vec<Row>> {
    let c = args.gitops_concurrency as usize;
    let names = Arc::new(Names {
        prefix: prefix.to_string(),
    });
    progress(format!(
        "gitops: seeding repository {} and {c} products",
        remote.url()
    ));
    // One product more than releases in flight: its release warms the
    // server's clone of the repository before anything is measured.
    seed(&names, remote, pool, c + 1).await?;
    let warm = trigger(
        pool.channel(),
        pb::TriggerReleaseRequest {
            flow: names.flow(),
            product: names.product(c),
            initiator: "promoflow bench".into(),
            ..Default::default()
        },
    )
    .await?;
    let status = wait_final(pool.channel(), &warm.id, Duration::from_secs(120)).await?;
    if status != pb::ReleaseStatus::Succeeded as i32 {
        return Err(format!(
            "the gitops warm-up release {} ended {:?}",
            warm.id,
            pb::ReleaseStatus::try_from(status)
        ));
    }
    let mut rows = Vec::new();

    let client = Arc::new(Client::new(remote).await?);
    let mut bare_rate = 1e-9;
    for fetch in [true, false] {
        progress(format!(
            "gitops: bare git push, one after the other{}",
            if fetch { "" } else { ", without fetching" }
        ));
        let requests0 = remote.bridge.requests();
        let commits0 = commits_on_main(remote).await?;
        let cl = client.clone();
        let last = Arc::new(tokio::sync::Mutex::new(None::<String>));
        let bare = metered(
            srv,
            load::closed_loop(1, window, move |_, i| {
                let (cl, last) = (cl.clone(), last.clone());
                async move {
                    let mut last = last.lock().await;
                    let from = if fetch { None } else { last.take() };
                    let tag = format!("3.{}.{i}", u8::from(fetch));
                    *last = Some(cl.push_once(&tag, from).await?);
                    Ok::<(), String>(())
                }
            }),
        )
        .await;
        let pushed = commits_on_main(remote).await? - commits0;
        let requests = remote.bridge.requests() - requests0;
        let per_push = requests as f64 / pushed.max(1) as f64;
        let (operation, note) = if fetch {
            bare_rate = bare.rate().max(1e-9);
            (
                "bare git push (fetch, blob/tree/commit, push)",
                "the baseline of the gitops ratio",
            )
        } else {
            (
                "bare git push from its last push (blob/tree/commit, push)",
                "no fetch, like promoflow on a branch it pushed last",
            )
        };
        let mut row = Row::new("gitops", operation, "c=1".into(), &bare);
        row.vs_baseline = Some(bare.rate() / bare_rate);
        row.note = format!("{per_push:.1} HTTP requests per push; {note}");
        rows.push(row.with("http_requests_per_push", per_push));
    }

    progress(format!("gitops: {c} releases at a time, 4 COMMITs each"));
    let finishes = Arc::new(Finishes::default());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let follower = tokio::spawn(
        finishes
            .clone()
            .follow(pool.channel(), names.flow(), ready_tx),
    );
    let _ = ready_rx.await;
    let triggered = Arc::new(std::sync::Mutex::new(Vec::<Triggered>::new()));
    // One writer of branch `ci` at a time: `commit_files` refuses to move
    // a ref that moved under it.
    let ci_lock = Arc::new(tokio::sync::Mutex::new(()));
    let requests0 = remote.bridge.requests();
    let commits0 = commits_on_main(remote).await?;
    let start = Instant::now();
    // Commits that land inside the measured window, counted on the
    // server: the commit rate without rounding to whole releases.
    let in_window = {
        let (from, until) = (
            start + window.warmup,
            start + window.warmup + window.measure,
        );
        let dir = remote.repo_dir();
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            let (a, t0) = (count_commits(dir.clone()).await?, Instant::now());
            tokio::time::sleep_until(until.into()).await;
            let (b, t1) = (count_commits(dir).await?, Instant::now());
            Ok::<_, String>((b - a) as f64 / (t1 - t0).as_secs_f64())
        })
    };
    let (p, n, t, f, lock) = (
        pool.clone(),
        names.clone(),
        triggered.clone(),
        finishes.clone(),
        ci_lock.clone(),
    );
    let dir = remote.repo_dir();
    let releases = metered(
        srv,
        load::closed_loop(c, window, move |worker, i| {
            let (p, n, t, f, lock, dir) = (
                p.clone(),
                n.clone(),
                t.clone(),
                f.clone(),
                lock.clone(),
                dir.clone(),
            );
            async move {
                let product = n.product(worker);
                let want = version(i + 1);
                let at = Instant::now();
                let release = trigger(
                    p.channel(),
                    pb::TriggerReleaseRequest {
                        flow: n.flow(),
                        product: product.clone(),
                        initiator: "promoflow bench".into(),
                        ..Default::default()
                    },
                )
                .await?;
                if release.version != want {
                    return Err(format!(
                        "release {} promotes {} instead of {want}",
                        release.id, release.version
                    ));
                }
                t.lock().unwrap_or_else(|e| e.into_inner()).push(Triggered {
                    id: release.id.clone(),
                    at,
                });
                // CI: the next version, committed while this release runs.
                let next = async {
                    let _guard = lock.lock().await;
                    let file = format!("{product}/values.yaml");
                    let contents = values("qa", &version(i + 2));
                    blocking(move || {
                        git_http::commit_files(
                            &dir,
                            CI_BRANCH,
                            &[(&file, &contents)],
                            "a new version",
                        )
                        .map(|_| ())
                    })
                    .await
                };
                let (next, done) =
                    tokio::join!(next, f.wait(release.id.clone(), Duration::from_secs(300)));
                next?;
                let (status, _) = done?;
                if status != pb::ReleaseStatus::Succeeded as i32 {
                    return Err(format!(
                        "release {} ended {:?}",
                        release.id,
                        pb::ReleaseStatus::try_from(status)
                    ));
                }
                Ok(())
            }
        }),
    )
    .await;
    follower.abort();
    let commits = commits_on_main(remote).await? - commits0;
    let requests = remote.bridge.requests() - requests0;
    let from = start + window.warmup;
    let ids: Vec<String> = triggered
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|t| t.at >= from)
        .map(|t| t.id.clone())
        .collect();
    let all_triggered = triggered.lock().unwrap_or_else(|e| e.into_inner()).len() as u64;

    // The ACTION steps' own times, as the server recorded them.
    let actions = Arc::new(std::sync::Mutex::new(Sample::new()));
    let a = actions.clone();
    concurrently(ids, 8, |id| {
        let (ch, a) = (pool.channel(), a.clone());
        async move {
            let r = ReleaseServiceClient::new(ch)
                .get_release(pb::GetReleaseRequest { release_id: id })
                .await
                .map_err(status_text)?
                .into_inner()
                .release
                .ok_or("GetRelease answered without a release")?;
            let mut a = a.lock().unwrap_or_else(|e| e.into_inner());
            for step in r
                .environments
                .iter()
                .flat_map(|e| &e.steps)
                .filter(|s| s.kind == pb::StepKind::Action as i32)
            {
                match (time(&step.start_time), time(&step.finish_time)) {
                    (Some(s), Some(f)) if !step.commit_sha.is_empty() => {
                        a.ok(f.duration_since(s).unwrap_or_default())
                    }
                    _ => a.err(format!(
                        "an ACTION step of {} without a commit or times",
                        r.id
                    )),
                }
            }
            Ok(())
        }
    })
    .await?;
    let mut actions = actions.lock().unwrap_or_else(|e| e.into_inner()).clone();
    actions.elapsed = window.measure;

    let mut releases = releases;
    // Every release that was triggered and finished made four commits, no
    // more, no less (a lost or doubled commit is an error of the run).
    let expected = 4 * all_triggered;
    if commits != expected {
        releases.err(format!(
            "{commits} commits on {BRANCH} for {all_triggered} releases (expected {expected})"
        ));
    }
    let commit_rate = in_window
        .await
        .map_err(|e| format!("counting commits: {e}"))??;
    let ratio = commit_rate / bare_rate;
    let per_commit = requests as f64 / commits.max(1) as f64;
    let mut row = Row::new(
        "gitops",
        "5-env COMMIT release trigger → SUCCEEDED",
        format!("c={c}"),
        &releases,
    );
    row.vs_baseline = Some(ratio);
    row.note = format!(
        "{commit_rate:.1} commits/s = {:.0}% of bare pushes; {per_commit:.1} HTTP requests per commit (fetches at trigger included)",
        ratio * 100.0
    );
    rows.push(
        row.with("commits_per_second", commit_rate)
            .with("bare_pushes_per_second", bare_rate)
            .with("commits_vs_bare_pushes", ratio)
            .with("http_requests_per_commit", per_commit)
            .with("commits_counted", commits),
    );
    let mut row = Row::new(
        "gitops",
        "COMMIT action (ACTION step start → finish)",
        format!("c={c}"),
        &actions,
    );
    row.server_cores = releases.server_cores;
    row.client_cores = releases.client_cores;
    row.note = "server clock; includes the wait for the branch's lock".into();
    rows.push(row);
    Ok(rows)
}

fn time(t: &Option<prost_types::Timestamp>) -> Option<SystemTime> {
    let t = t.as_ref()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(
        t.seconds.max(0) as u64,
        t.nanos.max(0) as u32,
    ))
}
