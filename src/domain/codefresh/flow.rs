//! Import and export of the Codefresh `PromotionFlow` custom resource, the
//! YAML that Codefresh users keep in Git (README, "Codefresh YAML").
//!
//! The format follows the CRD Codefresh ships with its GitOps runtime
//! (`promotionflows.codefresh.io`, version `v1beta1`) and the examples in the
//! Codefresh documentation:
//!
//! ```yaml
//! apiVersion: codefresh.io/v1beta1
//! kind: PromotionFlow
//! metadata:
//!   name: multi-env-sequential-promotion
//!   annotations:
//!     description: Sequential promotion flow   # <-> FlowSpec::description
//!     version: "1.0"                           # kept in FlowSpec::annotations
//! spec:
//!   triggerEnvironment: dev
//!   postTrigger: smoke-tests                   # <-> FlowSpec::trigger_workflow
//!   steps:
//!     - environment: qa
//!       dependsOn:
//!         - dev
//!       policy:
//!         action: commit                       # commit | pr | none
//!         preAction: smoke-tests
//!         postAction: notify
//!       hooks:
//!         onStart: notify
//!   hooks:
//!     onFail: notify
//!   promotionTimeoutLimit: 5                   # minutes
//! ```
//!
//! Decisions where neither promoflow's contract nor Codefresh settle the question:
//!
//! - **Trigger workflow.** The CRD's only field for it is `postTrigger`
//!   ("the command to run after 1st environment promotion"), which Codefresh
//!   marks deprecated in favour of the release `onStart` hook. promoflow keeps
//!   the two apart (the trigger workflow runs in the trigger environment, the
//!   hook for the release), so import maps `postTrigger` to the trigger
//!   workflow and export writes it back as `postTrigger`: the one spelling
//!   Codefresh itself reads. There is no `triggerWorkflow` field in the CRD,
//!   so it is refused like any unknown field.
//! - **Hooks** are workflow names (plain strings in the CRD), mapped one to one.
//! - **Timeout.** `promotionTimeoutLimit` is a whole number of minutes (the
//!   CRD says integer, the Codefresh UI minutes). Import stores `minutes * 60`
//!   seconds; export writes seconds rounded *up* to whole minutes, because a
//!   timeout that fires early is worse than one that fires up to 59 s late.
//!   Flows created through the API with a timeout that is not a whole number
//!   of minutes are the only ones an export does not reproduce exactly.
//! - **Policy.** A step without `policy` (or without `policy.action`) keeps
//!   the field unset, and export writes it back unset: in Codefresh an unset
//!   field is inherited from the account's promotion policies, so writing
//!   `action: none` would change its meaning. An unset action runs as `none`
//!   until promotion policies supply one. Action values are exactly `commit`,
//!   `pr` and `none`; a step that sets nothing exports without `policy`.
//! - **Description** is the `description` annotation; an empty description is
//!   not exported. All other annotations must be strings and are kept.
//! - **Unknown fields are errors everywhere**, including Kubernetes
//!   bookkeeping such as `metadata.namespace`, `metadata.labels` and `status`:
//!   promoflow never drops input silently, and has nowhere
//!   to keep them.
//! - **Types are strict**, as the Kubernetes API server is for this CRD: a
//!   name that YAML reads as a number or boolean (`123`, `true`) must be
//!   quoted. YAML 1.1 spellings such as `yes`, `no`, `on` and `off` are read
//!   as strings, numbers with leading zeros too. Export quotes every string a
//!   YAML reader could take for something else.
//! - Import checks the document's shape only; the caller validates the
//!   resulting [`FlowSpec`] with [`super::flow::validate`] like any other flow.
//!   The document's size and parsing budget follow the step limit (see
//!   [`from_yaml_with_limits`]), so any flow within it can be imported.
//!
//! Parsing goes through an untyped tree instead of `#[serde(deny_unknown_fields)]`
//! structs so that every unknown field and type error is reported at once,
//! each with its path (`spec.steps[1].polcy`), rather than only the first.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::{DOCUMENT, MAX_YAML_LEN, Reader, join, parse, type_of, write};
use crate::domain::Violation;
use crate::domain::flow::{
    Action, DESCRIPTION_ANNOTATION, FlowSpec, Hooks, Limits, MAX_STEPS, Policy, Step,
};

