//! Promotion flows: the graph of environments a version is promoted through,
//! its validation, and the execution plan derived from it (the rules are
//! listed in `proto/promoflow/v1/flow.proto` and the README, "The model").
//!
//! A flow has one *trigger environment*, where new versions appear, and a list
//! of *steps*, each naming a target environment and the environments it
//! `depends_on`. The nodes of the graph are the trigger environment plus every
//! step's environment; an edge goes from each dependency to its step, so edges
//! point in the direction versions travel.
//!
//! [`validate`] checks every rule at once and, for a valid flow, returns the
//! [`Plan`]: the environments grouped in waves by their longest distance from
//! the trigger environment. The graph work (cycle detection, topological order)
//! uses petgraph and is linear in the size of the flow; the limits
//! ([`MAX_STEPS`], [`MAX_DEPENDS_ON`]) are checked before any graph is built,
//! so an oversized request is refused in time proportional to reading it.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Bfs;
use serde::{Deserialize, Serialize};

use super::status::string_enum;
use super::{Violation, Violations, check_name, check_text_max, is_dns_label};

/// Most steps a flow may have through the API by default; a server may
/// configure another limit (`--max-flow-steps`, passed in as [`Limits`]).
/// Larger graphs validate fine (see [`validate_with_limits`]); the limit
/// bounds request and plan sizes.
pub const MAX_STEPS: usize = 1000;
/// Most `depends_on` entries one step may have.
pub const MAX_DEPENDS_ON: usize = 64;
/// Longest description, in bytes.
pub const MAX_DESCRIPTION_LEN: usize = 4096;
/// Most annotations a flow may carry.
pub const MAX_ANNOTATIONS: usize = 64;
/// Longest annotation key, in bytes (a Kubernetes qualified name with prefix).
pub const MAX_ANNOTATION_KEY_LEN: usize = 253;
/// Longest annotation value, in bytes.
pub const MAX_ANNOTATION_VALUE_LEN: usize = 4096;
/// Longest promotion timeout: one year. Bounded so that adding it to a point
/// in time can never overflow a timestamp type downstream.
pub const MAX_PROMOTION_TIMEOUT_SECS: u64 = 365 * 24 * 60 * 60;
/// The annotation key that carries the description in the Codefresh format;
/// reserved so that the description has exactly one home in a [`FlowSpec`].
pub const DESCRIPTION_ANNOTATION: &str = "description";

/// The definition of a promotion flow, as stored (JSON) in every flow version.
///
/// Fields default when absent so that versions stored before a field existed
/// still load.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct FlowSpec {
    pub name: String,
    pub description: String,
    /// Where new versions appear. Its node succeeds at the start of a release
    /// (after the trigger workflow, if any) and takes no promotion action.
    pub trigger_environment: String,
    /// Workflow run in the trigger environment when a release starts.
    pub trigger_workflow: Option<String>,
    /// A release still running after this long is terminated with reason "timeout".
    pub promotion_timeout_secs: Option<u64>,
    /// Release-level hooks.
    pub hooks: Hooks,
    pub steps: Vec<Step>,
    /// Free-form metadata, kept so that imported Codefresh annotations are
    /// exported again. The key `description` is reserved (see [`FlowSpec::description`]).
    pub annotations: BTreeMap<String, String>,
}

/// One target environment of a flow and what it waits for.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Step {
    pub environment: String,
    /// The environments that must succeed before this one starts: the trigger
    /// environment or other steps.
    pub depends_on: Vec<String>,
    pub policy: Policy,
    pub hooks: Hooks,
}

/// How a version is promoted into a step's environment: optional workflows
/// around the action.
///
/// Every field may be unset, and unset is not the same as `NONE`: in the
/// Codefresh model an unset field is inherited from the matching promotion
/// policies, so a flow keeps "not set" as written and exports it that way.
/// Until policies are resolved, an unset action runs as [`Action::None`]
/// (see [`Policy::effective_action`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Policy {
    pub pre_action: Option<String>,
    pub action: Option<Action>,
    pub post_action: Option<String>,
}

impl Policy {
    /// The action a promotion performs: the one set, or `NONE`.
    pub fn effective_action(&self) -> Action {
        self.action.unwrap_or_default()
    }

    /// True when the step sets nothing at all (no `policy` in Codefresh YAML).
    pub fn is_empty(&self) -> bool {
        self.pre_action.is_none() && self.action.is_none() && self.post_action.is_none()
    }
}

string_enum! {
    /// What writes the new version into a target environment.
    #[derive(Default)]
    pub enum Action ("promotion action") {
        /// Only record the version on the target application.
        #[default]
        None => "NONE",
        /// Commit the version into the application's Git source.
        Commit => "COMMIT",
        /// Open a pull request with the version.
        PullRequest => "PULL_REQUEST",
    }
}

/// Workflows run when a release (or one environment of it) starts, succeeds or fails.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Hooks {
    pub on_start: Option<String>,
    pub on_success: Option<String>,
    pub on_fail: Option<String>,
}

impl Hooks {
    /// The hooks with their field names, so callers can check or print all
    /// three without repeating themselves.
    pub fn entries(&self) -> [(&'static str, Option<&str>); 3] {
        [
            ("on_start", self.on_start.as_deref()),
            ("on_success", self.on_success.as_deref()),
            ("on_fail", self.on_fail.as_deref()),
        ]
    }

    /// True when no hook is set.
    pub fn is_empty(&self) -> bool {
        self.names().next().is_none()
    }

    /// The workflows of the hooks that are set.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries().into_iter().filter_map(|(_, hook)| hook)
    }
}

