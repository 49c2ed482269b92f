//! Group commit: one task applies the pending release writes of many
//! callers in one transaction.
//!
//! Every trigger, every transition a worker makes and every API command on
//! a release is a write transaction with events. On SQLite they queue for
//! the one writer connection, and each paid its own `BEGIN`, `COMMIT`, event
//! numbering and event insert; on PostgreSQL each held the event clock's row
//! from its numbering to its commit while the others waited for it (see
//! BENCHMARKS.md). Here the writer task takes every write waiting (up to
//! [`MAX_GROUP`]), runs them in one transaction (a write that fails is
//! answered with its error and the others are redone without it, see
//! [`Isolation`]), numbers the events of all of them at once, inserts them
//! in one statement, commits once, and only then answers each caller with
//! its own result and events. Nobody hears of a state before it is
//! committed with its event, as before; a caller waits at most for the
//! writes queued ahead of it.
//!
//! A write is a function of the transaction and the [`Outbox`] it adds its
//! events to; it owns what it needs (the caller's future may be dropped
//! while the write is queued: the write still happens, nobody is told).

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};
use tokio::sync::{mpsc, oneshot};

use super::Finished;
use super::audit;
use super::entity::{audit_event, environment_run, step_run};
use super::releases::{StoredEvent, event_row};
use super::{Store, insert_batched, overwrite_batched};
use crate::domain::release::{EventBody, Release};
use crate::error::{Error, Result};

/// Most writes applied in one transaction. Large enough that a burst of
/// concurrent callers (the bench's 64, a wave of workers) shares one; small
/// enough that the first of them does not wait long for the last.
const MAX_GROUP: usize = 256;

/// Writer tasks on PostgreSQL. Each statement there is a round trip to the
/// database server, and one writer runs its group's statements one after
/// the other: with one writer, triggers on PostgreSQL fell below what 64
/// separate transactions had reached (see BENCHMARKS.md). Writes are routed
/// by product, so two writers never write the same product's rows (no lock
/// waits, no deadlock between groups); SQLite admits one writer, so it has
/// one.
const PG_WRITERS: usize = 8;

/// The sending side of the writer tasks (cheap to clone).
#[derive(Clone)]
pub(crate) struct Group {
    writers: Arc<[mpsc::UnboundedSender<Box<dyn Job>>]>,
    /// Groups committed so far, and the writes they carried.
    stats: Arc<Stats>,
}

/// What the writer tasks did (logged at shutdown, checked by tests).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub(crate) groups: std::sync::atomic::AtomicU64,
    pub(crate) writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group").finish_non_exhaustive()
    }
}

impl Group {
    /// Starts the writer tasks on `writer` (the store's writer pool). They
    /// end when the last [`Group`] is dropped. `finished` is told of every
    /// release written, once committed.
    pub(crate) fn start(writer: DatabaseConnection, finished: Arc<Finished>) -> Self {
        let n = match writer.get_database_backend() {
            DbBackend::Postgres => PG_WRITERS,
            _ => 1,
        };
        let stats = Arc::<Stats>::default();
        let writers = (0..n)
            .map(|_| {
                let (jobs, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(
                    writer.clone(),
                    rx,
                    Arc::clone(&stats),
                    Arc::clone(&finished),
                ));
                jobs
            })
            .collect();
        Self { writers, stats }
    }

    /// The writer of product `product`'s writes.
    fn writer_of(&self, product: &str) -> &mpsc::UnboundedSender<Box<dyn Job>> {
        use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
        // A fixed hasher: the same product always goes to the same writer.
        let h = BuildHasherDefault::<DefaultHasher>::default().hash_one(product);
        &self.writers[(h % self.writers.len() as u64) as usize]
    }
}

/// The events of one write transaction. They are numbered with global
/// positions and inserted only by [`Outbox::flush`], just before the commit:
/// numbering locks the event clock row until commit (so positions become
/// visible in increasing order), and on PostgreSQL every other transaction
/// that writes events waits on that row. Taken last, the lock covers only the
/// numbering, one insert and the notifications, and a transaction that
/// writes events of several releases (a group) takes it once.
///
/// The outbox also holds the environment and step runs the writes insert or
/// change, and the audit rows of their calls: nothing but a release's own
/// reads needs them before the commit, so they are written at the flush
/// too, in one statement per table for the whole group instead of two or
/// three per write. A write that reads runs (see [`Outbox::write_rows`])
/// writes the waiting ones first.
#[derive(Default)]
pub(crate) struct Outbox {
    /// Position 0 until [`Outbox::flush`] numbers them.
    events: Vec<StoredEvent>,
    /// By primary key: a later change of the same run replaces an earlier.
    envs: BTreeMap<(String, String), environment_run::ActiveModel>,
    steps: BTreeMap<(String, String, i32), step_run::ActiveModel>,
    audits: Vec<audit_event::ActiveModel>,
}

