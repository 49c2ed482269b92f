//! Promotion-template values: reading them from the trigger application's
//! files and writing them into a target application's files without
//! disturbing anything else (issue 14, "Edits keep the file").
//!
//! Codefresh's `promotionTemplate` names files and RFC 9535 JSONPaths. At
//! trigger time [`resolve`] turns them into concrete `(file, normalized path,
//! value)` triples ([`PromotedValue`]), as Codefresh's `getPromotionValues`
//! step does; every environment of the release then gets exactly those values
//! through [`apply`]. [`read_scalar`] reads the version source.
//!
//! # How an edit keeps the file
//!
//! 1. The target is read into a [`serde_json::Value`] and the promoted values
//!    are set in that value, leaf by leaf: the *expected* result. A leaf that
//!    already holds its value is not touched, so a target that is already up
//!    to date gives `Ok(None)` and its text stays byte for byte.
//! 2. The text is edited in place. An existing scalar is replaced by splicing
//!    its byte span (located in a lossless syntax tree), so comments on the
//!    same line, key order, blank lines, flow collections, document markers and
//!    the quoting of every other scalar stay as they were. The new scalar keeps
//!    the old one's quote style when the value allows it (`"1.0.0"` becomes
//!    `"1.2.3"`, `'a'` becomes `'b'`, plain stays plain); a string that YAML
//!    would read as something else (`1.0`, `true`, `yes`, `042`, `null`,
//!    `2024-01-01`, ...) is always quoted. Keys missing in the target are
//!    created at the end of their mapping (a sequence may grow by appending
//!    exactly at its end; an index further out is an error).
//! 3. The edited text is read again and must equal the expected value. If it
//!    does not (an edit the syntax tree got wrong, an anchor shared with other
//!    keys, ...), `apply` fails instead of returning a file that says
//!    something else than intended. The caller never commits a wrong file.
//!
//! # Values and types
//!
//! YAML is read with `serde-saphyr`: YAML 1.1 booleans (`yes`, `on`, ...) are
//! booleans, as Helm and Kubernetes read them; numbers with leading zeros or
//! underscores (`042`, `1_000`) stay strings, as in the rest of promoflow;
//! merge keys (`<<`) are expanded; duplicate keys are an error; `.inf` and
//! `.nan` read as the strings `.inf` / `.nan`. Strings are written so that
//! YAML 1.1 *and* 1.2 readers both read them back as strings.
//!
//! An empty mapping or sequence is a leaf of its own (`{}` / `[]`); setting
//! it where the target has a non-empty collection changes nothing there (the
//! target's own keys stay, leaf by leaf).
//!
//! # Formats
//!
//! - **YAML**: full support for the first document of a file; later
//!   documents (after `---`) are kept byte for byte but never read or edited,
//!   and paths address the first document only. An empty (or comment-only)
//!   target gets the new keys appended.
//! - **JSON** (a `.json` file, or text starting with `{` / `[` that parses as
//!   JSON): values are located with the same lossless parser (JSON is YAML)
//!   and spliced as JSON text; new keys are inserted after the last entry of
//!   their object with the indentation of its first entry; new values are
//!   written compactly. The rest of the file keeps its formatting.
//!
//! # Crates
//!
//! - **`yaml-edit`** (0.3): a lossless (rowan) YAML syntax tree with byte
//!   spans and in-place edits. It is used to locate scalars and to insert new
//!   keys; the research for issue 14 found it keeps comments and quotes
//!   ambiguous scalars, builds here, and adds no C code or TLS. `yamlpatch`
//!   needed a newer rustc and a C parser; `serde-saphyr` cannot round-trip
//!   comments. The crate is pre-1.0, hence the read-back check above and a
//!   guard that turns a panic inside it into an error.
//! - **`serde_json_path`** (0.7): RFC 9535 JSONPath with located results
//!   (normalized paths), which is what the release records. It parses the
//!   whole RFC, including filters, and reports parse errors with positions.
//! - `serde-saphyr` (already a dependency) reads YAML into values.
//!
//! Inputs larger than [`MAX_FILE_LEN`] are refused.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::str::FromStr;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;
use serde_json_path::{JsonPath, PathElement};
use yaml_edit::{Document, YamlFile, YamlNode};

/// Largest file [`resolve`], [`read_scalar`] and [`apply`] accept: 1 MiB.
pub const MAX_FILE_LEN: usize = 1 << 20;

/// Deepest nesting of collections accepted in a YAML file.
const MAX_DEPTH: usize = 64;

/// One promoted value: in `file` (relative path), at normalized JSONPath
/// `path` (RFC 9535 normalized form, e.g. `$['image']['tag']`), the JSON value.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PromotedValue {
    pub file: String,
    pub path: String,
    pub value: Value,
}

/// Why values could not be read from or written into a file. Every message
/// names the file (when known) and the path.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromotionError {
    #[error("{file}: the file is {len} bytes, more than the {MAX_FILE_LEN} bytes promoflow edits")]
    TooLarge { file: String, len: usize },
    #[error("{}{message}", in_file(file))]
    InvalidPath { file: String, message: String },
    #[error("{file} is not valid {format}: {message}")]
    Parse {
        file: String,
        format: &'static str,
        message: String,
    },
    #[error("{}JSONPath {path} matches nothing", in_file(file))]
    NoMatch { file: String, path: String },
    #[error(
        "{}JSONPath {path} matches {count} values where one is needed",
        in_file(file)
    )]
    Ambiguous {
        file: String,
        path: String,
        count: usize,
    },
    #[error("{}{path} holds {found}, not a single value", in_file(file))]
    NotScalar {
        file: String,
        path: String,
        found: &'static str,
    },
    #[error(
        "{}cannot set {path}: {at} holds {found}, not a mapping or sequence",
        in_file(file)
    )]
    NotContainer {
        file: String,
        path: String,
        at: String,
        found: &'static str,
    },
    #[error(
        "{}cannot set {path}: the sequence at {at} has {len} items, so the index is out of range",
        in_file(file)
    )]
    IndexOutOfRange {
        file: String,
        path: String,
        at: String,
        len: usize,
    },
    #[error("{}cannot set {path}: {reason}", in_file(file))]
    Unsupported {
        file: String,
        path: String,
        reason: String,
    },
}

fn in_file(file: &str) -> String {
    if file.is_empty() {
        String::new()
    } else {
        format!("{file}: ")
    }
}

// ---------------------------------------------------------------------------
// JSONPaths
// ---------------------------------------------------------------------------

/// Validates a user's JSONPath and returns it normalized for storage:
/// Codefresh's `$appVersion` shorthand becomes `$.appVersion`; anything
/// serde_json_path cannot parse is Err with a message a person can act on.
/// `"*"` is NOT a JSONPath: callers handle it (whole file).
pub fn normalize_json_path(path: &str) -> Result<String, String> {
    let trimmed = path.trim();
    let normalized = match trimmed.strip_prefix('$') {
        // `$appVersion` (Codefresh's documentation writes it so) is `$.appVersion`.
        Some(rest) if rest.starts_with(|c: char| c.is_alphabetic() || c == '_') => {
            format!("$.{rest}")
        }
        _ => trimmed.to_owned(),
    };
    match JsonPath::parse(&normalized) {
        Ok(_) => Ok(normalized),
        Err(e) => {
            let mut message = format!("{path:?} is not a valid JSONPath (RFC 9535): {e}");
            if trimmed.is_empty() {
                message = "a JSONPath is required, such as $.image.tag".to_owned();
            } else if !trimmed.starts_with('$') {
                message.push_str("; a JSONPath starts with $, such as $.image.tag");
            } else if let Some(suggestion) = bracket_form(&normalized) {
                let _ = write!(
                    message,
                    "; keys with characters such as '-' need the bracket form: {suggestion}"
                );
            }
            Err(message)
        }
    }
}

