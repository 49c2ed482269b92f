//! In-process tests of every transition of the release state machine.
//!
//! A [`Sim`] plays the engine: it advances the release, "runs" each step
//! that started by asking the test's script what happens to it, and feeds
//! the outcome back, all with a clock the test controls. A regression shows
//! up here as a failed assertion naming the environment, not as an
//! integration test timing out.

use chrono::{Duration, TimeZone, Utc};

use super::admission::{self, MAX_QUEUED};
use super::*;
use crate::domain::catalog::Concurrency;
use crate::domain::flow::{Action, FlowSpec, Hooks, Policy, Step};
use crate::domain::status::{
    EnvironmentStatus as E, ReleaseStatus as R, StepKind, StepStatus as S,
};

// ------------------------------------------------------------ building ---

fn step(env: &str, deps: &[&str]) -> Step {
    Step {
        environment: env.into(),
        depends_on: deps.iter().map(|d| d.to_string()).collect(),
        ..Step::default()
    }
}

fn flow(trigger: &str, steps: Vec<Step>) -> FlowSpec {
    FlowSpec {
        name: "f".into(),
        trigger_environment: trigger.into(),
        steps,
        ..FlowSpec::default()
    }
}

fn with_policy(mut s: Step, pre: Option<&str>, action: Action, post: Option<&str>) -> Step {
    s.policy = Policy {
        pre_action: pre.map(str::to_string),
        action: Some(action),
        post_action: post.map(str::to_string),
    };
    s
}

fn hooks(on_start: Option<&str>, on_success: Option<&str>, on_fail: Option<&str>) -> Hooks {
    Hooks {
        on_start: on_start.map(str::to_string),
        on_success: on_success.map(str::to_string),
        on_fail: on_fail.map(str::to_string),
    }
}

/// dev → qa → prod
fn sequential() -> FlowSpec {
    flow("dev", vec![step("qa", &["dev"]), step("prod", &["qa"])])
}

/// dev → qa → {prod, prod-eu, prod-asia}
fn parallel() -> FlowSpec {
    flow(
        "dev",
        vec![
            step("qa", &["dev"]),
            step("prod", &["qa"]),
            step("prod-eu", &["qa"]),
            step("prod-asia", &["qa"]),
        ],
    )
}

/// dev → qa → prod with release-level hooks.
fn sequential_with(hooks: Hooks) -> FlowSpec {
    FlowSpec {
        hooks,
        ..sequential()
    }
}

// ----------------------------------------------------------- simulator ---

/// What happens to a step the release started.
#[derive(Debug, Clone)]
enum Reply {
    Ok,
    Fail(&'static str),
    /// An approval: suspended, with a timeout after this many seconds.
    Suspend(Option<i64>),
    /// Still running (a long wait): no outcome yet.
    Hold,
}

struct Sim {
    r: Release,
    t: Time,
    /// The rule approvals suspend under.
    rule: ApprovalRule,
}

impl Sim {
    /// A release of `spec`, started.
    fn start(spec: &FlowSpec) -> Self {
        let mut sim = Self::queued(spec);
        let changes = sim.r.start(sim.t);
        assert_eq!(changes, vec![Change::Release]);
        sim
    }

    fn queued(spec: &FlowSpec) -> Self {
        let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
        let r = Release::new(
            "r1".into(),
            spec,
            1,
            "p",
            "1.2.0",
            &|env: &str| format!("p-{env}"),
            &|_: &str| false,
            t,
        );
        Self {
            r,
            t,
            rule: ApprovalRule::default(),
        }
    }

    /// A decision by `token:approver`; `None` when it was refused.
    fn decide(&mut self, env: Option<usize>, approve: bool, comment: &str) -> Option<Vec<Change>> {
        self.decide_as("token:approver", env, approve, comment).ok()
    }

    fn decide_as(
        &mut self,
        by: &str,
        env: Option<usize>,
        approve: bool,
        comment: &str,
    ) -> Result<Vec<Change>, ApprovalRefused> {
        let decision = Decision {
            principal: by.into(),
            approve,
            comment: comment.into(),
            time: self.t,
        };
        self.r.decide_approval(env, decision)
    }

    fn tick(&mut self, secs: i64) {
        self.t += Duration::seconds(secs);
    }

    /// Advances; returns the started steps' (environment, kind).
    fn advance(&mut self) -> Vec<(String, StepKind)> {
        let (_, started) = self.r.advance(self.t);
        started.iter().map(|at| self.describe(*at)).collect()
    }

    fn describe(&self, at: StepRef) -> (String, StepKind) {
        let env = at
            .env
            .map(|e| self.r.envs[e].environment.clone())
            .unwrap_or_default();
        (env, self.r.step(at).expect("step exists").kind)
    }

    /// Advances and answers every started step with `script(env, kind)`
    /// until nothing new starts. Returns every step started, in order.
    fn run(&mut self, script: impl Fn(&str, StepKind) -> Reply) -> Vec<(String, StepKind)> {
        let mut log = Vec::new();
        for _ in 0..1000 {
            let (_, started) = self.r.advance(self.t);
            if started.is_empty() {
                return log;
            }
            for at in started {
                let (env, kind) = self.describe(at);
                log.push((env.clone(), kind));
                match script(&env, kind) {
                    Reply::Ok => {
                        self.r.complete_step(at, ok(), self.t);
                    }
                    Reply::Fail(m) => {
                        self.r.complete_step(at, fail(m), self.t);
                    }
                    Reply::Suspend(secs) => {
                        let deadline = secs.map(|s| self.t + Duration::seconds(s));
                        self.r.suspend_step(at, deadline, self.rule);
                    }
                    Reply::Hold => {}
                }
            }
        }
        panic!("the release never settled");
    }

