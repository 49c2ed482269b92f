//! The tower layer that authenticates every gRPC call (see [`super`]).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::Code;

use super::table::{self, Rule};
use super::{Authenticator, Refusal};
use crate::domain::access::Principal;
use crate::store::audit::{self, AuditEvent, AuditResult, Pending};

/// Wraps the server's routes with [`AuthService`].
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
}

impl AuthLayer {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

impl<S> tower::Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            auth: self.auth.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Authenticator>,
}

type Resp = http::Response<tonic::body::Body>;

/// What the caller sent about itself: its address, request id and, over
/// mutual TLS, the certificate the handshake verified.
struct Caller {
    remote: Option<std::net::SocketAddr>,
    request_id: String,
    peer: Option<super::PeerIdentity>,
}

fn caller<B>(req: &http::Request<B>) -> Caller {
    use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
    let ext = req.extensions();
    let tls = ext.get::<TlsConnectInfo<TcpConnectInfo>>();
    let remote = ext
        .get::<TcpConnectInfo>()
        .or_else(|| tls.map(|t| t.get_ref()))
        .and_then(|i| i.remote_addr());
    // rustls verified the chain against --tls-client-ca before the first
    // request; the leaf comes first.
    let peer = tls
        .and_then(|t| t.peer_certs())
        .and_then(|certs| certs.first().and_then(|c| super::PeerIdentity::from_der(c)));
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(128).collect())
        .unwrap_or_default();
    Caller {
        remote,
        request_id,
        peer,
    }
}

fn bearer<B>(req: &http::Request<B>) -> Option<&str> {
    let v = req
        .headers()
        .get(http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// The gRPC code of a response: in its headers when the call failed before
/// sending a message (every unary failure); none means it succeeded so far.
fn grpc_code(resp: &Resp) -> Code {
    resp.headers()
        .get("grpc-status")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.parse::<i32>().ok())
        .map(Code::from_i32)
        .unwrap_or(Code::Ok)
}

fn grpc_message(resp: &Resp) -> String {
    resp.headers()
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        // grpc-message is percent-encoded.
        .map(|m| {
            percent_encoding::percent_decode_str(m)
                .decode_utf8_lossy()
                .into_owned()
        })
        .unwrap_or_default()
}

/// The name of a gRPC code as grpc-go prints it (`PERMISSION_DENIED`).
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl<S, B> tower::Service<http::Request<B>> for AuthService<S>
where
    S: tower::Service<http::Request<B>, Response = Resp> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Resp;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Resp, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        // The ready service serves this call; a fresh clone waits for the next.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let auth = self.auth.clone();
        Box::pin(async move {
            let path = req.uri().path().to_string();
            let public = table::is_public(&path)
                && !(auth.reflection_needs_auth && path.contains(".reflection."));
            let rule = table::rule(&path);
            // Webhooks carry their own signatures; health and reflection are
            // open; unknown paths get tonic's UNIMPLEMENTED.
            let is_grpc_service = path.starts_with("/grpc.") || path.starts_with("/promoflow.");
            if public || !is_grpc_service {
                return inner.call(req).await;
            }
            let who = caller(&req);
            let principal = match auth
                .authenticate(bearer(&req), who.peer.as_ref(), who.remote.map(|a| a.ip()))
                .await
            {
                Ok(p) => p,
                Err(refusal) => {
                    let (code, message) = match refusal {
                        Refusal::Unauthenticated(m) => (Code::Unauthenticated, m),
                        Refusal::Throttled(m) => (Code::ResourceExhausted, m),
                    };
                    if let Some(rule) = rule.filter(|r| r.changes) {
                        record(&auth, &who, None, rule, AuditResult::Denied, code, &message).await;
                    }
                    return Ok(tonic::Status::new(code, message).into_http());
                }
            };
            // Reflection under --reflection-needs-auth needs any principal.
            let Some(rule) = rule else {
                req.extensions_mut().insert(principal);
                return inner.call(req).await;
            };
            if !principal.may_somewhere(rule.permission) {
                let message = format!(
                    "{} lacks permission {} (needed by {})",
                    principal.id,
                    rule.permission,
                    path.trim_start_matches('/')
                );
                if rule.changes {
                    let code = Code::PermissionDenied;
                    record(
                        &auth,
                        &who,
                        Some(&principal),
                        rule,
                        AuditResult::Denied,
                        code,
                        &message,
                    )
                    .await;
                }
                return Ok(tonic::Status::permission_denied(message).into_http());
            }
            req.extensions_mut().insert(principal.clone());
            if !rule.changes {
                return inner.call(req).await;
            }
            let pending = Pending::new(event(&who, Some(&principal), rule));
            let resp = audit::scope(pending.clone(), inner.call(req)).await?;
            let code = grpc_code(&resp);
            // A change that committed wrote its row in its transaction; a
            // call that failed, or succeeded without writing (a repeated
            // request id), is recorded here.
            if code != Code::Ok || !pending.written() {
                let result = match code {
                    Code::Ok => AuditResult::Ok,
                    Code::PermissionDenied | Code::Unauthenticated => AuditResult::Denied,
                    _ => AuditResult::Error,
                };
                let mut e = pending.event();
                e.result = result;
                e.grpc_code = code_name(code).into();
                e.message = grpc_message(&resp);
                write(&auth, e).await;
            }
            Ok(resp)
        })
    }
}

fn event(who: &Caller, principal: Option<&Principal>, rule: Rule) -> AuditEvent {
    AuditEvent {
        actor: principal.map(|p| p.id.clone()).unwrap_or_default(),
        actor_kind: principal
            .map(|p| p.kind.as_str().to_string())
            .unwrap_or_else(|| "none".into()),
        action: rule.action.into(),
        request_id: who.request_id.clone(),
        remote_address: who.remote.map(|a| a.to_string()).unwrap_or_default(),
        ..Default::default()
    }
}

async fn record(
    auth: &Authenticator,
    who: &Caller,
    principal: Option<&Principal>,
    rule: Rule,
    result: AuditResult,
    code: Code,
    message: &str,
) {
    let mut e = event(who, principal, rule);
    e.result = result;
    e.grpc_code = code_name(code).into();
    e.message = message.into();
    write(auth, e).await;
}

async fn write(auth: &Authenticator, e: AuditEvent) {
    if let Err(err) = auth.store().record_audit(e).await {
        // The decision stands; losing its row is logged loudly.
        tracing::error!(error = %err, "writing an audit event failed");
    }
}