impl Outbox {
    /// An environment run to write (insert, or overwrite by primary key).
    pub(crate) fn put_env(&mut self, row: environment_run::ActiveModel) -> Result<()> {
        let key = (
            active(&row.release_id)?.clone(),
            active(&row.environment)?.clone(),
        );
        self.envs.insert(key, row);
        Ok(())
    }

    /// A step run to write (insert, or overwrite by primary key).
    pub(crate) fn put_step(&mut self, row: step_run::ActiveModel) -> Result<()> {
        let key = (
            active(&row.release_id)?.clone(),
            active(&row.environment)?.clone(),
            *active(&row.idx)?,
        );
        self.steps.insert(key, row);
        Ok(())
    }

    /// Environment and step runs to write (see [`Outbox::put_env`]).
    pub(crate) fn put_runs(
        &mut self,
        envs: Vec<environment_run::ActiveModel>,
        steps: Vec<step_run::ActiveModel>,
    ) -> Result<()> {
        for row in envs {
            self.put_env(row)?;
        }
        for row in steps {
            self.put_step(row)?;
        }
        Ok(())
    }

    /// Forgets what was added since the outbox held `events` events (a
    /// write that failed in its savepoint). Runs and audit rows wait only
    /// for that write there: the savepoint writes them after each write.
    fn discard_since(&mut self, events: usize) {
        self.events.truncate(events);
        self.envs.clear();
        self.steps.clear();
        self.audits.clear();
    }

    /// Writes the runs and audit rows waiting, in one statement per table
    /// (runs overwrite rows with the same key: a transition's rows exist
    /// since the release was created).
    pub(crate) async fn write_rows(&mut self, txn: &DatabaseTransaction) -> Result<()> {
        overwrite_batched(txn, std::mem::take(&mut self.envs).into_values().collect()).await?;
        overwrite_batched(txn, std::mem::take(&mut self.steps).into_values().collect()).await?;
        insert_batched(txn, std::mem::take(&mut self.audits)).await
    }

    /// Adds events `bodies` of release `r`, the first with seq `first_seq`.
    pub(crate) fn add(
        &mut self,
        r: &Release,
        first_seq: i64,
        bodies: Vec<EventBody>,
        t: chrono::DateTime<chrono::Utc>,
    ) {
        self.events
            .extend(bodies.into_iter().enumerate().map(|(i, body)| StoredEvent {
                release_id: r.id.clone(),
                seq: first_seq + i as i64,
                position: 0,
                product: r.product.clone(),
                flow: r.flow.clone(),
                time: t,
                body,
            }));
    }

    /// Numbers and inserts the events and, on PostgreSQL, notifies the other
    /// replicas (one notification per release, with its last event; delivered
    /// only if the transaction commits). The caller commits `txn` next.
    async fn flush(&mut self, txn: &DatabaseTransaction) -> Result<()> {
        self.write_rows(txn).await?;
        if self.events.is_empty() {
            return Ok(());
        }
        let first_pos = next_positions(txn, self.events.len()).await?;
        let mut rows = Vec::with_capacity(self.events.len());
        for (i, e) in self.events.iter_mut().enumerate() {
            e.position = first_pos + i as i64;
            rows.push(event_row(e)?);
        }
        insert_batched(txn, rows).await?;
        if txn.get_database_backend() == DbBackend::Postgres {
            // One statement for every release of the group.
            let mut values: Vec<sea_orm::Value> = vec![super::notify::NOTIFY_CHANNEL.into()];
            let mut calls = Vec::new();
            for e in self.last_per_release() {
                values.push(super::notify::payload(&e.release_id, e.seq, e.position).into());
                calls.push(format!("pg_notify($1, ${})", values.len()));
            }
            txn.execute_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                format!("SELECT {}", calls.join(", ")),
                values,
            ))
            .await?;
        }
        Ok(())
    }

    /// [`Outbox::flush`], then the commit of `txn` (with the audit row of
    /// the call in progress, for a write made on the caller's own task: one
    /// that borrows what the group's writes must own; a group's audit rows
    /// are in the outbox), then `finished` forgets the releases written,
    /// before anyone hears of them. Returns the events as committed, in the
    /// order they were added.
    pub(crate) async fn commit(
        mut self,
        txn: DatabaseTransaction,
        finished: &Finished,
    ) -> Result<Vec<StoredEvent>> {
        self.flush(&txn).await?;
        audit::commit(txn).await?;
        finished.forget(self.events.iter().map(|e| e.release_id.as_str()));
        Ok(self.events)
    }

    /// The last event of each release in the outbox.
    fn last_per_release(&self) -> impl Iterator<Item = &StoredEvent> {
        let mut last = BTreeMap::new();
        for e in &self.events {
            last.insert(e.release_id.as_str(), e);
        }
        last.into_values()
    }
}

