//! The Codefresh `PromotionTemplate` resource (`codefresh.io/v1beta1`), and
//! the `versionSource` / `promotion` body it shares with a product's inline
//! `promotionTemplate`:
//!
//! ```yaml
//! apiVersion: codefresh.io/v1beta1
//! kind: PromotionTemplate
//! metadata:
//!   name: base-helm
//!   annotations:
//!     description: Helm charts            # <-> NamedTemplate::description
//! spec:
//!   applicationSourceSelector:            # kept, not evaluated (domain::template)
//!     matchLabels:
//!       codefresh.io/product: loans
//!   priority: 1                           # kept, not evaluated
//!   versionSource:
//!     file: Chart.yaml
//!     jsonPath: $appVersion               # stored as $.appVersion
//!   promotion:
//!     Chart.yaml:
//!       jsonPaths:
//!         - $.appVersion
//! ```
//!
//! Decisions: `promotion` is a map in Codefresh, so its files have no order;
//! import and export both list them by name. `applicationSourceSelector` and
//! `priority` are required by Codefresh's CRD, so export always writes them
//! (`{}` and `0` when unset) and the document stays valid for Codefresh;
//! import accepts their absence (promoflow does not use them). JSONPaths are
//! checked and normalized by validation, not here.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use super::{
    DESCRIPTION_ANNOTATION, DOCUMENT, MAX_YAML_LEN, MetadataDocument, Reader, join, parse,
    resource_metadata, write,
};
use crate::domain::Violation;
use crate::domain::gitops::{PromotedFile, PromotionTemplate, VersionSource};
use crate::domain::template::{LabelOperator, LabelRequirement, LabelSelector, NamedTemplate};

/// The only `apiVersion` accepted and produced.
pub const API_VERSION: &str = "codefresh.io/v1beta1";
/// The `kind` of the resource.
pub const KIND: &str = "PromotionTemplate";

const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const SPEC_FIELDS: &[&str] = &[
    "applicationSourceSelector",
    "priority",
    "versionSource",
    "promotion",
];
/// The fields of a template body (a product's inline `promotionTemplate`).
pub(super) const BODY_FIELDS: &[&str] = &["versionSource", "promotion"];
const VERSION_SOURCE_FIELDS: &[&str] = &["file", "jsonPath"];
const PROMOTED_FILE_FIELDS: &[&str] = &["jsonPaths"];
const SELECTOR_FIELDS: &[&str] = &["matchLabels", "matchExpressions"];
const REQUIREMENT_FIELDS: &[&str] = &["key", "operator", "values"];

/// Reads a Codefresh `PromotionTemplate` document, reporting every problem
/// of shape at once, each at its path.
pub fn from_yaml(text: &str) -> Result<NamedTemplate, Vec<Violation>> {
    let document = parse(text, MAX_YAML_LEN, 1)?;
    let mut r = Reader::default();
    let t = r.template_document(&document);
    r.v.finish().map(|()| t)
}

/// Writes `t` as a Codefresh `PromotionTemplate` document.
pub fn to_yaml(t: &NamedTemplate) -> String {
    let mut annotations = BTreeMap::new();
    if !t.description.is_empty() {
        annotations.insert(DESCRIPTION_ANNOTATION, t.description.clone());
    }
    let body = BodyDocument::from(&t.template);
    write(&Document {
        api_version: API_VERSION,
        kind: KIND,
        metadata: MetadataDocument {
            name: &t.name,
            annotations,
        },
        spec: SpecDocument {
            application_source_selector: SelectorDocument::from(&t.selector),
            priority: t.priority,
            version_source: body.version_source,
            promotion: body.promotion,
        },
    })
}

impl Reader {
    fn template_document(&mut self, document: &Value) -> NamedTemplate {
        let Some(root) = self.object(DOCUMENT, document, Some(ROOT_FIELDS)) else {
            return NamedTemplate::default();
        };
        self.api_version(root.get("apiVersion"), &[API_VERSION]);
        self.expect_literal("kind", root.get("kind"), KIND);
        let (name, mut annotations) =
            resource_metadata(self, root.get("metadata"), &[DESCRIPTION_ANNOTATION]);
        let mut t = NamedTemplate {
            name,
            description: annotations
                .remove(DESCRIPTION_ANNOTATION)
                .unwrap_or_default(),
            ..NamedTemplate::default()
        };
        let Some(spec) = root.get("spec") else {
            self.v.push("spec", "is required");
            return t;
        };
        let Some(spec) = self.object("spec", spec, Some(SPEC_FIELDS)) else {
            return t;
        };
        t.selector = self.selector(
            "spec.applicationSourceSelector",
            spec.get("applicationSourceSelector"),
        );
        t.priority = self
            .integer("spec.priority", spec.get("priority"))
            .unwrap_or_default();
        t.template = self.template_body("spec", spec);
        t
    }