/// `$.rollout-Canary.image` as `$["rollout-Canary"]["image"]`, when that
/// parses: the fix for a dotted path through keys that are not identifiers.
fn bracket_form(path: &str) -> Option<String> {
    let rest = path.strip_prefix('$')?;
    if !rest.starts_with('.') || rest.contains(['[', '*', '?', '\'', '"']) {
        return None;
    }
    let mut out = String::from("$");
    for segment in rest.split('.').skip(1) {
        if segment.is_empty() {
            return None;
        }
        let _ = write!(out, "[{}]", serde_json::to_string(segment).ok()?);
    }
    JsonPath::parse(&out).ok().map(|_| out)
}

fn parse_json_path(file: &str, path: &str) -> Result<JsonPath, PromotionError> {
    let normalized = normalize_json_path(path).map_err(|message| PromotionError::InvalidPath {
        file: file.to_owned(),
        message,
    })?;
    JsonPath::parse(&normalized).map_err(|e| PromotionError::InvalidPath {
        file: file.to_owned(),
        message: format!("{path:?} is not a valid JSONPath (RFC 9535): {e}"),
    })
}

/// One step of a normalized path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Seg {
    Key(String),
    Index(usize),
}

/// The RFC 9535 normalized path of `segs`, e.g. `$['image']['tag']`, `$['list'][0]`.
fn format_path(segs: &[Seg]) -> String {
    let mut out = String::from("$");
    for seg in segs {
        match seg {
            Seg::Index(i) => {
                let _ = write!(out, "[{i}]");
            }
            Seg::Key(name) => {
                out.push_str("['");
                for c in name.chars() {
                    match c {
                        '\u{8}' => out.push_str("\\b"),
                        '\u{c}' => out.push_str("\\f"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\t' => out.push_str("\\t"),
                        '\'' => out.push_str("\\'"),
                        '\\' => out.push_str("\\\\"),
                        c if (c as u32) < 0x20 => {
                            let _ = write!(out, "\\u{:04x}", c as u32);
                        }
                        c => out.push(c),
                    }
                }
                out.push_str("']");
            }
        }
    }
    out
}

/// Parses a normalized path as [`format_path`] writes it. `None` if it is not one.
fn parse_normalized(path: &str) -> Option<Vec<Seg>> {
    let mut chars = path.strip_prefix('$')?.chars().peekable();
    let mut segs = Vec::new();
    while let Some(c) = chars.next() {
        if c != '[' {
            return None;
        }
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut name = String::new();
            loop {
                match chars.next()? {
                    '\'' => break,
                    '\\' => match chars.next()? {
                        'b' => name.push('\u{8}'),
                        'f' => name.push('\u{c}'),
                        'n' => name.push('\n'),
                        'r' => name.push('\r'),
                        't' => name.push('\t'),
                        '\'' => name.push('\''),
                        '\\' => name.push('\\'),
                        '/' => name.push('/'),
                        '"' => name.push('"'),
                        'u' => {
                            let hex: String =
                                (0..4).map(|_| chars.next()).collect::<Option<_>>()?;
                            name.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                        }
                        _ => return None,
                    },
                    c => name.push(c),
                }
            }
            if chars.next()? != ']' {
                return None;
            }
            segs.push(Seg::Key(name));
        } else {
            let mut digits = String::new();
            loop {
                match chars.next()? {
                    ']' => break,
                    c if c.is_ascii_digit() => digits.push(c),
                    _ => return None,
                }
            }
            segs.push(Seg::Index(digits.parse().ok()?));
        }
    }
    Some(segs)
}

fn segs_of(location: &serde_json_path::NormalizedPath<'_>) -> Vec<Seg> {
    location
        .iter()
        .map(|element| match element {
            PathElement::Name(name) => Seg::Key((*name).to_owned()),
            PathElement::Index(i) => Seg::Index(*i),
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Yaml,
    Json,
}

impl Format {
    fn name(self) -> &'static str {
        match self {
            Format::Yaml => "YAML",
            Format::Json => "JSON",
        }
    }
}

fn format_of(file: &str, text: &str) -> Format {
    if file.to_ascii_lowercase().ends_with(".json") {
        return Format::Json;
    }
    let start = text.trim_start_matches(['\u{feff}', ' ', '\t', '\r', '\n']);
    if (start.starts_with('{') || start.starts_with('['))
        && serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok()
    {
        Format::Json
    } else {
        Format::Yaml
    }
}

fn check_size(file: &str, text: &str) -> Result<(), PromotionError> {
    if text.len() > MAX_FILE_LEN {
        return Err(PromotionError::TooLarge {
            file: file.to_owned(),
            len: text.len(),
        });
    }
    Ok(())
}

fn yaml_options() -> serde_saphyr::Options {
    let mut options = serde_saphyr::Options::default();
    // `042` and `1_000` keep their digits (image tags, ids), as elsewhere in promoflow.
    options.leading_zero_numbers_as_strings = true;
    options.underscored_numbers_as_strings = true;
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options.with_snippet = false;
    options.emit_comments = false;
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_events = 2_000_000;
    budget.max_nodes = 2_000_000;
    budget.max_aliases = 10_000;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 1_000_000;
    options
}

/// The data `text` holds: a JSON document, or the first YAML document (null
/// when there is none).
fn read_value(file: &str, format: Format, text: &str) -> Result<Value, PromotionError> {
    let parse_error = |message: String| PromotionError::Parse {
        file: file.to_owned(),
        format: format.name(),
        message,
    };
    match format {
        Format::Json => serde_json::from_str(text).map_err(|e| parse_error(e.to_string())),
        Format::Yaml => {
            let documents: Vec<Value> =
                serde_saphyr::from_multiple_with_options(text, yaml_options())
                    .map_err(|e| parse_error(e.to_string()))?;
            Ok(documents.into_iter().next().unwrap_or(Value::Null))
        }
    }
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// Whether `value` is set as one unit: a scalar or an empty collection.
fn is_leaf(value: &Value) -> bool {
    match value {
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => true,
    }
}

/// Every leaf under `value`, with its path below `prefix`.
fn leaves(value: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<(Vec<Seg>, Value)>) {
    match value {
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Seg::Index(i));
                leaves(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Object(map) if !map.is_empty() => {
            for (key, item) in map {
                prefix.push(Seg::Key(key.clone()));
                leaves(item, prefix, out);
                prefix.pop();
            }
        }
        _ => out.push((prefix.clone(), value.clone())),
    }
}

fn get_path<'v>(value: &'v Value, segs: &[Seg]) -> Option<&'v Value> {
    segs.iter().try_fold(value, |v, seg| match (v, seg) {
        (Value::Object(map), Seg::Key(k)) => map.get(k),
        (Value::Array(items), Seg::Index(i)) => items.get(*i),
        _ => None,
    })
}

/// Runs `f`, turning a panic (in the pre-1.0 syntax tree crate) into an error.
fn guarded<T>(
    file: &str,
    path: &str,
    f: impl FnOnce() -> Result<T, PromotionError>,
) -> Result<T, PromotionError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(PromotionError::Unsupported {
            file: file.to_owned(),
            path: path.to_owned(),
            reason: "the YAML editor failed on this file".to_owned(),
        })
    })
}

/// The values `text` (the source file, YAML or JSON by content; `file` is
/// only recorded in the result and used in messages) holds at each of
/// `json_paths`, each match expanded to its leaf scalars, with normalized
/// paths, in document order, no duplicates. A path that matches nothing is
/// an error naming the file and path.
pub fn resolve(
    file: &str,
    text: &str,
    json_paths: &[String],
) -> Result<Vec<PromotedValue>, PromotionError> {
    check_size(file, text)?;
    let format = format_of(file, text);
    let data = read_value(file, format, text)?;
    let mut seen = HashSet::new();
    let mut found: Vec<(Vec<Seg>, Value)> = Vec::new();
    for path in json_paths {
        let query = parse_json_path(file, path)?;
        let matches = query.query_located(&data);
        if matches.is_empty() {
            return Err(PromotionError::NoMatch {
                file: file.to_owned(),
                path: path.clone(),
            });
        }
        for located in matches.iter() {
            let mut expanded = Vec::new();
            leaves(
                located.node(),
                &mut segs_of(located.location()),
                &mut expanded,
            );
            for (segs, value) in expanded {
                if seen.insert(segs.clone()) {
                    found.push((segs, value));
                }
            }
        }
    }
    // The value model sorts keys; the syntax tree knows where each leaf is.
    // Leaves it cannot place (from a merge key, say) keep their relative order last.
    let offsets: Vec<usize> = guarded(file, "$", || {
        let tree = parse_tree(file, format, text)?;
        let index = NodeIndex::new(root_node(&tree));
        Ok(found
            .iter()
            .map(|(segs, _)| match index.locate(segs) {
                Located::Node { node, .. } => node.byte_range().start as usize,
                _ => usize::MAX,
            })
            .collect())
    })
    .unwrap_or_else(|_| vec![usize::MAX; found.len()]);
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by_key(|&i| offsets[i]);
    Ok(order
        .into_iter()
        .map(|i| PromotedValue {
            file: file.to_owned(),
            path: format_path(&found[i].0),
            value: found[i].1.clone(),
        })
        .collect())
}