    fn env(&self, name: &str) -> &EnvRun {
        let i = self
            .r
            .env_index(name)
            .unwrap_or_else(|| panic!("no {name}"));
        &self.r.envs[i]
    }

    fn status(&self, name: &str) -> E {
        self.env(name).status
    }

    fn step_status(&self, env: &str, kind: StepKind) -> S {
        self.env(env)
            .steps
            .iter()
            .find(|s| s.kind == kind)
            .unwrap_or_else(|| panic!("{env} has no {kind} step"))
            .status
    }

    fn hook(&self, kind: StepKind) -> &StepRun {
        self.r
            .hooks
            .iter()
            .find(|h| h.kind == kind)
            .unwrap_or_else(|| panic!("no release-level {kind} hook"))
    }

    fn action_ref(&self, env: &str) -> StepRef {
        let e = self.r.env_index(env).expect("env");
        let idx = self.r.envs[e]
            .steps
            .iter()
            .position(|s| s.kind == StepKind::Action)
            .expect("action step");
        StepRef { env: Some(e), idx }
    }
}

fn ok() -> Outcome {
    Outcome::Succeeded {
        message: String::new(),
        outputs: Default::default(),
        artifact: None,
    }
}

fn fail(m: &str) -> Outcome {
    Outcome::Failed { message: m.into() }
}

fn all_ok(_: &str, _: StepKind) -> Reply {
    Reply::Ok
}

fn started_envs(log: &[(String, StepKind)]) -> Vec<&str> {
    log.iter()
        .filter(|(_, k)| *k == StepKind::Action)
        .map(|(e, _)| e.as_str())
        .collect()
}

// ------------------------------------------------------ flow structure ---

#[test]
fn a_new_release_is_queued_with_one_run_per_node_and_its_steps() {
    let spec = FlowSpec {
        trigger_workflow: Some("build".into()),
        hooks: hooks(Some("announce"), None, Some("page")),
        ..sequential()
    };
    let sim = Sim::queued(&spec);
    assert_eq!(sim.r.status, R::Queued);
    let names: Vec<&str> = sim.r.envs.iter().map(|e| e.environment.as_str()).collect();
    assert_eq!(names, ["dev", "qa", "prod"]);
    assert_eq!(sim.env("qa").blocked_on, ["dev"]);
    assert_eq!(sim.env("qa").application, "p-qa");
    let dev_steps: Vec<StepKind> = sim.env("dev").steps.iter().map(|s| s.kind).collect();
    assert_eq!(
        dev_steps,
        [StepKind::TriggerWorkflow],
        "the trigger takes no action"
    );
    let hook_kinds: Vec<StepKind> = sim.r.hooks.iter().map(|s| s.kind).collect();
    assert_eq!(hook_kinds, [StepKind::OnStart, StepKind::OnFail]);
    assert_eq!(sim.r.counters().pending, 3);
}

#[test]
fn sequential_environments_run_one_after_another() {
    let mut sim = Sim::start(&sequential());
    // The trigger succeeds at once and qa starts in the same transition.
    let started = sim.advance();
    assert_eq!(started, [("qa".to_string(), StepKind::Action)]);
    assert_eq!(sim.status("dev"), E::Succeeded);
    assert_eq!(sim.status("qa"), E::Running);
    assert_eq!(sim.status("prod"), E::Pending);
    assert_eq!(sim.env("prod").blocked_on, ["qa"]);
    let at = sim.action_ref("qa");
    sim.r.complete_step(at, ok(), sim.t);
    assert_eq!(sim.advance(), [("prod".to_string(), StepKind::Action)]);
    let at = sim.action_ref("prod");
    sim.r.complete_step(at, ok(), sim.t);
    sim.advance();
    assert_eq!(sim.r.status, R::Succeeded);
    assert!(sim.r.finish_time.is_some());
    assert_eq!(sim.r.counters().succeeded, 3);
}

#[test]
fn parallel_siblings_start_in_the_same_transition() {
    let mut sim = Sim::start(&parallel());
    sim.advance();
    let at = sim.action_ref("qa");
    sim.r.complete_step(at, ok(), sim.t);
    let mut started: Vec<String> = sim.advance().into_iter().map(|(e, _)| e).collect();
    started.sort();
    assert_eq!(started, ["prod", "prod-asia", "prod-eu"]);
    assert_eq!(sim.r.counters().running, 3);
}

#[test]
fn a_fan_in_waits_for_every_dependency() {
    let spec = flow(
        "dev",
        vec![
            step("a", &["dev"]),
            step("b", &["dev"]),
            step("join", &["a", "b"]),
        ],
    );
    let mut sim = Sim::start(&spec);
    sim.advance();
    let a = sim.action_ref("a");
    sim.r.complete_step(a, ok(), sim.t);
    assert!(sim.advance().is_empty(), "join must wait for b");
    assert_eq!(sim.status("join"), E::Pending);
    assert_eq!(
        sim.env("join").blocked_on,
        ["b"],
        "blocked_on names the unfinished one"
    );
    let b = sim.action_ref("b");
    sim.r.complete_step(b, ok(), sim.t);
    assert_eq!(sim.advance(), [("join".to_string(), StepKind::Action)]);
}

#[test]
fn a_failure_skips_every_descendant_while_independent_branches_finish() {
    // dev → a → a2 → a3, dev → b (slow)
    let spec = flow(
        "dev",
        vec![
            step("a", &["dev"]),
            step("a2", &["a"]),
            step("a3", &["a2"]),
            step("b", &["dev"]),
        ],
    );
    let mut sim = Sim::start(&spec);
    sim.run(|env, _| match env {
        "a" => Reply::Fail("boom"),
        "b" => Reply::Hold,
        _ => Reply::Ok,
    });
    assert_eq!(sim.status("a"), E::Failed);
    assert_eq!(sim.env("a").message, "action failed: boom");
    for d in ["a2", "a3"] {
        assert_eq!(sim.status(d), E::Skipped, "{d}");
        assert_eq!(sim.env(d).blocked_on, ["a"], "{d} names the failed root");
    }
    assert_eq!(
        sim.status("b"),
        E::Running,
        "the independent branch keeps running"
    );
    assert_eq!(sim.r.status, R::Running, "not failed while b runs");
    let b = sim.action_ref("b");
    sim.r.complete_step(b, ok(), sim.t);
    sim.advance();
    assert_eq!(sim.status("b"), E::Succeeded);
    assert_eq!(sim.r.status, R::Failed);
    assert_eq!(sim.r.message, "failed in a");
    let c = sim.r.counters();
    assert_eq!((c.succeeded, c.failed, c.skipped), (2, 1, 2));
}

#[test]
fn steps_of_an_environment_run_in_order() {
    let mut s = with_policy(
        step("qa", &["dev"]),
        Some("pre"),
        Action::None,
        Some("post"),
    );
    s.hooks = hooks(Some("start"), Some("yay"), Some("nay"));
    let mut sim = Sim::start(&flow("dev", vec![s]));
    let log = sim.run(all_ok);
    let kinds: Vec<StepKind> = log.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        kinds,
        [
            StepKind::OnStart,
            StepKind::PreAction,
            StepKind::Action,
            StepKind::PostAction,
            StepKind::OnSuccess
        ]
    );
    assert_eq!(sim.step_status("qa", StepKind::OnFail), S::Skipped);
    assert_eq!(sim.r.status, R::Succeeded);
}

