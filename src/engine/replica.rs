//! What makes several replicas on one PostgreSQL work together, and one
//! replica survive its own restarts:
//!
//! - a periodic scan claims releases whose lease expired or was never
//!   taken (their replica died) and starts queued releases whose turn came;
//! - `LISTEN promoflow_events` turns other replicas' commits into local
//!   doorbells (streams) and pokes (workers), with low delay;
//! - the same scan compares what local streams wait for with the store
//!   (one query per 1,000 watched releases, not one per stream), covering
//!   notifications lost while the listening connection was down: the store
//!   stays the truth.

use sea_orm::DbBackend;

use super::Engine;
use futures::StreamExt;

use crate::store::notify::Notice;

/// Starts the background tasks of this replica (stopped at shutdown).
pub(super) fn spawn(engine: Engine) {
    let scan = engine.clone();
    engine
        .inner
        .workers
        .spawn(async move { scan_loop(scan).await });
    if engine.inner.store.backend() == DbBackend::Postgres {
        let listen = engine.clone();
        engine
            .inner
            .workers
            .spawn(async move { listen_loop(listen).await });
    }
}

/// How often a replica logs the leases it holds.
const LEASE_REPORT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

async fn scan_loop(engine: Engine) {
    let mut tick = tokio::time::interval(engine.inner.catch_up);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_report = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = engine.inner.shutdown.cancelled() => return,
        }
        if let Err(e) = catch_up(&engine).await {
            tracing::warn!(error = %e, "catching up with the store failed");
        }
        if last_report.elapsed() >= LEASE_REPORT_EVERY {
            last_report = tokio::time::Instant::now();
            if let Ok(leases) = engine.inner.store.leases_of(&engine.inner.replica_id).await {
                tracing::info!(
                    replica = %engine.inner.replica_id,
                    leases = leases.len(),
                    releases = ?leases,
                    "leases held"
                );
            }
        }
        match engine.inner.store.orphaned_releases(100).await {
            Ok(ids) => {
                for id in ids {
                    tracing::info!(release = %id, replica = %engine.inner.replica_id, "taking over a release without a live lease");
                    engine.ensure_worker(&id);
                }
            }
            Err(e) => tracing::warn!(error = %e, "scanning for orphaned releases failed"),
        }
        match engine.inner.store.products_with_queue().await {
            Ok(products) => {
                for p in products {
                    engine.promote(&p).await;
                }
            }
            Err(e) => tracing::warn!(error = %e, "scanning queued releases failed"),
        }
    }
}

/// Rings the doorbells of watched releases that have events the hub did
/// not announce, and the global one when the store's position moved.
async fn catch_up(engine: &Engine) -> crate::error::Result<()> {
    let hub = &engine.inner.hub;
    let store = &engine.inner.store;
    let watched = hub.watched();
    if !watched.is_empty() {
        for (id, seq) in store.last_seqs(&watched).await? {
            hub.announce(&id, seq);
        }
    }
    hub.announce_position(store.latest_position().await?);
    Ok(())
}

/// Turns other replicas' commits into local doorbells and pokes.
async fn listen_loop(engine: Engine) {
    let Some(commits) = engine.inner.store.commits() else {
        return;
    };
    let mut commits = std::pin::pin!(commits);
    loop {
        let notice = tokio::select! {
            n = commits.next() => n,
            _ = engine.inner.shutdown.cancelled() => return,
        };
        match notice {
            Some(Notice::Commit {
                release_id,
                seq,
                position,
            }) => {
                engine.inner.hub.announce(&release_id, seq);
                engine.inner.hub.announce_position(position);
                engine.inner.pokes.poke(&release_id);
            }
            // What the lost connection missed is in the store.
            Some(Notice::Lost) => {
                if let Err(e) = catch_up(&engine).await {
                    tracing::warn!(error = %e, "catching up with the store failed");
                }
            }
            None => return,
        }
    }
}