/// The order in which a valid flow runs: `waves[0]` is the trigger
/// environment, `waves[n]` the environments whose longest path from the
/// trigger has `n` edges, each wave sorted by name.
///
/// Every environment starts only after all of its dependencies, all of which
/// are in earlier waves; the engine does not wait for whole waves, the plan is
/// what clients show.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Plan {
    pub waves: Vec<Vec<String>>,
}

/// The names a flow may refer to. Validation needs to know which
/// environments and workflows exist without depending on how they are stored.
pub trait Catalog {
    fn environment_exists(&self, name: &str) -> bool;
    fn workflow_exists(&self, name: &str) -> bool;
}

/// A [`Catalog`] held in memory, e.g. loaded from the store before validating.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownNames {
    pub environments: HashSet<String>,
    pub workflows: HashSet<String>,
}

impl KnownNames {
    pub fn new<E, W>(environments: E, workflows: W) -> Self
    where
        E: IntoIterator,
        E::Item: Into<String>,
        W: IntoIterator,
        W::Item: Into<String>,
    {
        Self {
            environments: environments.into_iter().map(Into::into).collect(),
            workflows: workflows.into_iter().map(Into::into).collect(),
        }
    }
}

impl Catalog for KnownNames {
    fn environment_exists(&self, name: &str) -> bool {
        self.environments.contains(name)
    }

    fn workflow_exists(&self, name: &str) -> bool {
        self.workflows.contains(name)
    }
}

/// Size limits applied by [`validate_with_limits`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_steps: usize,
    pub max_depends_on: usize,
}

impl Limits {
    /// The default limits of the API: [`MAX_STEPS`] and [`MAX_DEPENDS_ON`].
    pub const API: Limits = Limits {
        max_steps: MAX_STEPS,
        max_depends_on: MAX_DEPENDS_ON,
    };

    /// The API limits with another largest number of steps, as a server
    /// configures it.
    pub const fn with_max_steps(max_steps: usize) -> Limits {
        Limits {
            max_steps,
            ..Limits::API
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::API
    }
}

impl FlowSpec {
    /// Every node of the graph: the trigger environment, then each step's
    /// environment in step order (a name repeats only in an invalid flow).
    pub fn nodes(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.trigger_environment.as_str())
            .chain(self.steps.iter().map(|step| step.environment.as_str()))
    }

    /// True when `env` is the trigger environment or a step's environment.
    pub fn has_node(&self, env: &str) -> bool {
        self.nodes().any(|node| node == env)
    }

    /// The step that promotes into `env`; `None` for the trigger environment
    /// and for environments not in the flow.
    pub fn step(&self, env: &str) -> Option<&Step> {
        self.steps.iter().find(|step| step.environment == env)
    }

    /// Every workflow the flow refers to (trigger workflow, hooks, pre- and
    /// post-actions), in field order, repeats included.
    pub fn workflow_names(&self) -> impl Iterator<Item = &str> {
        let steps = self.steps.iter().flat_map(|step| {
            [
                step.policy.pre_action.as_deref(),
                step.policy.post_action.as_deref(),
            ]
            .into_iter()
            .flatten()
            .chain(step.hooks.names())
        });
        self.trigger_workflow
            .as_deref()
            .into_iter()
            .chain(self.hooks.names())
            .chain(steps)
    }

    /// Every edge `(dependency, dependent)` in step order.
    pub fn edges(&self) -> impl Iterator<Item = (&str, &str)> {
        self.steps.iter().flat_map(|step| {
            step.depends_on
                .iter()
                .map(|dep| (dep.as_str(), step.environment.as_str()))
        })
    }

    /// The environments that depend directly on `env`, sorted by name.
    pub fn children(&self, env: &str) -> Vec<String> {
        let mut children: Vec<String> = self
            .steps
            .iter()
            .filter(|step| step.depends_on.iter().any(|dep| dep == env))
            .map(|step| step.environment.clone())
            .collect();
        children.sort();
        children.dedup();
        children
    }

    /// Every environment that depends on `env` directly or not (the ones a
    /// failure of `env` skips), sorted by name. Terminates on any input,
    /// including flows with cycles.
    pub fn descendants(&self, env: &str) -> Vec<String> {
        let mut found: Vec<String> = FlowGraph::new(self, usize::MAX)
            .descendants(env)
            .into_iter()
            .map(str::to_owned)
            .collect();
        found.sort();
        found
    }
}

/// Checks `spec` against every flow rule (see the module doc) with the default API
/// limits ([`Limits::API`]) and returns its plan, or every violation found.
pub fn validate(spec: &FlowSpec, catalog: &dyn Catalog) -> Result<Plan, Vec<Violation>> {
    validate_with_limits(spec, catalog, Limits::API)
}

