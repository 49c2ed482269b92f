//! OIDC bearer JWTs: the second way in, next to API tokens.
//!
//! With `--oidc-issuer` (and `--oidc-audience`), a bearer credential that
//! is a JWT is verified against the issuer's signing keys: its JWKS, found
//! through the issuer's discovery document
//! (`<issuer>/.well-known/openid-configuration`) or given by
//! `--oidc-jwks-url`. Only asymmetric algorithms are accepted (RS*, PS*,
//! ES256, ES384): a shared-secret HS256 token could be forged by anyone who
//! knows the secret, and `none` is never valid. `iss`, `aud`, `exp` and
//! `sub` are required; `nbf` is honoured; clocks may differ by 30 s.
//!
//! Keys are cached by `kid`. The set is fetched again when it is older than
//! `--oidc-jwks-refresh`, and at once when a token names a key the cache
//! does not hold (the issuer rotated), at most once per
//! `--oidc-jwks-min-refresh` so that tokens with made-up key ids cannot
//! turn the server into a load generator against the issuer. A failed
//! fetch keeps the keys it had.
//!
//! The principal is `oidc:<sub>`; its grants come from the
//! [`super::mapping::Mapping`] of its subject and groups claim.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::mapping::Mapping;
use crate::domain::access::Principal;

/// How the issuer is reached and its tokens judged.
#[derive(Debug, Clone)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    /// The JWKS; `None`: from the issuer's discovery document.
    pub jwks_url: Option<String>,
    /// The claim holding the caller's groups (a string or a list).
    pub groups_claim: String,
    /// The key set is fetched again when older than this.
    pub refresh: Duration,
    /// Fetches for unknown key ids are at least this far apart.
    pub min_refresh: Duration,
}

/// Clock difference tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// The algorithms a token may be signed with.
const ALGORITHMS: [Algorithm; 8] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
];

pub struct Oidc {
    config: OidcConfig,
    mapping: Arc<Mapping>,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    /// One fetch at a time; waiters then read what it brought.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, Arc<DecodingKey>>,
    /// Keys without a `kid` (usable only when the set has one key).
    unnamed: Vec<Arc<DecodingKey>>,
    fetched: Option<Instant>,
    attempted: Option<Instant>,
    /// The discovered JWKS address.
    jwks_url: Option<String>,
}