/// The only `apiVersion` accepted and produced.
pub const API_VERSION: &str = "codefresh.io/v1beta1";
/// The only `kind` accepted and produced.
pub const KIND: &str = "PromotionFlow";
const ROOT_FIELDS: &[&str] = &["apiVersion", "kind", "metadata", "spec"];
const METADATA_FIELDS: &[&str] = &["name", "annotations"];
const SPEC_FIELDS: &[&str] = &[
    "triggerEnvironment",
    "postTrigger",
    "steps",
    "hooks",
    "promotionTimeoutLimit",
];
const STEP_FIELDS: &[&str] = &["environment", "dependsOn", "policy", "hooks"];
const POLICY_FIELDS: &[&str] = &["action", "preAction", "postAction"];
const HOOK_FIELDS: &[&str] = &["onStart", "onSuccess", "onFail"];

/// Reads a Codefresh `PromotionFlow` document. Reports every unknown field,
/// missing field and wrong type at once, each at its path in the document.
/// The document may be as large as a flow within the default API limits
/// ([`Limits::API`]) needs.
pub fn from_yaml(text: &str) -> Result<FlowSpec, Vec<Violation>> {
    from_yaml_with_limits(text, Limits::API)
}

/// [`from_yaml`] for flows within `limits`: the largest document and the
/// parser's budget grow with `limits.max_steps` (never below those of the
/// default limits). The steps themselves are counted by validation.
pub fn from_yaml_with_limits(text: &str, limits: Limits) -> Result<FlowSpec, Vec<Violation>> {
    let document = parse(text, max_yaml_len(limits), scale(limits))?;
    let mut r = Reader::default();
    let spec = r.document(&document);
    r.v.finish().map(|()| spec)
}

/// Writes `spec` as a Codefresh `PromotionFlow` document. Deterministic:
/// the same spec always gives the same text.
pub fn to_yaml(spec: &FlowSpec) -> String {
    write(&Document::from(spec))
}

/// `limits.max_steps` in multiples of [`MAX_STEPS`], rounded up and at
/// least 1: the factor applied to the document size and parser budget.
fn scale(limits: Limits) -> usize {
    limits.max_steps.div_ceil(MAX_STEPS).max(1)
}

/// Largest document accepted for flows within `limits`, in bytes:
/// [`MAX_YAML_LEN`] for the default limits and smaller ones.
pub fn max_yaml_len(limits: Limits) -> usize {
    MAX_YAML_LEN.saturating_mul(scale(limits))
}

impl Reader {
    fn document(&mut self, document: &Value) -> FlowSpec {
        let Some(root) = self.object(DOCUMENT, document, Some(ROOT_FIELDS)) else {
            return FlowSpec::default();
        };
        self.expect_literal("apiVersion", root.get("apiVersion"), API_VERSION);
        self.expect_literal("kind", root.get("kind"), KIND);

        let mut spec = FlowSpec::default();
        match root.get("metadata") {
            None => self.v.push("metadata", "is required"),
            Some(metadata) => self.metadata(metadata, &mut spec),
        }
        match root.get("spec") {
            None => self.v.push("spec", "is required"),
            Some(body) => self.spec(body, &mut spec),
        }
        spec
    }

    fn metadata(&mut self, value: &Value, spec: &mut FlowSpec) {
        let Some(metadata) = self.object("metadata", value, Some(METADATA_FIELDS)) else {
            return;
        };
        spec.name = self.required_string("metadata.name", metadata.get("name"));
        let Some(annotations) = metadata.get("annotations").filter(|a| !a.is_null()) else {
            return;
        };
        let Some(annotations) = self.object("metadata.annotations", annotations, None) else {
            return;
        };
        for (key, value) in annotations {
            let path = join("metadata.annotations", key);
            let Some(value) = self.string(&path, Some(value)) else {
                continue;
            };
            if key == DESCRIPTION_ANNOTATION {
                spec.description = value;
            } else {
                spec.annotations.insert(key.clone(), value);
            }
        }
    }

    fn spec(&mut self, value: &Value, spec: &mut FlowSpec) {
        let Some(body) = self.object("spec", value, Some(SPEC_FIELDS)) else {
            return;
        };
        spec.trigger_environment =
            self.required_string("spec.triggerEnvironment", body.get("triggerEnvironment"));
        spec.trigger_workflow = self.string("spec.postTrigger", body.get("postTrigger"));
        spec.promotion_timeout_secs = self.minutes(
            "spec.promotionTimeoutLimit",
            body.get("promotionTimeoutLimit"),
        );
        spec.hooks = self.hooks("spec.hooks", body.get("hooks"));
        spec.steps = self
            .list("spec.steps", body.get("steps"))
            .iter()
            .enumerate()
            .map(|(i, step)| self.step(&format!("spec.steps[{i}]"), step))
            .collect();
    }