/// [`validate`] with explicit size limits: the ones a server is configured
/// with, or larger ones for benchmarks and tools.
pub fn validate_with_limits(
    spec: &FlowSpec,
    catalog: &dyn Catalog,
    limits: Limits,
) -> Result<Plan, Vec<Violation>> {
    let mut v = Violations::new();
    check_settings(&mut v, spec, catalog);
    if spec.steps.len() > limits.max_steps {
        // Refuse before looking at the steps: the work must not grow with an
        // oversized request, and neither should the list of violations.
        v.push(
            "steps",
            format!(
                "a flow has at most {} steps, this one has {}",
                limits.max_steps,
                spec.steps.len()
            ),
        );
        return Err(v.0);
    }
    let graph = FlowGraph::new(spec, limits.max_depends_on);
    check_steps(&mut v, spec, catalog, limits, &graph);
    match graph.waves() {
        Some(waves) => v.finish().map(|()| Plan { waves }),
        None => {
            for cycle in graph.cycles() {
                let field = graph
                    .first_step(cycle[0])
                    .map_or_else(|| "steps".to_owned(), |i| format!("steps[{i}].depends_on"));
                v.push(field, format!("dependency cycle: {}", cycle.join(" -> ")));
            }
            Err(v.0)
        }
    }
}

/// Rules on the flow's own fields (everything but the steps' contents).
fn check_settings(v: &mut Violations, spec: &FlowSpec, catalog: &dyn Catalog) {
    check_name(v, "name", &spec.name);
    check_text_max(v, "description", &spec.description, MAX_DESCRIPTION_LEN);
    check_environment_ref(
        v,
        || "trigger_environment".to_owned(),
        &spec.trigger_environment,
        catalog,
    );
    check_workflow_ref(
        v,
        || "trigger_workflow".to_owned(),
        spec.trigger_workflow.as_deref(),
        catalog,
    );
    match spec.promotion_timeout_secs {
        Some(0) => v.push("promotion_timeout", "must be positive"),
        Some(secs) if secs > MAX_PROMOTION_TIMEOUT_SECS => v.push(
            "promotion_timeout",
            format!("at most {MAX_PROMOTION_TIMEOUT_SECS} seconds (365 days)"),
        ),
        _ => {}
    }
    check_hooks(v, "hooks", &spec.hooks, catalog);
    check_annotations(v, &spec.annotations);
    if spec.steps.is_empty() {
        v.push(
            "steps",
            "a flow needs at least one step besides the trigger environment",
        );
    }
}

/// Annotations are opaque, but bounded, and keys are restricted to the
/// characters of Kubernetes annotation keys so they survive a Codefresh export.
fn check_annotations(v: &mut Violations, annotations: &BTreeMap<String, String>) {
    if annotations.len() > MAX_ANNOTATIONS {
        v.push(
            "annotations",
            format!(
                "at most {MAX_ANNOTATIONS} annotations, got {}",
                annotations.len()
            ),
        );
        return;
    }
    for (key, value) in annotations {
        // Escaped: a refused key may hold control characters such as NUL.
        let field = || format!("annotations.{}", key.escape_debug());
        let key_chars_ok = key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'));
        if key == DESCRIPTION_ANNOTATION {
            v.push(field(), "reserved: set the flow's description instead");
        } else if key.is_empty() || key.len() > MAX_ANNOTATION_KEY_LEN || !key_chars_ok {
            v.push(
                field(),
                format!(
                    "{key:?} is not a valid annotation key: use 1-{MAX_ANNOTATION_KEY_LEN} letters, digits, '-', '_', '.' and '/'"
                ),
            );
        } else {
            check_text_max(v, &field(), value, MAX_ANNOTATION_VALUE_LEN);
        }
    }
}

/// Rules on every step: its environment, its dependencies, its workflows.
/// `graph` is the graph of `spec`; its index answers "is this a node" and
/// "which step came first" without another pass over the names.
fn check_steps(
    v: &mut Violations,
    spec: &FlowSpec,
    catalog: &dyn Catalog,
    limits: Limits,
    graph: &FlowGraph<'_>,
) {
    let trigger = spec.trigger_environment.as_str();
    for (i, step) in spec.steps.iter().enumerate() {
        let env = step.environment.as_str();
        let env_field = || format!("steps[{i}].environment");
        check_environment_ref(v, env_field, env, catalog);
        if is_dns_label(env) {
            if env == trigger {
                v.push(
                    env_field(),
                    format!("{env} is the trigger environment, it cannot also be a step"),
                );
            } else if let Some(j) = graph.first_step(env).filter(|&j| j != i) {
                v.push(
                    env_field(),
                    format!("environment {env} appears twice (also steps[{j}])"),
                );
            }
        }

        let deps_field = || format!("steps[{i}].depends_on");
        if step.depends_on.is_empty() {
            v.push(
                deps_field(),
                "needs at least one environment to depend on: the trigger environment or another step",
            );
        } else if step.depends_on.len() > limits.max_depends_on {
            v.push(
                deps_field(),
                format!(
                    "at most {} dependencies, got {}",
                    limits.max_depends_on,
                    step.depends_on.len()
                ),
            );
        } else {
            let mut seen = HashSet::with_capacity(step.depends_on.len());
            for (k, dep) in step.depends_on.iter().enumerate() {
                let dep_field = || format!("steps[{i}].depends_on[{k}]");
                if !is_dns_label(dep) {
                    check_name(v, &dep_field(), dep);
                } else if dep == env {
                    v.push(dep_field(), format!("{env} cannot depend on itself"));
                } else if !seen.insert(dep.as_str()) {
                    v.push(dep_field(), format!("{dep} is listed twice"));
                } else if !graph.has_node(dep) {
                    v.push(
                        dep_field(),
                        format!("{dep} is neither the trigger environment nor a step of this flow"),
                    );
                }
            }
        }

        let policy = &step.policy;
        check_workflow_ref(
            v,
            || format!("steps[{i}].policy.pre_action"),
            policy.pre_action.as_deref(),
            catalog,
        );
        check_workflow_ref(
            v,
            || format!("steps[{i}].policy.post_action"),
            policy.post_action.as_deref(),
            catalog,
        );
        check_hooks(v, &format!("steps[{i}].hooks"), &step.hooks, catalog);
    }
}