#[test]
fn a_failed_pre_action_skips_the_action_and_runs_on_fail() {
    let mut s = with_policy(
        step("qa", &["dev"]),
        Some("pre"),
        Action::None,
        Some("post"),
    );
    s.hooks = hooks(None, Some("yay"), Some("nay"));
    let mut sim = Sim::start(&flow("dev", vec![s]));
    let log = sim.run(|_, k| {
        if k == StepKind::PreAction {
            Reply::Fail("tests red")
        } else {
            Reply::Ok
        }
    });
    assert!(started_envs(&log).is_empty(), "the action never ran");
    assert_eq!(sim.step_status("qa", StepKind::Action), S::Skipped);
    assert_eq!(sim.step_status("qa", StepKind::PostAction), S::Skipped);
    assert_eq!(sim.step_status("qa", StepKind::OnFail), S::Succeeded);
    assert_eq!(sim.step_status("qa", StepKind::OnSuccess), S::Skipped);
    assert_eq!(sim.env("qa").message, "pre_action failed: tests red");
    assert_eq!(sim.r.status, R::Failed);
}

#[test]
fn a_succeeded_action_is_a_promotion_even_when_the_post_action_fails() {
    let s = with_policy(step("qa", &["dev"]), None, Action::None, Some("post"));
    let mut sim = Sim::start(&flow("dev", vec![s]));
    sim.advance();
    let at = sim.action_ref("qa");
    assert_eq!(
        sim.r.promoted_environment(at),
        None,
        "not before it succeeds"
    );
    sim.r.complete_step(at, ok(), sim.t);
    assert_eq!(sim.r.promoted_environment(at), Some("qa"));
    sim.run(|_, _| Reply::Fail("soak failed"));
    assert_eq!(sim.status("qa"), E::Failed);
    assert_eq!(sim.r.promoted_environment(at), Some("qa"));
}

#[test]
fn the_trigger_workflow_runs_first_and_its_failure_fails_the_release() {
    let spec = FlowSpec {
        trigger_workflow: Some("build".into()),
        ..sequential()
    };
    let mut sim = Sim::start(&spec);
    let log = sim.run(|env, k| {
        assert_eq!(
            (env, k),
            ("dev", StepKind::TriggerWorkflow),
            "nothing else starts"
        );
        Reply::Fail("no artifact")
    });
    assert_eq!(log.len(), 1);
    assert_eq!(sim.status("dev"), E::Failed);
    assert_eq!(sim.status("qa"), E::Skipped);
    assert_eq!(sim.env("prod").blocked_on, ["dev"]);
    assert_eq!(sim.r.status, R::Failed);
}

// ------------------------------------------------------------ approvals ---

/// A step whose pre-action is an approval `gate`.
fn gate(env: &str, deps: &[&str]) -> Step {
    with_policy(step(env, deps), Some("gate"), Action::None, None)
}

/// A script under which pre-actions await approval (with a timeout after
/// `secs`) and everything else succeeds.
fn suspend_pre_action(secs: Option<i64>) -> impl Fn(&str, StepKind) -> Reply {
    move |_, k| {
        if k == StepKind::PreAction {
            Reply::Suspend(secs)
        } else {
            Reply::Ok
        }
    }
}

