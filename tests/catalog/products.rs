//! ProductService (`proto/promoflow/v1/product.proto`): products, their
//! applications, and ReportDeployment.

use super::*;

/// `environment:name@version` of each application, in order.
fn apps_of(p: &pb::Product) -> Vec<String> {
    p.applications
        .iter()
        .map(|a| format!("{}:{}@{}", a.environment, a.name, a.version))
        .collect()
}

fn commit(sha: &str, message: &str) -> pb::Commit {
    pb::Commit {
        sha: sha.into(),
        message: message.into(),
        author: "Ada Lovelace <ada@example.com>".into(),
        revision: "main".into(),
    }
}

fn deployment(product: &str, environment: &str, version: &str) -> pb::ReportDeploymentRequest {
    pb::ReportDeploymentRequest {
        product: product.into(),
        environment: environment.into(),
        version: version.into(),
        ..Default::default()
    }
}

async fn report(
    server: &TestServer,
    request: pb::ReportDeploymentRequest,
) -> Res<pb::ReportDeploymentResponse> {
    Ok(server
        .products()
        .report_deployment(request)
        .await?
        .into_inner())
}

/// The application of `p` in `environment`.
fn app_in<'a>(p: &'a pb::Product, environment: &str) -> &'a pb::Application {
    p.applications
        .iter()
        .find(|a| a.environment == environment)
        .unwrap_or_else(|| panic!("{} has no application in {environment}", p.name))
}

fn selector(
    key: pb::SelectorKey,
    operator: pb::SelectorOperator,
    values: &[&str],
) -> pb::TriggerSelector {
    pb::TriggerSelector {
        key: key as i32,
        operator: operator as i32,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[tokio::test]
async fn product_create_and_get_keep_applications_in_order() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    let input = product(
        "trioapp",
        vec![
            app("qa", "trioapp-qa", "1.1.0"),
            app("dev", "trioapp-dev", "1.2.0"),
            app("prod", "trioapp-prod", ""),
        ],
    );
    let created = create_product(&server, input).await.expect("create");
    assert_eq!(created.name, "trioapp");
    assert_eq!(created.description, "trioapp product");
    assert_eq!(created.version, 1);
    assert_eq!(
        created.concurrency,
        pb::Concurrency::Queue as i32,
        "UNSPECIFIED is stored as QUEUE"
    );
    assert_eq!(
        apps_of(&created),
        [
            "qa:trioapp-qa@1.1.0",
            "dev:trioapp-dev@1.2.0",
            "prod:trioapp-prod@"
        ]
    );
    assert!(created.create_time.is_some());
    assert_eq!(created.create_time, created.update_time);

    let got = get_product(&server, "trioapp").await.expect("get");
    assert_eq!(got, created);
}

#[tokio::test]
async fn product_application_update_time_is_unset_until_a_version_is_recorded() {
    let server = start_with_envs(&["dev", "prod"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![
                app("dev", "shop-dev", "1.0.0"),
                app("prod", "shop-prod", ""),
            ],
        ),
    )
    .await
    .expect("create");
    assert!(app_in(&created, "dev").update_time.is_some());
    assert_eq!(
        app_in(&created, "prod").update_time,
        None,
        "Application.update_time: unset when no version was ever recorded"
    );
}

#[tokio::test]
async fn product_create_ignores_output_only_application_fields() {
    let server = start_with_envs(&["dev"]).await;
    let input = product(
        "shop",
        vec![pb::Application {
            last_commit: Some(commit("forged", "not reported by anyone")),
            update_time: Some(Timestamp {
                seconds: 1,
                nanos: 0,
            }),
            ..app("dev", "shop-dev", "1.0.0")
        }],
    );
    let created = create_product(&server, input).await.expect("create");
    let dev = app_in(&created, "dev");
    assert_ne!(ts(&dev.update_time), (1, 0), "update_time is output only");
    assert_eq!(dev.last_commit, None, "last_commit is output only");
}

#[tokio::test]
async fn product_duplicate_application_environment_is_invalid() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let input = product(
        "shop",
        vec![
            app("dev", "shop-dev", ""),
            app("dev", "shop-dev-2", ""),
            app("qa", "shop-qa", ""),
        ],
    );
    let status = expect_invalid(
        create_product(&server, input).await,
        &["product.applications[1].environment"],
    );
    let (_, description) = &violations(&status)[0];
    assert!(description.contains("dev"), "{description}");
    expect_code(get_product(&server, "shop").await, Code::NotFound);
}

