//! Explicit schema migrations, run at start-up (and by `promoflow migrate`).
//!
//! On PostgreSQL they run on one dedicated connection holding an advisory
//! lock, so replicas starting together apply each migration exactly once.

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::{prelude::*, schema::*};

use crate::error::Result;

/// Arbitrary but fixed key of the advisory lock that serialises migrations.
const MIGRATION_LOCK_KEY: i64 = 0x7072_6f6d_6f66_6c6f; // "promoflo"

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(InitialSchema),
            Box::new(GitSources),
            Box::new(PromotionTemplates),
            Box::new(GitWatch),
            Box::new(PullRequests),
            Box::new(ArgoCd),
            Box::new(Security),
            Box::new(Approvals),
        ]
    }
}

/// Applies pending migrations on the database at `url`.
pub async fn run(db: &DatabaseConnection, url: &str) -> Result<()> {
    if db.get_database_backend() != DbBackend::Postgres {
        // SQLite allows one writer; the pool's busy timeout serialises starts.
        Migrator::up(db, None).await?;
        return Ok(());
    }
    // A session-level advisory lock belongs to one connection, so use a
    // pool of exactly one connection for the lock and the migrations.
    let mut opts = ConnectOptions::new(url.to_string());
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    let conn = Database::connect(opts).await?;
    conn.execute_unprepared(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
        .await?;
    let result = Migrator::up(&conn, None).await;
    let unlock = conn
        .execute_unprepared(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        .await;
    conn.close().await.ok();
    result?;
    unlock?;
    Ok(())
}

#[derive(DeriveMigrationName)]
struct InitialSchema;

#[async_trait::async_trait]
impl MigrationTrait for InitialSchema {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("environments")
                .col(string("name").primary_key())
                .col(string("kind"))
                .col(text("description"))
                .col(text("labels"))
                .col(big_integer("version"))
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone("update_time"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("products")
                .col(string("name").primary_key())
                .col(text("description"))
                .col(string("concurrency"))
                .col(text("promotion_flows"))
                .col(big_integer("version"))
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone("update_time"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("applications")
                .col(string("product"))
                .col(string("environment"))
                .col(string("name"))
                .col(string("version"))
                .col(text_null("last_commit"))
                .col(integer("position"))
                .col(timestamp_with_time_zone_null("update_time"))
                .primary_key(Index::create().col("product").col("environment"))
                .foreign_key(
                    ForeignKey::create()
                        .from("applications", "product")
                        .to("products", "name")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("applications", "environment")
                        .to("environments", "name")
                        .on_delete(ForeignKeyAction::Restrict),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("applications_by_environment")
                .table("applications")
                .col("environment")
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("workflows")
                .col(string("name").primary_key())
                .col(text("description"))
                .col(string("kind"))
                .col(text("spec"))
                .col(big_integer("version"))
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone("update_time"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("flows")
                .col(string("name").primary_key())
                .col(big_integer("version"))
                .col(text("refs"))
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone("update_time"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("flow_versions")
                .col(string("flow"))
                .col(big_integer("version"))
                .col(text("spec"))
                .col(timestamp_with_time_zone("create_time"))
                .primary_key(Index::create().col("flow").col("version"))
                .foreign_key(
                    ForeignKey::create()
                        .from("flow_versions", "flow")
                        .to("flows", "name")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("releases")
                .col(string("id").primary_key())
                .col(string("product"))
                .col(string("flow"))
                .col(big_integer("flow_version"))
                .col(string("app_version"))
                .col(string("status"))
                .col(string("initiator"))
                .col(text("trigger_message"))
                .col(text("message"))
                .col(string_null("request_id"))
                .col(text("context"))
                .col(big_integer("last_seq"))
                .col(text_null("terminate_reason"))
                .col(string_null("lease_owner"))
                .col(timestamp_with_time_zone_null("lease_expires_at"))
                .col(big_integer("lease_epoch"))
                .col(big_integer_null("promotion_timeout_secs"))
                .col(timestamp_with_time_zone_null("deadline"))
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone_null("start_time"))
                .col(timestamp_with_time_zone_null("finish_time"))
                .to_owned(),
        )
        .await?;
        for (name, cols) in [
            ("releases_by_product", &["product", "id"][..]),
            ("releases_by_flow", &["flow", "id"][..]),
            ("releases_by_status", &["status", "id"][..]),
        ] {
            let mut idx = Index::create();
            idx.name(name).table("releases");
            for c in cols {
                idx.col(*c);
            }
            m.create_index(idx.to_owned()).await?;
        }
        m.create_table(
            Table::create()
                .table("environment_runs")
                .col(string("release_id"))
                .col(string("environment"))
                .col(integer("position"))
                .col(string("status"))
                .col(text("depends_on"))
                .col(text("blocked_on"))
                .col(integer("attempt"))
                .col(string("application"))
                .col(string("action"))
                .col(text("message"))
                .col(timestamp_with_time_zone_null("start_time"))
                .col(timestamp_with_time_zone_null("finish_time"))
                .primary_key(Index::create().col("release_id").col("environment"))
                .foreign_key(
                    ForeignKey::create()
                        .from("environment_runs", "release_id")
                        .to("releases", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("step_runs")
                .col(string("release_id"))
                .col(string("environment"))
                .col(integer("idx"))
                .col(string("kind"))
                .col(string("workflow"))
                .col(string("status"))
                .col(text("message"))
                .col(integer("attempt"))
                .col(string("idempotency_key"))
                .col(timestamp_with_time_zone_null("deadline"))
                .col(timestamp_with_time_zone_null("start_time"))
                .col(timestamp_with_time_zone_null("finish_time"))
                .primary_key(
                    Index::create()
                        .col("release_id")
                        .col("environment")
                        .col("idx"),
                )
                .foreign_key(
                    ForeignKey::create()
                        .from("step_runs", "release_id")
                        .to("releases", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("events")
                .col(string("release_id"))
                .col(big_integer("seq"))
                .col(big_integer("position"))
                .col(string("product"))
                .col(string("flow"))
                .col(timestamp_with_time_zone("time"))
                .col(text("payload"))
                .primary_key(Index::create().col("release_id").col("seq"))
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .name("events_by_position")
                .table("events")
                .col("position")
                .unique()
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("event_clock")
                .col(integer("id").primary_key())
                .col(big_integer("position"))
                .to_owned(),
        )
        .await?;
        m.get_connection()
            .execute_unprepared("INSERT INTO event_clock (id, position) VALUES (1, 0)")
            .await?;
        m.create_table(
            Table::create()
                .table("idempotency_keys")
                .col(string("scope"))
                .col(string("key"))
                .col(string("request_hash"))
                .col(string_null("release_id"))
                .col(text_null("response"))
                .col(timestamp_with_time_zone("create_time"))
                .primary_key(Index::create().col("scope").col("key"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// Git-backed applications and promotions: where each application's
/// manifests live, what a product's promotions write, the commit a release
/// promotes and the values read from it, and what each action pushed.
struct GitSources;

/// Named by hand: the derived name is the module's, which the first
/// migration already uses.
impl MigrationName for GitSources {
    fn name(&self) -> &str {
        "m0002_git_sources"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for GitSources {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        let columns: [(&str, ColumnDef); 6] = [
            ("applications", text_null("source")),
            ("products", text_null("promotion_template")),
            ("releases", text("source_commit").default("").to_owned()),
            ("releases", text_null("promotion")),
            ("step_runs", text("commit_sha").default("").to_owned()),
            ("step_runs", text("url").default("").to_owned()),
        ];
        for (table, mut column) in columns {
            m.alter_table(
                Table::alter()
                    .table(table)
                    .add_column(&mut column)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Named promotion templates (Codefresh's `PromotionTemplate`) and the
/// products' references to them.
struct PromotionTemplates;

/// Named by hand, as [`GitSources`].
impl MigrationName for PromotionTemplates {
    fn name(&self) -> &str {
        "m0003_promotion_templates"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PromotionTemplates {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("promotion_templates")
                .col(string("name").primary_key())
                .col(text("description"))
                .col(text("spec"))
                .col(text("selector"))
                .col(big_integer("priority"))
                .col(big_integer("version"))
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone("update_time"))
                .to_owned(),
        )
        .await?;
        // A foreign key, so a template cannot be deleted from under a
        // product even by a delete racing the product's update. sea-query
        // cannot add a foreign key to an existing SQLite table, but both
        // backends accept this one statement (SQLite allows REFERENCES on
        // an added column whose default is NULL).
        m.get_connection()
            .execute_unprepared(
                "ALTER TABLE products ADD COLUMN promotion_template_ref varchar NULL \
                 REFERENCES promotion_templates (name) ON DELETE RESTRICT",
            )
            .await?;
        m.create_index(
            Index::create()
                .name("products_by_promotion_template")
                .table("products")
                .col("promotion_template_ref")
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// The commit the Git poller last saw on each watched trigger application,
/// with the source it was seen on (a changed source starts over).
struct GitWatch;

/// Named by hand, as [`GitSources`] is.
impl MigrationName for GitWatch {
    fn name(&self) -> &str {
        "m0004_git_watch"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for GitWatch {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Keyed like `applications`, but without a foreign key to them:
        // updating a product rewrites its application rows, and the watch
        // must survive that. A deleted product takes its watches along.
        m.create_table(
            Table::create()
                .table("git_watches")
                .col(string("product"))
                .col(string("environment"))
                .col(text("repo_url"))
                .col(text("branch"))
                .col(text("path"))
                .col(string("commit_sha"))
                .col(timestamp_with_time_zone("update_time"))
                .primary_key(Index::create().col("product").col("environment"))
                .foreign_key(
                    ForeignKey::create()
                        .from("git_watches", "product")
                        .to("products", "name")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        Ok(())
    }
}

/// PULL_REQUEST actions: the number of the pull request each one opened or
/// adopted, recorded before it waits.
struct PullRequests;

impl MigrationName for PullRequests {
    fn name(&self) -> &str {
        "m0005_pull_requests"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for PullRequests {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("step_runs")
                .add_column(big_integer("pull_request").default(0))
                .to_owned(),
        )
        .await
    }
}

/// Argo CD applications: which one deploys each application (a SYNC step
/// waits for it after the action).
struct ArgoCd;

/// Named by hand, as [`GitSources`].
impl MigrationName for ArgoCd {
    fn name(&self) -> &str {
        "m0006_argocd"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for ArgoCd {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("applications")
                .add_column(text_null("argocd"))
                .to_owned(),
        )
        .await
    }
}

/// API tokens (only a hash of each secret) and the append-only audit log.
struct Security;

/// Named by hand, as [`GitSources`].
impl MigrationName for Security {
    fn name(&self) -> &str {
        "m0008_security"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Security {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("api_tokens")
                // The public part of `pf_<id>_<secret>`: the lookup key.
                .col(string("id").primary_key())
                .col(string_uniq("name"))
                // Hex SHA-256 of the secret; the secret itself is never stored.
                .col(string("secret_hash"))
                .col(string("role"))
                .col(text("flow_patterns"))
                .col(text("environment_patterns"))
                .col(text("created_by"))
                .col(timestamp_with_time_zone("create_time"))
                .col(timestamp_with_time_zone_null("expire_time"))
                .col(timestamp_with_time_zone_null("last_used_time"))
                .col(timestamp_with_time_zone_null("revoke_time"))
                .to_owned(),
        )
        .await?;
        m.create_table(
            Table::create()
                .table("audit_events")
                // UUIDv7: ordered like time, so "newest first" is by id.
                .col(string("id").primary_key())
                .col(timestamp_with_time_zone("time"))
                .col(text("actor"))
                .col(string("actor_kind"))
                .col(string("action"))
                .col(text("resource"))
                .col(text("flow"))
                .col(text("environment"))
                .col(string("result"))
                .col(string("grpc_code"))
                .col(text("message"))
                .col(text("request_id"))
                .col(text("remote_address"))
                .to_owned(),
        )
        .await?;
        // Who triggered each release, as the server authenticated them.
        m.alter_table(
            Table::alter()
                .table("releases")
                .add_column(text("actor").default(""))
                .to_owned(),
        )
        .await?;
        for col in ["actor", "action", "resource", "time"] {
            m.create_index(
                Index::create()
                    .name(format!("audit_events_{col}"))
                    .table("audit_events")
                    .col(col)
                    .to_owned(),
            )
            .await?;
        }
        Ok(())
    }
}

/// Approval rules: each approval step's decisions, and who terminated a
/// release.
struct Approvals;

/// Named by hand, as [`GitSources`].
impl MigrationName for Approvals {
    fn name(&self) -> &str {
        "m0009_approvals"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Approvals {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("step_runs")
                .add_column(text_null("approval"))
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("releases")
                .add_column(text("terminated_by").default(""))
                .to_owned(),
        )
        .await
    }
}
