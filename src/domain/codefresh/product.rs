//! The Codefresh `Product` resource (`codefresh.io/v1beta1` and
//! `codefresh.io/v1beta2`):
//!
//! ```yaml
//! apiVersion: codefresh.io/v1beta2
//! kind: Product
//! metadata:
//!   name: helm-guestbook
//!   annotations:
//!     description: The guestbook           # <-> Product::description
//!     promoflow.io/applications: |         # <-> Product::applications
//!       - environment: dev
//!         name: guestbook-dev
//!         version: 1.0.0
//!         source:
//!           repoURL: https://git.example.com/team/apps.git
//!           targetRevision: main
//!           path: apps/dev
//!         argocd:                          # optional: wait for its sync
//!           server: https://argocd.example.com
//!           name: guestbook-dev
//! spec:
//!   promotionTemplateRef: base-helm        # or an inline promotionTemplate
//!   promotionFlows:
//!     - name: to-prod
//!       gitTriggerSelectors:
//!         - key: commitMessage             # commitMessage | gitRevision
//!           operator: In                   # In | NotIn
//!           values: ["*deploy*"]
//!   concurrency: queue                     # queue | terminate (v1beta2 only)
//! ```
//!
//! Decisions where neither promoflow's contract nor Codefresh settle the question:
//!
//! - **Applications.** Codefresh's Product has no application list: an Argo
//!   CD Application joins a product through its own `codefresh.io/product`
//!   annotation, and its environment follows from where it runs. promoflow
//!   has no Argo CD inventory to read that from, so the applications travel
//!   with the product, in the annotation `promoflow.io/applications`: a YAML
//!   list held as a string, with Argo CD's spelling of the source
//!   (`repoURL`, `targetRevision`, `path`). An annotation, not a `spec`
//!   field, keeps the document a valid Codefresh resource (Kubernetes would
//!   refuse or prune an unknown spec field) and keeps import → export →
//!   import lossless. Export writes each application's current version;
//!   importing over an existing product keeps recorded versions, as
//!   UpdateProduct does.
//! - **apiVersion.** Both versions are read; `concurrency` exists only in
//!   v1beta2, so in a v1beta1 document it is an error saying so. Export
//!   writes v1beta2 (Codefresh's storage version) with `concurrency` always
//!   set.
//! - **Annotations** other than `description` and the applications are
//!   refused by name: a product has nowhere to keep them.
//! - Values of selectors are strings, as in the CRD: a number must be quoted.

use serde::Serialize;
use serde_json::{Map, Value};

use super::template::{BODY_FIELDS, BodyDocument};
use super::{
    DESCRIPTION_ANNOTATION, DOCUMENT, MAX_YAML_LEN, MetadataDocument, Reader, join, no_text, parse,
    resource_metadata, write,
};
use crate::domain::Violation;
use crate::domain::catalog::{
    Application, Concurrency, Product, ProductFlow, SelectorKey, SelectorOperator, TriggerSelector,
};
use crate::domain::gitops::{ArgoCdApp, GitSource};

/// The `apiVersion` without `concurrency`.
pub const API_VERSION_V1BETA1: &str = "codefresh.io/v1beta1";
/// The `apiVersion` written by export.
pub const API_VERSION: &str = "codefresh.io/v1beta2";
/// The `kind` of the resource.
pub const KIND: &str = "Product";
/// The annotation holding the product's applications (see the module comment).
pub const APPLICATIONS_ANNOTATION: &str = "promoflow.io/applications";

const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const SPEC_FIELDS: &[&str] = &[
    "promotionTemplate",
    "promotionTemplateRef",
    "promotionFlows",
    "concurrency",
];
const FLOW_FIELDS: &[&str] = &["name", "gitTriggerSelectors"];
const SELECTOR_FIELDS: &[&str] = &["key", "operator", "values"];
const APPLICATION_FIELDS: &[&str] = &["environment", "name", "version", "source", "argocd"];
const SOURCE_FIELDS: &[&str] = &["repoURL", "targetRevision", "path"];
const ARGOCD_FIELDS: &[&str] = &["server", "name"];