    fn step(&mut self, path: &str, value: &Value) -> Step {
        let Some(step) = self.object(path, value, Some(STEP_FIELDS)) else {
            return Step::default();
        };
        let deps_path = join(path, "dependsOn");
        Step {
            environment: self.required_string(&join(path, "environment"), step.get("environment")),
            depends_on: self
                .list(&deps_path, step.get("dependsOn"))
                .iter()
                .enumerate()
                .filter_map(|(k, dep)| self.string(&format!("{deps_path}[{k}]"), Some(dep)))
                .collect(),
            policy: self.policy(&join(path, "policy"), step.get("policy")),
            hooks: self.hooks(&join(path, "hooks"), step.get("hooks")),
        }
    }

    fn policy(&mut self, path: &str, value: Option<&Value>) -> Policy {
        let Some(policy) = self.optional_object(path, value, POLICY_FIELDS) else {
            return Policy::default();
        };
        let action_path = join(path, "action");
        let action = match self.string(&action_path, policy.get("action")).as_deref() {
            None => None,
            Some("none") => Some(Action::None),
            Some("commit") => Some(Action::Commit),
            Some("pr") => Some(Action::PullRequest),
            Some(other) => {
                self.v.push(
                    action_path,
                    format!("{other:?} is not an action: use commit, pr or none"),
                );
                None
            }
        };
        Policy {
            pre_action: self.string(&join(path, "preAction"), policy.get("preAction")),
            action,
            post_action: self.string(&join(path, "postAction"), policy.get("postAction")),
        }
    }

    fn hooks(&mut self, path: &str, value: Option<&Value>) -> Hooks {
        let Some(hooks) = self.optional_object(path, value, HOOK_FIELDS) else {
            return Hooks::default();
        };
        let mut hook = |key: &str| self.string(&join(path, key), hooks.get(key));
        Hooks {
            on_start: hook("onStart"),
            on_success: hook("onSuccess"),
            on_fail: hook("onFail"),
        }
    }

    /// A whole, non-negative number of minutes, returned in seconds.
    fn minutes(&mut self, path: &str, value: Option<&Value>) -> Option<u64> {
        match value {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => match n.as_u64().map(|m| m.checked_mul(60)) {
                Some(Some(secs)) => Some(secs),
                Some(None) => {
                    self.v.push(path, "is too large");
                    None
                }
                None => {
                    self.v.push(path, "must be a whole number of minutes");
                    None
                }
            },
            Some(other) => {
                self.v.push(
                    path,
                    format!("must be a whole number of minutes, got {}", type_of(other)),
                );
                None
            }
        }
    }
}

// The document as written by `to_yaml`. Field order follows the Codefresh
// examples; optional parts are left out when unset so that exports stay as
// small as what users write by hand.

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata<'a>,
    spec: Spec<'a>,
}

#[derive(Serialize)]
struct Metadata<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Spec<'a> {
    trigger_environment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_trigger: Option<&'a str>,
    steps: Vec<StepDocument<'a>>,
    #[serde(skip_serializing_if = "HooksDocument::is_empty")]
    hooks: HooksDocument<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    promotion_timeout_limit: Option<u64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StepDocument<'a> {
    environment: &'a str,
    depends_on: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    policy: Option<PolicyDocument<'a>>,
    #[serde(skip_serializing_if = "HooksDocument::is_empty")]
    hooks: HooksDocument<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PolicyDocument<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pre_action: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post_action: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HooksDocument<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    on_start: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_success: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    on_fail: Option<&'a str>,
}

impl HooksDocument<'_> {
    fn is_empty(&self) -> bool {
        self.on_start.is_none() && self.on_success.is_none() && self.on_fail.is_none()
    }
}

impl<'a> From<&'a Hooks> for HooksDocument<'a> {
    fn from(hooks: &'a Hooks) -> Self {
        Self {
            on_start: hooks.on_start.as_deref(),
            on_success: hooks.on_success.as_deref(),
            on_fail: hooks.on_fail.as_deref(),
        }
    }
}