fn check_hooks(v: &mut Violations, prefix: &str, hooks: &Hooks, catalog: &dyn Catalog) {
    for (name, hook) in hooks.entries() {
        check_workflow_ref(v, || format!("{prefix}.{name}"), hook, catalog);
    }
}

/// A referenced environment must be a valid name that exists. `field` is only
/// formatted when there is something to report: validation runs over
/// thousands of fields, nearly all of them fine.
fn check_environment_ref(
    v: &mut Violations,
    field: impl Fn() -> String,
    name: &str,
    catalog: &dyn Catalog,
) {
    if !is_dns_label(name) {
        check_name(v, &field(), name);
    } else if !catalog.environment_exists(name) {
        v.push(field(), format!("environment {name} does not exist"));
    }
}

/// An optional workflow reference: unset is fine, set must name a workflow
/// that exists.
fn check_workflow_ref(
    v: &mut Violations,
    field: impl Fn() -> String,
    name: Option<&str>,
    catalog: &dyn Catalog,
) {
    match name {
        None => {}
        Some("") => v.push(field(), "must not be empty: leave it unset for no workflow"),
        Some(name) if !is_dns_label(name) => check_name(v, &field(), name),
        Some(name) if !catalog.workflow_exists(name) => {
            v.push(field(), format!("workflow {name} does not exist"));
        }
        Some(_) => {}
    }
}

/// The dependency graph of a flow: one node per distinct environment, an edge
/// from each dependency to its dependent.
///
/// Built from any spec, valid or not: references to environments that are not
/// nodes, self-references, repeated steps and the dependencies of steps over
/// the `depends_on` limit are left out (validation reports them separately).
struct FlowGraph<'a> {
    graph: DiGraph<&'a str, ()>,
    index: HashMap<&'a str, NodeIndex>,
    /// Per node, the position of the first step for it in the spec; `None`
    /// for the trigger environment.
    first_step: Vec<Option<usize>>,
}

impl<'a> FlowGraph<'a> {
    fn new(spec: &'a FlowSpec, max_depends_on: usize) -> Self {
        let node_count = spec.steps.len() + 1;
        let edge_count = spec.steps.iter().map(|s| s.depends_on.len()).sum();
        let mut graph = DiGraph::with_capacity(node_count, edge_count);
        let mut index = HashMap::with_capacity(node_count);
        for node in spec.nodes() {
            index.entry(node).or_insert_with(|| graph.add_node(node));
        }
        // Only the first step of an environment brings in edges, and a step
        // for the trigger environment none: otherwise one mistake would also
        // show up as a made-up cycle.
        let trigger = index.get(spec.trigger_environment.as_str()).copied();
        let mut first_step = vec![None; graph.node_count()];
        for (i, step) in spec.steps.iter().enumerate() {
            let Some(&to) = index.get(step.environment.as_str()) else {
                continue;
            };
            if Some(to) == trigger || first_step[to.index()].is_some() {
                continue;
            }
            first_step[to.index()] = Some(i);
            if step.depends_on.len() > max_depends_on {
                continue;
            }
            for dep in &step.depends_on {
                if let Some(&from) = index.get(dep.as_str())
                    && from != to
                {
                    graph.add_edge(from, to, ());
                }
            }
        }
        Self {
            graph,
            index,
            first_step,
        }
    }

    fn has_node(&self, env: &str) -> bool {
        self.index.contains_key(env)
    }

    /// Position of the first step for `env` in the spec.
    fn first_step(&self, env: &str) -> Option<usize> {
        self.first_step[self.index.get(env)?.index()]
    }

    /// The nodes grouped by longest distance from a source, each group sorted,
    /// or `None` when the graph has a cycle. Linear in nodes and edges apart
    /// from sorting the names within each wave.
    fn waves(&self) -> Option<Vec<Vec<String>>> {
        let order = toposort(&self.graph, None).ok()?;
        let mut depth = vec![0usize; self.graph.node_count()];
        for &node in &order {
            let next = depth[node.index()] + 1;
            for child in self.graph.neighbors(node) {
                let d = &mut depth[child.index()];
                *d = (*d).max(next);
            }
        }
        let deepest = depth.iter().copied().max().unwrap_or(0);
        let mut waves = vec![Vec::new(); deepest + 1];
        for node in self.graph.node_indices() {
            waves[depth[node.index()]].push(self.graph[node].to_owned());
        }
        for wave in &mut waves {
            wave.sort_unstable();
        }
        Some(waves)
    }