/// Reads the single scalar at `json_path` in `text` as a string (the version
/// source); Ok(None) when nothing matches, Err when several match or it is
/// not a scalar (null is not a version either).
pub fn read_scalar(text: &str, json_path: &str) -> Result<Option<String>, PromotionError> {
    read_scalar_in("", text, json_path)
}

/// [`read_scalar`] naming `file` in its errors.
pub fn read_scalar_in(
    file: &str,
    text: &str,
    json_path: &str,
) -> Result<Option<String>, PromotionError> {
    check_size(file, text)?;
    let data = read_value(file, format_of(file, text), text)?;
    let query = parse_json_path(file, json_path)?;
    let matches = query.query(&data);
    let value = match matches.len() {
        0 => return Ok(None),
        1 => matches.first().unwrap_or(&Value::Null),
        count => {
            return Err(PromotionError::Ambiguous {
                file: file.to_owned(),
                path: json_path.to_owned(),
                count,
            });
        }
    };
    match value {
        Value::String(s) => Ok(Some(s.clone())),
        Value::Number(n) => Ok(Some(n.to_string())),
        Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(PromotionError::NotScalar {
            file: file.to_owned(),
            path: json_path.to_owned(),
            found: kind_of(other),
        }),
    }
}

// ---------------------------------------------------------------------------
// The expected result
// ---------------------------------------------------------------------------

/// Sets `value` at `segs` in `root`, creating missing mapping keys (and a
/// sequence item exactly at the end of a sequence).
fn set_expected(
    file: &str,
    root: &mut Value,
    segs: &[Seg],
    value: Value,
) -> Result<(), PromotionError> {
    let path = || format_path(segs);
    let mut cur = root;
    for (depth, seg) in segs.iter().enumerate() {
        if cur.is_null() && matches!(seg, Seg::Key(_)) {
            *cur = Value::Object(serde_json::Map::new());
        }
        let next_is_index = matches!(segs.get(depth + 1), Some(Seg::Index(_)));
        let fresh = || {
            if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Null
            }
        };
        cur = match (cur, seg) {
            (Value::Object(map), Seg::Key(k)) => map.entry(k.clone()).or_insert_with(fresh),
            (Value::Array(items), Seg::Index(i)) => {
                if *i == items.len() {
                    items.push(fresh());
                } else if *i > items.len() {
                    return Err(PromotionError::IndexOutOfRange {
                        file: file.to_owned(),
                        path: path(),
                        at: format_path(&segs[..depth]),
                        len: items.len(),
                    });
                }
                &mut items[*i]
            }
            (other, Seg::Index(_)) if other.is_null() => {
                return Err(PromotionError::IndexOutOfRange {
                    file: file.to_owned(),
                    path: path(),
                    at: format_path(&segs[..depth]),
                    len: 0,
                });
            }
            (other, _) => {
                return Err(PromotionError::NotContainer {
                    file: file.to_owned(),
                    path: path(),
                    at: format_path(&segs[..depth]),
                    found: kind_of(other),
                });
            }
        };
    }
    // An empty collection adds nothing to a collection of the same kind.
    let keep = match (&*cur, &value) {
        (Value::Object(_), Value::Object(m)) => m.is_empty(),
        (Value::Array(_), Value::Array(a)) => a.is_empty(),
        _ => false,
    };
    if !keep {
        *cur = value;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The syntax tree
// ---------------------------------------------------------------------------

fn parse_tree(file: &str, format: Format, text: &str) -> Result<YamlFile, PromotionError> {
    YamlFile::from_str(text).map_err(|e| PromotionError::Parse {
        file: file.to_owned(),
        format: format.name(),
        message: e.to_string(),
    })
}

fn root_node(tree: &YamlFile) -> Option<YamlNode> {
    let doc = tree.documents().next()?;
    doc.as_mapping()
        .map(YamlNode::Mapping)
        .or_else(|| doc.as_sequence().map(YamlNode::Sequence))
        .or_else(|| doc.as_scalar().map(YamlNode::Scalar))
        .or_else(|| doc.as_tagged().map(YamlNode::TaggedNode))
}

enum Located {
    /// The node at the whole path; `flow` when inside a flow collection.
    Node { node: YamlNode, flow: bool },
    /// `segs[..depth]` exists and is a collection, `segs[depth]` is not in it.
    Missing { depth: usize },
    /// `segs[..depth]` exists but is not a collection (or the document is
    /// empty, depth 0).
    Blocked { depth: usize },
}

fn key_text(node: &YamlNode) -> Option<String> {
    node.as_scalar().map(|s| s.as_string())
}

fn locate(root: Option<YamlNode>, segs: &[Seg]) -> Located {
    let Some(mut cur) = root else {
        return if segs.is_empty() {
            Located::Blocked { depth: 0 }
        } else {
            Located::Missing { depth: 0 }
        };
    };
    let mut flow = false;
    for (depth, seg) in segs.iter().enumerate() {
        let next = match (&cur, seg) {
            (YamlNode::Mapping(m), Seg::Key(k)) => {
                flow |= m.is_flow_style();
                m.entries()
                    .find(|e| e.key_node().and_then(|n| key_text(&n)).as_deref() == Some(k))
                    .and_then(|e| e.value_node())
            }
            (YamlNode::Sequence(s), Seg::Index(i)) => {
                flow |= s.is_flow_style();
                s.get(*i)
            }
            _ => return Located::Blocked { depth },
        };
        match next {
            Some(node) => cur = node,
            None => return Located::Missing { depth },
        }
    }
    Located::Node { node: cur, flow }
}

/// Every node of a document by its path, built in one walk so that locating
/// many leaves costs a lookup each instead of a scan of their mappings.
struct NodeIndex {
    root: bool,
    nodes: HashMap<Vec<Seg>, (YamlNode, bool)>,
}

impl NodeIndex {
    fn new(root: Option<YamlNode>) -> Self {
        let mut nodes = HashMap::new();
        let present = root.is_some();
        if let Some(root) = root {
            Self::walk(root, &mut Vec::new(), false, &mut nodes);
        }
        NodeIndex {
            root: present,
            nodes,
        }
    }

    /// Depth is bounded: the value reader refused deeper documents first.
    fn walk(
        node: YamlNode,
        path: &mut Vec<Seg>,
        flow: bool,
        nodes: &mut HashMap<Vec<Seg>, (YamlNode, bool)>,
    ) {
        let children: Vec<(Seg, YamlNode, bool)> = match &node {
            YamlNode::Mapping(m) => {
                let inner = flow || m.is_flow_style();
                m.entries()
                    .filter_map(|e| {
                        let key = key_text(&e.key_node()?)?;
                        Some((Seg::Key(key), e.value_node()?, inner))
                    })
                    .collect()
            }
            YamlNode::Sequence(s) => {
                let inner = flow || s.is_flow_style();
                s.values()
                    .enumerate()
                    .map(|(i, v)| (Seg::Index(i), v, inner))
                    .collect()
            }
            _ => Vec::new(),
        };
        nodes.insert(path.clone(), (node, flow));
        for (seg, child, inner) in children {
            path.push(seg);
            // The first of duplicate keys wins, as in `locate`.
            if !nodes.contains_key(path.as_slice()) {
                Self::walk(child, path, inner, nodes);
            }
            path.pop();
        }
    }

    /// [`locate`], by lookups.
    fn locate(&self, segs: &[Seg]) -> Located {
        if let Some((node, flow)) = self.nodes.get(segs) {
            return Located::Node {
                node: node.clone(),
                flow: *flow,
            };
        }
        if !self.root {
            return locate(None, segs);
        }
        for depth in (0..segs.len()).rev() {
            if let Some((node, _)) = self.nodes.get(&segs[..depth]) {
                return match (node, &segs[depth]) {
                    (YamlNode::Mapping(_), Seg::Key(_))
                    | (YamlNode::Sequence(_), Seg::Index(_)) => Located::Missing { depth },
                    _ => Located::Blocked { depth },
                };
            }
        }
        Located::Blocked { depth: 0 }
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

fn style_of(span: &str) -> Style {
    match span.as_bytes().first() {
        Some(b'"') => Style::Double,
        Some(b'\'') => Style::Single,
        _ => Style::Plain,
    }
}

/// Plain scalars that some YAML reader (1.1 or 1.2) takes for a number.
static NUMBER_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?i)^[-+]?(",
        r"0b[01_]+|0o?[0-7_]+|0x[0-9a-f_]+",
        r"|[0-9][0-9_]*(:[0-5]?[0-9])*(\.[0-9_]*)?(e[-+]?[0-9]+)?",
        r"|\.[0-9_]+(e[-+]?[0-9]+)?|\.inf|\.nan|\.",
        r")$"
    ))
    .unwrap_or_else(|e| unreachable!("{e}"))
});

