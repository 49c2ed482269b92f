//! API tokens: looked up by their public id, verified against the stored
//! hash of their secret (the secret itself is never stored).

use chrono::{DateTime, Utc};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use super::entity::api_token;
use super::versioned::list_page;
use super::{Page, PageRequest, Store, map_unique, now, to_json};
use crate::domain::access::{Grant, Pattern, Role};
use crate::error::{Error, Result};

/// How long a token read from the store is trusted without reading it
/// again (see [`Store::token_by_id`]).
pub const TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(5);

/// Tokens recently read: when, and the token with its secret's hash.
pub(crate) type TokenCache = quick_cache::sync::Cache<
    String,
    (std::time::Instant, std::sync::Arc<(ApiToken, String)>),
>;

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
        super::audit::commit(txn).await?;
        self.tokens.remove(&row.id);
        Ok(token_from(row)?.0)
    }

    /// The token with public id `id` and its secret hash, if any.
    ///
    /// Every authenticated call asks, so a token found is remembered for
    /// [`TOKEN_TTL`]: a read then costs no query for its credential. A
    /// revocation on this server forgets it at once; one made on another
    /// replica takes effect here within the TTL.
    pub async fn token_by_id(&self, id: &str) -> Result<Option<(ApiToken, String)>> {
        if let Some((at, found)) = self.tokens.get(id)
            && at.elapsed() < TOKEN_TTL
        {
            return Ok(Some((*found).clone()));
        }
        let found = api_token::Entity::find_by_id(id.to_string())
            .one(self.db())
            .await?
            .map(token_from)
            .transpose()?;
        match &found {
            Some(f) => self.tokens.insert(
                id.to_string(),
                (std::time::Instant::now(), std::sync::Arc::new(f.clone())),
            ),
            None => {
                self.tokens.remove(id);
            }
        }
        Ok(found)
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
        super::audit::commit(txn).await?;
        self.tokens.remove(&row.id);
        Ok(token_from(row)?.0)
    }

    /// Records a use of token `id`. Called at most about once a minute per
    /// token (see `auth`), so authentication does not turn every read into
    /// a write.
    pub async fn touch_token(&self, id: &str, at: DateTime<Utc>) -> Result<()> {
        // The remembered token is used as of now too: the next calls must
        // not touch it again.
        if let Some((seen, found)) = self.tokens.get(id) {
            let mut used = (*found).clone();
            used.0.last_used_time = Some(at);
            self.tokens
                .insert(id.to_string(), (seen, std::sync::Arc::new(used)));
        }
        api_token::Entity::update_many()
            .col_expr(
                api_token::Column::LastUsedTime,
                sea_orm::sea_query::Expr::value(at),
            )
            .filter(api_token::Column::Id.eq(id))
            .exec(self.writer())
            .await?;
        Ok(())
    }
}
