//! Pure domain logic: no async, no I/O, no tonic types.
//!
//! Everything here can be unit- and property-tested without a server or a
//! database. The store persists these types, the engine drives them, the API
//! layer translates them to and from protobuf.

pub mod catalog;
pub mod codefresh;
pub mod edit;
pub mod flow;
pub mod release;
pub mod render;
pub mod status;

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
}
