//! The `raw-store` anchor: the store's own write limit on this machine, in
//! the same run as the server's figures.
//!
//! It opens a store of its own on the same backend as the server (a fresh
//! SQLite file with the same pragmas, or a fresh database on the same
//! PostgreSQL server), applies the same migrations, and inserts the rows of
//! one 5-environment release per transaction
//! ([`Store::insert_raw_release`]): the release row, its environment and step
//! runs, and [`EVENTS`] event rows, through the same driver and pools, with no
//! promoflow logic around them. The write rows of the other scenarios report
//! their throughput as a fraction of it (`vs_raw_store`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use super::BenchArgs;
use super::Row;
use super::load::{self, Window};
use crate::domain::flow::{FlowSpec, Step};
use crate::domain::release::Release;
use crate::store::Store;

type Res<T> = Result<T, String>;

/// Event rows per inserted release: what a 5-environment release of the
/// trigger scenario's flow writes over its life, give or take a few.
pub const EVENTS: usize = 20;

/// The environments of the inserted releases: the trigger scenario's shape.
const ENVS: [&str; 5] = ["dev", "qa", "prod", "prod-eu", "prod-asia"];

/// Where the anchor writes; [`Scratch::remove`] deletes it.
struct Scratch {
    url: String,
    /// SQLite: the directory of the file.
    dir: Option<std::path::PathBuf>,
    /// PostgreSQL: the server's URL (the one given, to drop the database
    /// from) and the database's name.
    postgres: Option<(String, String)>,
}

impl Scratch {
    async fn new(database_url: Option<&str>) -> Res<Self> {
        match database_url {
            None => {
                let (url, dir) = super::server::temp_sqlite("promoflow-anchor")?;
                Ok(Self {
                    url,
                    dir: Some(dir),
                    postgres: None,
                })
            }
            Some(given) => {
                let mut url = url::Url::parse(given).map_err(|e| format!("{given:?}: {e}"))?;
                let name = format!("promoflow_anchor_{}", std::process::id());
                admin(given, &format!("DROP DATABASE IF EXISTS {name}")).await?;
                admin(given, &format!("CREATE DATABASE {name}")).await?;
                url.set_path(&format!("/{name}"));
                Ok(Self {
                    url: url.to_string(),
                    dir: None,
                    postgres: Some((given.to_string(), name)),
                })
            }
        }
    }

    async fn remove(self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
        if let Some((given, name)) = &self.postgres {
            let _ = admin(given, &format!("DROP DATABASE IF EXISTS {name}")).await;
        }
    }
}

/// Runs one statement outside a transaction (CREATE/DROP DATABASE cannot
/// run in one) on the PostgreSQL server of `url`.
async fn admin(url: &str, sql: &str) -> Res<()> {
    use sea_orm::ConnectionTrait;
    let db = sea_orm::Database::connect(url)
        .await
        .map_err(|e| format!("anchor: cannot connect: {e}"))?;
    let r = db
        .execute_unprepared(sql)
        .await
        .map(|_| ())
        .map_err(|e| format!("anchor: {sql}: {e}"));
    let _ = db.close().await;
    r
}

/// The flow of the inserted releases (never stored: only its shape counts).
fn spec() -> FlowSpec {
    let step = |env: &str, dep: &str| Step {
        environment: env.to_owned(),
        depends_on: vec![dep.to_owned()],
        ..Default::default()
    };
    FlowSpec {
        name: "anchor".into(),
        trigger_environment: ENVS[0].into(),
        steps: vec![
            step(ENVS[1], ENVS[0]),
            step(ENVS[2], ENVS[1]),
            step(ENVS[3], ENVS[1]),
            step(ENVS[4], ENVS[1]),
        ],
        ..Default::default()
    }
}

/// Measures the anchor; `None` when there is no store to compare with (a
/// `--target` server's database is not known here, or the PostgreSQL user
/// may not create the scratch database).
pub async fn run(args: &BenchArgs, window: Window, c: usize) -> Res<Option<Row>> {
    if args.target.is_some() {
        return Ok(None);
    }
    // A server URL whose user may not create databases gets no anchor, not
    // a failed run: the other figures stand on their own.
    let scratch = match Scratch::new(args.database_url.as_deref()).await {
        Ok(s) => s,
        Err(e) => {
            super::progress(format!("raw-store: skipped ({e})"));
            return Ok(None);
        }
    };
    let result = measure(&scratch.url, window, c).await;
    scratch.remove().await;
    result.map(Some)
}

async fn measure(url: &str, window: Window, c: usize) -> Res<Row> {
    let store = Store::open(url, c.clamp(1, 32) as u32)
        .await
        .map_err(|e| format!("anchor: cannot open a store at {url}: {e}"))?;
    let spec = Arc::new(spec());
    let template = Release::new(
        String::new(),
        &spec,
        1,
        "anchor",
        "1.0.0",
        &|env| format!("anchor-{env}"),
        &|_| true,
        chrono::Utc::now(),
    );
    let (envs, steps) = (
        template.envs.len(),
        template.envs.iter().map(|e| e.steps.len()).sum::<usize>(),
    );
    let template = Arc::new(template);
    let position = Arc::new(AtomicI64::new(1));
    let st = store.clone();
    let s = load::closed_loop(c, window, move |_, _| {
        let (store, position) = (st.clone(), position.clone());
        let mut r = (*template).clone();
        r.id = uuid::Uuid::now_v7().to_string();
        async move {
            let first = position.fetch_add(EVENTS as i64, Ordering::Relaxed);
            store
                .insert_raw_release(&r, EVENTS, first)
                .await
                .map_err(|e| e.to_string())
        }
    })
    .await;
    store.close().await;
    let mut row = Row::new("raw-store", "insert a release's rows", format!("c={c}"), &s);
    row.note = format!(
        "1 release + {envs} environment runs + {steps} step runs + {EVENTS} events per transaction, no promoflow logic"
    );
    Ok(row
        .with("environment_runs", envs)
        .with("step_runs", steps)
        .with("events", EVENTS))
}