#[test]
fn an_environment_approval_suspends_the_release_until_approved() {
    let s = gate("qa", &["dev"]);
    let mut sim = Sim::start(&flow("dev", vec![s]));
    sim.run(suspend_pre_action(None));
    assert_eq!(sim.status("qa"), E::Suspended);
    assert_eq!(sim.r.status, R::Suspended);
    assert_eq!(sim.r.counters().suspended, 1);
    let e = sim.r.env_index("qa");
    let ch = sim.decide(e, true, "ship it").expect("awaits approval");
    assert!(
        ch.contains(&Change::Release),
        "the release is RUNNING again at once"
    );
    assert_eq!(sim.r.status, R::Running);
    assert_eq!(sim.step_status("qa", StepKind::PreAction), S::Succeeded);
    sim.run(all_ok);
    assert_eq!(sim.r.status, R::Succeeded);
    assert!(
        sim.decide(e, true, "").is_none(),
        "nothing awaits approval any more"
    );
}

#[test]
fn a_two_person_approval_needs_two_distinct_principals_and_never_the_actor() {
    let s = gate("qa", &["dev"]);
    let mut sim = Sim::queued(&flow("dev", vec![s]));
    sim.r.actor = "token:author".into();
    sim.r.start(sim.t);
    sim.rule = ApprovalRule {
        min_approvals: 2,
        forbid_self_approval: true,
    };
    sim.run(suspend_pre_action(None));
    let e = sim.r.env_index("qa");
    let gate = |sim: &Sim| sim.env("qa").steps[0].clone();
    assert_eq!(
        gate(&sim).message,
        "awaiting approval (0 of 2); the release's actor may not approve"
    );
    // The actor may not approve its own release.
    assert!(matches!(
        sim.decide_as("token:author", e, true, ""),
        Err(ApprovalRefused::SelfApproval(_))
    ));
    assert!(
        gate(&sim).approval.expect("rule").decisions.is_empty(),
        "not recorded"
    );
    // One approval of two: the step changes, the environment still waits.
    let ch = sim
        .decide_as("token:alice", e, true, "lgtm")
        .expect("recorded");
    assert_eq!(ch.len(), 1, "only the step changed: {ch:?}");
    assert_eq!(sim.status("qa"), E::Suspended);
    assert_eq!(sim.r.status, R::Suspended);
    assert_eq!(
        gate(&sim).message,
        "approved by token:alice: lgtm; awaiting approval (1 of 2); the release's actor may not approve"
    );
    // The same principal twice counts once, and is refused.
    assert!(matches!(
        sim.decide_as("token:alice", e, true, ""),
        Err(ApprovalRefused::AlreadyDecided(_))
    ));
    assert_eq!(gate(&sim).approval.expect("rule").approvals(), 1);
    sim.decide_as("token:bob", e, true, "")
        .expect("second approver");
    let step = gate(&sim);
    assert_eq!(step.status, S::Succeeded);
    assert_eq!(step.message, "approved by token:alice, token:bob");
    let who: Vec<_> = step
        .approval
        .expect("rule")
        .decisions
        .iter()
        .map(|d| (d.principal.clone(), d.approve, d.comment.clone()))
        .collect();
    assert_eq!(
        who,
        vec![
            ("token:alice".to_string(), true, "lgtm".to_string()),
            ("token:bob".to_string(), true, String::new())
        ]
    );
    sim.run(all_ok);
    assert_eq!(sim.r.status, R::Succeeded);
}

#[test]
fn one_rejection_rejects_a_multi_person_approval_and_a_retry_asks_again() {
    let s = gate("qa", &["dev"]);
    let mut sim = Sim::queued(&flow("dev", vec![s]));
    sim.r.actor = "token:author".into();
    sim.r.start(sim.t);
    sim.rule = ApprovalRule {
        min_approvals: 2,
        forbid_self_approval: true,
    };
    sim.run(suspend_pre_action(None));
    let e = sim.r.env_index("qa");
    sim.decide_as("token:alice", e, true, "").expect("approval");
    // The actor may still reject its own release.
    sim.decide_as("token:author", e, false, "wrong build")
        .expect("rejection");
    sim.run(all_ok);
    assert_eq!(sim.status("qa"), E::Failed);
    assert_eq!(
        sim.env("qa").steps[0].message,
        "rejected by token:author: wrong build"
    );
    assert!(sim.r.retry(sim.t).is_some());
    sim.run(suspend_pre_action(None));
    let step = &sim.env("qa").steps[0];
    assert_eq!(step.status, S::Suspended);
    assert!(
        step.approval.as_ref().expect("rule").decisions.is_empty(),
        "a re-run asks every approver again"
    );
}

#[test]
fn a_rejected_approval_fails_the_environment_and_skips_its_descendants() {
    let gate = gate("qa", &["dev"]);
    let mut sim = Sim::start(&flow("dev", vec![gate, step("prod", &["qa"])]));
    sim.run(suspend_pre_action(None));
    let e = sim.r.env_index("qa");
    sim.decide(e, false, "not today");
    sim.run(all_ok);
    let gate = &sim.env("qa").steps[0];
    assert_eq!(gate.message, "rejected by token:approver: not today");
    assert_eq!(sim.status("qa"), E::Failed);
    assert_eq!(sim.status("prod"), E::Skipped);
    assert_eq!(sim.r.status, R::Failed);
}

#[test]
fn an_approval_times_out_at_its_deadline() {
    let gate = gate("qa", &["dev"]);
    let mut sim = Sim::start(&flow("dev", vec![gate]));
    sim.run(suspend_pre_action(Some(60)));
    assert_eq!(sim.r.next_deadline(), Some(sim.t + Duration::seconds(60)));
    sim.tick(59);
    sim.run(all_ok);
    assert_eq!(sim.status("qa"), E::Suspended, "not yet");
    sim.tick(1);
    sim.run(all_ok);
    assert_eq!(sim.step_status("qa", StepKind::PreAction), S::Failed);
    assert_eq!(sim.env("qa").steps[0].message, "approval timed out");
    assert_eq!(sim.r.status, R::Failed);
}