/// Plain scalars that a YAML 1.1 reader takes for a timestamp.
static DATE_LIKE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}").unwrap_or_else(|e| unreachable!("{e}"))
});

/// Whether a plain `s` would read as anything but the string `s` in YAML 1.1 or 1.2.
fn ambiguous(s: &str) -> bool {
    const WORDS: &[&str] = &[
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~", "<<", "=",
    ];
    WORDS.contains(&s.to_ascii_lowercase().as_str())
        || NUMBER_LIKE.is_match(s)
        || DATE_LIKE.is_match(s)
}

fn plain_ok(s: &str, flow: bool) -> bool {
    const INDICATORS: &[char] = &[
        '-', '?', ':', ',', '[', ']', '{', '}', '#', '&', '*', '!', '|', '>', '\'', '"', '%', '@',
        '`',
    ];
    !s.is_empty()
        && !s.starts_with(INDICATORS)
        && !s.starts_with(' ')
        && !s.ends_with([' ', ':'])
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.chars().any(|c| c.is_control() || c == '\u{feff}')
        && !(flow && s.contains([',', '[', ']', '{', '}', ':', '#']))
        && !ambiguous(s)
}

fn single_ok(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || c == '\u{feff}')
}

fn single_quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn double_quoted(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() || c == '\u{feff}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn yaml_string(s: &str, style: Style, flow: bool) -> String {
    match style {
        Style::Double => double_quoted(s),
        Style::Single if single_ok(s) => single_quoted(s),
        _ if plain_ok(s, flow) => s.to_owned(),
        _ if single_ok(s) => single_quoted(s),
        _ => double_quoted(s),
    }
}

fn yaml_scalar(value: &Value, style: Style, flow: bool) -> String {
    match value {
        Value::String(s) => yaml_string(s, style, flow),
        Value::Null => "null".to_owned(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(_) => "[]".to_owned(),
        Value::Object(_) => "{}".to_owned(),
    }
}

/// New content, keys in the order the values came (document order).
enum Tree {
    Leaf(Value),
    Map(Vec<(String, Tree)>),
    Seq(Vec<Tree>),
}

impl Tree {
    fn insert(&mut self, segs: &[Seg], value: Value) {
        let Some((first, rest)) = segs.split_first() else {
            *self = Tree::Leaf(value);
            return;
        };
        let fresh = || match rest.first() {
            Some(Seg::Index(_)) => Tree::Seq(Vec::new()),
            _ => Tree::Map(Vec::new()),
        };
        match (self, first) {
            (Tree::Map(entries), Seg::Key(k)) => {
                let i = match entries.iter().position(|(key, _)| key == k) {
                    Some(i) => i,
                    None => {
                        entries.push((k.clone(), fresh()));
                        entries.len() - 1
                    }
                };
                entries[i].1.insert(rest, value);
            }
            (Tree::Seq(items), Seg::Index(i)) => {
                while items.len() <= *i {
                    items.push(fresh());
                }
                items[*i].insert(rest, value);
            }
            // Unreachable: the expected value was built from the same paths.
            (tree, _) => {
                *tree = fresh();
                tree.insert(segs, value);
            }
        }
    }

    /// Flow YAML: the tree on one line.
    fn yaml_flow(&self, out: &mut String) {
        self.inline(out, &|v| yaml_scalar(v, Style::Plain, true), &|k| {
            yaml_string(k, Style::Plain, true)
        });
    }

    /// JSON (YAML flow syntax with JSON's scalars and quoted keys).
    fn json(&self, out: &mut String) {
        self.inline(out, &|v| v.to_string(), &|k| {
            Value::String(k.to_string()).to_string()
        });
    }

    /// `{k: v, …}` / `[v, …]` with `leaf` and `key` writing the scalars:
    /// the one shape flow YAML and JSON share.
    fn inline(
        &self,
        out: &mut String,
        leaf: &dyn Fn(&Value) -> String,
        key: &dyn Fn(&str) -> String,
    ) {
        match self {
            Tree::Leaf(v) => out.push_str(&leaf(v)),
            Tree::Map(entries) => {
                out.push('{');
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&key(k));
                    out.push_str(": ");
                    v.inline(out, leaf, key);
                }
                out.push('}');
            }
            Tree::Seq(items) => {
                out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.inline(out, leaf, key);
                }
                out.push(']');
            }
        }
    }

    /// Block YAML: for a collection, lines indented by `indent`; for a
    /// leaf, the scalar (with no newline).
    fn yaml_block(&self, indent: usize, out: &mut String) {
        let pad = " ".repeat(indent);
        match self {
            Tree::Leaf(v) => out.push_str(&yaml_scalar(v, Style::Plain, false)),
            Tree::Map(entries) => {
                for (k, v) in entries {
                    let _ = write!(out, "{pad}{}:", yaml_string(k, Style::Plain, false));
                    v.yaml_value(indent, out);
                }
            }
            Tree::Seq(items) => {
                for v in items {
                    let _ = write!(out, "{pad}-");
                    match v {
                        Tree::Map(entries) if !entries.is_empty() => {
                            let mut inner = String::new();
                            v.yaml_block(indent + 2, &mut inner);
                            out.push(' ');
                            out.push_str(inner.trim_start_matches(' '));
                        }
                        _ => v.yaml_value(indent, out),
                    }
                }
            }
        }
    }

    /// After `key:` or `-`: ` scalar\n`, or a newline and the nested block.
    fn yaml_value(&self, indent: usize, out: &mut String) {
        match self {
            Tree::Map(entries) if !entries.is_empty() => {
                out.push('\n');
                self.yaml_block(indent + 2, out);
            }
            Tree::Seq(items) if !items.is_empty() => {
                out.push('\n');
                self.yaml_block(indent + 2, out);
            }
            _ => {
                out.push(' ');
                self.yaml_block(indent, out);
                out.push('\n');
            }
        }
    }
}

/// A one-entry YAML document `key: <tree>` (block or flow), parsed, as the
/// key and value nodes to insert into the target's tree.
fn snippet(key: &str, tree: &Tree, flow: bool) -> Option<(YamlNode, YamlNode)> {
    let mut text = yaml_string(key, Style::Plain, false);
    text.push(':');
    if flow {
        text.push(' ');
        tree.yaml_flow(&mut text);
        text.push('\n');
    } else {
        tree.yaml_value(0, &mut text);
    }
    let doc = Document::from_str(&text).ok()?;
    let entry = doc.as_mapping()?.entries().next()?;
    Some((entry.key_node()?, entry.value_node()?))
}

