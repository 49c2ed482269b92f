//! API tokens: looked up by their public id, verified against the stored
//! hash of their secret (the secret itself is never stored).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::changes::{Change, announce};
use super::entity::api_token;
use super::versioned::list_page;
use super::{Page, PageRequest, Store, map_unique, now, to_json};
use crate::domain::access::{Grant, Pattern, Role};
use crate::error::{Error, Result};

/// Tokens remembered for authentication, with their secrets' hashes.
pub(crate) type TokenCache =
    super::remembered::Remembered<String, std::sync::Arc<(ApiToken, String)>>;

/// A stored token, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiToken {
    pub id: String,
    pub name: String,
    pub grant: Grant,
    pub created_by: String,
    pub create_time: DateTime<Utc>,
    pub expire_time: Option<DateTime<Utc>>,
    pub last_used_time: Option<DateTime<Utc>>,
    pub revoke_time: Option<DateTime<Utc>>,
}

/// A token to create: `secret_hash` is the hex SHA-256 of the secret.
pub struct NewToken<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub secret_hash: &'a str,
    pub grant: &'a Grant,
    pub created_by: &'a str,
    pub expire_time: Option<DateTime<Utc>>,
}

fn token_from(m: api_token::Model) -> Result<(ApiToken, String)> {
    let patterns = |what: &str, s: &str| -> Result<Vec<Pattern>> {
        serde_json::from_str(s).map_err(|e| Error::Internal(format!("stored {what}: {e}")))
    };
    let role = Role::parse(&m.role)
        .ok_or_else(|| Error::Internal(format!("stored token role {:?}", m.role)))?;
    Ok((
        ApiToken {
            grant: Grant {
                role,
                flows: patterns("flow patterns", &m.flow_patterns)?,
                environments: patterns("environment patterns", &m.environment_patterns)?,
            },
            id: m.id,
            name: m.name,
            created_by: m.created_by,
            create_time: m.create_time,
            expire_time: m.expire_time,
            last_used_time: m.last_used_time,
            revoke_time: m.revoke_time,
        },
        m.secret_hash,
    ))
}

impl Store {
    pub async fn create_token(&self, t: NewToken<'_>) -> Result<ApiToken> {
        let model = api_token::ActiveModel {
            id: Set(t.id.to_string()),
            name: Set(t.name.to_string()),
            secret_hash: Set(t.secret_hash.to_string()),
            role: Set(t.grant.role.as_str().to_string()),
            flow_patterns: Set(to_json(&t.grant.flows)?),
            environment_patterns: Set(to_json(&t.grant.environments)?),
            created_by: Set(t.created_by.to_string()),
            create_time: Set(now()),
            expire_time: Set(t.expire_time),
            last_used_time: Set(None),
            revoke_time: Set(None),
        };
        let txn = self.write_txn().await?;
        api_token::Entity::insert(model)
            .exec_without_returning(&txn)
            .await
            .map_err(|e| map_unique(e, || format!("token {:?} already exists", t.name)))?;
        let row = api_token::Entity::find_by_id(t.id.to_string())
            .one(&txn)
            .await?
            .ok_or_else(|| Error::Internal("token vanished after insert".into()))?;
        announce(&txn, Change::Token(&row.id)).await?;
        super::audit::commit(txn).await?;
        self.tokens.forget([row.id.as_str()]);
        Ok(token_from(row)?.0)
    }

    /// The token with public id `id` and its secret hash, if any.
    ///
    /// Every authenticated call asks, so a token found is remembered until
    /// it changes (revoked, or its use recorded), here or on another
    /// replica (see [`super::changes`]): a call costs no query for its
    /// credential, and a revocation works from the next call on this
    /// replica and from its announcement on the others.
    pub async fn token_by_id(&self, id: &str) -> Result<Option<(ApiToken, String)>> {
        let load = || async {
            api_token::Entity::find_by_id(id.to_string())
                .one(self.db())
                .await?
                .map(|m| token_from(m).map(std::sync::Arc::new))
                .transpose()
        };
        let found = self.tokens.get_or_load(id, load).await?;
        Ok(found.map(|f| (*f).clone()))
    }

    pub async fn token_count(&self) -> Result<u64> {
        Ok(api_token::Entity::find().count(self.db()).await?)
    }

    pub async fn list_tokens(&self, page: &PageRequest) -> Result<Page<ApiToken>> {
        let rows = list_page::<api_token::Entity, _>(self.db(), api_token::Column::Name, page)
            .await?
            .into_iter()
            .map(|m| token_from(m).map(|(t, _)| t))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_fetched(rows, page, |t| t.name.clone()))
    }

    /// Revokes the token `name` (a revoked one stays as it was).
    pub async fn revoke_token(&self, name: &str) -> Result<ApiToken> {
        let txn = self.write_txn().await?;
        let row = api_token::Entity::find()
            .filter(api_token::Column::Name.eq(name))
            .one(&txn)
            .await?
            .ok_or_else(|| Error::not_found("token", name))?;
        let row = if row.revoke_time.is_none() {
            let id = row.id.clone();
            api_token::Entity::update_many()
                .col_expr(
                    api_token::Column::RevokeTime,
                    sea_orm::sea_query::Expr::value(now()),
                )
                .filter(api_token::Column::Id.eq(id.as_str()))
                .exec(&txn)
                .await?;
            api_token::Entity::find_by_id(id)
                .one(&txn)
                .await?
                .ok_or_else(|| Error::Internal("token vanished while revoking".into()))?
        } else {
            row
        };
        announce(&txn, Change::Token(&row.id)).await?;
        super::audit::commit(txn).await?;
        self.tokens.forget([row.id.as_str()]);
        Ok(token_from(row)?.0)
    }

    /// Records a use of token `id`. Called at most about once a minute per
    /// token (see `auth`), so authentication does not turn every read into
    /// a write.
    pub async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        api_token::Entity::update_many()
            .col_expr(
                api_token::Column::LastUsedTime,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(api_token::Column::Id.eq(id))
            .exec(self.writer())
            .await?;
        // Read again with the new time, here and on every replica, so the
        // next calls do not touch it.
        self.tokens.forget([id]);
        announce(self.writer(), Change::Token(id)).await?;
        Ok(())
    }
}
