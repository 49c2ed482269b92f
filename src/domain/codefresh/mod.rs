//! The Codefresh custom resources promoflow reads and writes as YAML (README,
//! "Codefresh YAML"): `PromotionFlow` ([`flow`]), `Product` ([`product`])
//! and `PromotionTemplate` ([`template`]), and how a file of several such
//! documents is split ([`documents`]).
//!
//! What the three share lives here: one parser with the same limits and
//! YAML 1.2 reading (`no`, `on`, `007` are strings), and one [`Reader`] that
//! walks the untyped tree and reports *every* unknown field, missing field
//! and wrong type at once, each at its path in the document
//! (`spec.steps[1].polcy`), rather than stopping at the first as
//! `#[serde(deny_unknown_fields)]` structs would. Exports go through one
//! writer ([`write`]) so that all three look like the Codefresh examples.

pub mod documents;
pub mod flow;
pub mod product;
pub mod template;

pub use flow::{API_VERSION, KIND, from_yaml, from_yaml_with_limits, max_yaml_len, to_yaml};

use serde::Serialize;
use serde_json::{Map, Value};

use super::{Violation, Violations};

/// Largest document accepted with the default API limits, in bytes: far
/// above any flow within them, small enough to parse in milliseconds. A
/// larger step limit allows proportionally more flow YAML (see
/// [`max_yaml_len`]).
pub const MAX_YAML_LEN: usize = 1024 * 1024;

/// Field path used for problems with the document as a whole.
const DOCUMENT: &str = "yaml";

/// The annotation holding a resource's description (flows, products and
/// templates alike).
pub const DESCRIPTION_ANNOTATION: &str = super::flow::DESCRIPTION_ANNOTATION;

/// Parses one YAML document of at most `max_len` bytes into an untyped
/// tree, with a parsing budget `scale` times the default one.
fn parse(text: &str, max_len: usize, scale: usize) -> Result<Value, Vec<Violation>> {
    let violation = |description: String| vec![Violation::new(DOCUMENT, description)];
    if text.len() > max_len {
        return Err(violation(format!(
            "at most {max_len} bytes, got {}",
            text.len()
        )));
    }
    if text.trim().is_empty() {
        return Err(violation("is empty".to_owned()));
    }
    let mut options = serde_saphyr::Options::default();
    // YAML 1.2 booleans only: `no`, `on`, `y` are environment names, not false/true.
    options.strict_booleans = true;
    // `007` and `1_000` are names too, not numbers.
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    // One line for an RPC error message, without a source snippet.
    options.with_snippet = false;
    // A flow at the API limits is about 20 events and nodes per step, nested
    // six deep; anything far beyond that (an alias bomb, say) is refused
    // before it costs real time. The counts grow with the step limit.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_events = scale.saturating_mul(100_000);
    budget.max_nodes = scale.saturating_mul(100_000);
    budget.max_aliases = scale.saturating_mul(1_000);
    budget.max_depth = 32;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = scale.saturating_mul(100_000);
    serde_saphyr::from_str_with_options(text, options)
        .map_err(|e| violation(format!("not a valid YAML document: {e}")))
}

/// Writes `document` as YAML, deterministically: the same value always gives
/// the same text.
fn write<T: Serialize>(document: &T) -> String {
    let mut options = serde_saphyr::SerializerOptions::default();
    // Indent list items under their key, as the Codefresh examples do.
    options.compact_list_indent = false;
    serde_saphyr::to_string_with_options(document, options)
        // Unreachable for a tree of strings, lists and integers; if the YAML
        // writer ever refuses one, JSON is valid YAML and imports the same.
        .or_else(|_| serde_json::to_string_pretty(document))
        .unwrap_or_default()
}