// ---------------------------------------------------------------------------
// Applying
// ---------------------------------------------------------------------------

/// Sets each of `values` (those whose `file` equals `file`) in `text`, leaf by
/// leaf, keeping every other byte: comments (also trailing ones on an edited
/// line), key order, quoting style of untouched scalars, blank lines, flow
/// mappings, document markers. Missing mapping keys along a path are created;
/// a sequence index beyond the end of the target's sequence is an error
/// (exactly at the end appends). Returns Ok(None) when the result would be
/// byte-identical to `text` (nothing to change).
pub fn apply(
    file: &str,
    text: &str,
    values: &[PromotedValue],
) -> Result<Option<String>, PromotionError> {
    check_size(file, text)?;
    let mut edits: Vec<(Vec<Seg>, Value)> = Vec::new();
    for v in values.iter().filter(|v| v.file == file) {
        let Some(mut segs) = parse_normalized(&v.path) else {
            return Err(PromotionError::InvalidPath {
                file: file.to_owned(),
                message: format!(
                    "{:?} is not a normalized JSONPath such as $['image']['tag']",
                    v.path
                ),
            });
        };
        leaves(&v.value, &mut segs, &mut edits);
    }
    if edits.is_empty() {
        return Ok(None);
    }
    let format = format_of(file, text);
    let before = read_value(file, format, text)?;
    let mut expected = before.clone();
    for (segs, value) in &edits {
        set_expected(file, &mut expected, segs, value.clone())?;
    }
    if expected == before {
        return Ok(None);
    }
    // The leaves that change, each once, with their final values.
    let mut seen = HashSet::new();
    let changed: Vec<(Vec<Seg>, Value)> = edits
        .into_iter()
        .rev()
        .filter(|(segs, _)| seen.insert(segs.clone()))
        .filter_map(|(segs, _)| {
            let new = get_path(&expected, &segs)?;
            (get_path(&before, &segs) != Some(new)).then(|| (segs, new.clone()))
        })
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let result = guarded(file, "$", || edit_text(file, format, text, &changed))?;
    let after = read_value(file, format, &result).map_err(|e| PromotionError::Unsupported {
        file: file.to_owned(),
        path: "$".to_owned(),
        reason: format!("the edited file does not parse: {e}"),
    })?;
    if after != expected {
        let path = changed
            .iter()
            .find(|(segs, value)| get_path(&after, segs) != Some(value))
            .map_or_else(|| "$".to_owned(), |(segs, _)| format_path(segs));
        return Err(PromotionError::Unsupported {
            file: file.to_owned(),
            path,
            reason: "editing the file in place would change other values (an anchor or merge key shared with other keys?)".to_owned(),
        });
    }
    Ok((result != text).then_some(result))
}

/// The text with `changed` leaves written: first every existing scalar is
/// spliced (spans of the original text), then each new or restructured
/// subtree is inserted into the re-parsed tree, one at a time.
fn edit_text(
    file: &str,
    format: Format,
    text: &str,
    changed: &[(Vec<Seg>, Value)],
) -> Result<String, PromotionError> {
    let tree = parse_tree(file, format, text)?;
    let index = NodeIndex::new(root_node(&tree));
    let mut splices: Vec<(usize, usize, String)> = Vec::new();
    let mut structural: Vec<Vec<Seg>> = Vec::new();
    for (segs, value) in changed {
        match index.locate(segs) {
            Located::Node { node, flow }
                if format == Format::Json || (node.is_scalar() && is_leaf(value)) =>
            {
                let range = node.byte_range();
                let (start, end) = (range.start as usize, range.end as usize);
                let span = text.get(start..end).unwrap_or_default();
                let end = start + span.trim_end().len();
                let rendered = match format {
                    Format::Json => value.to_string(),
                    Format::Yaml => {
                        let scalar = yaml_scalar(value, style_of(span), flow);
                        // `key:` with no value: the span is empty, right after the colon.
                        if start == end && text[..start].ends_with(':') {
                            format!(" {scalar}")
                        } else {
                            scalar
                        }
                    }
                };
                splices.push((start, end, rendered));
            }
            Located::Node { .. } => structural.push(segs.clone()),
            Located::Missing { depth } => structural.push(segs[..=depth].to_vec()),
            Located::Blocked { depth } if depth > 0 => structural.push(segs[..depth].to_vec()),
            Located::Blocked { .. } => {
                return Err(PromotionError::NotContainer {
                    file: file.to_owned(),
                    path: format_path(segs),
                    at: "$".to_owned(),
                    found: "a scalar",
                });
            }
        }
    }
    splices.sort_by_key(|s| std::cmp::Reverse(s.0));
    let mut out = text.to_owned();
    let mut last = usize::MAX;
    for (start, end, rendered) in splices {
        if end > last || !out.is_char_boundary(start) || !out.is_char_boundary(end) {
            return Err(unsupported(file, "$", "overlapping edits"));
        }
        out.replace_range(start..end, &rendered);
        last = start;
    }
    // Keep the outermost prefixes, in order.
    let mut prefixes: Vec<Vec<Seg>> = Vec::new();
    for p in structural {
        if !prefixes.iter().any(|q| p.starts_with(q)) {
            prefixes.retain(|q| !q.starts_with(&p));
            prefixes.push(p);
        }
    }
    if prefixes.is_empty() {
        return Ok(out);
    }
    let subtrees = prefixes.into_iter().map(|prefix| {
        let mut subtree = Tree::Map(Vec::new());
        let mut first = true;
        for (segs, value) in changed.iter().filter(|(s, _)| s.starts_with(&prefix)) {
            if first && segs.len() == prefix.len() {
                subtree = Tree::Leaf(value.clone());
            } else if first && matches!(segs.get(prefix.len()), Some(Seg::Index(_))) {
                subtree = Tree::Seq(Vec::new());
            }
            first = false;
            subtree.insert(&segs[prefix.len()..], value.clone());
        }
        (prefix, subtree)
    });
    match format {
        // JSON insertions splice text, so each one re-reads the tree.
        Format::Json => {
            for (prefix, subtree) in subtrees {
                out = json_set(file, &out, &prefix, &subtree)?;
            }
            Ok(out)
        }
        // YAML edits go into one tree, written out once.
        Format::Yaml => {
            let tree = parse_tree(file, format, &out)?;
            if root_node(&tree).is_none() {
                // An empty document: the new keys are the document.
                for (prefix, subtree) in subtrees {
                    let Some(Seg::Key(key)) = prefix.first() else {
                        return Err(unsupported(
                            file,
                            &format_path(&prefix),
                            "the document is empty",
                        ));
                    };
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&yaml_string(key, Style::Plain, false));
                    out.push(':');
                    subtree.yaml_value(0, &mut out);
                }
                return Ok(out);
            }
            for (prefix, subtree) in subtrees {
                yaml_set(file, &tree, &prefix, &subtree)?;
            }
            Ok(tree.to_string())
        }
    }
}

fn unsupported(file: &str, path: &str, reason: &str) -> PromotionError {
    PromotionError::Unsupported {
        file: file.to_owned(),
        path: path.to_owned(),
        reason: reason.to_owned(),
    }
}

/// The parent of `prefix` (which must exist) and whether it is in a flow
/// collection, with the node now at `prefix`, if any.
fn parent_of(
    file: &str,
    root: Option<YamlNode>,
    prefix: &[Seg],
) -> Result<(YamlNode, bool, Option<YamlNode>), PromotionError> {
    let path = format_path(prefix);
    let Some((last, parent_segs)) = prefix.split_last() else {
        return Err(unsupported(
            file,
            &path,
            "replacing the whole document is not an edit (promote the file with \"*\")",
        ));
    };
    let Located::Node { node, flow } = locate(root, parent_segs) else {
        return Err(unsupported(file, &path, "its parent is not there"));
    };
    let existing = match (&node, last) {
        (YamlNode::Mapping(m), Seg::Key(k)) => m
            .entries()
            .find(|e| e.key_node().and_then(|n| key_text(&n)).as_deref() == Some(k))
            .and_then(|e| e.value_node()),
        (YamlNode::Sequence(s), Seg::Index(i)) => s.get(*i),
        _ => {
            return Err(unsupported(
                file,
                &path,
                "its parent is not a mapping or sequence",
            ));
        }
    };
    Ok((node, flow, existing))
}

