//! `promoflow token` and `promoflow audit`: API tokens and the audit log.

use std::process::ExitCode;

use clap::{Subcommand, ValueEnum};

use super::client::CliError;
use super::client::{CmdResult, Ctx, all_pages, duration, fail};
use super::output::Output;
use super::output::{self, fields, print_list, print_one};
use crate::proto::v1 as pb;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Viewer,
    Promoter,
    Editor,
    Admin,
}

impl RoleArg {
    fn pb(self) -> pb::Role {
        match self {
            Self::Viewer => pb::Role::Viewer,
            Self::Promoter => pb::Role::Promoter,
            Self::Editor => pb::Role::Editor,
            Self::Admin => pb::Role::Admin,
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token; its secret is printed once, on standard output.
    #[command(
        after_help = "Examples:\n  promoflow token create ci --role promoter --flow 'shop*' --env qa --env 'staging*' --ttl 90d\n  promoflow token create rescue --role admin --database-url sqlite://promoflow-data/promoflow.db   (offline, with the server stopped or running)"
    )]
    Create {
        /// A lowercase DNS label; calls with it act as `token:<name>`.
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// A flow pattern the role applies to: name, prefix* or * (repeatable; none = all).
        #[arg(long = "flow", value_name = "PATTERN")]
        flows: Vec<String>,
        /// An environment pattern (repeatable; none = all).
        #[arg(long = "env", value_name = "PATTERN")]
        environments: Vec<String>,
        /// How long it works (30d, 12h); by default until revoked.
        #[arg(long, value_parser = duration)]
        ttl: Option<prost_types::Duration>,
        /// Write the token straight into this database instead of asking a
        /// server: the way back in when no admin token is left.
        #[arg(long, value_name = "URL")]
        database_url: Option<String>,
    },
    /// List tokens (never their secrets).
    #[command(after_help = "Example:\n  promoflow token list -o json")]
    List,
    /// Revoke a token: calls with it fail at once, on every replica.
    #[command(after_help = "Example:\n  promoflow token revoke ci")]
    Revoke { name: String },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ResultArg {
    Ok,
    Denied,
    Error,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// List audit events, newest first.
    #[command(
        after_help = "Examples:\n  promoflow audit list --action release.approve\n  promoflow audit list --actor token:ci --result denied -o json"
    )]
    List {
        #[arg(long, default_value = "", hide_default_value = true)]
        actor: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        action: String,
        #[arg(long, default_value = "", hide_default_value = true)]
        resource: String,
        #[arg(long, value_enum)]
        result: Option<ResultArg>,
        /// At most this many events.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

fn role_name(r: i32) -> String {
    pb::Role::try_from(r)
        .map(|r| r.as_str_name().trim_start_matches("ROLE_").to_lowercase())
        .unwrap_or_else(|_| r.to_string())
}

fn patterns(ps: &[String]) -> String {
    if ps.is_empty() {
        "*".into()
    } else {
        ps.join(",")
    }
}

/// The request `token create` sends (or, offline, validates as the server
/// would).
fn create_request(
    name: String,
    role: RoleArg,
    flows: Vec<String>,
    environments: Vec<String>,
    ttl: Option<prost_types::Duration>,
) -> pb::CreateTokenRequest {
    pb::CreateTokenRequest {
        name,
        role: role.pb() as i32,
        flow_patterns: flows,
        environment_patterns: environments,
        ttl,
    }
}

/// `token create --database-url`: straight into the store, no server
/// involved.
pub async fn create_offline(cmd: TokenCommand, out: Output) -> CmdResult {
    let TokenCommand::Create {
        name,
        role,
        flows,
        environments,
        ttl,
        database_url: Some(url),
    } = cmd
    else {
        return fail("token create without --database-url needs a server");
    };
    let req = create_request(name, role, flows, environments, ttl);
    let spec = crate::api::access::token_request_in(&req).map_err(|e| match e {
        crate::error::Error::InvalidArgument { violations, .. } => CliError::Message(
            violations
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        other => CliError::Message(other.to_string()),
    })?;
    let secret =
        crate::auth::create_token_at(&url, &req.name, &spec.grant, "system:cli-offline", spec.ttl)
            .await
            .map_err(|e| CliError::Message(e.to_string()))?;
    if matches!(out, Output::Table) {
        eprintln!("token {} created; its secret (shown only now):", req.name);
    }
    println!("{secret}");
    Ok(ExitCode::SUCCESS)
}

pub async fn run_token(ctx: &Ctx, cmd: TokenCommand) -> CmdResult {
    let mut client = ctx.tokens();
    match cmd {
        TokenCommand::Create {
            name,
            role,
            flows,
            environments,
            ttl,
            database_url: _,
        } => {
            let made = client
                .create_token(create_request(name, role, flows, environments, ttl))
                .await?
                .into_inner();
            match ctx.output {
                Output::Table => {
                    let t = made.token.unwrap_or_default();
                    eprintln!(
                        "token {} created (role {}); its secret, shown only now:",
                        t.name,
                        role_name(t.role)
                    );
                    println!("{}", made.secret);
                }
                _ => print_one(ctx.output, &made, |_| String::new())?,
            }
        }
        TokenCommand::List => {
            let all = all_pages(|page_token| {
                let mut client = client.clone();
                async move {
                    let r = client
                        .list_tokens(pb::ListTokensRequest {
                            page_size: 0,
                            page_token,
                        })
                        .await?
                        .into_inner();
                    Ok((r.tokens, r.next_page_token))
                }
            })
            .await?;
            print_list(
                ctx.output,
                &all,
                &[
                    "name",
                    "role",
                    "flows",
                    "environments",
                    "expires",
                    "last used",
                    "revoked",
                ],
                |t| {
                    vec![
                        t.name.clone(),
                        role_name(t.role),
                        patterns(&t.flow_patterns),
                        patterns(&t.environment_patterns),
                        output::or_none(&output::time(t.expire_time.as_ref())).to_string(),
                        output::or_none(&output::time(t.last_used_time.as_ref())).to_string(),
                        output::time(t.revoke_time.as_ref()),
                    ]
                },
            )?;
        }
        TokenCommand::Revoke { name } => {
            let t = client
                .revoke_token(pb::RevokeTokenRequest { name })
                .await?
                .into_inner()
                .token
                .unwrap_or_default();
            print_one(ctx.output, &t, |t| {
                fields(&[
                    ("token", t.name.clone()),
                    ("revoked", output::time(t.revoke_time.as_ref())),
                ])
            })?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn run_audit(ctx: &Ctx, cmd: AuditCommand) -> CmdResult {
    let AuditCommand::List {
        actor,
        action,
        resource,
        result,
        limit,
    } = cmd;
    if limit == 0 {
        return fail("--limit must be at least 1");
    }
    let result = match result {
        None => pb::AuditResult::Unspecified,
        Some(ResultArg::Ok) => pb::AuditResult::Ok,
        Some(ResultArg::Denied) => pb::AuditResult::Denied,
        Some(ResultArg::Error) => pb::AuditResult::Error,
    };
    let mut client = ctx.audit();
    let mut events = Vec::new();
    let mut page_token = String::new();
    while events.len() < limit {
        let r = client
            .list_audit_events(pb::ListAuditEventsRequest {
                actor: actor.clone(),
                action: action.clone(),
                resource: resource.clone(),
                result: result as i32,
                page_size: (limit - events.len()).min(500) as i32,
                page_token,
            })
            .await
            .map_err(CliError::Status)?
            .into_inner();
        events.extend(r.events);
        if r.next_page_token.is_empty() {
            break;
        }
        page_token = r.next_page_token;
    }
    events.truncate(limit);
    print_list(
        ctx.output,
        &events,
        &[
            "time", "actor", "action", "resource", "result", "code", "message",
        ],
        |e| {
            vec![
                output::time(e.time.as_ref()),
                if e.actor.is_empty() {
                    "-".into()
                } else {
                    e.actor.clone()
                },
                e.action.clone(),
                e.resource.clone(),
                pb::AuditResult::try_from(e.result)
                    .map(|r| {
                        r.as_str_name()
                            .trim_start_matches("AUDIT_RESULT_")
                            .to_lowercase()
                    })
                    .unwrap_or_default(),
                e.grpc_code.clone(),
                e.message.chars().take(80).collect(),
            ]
        },
    )?;
    Ok(ExitCode::SUCCESS)
}
