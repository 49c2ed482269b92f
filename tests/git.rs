//! `promoflow::engine::git` against a real Git smart-HTTP server
//! (`git http-backend` behind the bridge of `common::git_server`).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::git_server::GitServer;
use promoflow::engine::git::{Credential, EditFn, Files, Git, GitConfig, GitError, Pushed, Writes};

const USER: &str = "promoflow-bot";
const TOKEN: &str = "tok-5ecret-9d2f1a";

const PROD: &str =
    "# prod values\nimage:\n  repository: registry/app\n  tag: 1.0.0 # pinned by promoflow\n";

/// A client whose credential for the server holds `token` (none: no
/// credentials at all), with its own cache directory.
async fn client(server: &GitServer, token: Option<&str>) -> (Git, tempfile::TempDir) {
    client_with(server, token, |_| {}).await
}

async fn client_with(
    server: &GitServer,
    token: Option<&str>,
    tweak: impl FnOnce(&mut GitConfig),
) -> (Git, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut credentials = Vec::new();
    if let Some(token) = token {
        let file = dir.path().join("token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        credentials.push(Credential {
            url_prefix: server.base.clone(),
            username: USER.into(),
            token_env: None,
            token_file: Some(file),
            forge: None,
        });
    }
    let mut cfg = GitConfig {
        credentials,
        allow_insecure_http: true,
        timeout: Duration::from_secs(30),
        ..GitConfig::new(dir.path().join("cache"))
    };
    tweak(&mut cfg);
    (Git::new(cfg).await.unwrap(), dir)
}

async fn start() -> GitServer {
    GitServer::start(USER, TOKEN).await
}

/// `commit_and_push` into `apps/prod` on `main` of `url` for release
/// `release`: what a COMMIT to prod does.
async fn to_prod(
    git: &Git,
    url: &str,
    message: &str,
    release: &str,
    edit: &EditFn<'_>,
) -> Result<Pushed, GitError> {
    git.commit_and_push(
        url,
        "main",
        "apps/prod",
        message,
        &trailers(release, "prod"),
        edit,
    )
    .await
}

fn trailers(release: &str, env: &str) -> Vec<(String, String)> {
    vec![
        ("Promoflow-Release".into(), release.into()),
        ("Promoflow-Environment".into(), env.into()),
    ]
}

/// An edit setting the `tag:` line of `file` to `tag`, keeping the rest
/// of the line (and of the file).
fn set_tag(
    file: &'static str,
    tag: &'static str,
) -> impl Fn(&Files) -> Result<Writes, String> + Send + Sync {
    set_line(file, "tag:", tag)
}

/// An edit setting the value of the line starting (after indentation)
/// with `key` in `file`, keeping any comment after it.
fn set_line(
    file: &'static str,
    key: &'static str,
    value: &'static str,
) -> impl Fn(&Files) -> Result<Writes, String> + Send + Sync {
    move |files| {
        let text = files.get(file).ok_or_else(|| format!("{file} not found"))?;
        let text = String::from_utf8(text.clone()).map_err(|e| e.to_string())?;
        let mut out = String::new();
        for line in text.split_inclusive('\n') {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix(key) {
                let indent = &line[..line.len() - trimmed.len()];
                let comment = rest.find(" #").map(|i| &rest[i..]).unwrap_or("\n");
                let comment = comment.trim_end_matches('\n');
                out.push_str(&format!("{indent}{key} {value}{comment}\n"));
            } else {
                out.push_str(line);
            }
        }
        // Every other file comes back unchanged: not part of the commit.
        let mut result: Writes = files.iter().map(|(p, b)| (p.clone(), b.clone())).collect();
        result.retain(|(p, _)| p != file);
        result.push((file.to_string(), out.into_bytes()));
        Ok(result)
    }
}