/// The value of a column set in a row to write.
fn active<V: Into<sea_orm::Value>>(v: &sea_orm::ActiveValue<V>) -> Result<&V> {
    match v {
        sea_orm::ActiveValue::Set(v) | sea_orm::ActiveValue::Unchanged(v) => Ok(v),
        sea_orm::ActiveValue::NotSet => Err(Error::Internal("a run's key is not set".into())),
    }
}

/// Hands out `n` global event positions from the single row of the
/// `event_clock` table. The counter row stays locked until the transaction
/// commits, so positions become visible in increasing order: a reader that
/// has seen position `p` never later finds a committed event below `p`. A
/// sequence or auto-increment id would not give that guarantee on
/// PostgreSQL.
async fn next_positions(txn: &DatabaseTransaction, n: usize) -> Result<i64> {
    let backend = txn.get_database_backend();
    let row = txn
        .query_one_raw(Statement::from_string(
            backend,
            format!(
                "UPDATE event_clock SET position = position + {n} WHERE id = 1 RETURNING position"
            ),
        ))
        .await?
        .ok_or_else(|| Error::Internal("event clock row missing".into()))?;
    let last: i64 = row.try_get("", "position")?;
    Ok(last - n as i64 + 1)
}

/// One caller's write, type-erased.
trait Job: Send {
    /// Runs the write in `txn`, keeping its result for [`Job::finish`]. May
    /// be called again, in a new transaction, when the group is redone.
    fn run<'a>(
        &'a mut self,
        txn: &'a DatabaseTransaction,
        outbox: &'a mut Outbox,
    ) -> BoxFuture<'a, Result<()>>;

    /// Answers the caller: the write committed, with its events, or failed.
    fn finish(self: Box<Self>, outcome: Result<Vec<StoredEvent>>);
}

struct Pending<T, F> {
    work: F,
    /// The result of the last run.
    value: Option<T>,
    reply: oneshot::Sender<Result<(T, Vec<StoredEvent>)>>,
    /// The audit row of the caller's call, written with its write.
    audit: Option<Arc<audit::Pending>>,
}

impl<T, F> Job for Pending<T, F>
where
    T: Send + 'static,
    F: for<'a> Fn(&'a DatabaseTransaction, &'a mut Outbox) -> BoxFuture<'a, Result<T>>
        + Send
        + 'static,
{
    fn run<'a>(
        &'a mut self,
        txn: &'a DatabaseTransaction,
        outbox: &'a mut Outbox,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            self.value = None;
            let value = (self.work)(txn, outbox).await?;
            if let Some(p) = &self.audit {
                outbox.audits.push(audit::carried_row(p));
            }
            self.value = Some(value);
            Ok(())
        })
    }

    fn finish(self: Box<Self>, outcome: Result<Vec<StoredEvent>>) {
        let Pending {
            value,
            reply,
            audit,
            ..
        } = *self;
        let answer = match (outcome, value) {
            (Ok(events), Some(value)) => {
                if let Some(p) = &audit {
                    audit::carried(p);
                }
                Ok((value, events))
            }
            (Ok(_), None) => Err(Error::Internal("a grouped write committed unrun".into())),
            (Err(e), _) => Err(e),
        };
        let _ = reply.send(answer);
    }
}

impl Store {
    /// Groups the writer task committed so far, and the writes in them.
    pub fn write_groups(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let s = &self.group.stats;
        (s.groups.load(Relaxed), s.writes.load(Relaxed))
    }