impl Oidc {
    /// Checks the configuration; keys are fetched on first use.
    pub fn new(config: OidcConfig, mapping: Arc<Mapping>) -> Result<Self, String> {
        for (flag, url) in [
            ("--oidc-issuer", Some(config.issuer.as_str())),
            ("--oidc-jwks-url", config.jwks_url.as_deref()),
        ] {
            if let Some(url) = url {
                check_url(flag, url)?;
            }
        }
        if config.audience.trim().is_empty() {
            return Err(
                "--oidc-issuer needs --oidc-audience (the client id tokens are issued for)".into(),
            );
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("OIDC HTTP client: {e}"))?;
        Ok(Self {
            config,
            mapping,
            http,
            keys: RwLock::new(Keys::default()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.config.issuer
    }

    /// Fetches the key set now (at start, so a wrong issuer shows in the
    /// log at once rather than at the first login).
    pub async fn prefetch(&self) -> Result<usize, String> {
        self.fetch().await?;
        Ok(self.read(|k| k.by_kid.len() + k.unnamed.len()))
    }

    /// The principal of a JWT, or why it is refused (for the caller).
    pub async fn verify(&self, jwt: &str) -> Result<Principal, String> {
        let header = jsonwebtoken::decode_header(jwt)
            .map_err(|_| "the bearer credential is not a well-formed JWT".to_string())?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!(
                "OIDC tokens signed with {:?} are not accepted (RS*, PS*, ES256, ES384)",
                header.alg
            ));
        }
        let key = self.key(header.kid.as_deref()).await?;
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.config.issuer]);
        v.set_audience(&[&self.config.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        v.leeway = LEEWAY_SECS;
        let data =
            jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(jwt, &key, &v)
                .map_err(|e| refusal(&e))?;
        let claims = data.claims;
        let sub = claims
            .get("sub")
            .and_then(|s| s.as_str())
            .filter(|s| !s.is_empty())
            .ok_or("the OIDC token has no subject (sub)")?;
        let groups = match claims.get(&self.config.groups_claim) {
            Some(serde_json::Value::String(g)) => vec![g.clone()],
            Some(serde_json::Value::Array(gs)) => gs
                .iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        let id = format!("oidc:{sub}");
        let grants = self.mapping.grants(&id, &groups);
        Ok(Principal::oidc(sub, grants))
    }

    fn read<T>(&self, f: impl FnOnce(&Keys) -> T) -> T {
        let keys = self.keys.read().unwrap_or_else(|p| p.into_inner());
        f(&keys)
    }

    fn cached(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        self.read(|k| match kid {
            Some(kid) => k.by_kid.get(kid).cloned(),
            None if k.by_kid.len() + k.unnamed.len() == 1 => {
                k.by_kid.values().chain(&k.unnamed).next().cloned()
            }
            None => None,
        })
    }

    async fn key(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>, String> {
        let (stale, may_refetch) = self.read(|k| {
            (
                k.fetched.is_none_or(|t| t.elapsed() >= self.config.refresh),
                k.attempted
                    .is_none_or(|t| t.elapsed() >= self.config.min_refresh),
            )
        });
        if stale && may_refetch {
            // Old keys keep working while the issuer is unreachable.
            if let Err(e) = self.fetch().await {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "refreshing the OIDC signing keys failed");
            }
        }
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        let may_refetch = self.read(|k| {
            k.attempted
                .is_none_or(|t| t.elapsed() >= self.config.min_refresh)
        });
        if may_refetch {
            self.fetch().await.map_err(|e| {
                tracing::warn!(issuer = %self.config.issuer, error = %e, "fetching the OIDC signing keys failed");
                "the OIDC issuer's signing keys cannot be fetched right now; retry".to_string()
            })?;
        }
        self.cached(kid).ok_or_else(|| match kid {
            Some(_) => "the OIDC token is signed by a key the issuer does not publish".into(),
            None => "the OIDC token names no key (kid) and the issuer publishes several".into(),
        })
    }

    async fn fetch(&self) -> Result<(), String> {
        let started = Instant::now();
        let _one = self.fetching.lock().await;
        // Another caller fetched while this one waited.
        if self.read(|k| k.attempted.is_some_and(|t| t >= started)) {
            return Ok(());
        }
        self.keys
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .attempted = Some(Instant::now());
        let url = match self
            .config
            .jwks_url
            .clone()
            .or_else(|| self.read(|k| k.jwks_url.clone()))
        {
            Some(u) => u,
            None => self.discover().await?,
        };
        let set: jsonwebtoken::jwk::JwkSet = self.get_json(&url).await?;
        let mut fresh = Keys {
            jwks_url: Some(url.clone()),
            fetched: Some(Instant::now()),
            attempted: Some(Instant::now()),
            ..Keys::default()
        };
        for jwk in &set.keys {
            // Encryption keys and keys of other kinds are not ours to use.
            if jwk
                .common
                .public_key_use
                .as_ref()
                .is_some_and(|u| *u != jsonwebtoken::jwk::PublicKeyUse::Signature)
            {
                continue;
            }
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let key = Arc::new(key);
            match &jwk.common.key_id {
                Some(kid) => {
                    fresh.by_kid.insert(kid.clone(), key);
                }
                None => fresh.unnamed.push(key),
            }
        }
        if fresh.by_kid.is_empty() && fresh.unnamed.is_empty() {
            return Err(format!(
                "{url}: the key set holds no signing key promoflow can use"
            ));
        }
        *self.keys.write().unwrap_or_else(|p| p.into_inner()) = fresh;
        Ok(())
    }

    async fn discover(&self) -> Result<String, String> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.config.issuer.trim_end_matches('/')
        );
        let d: Discovery = self.get_json(&url).await?;
        // OIDC Discovery 1.0 §4.3: the document must name the issuer asked.
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(format!(
                "{url} names issuer {:?}, not {:?}",
                d.issuer, self.config.issuer
            ));
        }
        check_url("jwks_uri", &d.jwks_uri)?;
        Ok(d.jwks_uri)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let resp = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("{url}: HTTP {}", resp.status()));
        }
        resp.json::<T>()
            .await
            .map_err(|e| format!("{url}: not the expected JSON: {e}"))
    }
}

/// Issuers and key sets are fetched over HTTPS; plain HTTP only on this
/// machine (a local test issuer).
fn check_url(flag: &str, url: &str) -> Result<(), String> {
    let u = url::Url::parse(url).map_err(|e| format!("{flag} {url:?} is not a URL: {e}"))?;
    let loopback = match u.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    match u.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(format!(
            "{flag} {url:?} must be an https:// URL (http:// only on loopback)"
        )),
    }
}

/// What the caller is told about a token that failed verification.
fn refusal(e: &jsonwebtoken::errors::Error) -> String {
    use jsonwebtoken::errors::ErrorKind as K;
    match e.kind() {
        K::ExpiredSignature => "the OIDC token has expired".into(),
        K::ImmatureSignature => "the OIDC token is not valid yet (nbf)".into(),
        K::InvalidIssuer => "the OIDC token is from another issuer".into(),
        K::InvalidAudience => "the OIDC token is for another audience".into(),
        K::InvalidSignature => "the OIDC token's signature does not verify".into(),
        K::MissingRequiredClaim(c) => format!("the OIDC token has no {c} claim"),
        K::InvalidAlgorithm => "the OIDC token's algorithm does not fit its key".into(),
        _ => "the OIDC token is not valid".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issuers_must_be_https_except_on_loopback() {
        assert!(check_url("f", "https://login.example.com").is_ok());
        assert!(check_url("f", "http://127.0.0.1:8080").is_ok());
        assert!(check_url("f", "http://localhost:1").is_ok());
        assert!(check_url("f", "http://login.example.com").is_err());
        assert!(check_url("f", "file:///etc/passwd").is_err());
        assert!(check_url("f", "not a url").is_err());
    }
}