// ------------------------------------------------- release-level hooks ---

#[test]
fn the_release_on_start_hook_runs_before_any_environment() {
    let spec = sequential_with(hooks(Some("announce"), None, None));
    let mut sim = Sim::start(&spec);
    assert_eq!(sim.advance(), [(String::new(), StepKind::OnStart)]);
    assert_eq!(
        sim.status("dev"),
        E::Pending,
        "the trigger waits for on_start"
    );
    assert!(sim.advance().is_empty(), "nothing else while it runs");
    let log = sim.run(all_ok);
    assert!(
        log.is_empty(),
        "the hook is still running (no outcome given)"
    );
    sim.r
        .complete_step(StepRef { env: None, idx: 0 }, ok(), sim.t);
    let log = sim.run(all_ok);
    assert_eq!(started_envs(&log), ["qa", "prod"]);
    assert_eq!(sim.r.status, R::Succeeded);
}

#[test]
fn a_failed_release_on_start_hook_fails_the_release_before_anything_runs() {
    let spec = sequential_with(hooks(Some("announce"), None, Some("page")));
    let mut sim = Sim::start(&spec);
    let log = sim.run(|_, k| {
        if k == StepKind::OnStart {
            Reply::Fail("chat is down")
        } else {
            Reply::Ok
        }
    });
    assert_eq!(log.last().map(|(_, k)| *k), Some(StepKind::OnFail));
    assert!(started_envs(&log).is_empty());
    for env in ["dev", "qa", "prod"] {
        assert_eq!(sim.status(env), E::Skipped, "{env}");
    }
    assert_eq!(sim.r.status, R::Failed);
    assert_eq!(sim.r.message, "the release's on_start hook failed");
}

#[test]
fn a_release_on_start_approval_suspends_the_release_until_decided() {
    let spec = sequential_with(hooks(Some("change-board"), None, None));
    let mut sim = Sim::start(&spec);
    sim.run(|_, _| Reply::Suspend(None));
    assert_eq!(sim.hook(StepKind::OnStart).status, S::Suspended);
    assert_eq!(
        sim.r.status,
        R::Suspended,
        "the release awaits the approval"
    );
    assert!(sim.advance().is_empty());
    assert_eq!(sim.r.status, R::Suspended, "and stays so");
    let ch = sim.decide(None, true, "ok").expect("awaits");
    assert!(ch.contains(&Change::Step(StepRef { env: None, idx: 0 })));
    assert_eq!(sim.r.status, R::Running);
    assert_eq!(
        sim.hook(StepKind::OnStart).message,
        "approved by token:approver: ok"
    );
    sim.run(all_ok);
    assert_eq!(sim.r.status, R::Succeeded);
}

#[test]
fn a_rejected_release_on_start_approval_fails_the_release() {
    let spec = sequential_with(hooks(Some("change-board"), None, None));
    let mut sim = Sim::start(&spec);
    sim.run(|_, _| Reply::Suspend(None));
    sim.decide(None, false, "freeze");
    sim.run(all_ok);
    assert_eq!(sim.hook(StepKind::OnStart).status, S::Failed);
    assert_eq!(sim.r.status, R::Failed);
    assert_eq!(sim.status("qa"), E::Skipped);
}

#[test]
fn a_release_on_start_approval_times_out() {
    let spec = sequential_with(hooks(Some("change-board"), None, None));
    let mut sim = Sim::start(&spec);
    sim.run(|_, _| Reply::Suspend(Some(30)));
    assert_eq!(
        sim.r.next_deadline(),
        Some(sim.t + Duration::seconds(30)),
        "the worker must wake up for the hook's deadline"
    );
    sim.tick(30);
    sim.run(all_ok);
    let hook = sim.hook(StepKind::OnStart);
    assert_eq!(
        (hook.status, hook.message.as_str()),
        (S::Failed, "approval timed out")
    );
    assert_eq!(sim.r.status, R::Failed);
}

#[test]
fn a_release_on_success_approval_holds_the_release_until_decided() {
    let spec = sequential_with(hooks(None, Some("sign-off"), None));
    let mut sim = Sim::start(&spec);
    sim.run(|env, _| {
        if env.is_empty() {
            Reply::Suspend(None)
        } else {
            Reply::Ok
        }
    });
    assert_eq!(sim.hook(StepKind::OnSuccess).status, S::Suspended);
    assert_eq!(sim.r.status, R::Suspended, "not final while the hook waits");
    sim.decide(None, true, "");
    sim.run(all_ok);
    assert_eq!(sim.r.status, R::Succeeded);
}

#[test]
fn the_release_on_fail_hook_runs_when_an_environment_fails() {
    let spec = sequential_with(hooks(None, Some("yay"), Some("page")));
    let mut sim = Sim::start(&spec);
    let log = sim.run(|env, _| {
        if env == "qa" {
            Reply::Fail("x")
        } else {
            Reply::Ok
        }
    });
    assert_eq!(log.last(), Some(&(String::new(), StepKind::OnFail)));
    assert_eq!(sim.hook(StepKind::OnSuccess).status, S::Skipped);
    assert_eq!(sim.r.status, R::Failed);
}

// --------------------------------------------------- terminate, timeout ---