/// Writes `subtree` at `prefix` (missing, or replacing what is there) in `tree`.
fn yaml_set(
    file: &str,
    tree: &YamlFile,
    prefix: &[Seg],
    subtree: &Tree,
) -> Result<(), PromotionError> {
    let path = format_path(prefix);
    let (parent, flow, _) = parent_of(file, root_node(tree), prefix)?;
    let is_flow = flow
        || match &parent {
            YamlNode::Mapping(m) => m.is_flow_style(),
            YamlNode::Sequence(s) => s.is_flow_style(),
            _ => false,
        };
    let key = match prefix.last() {
        Some(Seg::Key(k)) => k.as_str(),
        _ => "k",
    };
    let (key_node, value_node) = snippet(key, subtree, is_flow)
        .ok_or_else(|| unsupported(file, &path, "cannot render the new value"))?;
    match (&parent, prefix.last()) {
        (YamlNode::Mapping(m), Some(Seg::Key(_))) => m.set(key_node, value_node),
        (YamlNode::Sequence(s), Some(Seg::Index(i))) if *i < s.len() => {
            s.set(*i, value_node);
        }
        (YamlNode::Sequence(s), Some(Seg::Index(_))) => s.push(value_node),
        _ => {
            return Err(unsupported(
                file,
                &path,
                "its parent is not a mapping or sequence",
            ));
        }
    }
    Ok(())
}

/// Writes `subtree` at `prefix` (missing, or replacing what is there) in the JSON `text`.
fn json_set(
    file: &str,
    text: &str,
    prefix: &[Seg],
    subtree: &Tree,
) -> Result<String, PromotionError> {
    let path = format_path(prefix);
    let tree = parse_tree(file, Format::Json, text)?;
    let (parent, _, existing) = parent_of(file, root_node(&tree), prefix)?;
    let mut json = String::new();
    subtree.json(&mut json);
    if let Some(node) = existing {
        let range = node.byte_range();
        let mut out = text.to_owned();
        out.replace_range(range.start as usize..range.end as usize, &json);
        return Ok(out);
    }
    let item = match prefix.last() {
        Some(Seg::Key(k)) => format!("{}: {json}", Value::String(k.clone())),
        _ => json,
    };
    json_insert(file, &path, text, &parent, &item)
}

