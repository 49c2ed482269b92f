//! EnvironmentService (`proto/promoflow/v1/environment.proto`).

use super::*;

fn env_names(envs: &[pb::Environment]) -> Vec<String> {
    envs.iter().map(|e| e.name.clone()).collect()
}

#[tokio::test]
async fn environment_lifecycle_and_errors() {
    let server = TestServer::start().await;

    let created = create_env(&server, env("dev")).await.expect("create");
    assert_eq!(created.name, "dev");
    assert_eq!(created.version, 1);

    expect_code(create_env(&server, env("dev")).await, Code::AlreadyExists);
    expect_invalid(
        create_env(&server, env("Bad_Name")).await,
        &["environment.name"],
    );

    let mut changed = created.clone();
    changed.description = "changed".into();
    let updated = update_env(&server, changed.clone(), 1)
        .await
        .expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "changed");

    expect_code(update_env(&server, changed, 1).await, Code::Aborted);
    let got = get_env(&server, "dev").await.expect("get");
    assert_eq!(got.description, "changed", "a stale update changes nothing");
}

#[tokio::test]
async fn environment_round_trips_kind_labels_and_timestamps() {
    let server = TestServer::start().await;
    let input = pb::Environment {
        name: "prod-eu".into(),
        kind: pb::EnvironmentKind::Production as i32,
        description: "Production, Europe".into(),
        labels: labels(&[("team", "payments"), ("region", "eu-west-1")]),
        // Output only: ignored on create.
        version: 42,
        create_time: Some(Timestamp {
            seconds: 1,
            nanos: 0,
        }),
        update_time: None,
    };
    let created = create_env(&server, input.clone()).await.expect("create");
    assert_eq!(created.name, "prod-eu");
    assert_eq!(created.kind, pb::EnvironmentKind::Production as i32);
    assert_eq!(created.description, "Production, Europe");
    assert_eq!(created.labels, input.labels);
    assert_eq!(created.version, 1, "output-only version is ignored");
    assert_ne!(
        ts(&created.create_time),
        (1, 0),
        "create_time is the server's"
    );
    assert_eq!(created.create_time, created.update_time);

    let got = get_env(&server, "prod-eu").await.expect("get");
    assert_eq!(got, created);
}

#[tokio::test]
async fn environment_unspecified_kind_is_stored_as_non_production() {
    let server = TestServer::start().await;
    let input = pb::Environment {
        kind: pb::EnvironmentKind::Unspecified as i32,
        ..env("dev")
    };
    let created = create_env(&server, input).await.expect("create");
    assert_eq!(created.kind, pb::EnvironmentKind::NonProduction as i32);
    let got = get_env(&server, "dev").await.expect("get");
    assert_eq!(got.kind, pb::EnvironmentKind::NonProduction as i32);
}

#[tokio::test]
async fn environment_create_reports_every_violation() {
    let server = TestServer::start().await;
    let long_key = "k".repeat(64);
    let input = pb::Environment {
        name: "Prod_EU".into(),
        kind: 99,
        labels: labels(&[(&long_key, "v"), ("ok", "fine")]),
        ..Default::default()
    };
    let label_field = format!("environment.labels[{long_key}]");
    expect_invalid(
        create_env(&server, input).await,
        &["environment.kind", "environment.name", &label_field],
    );
    let listed = list_envs(&server, 0, "").await.expect("list");
    assert!(listed.environments.is_empty(), "nothing was created");
}

#[tokio::test]
async fn environment_update_replaces_kind_description_and_labels() {
    let server = TestServer::start().await;
    let created = create_env(
        &server,
        pb::Environment {
            labels: labels(&[("team", "web"), ("tier", "2")]),
            ..env("staging")
        },
    )
    .await
    .expect("create");

    let change = pb::Environment {
        kind: pb::EnvironmentKind::Production as i32,
        description: String::new(),
        labels: labels(&[("owner", "sre")]),
        ..created.clone()
    };
    let updated = update_env(&server, change, 1).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.kind, pb::EnvironmentKind::Production as i32);
    assert_eq!(updated.description, "", "an empty description clears it");
    assert_eq!(
        updated.labels,
        labels(&[("owner", "sre")]),
        "labels are replaced"
    );
    assert_eq!(updated.create_time, created.create_time);
    assert!(
        ts(&updated.update_time) > ts(&created.update_time),
        "update_time moves forward"
    );
    assert_eq!(get_env(&server, "staging").await.expect("get"), updated);

    let cleared = update_env(
        &server,
        pb::Environment {
            labels: HashMap::new(),
            ..updated
        },
        2,
    )
    .await
    .expect("clear labels");
    assert!(cleared.labels.is_empty(), "an empty map clears the labels");
    assert_eq!(cleared.version, 3);
}

#[tokio::test]
async fn environment_update_errors_change_nothing() {
    let server = TestServer::start().await;
    let created = create_env(
        &server,
        pb::Environment {
            labels: labels(&[("team", "web")]),
            ..env("dev")
        },
    )
    .await
    .expect("create");
    let change = pb::Environment {
        kind: pb::EnvironmentKind::Production as i32,
        labels: labels(&[("team", "platform")]),
        ..created.clone()
    };

    let unknown = update_env(&server, env("nowhere"), 1).await;
    let status = expect_code(unknown, Code::NotFound);
    assert_message_names(&status, &["nowhere"]);

    expect_invalid(
        update_env(&server, change.clone(), 0).await,
        &["expected_version"],
    );

    let status = expect_code(update_env(&server, change.clone(), 7).await, Code::Aborted);
    assert_message_names(&status, &["dev"]);

    expect_invalid(
        update_env(
            &server,
            pb::Environment {
                name: "Dev".into(),
                ..change
            },
            1,
        )
        .await,
        &["environment.name"],
    );

    let got = get_env(&server, "dev").await.expect("get");
    assert_eq!(got, created, "failed updates change nothing");
}

