//! The release engine against a real server (SQLite or PostgreSQL).

mod common;

use common::{TestServer, create_wait, seed_parallel, wait_final};
use promoflow::proto::v1 as pb;

fn ts(t: &Option<prost_types::Timestamp>) -> (i64, i32) {
    let t = t.as_ref().expect("timestamp set");
    (t.seconds, t.nanos)
}

#[tokio::test]
async fn parallel_quick_start_runs_branches_together() {
    let server = TestServer::start().await;
    create_wait(&server, "soak", 300).await;
    seed_parallel(&server, Some("soak")).await;
    let r = server
        .releases()
        .trigger_release(pb::TriggerReleaseRequest {
            flow: "parallel".into(),
            product: "demo-trioapp".into(),
            initiator: "test".into(),
            ..Default::default()
        })
        .await
        .expect("trigger")
        .into_inner()
        .release
        .expect("release");
    assert_eq!(r.version, "1.0.0", "version comes from the trigger environment");
    let done = wait_final(&server, &r.id).await;
    assert_eq!(done.status, pb::ReleaseStatus::Succeeded as i32, "{done:?}");
    let prods: Vec<&pb::EnvironmentRun> = done
        .environments
        .iter()
        .filter(|e| e.environment.starts_with("prod"))
        .collect();
    assert_eq!(prods.len(), 3);
    // Every production environment started before any of them finished.
    let latest_start = prods.iter().map(|e| ts(&e.start_time)).max().unwrap();
    let earliest_finish = prods.iter().map(|e| ts(&e.finish_time)).min().unwrap();
    assert!(latest_start < earliest_finish, "branches overlapped: {prods:?}");
    // The versions were recorded on the applications.
    let product = server
        .products()
        .get_product(pb::GetProductRequest {
            name: "demo-trioapp".into(),
        })
        .await
        .expect("get product")
        .into_inner()
        .product
        .expect("product");
    for app in &product.applications {
        assert_eq!(app.version, "1.0.0", "{app:?}");
    }
}