    /// `versionSource` and `promotion` of `body` (a template's spec, or a
    /// product's inline `promotionTemplate`) at `path`.
    pub(super) fn template_body(
        &mut self,
        path: &str,
        body: &Map<String, Value>,
    ) -> PromotionTemplate {
        let vs_path = join(path, "versionSource");
        let version_source = self
            .optional_object(&vs_path, body.get("versionSource"), VERSION_SOURCE_FIELDS)
            .map(|vs| VersionSource {
                file: self.required_string(&join(&vs_path, "file"), vs.get("file")),
                json_path: self.required_string(&join(&vs_path, "jsonPath"), vs.get("jsonPath")),
            });
        let promotion_path = join(path, "promotion");
        let mut promotion = Vec::new();
        if let Some(files) = body.get("promotion").filter(|p| !p.is_null())
            && let Some(files) = self.object(&promotion_path, files, None)
        {
            for (file, entry) in files {
                let entry_path = join(&promotion_path, file);
                let paths_path = join(&entry_path, "jsonPaths");
                let json_paths = match entry {
                    Value::Null => {
                        self.v.push(&paths_path, "is required");
                        Vec::new()
                    }
                    entry => match self.object(&entry_path, entry, Some(PROMOTED_FILE_FIELDS)) {
                        Some(entry) => match entry.get("jsonPaths") {
                            None | Some(Value::Null) => {
                                self.v.push(&paths_path, "is required");
                                Vec::new()
                            }
                            paths => self.strings(&paths_path, paths),
                        },
                        None => Vec::new(),
                    },
                };
                promotion.push(PromotedFile {
                    file: file.clone(),
                    json_paths,
                });
            }
        }
        PromotionTemplate {
            version_source,
            promotion,
        }
    }

    fn selector(&mut self, path: &str, value: Option<&Value>) -> LabelSelector {
        let Some(selector) = self.optional_object(path, value, SELECTOR_FIELDS) else {
            return LabelSelector::default();
        };
        let labels_path = join(path, "matchLabels");
        let mut match_labels = BTreeMap::new();
        if let Some(labels) = selector.get("matchLabels").filter(|l| !l.is_null())
            && let Some(labels) = self.object(&labels_path, labels, None)
        {
            for (key, value) in labels {
                if let Some(value) = self.string(&join(&labels_path, key), Some(value)) {
                    match_labels.insert(key.clone(), value);
                }
            }
        }
        let expressions_path = join(path, "matchExpressions");
        let match_expressions = self
            .list(&expressions_path, selector.get("matchExpressions"))
            .iter()
            .enumerate()
            .filter_map(|(i, e)| self.requirement(&format!("{expressions_path}[{i}]"), e))
            .collect();
        LabelSelector {
            match_labels,
            match_expressions,
        }
    }