/// Reads a Codefresh `Product` document, reporting every problem of shape
/// at once, each at its path. The caller validates the product against the
/// catalog like any other.
pub fn from_yaml(text: &str) -> Result<Product, Vec<Violation>> {
    let document = parse(text, MAX_YAML_LEN, 1)?;
    let mut r = Reader::default();
    let p = r.product_document(&document);
    r.v.finish().map(|()| p)
}

/// Writes `p` as a Codefresh `Product` document (v1beta2).
pub fn to_yaml(p: &Product) -> String {
    let mut annotations = std::collections::BTreeMap::new();
    if !p.description.is_empty() {
        annotations.insert(DESCRIPTION_ANNOTATION, p.description.clone());
    }
    if !p.applications.is_empty() {
        let apps: Vec<ApplicationDocument> = p
            .applications
            .iter()
            .map(ApplicationDocument::from)
            .collect();
        annotations.insert(APPLICATIONS_ANNOTATION, write(&apps));
    }
    write(&Document {
        api_version: API_VERSION,
        kind: KIND,
        metadata: MetadataDocument {
            name: &p.name,
            annotations,
        },
        spec: SpecDocument {
            promotion_template_ref: (!p.promotion_template_ref.is_empty())
                .then_some(p.promotion_template_ref.as_str()),
            promotion_template: p.promotion_template.as_ref().map(BodyDocument::from),
            promotion_flows: p
                .promotion_flows
                .iter()
                .map(|f| FlowDocument {
                    name: &f.flow,
                    git_trigger_selectors: f
                        .selectors
                        .iter()
                        .map(|s| SelectorDocument {
                            key: match s.key {
                                SelectorKey::CommitMessage => "commitMessage",
                                SelectorKey::GitRevision => "gitRevision",
                            },
                            operator: match s.operator {
                                SelectorOperator::In => "In",
                                SelectorOperator::NotIn => "NotIn",
                            },
                            values: &s.values,
                        })
                        .collect(),
                })
                .collect(),
            concurrency: match p.concurrency {
                Concurrency::Queue => "queue",
                Concurrency::Terminate => "terminate",
            },
        },
    })
}

impl Reader {
    fn product_document(&mut self, document: &Value) -> Product {
        let Some(root) = self.object(DOCUMENT, document, Some(ROOT_FIELDS)) else {
            return Product::default();
        };
        let api_version =
            self.api_version(root.get("apiVersion"), &[API_VERSION_V1BETA1, API_VERSION]);
        self.expect_literal("kind", root.get("kind"), KIND);
        let (name, mut annotations) = resource_metadata(
            self,
            root.get("metadata"),
            &[DESCRIPTION_ANNOTATION, APPLICATIONS_ANNOTATION],
        );
        let mut p = Product {
            name,
            description: annotations
                .remove(DESCRIPTION_ANNOTATION)
                .unwrap_or_default(),
            ..Product::default()
        };
        if let Some(apps) = annotations.remove(APPLICATIONS_ANNOTATION) {
            p.applications = self.applications(
                &join("metadata.annotations", APPLICATIONS_ANNOTATION),
                &apps,
            );
        }
        let Some(spec) = root.get("spec") else {
            self.v.push("spec", "is required");
            return p;
        };
        let Some(spec) = self.object("spec", spec, Some(SPEC_FIELDS)) else {
            return p;
        };
        p.promotion_template = self
            .optional_object(
                "spec.promotionTemplate",
                spec.get("promotionTemplate"),
                BODY_FIELDS,
            )
            .map(|body| self.template_body("spec.promotionTemplate", body));
        p.promotion_template_ref = self
            .string(
                "spec.promotionTemplateRef",
                spec.get("promotionTemplateRef"),
            )
            .unwrap_or_default();
        p.promotion_flows = self
            .list("spec.promotionFlows", spec.get("promotionFlows"))
            .iter()
            .enumerate()
            .map(|(i, f)| self.product_flow(&format!("spec.promotionFlows[{i}]"), f))
            .collect();
        p.concurrency = self.concurrency(spec, api_version);
        p
    }

    fn concurrency(&mut self, spec: &Map<String, Value>, api_version: Option<&str>) -> Concurrency {
        let path = "spec.concurrency";
        let Some(value) = self.string(path, spec.get("concurrency")) else {
            return Concurrency::default();
        };
        if api_version == Some(API_VERSION_V1BETA1) {
            self.v.push(
                path,
                format!("is a field of {API_VERSION}: change apiVersion to {API_VERSION}"),
            );
        }
        match value.as_str() {
            "queue" => Concurrency::Queue,
            "terminate" => Concurrency::Terminate,
            other => {
                self.v.push(
                    path,
                    format!("{other:?} is not a concurrency: use queue or terminate"),
                );
                Concurrency::default()
            }
        }
    }

