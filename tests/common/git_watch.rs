//! What the Git-triggered tests (poller, webhooks) wait on, for product
//! `shop` whose trigger application is in `dev`: the commit last seen on
//! it, read from the store's `git_watches` table (the API has no field for
//! it), and its releases.

use std::time::{Duration, Instant};

use promoflow::proto::v1 as pb;
use sea_orm::{ConnectionTrait, Database};

use super::Api;

/// The commit the poller last saw on shop's dev application.
pub async fn watched(db_url: &str) -> Option<String> {
    let db = Database::connect(db_url).await.expect("connect");
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT commit_sha FROM git_watches WHERE product = 'shop' AND environment = 'dev'",
        ))
        .await
        .expect("read git_watches");
    db.close().await.ok();
    row.map(|r| r.try_get::<String>("", "commit_sha").expect("commit_sha"))
}

/// Waits (30 s at most) until the poller has seen `sha`.
pub async fn wait_watched(db_url: &str, sha: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = watched(db_url).await;
        if seen.as_deref() == Some(sha) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the poller never saw {sha}; it last saw {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Shop's releases, oldest first.
pub async fn releases(api: &impl Api) -> Vec<pb::Release> {
    let mut rs = api
        .releases()
        .list_releases(pb::ListReleasesRequest {
            product: "shop".into(),
            ..Default::default()
        })
        .await
        .expect("list releases")
        .into_inner()
        .releases;
    rs.reverse();
    rs
}

/// Waits (30 s at most) until a release of shop promotes `sha`.
pub async fn wait_release_of(api: &impl Api, sha: &str) -> pb::Release {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rs = releases(api).await;
        if let Some(r) = rs.iter().find(|r| r.source_commit == sha) {
            return r.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no release of {sha} started; releases: {:?}",
            rs.iter().map(|r| &r.source_commit).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
