//! Authentication: who is calling, computed by the server.
//!
//! One tower layer ([`layer::AuthLayer`]) runs before every gRPC method. It
//! lets health checks and reflection through, turns the request's
//! credential into a [`Principal`] (an API token, an OIDC JWT, a verified
//! client certificate; or everybody is `anonymous` under `--auth none`),
//! checks that the principal holds the method's permission somewhere
//! ([`table`]), puts the principal into the request's extensions, and opens
//! the call's audit scope ([`crate::store::audit`]). Handlers check the
//! permission on the concrete flow and environments.

pub mod layer;
pub mod mapping;
pub mod oidc;
pub mod table;
pub mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::domain::access::{Grant, Principal, Role};
use crate::error::{Error, Result};
use crate::store::Store;
use crate::store::tokens::NewToken;

/// The name of the token made on first start.
pub const BOOTSTRAP_TOKEN: &str = "admin";
/// Its file in the data directory.
pub const TOKEN_FILE: &str = "admin.token";

/// How requests are authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum AuthMode {
    /// Every call but health and reflection needs a credential.
    #[default]
    Required,
    /// No authentication: everybody may do everything. For experiments on
    /// a laptop only; the server says so loudly at start.
    None,
}

/// The window of `--auth-failures-per-minute`.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// `last_used_time` is written at most this often per token.
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// Turns credentials into principals.
pub struct Authenticator {
    pub mode: AuthMode,
    store: Store,
    /// Reflection needs `viewer` too (`--reflection-needs-auth`).
    pub reflection_needs_auth: bool,
    /// Failed authentications allowed per address and window; 0: any.
    max_failures: u32,
    failures: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// `--oidc-issuer`: bearer JWTs.
    oidc: Option<oidc::Oidc>,
    /// Roles of OIDC and certificate principals.
    mapping: Arc<mapping::Mapping>,
}

/// A verified client certificate's identity (mTLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    /// The subject's common name.
    pub common_name: String,
    /// The subject's organizational units.
    pub groups: Vec<String>,
}

impl PeerIdentity {
    /// The identity in a DER certificate the TLS handshake verified.
    pub fn from_der(der: &[u8]) -> Option<Self> {
        let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
        let subject = cert.subject();
        let common_name = subject
            .iter_common_name()
            .next()?
            .as_str()
            .ok()?
            .to_string();
        let groups = subject
            .iter_organizational_unit()
            .filter_map(|ou| ou.as_str().ok().map(str::to_string))
            .collect();
        Some(Self {
            common_name,
            groups,
        })
    }
}

/// Why a credential was refused (the message goes to the caller).
#[derive(Debug)]
pub enum Refusal {
    Unauthenticated(String),
    /// Too many failures from this address.
    Throttled(String),
}

impl Authenticator {
    pub fn new(
        mode: AuthMode,
        store: Store,
        reflection_needs_auth: bool,
        max_failures: u32,
    ) -> Self {
        Self {
            mode,
            store,
            reflection_needs_auth,
            max_failures,
            failures: Mutex::new(HashMap::new()),
            oidc: None,
            mapping: Arc::new(mapping::Mapping::default()),
        }
    }