#[tokio::test]
async fn product_unknown_environment_is_invalid() {
    let server = start_with_envs(&["dev"]).await;
    let input = product(
        "shop",
        vec![app("dev", "shop-dev", ""), app("nowhere", "shop-x", "")],
    );
    let status = expect_invalid(
        create_product(&server, input).await,
        &["product.applications[1].environment"],
    );
    let (_, description) = &violations(&status)[0];
    assert!(description.contains("nowhere"), "{description}");
    expect_code(get_product(&server, "shop").await, Code::NotFound);
}

#[tokio::test]
async fn product_reports_every_violation_at_once() {
    let server = start_with_envs(&["dev"]).await;
    let input = product(
        "Bad_Name",
        vec![
            app("dev", "a", ""),
            app("dev", "b", ""),
            app("nowhere", "", ""),
        ],
    );
    expect_invalid(
        create_product(&server, input).await,
        &[
            "product.name",
            "product.applications[1].environment",
            "product.applications[2].environment",
            "product.applications[2].name",
        ],
    );
    let listed = list_products(&server, 0, "").await.expect("list");
    assert!(listed.products.is_empty(), "nothing was created");
}

#[tokio::test]
async fn product_concurrency_round_trips() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        pb::Product {
            concurrency: pb::Concurrency::Terminate as i32,
            ..product("shop", vec![app("dev", "shop-dev", "")])
        },
    )
    .await
    .expect("create");
    assert_eq!(created.concurrency, pb::Concurrency::Terminate as i32);
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(got.concurrency, pb::Concurrency::Terminate as i32);

    let updated = update_product(
        &server,
        pb::Product {
            concurrency: pb::Concurrency::Unspecified as i32,
            ..got
        },
        1,
    )
    .await
    .expect("update");
    assert_eq!(
        updated.concurrency,
        pb::Concurrency::Queue as i32,
        "UNSPECIFIED is stored as QUEUE"
    );

    expect_invalid(
        create_product(
            &server,
            pb::Product {
                concurrency: 9,
                ..product("web", vec![])
            },
        )
        .await,
        &["product.concurrency"],
    );
}

#[tokio::test]
async fn product_promotion_flows_round_trip() {
    let server = start_with_envs(&["dev", "qa"]).await;
    create_one_step_flow(&server, "dev-to-qa", "dev", "qa", "").await;
    create_one_step_flow(&server, "hotfix", "dev", "qa", "").await;
    use pb::{SelectorKey as Key, SelectorOperator as Op};
    let flows = vec![
        pb::ProductPromotionFlow {
            flow: "hotfix".into(),
            selectors: vec![
                selector(Key::CommitMessage, Op::In, &["*hotfix*", "fix: *"]),
                selector(Key::GitRevision, Op::NotIn, &["main", "release-*"]),
            ],
        },
        pb::ProductPromotionFlow {
            flow: "dev-to-qa".into(),
            selectors: vec![],
        },
        pb::ProductPromotionFlow {
            flow: "hotfix".into(),
            selectors: vec![selector(Key::GitRevision, Op::In, &["v*"])],
        },
    ];
    let created = create_product(
        &server,
        pb::Product {
            promotion_flows: flows.clone(),
            ..product(
                "shop",
                vec![app("dev", "shop-dev", ""), app("qa", "shop-qa", "")],
            )
        },
    )
    .await
    .expect("create");
    assert_eq!(created.promotion_flows, flows);
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(got.promotion_flows, flows);

    let reordered: Vec<_> = flows.iter().rev().cloned().collect();
    let updated = update_product(
        &server,
        pb::Product {
            promotion_flows: reordered.clone(),
            ..got
        },
        1,
    )
    .await
    .expect("update");
    assert_eq!(
        updated.promotion_flows, reordered,
        "order is priority order"
    );
}

#[tokio::test]
async fn product_unknown_promotion_flow_is_invalid() {
    let server = start_with_envs(&["dev"]).await;
    let input = pb::Product {
        promotion_flows: vec![pb::ProductPromotionFlow {
            flow: "ghost".into(),
            selectors: vec![],
        }],
        ..product("shop", vec![app("dev", "shop-dev", "")])
    };
    // product.proto, CreateProduct: "a promotion flow that does not exist"
    // is INVALID_ARGUMENT.
    expect_invalid(
        create_product(&server, input).await,
        &["product.promotion_flows[0].flow"],
    );
}