#[tokio::test]
async fn environment_update_reports_expected_version_with_other_violations() {
    let server = start_with_envs(&["dev"]).await;
    let long_key = "k".repeat(64);
    let change = pb::Environment {
        labels: labels(&[(&long_key, "v")]),
        ..env("dev")
    };
    let label_field = format!("environment.labels[{long_key}]");
    // common.proto: every violation at once, never only the first.
    expect_invalid(
        update_env(&server, change, 0).await,
        &[&label_field, "expected_version"],
    );
}

#[tokio::test]
async fn environment_get_unknown_is_not_found() {
    let server = start_with_envs(&["dev"]).await;
    let status = expect_code(get_env(&server, "qa").await, Code::NotFound);
    assert_message_names(&status, &["qa"]);
}

#[tokio::test]
async fn environment_list_pages_in_name_order() {
    let server = start_with_envs(&["qa", "prod-eu", "dev", "prod", "prod-asia"]).await;
    let sorted = ["dev", "prod", "prod-asia", "prod-eu", "qa"];

    assert_pages_of_two(&sorted, async |token| {
        let page = list_envs(&server, 2, &token).await.expect("list");
        (env_names(&page.environments), page.next_page_token)
    })
    .await;

    let all = list_envs(&server, 0, "").await.expect("default page size");
    assert_eq!(env_names(&all.environments), sorted);
    assert_eq!(all.next_page_token, "", "everything fits in a default page");
    for e in &all.environments {
        assert_eq!(e, &get_env(&server, &e.name).await.expect("get"));
    }

    let huge = list_envs(&server, 100_000, "")
        .await
        .expect("huge page size");
    assert_eq!(env_names(&huge.environments), sorted);
    assert_eq!(huge.next_page_token, "");
}

#[tokio::test]
async fn environment_list_neither_repeats_nor_skips_across_changes() {
    let server = start_with_envs(&["b", "d", "f", "h", "j"]).await;
    let first = list_envs(&server, 2, "").await.expect("page 1");
    assert_eq!(env_names(&first.environments), ["b", "d"]);

    // Between pages: one row ahead of the cursor goes, rows on both sides come.
    delete_env(&server, "f", 0).await.expect("delete f");
    create_env(&server, env("a")).await.expect("create a");
    create_env(&server, env("e")).await.expect("create e");

    let second = list_envs(&server, 2, &first.next_page_token)
        .await
        .expect("page 2");
    assert_eq!(env_names(&second.environments), ["e", "h"]);
    let third = list_envs(&server, 2, &second.next_page_token)
        .await
        .expect("page 3");
    assert_eq!(env_names(&third.environments), ["j"]);
    assert_eq!(third.next_page_token, "");
}

#[tokio::test]
async fn environment_delete_checks_existence_and_version() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let dev = update_env(&server, env("dev"), 1)
        .await
        .expect("update to v2");
    assert_eq!(dev.version, 2);

    let status = expect_code(delete_env(&server, "dev", 1).await, Code::Aborted);
    assert_message_names(&status, &["dev"]);
    assert_eq!(get_env(&server, "dev").await.expect("still there"), dev);

    let status = expect_code(delete_env(&server, "nowhere", 0).await, Code::NotFound);
    assert_message_names(&status, &["nowhere"]);

    delete_env(&server, "dev", 2)
        .await
        .expect("delete at current version");
    expect_code(get_env(&server, "dev").await, Code::NotFound);
    expect_code(delete_env(&server, "dev", 0).await, Code::NotFound);

    delete_env(&server, "qa", 0)
        .await
        .expect("delete at any version");
    expect_code(get_env(&server, "qa").await, Code::NotFound);

    let again = create_env(&server, env("dev")).await.expect("re-create");
    assert_eq!(again.version, 1, "a re-created environment starts over");
}

#[tokio::test]
async fn environment_in_use_by_products_cannot_be_deleted() {
    let server = start_with_envs(&["dev", "qa"]).await;
    for name in ["shop", "web"] {
        create_product(
            &server,
            product(name, vec![app("dev", &format!("{name}-dev"), "1.0.0")]),
        )
        .await
        .expect("create product");
    }

    let status = expect_code(
        delete_env(&server, "dev", 1).await,
        Code::FailedPrecondition,
    );
    assert_message_names(&status, &["shop", "web"]);
    let dev = get_env(&server, "dev").await.expect("dev still exists");
    assert_eq!(dev.version, 1);

    delete_env(&server, "qa", 0).await.expect("qa is not used");

    for name in ["shop", "web"] {
        delete_product(&server, name, 0)
            .await
            .expect("delete product");
    }
    delete_env(&server, "dev", 1)
        .await
        .expect("dev is free once its products are gone");
}

#[tokio::test]
async fn environment_in_use_by_a_flow_cannot_be_deleted() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    create_one_step_flow(&server, "dev-to-qa", "dev", "qa", "").await;

    for used in ["dev", "qa"] {
        let status = expect_code(delete_env(&server, used, 0).await, Code::FailedPrecondition);
        assert_message_names(&status, &["dev-to-qa"]);
        get_env(&server, used).await.expect("still exists");
    }
    delete_env(&server, "prod", 0)
        .await
        .expect("prod is not in the flow");
}
