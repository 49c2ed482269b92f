//! Request names and free text: the checks every handler applies to the
//! strings of a request before they reach the store.
//!
//! The rules themselves are the domain's ([`crate::domain::check_name`],
//! [`crate::domain::check_text`]), shared with the validation of whole
//! resources; these wrappers give a handler one call per field.

use super::check;
use crate::domain::{Violations, check_name, check_text};
use crate::error::Result;

/// Fails with `INVALID_ARGUMENT` at `field` unless `name` is a valid name
/// (a lowercase DNS label; empty is "is required").
pub fn check_name_field(field: &str, name: &str) -> Result<()> {
    let mut v = Violations::new();
    check_name(&mut v, field, name);
    check(v)
}

/// Records a violation at `field` unless `name` is empty (a filter or an
/// optional reference left unset) or a valid name.
pub fn check_optional_name(v: &mut Violations, field: &str, name: &str) {
    if !name.is_empty() {
        check_name(v, field, name);
    }
}

/// Fails with `INVALID_ARGUMENT` at `field` unless `text` is storable free
/// text (bounded, no NUL).
pub fn check_text_field(field: &str, text: &str) -> Result<()> {
    let mut v = Violations::new();
    check_text(&mut v, field, text);
    check(v)
}

/// Requires a release id. An empty one is the caller's mistake, not a
/// release that does not exist; any other id that is storable text is
/// looked up (and is NOT_FOUND when it names no release).
pub fn check_release_id(field: &str, id: &str) -> Result<()> {
    let mut v = Violations::new();
    if id.is_empty() {
        v.push(field, "is required");
    } else {
        check_text(&mut v, field, id);
    }
    check(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn fields(r: Result<()>) -> Vec<(String, String)> {
        match r {
            Ok(()) => Vec::new(),
            Err(Error::InvalidArgument { violations, .. }) => violations
                .into_iter()
                .map(|v| (v.field, v.description))
                .collect(),
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }

    #[test]
    fn names() {
        assert!(fields(check_name_field("name", "prod-eu")).is_empty());
        assert_eq!(
            fields(check_name_field("name", "")),
            [("name".to_string(), "is required".to_string())]
        );
        for bad in ["Prod", "a_b", "dev\0", "-a"] {
            let got = fields(check_name_field("source", bad));
            assert_eq!(got.len(), 1, "{bad:?}");
            assert_eq!(got[0].0, "source");
            assert!(got[0].1.contains("is not a valid name"), "{got:?}");
        }
        let mut v = Violations::new();
        check_optional_name(&mut v, "product", "");
        check_optional_name(&mut v, "flow", "Bad");
        let got: Vec<_> = v.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(got, ["flow"]);
    }

    #[test]
    fn text_and_ids() {
        assert!(fields(check_text_field("reason", "")).is_empty());
        assert!(fields(check_text_field("reason", "rolled back: é")).is_empty());
        assert_eq!(
            fields(check_text_field("reason", "a\0")),
            [(
                "reason".to_string(),
                "must not contain NUL characters (\\0)".to_string()
            )]
        );
        assert_eq!(
            fields(check_text_field("reason", &"x".repeat(4097))).len(),
            1
        );
        assert!(fields(check_release_id("release_id", "0190-abc")).is_empty());
        assert_eq!(
            fields(check_release_id("release_id", "")),
            [("release_id".to_string(), "is required".to_string())]
        );
        assert_eq!(fields(check_release_id("release_id", "\0")).len(), 1);
    }
}
