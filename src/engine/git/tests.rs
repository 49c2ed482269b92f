//! Unit tests of what needs no server: the argv and environment of a git
//! command holding a credential.

use super::*;

fn inner(dir: &Path, credentials: Vec<Credential>, insecure: bool) -> Inner {
    Inner {
        cfg: GitConfig {
            credentials,
            allow_insecure_http: insecure,
            ..GitConfig::new(dir)
        },
        home: dir.join("home"),
        repos: dir.join("repos"),
        version: String::new(),
        locks: Default::default(),
        pushed: Default::default(),
    }
}

#[test]
fn tokens_travel_only_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let token = "tok-3f9a1c77e2";
    std::fs::write(dir.path().join("token"), format!("{token}\n")).unwrap();
    let cred = Credential {
        url_prefix: "https://git.example.com/acme".into(),
        username: "bot".into(),
        token_env: None,
        token_file: Some(dir.path().join("token")),
        forge: None,
    };
    let inner = inner(dir.path(), vec![cred], false);
    let repo = url::parse("https://git.example.com/acme/app.git", false).unwrap();
    let inv = inner
        .remote_invocation(Some(dir.path()), &repo, ["fetch", "--", &repo.raw, "main"])
        .unwrap();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("bot:{token}"));
    for arg in &inv.args {
        assert!(
            !arg.contains(token) && !arg.contains(&basic),
            "secret in argv: {arg}"
        );
    }
    assert!(
        !inv.args.iter().any(|a| a.contains('@')),
        "user info in argv"
    );
    let env: HashMap<_, _> = inv.env.iter().cloned().collect();
    assert_eq!(env["GIT_CONFIG_COUNT"], "1");
    assert_eq!(
        env["GIT_CONFIG_KEY_0"],
        "http.https://git.example.com/acme/app.git.extraHeader"
    );
    assert_eq!(
        env["GIT_CONFIG_VALUE_0"],
        format!("Authorization: Basic {basic}")
    );
    assert_eq!(env["GIT_TERMINAL_PROMPT"], "0");
    assert_eq!(env["GIT_CONFIG_NOSYSTEM"], "1");
    assert_eq!(env["GIT_CONFIG_GLOBAL"], "/dev/null");
    assert!(env["HOME"].starts_with(dir.path().to_str().unwrap()));
    let joined = inv.args.join(" ");
    for c in [
        "core.hooksPath=/dev/null",
        "protocol.file.allow=never",
        "protocol.allow=never",
        "http.followRedirects=false",
    ] {
        assert!(joined.contains(c), "{c} missing from {joined}");
    }
    assert!(inv.secrets.iter().any(|s| s == token));
    assert_eq!(inv.host.as_deref(), Some("git.example.com"));

    // Another host, or plain http without allow_insecure_http: no header.
    for url in [
        "https://other.example.com/acme/app",
        "http://git.example.com/acme/app",
    ] {
        let repo = url::parse(url, false).unwrap();
        let inv = inner.remote_invocation(None, &repo, ["ls-remote"]).unwrap();
        assert!(
            !inv.env.iter().any(|(k, _)| k.starts_with("GIT_CONFIG_")
                && k != "GIT_CONFIG_NOSYSTEM"
                && k != "GIT_CONFIG_GLOBAL"),
            "{url}: {:?}",
            inv.env
        );
    }
}

#[test]
fn missing_token_names_the_variable_not_a_secret() {
    let dir = tempfile::tempdir().unwrap();
    let cred = Credential {
        url_prefix: "http://h".into(),
        username: "bot".into(),
        token_env: Some("PROMOFLOW_TEST_SURELY_UNSET_TOKEN".into()),
        token_file: None,
        forge: None,
    };
    let inner = inner(dir.path(), vec![cred], true);
    let repo = url::parse("http://h/x.git", false).unwrap();
    let e = inner
        .remote_invocation(None, &repo, ["ls-remote"])
        .unwrap_err();
    assert!(
        e.to_string().contains("PROMOFLOW_TEST_SURELY_UNSET_TOKEN"),
        "{e}"
    );
}

#[test]
fn messages_and_trailers() {
    let t = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        commit_message(
            "promote app 1.2 from qa to prod\n",
            &[
                t("Promoflow-Release", "r1"),
                t("Promoflow-Environment", "prod")
            ]
        )
        .unwrap(),
        "promote app 1.2 from qa to prod\n\nPromoflow-Release: r1\nPromoflow-Environment: prod\n"
    );
    assert!(commit_message("", &[]).is_err());
    assert!(commit_message("m", &[t("Bad Key", "v")]).is_err());
    assert!(commit_message("m", &[t("K", "a\nb")]).is_err());
}

#[test]
fn jitter_stays_in_bounds() {
    for _ in 0..100 {
        let d = jitter(Duration::from_millis(1000));
        assert!(d >= Duration::from_millis(500) && d < Duration::from_millis(1000));
    }
}

#[test]
fn fast_import_paths_are_quoted_so_no_byte_reads_as_a_command() {
    assert_eq!(
        quote_path("apps/prod/values.yaml"),
        "\"apps/prod/values.yaml\""
    );
    assert_eq!(quote_path("a \"b\"\\c\nd"), "\"a \\\"b\\\"\\\\c\\nd\"");
}