fn seed(server: &GitServer) -> String {
    server.create_repo(
        "app",
        &[
            ("apps/prod/values.yaml", PROD),
            ("apps/prod/extra.yaml", "replicas: 3\n"),
            ("apps/qa/values.yaml", "image:\n  tag: 1.1.0\n"),
            ("README.md", "# app\n"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commit_changes_only_the_edited_file_and_carries_the_trailers() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let before = server.tip("app", "main");

    let pushed = to_prod(
        &git,
        &url,
        "promote app 1.1.0 from qa to prod",
        "r1",
        &set_tag("values.yaml", "1.1.0"),
    )
    .await
    .unwrap();
    let Pushed::Committed { sha, files } = pushed else {
        panic!("expected a commit, got {pushed:?}");
    };
    assert_eq!(files, ["apps/prod/values.yaml"]);
    assert_eq!(server.tip("app", "main"), sha);
    let log = server.log("app", "main");
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].subject, "promote app 1.1.0 from qa to prod");
    assert_eq!(
        log[0].trailers,
        [
            ("Promoflow-Release".to_string(), "r1".to_string()),
            ("Promoflow-Environment".to_string(), "prod".to_string())
        ]
    );
    assert_eq!(log[1].sha, before);
    assert_eq!(server.changed_files("app", &sha), ["apps/prod/values.yaml"]);
    assert_eq!(
        server.read("app", "main", "apps/prod/values.yaml"),
        PROD.replace("tag: 1.0.0", "tag: 1.1.0")
    );

    let info = git.commit_info(&url, &sha).await.unwrap();
    assert_eq!(info.sha, sha);
    assert_eq!(info.author, "promoflow");
    assert_eq!(info.author_email, "promoflow@localhost");
    assert!(
        chrono::DateTime::parse_from_rfc3339(&info.date).is_ok(),
        "{}",
        info.date
    );
    assert_eq!(
        info.message,
        "promote app 1.1.0 from qa to prod\n\nPromoflow-Release: r1\nPromoflow-Environment: prod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_run_adopts_the_commit_even_under_newer_commits() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let edit = set_tag("values.yaml", "1.1.0");
    let msg = "promote app 1.1.0 from qa to prod";
    let Pushed::Committed { sha, .. } = to_prod(&git, &url, msg, "r1", &edit).await.unwrap() else {
        panic!("expected a commit");
    };
    // Someone commits on top (even undoing the change): the promotion of
    // r1 to prod happened once, and is not made again.
    server.commit_directly("app", "main", "apps/prod/values.yaml", PROD);
    let again = to_prod(&git, &url, msg, "r1", &edit).await.unwrap();
    assert_eq!(again, Pushed::Adopted { sha: sha.clone() });
    // A fresh process (empty cache) adopts it too.
    let (other, _dir2) = client(&server, Some(TOKEN)).await;
    let again = to_prod(&other, &url, msg, "r1", &edit).await.unwrap();
    assert_eq!(again, Pushed::Adopted { sha });
    assert_eq!(server.log("app", "main").len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_that_changes_nothing_makes_no_commit() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let tip = server.tip("app", "main");
    let pushed = to_prod(
        &git,
        &url,
        "promote app 1.0.0 from qa to prod",
        "r2",
        &set_tag("values.yaml", "1.0.0"),
    )
    .await
    .unwrap();
    assert_eq!(pushed, Pushed::NoChanges { tip: tip.clone() });
    assert_eq!(server.tip("app", "main"), tip);
    assert_eq!(server.pushes("app"), 0);

    // An edit failing is the caller's error, unchanged.
    let err = to_prod(&git, &url, "m", "r2", &set_tag("missing.yaml", "1.0.0"))
        .await
        .unwrap_err();
    assert_eq!(err, GitError::Edit("missing.yaml not found".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_that_loses_the_race_reapplies_the_edit_on_the_new_tip() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    // Between our fetch and our push, someone rewrites the comment of the
    // very file we edit, and another file.
    let hand_edited = PROD.replace("# prod values", "# prod values, edited by hand");
    server.inject_before_next_push("app", "main", "apps/prod/values.yaml", &hand_edited);
    server.inject_before_next_push("app", "main", "apps/prod/extra.yaml", "replicas: 5\n");
    let calls = AtomicUsize::new(0);
    let inner = set_tag("values.yaml", "1.1.0");
    let edit = |files: &Files| {
        calls.fetch_add(1, Ordering::SeqCst);
        inner(files)
    };
    let pushed = to_prod(&git, &url, "promote app 1.1.0 from qa to prod", "r1", &edit)
        .await
        .unwrap();
    let Pushed::Committed { sha, .. } = pushed else {
        panic!("expected a commit, got {pushed:?}");
    };
    assert_eq!(server.injected(), 2);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "the edit ran again on the new tip"
    );
    assert_eq!(server.pushes("app"), 2);
    let log = server.log("app", "main");
    let subjects: Vec<&str> = log.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(
        subjects,
        [
            "promote app 1.1.0 from qa to prod",
            "someone else edits apps/prod/extra.yaml",
            "someone else edits apps/prod/values.yaml",
            "initial commit"
        ]
    );
    assert_eq!(log[0].sha, sha);
    assert_eq!(
        server.read("app", "main", "apps/prod/values.yaml"),
        hand_edited.replace("tag: 1.0.0", "tag: 1.1.0")
    );
    assert_eq!(
        server.read("app", "main", "apps/prod/extra.yaml"),
        "replicas: 5\n"
    );
}

/// Three environments promoted at once to one branch: the values of all
/// three land, in three commits.
async fn three_at_once(server: &GitServer, clients: [&Git; 3]) {
    let url = server.create_repo(
        "shared",
        &[(
            "versions.yaml",
            "# one file for every region\nprod: 1.0.0 # eu-west\nprod-eu: 1.0.0\nprod-asia: 1.0.0 # tokyo\n",
        )],
    );
    let envs = ["prod", "prod-eu", "prod-asia"];
    let edits = [
        set_line("versions.yaml", "prod:", "2.0.0"),
        set_line("versions.yaml", "prod-eu:", "2.0.0"),
        set_line("versions.yaml", "prod-asia:", "2.0.0"),
    ];
    let runs = envs
        .iter()
        .zip(&edits)
        .zip(clients)
        .map(|((env, edit), git)| {
            let url = url.clone();
            async move {
                git.commit_and_push(
                    &url,
                    "main",
                    "",
                    &format!("promote app 2.0.0 from qa to {env}"),
                    &trailers("r1", env),
                    edit,
                )
                .await
            }
        });
    let results = futures::future::join_all(runs).await;
    for r in &results {
        assert!(matches!(r, Ok(Pushed::Committed { .. })), "{r:?}");
    }
    let log = server.log("shared", "main");
    assert_eq!(log.len(), 4, "{log:#?}");
    let mut pushed_envs: Vec<String> = log[..3].iter().map(|e| e.trailers[1].1.clone()).collect();
    pushed_envs.sort();
    assert_eq!(pushed_envs, ["prod", "prod-asia", "prod-eu"]);
    assert_eq!(
        server.read("shared", "main", "versions.yaml"),
        "# one file for every region\nprod: 2.0.0 # eu-west\nprod-eu: 2.0.0\nprod-asia: 2.0.0 # tokyo\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_concurrent_commits_from_one_client_are_all_kept() {
    let server = start().await;
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    three_at_once(&server, [&git, &git, &git]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_concurrent_commits_from_two_processes_are_all_kept() {
    let server = start().await;
    let (a, _dir_a) = client(&server, Some(TOKEN)).await;
    let (b, _dir_b) = client(&server, Some(TOKEN)).await;
    three_at_once(&server, [&a, &b, &b]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_fail_as_authentication_without_the_token() {
    let server = start().await;
    let url = seed(&server);
    let host = server.base.trim_start_matches("http://").to_string();
    let wrong = "wrong-tok-77aa31";

    let (bad, _d1) = client(&server, Some(wrong)).await;
    let (none, _d2) = client(&server, None).await;
    // The right token, but never sent over http:// without the flag.
    let (withheld, _d3) =
        client_with(&server, Some(TOKEN), |c| c.allow_insecure_http = false).await;
    for git in [&bad, &none, &withheld] {
        let errors = [
            git.tip(&url, "main").await.unwrap_err(),
            git.tip(&url, "").await.unwrap_err(),
            to_prod(git, &url, "m", "r1", &set_tag("values.yaml", "9.9.9"))
                .await
                .unwrap_err(),
        ];
        for e in errors {
            assert_eq!(e, GitError::Auth { host: host.clone() });
            let text = format!("{e} {e:?}");
            assert_eq!(e.to_string(), format!("authentication failed for {host}"));
            assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
        }
    }
    assert_eq!(server.log("app", "main").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_are_checked_at_write_time() {
    let dir = tempfile::tempdir().unwrap();
    let strict = Git::new(GitConfig::new(dir.path().join("a")))
        .await
        .unwrap();
    let local = Git::new(GitConfig {
        allow_local: true,
        ..GitConfig::new(dir.path().join("b"))
    })
    .await
    .unwrap();
    for ok in [
        "https://github.com/acme/app.git",
        "https://git.example.com:8443/team/app",
        "http://127.0.0.1:3000/app.git",
    ] {
        strict.check_url(ok).unwrap();
        local.check_url(ok).unwrap();
    }
    for (bad, says) in [
        ("", "empty"),
        ("git@github.com:acme/app.git", "SSH"),
        ("ssh://git@github.com/acme/app.git", "ssh://"),
        ("git://github.com/acme/app.git", "git://"),
        (
            "https://user:secret-pw@github.com/acme/app.git",
            "--git-credentials",
        ),
        ("https://token@github.com/acme/app.git", "user name"),
        ("https://github.com/acme/app.git?x=1", "query"),
        ("https://github.com", "names no repository"),
        ("https:// github.com/acme/app", "spaces"),
        ("github.com/acme/app", "not a URL"),
        ("ext::sh -c touch% /tmp/pwned", "spaces"),
        ("/srv/git/app.git", "--allow-local-git"),
        ("file:///srv/git/app.git", "--allow-local-git"),
    ] {
        let e = strict.check_url(bad).unwrap_err();
        assert!(e.contains(says), "{bad:?}: {e}");
        assert!(!e.contains("secret-pw"), "{e}");
    }
    local.check_url("/srv/git/app.git").unwrap();
    local.check_url("file:///srv/git/app.git").unwrap();
    assert!(local.check_url("file://host/srv/app.git").is_err());
    assert!(local.check_url("ext::sh").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_branch_and_missing_things() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let tip = git.tip(&url, "").await.unwrap();
    assert_eq!(tip.branch, "main");
    assert_eq!(tip.sha, server.tip("app", "main"));

    server.set_default_branch("app", "trunk");
    let tip = git.tip(&url, "").await.unwrap();
    assert_eq!(tip.branch, "trunk");
    let pushed = git
        .commit_and_push(
            &url,
            "",
            "apps/prod",
            "promote app 1.1.0 from qa to prod",
            &trailers("r1", "prod"),
            &set_tag("values.yaml", "1.1.0"),
        )
        .await
        .unwrap();
    let Pushed::Committed { sha, .. } = pushed else {
        panic!("{pushed:?}");
    };
    assert_eq!(server.tip("app", "trunk"), sha);
    assert_eq!(server.log("app", "main").len(), 1);

    let e = git.tip(&url, "nope").await.unwrap_err();
    assert!(
        matches!(&e, GitError::NotFound(m) if m.contains("branch nope")),
        "{e:?}"
    );
    let e = git.tip(&server.url("missing"), "main").await.unwrap_err();
    assert!(matches!(e, GitError::NotFound(_)), "{e:?}");
    let e = git.tip(&url, "-x").await.unwrap_err();
    assert!(matches!(e, GitError::Invalid(_)), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_dir_and_read_file() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let tip = git.tip(&url, "main").await.unwrap();

    let prod = git.read_dir(&url, &tip.sha, "apps/prod").await.unwrap();
    let names: Vec<&str> = prod.keys().map(String::as_str).collect();
    assert_eq!(names, ["extra.yaml", "values.yaml"]);
    assert_eq!(prod["values.yaml"], PROD.as_bytes());
    let apps = git.read_dir(&url, &tip.sha, "apps/").await.unwrap();
    assert_eq!(
        apps.keys().map(String::as_str).collect::<Vec<_>>(),
        ["prod/extra.yaml", "prod/values.yaml", "qa/values.yaml"]
    );
    let root = git.read_dir(&url, &tip.sha, "").await.unwrap();
    assert_eq!(root.len(), 4);
    assert!(
        git.read_dir(&url, &tip.sha, "apps/staging")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(matches!(
        git.read_dir(&url, &tip.sha, "README.md").await,
        Err(GitError::Invalid(_))
    ));
    assert!(matches!(
        git.read_dir(&url, &tip.sha, "../etc").await,
        Err(GitError::Invalid(_))
    ));

    assert_eq!(
        git.read_file(&url, &tip.sha, "apps/qa/values.yaml")
            .await
            .unwrap(),
        Some(b"image:\n  tag: 1.1.0\n".to_vec())
    );
    assert_eq!(
        git.read_file(&url, &tip.sha, "apps/qa/nope.yaml")
            .await
            .unwrap(),
        None
    );
    assert!(matches!(
        git.read_file(&url, &tip.sha, "apps").await,
        Err(GitError::Invalid(_))
    ));

    // A commit the cache has not seen is fetched on demand: someone
    // pushed after our last fetch.
    let newer = server.commit_directly(
        "app",
        "main",
        "apps/qa/values.yaml",
        "image:\n  tag: 1.2.0\n",
    );
    assert_eq!(
        git.read_file(&url, &newer, "apps/qa/values.yaml")
            .await
            .unwrap(),
        Some(b"image:\n  tag: 1.2.0\n".to_vec())
    );
    let e = git
        .read_file(
            &url,
            "0123456789abcdef0123456789abcdef01234567",
            "README.md",
        )
        .await
        .unwrap_err();
    assert!(matches!(e, GitError::NotFound(_)), "{e:?}");
}

/// The pids of live processes whose environment has `HOME` under `dir`:
/// the git commands (and their helpers) of a client caching there.
fn git_processes(dir: &std::path::Path) -> Vec<u32> {
    let needle = format!("HOME={}", dir.display());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // A zombie's environment reads empty.
        let Ok(env) = std::fs::read(entry.path().join("environ")) else {
            continue;
        };
        if env
            .split(|b| *b == 0)
            .any(|var| String::from_utf8_lossy(var).starts_with(&needle))
        {
            pids.push(pid);
        }
    }
    pids
}

async fn until(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_times_out_and_a_dropped_call_kills_git() {
    let server = start().await;
    let url = seed(&server);
    server.stall("app");
    let host = server.base.trim_start_matches("http://").to_string();

    let (git, dir) = client_with(&server, Some(TOKEN), |c| {
        c.timeout = Duration::from_millis(700)
    })
    .await;
    let e = git.tip(&url, "main").await.unwrap_err();
    assert!(
        matches!(&e, GitError::Timeout(m) if m.contains(&host)),
        "{e:?}"
    );
    until("git to be gone after the timeout", || {
        git_processes(dir.path()).is_empty()
    })
    .await;

    // A terminated release drops its step's future mid-fetch.
    let (git, dir) = client(&server, Some(TOKEN)).await;
    let task = tokio::spawn({
        let url = url.clone();
        async move { git.tip(&url, "main").await }
    });
    until("git to run", || git_processes(dir.path()).len() >= 2).await;
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    until("git and its helper to be killed", || {
        git_processes(dir.path()).is_empty()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_repositories_only_with_allow_local() {
    let server = start().await;
    seed(&server);
    let path = server.path("app").display().to_string();
    let (strict, _d1) = client(&server, None).await;
    let e = strict.tip(&path, "main").await.unwrap_err();
    assert!(
        matches!(&e, GitError::Invalid(m) if m.contains("--allow-local-git")),
        "{e:?}"
    );

    let (local, _d2) = client_with(&server, None, |c| c.allow_local = true).await;
    for url in [path.clone(), format!("file://{path}")] {
        let tip = local.tip(&url, "").await.unwrap();
        assert_eq!(tip.sha, server.tip("app", "main"));
    }
    let pushed = local
        .commit_and_push(
            &path,
            "main",
            "apps/prod",
            "promote app 1.1.0 from qa to prod",
            &trailers("r1", "prod"),
            &set_tag("values.yaml", "1.1.0"),
        )
        .await
        .unwrap();
    assert!(matches!(pushed, Pushed::Committed { .. }), "{pushed:?}");
    assert_eq!(server.log("app", "main").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_under_lists_the_commits_that_touched_a_directory() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let first = git.tip(&url, "main").await.unwrap().sha;
    let prod = server.commit_directly("app", "main", "apps/prod/values.yaml", "a: 1\n");
    let elsewhere = server.commit_directly("app", "main", "README.md", "# app, edited\n");
    let Pushed::Committed { sha: promoted, .. } = git
        .commit_and_push(
            &url,
            "main",
            "apps/prod",
            "promote app 1.1.0 from qa to prod",
            &trailers("r1", "prod"),
            &|_: &Files| Ok(vec![("values.yaml".to_string(), b"a: 2\n".to_vec())]),
        )
        .await
        .unwrap()
    else {
        panic!("expected a commit");
    };
    let tip = git.tip(&url, "main").await.unwrap().sha;
    let shas = |changes: Vec<promoflow::engine::git::Change>| {
        changes.into_iter().map(|c| c.sha).collect::<Vec<_>>()
    };

    let changes = git
        .changes_under(&url, Some(&first), &tip, "apps/prod")
        .await
        .unwrap();
    assert_eq!(
        changes[0].trailers,
        trailers("r1", "prod"),
        "trailers travel with the commit"
    );
    assert_eq!(
        shas(changes),
        [promoted.clone(), prod.clone()],
        "newest first"
    );
    let anywhere = git.changes_under(&url, Some(&first), &tip, "").await;
    assert_eq!(shas(anywhere.unwrap()), [promoted.clone(), elsewhere, prod]);
    let none = git.changes_under(&url, Some(&tip), &tip, "apps/prod").await;
    assert!(none.unwrap().is_empty());
    // A last seen commit the repository does not have (history rewritten):
    // the whole history of the directory.
    let gone = "0123456789abcdef0123456789abcdef01234567";
    let all = git.changes_under(&url, Some(gone), &tip, "apps/prod").await;
    assert_eq!(shas(all.unwrap()).len(), 3, "with the initial commit");
}

/// A second commit from the same process starts from the commit it pushed
/// last, without fetching; when someone else pushed in between, that start
/// is stale: the push is refused by its lease and the edit is made again
/// on the fetched tip, and "no changes" is never concluded from a stale tip.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_tip_that_went_stale_loses_nothing() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let commit = |release: &'static str, tag: &'static str| {
        let git = git.clone();
        let url = url.clone();
        async move {
            git.commit_and_push(
                &url,
                "main",
                "apps/prod",
                &format!("promote app {tag} from qa to prod"),
                &trailers(release, "prod"),
                &set_tag("values.yaml", tag),
            )
            .await
            .unwrap()
        }
    };
    assert!(matches!(
        commit("r1", "1.1.0").await,
        Pushed::Committed { .. }
    ));
    // Nobody else pushed: the next commit lands on ours.
    let Pushed::Committed { sha: second, .. } = commit("r2", "1.2.0").await else {
        panic!("expected a commit");
    };
    assert_eq!(server.tip("app", "main"), second);
    assert_eq!(server.pushes("app"), 2, "no push was refused");

    // Someone sets the tag back and edits another file.
    let back = PROD.replace("1.0.0", "1.1.0");
    server.commit_directly("app", "main", "apps/prod/values.yaml", &back);
    server.commit_directly("app", "main", "apps/prod/extra.yaml", "replicas: 7\n");
    // 1.2.0 is what our remembered tip holds, not what the branch holds.
    let Pushed::Committed { sha, .. } = commit("r3", "1.2.0").await else {
        panic!("a stale tip must not answer \"no changes\"");
    };
    assert_eq!(server.tip("app", "main"), sha);
    assert!(
        server
            .read("app", "main", "apps/prod/values.yaml")
            .contains("tag: 1.2.0")
    );
    assert_eq!(
        server.read("app", "main", "apps/prod/extra.yaml"),
        "replicas: 7\n"
    );
    let subjects: Vec<String> = server
        .log("app", "main")
        .into_iter()
        .map(|e| e.subject)
        .collect();
    assert_eq!(
        subjects[..4],
        [
            "promote app 1.2.0 from qa to prod",
            "someone else edits apps/prod/extra.yaml",
            "someone else edits apps/prod/values.yaml",
            "promote app 1.2.0 from qa to prod",
        ]
    );

    // The remembered tip is stale again, and this time the edit changes
    // something on it: the push is refused and made again on the new tip.
    let other = server.commit_directly("app", "main", "apps/prod/extra.yaml", "replicas: 9\n");
    let Pushed::Committed { sha, .. } = commit("r4", "1.3.0").await else {
        panic!("expected a commit");
    };
    let log = server.log("app", "main");
    assert_eq!(
        (log[0].sha.as_str(), log[1].sha.as_str()),
        (sha.as_str(), other.as_str())
    );
    assert_eq!(
        server.read("app", "main", "apps/prod/extra.yaml"),
        "replicas: 9\n"
    );
    assert!(
        server
            .read("app", "main", "apps/prod/values.yaml")
            .contains("tag: 1.3.0")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn is_ancestor_follows_history_and_fetches_what_it_lacks() {
    let server = start().await;
    let url = seed(&server);
    let (git, _dir) = client(&server, Some(TOKEN)).await;
    let first = git.tip(&url, "main").await.unwrap().sha;
    // Commits the cache has never seen: fetched on demand.
    let later = server.commit_directly("app", "main", "README.md", "# later\n");
    assert!(git.is_ancestor(&url, &first, &later).await.unwrap());
    assert!(git.is_ancestor(&url, &later, &later).await.unwrap());
    assert!(!git.is_ancestor(&url, &later, &first).await.unwrap());
    let missing = "0123456789abcdef0123456789abcdef01234567";
    assert!(matches!(
        git.is_ancestor(&url, missing, &later).await,
        Err(GitError::NotFound(_))
    ));
}