    /// Accepts OIDC JWTs and client certificates, with `mapping`'s roles.
    pub fn with_identities(
        mut self,
        oidc: Option<oidc::Oidc>,
        mapping: Arc<mapping::Mapping>,
    ) -> Self {
        self.oidc = oidc;
        self.mapping = mapping;
        self
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The principal of a request's bearer credential or, without one, of
    /// its verified client certificate (a bearer credential is the more
    /// specific: a shared gateway certificate with users' tokens behind it).
    pub async fn authenticate(
        &self,
        bearer: Option<&str>,
        peer: Option<&PeerIdentity>,
        remote: Option<IpAddr>,
    ) -> std::result::Result<Principal, Refusal> {
        if self.mode == AuthMode::None {
            return Ok(Principal::anonymous());
        }
        if let Some(ip) = remote
            && let Some(wait) = self.throttled(ip)
        {
            return Err(Refusal::Throttled(format!(
                "too many failed authentications from {ip}; retry in {}s",
                wait.as_secs().max(1)
            )));
        }
        let result = match (bearer, peer) {
            (None, Some(peer)) => {
                let id = format!("cert:{}", peer.common_name);
                let grants = self.mapping.grants(&id, &peer.groups);
                return Ok(Principal::certificate(&peer.common_name, grants));
            }
            (None, None) => Err(
                "this call needs a credential: send `authorization: Bearer <token>` with an API token (the server's first one is in <data-dir>/admin.token) or an OIDC token"
                    .to_string(),
            ),
            (Some(b), _) => self.verify_bearer(b).await,
        };
        result.map_err(|m| {
            // A missing credential is a client's setup, not an attack; only
            // wrong ones count towards the limit.
            if bearer.is_some()
                && let Some(ip) = remote
            {
                self.failed(ip);
            }
            Refusal::Unauthenticated(m)
        })
    }

    async fn verify_bearer(&self, bearer: &str) -> std::result::Result<Principal, String> {
        let Some((id, secret)) = token::parse(bearer) else {
            if let Some(oidc) = &self.oidc
                && !bearer.starts_with("pf_")
            {
                return oidc.verify(bearer).await;
            }
            let why = if self.oidc.is_some() {
                ""
            } else {
                ", and OIDC tokens are not accepted (no --oidc-issuer)"
            };
            return Err(format!(
                "the bearer credential is not a promoflow API token (pf_<id>_<secret>){why}"
            ));
        };
        let unknown = || "unknown, revoked or expired API token".to_string();
        let (t, hash) = match self.store.token_by_id(id).await {
            Ok(Some(found)) => found,
            Ok(None) => return Err(unknown()),
            Err(e) => {
                tracing::warn!(error = %e, "token lookup failed");
                return Err("credentials cannot be checked right now; retry".into());
            }
        };
        let now = chrono::Utc::now();
        if !token::same_hash(&token::hash(secret), &hash)
            || t.revoke_time.is_some()
            || t.expire_time.is_some_and(|e| e <= now)
        {
            return Err(unknown());
        }
        if t.last_used_time.is_none_or(|u| now - u >= TOUCH_EVERY) {
            let store = self.store.clone();
            let id = t.id.clone();
            // Off the request's path: a slow writer must not slow reads.
            tokio::spawn(async move {
                if let Err(e) = store.touch_token(&id, now).await {
                    tracing::debug!(error = %e, "recording a token's use failed");
                }
            });
        }
        Ok(Principal::token(&t.name, vec![t.grant]))
    }

    fn throttled(&self, ip: IpAddr) -> Option<Duration> {
        if self.max_failures == 0 {
            return None;
        }
        let map = self.failures.lock().ok()?;
        let (since, count) = map.get(&ip)?;
        let elapsed = since.elapsed();
        (*count >= self.max_failures && elapsed < FAILURE_WINDOW).then(|| FAILURE_WINDOW - elapsed)
    }

    fn failed(&self, ip: IpAddr) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > 10_000 {
            map.retain(|_, (since, _)| since.elapsed() < FAILURE_WINDOW);
        }
        let entry = map.entry(ip).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= FAILURE_WINDOW {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }
}

/// Creates a token in `store` and returns its credential (shown once).
pub async fn create_token(
    store: &Store,
    name: &str,
    grant: &Grant,
    created_by: &str,
    ttl: Option<Duration>,
) -> Result<(crate::store::tokens::ApiToken, String)> {
    let minted = token::mint().map_err(Error::Internal)?;
    let expire_time = ttl
        .map(|d| {
            chrono::Duration::from_std(d)
                .map(|d| chrono::Utc::now() + d)
                .map_err(|_| Error::invalid_field("ttl", "is too long"))
        })
        .transpose()?;
    let t = store
        .create_token(NewToken {
            id: &minted.id,
            name,
            secret_hash: &minted.hash,
            grant,
            created_by,
            expire_time,
        })
        .await?;
    Ok((t, minted.full))
}

/// [`create_token`] straight into the database at `url` (migrated first),
/// with no server involved: the offline `promoflow token create`, and the
/// tokens the benchmarks and tests make before their server starts.
pub async fn create_token_at(
    url: &str,
    name: &str,
    grant: &Grant,
    created_by: &str,
    ttl: Option<Duration>,
) -> Result<String> {
    let store = Store::open(url, 1).await?;
    let made = create_token(&store, name, grant, created_by, ttl).await;
    store.close().await;
    Ok(made?.1)
}

/// On a store without tokens, creates the `admin` token and writes it to
/// `<data_dir>/admin.token` (mode 0600). Returns the file when it made one.
/// Replicas starting together race on the token's unique name: one wins,
/// the others find a token and do nothing.
pub async fn bootstrap(store: &Store, data_dir: &Path) -> Result<Option<PathBuf>> {
    if store.token_count().await? > 0 {
        return Ok(None);
    }
    let grant = Grant::global(Role::Admin);
    let (_, secret) =
        match create_token(store, BOOTSTRAP_TOKEN, &grant, "system:bootstrap", None).await {
            Ok(made) => made,
            Err(Error::AlreadyExists(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
    let path = data_dir.join(TOKEN_FILE);
    write_secret_file(&path, &secret).map_err(|e| {
        Error::Unavailable(format!(
            "cannot write the first admin token to {}: {e}",
            path.display()
        ))
    })?;
    Ok(Some(path))
}

/// Writes `secret` to `path`, readable by the owner only, replacing it.
pub fn write_secret_file(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