#[tokio::test]
async fn product_selector_without_operator_is_invalid() {
    let server = start_with_envs(&["dev", "qa"]).await;
    create_one_step_flow(&server, "dev-to-qa", "dev", "qa", "").await;
    let input = pb::Product {
        promotion_flows: vec![pb::ProductPromotionFlow {
            flow: "dev-to-qa".into(),
            selectors: vec![selector(
                pb::SelectorKey::GitRevision,
                pb::SelectorOperator::Unspecified,
                &["main"],
            )],
        }],
        ..product("shop", vec![app("dev", "shop-dev", "")])
    };
    // product.proto, SelectorOperator UNSPECIFIED: "Not set: INVALID_ARGUMENT".
    expect_invalid(
        create_product(&server, input).await,
        &["product.promotion_flows[0].selectors[0].operator"],
    );
}

#[tokio::test]
async fn product_selector_violations_name_the_right_selector() {
    let server = start_with_envs(&["dev", "qa"]).await;
    create_one_step_flow(&server, "dev-to-qa", "dev", "qa", "").await;
    let input = pb::Product {
        promotion_flows: vec![pb::ProductPromotionFlow {
            flow: "dev-to-qa".into(),
            selectors: vec![
                selector(
                    pb::SelectorKey::Unspecified,
                    pb::SelectorOperator::In,
                    &["x"],
                ),
                selector(pb::SelectorKey::GitRevision, pb::SelectorOperator::In, &[]),
            ],
        }],
        ..product("shop", vec![app("dev", "shop-dev", "")])
    };
    expect_invalid(
        create_product(&server, input).await,
        &[
            "product.promotion_flows[0].selectors[0].key",
            "product.promotion_flows[0].selectors[1].values",
        ],
    );
}

#[tokio::test]
async fn product_duplicate_name_is_already_exists() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let again = pb::Product {
        description: "another".into(),
        ..product("shop", vec![])
    };
    let status = expect_code(create_product(&server, again).await, Code::AlreadyExists);
    assert_message_names(&status, &["shop"]);
    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn product_update_with_stale_version_is_aborted() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let first = update_product(
        &server,
        pb::Product {
            description: "first edit".into(),
            ..created.clone()
        },
        1,
    )
    .await
    .expect("update");
    assert_eq!(first.version, 2);
    assert_eq!(first.description, "first edit");
    assert_eq!(first.create_time, created.create_time);

    let stale = pb::Product {
        description: "lost edit".into(),
        concurrency: pb::Concurrency::Terminate as i32,
        applications: vec![],
        ..created
    };
    let status = expect_code(update_product(&server, stale, 1).await, Code::Aborted);
    assert_message_names(&status, &["shop"]);
    assert_eq!(get_product(&server, "shop").await.expect("get"), first);
}

#[tokio::test]
async fn product_update_errors_change_nothing() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");

    let status = expect_code(
        update_product(&server, product("ghost", vec![]), 1).await,
        Code::NotFound,
    );
    assert_message_names(&status, &["ghost"]);

    expect_invalid(
        update_product(&server, created.clone(), 0).await,
        &["expected_version"],
    );

    let bad = pb::Product {
        applications: vec![app("dev", "shop-dev", ""), app("nowhere", "shop-x", "")],
        ..created.clone()
    };
    expect_invalid(
        update_product(&server, bad, 1).await,
        &["product.applications[1].environment"],
    );

    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn product_update_keeps_recorded_versions_of_existing_applications() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![
                app("dev", "shop-dev", "1.0.0"),
                app("qa", "shop-qa", "0.9.0"),
            ],
        ),
    )
    .await
    .expect("create");
    let reported = report(
        &server,
        pb::ReportDeploymentRequest {
            commit: Some(commit("abc123", "feat: checkout")),
            ..deployment("shop", "dev", "1.1.0")
        },
    )
    .await
    .expect("report")
    .application
    .expect("application");

    let change = pb::Product {
        description: "edited".into(),
        applications: vec![
            app("dev", "shop-dev", ""),
            app("qa", "shop-qa", ""),
            app("prod", "shop-prod", "2.0.0"),
        ],
        ..created.clone()
    };
    let updated = update_product(&server, change, 1).await.expect("update");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "edited");
    assert_eq!(
        apps_of(&updated),
        [
            "dev:shop-dev@1.1.0",
            "qa:shop-qa@0.9.0",
            "prod:shop-prod@2.0.0"
        ],
        "empty versions keep the recorded ones; a new application takes its initial version"
    );
    assert_eq!(
        app_in(&updated, "dev"),
        &reported,
        "the recorded commit and time are kept too"
    );
    assert_eq!(app_in(&updated, "qa"), app_in(&created, "qa"));
    assert_eq!(get_product(&server, "shop").await.expect("get"), updated);
}