/// Walks the parsed document, collecting violations as it goes.
#[derive(Default)]
struct Reader {
    v: Violations,
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// How a value is described in a message.
fn type_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

impl Reader {
    /// `value` as a mapping; with `allowed`, every other key is reported as
    /// unknown (keys come sorted, so the report is stable).
    fn object<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
        allowed: Option<&[&str]>,
    ) -> Option<&'v Map<String, Value>> {
        let Value::Object(map) = value else {
            self.v
                .push(path, format!("must be a mapping, got {}", type_of(value)));
            return None;
        };
        if let Some(allowed) = allowed {
            for key in map.keys().filter(|key| !allowed.contains(&key.as_str())) {
                let expected = allowed
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let field = if path == DOCUMENT {
                    key.clone()
                } else {
                    join(path, key)
                };
                self.v.push(
                    field,
                    format!("unknown field `{key}`, expected one of {expected}"),
                );
            }
        }
        Some(map)
    }

    /// An optional mapping: absent and `null` are `None` without complaint.
    fn optional_object<'v>(
        &mut self,
        path: &str,
        value: Option<&'v Value>,
        allowed: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        match value {
            None | Some(Value::Null) => None,
            Some(value) => self.object(path, value, Some(allowed)),
        }
    }

    /// An optional list: absent and `null` are empty.
    fn list<'v>(&mut self, path: &str, value: Option<&'v Value>) -> &'v [Value] {
        match value {
            None | Some(Value::Null) => &[],
            Some(Value::Array(items)) => items,
            Some(other) => {
                self.v
                    .push(path, format!("must be a list, got {}", type_of(other)));
                &[]
            }
        }
    }

    /// An optional string: absent and `null` are `None`.
    fn string(&mut self, path: &str, value: Option<&Value>) -> Option<String> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(other @ (Value::Number(_) | Value::Bool(_))) => {
                self.v.push(
                    path,
                    format!("must be a string, got {}: put it in quotes", type_of(other)),
                );
                None
            }
            Some(other) => {
                self.v
                    .push(path, format!("must be a string, got {}", type_of(other)));
                None
            }
        }
    }

    fn required_string(&mut self, path: &str, value: Option<&Value>) -> String {
        match value {
            None | Some(Value::Null) => {
                self.v.push(path, "is required");
                String::new()
            }
            Some(_) => self.string(path, value).unwrap_or_default(),
        }
    }

    fn expect_literal(&mut self, path: &str, value: Option<&Value>, expected: &str) {
        let found = self.required_string(path, value);
        if !found.is_empty() && found != expected {
            self.v
                .push(path, format!("must be {expected}, got {found:?}"));
        }
    }

    /// An optional whole number (`None` when absent or `null`).
    fn integer(&mut self, path: &str, value: Option<&Value>) -> Option<i64> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => n.as_i64().or_else(|| {
                self.v.push(path, "must be a whole number");
                None
            }),
            Some(other) => {
                self.v.push(
                    path,
                    format!("must be a whole number, got {}", type_of(other)),
                );
                None
            }
        }
    }

    /// An optional list of strings: absent and `null` are empty.
    fn strings(&mut self, path: &str, value: Option<&Value>) -> Vec<String> {
        self.list(path, value)
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.string(&format!("{path}[{i}]"), Some(item)))
            .collect()
    }

    /// `apiVersion`, which must be one of `accepted`; `None` when missing or
    /// another one (reported).
    fn api_version(
        &mut self,
        value: Option<&Value>,
        accepted: &[&'static str],
    ) -> Option<&'static str> {
        let found = self.required_string("apiVersion", value);
        if found.is_empty() {
            return None;
        }
        let known = accepted.iter().find(|a| **a == found).copied();
        if known.is_none() {
            self.v.push(
                "apiVersion",
                format!("must be {}, got {found:?}", accepted.join(" or ")),
            );
        }
        known
    }
}

/// `metadata.name` and `metadata.annotations` of a product or template:
/// the name, and the annotations named in `known` (the description and
/// whatever the kind keeps). Any other annotation is an error naming it:
/// these resources have nowhere to keep it, and dropping it silently would
/// lose it on the next export.
fn resource_metadata(
    r: &mut Reader,
    value: Option<&Value>,
    known: &[&str],
) -> (String, std::collections::BTreeMap<String, String>) {
    let mut annotations = std::collections::BTreeMap::new();
    let Some(value) = value else {
        r.v.push("metadata", "is required");
        return (String::new(), annotations);
    };
    let Some(metadata) = r.object("metadata", value, Some(&["name", "annotations"])) else {
        return (String::new(), annotations);
    };
    let name = r.required_string("metadata.name", metadata.get("name"));
    let Some(found) = metadata.get("annotations").filter(|a| !a.is_null()) else {
        return (name, annotations);
    };
    let Some(found) = r.object("metadata.annotations", found, None) else {
        return (name, annotations);
    };
    for (key, value) in found {
        let path = join("metadata.annotations", key);
        if !known.contains(&key.as_str()) {
            let expected = known
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(", ");
            r.v.push(
                path,
                format!("unknown annotation `{key}`: this kind keeps only {expected}"),
            );
        } else if let Some(value) = r.string(&path, Some(value)) {
            annotations.insert(key.clone(), value);
        }
    }
    (name, annotations)
}

/// The `metadata` of an exported product or template.
#[derive(Serialize)]
struct MetadataDocument<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    annotations: std::collections::BTreeMap<&'a str, String>,
}

/// For `skip_serializing_if` on a borrowed list.
fn no_items<T>(items: &&[T]) -> bool {
    items.is_empty()
}

/// For `skip_serializing_if` on a borrowed string.
fn no_text(text: &&str) -> bool {
    text.is_empty()
}
