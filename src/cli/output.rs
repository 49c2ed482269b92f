//! Output of the client commands: tables for people, and JSON or YAML in
//! the canonical proto3 JSON mapping for scripts: lowerCamelCase field
//! names, enums by name, 64-bit integers as strings, RFC 3339 times, `"30s"`
//! durations, fields at their default left out. It is exactly what grpcurl
//! and the Python and TypeScript clients print, so one script (`jq
//! .triggerEnvironment`) works with all of them. `-o id` prints only the
//! identifier, for shell variables.

use std::io::Write;
use std::sync::LazyLock;

use clap::ValueEnum;
use comfy_table::{ContentArrangement, Table};
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use serde_json::Value;

use super::client::{CliError, fail};
use crate::proto::v1 as pb;

/// Writes to stdout. A closed pipe (`promoflow release list | head -1`)
/// ends the process quietly, with the usual SIGPIPE exit status, instead of
/// the panic `println!` would give.
pub fn emit(text: std::fmt::Arguments) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(text).and_then(|()| out.flush())
        && e.kind() == std::io::ErrorKind::BrokenPipe
    {
        std::process::exit(141);
    }
}

/// `println!` through [`emit`].
macro_rules! outln {
    ($($t:tt)*) => {
        $crate::cli::output::emit(format_args!("{}\n", format_args!($($t)*)))
    };
}

/// `print!` through [`emit`].
macro_rules! out {
    ($($t:tt)*) => {
        $crate::cli::output::emit(format_args!($($t)*))
    };
}

pub(crate) use {out, outln};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable tables.
    Table,
    /// JSON, the canonical proto3 mapping grpcurl prints: one object, or an array for lists.
    Json,
    /// YAML, the same document as JSON.
    Yaml,
    /// Only the identifier: a release's id, any other resource's name (one
    /// per line for lists; nothing for a delete): `id=$(promoflow release trigger … -o id)`.
    Id,
}

static POOL: LazyLock<Result<DescriptorPool, String>> = LazyLock::new(|| {
    DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET).map_err(|e| e.to_string())
});

/// A message of `promoflow.v1` as it would be named in the proto files.
pub trait Named: prost::Message {
    const NAME: &'static str;
}