#[tokio::test]
async fn product_update_ignores_requested_versions_of_existing_applications() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let change = pb::Product {
        applications: vec![app("dev", "shop-dev", "0.0.1-rollback")],
        ..created.clone()
    };
    let updated = update_product(&server, change, 1).await.expect("update");
    // product.proto, Application.version: "UpdateProduct keeps the stored
    // value of an existing application whatever the request says."
    assert_eq!(apps_of(&updated), ["dev:shop-dev@1.0.0"]);
    assert_eq!(app_in(&updated, "dev"), app_in(&created, "dev"));
}

#[tokio::test]
async fn product_update_replaces_the_application_list() {
    let server = start_with_envs(&["dev", "qa", "prod"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![
                app("dev", "shop-dev", "1.0.0"),
                app("qa", "shop-qa", "0.9.0"),
            ],
        ),
    )
    .await
    .expect("create");
    let change = pb::Product {
        applications: vec![
            app("prod", "shop-prod", "3.0.0"),
            app("dev", "shop-web", ""),
        ],
        ..created
    };
    let updated = update_product(&server, change, 1).await.expect("update");
    assert_eq!(
        apps_of(&updated),
        ["prod:shop-prod@3.0.0", "dev:shop-web@1.0.0"],
        "removed, added, renamed and reordered as requested"
    );
    assert_eq!(get_product(&server, "shop").await.expect("get"), updated);
    delete_env(&server, "qa", 0)
        .await
        .expect("qa is no longer used by the product");
}

#[tokio::test]
async fn product_delete_checks_existence_and_version() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");

    let status = expect_code(delete_product(&server, "shop", 5).await, Code::Aborted);
    assert_message_names(&status, &["shop"]);
    assert_eq!(
        get_product(&server, "shop").await.expect("still there"),
        created
    );

    let status = expect_code(delete_product(&server, "ghost", 0).await, Code::NotFound);
    assert_message_names(&status, &["ghost"]);

    delete_product(&server, "shop", 1).await.expect("delete");
    expect_code(get_product(&server, "shop").await, Code::NotFound);
    expect_code(delete_product(&server, "shop", 0).await, Code::NotFound);
    let listed = list_products(&server, 0, "").await.expect("list");
    assert!(listed.products.is_empty());

    let again = create_product(&server, product("shop", vec![app("dev", "shop-dev", "")]))
        .await
        .expect("re-create");
    assert_eq!(again.version, 1);
    assert_eq!(
        apps_of(&again),
        ["dev:shop-dev@"],
        "no application survives the delete"
    );
    delete_product(&server, "shop", 0)
        .await
        .expect("delete at any version");
}

#[tokio::test]
async fn product_list_pages_in_name_order() {
    let server = start_with_envs(&["dev", "qa"]).await;
    for name in ["web", "api", "shop", "billing", "search"] {
        create_product(
            &server,
            product(
                name,
                vec![
                    app("qa", &format!("{name}-qa"), "2.0"),
                    app("dev", &format!("{name}-dev"), ""),
                ],
            ),
        )
        .await
        .expect("create");
    }
    let sorted = ["api", "billing", "search", "shop", "web"];

    assert_pages_of_two(&sorted, async |token| {
        let page = list_products(&server, 2, &token).await.expect("list");
        let names = page.products.iter().map(|p| p.name.clone()).collect();
        (names, page.next_page_token)
    })
    .await;

    let all = list_products(&server, 0, "").await.expect("list");
    assert_eq!(all.next_page_token, "");
    assert_eq!(all.products.len(), 5);
    for p in &all.products {
        assert_eq!(
            p,
            &get_product(&server, &p.name).await.expect("get"),
            "listed products carry their applications"
        );
    }
}

// ------------------------------------------------------- report deployment

