//! Named promotion templates: Codefresh's `PromotionTemplate` resource, a
//! [`PromotionTemplate`] stored under a name so that several products can
//! share it through `Product::promotion_template_ref`.
//!
//! Codefresh also matches templates to applications by label
//! (`applicationSourceSelector`, ordered by `priority`). promoflow's
//! applications carry no labels, so the selector and priority are kept
//! exactly as given (an import exports unchanged) but never evaluated: a
//! product uses a template only by naming it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::catalog::{MAX_COLLECTION, Meta};
use super::gitops::{PromotionTemplate, validate_template};
use super::{Violations, check_name, check_text, entry_field};

/// Kubernetes' label selector operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum LabelOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl LabelOperator {
    pub const ALL: [Self; 4] = [Self::In, Self::NotIn, Self::Exists, Self::DoesNotExist];

    /// The spelling of Kubernetes and Codefresh YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::In => "In",
            Self::NotIn => "NotIn",
            Self::Exists => "Exists",
            Self::DoesNotExist => "DoesNotExist",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// `In` and `NotIn` compare with values; the others look at the key only.
    fn takes_values(self) -> bool {
        matches!(self, Self::In | Self::NotIn)
    }
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelRequirement {
    pub key: String,
    pub operator: LabelOperator,
    pub values: Vec<String>,
}

/// A Kubernetes label selector, kept as data (see the module comment).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<LabelRequirement>,
}

/// A promotion template stored under a name.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NamedTemplate {
    pub name: String,
    pub description: String,
    pub template: PromotionTemplate,
    pub selector: LabelSelector,
    pub priority: i64,
    pub meta: Meta,
}

/// Checks a named template as a whole, normalizing its JSONPaths in place
/// (see [`validate_template`]). Field paths start at `field`
/// (`promotion_template`).
pub fn validate_named(
    field: &str,
    t: &mut NamedTemplate,
    normalize_json_path: &dyn Fn(&str) -> Result<String, String>,
) -> Violations {
    let mut v = Violations::new();
    check_name(&mut v, &format!("{field}.name"), &t.name);
    check_text(&mut v, &format!("{field}.description"), &t.description);
    validate_template(
        &mut v,
        &format!("{field}.template"),
        &mut t.template,
        normalize_json_path,
    );
    validate_selector(
        &mut v,
        &format!("{field}.application_source_selector"),
        &t.selector,
    );
    v
}

fn check_key(v: &mut Violations, field: &str, key: &str) {
    if key.is_empty() || key.len() > 63 {
        v.push(field, "keys must be 1-63 bytes long");
    } else {
        check_text(v, field, key);
    }
}

/// The rules Kubernetes applies to a selector: bounded sizes, keys of 1-63
/// bytes, values only (and at least one) for `In` / `NotIn`.
fn validate_selector(v: &mut Violations, field: &str, s: &LabelSelector) {
    let labels = format!("{field}.match_labels");
    if s.match_labels.len() > MAX_COLLECTION {
        v.push(labels, format!("has more than {MAX_COLLECTION} entries"));
    } else {
        for (key, value) in &s.match_labels {
            let entry = entry_field(&labels, key);
            check_key(v, &entry, key);
            check_text(v, &entry, value);
        }
    }
    if s.match_expressions.len() > MAX_COLLECTION {
        v.push(
            format!("{field}.match_expressions"),
            format!("has more than {MAX_COLLECTION} entries"),
        );
        return;
    }
    for (i, e) in s.match_expressions.iter().enumerate() {
        let f = format!("{field}.match_expressions[{i}]");
        check_key(v, &format!("{f}.key"), &e.key);
        let values = format!("{f}.values");
        match (e.operator.takes_values(), e.values.is_empty()) {
            (true, true) => v.push(
                values,
                format!("{} needs at least one value", e.operator.as_str()),
            ),
            (false, false) => v.push(values, format!("{} takes no values", e.operator.as_str())),
            _ if e.values.len() > MAX_COLLECTION => {
                v.push(values, format!("has more than {MAX_COLLECTION} entries"))
            }
            _ => {
                for (j, value) in e.values.iter().enumerate() {
                    check_text(v, &format!("{values}[{j}]"), value);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_follow_the_kubernetes_rules() {
        let requirement = |operator, values: &[&str]| LabelRequirement {
            key: "codefresh.io/product".into(),
            operator,
            values: values.iter().map(|s| s.to_string()).collect(),
        };
        let mut t = NamedTemplate {
            name: "base-helm".into(),
            selector: LabelSelector {
                match_labels: [(String::new(), "x".into())].into(),
                match_expressions: vec![
                    requirement(LabelOperator::In, &["loans"]),
                    requirement(LabelOperator::NotIn, &[]),
                    requirement(LabelOperator::Exists, &["x"]),
                    requirement(LabelOperator::DoesNotExist, &[]),
                ],
            },
            ..Default::default()
        };
        let v = validate_named("promotion_template", &mut t, &|p| Ok(p.to_string()));
        let fields: Vec<_> = v.0.iter().map(|x| x.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "promotion_template.application_source_selector.match_labels[]",
                "promotion_template.application_source_selector.match_expressions[1].values",
                "promotion_template.application_source_selector.match_expressions[2].values",
            ]
        );
    }
}