    /// Applies `work`, a write of product `product`'s rows, in the next
    /// group transaction and returns its result and the events it added,
    /// once they are committed.
    ///
    /// `work` may run more than once (each time in a new transaction, the
    /// earlier one rolled back: see [`apply`]), so it owns its inputs and
    /// clones what it consumes. It must not wait for the writer pool (it
    /// runs inside the group's transaction).
    pub(crate) async fn grouped<T, F>(
        &self,
        product: &str,
        work: F,
    ) -> Result<(T, Vec<StoredEvent>)>
    where
        T: Send + 'static,
        F: for<'a> Fn(&'a DatabaseTransaction, &'a mut Outbox) -> BoxFuture<'a, Result<T>>
            + Send
            + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Pending {
            work,
            value: None,
            reply,
            audit: audit::uncarried(),
        });
        self.group
            .writer_of(product)
            .send(job)
            .map_err(|_| Error::Unavailable("the store is closed".into()))?;
        answer
            .await
            .map_err(|_| Error::Unavailable("the store's writer stopped".into()))?
    }
}

/// The writer task: waits for writes, applies all that are waiting as one
/// group, repeats.
async fn run(
    writer: DatabaseConnection,
    mut rx: mpsc::UnboundedReceiver<Box<dyn Job>>,
    stats: Arc<Stats>,
    finished: Arc<Finished>,
) {
    let mut jobs = Vec::with_capacity(MAX_GROUP);
    while rx.recv_many(&mut jobs, MAX_GROUP).await > 0 {
        if let Some(n) = apply(&writer, std::mem::take(&mut jobs), &finished).await {
            use std::sync::atomic::Ordering::Relaxed;
            stats.groups.fetch_add(1, Relaxed);
            stats.writes.fetch_add(n as u64, Relaxed);
        }
    }
}

/// The same failure, for each caller of a group.
fn again(e: &Error) -> Error {
    match e {
        Error::Database(d) => Error::Database(d.clone()),
        other => Error::Unavailable(format!("the store's write failed: {other}")),
    }
}

/// How a group's writes are isolated from each other.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// All in the transaction itself: the first that fails is answered with
    /// its error, the transaction rolled back and the group redone without
    /// it, [`Isolation::Savepoints`] this time. Writes rarely fail (a lost
    /// race, a refusal), and a savepoint costs two more statements per
    /// write, each a round trip to the database.
    Optimistic,
    /// Each in a savepoint of its own: one that fails is rolled back alone.
    Savepoints,
}

/// One group: its writes in one transaction, one flush of their events,
/// one commit, then the answers. Returns how many writes committed, if the
/// group did.
async fn apply(
    writer: &DatabaseConnection,
    jobs: Vec<Box<dyn Job>>,
    finished: &Finished,
) -> Option<usize> {
    let mut jobs = jobs;
    let mut isolation = Isolation::Optimistic;
    loop {
        match attempt(writer, &mut jobs, isolation).await {
            Attempt::Redo if jobs.is_empty() => return None,
            // A write failed and was answered: redo the rest.
            Attempt::Redo => isolation = Isolation::Savepoints,
            Attempt::Failed(e) => {
                for job in jobs {
                    job.finish(Err(again(&e)));
                }
                return None;
            }
            Attempt::Ready(txn, outbox, starts) => {
                return commit(txn, outbox, jobs, starts, finished).await;
            }
        }
    }
}

/// What one attempt at a group led to.
enum Attempt {
    /// Every write that remains in the group ran (those that failed in
    /// their savepoints were answered and removed); where each one's events
    /// start in the outbox, in order (they run to the next one's start).
    Ready(DatabaseTransaction, Outbox, Vec<usize>),
    /// An optimistic attempt lost a write (answered, removed from the
    /// group) and was rolled back.
    Redo,
    /// The database failed the group as a whole.
    Failed(Error),
}