    fn product_flow(&mut self, path: &str, value: &Value) -> ProductFlow {
        let Some(f) = self.object(path, value, Some(FLOW_FIELDS)) else {
            return ProductFlow {
                flow: String::new(),
                selectors: Vec::new(),
            };
        };
        let selectors_path = join(path, "gitTriggerSelectors");
        ProductFlow {
            flow: self.required_string(&join(path, "name"), f.get("name")),
            selectors: self
                .list(&selectors_path, f.get("gitTriggerSelectors"))
                .iter()
                .enumerate()
                .filter_map(|(i, s)| self.trigger_selector(&format!("{selectors_path}[{i}]"), s))
                .collect(),
        }
    }

    fn trigger_selector(&mut self, path: &str, value: &Value) -> Option<TriggerSelector> {
        let s = self.object(path, value, Some(SELECTOR_FIELDS))?;
        let key_path = join(path, "key");
        let key = match self.required_string(&key_path, s.get("key")).as_str() {
            "" => None,
            "commitMessage" => Some(SelectorKey::CommitMessage),
            "gitRevision" => Some(SelectorKey::GitRevision),
            other => {
                self.v.push(
                    key_path,
                    format!("{other:?} is not a selector key: use commitMessage or gitRevision"),
                );
                None
            }
        };
        let op_path = join(path, "operator");
        let operator = match self.required_string(&op_path, s.get("operator")).as_str() {
            "" => None,
            "In" => Some(SelectorOperator::In),
            "NotIn" => Some(SelectorOperator::NotIn),
            other => {
                self.v.push(
                    op_path,
                    format!("{other:?} is not an operator: use In or NotIn"),
                );
                None
            }
        };
        let values = self.strings(&join(path, "values"), s.get("values"));
        Some(TriggerSelector {
            key: key?,
            operator: operator?,
            values,
        })
    }

    /// The applications annotation at `path`: a YAML list held in a string.
    fn applications(&mut self, path: &str, text: &str) -> Vec<Application> {
        if text.trim().is_empty() {
            return Vec::new();
        }
        let list = match parse(text, MAX_YAML_LEN, 1) {
            Ok(list) => list,
            Err(problems) => {
                for x in problems {
                    self.v.push(path, x.description);
                }
                return Vec::new();
            }
        };
        let Value::Array(items) = &list else {
            self.v.push(
                path,
                "must hold a YAML list of applications ({environment, name, version, source})",
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| self.application(&format!("{path}[{i}]"), item))
            .collect()
    }

    fn application(&mut self, path: &str, value: &Value) -> Option<Application> {
        let a = self.object(path, value, Some(APPLICATION_FIELDS))?;
        let source_path = join(path, "source");
        let source = self
            .optional_object(&source_path, a.get("source"), SOURCE_FIELDS)
            .map(|s| GitSource {
                repo_url: self.required_string(&join(&source_path, "repoURL"), s.get("repoURL")),
                branch: self
                    .string(
                        &join(&source_path, "targetRevision"),
                        s.get("targetRevision"),
                    )
                    .unwrap_or_default(),
                // One spelling for the application's directory, as the API
                // stores it: no trailing '/'.
                path: self
                    .string(&join(&source_path, "path"), s.get("path"))
                    .map(|p| p.trim_end_matches('/').to_owned())
                    .unwrap_or_default(),
            });
        let argocd_path = join(path, "argocd");
        let argocd = self
            .optional_object(&argocd_path, a.get("argocd"), ARGOCD_FIELDS)
            .map(|x| ArgoCdApp {
                // One spelling for the server, as the API stores it.
                server: self
                    .required_string(&join(&argocd_path, "server"), x.get("server"))
                    .trim_end_matches('/')
                    .to_owned(),
                name: self.required_string(&join(&argocd_path, "name"), x.get("name")),
            });
        Some(Application {
            environment: self.required_string(&join(path, "environment"), a.get("environment")),
            name: self.required_string(&join(path, "name"), a.get("name")),
            version: self
                .string(&join(path, "version"), a.get("version"))
                .unwrap_or_default(),
            source,
            argocd,
            ..Application::default()
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
    #[serde(skip_serializing_if = "Option::is_none")]
    promotion_template_ref: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    promotion_template: Option<BodyDocument<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    promotion_flows: Vec<FlowDocument<'a>>,
    concurrency: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FlowDocument<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    git_trigger_selectors: Vec<SelectorDocument<'a>>,
}

#[derive(Serialize)]
struct SelectorDocument<'a> {
    key: &'static str,
    operator: &'static str,
    values: &'a [String],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ApplicationDocument<'a> {
    environment: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "no_text")]
    version: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<SourceDocument<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    argocd: Option<ArgoCdDocument<'a>>,
}

#[derive(Serialize)]
struct ArgoCdDocument<'a> {
    server: &'a str,
    name: &'a str,
}

impl<'a> From<&'a Application> for ApplicationDocument<'a> {
    fn from(a: &'a Application) -> Self {
        Self {
            environment: &a.environment,
            name: &a.name,
            version: &a.version,
            source: a.source.as_ref().map(|s| SourceDocument {
                repo_url: &s.repo_url,
                target_revision: &s.branch,
                path: &s.path,
            }),
            argocd: a.argocd.as_ref().map(|x| ArgoCdDocument {
                server: &x.server,
                name: &x.name,
            }),
        }
    }
}