macro_rules! named {
    ($($t:ident),*) => {
        $(impl Named for pb::$t { const NAME: &'static str = concat!("promoflow.v1.", stringify!($t)); })*
    };
}
named!(
    Environment,
    Product,
    Workflow,
    Flow,
    Release,
    ValidateFlowResponse,
    Application,
    NamedPromotionTemplate,
    Token,
    AuditEvent,
    CreateTokenResponse,
    WatchReleasesResponse
);

/// `msg` as a JSON value in the protobuf JSON mapping.
pub fn to_value<M: Named>(msg: &M) -> Result<Value, CliError> {
    let pool = POOL.as_ref().map_err(|e| CliError::Message(e.clone()))?;
    let Some(desc) = pool.get_message_by_name(M::NAME) else {
        return fail(format!("no descriptor for {}", M::NAME));
    };
    let dynamic = DynamicMessage::decode(desc, msg.encode_to_vec().as_slice())
        .map_err(|e| CliError::Message(e.to_string()))?;
    let options = SerializeOptions::new()
        .use_proto_field_name(false)
        .stringify_64_bit_integers(true)
        .skip_default_fields(true);
    dynamic
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| CliError::Message(e.to_string()))
}

/// `s`, or "none" when it is empty (for lists in messages).
pub fn or_none(s: &str) -> &str {
    if s.is_empty() { "none" } else { s }
}

/// An object's own `id`, else its `name`.
fn own_id(fields: &serde_json::Map<String, Value>) -> Option<&str> {
    ["id", "name"]
        .iter()
        .find_map(|k| fields.get(*k).and_then(Value::as_str))
}

/// The identifier of a resource in the JSON mapping: its `id` (releases,
/// tokens, audit events), else its `name`; an array gives one per line.
fn identifiers(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().flat_map(identifiers).collect(),
        Value::Object(fields) => own_id(fields)
            // A response wrapping one resource (`{"token": {…}, "secret": …}`).
            .or_else(|| {
                fields
                    .values()
                    .filter_map(Value::as_object)
                    .find_map(own_id)
            })
            .map(|id| vec![id.to_string()])
            .unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// Prints a JSON value as JSON, YAML or its identifiers (for
/// `Output::Table`, does nothing).
pub fn print_value(output: Output, value: &Value) -> Result<(), CliError> {
    match output {
        Output::Table => {}
        Output::Id => {
            for id in identifiers(value) {
                outln!("{id}");
            }
        }
        Output::Json => outln!(
            "{}",
            serde_json::to_string_pretty(value).map_err(|e| CliError::Message(e.to_string()))?
        ),
        Output::Yaml => out!(
            "{}",
            serde_saphyr::to_string(value).map_err(|e| CliError::Message(e.to_string()))?
        ),
    }
    Ok(())
}

/// Prints one resource: `table` renders it for people.
pub fn print_one<M: Named>(
    output: Output,
    msg: &M,
    table: impl FnOnce(&M) -> String,
) -> Result<(), CliError> {
    match output {
        Output::Table => {
            outln!("{}", table(msg));
            Ok(())
        }
        _ => print_value(output, &to_value(msg)?),
    }
}

/// Prints a list of resources: a table with `header` and one `row` per item,
/// or a JSON/YAML array.
pub fn print_list<M: Named>(
    output: Output,
    items: &[M],
    header: &[&str],
    row: impl Fn(&M) -> Vec<String>,
) -> Result<(), CliError> {
    match output {
        Output::Table => {
            if items.is_empty() {
                outln!("(none)");
            } else {
                outln!("{}", table(header, items.iter().map(row)));
            }
            Ok(())
        }
        _ => {
            let values = items.iter().map(to_value).collect::<Result<Vec<_>, _>>()?;
            print_value(output, &Value::Array(values))
        }
    }
}

/// Confirms a change that returns nothing (a delete): `message` for
/// people, an empty object for scripts.
pub fn print_done(output: Output, message: &str) -> Result<(), CliError> {
    match output {
        Output::Table => {
            outln!("{message}");
            Ok(())
        }
        _ => print_value(output, &Value::Object(Default::default())),
    }
}

/// A borderless table in the style of `kubectl get`.
pub fn table(header: &[&str], rows: impl IntoIterator<Item = Vec<String>>) -> String {
    let mut t = Table::new();
    t.load_preset(comfy_table::presets::NOTHING)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.iter().map(|h| h.to_uppercase()));
    for r in rows {
        t.add_row(r);
    }
    // NOTHING pads every cell with one space: drop the left margin.
    if let Some(c) = t.column_mut(0) {
        c.set_padding((0, 1));
    }
    t.lines()
        .map(|l| l.trim_end().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

/// `label: value` lines, aligned, skipping empty values.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let width = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    pairs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{:<width$} {v}", format!("{k}:")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An enum value's name without its type prefix (`RELEASE_STATUS_RUNNING` → `RUNNING`).
fn enum_name<E: TryFrom<i32>>(v: i32, prefix: &str, name: fn(&E) -> &'static str) -> String {
    E::try_from(v)
        .map(|e| name(&e).trim_start_matches(prefix).to_string())
        .unwrap_or_else(|_| v.to_string())
}

pub fn release_status(v: i32) -> String {
    enum_name(v, "RELEASE_STATUS_", pb::ReleaseStatus::as_str_name)
}

pub fn env_status(v: i32) -> String {
    enum_name(v, "ENVIRONMENT_STATUS_", pb::EnvironmentStatus::as_str_name)
}

pub fn step_status(v: i32) -> String {
    enum_name(v, "STEP_STATUS_", pb::StepStatus::as_str_name)
}

pub fn step_kind(v: i32) -> String {
    enum_name(v, "STEP_KIND_", pb::StepKind::as_str_name)
        .to_lowercase()
        .replace('_', "-")
}

pub fn environment_kind(v: i32) -> String {
    enum_name(v, "ENVIRONMENT_KIND_", pb::EnvironmentKind::as_str_name)
        .to_lowercase()
        .replace('_', "-")
}

/// A promotion action as the CLI spells it (`pull-request`); an unset one
/// (runs as none; promotion policies may supply it) is `not set`.
pub fn action(v: i32) -> String {
    if v == pb::PromotionAction::Unspecified as i32 {
        return "not set".to_owned();
    }
    enum_name(v, "PROMOTION_ACTION_", pb::PromotionAction::as_str_name)
        .to_lowercase()
        .replace('_', "-")
}

pub fn concurrency(v: i32) -> String {
    enum_name(v, "CONCURRENCY_", pb::Concurrency::as_str_name).to_lowercase()
}

/// A protobuf timestamp as a UTC time (`None` when unset or out of range).
pub fn datetime(t: Option<&prost_types::Timestamp>) -> Option<chrono::DateTime<chrono::Utc>> {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// A timestamp as `2026-11-26 23:04:05` (UTC), or empty.
pub fn time(t: Option<&prost_types::Timestamp>) -> String {
    datetime(t)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// A duration as `1m 30s`, or empty.
pub fn duration(d: Option<&prost_types::Duration>) -> String {
    d.map(|d| {
        let std = std::time::Duration::new(d.seconds.max(0) as u64, d.nanos.max(0) as u32);
        humantime::format_duration(std).to_string()
    })
    .unwrap_or_default()
}

/// Seconds between two timestamps (or until now when `to` is unset), as `12.3s`.
pub fn elapsed(
    from: Option<&prost_types::Timestamp>,
    to: Option<&prost_types::Timestamp>,
) -> String {
    let Some(from) = from else {
        return String::new();
    };
    let end = to
        .map(|t| t.seconds as f64 + t.nanos as f64 / 1e9)
        .unwrap_or_else(|| {
            let now = chrono::Utc::now();
            now.timestamp() as f64 + now.timestamp_subsec_nanos() as f64 / 1e9
        });
    let secs = (end - (from.seconds as f64 + from.nanos as f64 / 1e9)).max(0.0);
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        format!("{}m{:02}s", (secs / 60.0) as u64, secs as u64 % 60)
    }
}

/// Groups a graph's nodes in waves by dependency depth: wave 0 holds the
/// nodes without dependencies, wave n those whose longest path from a root
/// is n. Nodes are `(name, depends_on)` in any order; a node whose
/// dependencies never resolve (unknown or cyclic) lands after the others.
pub fn waves<'a>(nodes: &[(&'a str, &'a [String])]) -> Vec<Vec<&'a str>> {
    let mut depth: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    // Each pass settles at least one more level: at most one pass per node.
    for _ in 0..=nodes.len() {
        for (name, deps) in nodes {
            let d = deps
                .iter()
                .map(|p| depth.get(p.as_str()).copied())
                .try_fold(0, |acc, d| d.map(|d| acc.max(d + 1)));
            if let Some(d) = d {
                depth.insert(name, d);
            }
        }
    }
    let last = depth.values().copied().max().map_or(0, |m| m + 1);
    let mut waves: Vec<Vec<&str>> = Vec::new();
    for (name, _) in nodes {
        let d = depth.get(name).copied().unwrap_or(last);
        if waves.len() <= d {
            waves.resize(d + 1, Vec::new());
        }
        waves[d].push(name);
    }
    waves.retain(|w| !w.is_empty());
    waves
}