#[tokio::test]
async fn report_deployment_records_version_and_commit() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let created = create_product(
        &server,
        product(
            "shop",
            vec![app("dev", "shop-dev", "1.0.0"), app("qa", "shop-qa", "")],
        ),
    )
    .await
    .expect("create");
    let c = commit("0123456789abcdef", "feat: checkout\n\nLonger body.");
    let response = report(
        &server,
        pb::ReportDeploymentRequest {
            commit: Some(c.clone()),
            ..deployment("shop", "dev", "1.1.0")
        },
    )
    .await
    .expect("report");
    assert_eq!(response.release, None, "the product has no promotion flows");
    let application = response.application.expect("application");
    assert_eq!(application.environment, "dev");
    assert_eq!(application.name, "shop-dev");
    assert_eq!(application.version, "1.1.0");
    assert_eq!(application.last_commit, Some(c));
    assert!(
        ts(&application.update_time) > ts(&app_in(&created, "dev").update_time),
        "the version's time is the report's"
    );

    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(app_in(&got, "dev"), &application);
    assert_eq!(
        app_in(&got, "qa"),
        app_in(&created, "qa"),
        "qa is untouched"
    );
    assert_eq!(
        got.version, 1,
        "recording a version does not bump the product"
    );
    assert_eq!(got.update_time, created.update_time);
}

#[tokio::test]
async fn report_deployment_without_commit_clears_the_previous_commit() {
    let server = start_with_envs(&["dev"]).await;
    create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    report(
        &server,
        pb::ReportDeploymentRequest {
            commit: Some(commit("abc", "feat: one")),
            ..deployment("shop", "dev", "1.1.0")
        },
    )
    .await
    .expect("report with commit");
    let second = report(&server, deployment("shop", "dev", "1.2.0"))
        .await
        .expect("report without commit")
        .application
        .expect("application");
    // Application.last_commit: "The commit reported with the current
    // version"; 1.2.0 came without one.
    assert_eq!(second.version, "1.2.0");
    assert_eq!(second.last_commit, None, "1.1.0's commit is not 1.2.0's");
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(app_in(&got, "dev").last_commit, None);
}

#[tokio::test]
async fn report_deployment_errors_record_nothing() {
    let server = start_with_envs(&["dev"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");

    let status = expect_code(
        report(&server, deployment("ghost", "dev", "1.1.0")).await,
        Code::NotFound,
    );
    assert_message_names(&status, &["ghost"]);

    let status = expect_code(
        report(&server, deployment("shop", "nowhere", "1.1.0")).await,
        Code::NotFound,
    );
    assert_message_names(&status, &["nowhere"]);

    expect_invalid(
        report(&server, deployment("shop", "dev", "")).await,
        &["version"],
    );
    expect_invalid(
        report(&server, deployment("Shop", "Dev", "")).await,
        &["environment", "product", "version"],
    );

    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn report_deployment_where_the_product_has_no_application_is_failed_precondition() {
    let server = start_with_envs(&["dev", "qa"]).await;
    let created = create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    // product.proto, ReportDeployment: "FAILED_PRECONDITION when the product
    // has no application in `environment`".
    let status = expect_code(
        report(&server, deployment("shop", "qa", "1.1.0")).await,
        Code::FailedPrecondition,
    );
    assert_message_names(&status, &["shop", "qa"]);
    // It names the command that fixes it.
    assert!(
        status
            .message()
            .contains("`promoflow product update shop --app qa=NAME`"),
        "{status:?}"
    );
    assert_eq!(get_product(&server, "shop").await.expect("get"), created);
}

#[tokio::test]
async fn report_deployment_request_id_is_idempotent() {
    let server = start_with_envs(&["dev"]).await;
    create_product(
        &server,
        product("shop", vec![app("dev", "shop-dev", "1.0.0")]),
    )
    .await
    .expect("create");
    let first_request = pb::ReportDeploymentRequest {
        request_id: "ci-job-1".into(),
        ..deployment("shop", "dev", "1.1.0")
    };
    let first = report(&server, first_request.clone()).await.expect("first");
    report(
        &server,
        pb::ReportDeploymentRequest {
            request_id: "ci-job-2".into(),
            ..deployment("shop", "dev", "1.2.0")
        },
    )
    .await
    .expect("second");

    let replay = report(&server, first_request.clone())
        .await
        .expect("replay");
    assert_eq!(replay, first, "a replay returns the original response");
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(
        app_in(&got, "dev").version,
        "1.2.0",
        "a replay changes nothing"
    );

    let conflict = pb::ReportDeploymentRequest {
        version: "9.9.9".into(),
        ..first_request
    };
    expect_code(report(&server, conflict).await, Code::AlreadyExists);
    let got = get_product(&server, "shop").await.expect("get");
    assert_eq!(app_in(&got, "dev").version, "1.2.0");
}