async fn attempt(
    writer: &DatabaseConnection,
    jobs: &mut Vec<Box<dyn Job>>,
    isolation: Isolation,
) -> Attempt {
    let txn = match writer.begin().await {
        Ok(t) => t,
        Err(e) => return Attempt::Failed(e.into()),
    };
    // A lone write needs no savepoint: its failure rolls back everything.
    let savepoints = isolation == Isolation::Savepoints && jobs.len() > 1;
    let mut outbox = Outbox::default();
    let mut starts = Vec::with_capacity(jobs.len());
    let mut i = 0;
    while i < jobs.len() {
        let start = outbox.events.len();
        if !savepoints {
            match jobs[i].run(&txn, &mut outbox).await {
                Ok(()) => {
                    starts.push(start);
                    i += 1;
                    continue;
                }
                Err(e) => {
                    jobs.remove(i).finish(Err(e));
                    let _ = txn.rollback().await;
                    return Attempt::Redo;
                }
            }
        }
        let sp = match txn.begin().await {
            Ok(sp) => sp,
            Err(e) => return Attempt::Failed(e.into()),
        };
        // Its rows written in its own savepoint: if it fails, they go with it.
        let ran = match jobs[i].run(&sp, &mut outbox).await {
            Ok(()) => outbox.write_rows(&sp).await,
            Err(e) => Err(e),
        };
        match ran {
            Ok(()) => {
                if let Err(e) = sp.commit().await {
                    return Attempt::Failed(e.into());
                }
                starts.push(start);
                i += 1;
            }
            Err(e) => {
                outbox.discard_since(start);
                if let Err(db) = sp.rollback().await {
                    return Attempt::Failed(db.into());
                }
                jobs.remove(i).finish(Err(e));
            }
        }
    }
    Attempt::Ready(txn, outbox, starts)
}

/// Numbers and inserts the events, commits, and answers every write.
async fn commit(
    txn: DatabaseTransaction,
    outbox: Outbox,
    jobs: Vec<Box<dyn Job>>,
    starts: Vec<usize>,
    finished: &Finished,
) -> Option<usize> {
    if jobs.is_empty() {
        let _ = txn.rollback().await;
        return None;
    }
    let mut events = match outbox.commit(txn, finished).await {
        Ok(events) => events,
        Err(e) => {
            tracing::warn!(error = %e, writes = jobs.len(), "a group of writes failed to commit");
            for job in jobs {
                job.finish(Err(again(&e)));
            }
            return None;
        }
    };
    // The writes' events are contiguous and in order: hand each its own,
    // last first, without copying them.
    let n = jobs.len();
    for (job, start) in jobs.into_iter().zip(starts).rev() {
        job.finish(Ok(events.split_off(start)));
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::Ordering::Relaxed;

    use sea_orm::{ConnectionTrait, Statement};

    use super::*;

    async fn insert(txn: &DatabaseTransaction, k: i64) -> Result<()> {
        txn.execute_raw(Statement::from_sql_and_values(
            txn.get_database_backend(),
            "INSERT INTO grouped (k) VALUES (?)",
            [k.into()],
        ))
        .await?;
        Ok(())
    }

    /// Writes that wait together commit as one group; one that fails (by
    /// its own refusal or by the database's) is rolled back alone and only
    /// its caller hears of it.
    #[tokio::test]
    async fn waiting_writes_commit_together_and_fail_alone() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("g.db").display());
        let store = Store::open(&url, 2).await.unwrap();
        store
            .db()
            .execute_unprepared("CREATE TABLE grouped (k INTEGER PRIMARY KEY)")
            .await
            .unwrap();
        // The test's runtime has one thread: every write below is queued
        // before the writer task runs once.
        let writes = (0..50i64).map(|i| {
            let store = store.clone();
            async move {
                store
                    .grouped("p", move |txn, _| {
                        Box::pin(async move {
                            match i {
                                // Writes, then refuses: its row must go.
                                7 => {
                                    insert(txn, 7).await?;
                                    Err(Error::FailedPrecondition("refused".into()))
                                }
                                // Collides with write 12's row.
                                13 => insert(txn, 12).await.map(|()| i),
                                _ => insert(txn, i).await.map(|()| i),
                            }
                        })
                    })
                    .await
            }
        });
        let results = futures::future::join_all(writes).await;
        for (i, r) in results.iter().enumerate() {
            match (i, r) {
                (7, Err(Error::FailedPrecondition(_))) | (13, Err(Error::Database(_))) => {}
                (7 | 13, other) => panic!("write {i} should have failed: {other:?}"),
                (_, Ok((k, events))) => assert_eq!((*k, events.len()), (i as i64, 0)),
                (_, Err(e)) => panic!("write {i} failed: {e}"),
            }
        }
        let rows: Vec<i64> = store
            .db()
            .query_all_raw(Statement::from_string(
                store.backend(),
                "SELECT k FROM grouped ORDER BY k",
            ))
            .await
            .unwrap()
            .iter()
            .map(|row| row.try_get::<i64>("", "k").unwrap())
            .collect();
        let expected: Vec<i64> = (0..50).filter(|k| *k != 7 && *k != 13).collect();
        assert_eq!(rows, expected);
        assert_eq!(store.group.stats.groups.load(Relaxed), 1);
        assert_eq!(store.group.stats.writes.load(Relaxed), 48);
    }
}