    fn requirement(&mut self, path: &str, value: &Value) -> Option<LabelRequirement> {
        let e = self.object(path, value, Some(REQUIREMENT_FIELDS))?;
        let key = self.required_string(&join(path, "key"), e.get("key"));
        let op_path = join(path, "operator");
        let operator = self.required_string(&op_path, e.get("operator"));
        let values = self.strings(&join(path, "values"), e.get("values"));
        let operator = match LabelOperator::parse(&operator) {
            Some(op) => op,
            None if operator.is_empty() => return None,
            None => {
                self.v.push(
                    op_path,
                    format!(
                        "{operator:?} is not an operator: use In, NotIn, Exists or DoesNotExist"
                    ),
                );
                return None;
            }
        };
        Some(LabelRequirement {
            key,
            operator,
            values,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: MetadataDocument<'a>,
    spec: SpecDocument<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SpecDocument<'a> {
    application_source_selector: SelectorDocument<'a>,
    priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    version_source: Option<VersionSourceDocument<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    promotion: BTreeMap<&'a str, PromotedFileDocument<'a>>,
}

/// A template body as exported: inside a template's spec, or as a
/// product's inline `promotionTemplate`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct BodyDocument<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    version_source: Option<VersionSourceDocument<'a>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    promotion: BTreeMap<&'a str, PromotedFileDocument<'a>>,
}

impl<'a> From<&'a PromotionTemplate> for BodyDocument<'a> {
    fn from(t: &'a PromotionTemplate) -> Self {
        Self {
            version_source: t.version_source.as_ref().map(|vs| VersionSourceDocument {
                file: &vs.file,
                json_path: &vs.json_path,
            }),
            promotion: t
                .promotion
                .iter()
                .map(|f| {
                    (
                        f.file.as_str(),
                        PromotedFileDocument {
                            json_paths: &f.json_paths,
                        },
                    )
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionSourceDocument<'a> {
    file: &'a str,
    json_path: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PromotedFileDocument<'a> {
    json_paths: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SelectorDocument<'a> {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    match_labels: BTreeMap<&'a str, &'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    match_expressions: Vec<RequirementDocument<'a>>,
}

impl<'a> From<&'a LabelSelector> for SelectorDocument<'a> {
    fn from(s: &'a LabelSelector) -> Self {
        Self {
            match_labels: s
                .match_labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            match_expressions: s
                .match_expressions
                .iter()
                .map(|e| RequirementDocument {
                    key: &e.key,
                    operator: e.operator.as_str(),
                    values: &e.values,
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct RequirementDocument<'a> {
    key: &'a str,
    operator: &'static str,
    #[serde(skip_serializing_if = "super::no_items")]
    values: &'a [String],
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flow::testing::fields;
    use crate::domain::promotion::normalize_json_path;
    use crate::domain::template::validate_named;

    /// The example of Codefresh's "Promotion Template YAML" page.
    pub(crate) const DOCS_EXAMPLE: &str = r#"
apiVersion: codefresh.io/v1beta1
kind: PromotionTemplate
metadata:
  name: base-helm                     # any valid k8s name
spec:
  applicationSourceSelector:
    matchLabels:
      codefresh.io/product: loans
  priority: 1
  versionSource:                      # get release version from this file
    file: Chart.yaml
    jsonPath: $appVersion
  promotion:                         #  promote defined changes in files; leave empty to promote all changes
    Chart.yaml:
      jsonPaths:
      - $.appVersion
      - $.version
      - $.dependencies
    values.yaml:
      jsonPaths:
      - $..image
    requirements.yaml:
      jsonPaths:
      - "$.dependencies"
"#;

    /// Import and validation, as ImportPromotionTemplate does them.
    fn import(text: &str) -> NamedTemplate {
        let mut t = from_yaml(text).unwrap_or_else(|v| panic!("import failed: {v:#?}"));
        let v = validate_named("promotion_template", &mut t, &normalize_json_path);
        assert!(v.is_empty(), "{:?}", v.0);
        t
    }

    #[test]
    fn the_documentation_example_round_trips() {
        let t = import(DOCS_EXAMPLE);
        assert_eq!(t.name, "base-helm");
        assert_eq!(t.priority, 1);
        assert_eq!(
            t.selector.match_labels,
            BTreeMap::from([("codefresh.io/product".to_owned(), "loans".to_owned())])
        );
        assert_eq!(
            t.template.version_source,
            Some(VersionSource {
                file: "Chart.yaml".into(),
                json_path: "$.appVersion".into(),
            }),
            "Codefresh's $appVersion shorthand is stored normalized"
        );
        let files: Vec<&str> = t
            .template
            .promotion
            .iter()
            .map(|f| f.file.as_str())
            .collect();
        assert_eq!(files, ["Chart.yaml", "requirements.yaml", "values.yaml"]);
        assert_eq!(
            t.template.promotion[0].json_paths,
            ["$.appVersion", "$.version", "$.dependencies"]
        );
        let exported = to_yaml(&t);
        assert_eq!(import(&exported), t, "{exported}");
        assert_eq!(to_yaml(&import(&exported)), exported);
    }

    #[test]
    fn export_is_a_valid_codefresh_template() {
        let t = NamedTemplate {
            name: "plain".into(),
            description: "the whole values file".into(),
            template: PromotionTemplate {
                version_source: None,
                promotion: vec![PromotedFile {
                    file: "values.yaml".into(),
                    json_paths: vec!["*".into()],
                }],
            },
            selector: LabelSelector {
                match_labels: BTreeMap::new(),
                match_expressions: vec![LabelRequirement {
                    key: "team".into(),
                    operator: LabelOperator::Exists,
                    values: vec![],
                }],
            },
            ..NamedTemplate::default()
        };
        let expected = r#"apiVersion: codefresh.io/v1beta1
kind: PromotionTemplate
metadata:
  name: plain
  annotations:
    description: the whole values file
spec:
  applicationSourceSelector:
    matchExpressions:
      - key: team
        operator: Exists
  priority: 0
  promotion:
    values.yaml:
      jsonPaths:
        - "*"
"#;
        assert_eq!(to_yaml(&t), expected);
        assert_eq!(import(expected), t);
    }

    #[test]
    fn unknown_fields_and_bad_values_are_named() {
        let text = "
apiVersion: codefresh.io/v1beta1
kind: PromotionTemplate
metadata:
  name: t
  labels: {a: b}
  annotations: {owner: me}
spec:
  priority: high
  applicationSourceSelector:
    matchExpressions:
      - {key: a, operator: Maybe}
  versionSource: {file: Chart.yaml, jsonpath: $.x}
  promotion:
    values.yaml:
      jsonPath: [$.x]
  promote: {}
";
        let violations = from_yaml(text).expect_err("import should fail");
        assert_eq!(
            fields(&violations),
            [
                "metadata.labels",
                "metadata.annotations.owner",
                "spec.promote",
                "spec.applicationSourceSelector.matchExpressions[0].operator",
                "spec.priority",
                "spec.versionSource.jsonpath",
                "spec.versionSource.jsonPath",
                "spec.promotion.values.yaml.jsonPath",
                "spec.promotion.values.yaml.jsonPaths",
            ]
        );
        let v1 = from_yaml(&DOCS_EXAMPLE.replace("v1beta1", "v1beta2")).expect_err("version");
        assert_eq!(fields(&v1), ["apiVersion"]);
    }
}
