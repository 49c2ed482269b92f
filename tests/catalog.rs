//! Catalog services (environments, products, workflows) against a real
//! server, on SQLite or PostgreSQL (see `common`).

mod common;

use common::{TestServer, expect_code, violation_fields};
use promoflow::proto::v1 as pb;
use tonic::Code;

fn env(name: &str) -> pb::Environment {
    pb::Environment {
        name: name.into(),
        kind: pb::EnvironmentKind::NonProduction as i32,
        description: format!("{name} environment"),
        ..Default::default()
    }
}

#[tokio::test]
async fn environment_lifecycle_and_errors() {
    let server = TestServer::start().await;
    let mut envs = server.environments();

    let created = envs
        .create_environment(pb::CreateEnvironmentRequest {
            environment: Some(env("dev")),
        })
        .await
        .expect("create")
        .into_inner()
        .environment
        .expect("environment");
    assert_eq!(created.name, "dev");
    assert_eq!(created.version, 1);

    let dup = envs
        .create_environment(pb::CreateEnvironmentRequest {
            environment: Some(env("dev")),
        })
        .await;
    expect_code(dup, Code::AlreadyExists);

    let bad = envs
        .create_environment(pb::CreateEnvironmentRequest {
            environment: Some(env("Bad_Name")),
        })
        .await;
    let status = expect_code(bad, Code::InvalidArgument);
    assert_eq!(violation_fields(&status), ["environment.name"]);

    let mut changed = created.clone();
    changed.description = "changed".into();
    let updated = envs
        .update_environment(pb::UpdateEnvironmentRequest {
            environment: Some(changed.clone()),
            expected_version: 1,
        })
        .await
        .expect("update")
        .into_inner()
        .environment
        .expect("environment");
    assert_eq!(updated.version, 2);
    assert_eq!(updated.description, "changed");

    let stale = envs
        .update_environment(pb::UpdateEnvironmentRequest {
            environment: Some(changed),
            expected_version: 1,
        })
        .await;
    expect_code(stale, Code::Aborted);
    let got = envs
        .get_environment(pb::GetEnvironmentRequest { name: "dev".into() })
        .await
        .expect("get")
        .into_inner()
        .environment
        .expect("environment");
    assert_eq!(got.description, "changed", "a stale update changes nothing");
}