/// Inserts `item` (`"key": value` or a value) as the last entry of the JSON
/// object or array `parent`.
fn json_insert(
    file: &str,
    path: &str,
    text: &str,
    parent: &YamlNode,
    item: &str,
) -> Result<String, PromotionError> {
    let range = parent.byte_range();
    let (start, end) = (range.start as usize, range.end as usize);
    let starts: Vec<(usize, usize)> = match parent {
        YamlNode::Mapping(m) => m
            .entries()
            .filter_map(|e| {
                let k = e.key_node()?.byte_range();
                let v = e.value_node()?.byte_range();
                Some((k.start as usize, v.end as usize))
            })
            .collect(),
        YamlNode::Sequence(s) => s
            .values()
            .map(|v| {
                let r = v.byte_range();
                (r.start as usize, r.end as usize)
            })
            .collect(),
        _ => Vec::new(),
    };
    let mut out = text.to_owned();
    match (starts.first(), starts.last()) {
        (Some(&(first, _)), Some(&(_, last_end))) => {
            let between = text.get(start + 1..first).unwrap_or_default();
            let sep = match between.rfind('\n') {
                Some(nl) => format!("\n{}", &between[nl + 1..]),
                None => " ".to_owned(),
            };
            let at = start
                + text
                    .get(start..last_end)
                    .unwrap_or_default()
                    .trim_end()
                    .len();
            out.insert_str(at, &format!(",{sep}{item}"));
        }
        _ => {
            if !text
                .get(start..end)
                .is_some_and(|s| s.starts_with(['{', '[']))
            {
                return Err(unsupported(
                    file,
                    path,
                    "cannot find the JSON object to add to",
                ));
            }
            out.insert_str(start + 1, item);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pv(file: &str, path: &str, value: Value) -> PromotedValue {
        PromotedValue {
            file: file.to_owned(),
            path: path.to_owned(),
            value,
        }
    }

    fn paths(list: &[&str]) -> Vec<String> {
        list.iter().map(|p| (*p).to_owned()).collect()
    }

    /// `apply` of one value to `text`, expecting a change.
    fn set(text: &str, path: &str, value: Value) -> String {
        apply("values.yaml", text, &[pv("values.yaml", path, value)])
            .unwrap()
            .expect("a change")
    }

    #[test]
    fn edit_keeps_comments_quotes_and_other_keys() {
        let text = "\
# Helm values for prod
image:
  repository: ghcr.io/acme/api   # the registry
  # bumped by promoflow
  tag: \"1.0.0\"  # current release

replicas: 3
flow: {repository: envoy, tag: v2}
single: 'kept'
---
second: document
";
        let out = set(text, "$['image']['tag']", json!("1.2.3"));
        assert_eq!(out, text.replace("\"1.0.0\"", "\"1.2.3\""));
        let out = set(text, "$['flow']['tag']", json!("v3"));
        assert_eq!(out, text.replace("tag: v2", "tag: v3"));
        let out = set(text, "$['single']", json!("it's"));
        assert_eq!(out, text.replace("'kept'", "'it''s'"));
        let out = set(text, "$['replicas']", json!(5));
        assert_eq!(out, text.replace("replicas: 3", "replicas: 5"));
    }

    #[test]
    fn ambiguous_strings_stay_strings() {
        let text = "tag: v1 # c\n";
        for s in [
            "1.0",
            "true",
            "042",
            "yes",
            "null",
            "",
            "1e3",
            "2024-01-01",
            "a: b",
            "#x",
            " pad",
        ] {
            let out = set(text, "$['tag']", json!(s));
            assert!(out.ends_with(" # c\n"), "{out}");
            assert_eq!(
                read_scalar(&out, "$.tag").unwrap().as_deref(),
                Some(s),
                "{out}"
            );
            assert_eq!(
                resolve("v.yaml", &out, &paths(&["$.tag"])).unwrap()[0].value,
                json!(s)
            );
        }
        // Unambiguous versions stay plain, numbers and booleans stay themselves.
        assert_eq!(set(text, "$['tag']", json!("1.2.3")), "tag: 1.2.3 # c\n");
        assert_eq!(set(text, "$['tag']", json!(true)), "tag: true # c\n");
        assert_eq!(set(text, "$['tag']", json!(1.5)), "tag: 1.5 # c\n");
        assert_eq!(set(text, "$['tag']", json!("1.0")), "tag: '1.0' # c\n");
        // A quoted number becomes a plain number.
        assert_eq!(set("n: \"1\"\n", "$['n']", json!(2)), "n: 2\n");
        // Multi-line strings are double-quoted with escapes.
        let out = set(text, "$['tag']", json!("a\nb"));
        assert_eq!(out, "tag: \"a\\nb\" # c\n");
    }

    #[test]
    fn empty_values_and_block_scalars() {
        assert_eq!(set("a:\nb: 1\n", "$['a']", json!("x")), "a: x\nb: 1\n");
        assert_eq!(
            set("a: |\n  x\n  y\n\nb: 1\n", "$['a']", json!("z")),
            "a: z\n\nb: 1\n"
        );
    }

    #[test]
    fn missing_keys_are_created() {
        let text = "image:\n  repository: x # c\nother: 1\n";
        let out = set(text, "$['image']['tag']", json!("1.0"));
        assert_eq!(out, "image:\n  repository: x # c\n  tag: '1.0'\nother: 1\n");
        let out = apply(
            "v.yaml",
            "other: 1 # keep\n",
            &[
                pv("v.yaml", "$['image']['repository']", json!("x")),
                pv("v.yaml", "$['image']['tag']", json!("1.0")),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            "other: 1 # keep\nimage:\n  repository: x\n  tag: '1.0'\n"
        );
        // Into a flow mapping, and into an empty document.
        let out = set("flow: {a: 1}\n", "$['flow']['b']", json!("x y"));
        assert_eq!(out, "flow: {a: 1, b: x y}\n");
        assert_eq!(
            set("# empty\n", "$['a']['b']", json!(1)),
            "# empty\na:\n  b: 1\n"
        );
        // A null value becomes a mapping.
        assert_eq!(
            set("image:\nx: 1\n", "$['image']['tag']", json!("v")),
            "image:\n  tag: v\nx: 1\n"
        );
    }

    #[test]
    fn sequences() {
        let text = "list:\n  - a # first\n  - b\n";
        assert_eq!(
            set(text, "$['list'][1]", json!("c")),
            "list:\n  - a # first\n  - c\n"
        );
        assert_eq!(
            set(text, "$['list'][2]", json!("c")),
            "list:\n  - a # first\n  - b\n  - c\n"
        );
        let err = apply("v.yaml", text, &[pv("v.yaml", "$['list'][5]", json!("c"))]).unwrap_err();
        assert!(
            matches!(err, PromotionError::IndexOutOfRange { len: 2, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("v.yaml") && err.to_string().contains("$['list'][5]"));
        let err = apply(
            "v.yaml",
            "list: scalar\n",
            &[pv("v.yaml", "$['list'][0]", json!(1))],
        )
        .unwrap_err();
        assert!(matches!(err, PromotionError::NotContainer { .. }), "{err}");
    }

    #[test]
    fn nothing_to_change_is_none() {
        let text = "image:\n  tag: \"1.2.3\" # c\nn: 1\n";
        let values = [
            pv("values.yaml", "$['image']['tag']", json!("1.2.3")),
            pv("values.yaml", "$['n']", json!(1)),
            pv("other.yaml", "$['n']", json!(2)),
        ];
        assert_eq!(apply("values.yaml", text, &values).unwrap(), None);
        assert_eq!(apply("values.yaml", text, &[]).unwrap(), None);
    }

    #[test]
    fn normalizes_json_paths() {
        assert_eq!(normalize_json_path("$appVersion").unwrap(), "$.appVersion");
        assert_eq!(normalize_json_path(" $.image.tag ").unwrap(), "$.image.tag");
        assert_eq!(
            normalize_json_path("$[\"rollout-Canary\"][\"image\"][\"tag\"]").unwrap(),
            "$[\"rollout-Canary\"][\"image\"][\"tag\"]"
        );
        let err = normalize_json_path("$.rollout-Canary.image").unwrap_err();
        assert!(err.contains("\"$.rollout-Canary.image\""), "{err}");
        assert!(err.contains("$[\"rollout-Canary\"][\"image\"]"), "{err}");
        assert!(
            normalize_json_path("image.tag")
                .unwrap_err()
                .contains("starts with $")
        );
        assert!(normalize_json_path("").is_err());
        assert!(normalize_json_path("*").is_err());
    }

    #[test]
    fn normalized_paths_round_trip() {
        let segs = vec![
            Seg::Key("it's \\ a\nkey".to_owned()),
            Seg::Index(3),
            Seg::Key("\u{1}".to_owned()),
        ];
        let path = format_path(&segs);
        assert_eq!(path, "$['it\\'s \\\\ a\\nkey'][3]['\\u0001']");
        assert_eq!(parse_normalized(&path), Some(segs));
        assert_eq!(parse_normalized("$.a"), None);
        assert_eq!(parse_normalized("$"), Some(vec![]));
    }

    #[test]
    fn resolve_expands_leaves_in_document_order() {
        let text = "\
zeta: 1
rollout-Canary:
  image: {tag: c1, repository: r}
image:
  tag: '1.0'
sidecar:
  image: s
";
        let got = resolve(
            "dev/values.yaml",
            text,
            &paths(&["$..image", "$.image.tag"]),
        )
        .unwrap();
        let got: Vec<(&str, &Value)> = got.iter().map(|v| (v.path.as_str(), &v.value)).collect();
        assert_eq!(
            got,
            vec![
                ("$['rollout-Canary']['image']['tag']", &json!("c1")),
                ("$['rollout-Canary']['image']['repository']", &json!("r")),
                ("$['image']['tag']", &json!("1.0")),
                ("$['sidecar']['image']", &json!("s")),
            ]
        );
        let err = resolve("dev/values.yaml", text, &paths(&["$.missing"])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "dev/values.yaml: JSONPath $.missing matches nothing"
        );
        let err = resolve("dev/values.yaml", text, &paths(&["$.rollout-Canary"])).unwrap_err();
        assert!(err.to_string().contains("bracket form"), "{err}");
        let got = resolve(
            "v.yaml",
            text,
            &paths(&["$[\"rollout-Canary\"][\"image\"][\"tag\"]"]),
        )
        .unwrap();
        assert_eq!(
            got,
            vec![pv(
                "v.yaml",
                "$['rollout-Canary']['image']['tag']",
                json!("c1")
            )]
        );
    }

    #[test]
    fn read_scalar_cases() {
        let text = "appVersion: 1.4.2\nreplicas: 3\nimage: {tag: x}\nlist: [a, b]\nnothing:\n";
        assert_eq!(
            read_scalar(text, "$appVersion").unwrap().as_deref(),
            Some("1.4.2")
        );
        assert_eq!(
            read_scalar(text, "$.replicas").unwrap().as_deref(),
            Some("3")
        );
        assert_eq!(read_scalar(text, "$.absent").unwrap(), None);
        assert!(matches!(
            read_scalar(text, "$.image").unwrap_err(),
            PromotionError::NotScalar { .. }
        ));
        assert!(matches!(
            read_scalar(text, "$.nothing").unwrap_err(),
            PromotionError::NotScalar { .. }
        ));
        assert!(matches!(
            read_scalar(text, "$.list[*]").unwrap_err(),
            PromotionError::Ambiguous { count: 2, .. }
        ));
        assert!(matches!(
            read_scalar(text, "$.bad-path").unwrap_err(),
            PromotionError::InvalidPath { .. }
        ));
        assert_eq!(
            read_scalar("{\"version\": \"2.0\"}", "$.version")
                .unwrap()
                .as_deref(),
            Some("2.0")
        );
        assert!(matches!(
            read_scalar("a: [", "$.a").unwrap_err(),
            PromotionError::Parse { .. }
        ));
    }

    #[test]
    fn json_files_keep_their_formatting() {
        let text = "{\n  \"name\": \"api\",\n  \"image\": {\n    \"tag\": \"1.0.0\"\n  },\n  \"list\": [1, 2]\n}\n";
        let values = [
            pv("config.json", "$['image']['tag']", json!("1.2.3")),
            pv("config.json", "$['image']['digest']", json!("sha256:ab")),
            pv("config.json", "$['list'][2]", json!(3)),
            pv("config.json", "$['new']", json!(true)),
        ];
        let out = apply("config.json", text, &values).unwrap().unwrap();
        assert_eq!(
            out,
            "{\n  \"name\": \"api\",\n  \"image\": {\n    \"tag\": \"1.2.3\",\n    \"digest\": \"sha256:ab\"\n  },\n  \"list\": [1, 2, 3],\n  \"new\": true\n}\n"
        );
        let got = resolve("config.json", &out, &paths(&["$.image"])).unwrap();
        assert_eq!(got[0].path, "$['image']['tag']");
        assert_eq!(got[1].path, "$['image']['digest']");
        assert_eq!(apply("config.json", &out, &values).unwrap(), None);
        assert_eq!(
            apply("e.json", "{}", &[pv("e.json", "$['a']", json!(1))])
                .unwrap()
                .unwrap(),
            "{\"a\": 1}"
        );
    }

    /// Codefresh's docs example: `promotion: {values.yaml: {jsonPaths: [$.image.tag, $.version]}}`
    /// from dev's Helm values into prod's, which has its own comments and keys.
    #[test]
    fn codefresh_helm_values_example() {
        let dev = "\
# dev
version: 1.4.2
image:
  repository: ghcr.io/acme/demo
  tag: 1.4.2-dev.7
replicaCount: 1
";
        let prod = "\
# Production values: reviewed by the platform team.
version: 1.3.0   # promoted
image:
  repository: ghcr.io/acme/demo
  pullPolicy: IfNotPresent
  tag: \"1.3.0\"   # promoted
replicaCount: 5  # prod scale
resources:
  limits: {cpu: 500m}
";
        let values = resolve("values.yaml", dev, &paths(&["$.image.tag", "$.version"])).unwrap();
        assert_eq!(
            values,
            vec![
                pv("values.yaml", "$['version']", json!("1.4.2")),
                pv("values.yaml", "$['image']['tag']", json!("1.4.2-dev.7")),
            ]
        );
        assert_eq!(
            read_scalar(dev, "$.version").unwrap().as_deref(),
            Some("1.4.2")
        );
        let out = apply("values.yaml", prod, &values).unwrap().unwrap();
        assert_eq!(
            out,
            prod.replace("1.3.0   #", "1.4.2   #")
                .replace("\"1.3.0\"", "\"1.4.2-dev.7\"")
        );
        assert_eq!(apply("values.yaml", &out, &values).unwrap(), None);
    }

    #[test]
    fn whole_subtrees_and_replacements() {
        // A promoted mapping is set leaf by leaf: the target's own keys stay.
        let source = "image:\n  repository: r\n  tag: t2\n";
        let values = resolve("v.yaml", source, &paths(&["$.image"])).unwrap();
        let out = apply(
            "v.yaml",
            "image:\n  tag: t1 # c\n  pullPolicy: Always\n",
            &values,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            out,
            "image:\n  tag: t2 # c\n  pullPolicy: Always\n  repository: r\n"
        );
        // A scalar where the target has a mapping replaces it.
        assert_eq!(
            set("image:\n  tag: x\nb: 1\n", "$['image']", json!("nginx")),
            "image: nginx\nb: 1\n"
        );
    }

    #[test]
    fn documents_and_markers() {
        let text = "%YAML 1.2\n---\n# first\ntag: a\n...\n---\ntag: a\n";
        assert_eq!(
            set(text, "$['tag']", json!("b")),
            "%YAML 1.2\n---\n# first\ntag: b\n...\n---\ntag: a\n"
        );
        // No newline at the end, a comment on the last line.
        assert_eq!(
            set("a: 1\ntag: x # end", "$['tag']", json!("z")),
            "a: 1\ntag: z # end"
        );
        assert_eq!(set("a: 1", "$['b']", json!("z")), "a: 1\nb: z");
        // `y` is a YAML 1.1 boolean: quoted.
        assert_eq!(set("a: 1", "$['a']", json!("y")), "a: 'y'");
    }

    #[test]
    fn tags_quoted_keys_crlf_and_merge_keys() {
        let cases = [
            (
                "tag: !!str 1.0 # c\nb: 1\n",
                "$['tag']",
                "tag: '2.0' # c\nb: 1\n",
            ),
            (
                "\"rollout-Canary\":\n  image: {tag: a}\n",
                "$['rollout-Canary']['image']['tag']",
                "\"rollout-Canary\":\n  image: {tag: '2.0'}\n",
            ),
            (
                "a: 1\r\nimage:\r\n  repo: x\r\n",
                "$['image']['tag']",
                "a: 1\r\nimage:\r\n  repo: x\r\n  tag: '2.0'\r\n",
            ),
            (
                "list:\n- a\n- b\n",
                "$['list'][2]",
                "list:\n- a\n- b\n- '2.0'\n",
            ),
            ("list: []\n", "$['list'][0]", "list: ['2.0']\n"),
            ("m: {}\n", "$['m']['k']", "m: {k: '2.0'}\n"),
            // A key that came from a merge key is set in the mapping itself.
            (
                "<<: {a: 1}\nb: 2\n",
                "$['a']",
                "<<: {a: 1}\nb: 2\na: '2.0'\n",
            ),
        ];
        for (text, path, want) in cases {
            assert_eq!(set(text, path, json!("2.0")), want, "{text:?}");
        }
    }

    /// Many leaves cost a lookup each, not a scan of their mapping.
    #[test]
    fn many_leaves() {
        let source: String = (0..5_000).map(|i| format!("k{i}: v{i}-new\n")).collect();
        let target: String = (0..5_000).map(|i| format!("k{i}: v{i} # c\n")).collect();
        let started = std::time::Instant::now();
        let values = resolve("v.yaml", &source, &paths(&["$.*"])).unwrap();
        assert_eq!(values.len(), 5_000);
        assert_eq!(values[4_999].path, "$['k4999']");
        let out = apply("v.yaml", &target, &values).unwrap().unwrap();
        assert!(out.ends_with("k4999: v4999-new # c\n"));
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
    }

    #[test]
    fn refusals() {
        let big = "a: 1\n".repeat(MAX_FILE_LEN / 5 + 1);
        assert!(matches!(
            resolve("big.yaml", &big, &paths(&["$.a"])),
            Err(PromotionError::TooLarge { .. })
        ));
        assert!(matches!(
            apply("big.yaml", &big, &[pv("big.yaml", "$['a']", json!(1))]),
            Err(PromotionError::TooLarge { .. })
        ));
        let err = apply("v.yaml", "a: 1\n", &[pv("v.yaml", "$.a", json!(2))]).unwrap_err();
        assert!(err.to_string().contains("normalized"), "{err}");
        // Through an alias: the alias becomes its own mapping when that is
        // all it held; otherwise the read-back check refuses the edit.
        let one = |text: &str| {
            apply(
                "v.yaml",
                text,
                &[pv("v.yaml", "$['image']['tag']", json!("y"))],
            )
        };
        assert_eq!(
            one("base: &b {tag: x}\nimage: *b\n").unwrap().unwrap(),
            "base: &b {tag: x}\nimage:\n  tag: 'y'\n"
        );
        let err = one("base: &b {tag: x, repository: r}\nimage: *b\n").unwrap_err();
        assert!(
            err.to_string().contains("would change other values"),
            "{err}"
        );
        let deep = "[".repeat(10_000);
        assert!(resolve("d.yaml", &deep, &paths(&["$"])).is_err());
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                any::<bool>().prop_map(Value::from),
                any::<i64>().prop_map(Value::from),
                "[ -~]{0,12}".prop_map(Value::from),
                prop::sample::select(vec![
                    "1.0", "yes", "0x1F", "~", "a: b", "- x", "'q'", "\"", "é\n\t"
                ])
                .prop_map(Value::from),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn apply_then_resolve_reads_back(
                value in scalar(),
                key in prop::sample::select(vec!["tag", "new", "flow", "list"]),
                inner in prop::sample::select(vec!["a", "b", "x-y"]),
            ) {
                let text = "# c\ntag: \"v1\" # t\nflow: {a: 1, b: 'two'}\nlist:\n  - 1\nempty:\n";
                let path = format_path(&[Seg::Key(key.to_owned()), Seg::Key(inner.to_owned())]);
                let values = [pv("v.yaml", &path, value.clone())];
                match apply("v.yaml", text, &values) {
                    Ok(Some(out)) => {
                        let back = resolve("v.yaml", &out, std::slice::from_ref(&path)).unwrap();
                        prop_assert_eq!(&back[0].value, &value);
                        prop_assert!(out.starts_with("# c\n"));
                    }
                    Ok(None) => {}
                    Err(e) => prop_assert!(key == "tag" || key == "list", "{}", e),
                }
            }

            #[test]
            fn never_panics(text in "[a-z:{}\\[\\], #'\"\n-]{0,60}", value in scalar()) {
                let values = [pv("f", "$['a']", value.clone()), pv("f", "$['a']['b']", value)];
                let _ = apply("f", &text, &values[..1]);
                let _ = apply("f", &text, &values[1..]);
                let _ = resolve("f", &text, &["$..*".to_owned()]);
                let _ = read_scalar(&text, "$.a");
            }
        }
    }
}