    /// One cycle per strongly connected component, as node names starting
    /// and ending with the component's smallest name, following the edges
    /// (`qa -> prod -> qa`: prod depends on qa and qa on prod). The cycle is a
    /// shortest one through that node, so messages stay short and stable.
    fn cycles(&self) -> Vec<Vec<&'a str>> {
        let mut cycles = Vec::new();
        for component in tarjan_scc(&self.graph) {
            if component.len() < 2 {
                continue;
            }
            let members: HashSet<NodeIndex> = component.iter().copied().collect();
            let Some(&start) = component.iter().min_by_key(|&&n| self.graph[n]) else {
                continue;
            };
            if let Some(cycle) = self.shortest_cycle_through(start, &members) {
                cycles.push(cycle);
            }
        }
        cycles.sort();
        cycles
    }

    /// Breadth-first search from `start` within `members` until an edge leads
    /// back to `start`. Neighbours are visited in name order for determinism.
    fn shortest_cycle_through(
        &self,
        start: NodeIndex,
        members: &HashSet<NodeIndex>,
    ) -> Option<Vec<&'a str>> {
        let mut parent: HashMap<NodeIndex, NodeIndex> = HashMap::new();
        let mut queue = VecDeque::from([start]);
        let mut last = None;
        while let Some(node) = queue.pop_front() {
            let mut next: Vec<NodeIndex> = self
                .graph
                .neighbors(node)
                .filter(|n| members.contains(n))
                .collect();
            if next.contains(&start) {
                last = Some(node);
                break;
            }
            next.sort_by_key(|&n| self.graph[n]);
            for n in next {
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(n) {
                    e.insert(node);
                    queue.push_back(n);
                }
            }
        }
        let mut node = last?;
        let mut reversed = vec![self.graph[start]];
        while node != start {
            reversed.push(self.graph[node]);
            node = *parent.get(&node)?;
        }
        reversed.push(self.graph[start]);
        reversed.reverse();
        Some(reversed)
    }

    /// Every node reachable from `env`, excluding `env` itself.
    fn descendants(&self, env: &str) -> Vec<&'a str> {
        let Some(&start) = self.index.get(env) else {
            return Vec::new();
        };
        let mut bfs = Bfs::new(&self.graph, start);
        let mut found = Vec::new();
        while let Some(node) = bfs.next(&self.graph) {
            if node != start {
                found.push(self.graph[node]);
            }
        }
        found
    }
}