#[test]
fn the_promotion_timeout_terminates_the_release() {
    let spec = FlowSpec {
        promotion_timeout_secs: Some(600),
        ..sequential()
    };
    let mut sim = Sim::start(&spec);
    sim.run(|_, _| Reply::Hold);
    assert_eq!(sim.r.next_deadline(), Some(sim.t + Duration::seconds(600)));
    sim.tick(600);
    sim.advance();
    assert_eq!(sim.r.status, R::Terminating);
    let ch = sim.r.finish_terminate(sim.t);
    assert_eq!(ch.last(), Some(&Change::Release));
    assert_eq!(sim.r.status, R::Terminated);
    assert_eq!(sim.r.message, "timeout");
    assert_eq!(
        sim.status("dev"),
        E::Succeeded,
        "finished environments stay"
    );
    assert_eq!(sim.status("qa"), E::Terminated);
    assert_eq!(sim.step_status("qa", StepKind::Action), S::Terminated);
    assert_eq!(sim.status("prod"), E::Terminated);
    assert_eq!(
        sim.step_status("prod", StepKind::Action),
        S::Skipped,
        "never started"
    );
}

#[test]
fn terminating_a_queued_release_is_immediate() {
    let mut sim = Sim::queued(&sequential());
    let ch = sim.r.terminate("not needed", "token:ops", sim.t);
    assert!(ch.contains(&Change::Release));
    assert_eq!(sim.r.status, R::Terminated);
    assert_eq!(sim.r.message, "not needed");
    // A running one only asks: its worker cancels the steps first.
    let mut sim = Sim::start(&sequential());
    sim.run(|_, _| Reply::Hold);
    sim.r.terminate("bad build", "token:ops", sim.t);
    assert_eq!(sim.r.status, R::Terminating);
    assert!(
        sim.r.request_terminate("again", "token:ops").is_empty(),
        "asked once"
    );
    assert!(
        sim.advance().is_empty(),
        "advance does nothing while terminating"
    );
}

#[test]
fn terminating_a_release_whose_on_start_approval_waits_cancels_it() {
    let spec = sequential_with(hooks(Some("change-board"), None, None));
    let mut sim = Sim::start(&spec);
    sim.run(|_, _| Reply::Suspend(Some(3600)));
    sim.r.terminate("abandoned", "token:ops", sim.t);
    sim.r.finish_terminate(sim.t);
    assert_eq!(sim.hook(StepKind::OnStart).status, S::Terminated);
    assert_eq!(sim.r.status, R::Terminated);
    assert_eq!(sim.r.next_deadline(), None, "nothing to wake up for");
    for env in ["dev", "qa", "prod"] {
        assert_eq!(sim.status(env), E::Terminated, "{env}");
    }
    // Retry runs the approval again, as a new attempt.
    sim.r
        .retry(sim.t)
        .expect("terminated releases can be retried");
    let hook = sim.hook(StepKind::OnStart);
    assert_eq!((hook.status, hook.attempt), (S::Pending, 2));
    assert_eq!(
        sim.env("qa").attempt,
        0,
        "qa never started: its first run is still ahead"
    );
    assert_eq!(sim.advance(), [(String::new(), StepKind::OnStart)]);
}

// ---------------------------------------------------------------- retry ---

#[test]
fn retry_reruns_from_the_failed_step_and_resets_skipped_environments() {
    let qa = with_policy(
        step("qa", &["dev"]),
        Some("pre"),
        Action::None,
        Some("post"),
    );
    let mut sim = Sim::start(&flow("dev", vec![qa, step("prod", &["qa"])]));
    sim.run(|_, k| {
        if k == StepKind::PostAction {
            Reply::Fail("soak")
        } else {
            Reply::Ok
        }
    });
    assert_eq!(sim.r.status, R::Failed);
    assert_eq!(sim.status("prod"), E::Skipped);
    assert!(sim.r.retry(sim.t).is_some());
    assert_eq!(sim.r.status, R::Running);
    assert!(sim.r.message.is_empty() && sim.r.finish_time.is_none());
    assert_eq!(sim.status("qa"), E::Pending);
    assert_eq!(sim.status("prod"), E::Pending);
    assert_eq!(sim.env("prod").blocked_on, ["qa"]);
    let log = sim.run(all_ok);
    let qa_steps: Vec<StepKind> = log
        .iter()
        .filter(|(e, _)| e == "qa")
        .map(|(_, k)| *k)
        .collect();
    assert_eq!(
        qa_steps,
        [StepKind::PostAction],
        "pre-action and action are not re-run"
    );
    assert_eq!(sim.env("qa").attempt, 2);
    assert_eq!(
        sim.env("qa").steps[2].attempt,
        2,
        "post-action: second attempt"
    );
    assert_eq!(sim.env("qa").steps[0].attempt, 1, "pre-action: ran once");
    assert_eq!(sim.r.status, R::Succeeded);
}

#[test]
fn only_failed_or_terminated_releases_can_be_retried() {
    let mut sim = Sim::start(&sequential());
    assert!(sim.r.retry(sim.t).is_none(), "running");
    sim.run(all_ok);
    assert_eq!(sim.r.status, R::Succeeded);
    assert!(sim.r.retry(sim.t).is_none(), "succeeded");
    let mut queued = Sim::queued(&sequential());
    assert!(queued.r.retry(queued.t).is_none(), "queued");
}

#[test]
fn a_late_result_of_a_replaced_step_is_ignored() {
    let mut sim = Sim::start(&sequential());
    sim.advance();
    let at = sim.action_ref("qa");
    sim.r.complete_step(at, ok(), sim.t);
    // The same outcome delivered twice (a redelivered result): no change.
    assert!(sim.r.complete_step(at, fail("late"), sim.t).is_empty());
    assert_eq!(sim.step_status("qa", StepKind::Action), S::Succeeded);
    // A step that never started cannot complete.
    let prod = sim.action_ref("prod");
    assert!(sim.r.complete_step(prod, ok(), sim.t).is_empty());
}