#[derive(Serialize)]
struct SourceDocument<'a> {
    #[serde(rename = "repoURL")]
    repo_url: &'a str,
    #[serde(rename = "targetRevision", skip_serializing_if = "no_text")]
    target_revision: &'a str,
    #[serde(skip_serializing_if = "no_text")]
    path: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::catalog::validate_product;
    use crate::domain::flow::testing::fields;
    use crate::domain::promotion::normalize_json_path;

    /// The example of Codefresh's "Product YAML" page. It sets both a
    /// template reference and an inline template, which promoflow refuses
    /// at validation (one or the other).
    const DOCS_EXAMPLE: &str = r#"
apiVersion: codefresh.io/v1beta1
kind: Product
metadata:
  name: helm-guestbook #name of product
spec:
  promotionTemplateRef: gs-promotion-template  #reference to predefined promotion template; optional if using inline template
  promotionTemplate:  # custom inline promotion template; optional if using predefined promotion template
    versionSource:
      file: version.yaml
      jsonPath: $.appVersionInline
    promotion:
      Chart.yaml:
        jsonPaths:
          - $.appVersion
          - $.version
          - $.dependencies
      version.yaml:
        jsonPaths:
          - $.appVersionInline
      values.yaml:
        jsonPaths:
          - $..image
      requirements.yaml:
        jsonPaths:
          - "$.dependencies"
  promotionFlows:  # orchestration flow to promote product across environments; first flow that matches gitTriggerSelectors is selected
    - name: to-prod
      gitTriggerSelectors:
        - key: commitMessage
          operator: In
          values:
            - "*deploy*"
    - name: demo
      gitTriggerSelectors:
        - key: gitRevision
          operator: In
          values:
            - "hotfix"