/// Flow builders and random-DAG strategies shared by the tests of the domain
/// modules.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use proptest::prelude::*;

    /// A catalog in which every environment and workflow exists.
    pub(crate) struct Everything;

    impl Catalog for Everything {
        fn environment_exists(&self, _: &str) -> bool {
            true
        }
        fn workflow_exists(&self, _: &str) -> bool {
            true
        }
    }

    pub(crate) fn step(env: &str, deps: &[&str]) -> Step {
        Step {
            environment: env.to_owned(),
            depends_on: deps.iter().map(|d| (*d).to_owned()).collect(),
            ..Step::default()
        }
    }

    /// A flow named `demo` from `(environment, depends_on)` pairs.
    pub(crate) fn flow(trigger: &str, steps: &[(&str, &[&str])]) -> FlowSpec {
        FlowSpec {
            name: "demo".to_owned(),
            trigger_environment: trigger.to_owned(),
            steps: steps.iter().map(|(env, deps)| step(env, deps)).collect(),
            ..FlowSpec::default()
        }
    }

    /// A random DAG flow of 1..=`max_steps` steps. Node `i` may only depend
    /// on nodes before it in a hidden order, which is shuffled away from both
    /// the names and the step order, so nothing in the output is sorted.
    pub(crate) fn dag(max_steps: usize) -> impl Strategy<Value = FlowSpec> {
        (1..=max_steps)
            .prop_flat_map(|n| {
                let deps = (1..=n)
                    .map(|i| proptest::collection::btree_set(0..i, 1..=i.min(3)))
                    .collect::<Vec<_>>();
                let names = Just((0..=n).collect::<Vec<usize>>()).prop_shuffle();
                let order = Just((0..n).collect::<Vec<usize>>()).prop_shuffle();
                (deps, names, order)
            })
            .prop_map(|(deps, names, order)| {
                let name = |i: usize| format!("env-{}", names[i]);
                let steps = order
                    .iter()
                    .map(|&s| Step {
                        environment: name(s + 1),
                        depends_on: deps[s].iter().map(|&d| name(d)).collect(),
                        ..Step::default()
                    })
                    .collect();
                FlowSpec {
                    name: "random".to_owned(),
                    trigger_environment: name(0),
                    steps,
                    ..FlowSpec::default()
                }
            })
    }

    /// Field paths of a list of violations, for compact assertions.
    pub(crate) fn fields(violations: &[Violation]) -> Vec<&str> {
        violations.iter().map(|v| v.field.as_str()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use proptest::prelude::*;

    fn catalog() -> KnownNames {
        KnownNames::new(
            ["dev", "qa", "staging", "prod", "prod-eu", "prod-asia"],
            ["smoke-tests", "notify", "approve"],
        )
    }

    fn sequential() -> FlowSpec {
        flow("dev", &[("qa", &["dev"]), ("prod", &["qa"])])
    }

    fn waves(plan: &Plan) -> Vec<Vec<&str>> {
        plan.waves
            .iter()
            .map(|w| w.iter().map(String::as_str).collect())
            .collect()
    }

    /// Validates and expects exactly one violation, at `field`, whose
    /// description contains `needle`.
    fn single_violation(spec: &FlowSpec, field: &str, needle: &str) {
        let violations = validate(spec, &catalog()).expect_err("should be invalid");
        assert_eq!(fields(&violations), [field], "{violations:#?}");
        assert!(
            violations[0].description.contains(needle),
            "{:?} does not contain {needle:?}",
            violations[0].description
        );
    }

    #[test]
    fn quick_start_sequential() {
        let plan = validate(&sequential(), &catalog()).expect("valid");
        assert_eq!(waves(&plan), [vec!["dev"], vec!["qa"], vec!["prod"]]);
    }

    #[test]
    fn quick_start_dependency() {
        // staging beside qa, prod waits for both.
        let spec = flow(
            "dev",
            &[
                ("qa", &["dev"]),
                ("prod", &["qa", "staging"]),
                ("staging", &["dev"]),
            ],
        );
        let plan = validate(&spec, &catalog()).expect("valid");
        assert_eq!(
            waves(&plan),
            [vec!["dev"], vec!["qa", "staging"], vec!["prod"]]
        );
    }

    #[test]
    fn plan_uses_the_longest_path() {
        // prod depends on dev directly and on dev -> qa -> staging: wave 3.
        let spec = flow(
            "dev",
            &[
                ("prod", &["dev", "staging"]),
                ("staging", &["qa"]),
                ("qa", &["dev"]),
            ],
        );
        let plan = validate(&spec, &catalog()).expect("valid");
        assert_eq!(
            waves(&plan),
            [vec!["dev"], vec!["qa"], vec!["staging"], vec!["prod"]]
        );
    }

    #[test]
    fn every_field_may_be_set() {
        let mut spec = sequential();
        spec.description = "dev to prod".to_owned();
        spec.trigger_workflow = Some("smoke-tests".to_owned());
        spec.promotion_timeout_secs = Some(3600);
        spec.hooks.on_fail = Some("notify".to_owned());
        spec.annotations
            .insert("version".to_owned(), "1.0".to_owned());
        spec.steps[1].policy = Policy {
            pre_action: Some("approve".to_owned()),
            action: Some(Action::PullRequest),
            post_action: Some("smoke-tests".to_owned()),
        };
        spec.steps[1].hooks.on_success = Some("notify".to_owned());
        assert!(validate(&spec, &catalog()).is_ok());
    }

    #[test]
    fn each_rule_alone() {
        let mut s = sequential();
        s.name = "Demo".to_owned();
        single_violation(&s, "name", "not a valid name");

        let mut s = sequential();
        s.name.clear();
        single_violation(&s, "name", "is required");

        let mut s = sequential();
        s.description = "x".repeat(MAX_DESCRIPTION_LEN + 1);
        single_violation(&s, "description", "is longer than 4096 bytes");

        let mut s = sequential();
        s.description = "line\0".to_owned();
        single_violation(&s, "description", "NUL");

        // Renaming the trigger leaves qa depending on a non-node too, so
        // change a step-free flow: only the trigger field is wrong.
        let mut s = sequential();
        s.trigger_environment = "mars".to_owned();
        s.steps[0].depends_on = vec!["mars".to_owned()];
        single_violation(&s, "trigger_environment", "environment mars does not exist");

        let mut s = sequential();
        s.trigger_workflow = Some("deploy".to_owned());
        single_violation(&s, "trigger_workflow", "workflow deploy does not exist");

        let mut s = sequential();
        s.trigger_workflow = Some(String::new());
        single_violation(&s, "trigger_workflow", "must not be empty");

        let mut s = sequential();
        s.promotion_timeout_secs = Some(0);
        single_violation(&s, "promotion_timeout", "must be positive");

        let mut s = sequential();
        s.promotion_timeout_secs = Some(MAX_PROMOTION_TIMEOUT_SECS + 1);
        single_violation(&s, "promotion_timeout", "at most");

        let mut s = sequential();
        s.hooks.on_start = Some("Bad_Name".to_owned());
        single_violation(&s, "hooks.on_start", "not a valid name");

        let mut s = sequential();
        s.steps.clear();
        single_violation(&s, "steps", "at least one step");

        let mut s = sequential();
        s.steps[1].environment = "mars".to_owned();
        single_violation(
            &s,
            "steps[1].environment",
            "environment mars does not exist",
        );

        let mut s = sequential();
        s.steps[1].environment = "dev".to_owned();
        single_violation(&s, "steps[1].environment", "dev is the trigger environment");

        let mut s = sequential();
        s.steps[1].environment = "qa".to_owned();
        s.steps[1].depends_on = vec!["dev".to_owned()];
        single_violation(&s, "steps[1].environment", "appears twice (also steps[0])");

        let mut s = sequential();
        s.steps[1].depends_on.clear();
        single_violation(&s, "steps[1].depends_on", "at least one");

        let mut s = sequential();
        s.steps[1].depends_on.push("prod".to_owned());
        single_violation(&s, "steps[1].depends_on[1]", "cannot depend on itself");

        let mut s = sequential();
        s.steps[1].depends_on.push("qa".to_owned());
        single_violation(&s, "steps[1].depends_on[1]", "qa is listed twice");

        let mut s = sequential();
        s.steps[1].depends_on.push("staging".to_owned());
        single_violation(&s, "steps[1].depends_on[1]", "neither the trigger");

        let mut s = sequential();
        s.steps[1].depends_on.push("QA".to_owned());
        single_violation(&s, "steps[1].depends_on[1]", "not a valid name");

        let mut s = sequential();
        s.steps[0].policy.pre_action = Some("missing".to_owned());
        single_violation(
            &s,
            "steps[0].policy.pre_action",
            "workflow missing does not exist",
        );

        let mut s = sequential();
        s.steps[0].policy.post_action = Some("missing".to_owned());
        single_violation(&s, "steps[0].policy.post_action", "does not exist");

        let mut s = sequential();
        s.steps[1].hooks.on_fail = Some("missing".to_owned());
        single_violation(&s, "steps[1].hooks.on_fail", "does not exist");

        let mut s = sequential();
        s.annotations
            .insert("description".to_owned(), "x".to_owned());
        single_violation(&s, "annotations.description", "reserved");

        let mut s = sequential();
        s.annotations.insert("a key".to_owned(), "x".to_owned());
        single_violation(&s, "annotations.a key", "not a valid annotation key");

        let mut s = sequential();
        s.annotations
            .insert("k".to_owned(), "x".repeat(MAX_ANNOTATION_VALUE_LEN + 1));
        single_violation(&s, "annotations.k", "is longer than 4096 bytes");

        let mut s = sequential();
        s.annotations.insert("k".to_owned(), "\0".to_owned());
        single_violation(&s, "annotations.k", "NUL");
        let mut s = sequential();
        s.annotations.insert("k\0".to_owned(), String::new());
        single_violation(&s, "annotations.k\\0", "not a valid annotation key");

        let mut s = sequential();
        s.annotations = (0..=MAX_ANNOTATIONS)
            .map(|i| (format!("k{i}"), String::new()))
            .collect();
        single_violation(&s, "annotations", "at most");
    }

    #[test]
    fn two_node_cycle_names_its_environments() {
        let s = flow("dev", &[("qa", &["dev", "prod"]), ("prod", &["qa"])]);
        single_violation(
            &s,
            "steps[1].depends_on",
            "dependency cycle: prod -> qa -> prod",
        );
    }

    #[test]
    fn longer_cycles_are_reported_in_edge_order() {
        // qa -> staging -> prod -> qa, plus an unrelated valid branch.
        let s = flow(
            "dev",
            &[
                ("prod-eu", &["dev"]),
                ("qa", &["dev", "prod"]),
                ("staging", &["qa"]),
                ("prod", &["staging"]),
            ],
        );
        single_violation(
            &s,
            "steps[3].depends_on",
            "dependency cycle: prod -> qa -> staging -> prod",
        );
    }

    #[test]
    fn each_cycle_is_reported() {
        let s = flow(
            "dev",
            &[
                ("qa", &["dev", "staging"]),
                ("staging", &["qa"]),
                ("prod", &["dev", "prod-eu"]),
                ("prod-eu", &["prod"]),
            ],
        );
        let violations = validate(&s, &catalog()).unwrap_err();
        let descriptions: Vec<_> = violations.iter().map(|v| v.description.as_str()).collect();
        assert_eq!(
            descriptions,
            [
                "dependency cycle: prod -> prod-eu -> prod",
                "dependency cycle: qa -> staging -> qa",
            ]
        );
    }

    #[test]
    fn all_violations_at_once() {
        let mut s = flow(
            "dev",
            &[
                ("qa", &[]),
                ("qa", &["dev", "dev"]),
                ("prod", &["prod", "x"]),
            ],
        );
        s.name = "-bad".to_owned();
        s.promotion_timeout_secs = Some(0);
        s.hooks.on_success = Some("missing".to_owned());
        s.steps[2].policy.pre_action = Some("missing".to_owned());
        let violations = validate(&s, &catalog()).unwrap_err();
        assert_eq!(
            fields(&violations),
            [
                "name",
                "promotion_timeout",
                "hooks.on_success",
                "steps[0].depends_on",
                "steps[1].environment",
                "steps[1].depends_on[1]",
                "steps[2].depends_on[0]",
                "steps[2].depends_on[1]",
                "steps[2].policy.pre_action",
            ]
        );
    }

    #[test]
    fn cycles_are_reported_with_other_violations() {
        let mut s = flow("dev", &[("qa", &["dev", "prod"]), ("prod", &["qa"])]);
        s.name = "Bad".to_owned();
        let violations = validate(&s, &catalog()).unwrap_err();
        assert_eq!(fields(&violations), ["name", "steps[1].depends_on"]);
    }

    #[test]
    fn limits_are_checked_before_the_steps() {
        let steps = (0..=MAX_STEPS)
            .map(|i| step(&format!("e{i}"), &["missing"]))
            .collect();
        let s = FlowSpec {
            steps,
            ..sequential()
        };
        // One violation for the size, none for the thousand bad steps.
        single_violation(&s, "steps", "at most 1000 steps, this one has 1001");

        let mut s = sequential();
        s.steps[1].depends_on = (0..=MAX_DEPENDS_ON).map(|i| format!("d{i}")).collect();
        single_violation(&s, "steps[1].depends_on", "at most 64 dependencies, got 65");
    }

    #[test]
    fn larger_limits_allow_larger_flows() {
        let names: Vec<String> = (0..2000).map(|i| format!("e{i}")).collect();
        let steps = names
            .windows(2)
            .map(|w| step(&w[1], &[w[0].as_str()]))
            .collect();
        let s = FlowSpec {
            name: "long".to_owned(),
            trigger_environment: names[0].clone(),
            steps,
            ..FlowSpec::default()
        };
        assert!(validate(&s, &Everything).is_err());
        let limits = Limits {
            max_steps: 5000,
            ..Limits::API
        };
        let plan = validate_with_limits(&s, &Everything, limits).expect("valid");
        assert_eq!(plan.waves.len(), 2000);
    }

    #[test]
    fn graph_helpers() {
        let s = flow(
            "dev",
            &[
                ("qa", &["dev"]),
                ("staging", &["dev"]),
                ("prod", &["qa", "staging"]),
                ("prod-eu", &["prod"]),
            ],
        );
        assert_eq!(
            s.nodes().collect::<Vec<_>>(),
            ["dev", "qa", "staging", "prod", "prod-eu"]
        );
        assert!(s.has_node("dev") && s.has_node("prod-eu") && !s.has_node("mars"));
        assert_eq!(s.step("prod").map(|st| st.depends_on.len()), Some(2));
        assert!(s.step("dev").is_none());
        assert_eq!(s.children("dev"), ["qa", "staging"]);
        assert_eq!(s.children("prod-eu"), Vec::<String>::new());
        assert_eq!(s.descendants("dev"), ["prod", "prod-eu", "qa", "staging"]);
        assert_eq!(s.descendants("staging"), ["prod", "prod-eu"]);
        assert_eq!(s.descendants("mars"), Vec::<String>::new());
        assert_eq!(s.edges().count(), 5);
    }

    #[test]
    fn workflow_names_lists_every_reference() {
        let mut s = sequential();
        assert_eq!(s.workflow_names().count(), 0);
        s.trigger_workflow = Some("trigger".to_owned());
        s.hooks.on_fail = Some("release-fail".to_owned());
        s.steps[0].policy.pre_action = Some("pre".to_owned());
        s.steps[0].policy.post_action = Some("post".to_owned());
        s.steps[1].hooks.on_start = Some("start".to_owned());
        s.steps[1].hooks.on_success = Some("pre".to_owned());
        assert_eq!(
            s.workflow_names().collect::<Vec<_>>(),
            ["trigger", "release-fail", "pre", "post", "start", "pre"]
        );
    }

    #[test]
    fn descendants_terminate_on_cycles() {
        let s = flow("dev", &[("qa", &["dev", "prod"]), ("prod", &["qa"])]);
        assert_eq!(s.descendants("qa"), ["prod"]);
        assert_eq!(s.descendants("dev"), ["prod", "qa"]);
    }

    #[test]
    fn spec_json_round_trip_and_defaults() {
        let mut s = sequential();
        s.steps[0].policy.action = Some(Action::PullRequest);
        let json = serde_json::to_string(&s).expect("serialize");
        assert!(json.contains("\"PULL_REQUEST\""), "{json}");
        assert_eq!(serde_json::from_str::<FlowSpec>(&json).expect("parse"), s);
        // Older stored versions without newer fields still load.
        let old: FlowSpec =
            serde_json::from_str(r#"{"name":"x","trigger_environment":"dev","steps":[{"environment":"qa","depends_on":["dev"]}]}"#)
                .expect("parse");
        assert_eq!(old.steps[0].policy.action, None);
        assert_eq!(old.steps[0].policy.effective_action(), Action::None);
        // A version stored before "unset" existed wrote NONE: it stays set.
        let explicit: FlowSpec = serde_json::from_str(
            r#"{"name":"x","trigger_environment":"dev","steps":[{"environment":"qa","depends_on":["dev"],"policy":{"action":"NONE"}}]}"#,
        )
        .expect("parse");
        assert_eq!(explicit.steps[0].policy.action, Some(Action::None));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Random DAGs validate, and their plan puts every dependency in an
        /// earlier wave, every node in exactly one wave, and each node exactly
        /// one wave after its deepest dependency.
        #[test]
        fn random_dags_plan_forward(spec in dag(40)) {
            let plan = validate(&spec, &Everything).expect("random DAGs are valid");
            let mut wave_of = HashMap::new();
            for (w, wave) in plan.waves.iter().enumerate() {
                prop_assert!(!wave.is_empty());
                prop_assert!(wave.windows(2).all(|p| p[0] < p[1]), "wave not sorted");
                for env in wave {
                    prop_assert!(wave_of.insert(env.as_str(), w).is_none(), "{} twice", env);
                }
            }
            prop_assert_eq!(wave_of.len(), spec.steps.len() + 1);
            prop_assert_eq!(&plan.waves[0], &vec![spec.trigger_environment.clone()]);
            for step in &spec.steps {
                let deepest = step.depends_on.iter().map(|d| wave_of[d.as_str()]).max();
                prop_assert_eq!(deepest.map(|d| d + 1), Some(wave_of[step.environment.as_str()]));
            }
        }

        /// Making any environment depend on one of its own descendants is a
        /// cycle, and it is rejected naming both.
        #[test]
        fn closing_a_cycle_is_rejected(spec in dag(25), pick in any::<prop::sample::Index>(), pick2 in any::<prop::sample::Index>()) {
            let candidates: Vec<(usize, Vec<String>)> = spec.steps.iter().enumerate()
                .map(|(i, s)| (i, spec.descendants(&s.environment)))
                .filter(|(_, d)| !d.is_empty())
                .collect();
            prop_assume!(!candidates.is_empty());
            let (i, descendants) = &candidates[pick.index(candidates.len())];
            let target = descendants[pick2.index(descendants.len())].clone();
            let mut cyclic = spec.clone();
            cyclic.steps[*i].depends_on.push(target.clone());
            let violations = validate(&cyclic, &Everything).expect_err("cycle accepted");
            prop_assert!(violations.iter().all(|v| v.description.starts_with("dependency cycle: ")));
            let env = &spec.steps[*i].environment;
            prop_assert!(violations.iter().any(|v| {
                let names: Vec<&str> = v.description["dependency cycle: ".len()..].split(" -> ").collect();
                names.first() == names.last() && names.contains(&env.as_str()) && names.contains(&target.as_str())
            }), "{:?}", violations);
        }
    }
}