// ------------------------------------------------------------- events ---

#[test]
fn changes_are_ordered_cause_before_effect_and_counters_are_announced() {
    let mut sim = Sim::start(&sequential());
    let before = sim.r.counters();
    let (mut changes, _) = sim.r.advance(sim.t);
    sim.r.announce_counters(before, &mut changes);
    assert!(
        changes.contains(&Change::Release),
        "counters moved: a release change"
    );
    let mut sorted = changes.clone();
    normalize(&mut sorted);
    assert_eq!(sorted, changes, "advance returns normalized changes");
    let mut shuffled = vec![
        Change::Release,
        Change::Env(1),
        Change::Step(StepRef {
            env: Some(1),
            idx: 0,
        }),
        Change::Env(1),
    ];
    normalize(&mut shuffled);
    assert_eq!(
        shuffled,
        [
            Change::Step(StepRef {
                env: Some(1),
                idx: 0
            }),
            Change::Env(1),
            Change::Release
        ]
    );
    // The event that makes the release final is its transaction's last.
    let mut sim = Sim::start(&sequential());
    sim.run(all_ok);
    assert_eq!(sim.r.status, R::Succeeded);
    let body = sim.r.event_body(Change::Release).expect("body");
    assert!(body.is_final());
    assert!(!sim.r.event_body(Change::Env(0)).expect("body").is_final());
}

// ------------------------------------------------- admission, actions ---

fn active(ids: &[(&str, R)]) -> Vec<(String, R)> {
    ids.iter().map(|(i, s)| (i.to_string(), *s)).collect()
}

#[test]
fn queue_admission_starts_alone_queues_behind_others_and_drops_the_oldest() {
    let a = admission::admit(Concurrency::Queue, "p", "new", &[]);
    assert!(a.start && a.terminate.is_empty() && a.behind.is_none());
    let a = admission::admit(
        Concurrency::Queue,
        "p",
        "new",
        &active(&[("r1", R::Running), ("r2", R::Queued)]),
    );
    assert!(!a.start && a.terminate.is_empty(), "waits its turn");
    assert_eq!(a.behind.as_deref(), Some("r2"), "right behind the newest");
    assert!(admission::queued_message("r2").starts_with("queued behind release r2"));
    let mut full = active(&[("r0", R::Suspended)]);
    full.extend((0..MAX_QUEUED).map(|i| (format!("q{i:02}"), R::Queued)));
    let a = admission::admit(Concurrency::Queue, "p", "new", &full);
    assert!(!a.start);
    assert_eq!(a.terminate.len(), 1);
    assert_eq!(
        a.terminate[0].0, "q00",
        "the oldest queued release makes room"
    );
    assert!(a.terminate[0].1.starts_with("dropped from the queue"));
}

#[test]
fn terminate_admission_supersedes_every_active_release() {
    let a = admission::admit(
        Concurrency::Terminate,
        "p",
        "new",
        &active(&[("r1", R::Running), ("r2", R::Queued)]),
    );
    assert!(a.start);
    assert_eq!(
        a.terminate,
        [
            ("r1".to_string(), "superseded by release new".to_string()),
            ("r2".to_string(), "superseded by release new".to_string())
        ]
    );
}