"#;

    fn import(text: &str) -> Product {
        from_yaml(text).unwrap_or_else(|v| panic!("import failed: {v:#?}"))
    }

    /// Validation as the API runs it, with every environment existing.
    fn validate(p: &mut Product) -> Vec<String> {
        validate_product(p, &|_| true, &normalize_json_path)
            .0
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn the_documentation_example_round_trips() {
        let p = import(DOCS_EXAMPLE);
        assert_eq!(p.name, "helm-guestbook");
        assert_eq!(p.promotion_template_ref, "gs-promotion-template");
        let t = p.promotion_template.as_ref().expect("inline template");
        assert_eq!(t.promotion.len(), 4);
        assert_eq!(p.promotion_flows.len(), 2);
        assert_eq!(p.promotion_flows[1].flow, "demo");
        assert_eq!(
            p.promotion_flows[1].selectors,
            [TriggerSelector {
                key: SelectorKey::GitRevision,
                operator: SelectorOperator::In,
                values: vec!["hotfix".into()],
            }]
        );
        assert_eq!(p.concurrency, Concurrency::Queue);
        let exported = to_yaml(&p);
        assert!(
            exported.starts_with("apiVersion: codefresh.io/v1beta2\n"),
            "{exported}"
        );
        assert_eq!(import(&exported), p, "{exported}");
        assert_eq!(to_yaml(&import(&exported)), exported);

        // Both a reference and an inline template: one or the other.
        assert_eq!(validate(&mut p.clone()), ["product.promotion_template_ref"]);
        let mut inline_only = p.clone();
        inline_only.promotion_template_ref.clear();
        assert!(validate(&mut inline_only).is_empty());
        let mut ref_only = p;
        ref_only.promotion_template = None;
        assert!(validate(&mut ref_only).is_empty());
    }

    #[test]
    fn applications_and_concurrency_travel_losslessly() {
        let text = r#"apiVersion: codefresh.io/v1beta2
kind: Product
metadata:
  name: shop
  annotations:
    description: the shop
    promoflow.io/applications: |
      - environment: dev
        name: shop-dev
        version: "1.2.0"
        source:
          repoURL: https://git.example.com/team/apps.git
          targetRevision: main
          path: apps/dev
      - environment: prod
        name: shop-prod
        argocd:
          server: https://argocd.example.com/argo
          name: shop-prod.eu
spec:
  promotionTemplateRef: base-helm
  concurrency: terminate
"#;
        let mut p = import(text);
        assert_eq!(p.description, "the shop");
        assert_eq!(p.concurrency, Concurrency::Terminate);
        assert_eq!(p.applications.len(), 2);
        assert_eq!(
            p.applications[0].source,
            Some(GitSource {
                repo_url: "https://git.example.com/team/apps.git".into(),
                branch: "main".into(),
                path: "apps/dev".into(),
            })
        );
        assert_eq!(p.applications[0].version, "1.2.0");
        assert_eq!(p.applications[1].source, None);
        assert_eq!(p.applications[0].argocd, None);
        assert_eq!(
            p.applications[1].argocd,
            Some(ArgoCdApp {
                server: "https://argocd.example.com/argo".into(),
                name: "shop-prod.eu".into(),
            })
        );
        assert!(validate(&mut p).is_empty());
        let exported = to_yaml(&p);
        assert_eq!(exported, text, "the export is the document itself");
        assert_eq!(import(&exported), p);
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let text = r#"
apiVersion: codefresh.io/v1beta1
kind: Product
metadata:
  name: shop
  namespace: gitops
  annotations:
    team: payments
    promoflow.io/applications: |
      - environment: dev
        nme: shop-dev
        source: {repoURL: /srv/apps.git, branch: main}
spec:
  concurrency: queue
  promotionFlows:
    - name: to-prod
      selectors: []
      gitTriggerSelectors:
        - {key: author, operator: In, values: [me]}
        - {key: gitRevision, operator: Like, values: [7]}
  promotionTemplate:
    versionSource: {file: Chart.yaml, jsonPath: $.version}
    priority: 1
"#;
        let violations = from_yaml(text).expect_err("import should fail");
        assert_eq!(
            fields(&violations),
            [
                "metadata.namespace",
                "metadata.annotations.team",
                "metadata.annotations.promoflow.io/applications[0].nme",
                "metadata.annotations.promoflow.io/applications[0].source.branch",
                "metadata.annotations.promoflow.io/applications[0].name",
                "spec.promotionTemplate.priority",
                "spec.promotionFlows[0].selectors",
                "spec.promotionFlows[0].gitTriggerSelectors[0].key",
                "spec.promotionFlows[0].gitTriggerSelectors[1].operator",
                "spec.promotionFlows[0].gitTriggerSelectors[1].values[0]",
                "spec.concurrency",
            ]
        );
        let concurrency = violations.last().expect("concurrency");
        assert!(
            concurrency.description.contains("codefresh.io/v1beta2"),
            "{concurrency:?}"
        );
        let wrong =
            from_yaml("apiVersion: codefresh.io/v1\nkind: Flow\nmetadata: {name: x}\nspec: {}\n")
                .expect_err("wrong version and kind");
        assert_eq!(fields(&wrong), ["apiVersion", "kind"]);
        assert_eq!(
            wrong[0].description,
            "must be codefresh.io/v1beta1 or codefresh.io/v1beta2, got \"codefresh.io/v1\""
        );
    }
}