impl<'a> From<&'a FlowSpec> for Document<'a> {
    fn from(spec: &'a FlowSpec) -> Self {
        let mut annotations: BTreeMap<&str, &str> = spec
            .annotations
            .iter()
            .filter(|(key, _)| key.as_str() != DESCRIPTION_ANNOTATION)
            .map(|(key, value)| (key.as_str(), value.as_str()))
            .collect();
        if !spec.description.is_empty() {
            annotations.insert(DESCRIPTION_ANNOTATION, &spec.description);
        }
        let steps = spec
            .steps
            .iter()
            .map(|step| StepDocument {
                environment: &step.environment,
                depends_on: &step.depends_on,
                policy: (!step.policy.is_empty()).then(|| PolicyDocument {
                    action: step.policy.action.map(|action| match action {
                        Action::None => "none",
                        Action::Commit => "commit",
                        Action::PullRequest => "pr",
                    }),
                    pre_action: step.policy.pre_action.as_deref(),
                    post_action: step.policy.post_action.as_deref(),
                }),
                hooks: HooksDocument::from(&step.hooks),
            })
            .collect();
        Document {
            api_version: API_VERSION,
            kind: KIND,
            metadata: Metadata {
                name: &spec.name,
                annotations,
            },
            spec: Spec {
                trigger_environment: &spec.trigger_environment,
                post_trigger: spec.trigger_workflow.as_deref(),
                steps,
                hooks: HooksDocument::from(&spec.hooks),
                promotion_timeout_limit: spec.promotion_timeout_secs.map(|secs| secs.div_ceil(60)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flow::testing::{dag, fields, flow};
    use crate::domain::flow::{KnownNames, validate};
    use proptest::prelude::*;

    /// The dependency quick start of the Codefresh documentation.
    const QUICK_START: &str = r#"
apiVersion: codefresh.io/v1beta1
kind: PromotionFlow
metadata:
  name: multi-env-sequential-promotion
  annotations:
    description: Sequential promotion flow with environment dependencies
    version: "3.0"
spec:
  triggerEnvironment: dev
  steps:
    - environment: qa
      dependsOn:
        - dev
      policy:
        action: commit
        preAction: pre-action
        postAction: post-action
    - environment: prod
      dependsOn:
        - qa
        - staging
      policy:
        action: commit
        preAction: pre-action
        postAction: post-action
    - environment: staging
      dependsOn:
        - dev
      policy:
        action: commit
  promotionTimeoutLimit: 5
"#;

    /// The hooks example of the Codefresh documentation.
    const HOOKS: &str = "
apiVersion: codefresh.io/v1beta1
kind: PromotionFlow
metadata:
  name: global-parallel-flow
spec:
  triggerEnvironment: dev
  steps:
    - environment: staging
      dependsOn:
        - dev
      policy:
        action: commit
      hooks:
        onStart: slack-start-hook
        onSuccess: simple-fail
        onFail: jira-open-bug
    - environment: production
      dependsOn:
        - staging
      policy:
        action: commit
  hooks:
    onStart: slack-start-hook
    onSuccess: success-hook-test
    onFail: slack-fail-hook
";

    fn import(text: &str) -> FlowSpec {
        from_yaml(text).unwrap_or_else(|v| panic!("import failed: {v:#?}"))
    }

    fn import_errors(text: &str) -> Vec<Violation> {
        from_yaml(text).expect_err("import should fail")
    }

    /// A minimal document with `spec_body` (indented by four spaces) as its spec.
    fn document(spec_body: &str) -> String {
        format!(
            "apiVersion: codefresh.io/v1beta1\nkind: PromotionFlow\nmetadata:\n  name: demo\nspec:\n{spec_body}"
        )
    }

    #[test]
    fn imports_the_codefresh_quick_start() {
        let spec = import(QUICK_START);
        assert_eq!(spec.name, "multi-env-sequential-promotion");
        assert_eq!(
            spec.description,
            "Sequential promotion flow with environment dependencies"
        );
        assert_eq!(
            spec.annotations,
            BTreeMap::from([("version".to_owned(), "3.0".to_owned())])
        );
        assert_eq!(spec.trigger_environment, "dev");
        assert_eq!(spec.promotion_timeout_secs, Some(300));
        let prod = spec.step("prod").expect("prod step");
        assert_eq!(prod.depends_on, ["qa", "staging"]);
        assert_eq!(
            prod.policy,
            Policy {
                pre_action: Some("pre-action".to_owned()),
                action: Some(Action::Commit),
                post_action: Some("post-action".to_owned()),
            }
        );
        let catalog = KnownNames::new(
            ["dev", "qa", "staging", "prod"],
            ["pre-action", "post-action"],
        );
        let plan = validate(&spec, &catalog).expect("valid");
        assert_eq!(plan.waves.len(), 3);
    }

    #[test]
    fn imports_hooks() {
        let spec = import(HOOKS);
        assert_eq!(spec.hooks.on_fail.as_deref(), Some("slack-fail-hook"));
        let staging = spec.step("staging").expect("staging step");
        assert_eq!(staging.hooks.on_start.as_deref(), Some("slack-start-hook"));
        assert_eq!(staging.hooks.on_fail.as_deref(), Some("jira-open-bug"));
        assert!(spec.step("production").is_some_and(|s| s.hooks.is_empty()));
    }

    #[test]
    fn documentation_examples_round_trip() {
        for text in [QUICK_START, HOOKS] {
            let spec = import(text);
            let exported = to_yaml(&spec);
            assert_eq!(import(&exported), spec, "{exported}");
            assert_eq!(to_yaml(&import(&exported)), exported);
        }
    }

    #[test]
    fn export_looks_like_codefresh() {
        let mut spec = flow("dev", &[("qa", &["dev"]), ("prod", &["qa"])]);
        spec.description = "to prod".to_owned();
        spec.annotations
            .insert("version".to_owned(), "1.0".to_owned());
        spec.trigger_workflow = Some("smoke".to_owned());
        spec.promotion_timeout_secs = Some(600);
        spec.hooks.on_fail = Some("notify".to_owned());
        spec.steps[1].policy.action = Some(Action::PullRequest);
        spec.steps[1].policy.pre_action = Some("approve".to_owned());
        spec.steps[1].hooks.on_success = Some("notify".to_owned());
        let expected = r#"apiVersion: codefresh.io/v1beta1
kind: PromotionFlow
metadata:
  name: demo
  annotations:
    description: to prod
    version: "1.0"
spec:
  triggerEnvironment: dev
  postTrigger: smoke
  steps:
    - environment: qa
      dependsOn:
        - dev
    - environment: prod
      dependsOn:
        - qa
      policy:
        action: pr
        preAction: approve
      hooks:
        onSuccess: notify
  hooks:
    onFail: notify
  promotionTimeoutLimit: 10
"#;
        assert_eq!(to_yaml(&spec), expected);
        assert_eq!(import(expected), spec);
    }

    /// Unset is not `none`: a step without a policy, or with a policy that
    /// leaves the action out, comes back exactly so; an explicit `none` stays.
    #[test]
    fn unset_policy_fields_stay_unset() {
        let text = document(
            "  triggerEnvironment: dev\n  steps:\n    - environment: qa\n      dependsOn: [dev]\n    - environment: staging\n      dependsOn: [qa]\n      policy: {preAction: gate}\n    - environment: prod\n      dependsOn: [staging]\n      policy: {action: none}\n",
        );
        let spec = import(&text);
        assert_eq!(spec.steps[0].policy, Policy::default());
        assert_eq!(spec.steps[1].policy.action, None);
        assert_eq!(spec.steps[2].policy.action, Some(Action::None));
        let yaml = to_yaml(&spec);
        assert!(
            yaml.contains(
                "    - environment: qa\n      dependsOn:\n        - dev\n    - environment: staging"
            ),
            "{yaml}"
        );
        assert!(
            yaml.contains("      policy:\n        preAction: gate\n"),
            "{yaml}"
        );
        assert!(
            yaml.contains("      policy:\n        action: none\n"),
            "{yaml}"
        );
        assert_eq!(import(&yaml), spec);
    }

    #[test]
    fn timeouts_round_up_to_whole_minutes() {
        let mut spec = flow("dev", &[("qa", &["dev"])]);
        for (secs, minutes) in [(1, 1), (60, 1), (61, 2), (3600, 60)] {
            spec.promotion_timeout_secs = Some(secs);
            assert_eq!(
                import(&to_yaml(&spec)).promotion_timeout_secs,
                Some(minutes * 60)
            );
        }
    }

    #[test]
    fn post_trigger_is_the_trigger_workflow() {
        let spec = import(&document(
            "  triggerEnvironment: dev\n  postTrigger: smoke\n",
        ));
        assert_eq!(spec.trigger_workflow.as_deref(), Some("smoke"));
    }

    #[test]
    fn unknown_fields_are_named_with_their_path() {
        let text = "
apiVersion: codefresh.io/v1beta1
kind: PromotionFlow
metadata:
  name: demo
  namespace: gitops
spec:
  triggerEnvironment: dev
  triggerWorkflow: smoke
  steps:
    - environment: qa
      dependsOn: [dev]
    - environment: prod
      dependsOn: [qa]
      polcy:
        action: commit
      hooks:
        onStrat: x
status: {}
";
        let violations = import_errors(text);
        assert_eq!(
            fields(&violations),
            [
                "status",
                "metadata.namespace",
                "spec.triggerWorkflow",
                "spec.steps[1].polcy",
                "spec.steps[1].hooks.onStrat",
            ]
        );
        assert!(
            violations[3]
                .description
                .starts_with("unknown field `polcy`, expected one of `environment`"),
            "{}",
            violations[3].description
        );
    }

    #[test]
    fn wrong_api_version_and_kind() {
        let text = "apiVersion: codefresh.io/v1\nkind: Product\nmetadata: {name: x}\nspec: {triggerEnvironment: dev}\n";
        let violations = import_errors(text);
        assert_eq!(fields(&violations), ["apiVersion", "kind"]);
        assert_eq!(
            violations[0].description,
            "must be codefresh.io/v1beta1, got \"codefresh.io/v1\""
        );
    }

    #[test]
    fn missing_and_mistyped_fields() {
        let text = "kind: PromotionFlow\nmetadata: {annotations: {version: 1.0}}\nspec:\n  promotionTimeoutLimit: -5\n  hooks: [x]\n  steps:\n    - dependsOn: dev\n    - environment: 123\n      policy: {action: merge}\n    - 7\n";
        let violations = import_errors(text);
        let got: Vec<(&str, &str)> = violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("apiVersion", "is required"),
                ("metadata.name", "is required"),
                (
                    "metadata.annotations.version",
                    "must be a string, got a number: put it in quotes"
                ),
                ("spec.triggerEnvironment", "is required"),
                (
                    "spec.promotionTimeoutLimit",
                    "must be a whole number of minutes"
                ),
                ("spec.hooks", "must be a mapping, got a list"),
                ("spec.steps[0].environment", "is required"),
                ("spec.steps[0].dependsOn", "must be a list, got a string"),
                (
                    "spec.steps[1].environment",
                    "must be a string, got a number: put it in quotes"
                ),
                (
                    "spec.steps[1].policy.action",
                    "\"merge\" is not an action: use commit, pr or none"
                ),
                ("spec.steps[2]", "must be a mapping, got a number"),
            ]
        );
    }

    #[test]
    fn yaml_1_1_words_are_names() {
        let spec = import(&document(
            "  triggerEnvironment: no\n  steps:\n    - environment: on\n      dependsOn: [no]\n    - environment: 007\n      dependsOn: [on]\n",
        ));
        assert_eq!(spec.trigger_environment, "no");
        assert_eq!(spec.steps[0].environment, "on");
        assert_eq!(spec.steps[1].environment, "007");
        assert_eq!(import(&to_yaml(&spec)), spec);
    }

    #[test]
    fn bad_documents() {
        for (text, needle) in [
            ("", "is empty"),
            ("  \n", "is empty"),
            ("a: [", "not a valid YAML document"),
            ("- 1\n- 2\n", "must be a mapping, got a list"),
            ("a: 1\na: 2\n", "not a valid YAML document"),
            ("---\na: 1\n---\nb: 2\n", "not a valid YAML document"),
        ] {
            let violations = import_errors(text);
            assert_eq!(fields(&violations), [DOCUMENT], "{text:?}");
            assert!(
                violations[0].description.contains(needle),
                "{text:?}: {violations:?}"
            );
        }
        let huge = "#".repeat(MAX_YAML_LEN + 1);
        assert!(import_errors(&huge)[0].description.starts_with("at most"));
    }

    #[test]
    fn larger_step_limits_import_larger_documents() {
        // A chain of 10,000 steps with a policy each: beyond the default
        // document size and budget, within those of a 10,000-step limit.
        let names: Vec<String> = std::iter::once("dev".to_owned())
            .chain((0..10_000).map(|i| format!("environment-{i:05}")))
            .collect();
        let policy = Policy {
            pre_action: Some("smoke-tests".to_owned()),
            action: Some(Action::Commit),
            post_action: None,
        };
        let spec = FlowSpec {
            name: "long".to_owned(),
            trigger_environment: names[0].clone(),
            steps: names
                .windows(2)
                .map(|w| Step {
                    environment: w[1].clone(),
                    depends_on: vec![w[0].clone()],
                    policy: policy.clone(),
                    hooks: Hooks::default(),
                })
                .collect(),
            ..FlowSpec::default()
        };
        let text = to_yaml(&spec);
        assert_eq!(fields(&import_errors(&text)), [DOCUMENT]);
        let limits = Limits::with_max_steps(10_000);
        let imported = from_yaml_with_limits(&text, limits)
            .unwrap_or_else(|v| panic!("import failed: {v:#?}"));
        assert_eq!(imported, spec);

        // The default limits and smaller ones keep the default size.
        assert_eq!(max_yaml_len(Limits::API), MAX_YAML_LEN);
        assert_eq!(max_yaml_len(Limits::with_max_steps(10)), MAX_YAML_LEN);
        assert_eq!(max_yaml_len(Limits::with_max_steps(1001)), 2 * MAX_YAML_LEN);
        let huge = "#".repeat(max_yaml_len(limits) + 1);
        let violations = from_yaml_with_limits(&huge, limits).expect_err("too large");
        assert!(
            violations[0]
                .description
                .starts_with(&format!("at most {} bytes", 10 * MAX_YAML_LEN)),
            "{violations:?}"
        );
    }

    #[test]
    fn alias_bombs_are_refused() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..12 {
            let p = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        let violations = import_errors(&text);
        assert_eq!(fields(&violations), [DOCUMENT]);
    }

    /// Names a YAML reader could take for something else, next to plain ones.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z][a-z0-9-]{0,10}[a-z0-9]",
            prop::sample::select(vec![
                "true", "false", "null", "no", "yes", "on", "off", "y", "n", "123", "007", "0x1f",
                "0o17", "1e3", "1-0", "nan", "inf",
            ])
            .prop_map(str::to_owned),
        ]
    }

    fn workflow() -> impl Strategy<Value = Option<String>> {
        prop::option::of(name())
    }

    fn hooks() -> impl Strategy<Value = Hooks> {
        (workflow(), workflow(), workflow()).prop_map(|(on_start, on_success, on_fail)| Hooks {
            on_start,
            on_success,
            on_fail,
        })
    }

    fn policy() -> impl Strategy<Value = Policy> {
        (
            workflow(),
            prop::option::of(prop::sample::select(Action::ALL.to_vec())),
            workflow(),
        )
            .prop_map(|(pre_action, action, post_action)| Policy {
                pre_action,
                action,
                post_action,
            })
    }

    /// Random flows with every field set or not, and descriptions and
    /// annotation values made of any characters.
    fn any_spec() -> impl Strategy<Value = FlowSpec> {
        (
            dag(12),
            name(),
            any::<String>(),
            workflow(),
            prop::option::of(1u64..100_000),
            hooks(),
            prop::collection::btree_map("[a-z][a-z0-9./_-]{0,15}", any::<String>(), 0..4),
            prop::collection::vec((policy(), hooks()), 12),
        )
            .prop_map(
                |(
                    mut spec,
                    name,
                    description,
                    trigger_workflow,
                    minutes,
                    hooks,
                    annotations,
                    steps,
                )| {
                    spec.name = name;
                    spec.description = description;
                    spec.trigger_workflow = trigger_workflow;
                    spec.promotion_timeout_secs = minutes.map(|m| m * 60);
                    spec.hooks = hooks;
                    spec.annotations = annotations;
                    spec.annotations.remove(DESCRIPTION_ANNOTATION);
                    for (step, (policy, hooks)) in spec.steps.iter_mut().zip(steps) {
                        step.policy = policy;
                        step.hooks = hooks;
                    }
                    spec
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Export then import gives back the same flow, and exporting again
        /// gives the same text: import -> export -> import is lossless.
        #[test]
        fn export_import_round_trip(spec in any_spec()) {
            let exported = to_yaml(&spec);
            let imported = from_yaml(&exported);
            prop_assert_eq!(imported.as_ref(), Ok(&spec), "{}", exported);
            prop_assert_eq!(to_yaml(&spec), exported);
        }

        /// Import never panics, whatever the text.
        #[test]
        fn import_never_panics(text in any::<String>()) {
            let _ = from_yaml(&text);
        }
    }
}
