//! The `promoflow` command line against a real server: the binary is run as
//! a user would run it, with `PROMOFLOW_SERVER` pointing at a test server,
//! and its exit codes and output are checked.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::*;
use promoflow::proto::v1 as pb;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_promoflow");

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    #[track_caller]
    fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn failed(self) -> Self {
        assert_ne!(
            self.code, 0,
            "expected failure\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `promoflow ARGS` against `server`.
/// Runs `promoflow ARGS` against `server`, with its admin token in
/// `PROMOFLOW_TOKEN`.
async fn cli(server: &TestServer, args: &[&str]) -> Run {
    cli_with(&format!("http://{}", server.addr), &server.db.token, args).await
}

async fn cli_at(url: &str, args: &[&str]) -> Run {
    cli_with(url, "", args).await
}

async fn cli_with(url: &str, token: &str, args: &[&str]) -> Run {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .env("PROMOFLOW_SERVER", url)
        .env("PROMOFLOW_TOKEN", token)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run promoflow");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Writes `text` to a temporary file and returns it (kept until dropped).
fn yaml_file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::Builder::new()
        .suffix(".yaml")
        .tempfile()
        .expect("temp file");
    std::io::Write::write_all(&mut f, text.as_bytes()).expect("write");
    f
}

fn flow_yaml(name: &str, qa_pre_action: &str) -> String {
    let pre = if qa_pre_action.is_empty() {
        String::new()
    } else {
        format!("\n        preAction: {qa_pre_action}")
    };
    format!(
        r#"apiVersion: codefresh.io/v1beta1
kind: PromotionFlow
metadata:
  name: {name}
  annotations:
    description: from the quick start
spec:
  triggerEnvironment: dev
  steps:
    - environment: qa
      dependsOn:
        - dev
      policy:
        action: none{pre}
"#
    )
}

/// Environments dev, qa, prod, prod-eu, prod-asia and product `demo` with an
/// application in each (1.0.0 in dev), all created through the CLI.
async fn seed(server: &TestServer) {
    for env in ["dev", "qa"] {
        cli(server, &["env", "create", env]).await.ok();
    }
    for env in ["prod", "prod-eu", "prod-asia"] {
        cli(
            server,
            &[
                "env",
                "create",
                env,
                "--kind",
                "production",
                "--description",
                "production",
            ],
        )
        .await
        .ok();
    }
    cli(
        server,
        &[
            "product",
            "create",
            "demo",
            "--app",
            "dev=demo-dev@1.0.0",
            "--app",
            "qa=demo-qa",
            "--app",
            "prod=demo-prod",
            "--app",
            "prod-eu=demo-prod-eu",
            "--app",
            "prod-asia=demo-prod-asia",
        ],
    )
    .await
    .ok();
}

async fn wait_for(server: &TestServer, id: &str, want: pb::ReleaseStatus) {
    wait_until(server, id, &format!("{want:?}"), |r| status(r) == want).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn quick_start_apply_edit_render_trigger() {
    let server = TestServer::start().await;
    seed(&server).await;

    let file = yaml_file(&flow_yaml("quick", ""));
    let path = file.path().to_str().unwrap();
    let r = cli(&server, &["flow", "validate", "-f", path]).await.ok();
    assert!(r.stdout.contains("wave 1: qa"), "{}", r.stdout);
    let r = cli(&server, &["flow", "apply", "-f", path]).await.ok();
    assert!(r.stdout.contains("flow quick"), "{}", r.stdout);
    // Applying again updates (or keeps) the same flow: no ALREADY_EXISTS.
    cli(&server, &["flow", "apply", "-f", path]).await.ok();

    let r = cli(
        &server,
        &[
            "flow",
            "edit",
            "quick",
            "--add",
            "prod,prod-eu",
            "--after",
            "qa",
        ],
    )
    .await
    .ok();
    assert!(
        r.stdout.contains("dev → qa → {prod, prod-eu}"),
        "{}",
        r.stdout
    );

    let r = cli(&server, &["flow", "render", "quick", "--format", "mermaid"])
        .await
        .ok();
    for env in ["dev", "qa", "prod", "prod-eu"] {
        assert!(r.stdout.contains(env), "{env} missing in\n{}", r.stdout);
    }
    let r = cli(&server, &["flow", "get", "quick", "-o", "yaml"])
        .await
        .ok();
    assert!(r.stdout.contains("kind: PromotionFlow"), "{}", r.stdout);
    assert!(r.stdout.contains("prod-eu"), "{}", r.stdout);
    cli(&server, &["workflow", "create", "short", "--wait", "100ms"])
        .await
        .ok();
    cli(
        &server,
        &[
            "flow",
            "edit",
            "quick",
            "--policy",
            "prod-eu",
            "--post-action",
            "short",
        ],
    )
    .await
    .ok();
    let flow = cli(&server, &["flow", "get", "quick", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(flow["name"], "quick");
    assert_eq!(flow["steps"].as_array().map(Vec::len), Some(3));
    let prod_eu = &flow["steps"][2];
    assert_eq!(prod_eu["environment"], "prod-eu", "{flow}");
    assert_eq!(prod_eu["policy"]["postAction"], "short", "{flow}");
    // Added without a policy and given only a post-action: the action stays
    // unset (it would be inherited from promotion policies), and the export
    // leaves it out instead of writing `action: none`.
    assert!(prod_eu["policy"].get("action").is_none(), "{flow}");
    let yaml = cli(&server, &["flow", "get", "quick", "-o", "yaml"])
        .await
        .ok()
        .stdout;
    let prod_eu_yaml = yaml
        .split("- environment: prod-eu")
        .nth(1)
        .unwrap_or_default();
    assert!(
        prod_eu_yaml.contains("postAction: short") && !prod_eu_yaml.contains("action: none"),
        "{yaml}"
    );

    // Hooks, timeout and trigger workflow by flag, shown back by `get`; the
    // edits apply in the order given, and an error names the flag.
    let r = cli(
        &server,
        &[
            "flow",
            "edit",
            "quick",
            "--on-fail",
            "short",
            "--on-success",
            "prod=short",
            "--promotion-timeout",
            "30m",
            "--trigger-workflow",
            "short",
        ],
    )
    .await
    .ok();
    assert!(r.stdout.contains("edited"), "{}", r.stdout);
    let flow = cli(&server, &["flow", "get", "quick", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(flow["hooks"]["onFail"], "short", "{flow}");
    assert_eq!(flow["promotionTimeout"], "1800s", "{flow}");
    assert_eq!(flow["triggerWorkflow"], "short", "{flow}");
    assert_eq!(flow["steps"][1]["environment"], "prod", "{flow}");
    assert_eq!(flow["steps"][1]["hooks"]["onSuccess"], "short", "{flow}");
    let r = cli(&server, &["flow", "get", "quick"]).await.ok();
    for shown in [
        "trigger workflow",
        "30m",
        "on-fail=short",
        "on-success=short",
    ] {
        assert!(r.stdout.contains(shown), "{shown} missing in\n{}", r.stdout);
    }
    // A policy for prod-asia given before the --add that brings it in: the
    // edits run in that order, so the policy edit fails, the error names
    // `--policy prod-asia` (not `edits[0]`), and nothing changes.
    let before = flow["version"].clone();
    let r = cli(
        &server,
        &[
            "flow",
            "edit",
            "quick",
            "--policy",
            "prod-asia",
            "--post-action",
            "short",
            "--add",
            "prod-asia",
            "--after",
            "qa",
        ],
    )
    .await
    .failed();
    assert!(r.stderr.contains("  - --policy prod-asia"), "{}", r.stderr);
    assert!(!r.stderr.contains("edits["), "{}", r.stderr);
    let flow = cli(&server, &["flow", "get", "quick", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(flow["version"], before, "{flow}");
    let versions = cli(&server, &["-o", "json", "flow", "versions", "quick"])
        .await
        .ok()
        .json();
    assert!(versions.as_array().map(Vec::len).unwrap_or(0) >= 2);
    cli(&server, &["flow", "copy", "quick", "quick-copy"])
        .await
        .ok();
    let r = cli(&server, &["flow", "list"]).await.ok();
    assert!(r.stdout.contains("quick-copy"), "{}", r.stdout);

    let r = cli(
        &server,
        &[
            "release",
            "trigger",
            "--flow",
            "quick",
            "--product",
            "demo",
            "--wait",
        ],
    )
    .await
    .ok();
    assert!(r.stdout.contains("SUCCEEDED"), "{}", r.stdout);

    let releases = cli(
        &server,
        &["release", "list", "--product", "demo", "-o", "json"],
    )
    .await
    .ok()
    .json();
    let list = releases.as_array().expect("array");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["status"], "RELEASE_STATUS_SUCCEEDED");
    let id = list[0]["id"].as_str().unwrap();
    let r = cli(&server, &["release", "get", id]).await.ok();
    assert!(r.stdout.contains("prod-eu"), "{}", r.stdout);
    let r = cli(
        &server,
        &[
            "flow",
            "render",
            "quick",
            "--release",
            id,
            "--format",
            "dot",
        ],
    )
    .await
    .ok();
    assert!(r.stdout.starts_with("digraph"), "{}", r.stdout);
    assert!(r.stdout.contains("prod-eu"), "{}", r.stdout);
    let product = cli(&server, &["product", "get", "demo", "-o", "json"])
        .await
        .ok()
        .json();
    let apps = product["applications"].as_array().unwrap();
    assert!(
        apps.iter()
            .all(|a| a["version"] == "1.0.0" || a["environment"] == "prod-asia"),
        "{product}"
    );
    let envs = cli(&server, &["env", "list", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(envs.as_array().map(Vec::len), Some(5));
    let r = cli(&server, &["env", "list", "-o", "yaml"]).await.ok();
    assert!(r.stdout.contains("name: prod-asia"), "{}", r.stdout);

    cli(&server, &["workflow", "create", "unused", "--wait", "1s"])
        .await
        .ok();
    let r = cli(&server, &["workflow", "list"]).await.ok();
    assert!(r.stdout.contains("wait 1s"), "{}", r.stdout);
    let done = cli(&server, &["workflow", "delete", "unused", "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(done, serde_json::json!({}));
    cli(&server, &["workflow", "get", "unused"]).await.failed();

    // CI reports a deployment to dev: the product's flow is triggered, unless
    // its --selector says no.
    let mut create = vec![
        "product",
        "create",
        "auto",
        "--flow",
        "quick",
        "--selector",
        "commit-message not-in wip*",
    ];
    let apps: Vec<String> = ["dev", "qa", "prod", "prod-eu"]
        .iter()
        .map(|e| format!("{e}=auto-{e}"))
        .collect();
    for app in &apps {
        create.extend(["--app", app.as_str()]);
    }
    cli(&server, &create).await.ok();
    let r = cli(&server, &["product", "get", "auto"]).await.ok();
    assert!(
        r.stdout.contains("quick (commit-message not-in wip*)"),
        "{}",
        r.stdout
    );
    let r = cli(
        &server,
        &[
            "product",
            "report",
            "auto",
            "--env",
            "dev",
            "--version",
            "1.9.0",
            "--message",
            "wip: half done",
        ],
    )
    .await
    .ok();
    assert!(r.stdout.contains("nothing triggered"), "{}", r.stdout);
    let report = cli(
        &server,
        &[
            "product",
            "report",
            "auto",
            "--env",
            "dev",
            "--version",
            "2.0.0",
            "--sha",
            "abc123",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(report["application"]["version"], "2.0.0", "{report}");
    let id = report["release"]["id"]
        .as_str()
        .expect("a release")
        .to_string();
    cli(&server, &["release", "watch", &id]).await.ok();
    let product = cli(&server, &["product", "get", "auto", "-o", "json"])
        .await
        .ok()
        .json();
    assert!(
        product["applications"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["version"] == "2.0.0"),
        "{product}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_via_cli_then_watch_succeeds() {
    let server = TestServer::start().await;
    seed(&server).await;
    cli(
        &server,
        &[
            "workflow",
            "create",
            "gate",
            "--approval",
            "--timeout",
            "1h",
        ],
    )
    .await
    .ok();
    let file = yaml_file(&flow_yaml("gated", "gate"));
    cli(
        &server,
        &["flow", "apply", "-f", file.path().to_str().unwrap()],
    )
    .await
    .ok();
    let release = cli(
        &server,
        &[
            "release",
            "trigger",
            "--flow",
            "gated",
            "--product",
            "demo",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    let id = release["id"].as_str().expect("id").to_string();
    wait_for(&server, &id, pb::ReleaseStatus::Suspended).await;
    let r = cli(&server, &["release", "get", &id]).await.ok();
    assert!(r.stdout.contains("SUSPENDED"), "{}", r.stdout);
    // `get` says why: the approval it waits for, counted as such.
    assert!(
        r.stdout.contains("pre-action gate: awaiting approval"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("1 awaiting approval"), "{}", r.stdout);
    // The piped view counts the suspended environment as awaiting approval
    // (not running) and prints what to run.
    let r = cli(&server, &["release", "watch", &id, "--until", "suspended"])
        .await
        .ok();
    assert!(r.stdout.contains("1 awaiting approval"), "{}", r.stdout);
    assert!(!r.stdout.contains("1 running"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains(&format!("approve: promoflow release approve {id} qa")),
        "{}",
        r.stdout
    );
    // Ctrl-C stops the watch, not the release, and says how to come back.
    let mut child = tokio::process::Command::new(BIN)
        .args(["release", "watch", &id])
        .env("PROMOFLOW_SERVER", format!("http://{}", server.addr))
        .env("PROMOFLOW_TOKEN", &server.db.token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promoflow");
    let mut stdout = child.stdout.take().expect("stdout");
    let mut first = [0u8; 1];
    // Its first output: the watch is attached and its handler installed.
    tokio::io::AsyncReadExt::read_exact(&mut stdout, &mut first)
        .await
        .expect("output");
    let pid = child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill");
    assert!(kill.success());
    let out = child.wait_with_output().await.expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("keeps running on the server"), "{stderr}");
    assert!(
        stderr.contains(&format!("re-attach: promoflow release watch {id}")),
        "{stderr}"
    );
    let r = cli(&server, &["release", "get", &id, "-o", "json"])
        .await
        .ok()
        .json();
    assert_eq!(r["status"], "RELEASE_STATUS_SUSPENDED", "{r}");
    cli(
        &server,
        &["release", "approve", &id, "qa", "--comment", "looks good"],
    )
    .await
    .ok();
    let r = cli(&server, &["release", "watch", &id]).await.ok();
    assert!(r.stdout.contains("SUCCEEDED"), "{}", r.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn terminate_then_retry() {
    let server = TestServer::start().await;
    seed(&server).await;
    cli(&server, &["workflow", "create", "gate", "--approval"])
        .await
        .ok();
    let file = yaml_file(&flow_yaml("gated", "gate"));
    cli(
        &server,
        &["flow", "apply", "-f", file.path().to_str().unwrap()],
    )
    .await
    .ok();
    let id = cli(
        &server,
        &[
            "release",
            "trigger",
            "--flow",
            "gated",
            "--product",
            "demo",
            "-o",
            "id",
        ],
    )
    .await
    .ok()
    .stdout
    .trim()
    .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "-o id: {id:?}");
    // `watch --until` returns once the release waits for the approval.
    cli(&server, &["release", "watch", &id, "--until", "suspended"])
        .await
        .ok();
    wait_for(&server, &id, pb::ReleaseStatus::Suspended).await;
    // A unique tail of the id is enough.
    let tail = &id[id.len() - 6..];
    cli(&server, &["release", "terminate", tail, "--reason", "stop"])
        .await
        .ok();
    let r = cli(&server, &["release", "get", "zz"]).await.failed();
    assert!(r.stderr.contains("not a release id"), "{}", r.all());
    let r = cli(&server, &["release", "get", "ffffff"]).await.failed();
    assert!(
        r.stderr.contains("no release id starts or ends"),
        "{}",
        r.all()
    );
    // Watching a terminated release ends at once, with a non-zero exit code.
    let r = cli(
        &server,
        &["release", "watch", "--latest", "--product", "demo"],
    )
    .await
    .failed();
    assert!(
        r.stdout.contains(&format!("release {id} TERMINATED in ")),
        "{}",
        r.all()
    );

    let r = cli(&server, &["release", "retry", &id]).await.ok();
    assert!(r.stdout.contains("retried"), "{}", r.stdout);
    assert!(!r.stdout.contains("note:"), "{}", r.stdout);
    wait_for(&server, &id, pb::ReleaseStatus::Suspended).await;
    // Rejecting fails the environment: the release ends FAILED.
    cli(
        &server,
        &["release", "reject", &id, "qa", "--comment", "no"],
    )
    .await
    .ok();
    cli(&server, &["release", "watch", &id]).await.failed();
    // The flow changes meanwhile: a retry keeps the pinned version, and
    // says so. A second retry, approved this time, succeeds.
    cli(
        &server,
        &["flow", "edit", "gated", "--description", "second version"],
    )
    .await
    .ok();
    let r = cli(&server, &["release", "retry", &id]).await.ok();
    assert!(
        r.stdout.contains(
            "note: re-runs flow version 1; version 2 exists: trigger a new release to use it"
        ),
        "{}",
        r.stdout
    );
    wait_for(&server, &id, pb::ReleaseStatus::Suspended).await;
    let r = cli(&server, &["release", "approve", &id[..8], "qa", "--wait"])
        .await
        .ok();
    assert!(r.stdout.contains("SUCCEEDED"), "{}", r.stdout);
    // Watched later, a finished release reads as long as it ran (the
    // server's start and finish times), not as long as the watch took.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = cli(&server, &["release", "get", &id, "-o", "json"])
        .await
        .ok()
        .json();
    let at =
        |k: &str| chrono::DateTime::parse_from_rfc3339(got[k].as_str().expect(k)).expect("time");
    let ran = (at("finishTime") - at("startTime")).as_seconds_f64();
    let r = cli(&server, &["release", "watch", &id]).await.ok();
    assert!(
        r.stdout.contains(&format!("SUCCEEDED in {ran:.1}s")),
        "ran {ran}s: {}",
        r.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_are_sentences_with_field_violations() {
    let server = TestServer::start().await;
    seed(&server).await;

    // Unknown field: refused by apply (server) and validate (local parse).
    let bad = flow_yaml("broken", "").replace("action: none", "acton: none");
    let file = yaml_file(&bad);
    let path = file.path().to_str().unwrap();
    let r = cli(&server, &["flow", "apply", "-f", path]).await.failed();
    assert!(r.stderr.contains("acton"), "{}", r.all());
    assert!(!r.stderr.contains("Status {"), "{}", r.all());
    let r = cli(&server, &["flow", "validate", "-f", path])
        .await
        .failed();
    assert!(
        r.all().contains("spec.steps[0].policy.acton"),
        "{}",
        r.all()
    );

    // Shape is fine, the graph is not: the server's violations, by field.
    let unknown = flow_yaml("broken", "").replace("- dev", "- nowhere");
    let file = yaml_file(&unknown);
    let r = cli(
        &server,
        &["flow", "validate", "-f", file.path().to_str().unwrap()],
    )
    .await
    .failed();
    assert!(r.all().contains("depends_on"), "{}", r.all());
    assert!(r.all().contains("nowhere"), "{}", r.all());
    let v = cli(
        &server,
        &[
            "flow",
            "validate",
            "-f",
            file.path().to_str().unwrap(),
            "-o",
            "json",
        ],
    )
    .await
    .failed()
    .json();
    assert!(!v["violations"].as_array().unwrap().is_empty(), "{v}");

    // A bad name: INVALID_ARGUMENT with the field named.
    let r = cli(&server, &["env", "create", "Bad_Name"]).await.failed();
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);
    assert!(r.stderr.contains("invalid"), "{}", r.stderr);
    assert!(r.stderr.contains("  - environment.name: "), "{}", r.stderr);

    // Not found.
    let r = cli(&server, &["release", "get", "nope"]).await.failed();
    assert!(r.stderr.starts_with("error: "), "{}", r.stderr);

    // Flags checked before anything is sent.
    cli(&server, &["workflow", "create", "w"]).await.failed();
    cli(&server, &["flow", "edit", "quick", "--remove", "qa"])
        .await
        .failed();

    // No server there.
    let r = cli_at("http://127.0.0.1:1", &["env", "list"])
        .await
        .failed();
    assert!(r.stderr.contains("cannot reach"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread")]
async fn help_has_examples_and_completions_work() {
    for args in [
        vec!["env", "create", "--help"],
        vec!["product", "create", "--help"],
        vec!["workflow", "create", "--help"],
        vec!["env", "update", "--help"],
        vec!["product", "update", "--help"],
        vec!["workflow", "update", "--help"],
        vec!["flow", "edit", "--help"],
        vec!["release", "trigger", "--help"],
        vec!["release", "watch", "--help"],
    ] {
        let r = cli_at("http://127.0.0.1:1", &args).await.ok();
        assert!(r.stdout.contains("Example"), "{args:?}:\n{}", r.stdout);
    }
    for shell in ["bash", "zsh", "fish"] {
        let r = cli_at("http://127.0.0.1:1", &["completions", shell])
            .await
            .ok();
        assert!(r.stdout.contains("release"), "{shell}");
    }
}

/// The live view on a real terminal: `release watch` runs under `script`
/// (a pseudo-terminal), and some frame shows prod, prod-eu and prod-asia
/// RUNNING at the same time.
#[tokio::test(flavor = "multi_thread")]
async fn live_view_on_a_terminal_shows_parallel_environments() {
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: util-linux `script` is not installed");
        return;
    }
    let server = TestServer::start().await;
    seed(&server).await;
    cli(&server, &["workflow", "create", "soak", "--wait", "2s"])
        .await
        .ok();
    let mut yaml = flow_yaml("parallel", "");
    for env in ["prod", "prod-eu", "prod-asia"] {
        yaml.push_str(&format!(
            "    - environment: {env}\n      dependsOn:\n        - qa\n      policy:\n        action: none\n        postAction: soak\n"
        ));
    }
    let file = yaml_file(&yaml);
    cli(
        &server,
        &["flow", "apply", "-f", file.path().to_str().unwrap()],
    )
    .await
    .ok();
    let id = cli(
        &server,
        &[
            "release",
            "trigger",
            "--flow",
            "parallel",
            "--product",
            "demo",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let command = format!("stty cols 120 rows 40; {BIN} release watch {id}");
    let out = tokio::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env("PROMOFLOW_SERVER", format!("http://{}", server.addr))
        .env("PROMOFLOW_TOKEN", &server.db.token)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("script");
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "exit {:?}\n{raw}", out.status);
    // Frames are separated by the cursor moving back up (CSI n F).
    let frames: Vec<String> = regex::Regex::new(r"\x1b\[\d+F")
        .unwrap()
        .split(&raw)
        .map(|f| {
            regex::Regex::new(r"\x1b\[[0-9;]*[A-Za-z]")
                .unwrap()
                .replace_all(f, "")
                .into_owned()
        })
        .collect();
    assert!(frames.len() > 3, "no redraws:\n{raw}");
    // The three soak side by side for 2 s: some frame shows all three in
    // their post-action (earlier frames may show them in their action).
    let parallel = frames.iter().find(|f| {
        ["prod ", "prod-eu ", "prod-asia "].iter().all(|env| {
            f.lines().any(|l| {
                l.contains(&format!("▶ {env}"))
                    && l.contains("RUNNING")
                    && l.contains("post-action soak")
            })
        })
    });
    let Some(frame) = parallel else {
        panic!("no frame with the three production environments RUNNING their soak:\n{raw}");
    };
    println!("a frame of the live view:\n{frame}");
    assert!(frame.contains("wave 2"), "{frame}");
    assert!(frame.contains("post-action soak"), "{frame}");
    assert!(frame.contains("3 running"), "{frame}");
    assert!(raw.contains("SUCCEEDED"), "{raw}");
}

/// `release watch` survives a server restart: it reconnects to the same
/// address and resumes after the last `seq` it printed, without a gap or a
/// repeated line, and still exits 0 when the release succeeds.
#[tokio::test(flavor = "multi_thread")]
async fn watch_resumes_after_a_server_restart() {
    let short_lease = |c: &mut promoflow::config::ServerConfig| {
        c.lease_duration = Duration::from_secs(1);
    };
    let server = TestServer::start_with(short_lease).await;
    seed(&server).await;
    cli(&server, &["workflow", "create", "soak", "--wait", "3s"])
        .await
        .ok();
    let yaml =
        flow_yaml("soaked", "").replace("action: none", "action: none\n        postAction: soak");
    let file = yaml_file(&yaml);
    cli(
        &server,
        &["flow", "apply", "-f", file.path().to_str().unwrap()],
    )
    .await
    .ok();
    let id = cli(
        &server,
        &[
            "release",
            "trigger",
            "--flow",
            "soaked",
            "--product",
            "demo",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json()["id"]
        .as_str()
        .expect("id")
        .to_string();
    let addr = server.addr;
    let watcher = tokio::process::Command::new(BIN)
        .args(["release", "watch", &id])
        .env("PROMOFLOW_SERVER", format!("http://{addr}"))
        .env("PROMOFLOW_TOKEN", &server.db.token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn watch");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let db = server.stop().await;
    let server = TestServer::start_on(db, |c| {
        c.listen = addr;
        short_lease(c);
    })
    .await;
    let out = tokio::time::timeout(Duration::from_secs(60), watcher.wait_with_output())
        .await
        .expect("watch finished in time")
        .expect("watch output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stderr.contains("resuming after seq"), "{stderr}");
    assert!(
        stdout.contains(&format!("release {id} SUCCEEDED")),
        "{stdout}"
    );
    let qa_done = stdout
        .lines()
        .filter(|l| l.contains("✔ qa") && l.contains("SUCCEEDED"))
        .count();
    assert_eq!(qa_done, 1, "{stdout}");
    println!("{stdout}{stderr}");
    drop(server);
}

/// `promoflow GROUP get NAME -o json`.
async fn get_json(server: &TestServer, group: &str, name: &str) -> Value {
    cli(server, &[group, "get", name, "-o", "json"])
        .await
        .ok()
        .json()
}

/// What every `update` must refuse without changing `name`: no change
/// flags, a stale `--expected-version` (`current` is the current version),
/// and a name that does not exist. `change` is a flag that would change
/// something.
async fn update_refusals(server: &TestServer, group: &str, name: &str, change: &[&str]) {
    let before = get_json(server, group, name).await;
    let current: i64 = before["version"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .expect("version, an int64 as a string");
    assert!(current >= 2, "{before}");

    for args in [
        vec![group, "update", name],
        vec![group, "update", name, "--expected-version", "1"],
    ] {
        let r = cli(server, &args).await.failed();
        assert!(
            r.stderr.contains("nothing to update"),
            "{args:?}: {}",
            r.all()
        );
    }
    assert_eq!(get_json(server, group, name).await, before);

    let stale = (current - 1).to_string();
    let mut args = vec![group, "update", name, "--expected-version", &stale];
    args.extend(change);
    let r = cli(server, &args).await.failed();
    assert!(
        r.stderr.contains(&format!(
            "expected version {stale}, current version is {current}"
        )),
        "{}",
        r.all()
    );
    assert!(r.stderr.contains("(aborted)"), "{}", r.all());
    assert!(r.stderr.contains("run the command again"), "{}", r.all());
    assert_eq!(get_json(server, group, name).await, before);

    let mut args = vec![group, "update", "nope"];
    args.extend(change);
    let r = cli(server, &args).await.failed();
    assert!(r.stderr.contains(r#""nope" not found"#), "{}", r.all());
    cli(server, &[group, "get", "nope"]).await.failed();
}

#[tokio::test(flavor = "multi_thread")]
async fn env_update_changes_only_the_given_fields() {
    let server = TestServer::start().await;
    cli(
        &server,
        &[
            "env",
            "create",
            "prod",
            "--kind",
            "production",
            "--description",
            "EU production",
            "--label",
            "region=eu",
            "--label",
            "tier=1",
            "--label",
            "temp=yes",
        ],
    )
    .await
    .ok();
    let created = get_json(&server, "env", "prod").await;
    assert_eq!(created["version"], "1", "{created}");

    // Labels only: the kind and description stay.
    let r = cli(
        &server,
        &[
            "env",
            "update",
            "prod",
            "--label",
            "tier=2",
            "--label",
            "team=core",
            "--remove-label",
            "temp",
        ],
    )
    .await
    .ok();
    assert_eq!(r.stdout.trim(), "environment prod updated (version 2)");
    let env = get_json(&server, "env", "prod").await;
    assert_eq!(env["version"], "2", "{env}");
    assert_eq!(
        env["labels"],
        serde_json::json!({"region": "eu", "tier": "2", "team": "core"})
    );
    assert_eq!(env["kind"], "ENVIRONMENT_KIND_PRODUCTION", "{env}");
    assert_eq!(env["description"], "EU production", "{env}");
    assert_eq!(env["createTime"], created["createTime"], "{env}");

    // Kind and description; --clear-labels before --label; -o json prints
    // the updated environment.
    let updated = cli(
        &server,
        &[
            "env",
            "update",
            "prod",
            "--kind",
            "non-production",
            "--description",
            "",
            "--clear-labels",
            "--label",
            "only=this",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["version"], "3", "{updated}");
    let env = get_json(&server, "env", "prod").await;
    for e in [&updated, &env] {
        assert_eq!(e["kind"], "ENVIRONMENT_KIND_NON_PRODUCTION", "{e}");
        assert_eq!(e.get("description"), None, "cleared, so left out: {e}");
        assert_eq!(e["labels"], serde_json::json!({"only": "this"}), "{e}");
    }

    // Pinned to the current version: accepted.
    cli(
        &server,
        &[
            "env",
            "update",
            "prod",
            "--description",
            "pinned",
            "--expected-version",
            "3",
        ],
    )
    .await
    .ok();
    let env = get_json(&server, "env", "prod").await;
    assert_eq!(env["version"], "4", "{env}");
    assert_eq!(env["description"], "pinned", "{env}");

    // Removing a label that is not there is refused.
    let r = cli(
        &server,
        &["env", "update", "prod", "--remove-label", "temp"],
    )
    .await
    .failed();
    assert!(r.stderr.contains(r#"no label "temp""#), "{}", r.all());
    assert_eq!(get_json(&server, "env", "prod").await, env);

    update_refusals(&server, "env", "prod", &["--description", "stale"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn product_update_changes_only_the_given_fields() {
    let server = TestServer::start().await;
    for env in ["dev", "qa", "prod", "staging"] {
        cli(&server, &["env", "create", env]).await.ok();
    }
    for flow in ["seq", "hot"] {
        let file = yaml_file(&flow_yaml(flow, ""));
        cli(
            &server,
            &["flow", "apply", "-f", file.path().to_str().unwrap()],
        )
        .await
        .ok();
    }
    cli(
        &server,
        &[
            "product",
            "create",
            "shop",
            "--description",
            "the shop",
            "--app",
            "dev=shop-dev@1.0.0",
            "--app",
            "qa=shop-qa@0.9.0",
            "--app",
            "staging=shop-staging",
            "--flow",
            "seq",
        ],
    )
    .await
    .ok();
    // A selector on `seq`, which only the API sets: the CLI keeps it.
    let mut product = server
        .products()
        .get_product(pb::GetProductRequest {
            name: "shop".into(),
        })
        .await
        .expect("get product")
        .into_inner()
        .product
        .expect("product");
    let selector = pb::TriggerSelector {
        key: pb::SelectorKey::GitRevision as i32,
        operator: pb::SelectorOperator::In as i32,
        values: vec!["main".into()],
    };
    product.promotion_flows[0].selectors = vec![selector];
    server
        .products()
        .update_product(pb::UpdateProductRequest {
            product: Some(product),
            expected_version: 1,
        })
        .await
        .expect("update product");

    // Applications and flows; the description and concurrency stay. (An
    // application the product's flows need could not be removed: staging
    // is in none of them.)
    let r = cli(
        &server,
        &[
            "product",
            "update",
            "shop",
            "--app",
            "dev=shop-dev-2",
            "--app",
            "prod=shop-prod@0.8.0",
            "--remove-app",
            "staging",
            "--flow",
            "hot",
            "--flow",
            "seq",
        ],
    )
    .await
    .ok();
    assert_eq!(r.stdout.trim(), "product shop updated (version 3)");
    let p = get_json(&server, "product", "shop").await;
    assert_eq!(p["version"], "3", "{p}");
    assert_eq!(p["description"], "the shop", "{p}");
    assert_eq!(p["concurrency"], "CONCURRENCY_QUEUE", "{p}");
    let apps: Vec<(&str, &str, &str)> = p["applications"]
        .as_array()
        .expect("applications")
        .iter()
        .map(|a| {
            (
                a["environment"].as_str().unwrap(),
                a["name"].as_str().unwrap(),
                a["version"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        apps,
        [
            ("dev", "shop-dev-2", "1.0.0"),
            ("qa", "shop-qa", "0.9.0"),
            ("prod", "shop-prod", "0.8.0")
        ],
        "{p}"
    );
    assert_eq!(
        p["promotionFlows"],
        serde_json::json!([
            {"flow": "hot"},
            {"flow": "seq", "selectors": [{
                "key": "SELECTOR_KEY_GIT_REVISION",
                "operator": "SELECTOR_OPERATOR_IN",
                "values": ["main"],
            }]},
        ]),
        "{p}"
    );

    // Description and concurrency; applications and flows stay.
    let updated = cli(
        &server,
        &[
            "product",
            "update",
            "shop",
            "--description",
            "",
            "--concurrency",
            "terminate",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["version"], "4", "{updated}");
    let after = get_json(&server, "product", "shop").await;
    for q in [&updated, &after] {
        assert_eq!(q.get("description"), None, "cleared, so left out: {q}");
        assert_eq!(q["concurrency"], "CONCURRENCY_TERMINATE", "{q}");
        assert_eq!(q["applications"], p["applications"], "{q}");
        assert_eq!(q["promotionFlows"], p["promotionFlows"], "{q}");
    }

    // --clear-flows empties the list, and only it.
    cli(&server, &["product", "update", "shop", "--clear-flows"])
        .await
        .ok();
    let cleared = get_json(&server, "product", "shop").await;
    assert_eq!(cleared["version"], "5", "{cleared}");
    assert_eq!(cleared["promotionFlows"], Value::Null, "{cleared}");
    assert_eq!(cleared["applications"], p["applications"], "{cleared}");
    assert_eq!(cleared["concurrency"], "CONCURRENCY_TERMINATE", "{cleared}");

    // An existing application's recorded version is not changed by update:
    // a different @VERSION is refused, pointing at `product report`.
    let r = cli(
        &server,
        &["product", "update", "shop", "--app", "dev=x@2.0.0"],
    )
    .await
    .failed();
    assert!(r.stderr.contains("has version 1.0.0"), "{}", r.all());
    assert!(
        r.stderr.contains("promoflow product report shop"),
        "{}",
        r.all()
    );
    let r = cli(
        &server,
        &["product", "update", "shop", "--remove-app", "staging"],
    )
    .await
    .failed();
    assert!(
        r.stderr
            .contains(r#"no application in environment "staging""#),
        "{}",
        r.all()
    );
    assert_eq!(get_json(&server, "product", "shop").await, cleared);

    update_refusals(&server, "product", "shop", &["--description", "stale"]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn workflow_update_keeps_or_replaces_the_kind() {
    let server = TestServer::start().await;
    cli(
        &server,
        &[
            "workflow",
            "create",
            "soak",
            "--wait",
            "30s",
            "--description",
            "soak it",
        ],
    )
    .await
    .ok();
    cli(
        &server,
        &[
            "workflow",
            "create",
            "smoke",
            "--http",
            "https://ci.example.com/smoke",
            "--header",
            "token=abc",
            "--max-attempts",
            "3",
            "--timeout",
            "1m",
            "--description",
            "smoke tests",
        ],
    )
    .await
    .ok();

    // The description alone: the kind stays.
    let r = cli(
        &server,
        &["workflow", "update", "soak", "--description", "longer soak"],
    )
    .await
    .ok();
    assert_eq!(
        r.stdout.trim(),
        "workflow soak updated (version 2: wait 30s)"
    );
    let w = get_json(&server, "workflow", "soak").await;
    assert_eq!(w["version"], "2", "{w}");
    assert_eq!(w["description"], "longer soak", "{w}");
    assert_eq!(w["wait"]["duration"], "30s", "{w}");

    // A kind flag replaces the kind entirely; the description stays.
    let updated = cli(
        &server,
        &[
            "workflow",
            "update",
            "smoke",
            "--approval",
            "--timeout",
            "1h",
            "-o",
            "json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(updated["version"], "2", "{updated}");
    let w = get_json(&server, "workflow", "smoke").await;
    for x in [&updated, &w] {
        assert_eq!(x["approval"]["timeout"], "3600s", "{x}");
        assert!(x["http"].is_null(), "{x}");
        assert_eq!(x["description"], "smoke tests", "{x}");
    }

    // The same kind, other settings: replaced as a whole.
    cli(
        &server,
        &[
            "workflow",
            "update",
            "soak",
            "--wait",
            "2m",
            "--expected-version",
            "2",
        ],
    )
    .await
    .ok();
    let w = get_json(&server, "workflow", "soak").await;
    assert_eq!(w["version"], "3", "{w}");
    assert_eq!(w["wait"]["duration"], "120s", "{w}");
    assert_eq!(w["description"], "longer soak", "{w}");

    // --timeout needs a kind flag: it is not dropped silently.
    let r = cli(&server, &["workflow", "update", "soak", "--timeout", "1m"])
        .await
        .failed();
    assert!(r.stderr.contains("--wait"), "{}", r.all());
    assert_eq!(get_json(&server, "workflow", "soak").await, w);

    update_refusals(&server, "workflow", "soak", &["--description", "stale"]).await;

    // A command workflow on a server that does not run them: saved (another
    // replica may run it), with a warning now instead of a failure later.
    let r = cli(
        &server,
        &["workflow", "create", "notify", "--command", "--", "true"],
    )
    .await
    .ok();
    assert!(r.stdout.contains("workflow notify created"), "{}", r.all());
    assert!(
        r.stderr.contains("warning: workflow \"notify\" is a command, and this server does not run command workflows")
            && r.stderr.contains("--allow-command-workflows"),
        "{}",
        r.all()
    );
    let r = cli(
        &server,
        &["workflow", "update", "soak", "--description", "no warning"],
    )
    .await
    .ok();
    assert!(!r.stderr.contains("warning"), "{}", r.all());
}

/// Every command and command group documents an example in its `--help`.
#[test]
fn every_command_has_an_example() {
    use clap::CommandFactory;
    fn walk(cmd: &mut clap::Command, path: &str, missing: &mut Vec<String>) {
        // clap's generated `help` pseudo-commands have nothing to show.
        if cmd.get_name() == "help" {
            return;
        }
        let path = format!("{path} {}", cmd.get_name());
        let help = cmd.render_long_help().to_string();
        if !help.contains("Example") {
            missing.push(path.clone());
        }
        for line in help.lines() {
            // Each example on its own line, under an `Example(s):` heading.
            let text = line.trim_start();
            if (text.starts_with("Example:") || text.starts_with("Examples:"))
                && !text.ends_with(':')
            {
                missing.push(format!("{path}: example on the heading's line: {line:?}"));
            }
            // An empty default is no default: say nothing rather than `""`.
            if line.contains("[default: \"\"]") {
                missing.push(format!("{path}: shows an empty default: {line:?}"));
            }
        }
        for sub in cmd.get_subcommands_mut() {
            walk(sub, &path, missing);
        }
    }
    let mut cli = promoflow::cli::Cli::command();
    cli.build();
    let mut missing = Vec::new();
    for sub in cli.get_subcommands_mut() {
        walk(sub, "promoflow", &mut missing);
    }
    assert!(
        missing.is_empty(),
        "--help without a well-formed example: {missing:?}"
    );
}

/// Every `examples/…` file a `--help` names exists, and the quick-start
/// flows there apply on a server with their environments and give the
/// waves the README describes.
#[tokio::test(flavor = "multi_thread")]
async fn the_example_flows_exist_apply_and_plan() {
    use clap::CommandFactory;
    fn named_files(cmd: &mut clap::Command, found: &mut Vec<String>) {
        let help = cmd.render_long_help().to_string();
        for word in help.split_whitespace() {
            if let Some(at) = word.find("examples/") {
                found.push(word[at..].trim_end_matches([')', ',', '"']).to_string());
            }
        }
        for sub in cmd.get_subcommands_mut() {
            named_files(sub, found);
        }
    }
    let mut top = promoflow::cli::Cli::command();
    top.build();
    let mut named = Vec::new();
    named_files(&mut top, &mut named);
    assert!(named.len() >= 3, "{named:?}");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in &named {
        assert!(
            root.join(f).is_file(),
            "--help names {f}, which does not exist"
        );
    }

    let server = TestServer::start().await;
    for (env, kind) in [
        ("dev", "non-production"),
        ("qa", "non-production"),
        ("staging", "non-production"),
        ("prod", "production"),
        ("prod-eu", "production"),
        ("prod-asia", "production"),
    ] {
        cli(&server, &["env", "create", env, "--kind", kind])
            .await
            .ok();
    }
    cli(&server, &["workflow", "create", "soak-1s", "--wait", "1s"])
        .await
        .ok();
    for (name, waves) in [
        ("multi-env-sequential-promotion", "dev → qa → prod"),
        (
            "multi-env-parallel-promotion",
            "dev → qa → {prod, prod-eu, prod-asia}",
        ),
        (
            "multi-env-dependency-promotion",
            "dev → {qa, staging} → prod",
        ),
    ] {
        let file = root.join("examples").join(format!("{name}.yaml"));
        let applied = cli(&server, &["flow", "apply", "-f", &file.to_string_lossy()])
            .await
            .ok();
        assert!(applied.stdout.contains(name), "{applied:?}");
        // Applying the same document again changes nothing.
        let again = cli(&server, &["flow", "apply", "-f", &file.to_string_lossy()])
            .await
            .ok();
        assert!(
            again
                .stdout
                .contains(&format!("flow {name} unchanged (version 1)")),
            "{again:?}"
        );
        let shown = cli(&server, &["flow", "get", name]).await.ok();
        assert!(shown.stdout.contains(waves), "{name}: {}", shown.stdout);
    }
}

/// One file of a product, the flow it triggers and the template it names,
/// written in the wrong order: `flow apply` applies the template, then the
/// flow, then the product, one line each. A file whose second document is
/// broken stops there, naming it, after applying the first.
#[tokio::test(flavor = "multi_thread")]
async fn flow_apply_takes_a_multi_document_file_in_dependency_order() {
    let server = TestServer::start().await;
    for env in ["dev", "qa"] {
        cli(&server, &["env", "create", env]).await.ok();
    }
    let product = r#"apiVersion: codefresh.io/v1beta2
kind: Product
metadata:
  name: demo
  annotations:
    promoflow.io/applications: |
      - {environment: dev, name: demo-dev, version: "1.0.0"}
      - {environment: qa, name: demo-qa}
spec:
  promotionTemplateRef: tag
  promotionFlows:
    - name: quick
"#;
    let template = r#"apiVersion: codefresh.io/v1beta1
kind: PromotionTemplate
metadata:
  name: tag
spec:
  applicationSourceSelector: {}
  priority: 0
  versionSource: {file: values.yaml, jsonPath: $.image.tag}
"#;
    let file = yaml_file(&format!(
        "{product}---\n{}---\n{template}",
        flow_yaml("quick", "")
    ));
    let path = file.path().to_str().expect("path");
    let run = cli(&server, &["flow", "apply", "-f", path]).await.ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "promotion template tag created (version 1)",
            "flow quick created (version 1)",
            "product demo created (version 1, 2 applications)",
        ],
        "{}",
        run.all()
    );
    let p = get_product(&server, "demo").await.expect("product");
    assert_eq!(
        (
            p.promotion_template_ref.as_str(),
            p.promotion_flows[0].flow.as_str()
        ),
        ("tag", "quick")
    );

    // `product apply` takes only products; a broken document stops the run.
    let again = cli(&server, &["product", "apply", "-f", path])
        .await
        .failed();
    assert!(
        again
            .stderr
            .contains("is not applied by `promoflow product apply`"),
        "{}",
        again.all()
    );
    let broken = yaml_file(&format!(
        "{template}---\n{}",
        product.replace("promotionFlows:", "promotionFlow:")
    ));
    let run = cli(
        &server,
        &["flow", "apply", "-f", broken.path().to_str().expect("path")],
    )
    .await
    .failed();
    assert!(
        run.stdout
            .contains("promotion template tag applied (version 2)"),
        "{}",
        run.all()
    );
    assert!(
        run.stderr.contains(
            "document 2 (Product demo, line 10) failed (the document before it was applied)"
        ) && run
            .stderr
            .contains("spec.promotionFlow: unknown field `promotionFlow`"),
        "{}",
        run.all()
    );
    assert_eq!(
        get_product(&server, "demo").await.expect("product").version,
        1,
        "the broken product changed nothing"
    );
}

/// Tokens from the command line: create (secret once, on stdout), use,
/// list, revoke; the audit log; a missing token explained; and the offline
/// way back in.
#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_the_audit_log_from_the_command_line() {
    let server = TestServer::start().await;
    let url = format!("http://{}", server.addr);
    let r = cli_at(&url, &["env", "list"]).await;
    assert_ne!(r.code, 0);
    assert!(
        r.stderr.contains("unauthenticated") && r.stderr.contains("admin.token"),
        "{}",
        r.stderr
    );
    let made = cli(
        &server,
        &["token", "create", "ci", "--role", "viewer", "--env", "qa*"],
    )
    .await
    .ok();
    let secret = made.stdout.trim().to_string();
    assert!(
        secret.starts_with("pf_") && !made.stderr.contains(&secret),
        "{made:?}"
    );
    cli_with(&url, &secret, &["env", "list"]).await.ok();
    let denied = cli_with(&url, &secret, &["env", "create", "x"]).await;
    assert_ne!(denied.code, 0);
    assert!(
        denied.stderr.contains("environments.write"),
        "{}",
        denied.stderr
    );
    let list = cli(&server, &["token", "list"]).await.ok();
    assert!(
        list.stdout.contains("ci") && list.stdout.contains("qa*"),
        "{}",
        list.stdout
    );
    assert!(!list.stdout.contains(&secret));
    cli(&server, &["token", "revoke", "ci"]).await.ok();
    assert_ne!(cli_with(&url, &secret, &["env", "list"]).await.code, 0);
    let audit = cli(
        &server,
        &["audit", "list", "--actor", "token:ci", "-o", "json"],
    )
    .await
    .ok()
    .json();
    let actions: Vec<&str> = audit
        .as_array()
        .expect("array")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(actions, ["environment.create"], "{audit:#}");
    // Offline: straight into the store.
    let offline = cli_at(
        "http://127.0.0.1:1",
        &[
            "token",
            "create",
            "rescue",
            "--role",
            "admin",
            "--database-url",
            &server.db.url,
        ],
    )
    .await
    .ok();
    let rescue = offline.stdout.trim();
    cli_with(&url, rescue, &["token", "list"]).await.ok();
}

/// `--server` takes `host:port` as plaintext; TLS to a plaintext port, and a
/// port where something other than gRPC answers, get a sentence saying so.
#[tokio::test(flavor = "multi_thread")]
async fn server_addresses_and_transport_mismatches() {
    let server = TestServer::start().await;
    cli_with(&server.addr.to_string(), &server.db.token, &["env", "list"])
        .await
        .ok();
    let tls = cli_with(
        &format!("https://{}", server.addr),
        &server.db.token,
        &["env", "list"],
    )
    .await
    .failed();
    assert!(
        tls.stderr.contains("did not answer TLS") && tls.stderr.contains("http://"),
        "{tls:?}"
    );
    // An HTTP/1 server on the port.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                .await;
            // Keep-alive, as HTTP/1 servers do: the client reads the answer.
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(2)).await;
                drop(s);
            });
        }
    });
    let other = cli_with(&addr.to_string(), "", &["env", "list"])
        .await
        .failed();
    assert!(
        other.stderr.contains("no gRPC server answered"),
        "{other:?}"
    );
}

/// Starts `promoflow release follow ARGS` in the background.
fn follow(server: &TestServer, args: &[&str]) -> tokio::process::Child {
    tokio::process::Command::new(BIN)
        .args(["release", "follow"])
        .args(args)
        .env("PROMOFLOW_SERVER", format!("http://{}", server.addr))
        .env("PROMOFLOW_TOKEN", &server.db.token)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run promoflow release follow")
}

/// Stops a follow and returns what it printed.
async fn stop(mut child: tokio::process::Child) -> String {
    child.start_kill().expect("kill");
    let out = child.wait_with_output().await.expect("wait");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `release follow` streams the changes of every release (JSON lines with
/// cursors), or of one flow (lines), and resumes from a cursor.
#[tokio::test(flavor = "multi_thread")]
async fn release_follow_streams_all_releases_with_filters_and_cursors() {
    let server = TestServer::start().await;
    seed(&server).await;
    for name in ["one", "two"] {
        let file = yaml_file(&flow_yaml(name, ""));
        cli(
            &server,
            &["flow", "apply", "-f", file.path().to_str().unwrap()],
        )
        .await
        .ok();
    }
    let all = follow(&server, &["-o", "json"]);
    let only_one = follow(&server, &["--flow", "one"]);
    // Both follows connect to a local server well within this.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ids = Vec::new();
    for name in ["one", "two"] {
        let r = cli(
            &server,
            &[
                "release",
                "trigger",
                "--flow",
                name,
                "--product",
                "demo",
                "--wait",
                "-o",
                "id",
            ],
        )
        .await
        .ok();
        ids.push(
            r.stdout
                .lines()
                .next()
                .unwrap_or_default()
                .trim()
                .to_owned(),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let json = stop(all).await;
    let lines = stop(only_one).await;

    let messages: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for id in &ids {
        let of_it: Vec<&Value> = messages
            .iter()
            .filter(|m| m["event"]["releaseId"] == **id)
            .collect();
        assert!(
            of_it.iter().any(|m| m["event"]["snapshot"]["id"] == **id),
            "{json}"
        );
        assert!(
            of_it
                .iter()
                .any(|m| m["event"]["release"]["status"] == "RELEASE_STATUS_SUCCEEDED"),
            "{json}"
        );
        assert!(
            of_it
                .iter()
                .all(|m| m["cursor"].as_str().is_some_and(|c| !c.is_empty()))
        );
    }
    assert!(
        lines.contains(&format!(
            "{}  demo 1.0.0 via one  ✔ release SUCCEEDED",
            ids[0]
        )),
        "{lines}"
    );
    assert!(
        lines.contains(&format!(
            "{}  demo 1.0.0 via one    qa action: SUCCEEDED",
            ids[0]
        )),
        "{lines}"
    );
    assert!(!lines.contains(&ids[1]), "{lines}");

    // From a cursor: the next message is the one after it, nothing skipped.
    let resumed = follow(
        &server,
        &[
            "-o",
            "json",
            "--after",
            messages[2]["cursor"].as_str().unwrap(),
        ],
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let again = stop(resumed).await;
    let first: Value = serde_json::from_str(again.lines().next().unwrap_or("{}")).expect("json");
    assert_eq!(first, messages[3], "{again}");
    assert_eq!(again.lines().count(), messages.len() - 3, "{again}");
}