#[test]
fn actions_record_commit_or_explain() {
    match action::plan(Action::None, "1.2.0", "qa") {
        action::Plan::Done(Outcome::Succeeded { message, .. }) => {
            assert_eq!(message, "recorded version 1.2.0 in qa")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        action::plan(Action::Commit, "1.2.0", "qa"),
        action::Plan::Commit
    );
    assert_eq!(
        action::plan(Action::PullRequest, "1.2.0", "qa"),
        action::Plan::PullRequest
    );
}

// -------------------------------------------------------- pull requests ---

/// dev → qa (approval gate) ∥ dev → prod (PULL_REQUEST), with prod's
/// action opened as pull request #7 and awaiting review.
fn awaiting_review() -> (Sim, StepRef) {
    let prod = with_policy(step("prod", &["dev"]), None, Action::PullRequest, None);
    let mut sim = Sim::start(&flow("dev", vec![gate("qa", &["dev"]), prod]));
    sim.run(|env, k| match (env, k) {
        ("qa", StepKind::PreAction) => Reply::Suspend(None),
        ("prod", StepKind::Action) => Reply::Hold,
        _ => Reply::Ok,
    });
    let at = sim.action_ref("prod");
    let ch = sim
        .r
        .await_review(at, 7, "https://forge/acme/apps/pulls/7", "abc123");
    assert_eq!(ch, vec![Change::Step(at), Change::Env(at.env.unwrap())]);
    sim.run(all_ok);
    (sim, at)
}

#[test]
fn a_pull_request_suspends_its_environment_as_awaiting_review() {
    let (sim, at) = awaiting_review();
    let message = "awaiting pull request #7 https://forge/acme/apps/pulls/7";
    assert_eq!(sim.status("prod"), E::Suspended);
    assert_eq!(sim.env("prod").message, message);
    let step = sim.r.step(at).unwrap();
    assert_eq!(
        (step.status, step.pull_request, step.commit_sha.as_str()),
        (S::Suspended, 7, "abc123")
    );
    assert_eq!(step.message, message);
    assert_eq!(sim.r.status, R::Suspended, "nothing else runs");
    let c = sim.r.counters();
    assert_eq!((c.suspended, c.awaiting_review), (2, 1), "{c:?}");
    assert_eq!(sim.r.live_steps(), vec![at], "its task keeps polling");
    assert_eq!(sim.r.next_deadline(), None);
}

#[test]
fn approving_decides_the_approval_never_the_pull_request() {
    let (mut sim, at) = awaiting_review();
    assert!(
        sim.decide(at.env, true, "").is_none(),
        "a pull request is decided on the forge"
    );
    let qa = sim.r.env_index("qa");
    sim.decide(qa, true, "").expect("qa's gate");
    sim.run(all_ok);
    assert_eq!(sim.status("qa"), E::Succeeded);
    assert_eq!(sim.status("prod"), E::Suspended);
    assert_eq!(sim.r.status, R::Suspended);
}

#[test]
fn a_merged_pull_request_completes_the_action_with_the_merge_commit() {
    let (mut sim, at) = awaiting_review();
    let merged = Outcome::Succeeded {
        message: "pull request #7 merged as def456".into(),
        outputs: Default::default(),
        artifact: Some(Artifact {
            commit_sha: "def456".into(),
            url: "https://forge/acme/apps/pulls/7".into(),
        }),
    };
    let ch = sim.r.complete_step(at, merged, sim.t);
    assert!(ch.contains(&Change::Release), "RUNNING again: {ch:?}");
    assert_eq!(sim.env("prod").message, "", "no longer awaiting");
    assert_eq!(sim.r.promoted_environment(at), Some("prod"));
    assert_eq!(sim.r.step(at).unwrap().commit_sha, "def456");
    sim.run(all_ok);
    assert_eq!(sim.status("prod"), E::Succeeded);
    assert_eq!(sim.r.counters().awaiting_review, 0);
}

#[test]
fn a_closed_pull_request_fails_the_environment() {
    let (mut sim, at) = awaiting_review();
    sim.r.complete_step(
        at,
        fail("pull request #7 was closed without being merged"),
        sim.t,
    );
    sim.run(all_ok);
    assert_eq!(sim.status("prod"), E::Failed);
    assert_eq!(
        sim.env("prod").message,
        "action failed: pull request #7 was closed without being merged"
    );
}

#[test]
fn terminating_ends_the_wait_for_review() {
    let (mut sim, at) = awaiting_review();
    sim.r.terminate("timeout", "token:ops", sim.t);
    assert!(
        sim.r.live_steps().contains(&at),
        "until the worker finishes it"
    );
    sim.r.finish_terminate(sim.t);
    assert_eq!(sim.r.step(at).unwrap().status, S::Terminated);
    assert_eq!(sim.status("prod"), E::Terminated);
    assert!(sim.r.live_steps().is_empty());
    assert_eq!(sim.r.status, R::Terminated);
}

#[test]
fn workflow_outputs_accumulate_in_the_promotion_context() {
    let mut sim = Sim::start(&sequential());
    sim.advance();
    let at = sim.action_ref("qa");
    let mut outputs = serde_json::Map::new();
    outputs.insert("ticket".into(), "CHG-1".into());
    sim.r.complete_step(
        at,
        Outcome::Succeeded {
            message: "done".into(),
            outputs,
            artifact: None,
        },
        sim.t,
    );
    assert_eq!(
        sim.r.context.get("ticket"),
        Some(&serde_json::json!("CHG-1"))
    );
}

// ---------------------------------------------------------------- sync ---

#[test]
fn an_argocd_application_gets_a_sync_step_after_its_action_that_decides_the_environment() {
    let spec = flow(
        "dev",
        vec![
            with_policy(step("qa", &["dev"]), None, Action::None, Some("smoke")),
            step("prod", &["qa"]),
        ],
    );
    let t = Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap();
    let r = Release::new(
        "r1".into(),
        &spec,
        1,
        "p",
        "1.2.0",
        &|env: &str| format!("p-{env}"),
        &|env: &str| env == "qa",
        t,
    );
    let kinds = |e: usize| r.envs[e].steps.iter().map(|s| s.kind).collect::<Vec<_>>();
    assert_eq!(
        kinds(1),
        [StepKind::Action, StepKind::Sync, StepKind::PostAction]
    );
    assert_eq!(kinds(2), [StepKind::Action], "prod has no Argo CD app");
    let mut sim = Sim {
        r,
        t,
        rule: ApprovalRule::default(),
    };
    sim.r.start(t);
    // The sync runs after the action and before the post-action; its
    // progress is a message on the running step, one change per new text.
    let log = sim.run(|_, kind| match kind {
        StepKind::Sync => Reply::Hold,
        _ => Reply::Ok,
    });
    assert_eq!(
        log,
        [
            ("qa".to_string(), StepKind::Action),
            ("qa".to_string(), StepKind::Sync)
        ]
    );
    let sync = StepRef {
        env: Some(1),
        idx: 1,
    };
    let m = "waiting for Argo CD: OutOfSync";
    assert_eq!(sim.r.step_progress(sync, m), vec![Change::Step(sync)]);
    assert!(
        sim.r.step_progress(sync, m).is_empty(),
        "unchanged: no event"
    );
    assert_eq!(sim.r.step(sync).map(|s| s.message.as_str()), Some(m));
    sim.r.complete_step(
        sync,
        fail("Argo CD reports the application Degraded"),
        sim.t,
    );
    sim.run(|_, _| Reply::Ok);
    assert_eq!(sim.status("qa"), E::Failed);
    assert_eq!(
        sim.env("qa").message,
        "sync failed: Argo CD reports the application Degraded"
    );
    assert_eq!(sim.step_status("qa", StepKind::PostAction), S::Skipped);
    assert_eq!(sim.status("prod"), E::Skipped);
    // A finished step takes no more progress.
    assert!(sim.r.step_progress(sync, "late").is_empty());
}
