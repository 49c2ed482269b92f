//! Pure domain logic: no async, no I/O, no tonic types.
//!
//! Everything here can be unit- and property-tested without a server or a
//! database. The store persists these types, the engine drives them, the API
//! layer translates them to and from protobuf.

pub mod access;
pub mod catalog;
pub mod codefresh;
pub mod edit;
pub mod flow;
pub mod gitops;
pub mod promotion;
pub mod release;
pub mod render;
pub mod status;
pub mod sync;
pub mod template;
pub mod webhook;

use std::fmt;

/// One problem with a request, addressed by a field path such as
/// `steps[3].depends_on[1]` so a client can point at the exact input.
///
/// Validation always collects every violation before failing, so a user fixes
/// a request in one round trip instead of one error at a time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.description)
    }
}

/// Accumulates violations; `finish` turns an empty list into `Ok(())`.
#[derive(Debug, Default, Clone)]
pub struct Violations(pub Vec<Violation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.0.push(Violation::new(field, description));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn extend(&mut self, other: Violations) {
        self.0.extend(other.0);
    }

    pub fn finish(self) -> Result<(), Vec<Violation>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Maximum length of a name: a DNS label.
pub const MAX_NAME_LEN: usize = 63;

/// True when `name` is a lowercase DNS label (`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`).
///
/// Hand-checked rather than a regex: it runs for every name of every flow of
/// up to thousands of steps, and the rule is simple enough to read as code.
pub fn is_dns_label(name: &str) -> bool {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() > MAX_NAME_LEN {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    alnum(bytes[0]) && alnum(bytes[bytes.len() - 1]) && bytes.iter().all(|&b| alnum(b) || b == b'-')
}

/// Records a violation at `field` unless `name` is a valid DNS label.
pub fn check_name(v: &mut Violations, field: &str, name: &str) {
    if name.is_empty() {
        v.push(field, "is required");
    } else if !is_dns_label(name) {
        v.push(
            field,
            format!(
                "{name:?} is not a valid name: use 1-63 lowercase letters, digits and '-', starting and ending with a letter or digit"
            ),
        );
    }
}

/// Why `text` cannot be stored as a free-text field of at most `max` bytes,
/// or `None` when it can.
///
/// NUL is refused because PostgreSQL `text` cannot hold it (SQLite can): the
/// same request must get the same answer on both backends, and a value the
/// database cannot store is the caller's mistake, not a database failure.
/// NUL is the only such character, since a Rust `String` is valid UTF-8.
pub fn text_problem(text: &str, max: usize) -> Option<String> {
    if text.len() > max {
        Some(format!("is longer than {max} bytes"))
    } else if text.contains('\0') {
        Some("must not contain NUL characters (\\0)".to_string())
    } else {
        None
    }
}

/// Records a violation at `field` unless `text` is storable free text of at
/// most [`catalog::MAX_TEXT`] bytes (see [`text_problem`]). Empty is fine.
pub fn check_text(v: &mut Violations, field: &str, text: &str) {
    check_text_max(v, field, text, catalog::MAX_TEXT);
}

/// [`check_text`] with another length bound (e.g. an application name).
pub fn check_text_max(v: &mut Violations, field: &str, text: &str, max: usize) {
    if let Some(problem) = text_problem(text, max) {
        v.push(field, problem);
    }
}

/// The path of an entry of a string map: `labels[key]`, with control
/// characters of the key escaped so a path never carries a raw NUL.
pub fn entry_field(field: &str, key: &str) -> String {
    format!("{field}[{}]", key.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "dev", "prod-eu", "0", "a-b-c", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "Prod", "a_b", "a.b", &"a".repeat(64), "é"] {
            assert!(!is_dns_label(bad), "{bad}");
        }
    }

    #[test]
    fn free_text() {
        let problems = |text: &str| {
            let mut v = Violations::new();
            check_text(&mut v, "message", text);
            v.0
        };
        for ok in [
            "",
            "deploy 1.2.3",
            "é ✓ \t\n",
            &"a".repeat(catalog::MAX_TEXT),
        ] {
            assert!(problems(ok).is_empty(), "{ok:?}");
        }
        for bad in ["\0", "a\0b", "trailing\0"] {
            assert_eq!(
                problems(bad),
                [Violation::new(
                    "message",
                    "must not contain NUL characters (\\0)"
                )],
                "{bad:?}"
            );
        }
        let long = problems(&"a".repeat(catalog::MAX_TEXT + 1));
        assert_eq!(long[0].description, "is longer than 4096 bytes");
        assert_eq!(
            text_problem("abcd", 3).as_deref(),
            Some("is longer than 3 bytes")
        );
        assert_eq!(text_problem("abc", 3), None);
    }

    #[test]
    fn names_refuse_nul() {
        let mut v = Violations::new();
        check_name(&mut v, "name", "dev\0");
        assert_eq!(v.0.len(), 1);
        assert!(v.0[0].description.contains("is not a valid name"));
    }

    #[test]
    fn entry_fields_escape_control_characters() {
        assert_eq!(entry_field("labels", "team"), "labels[team]");
        assert_eq!(entry_field("labels", "a\0b"), "labels[a\\0b]");
    }
}
