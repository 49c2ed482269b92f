//! The live release view, built on `WatchRelease` with resume (a dropped
//! connection reconnects from the last `seq`).
//!
//! On a terminal it redraws in place: the flow's waves (environments
//! grouped by dependency depth), a coloured status symbol per environment,
//! its current step and elapsed time, and a summary line with counters.
//! When stdout is not a terminal (piped, in CI, the demo's logs) it prints
//! one line per event instead, which reads well in a file.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use super::client::Conn;
use crossterm::style::{Color, Stylize};

use super::output::{self, elapsed, env_status, outln, release_status, step_kind, step_status};
use crate::proto::v1 as pb;
use crate::proto::v1::release_event::Change;
use crate::proto::v1::release_service_client::ReleaseServiceClient;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How a watch shows progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// `Live` on a terminal, `Lines` otherwise.
    Auto,
    /// One line per event.
    Lines,
    /// Redrawn in place (needs a terminal).
    Live,
    /// Nothing: only the final status is returned.
    Quiet,
}

/// Gives up after this many reconnects in a row without progress.
const MAX_RECONNECTS: u32 = 30;

/// The reconnects of a resumable stream (`WatchRelease`, `WatchReleases`):
/// a dropped connection (UNAVAILABLE, or a stream that ends early) is
/// resumed a second later, at most [`MAX_RECONNECTS`] times in a row
/// without progress.
#[derive(Debug, Default)]
pub(super) struct Reconnects(u32);

impl Reconnects {
    /// Whether `e` is worth resuming after; counts the attempt.
    pub(super) fn retry(&mut self, e: &tonic::Status) -> bool {
        e.code() == tonic::Code::Unavailable && self.count()
    }

    /// Counts an attempt; false once the attempts are used up.
    pub(super) fn count(&mut self) -> bool {
        self.0 += 1;
        self.0 <= MAX_RECONNECTS
    }

    /// The stream moved on: the count starts again.
    pub(super) fn progress(&mut self) {
        self.0 = 0;
    }

    /// The pause before reconnecting.
    pub(super) async fn pause(&self) {
        tokio::time::sleep(Duration::from_secs(1)).await;
    }

    /// Opens the stream with `open`, again after a pause while the
    /// connection is down (UNAVAILABLE) and attempts remain.
    pub(super) async fn open<T, F, Fut>(
        &mut self,
        mut open: F,
    ) -> Result<tonic::Streaming<T>, tonic::Status>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<
                Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
            >,
    {
        loop {
            match open().await {
                Ok(s) => return Ok(s.into_inner()),
                Err(e) if self.retry(&e) => self.pause().await,
                Err(e) => return Err(e),
            }
        }
    }
}

pub(super) fn symbol(status: &str) -> &'static str {
    match status {
        "SUCCEEDED" => "✔",
        "FAILED" => "✘",
        "RUNNING" => "▶",
        "SUSPENDED" => "⏸",
        "SKIPPED" => "↷",
        "TERMINATED" | "TERMINATING" => "■",
        "QUEUED" => "…",
        _ => "·",
    }
}

fn color(status: &str) -> Color {
    match status {
        "SUCCEEDED" => Color::Green,
        "FAILED" => Color::Red,
        "RUNNING" | "TERMINATING" => Color::Cyan,
        "SUSPENDED" | "QUEUED" => Color::Yellow,
        "TERMINATED" => Color::Magenta,
        _ => Color::DarkGrey,
    }
}

fn is_final(s: pb::ReleaseStatus) -> bool {
    matches!(
        s,
        pb::ReleaseStatus::Succeeded | pb::ReleaseStatus::Failed | pb::ReleaseStatus::Terminated
    )
}

/// Watches release `id` until it is final and returns the final status;
/// on a terminal the view redraws in place, otherwise one line per change.
pub async fn watch(channel: Conn, id: &str) -> Res<pb::ReleaseStatus> {
    watch_until(channel, id, View::Auto, None).await
}

/// [`watch`] with an explicit view, that also stops when the release is in
/// status `until`.
pub async fn watch_until(
    channel: Conn,
    id: &str,
    view: View,
    until: Option<pb::ReleaseStatus>,
) -> Res<pb::ReleaseStatus> {
    let view = match view {
        View::Auto if std::io::stdout().is_terminal() => View::Live,
        View::Auto => View::Lines,
        v => v,
    };
    let mut w = Watcher {
        id: id.to_string(),
        view,
        start: Instant::now(),
        after: 0,
        status: pb::ReleaseStatus::Unspecified,
        release: None,
        drawn: 0,
        note: String::new(),
    };
    let mut reconnects = Reconnects::default();
    // Ctrl-C stops the watch, not the release: say so, and how to come back.
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        let request = pb::WatchReleaseRequest {
            release_id: id.to_string(),
            after_seq: w.after,
        };
        let mut stream = reconnects
            .open(|| {
                let mut client = ReleaseServiceClient::new(channel.clone());
                let request = request.clone();
                async move { client.watch_release(request).await }
            })
            .await?;
        loop {
            let message = tokio::select! {
                // In this order: the Ctrl-C handler is registered (polled)
                // before the first message is shown.
                biased;
                _ = &mut interrupted => {
                    w.interrupted();
                    std::process::exit(130);
                }
                m = stream.message() => m,
                _ = tick.tick(), if w.view == View::Live => {
                    w.redraw();
                    continue;
                }
            };
            match message {
                Ok(Some(msg)) => {
                    if let Some(ev) = msg.event {
                        let before = w.after;
                        w.event(ev);
                        if w.after > before {
                            reconnects.progress();
                        }
                        if until == Some(w.status) {
                            w.finish();
                            return Ok(w.status);
                        }
                    }
                }
                // The stream ends with OK after the final event; an earlier
                // clean end (a proxy closing it) is resumed like an error.
                Ok(None) if is_final(w.status) || !reconnects.count() => {
                    w.finish();
                    return Ok(w.status);
                }
                Ok(None) => {
                    w.lost(format!(
                        "stream ended early; resuming after seq {}",
                        w.after
                    ));
                    reconnects.pause().await;
                    break;
                }
                Err(e) if reconnects.retry(&e) => {
                    w.lost(format!(
                        "connection lost ({}); resuming after seq {}",
                        e.message(),
                        w.after
                    ));
                    reconnects.pause().await;
                    break;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

struct Watcher {
    id: String,
    view: View,
    start: Instant,
    /// The last `seq` seen: where a reconnect resumes.
    after: i64,
    status: pb::ReleaseStatus,
    /// The release as the events built it (the live view's model).
    release: Option<pb::Release>,
    /// Lines of the last frame, to move back over when redrawing.
    drawn: usize,
    /// A transient remark shown under the live view (reconnects).
    note: String,
}

impl Watcher {
    fn event(&mut self, ev: pb::ReleaseEvent) {
        let Some(change) = ev.change else { return };
        if !matches!(change, Change::Heartbeat(_)) {
            self.after = ev.seq;
            self.note.clear();
        }
        match self.view {
            View::Lines => {
                self.print_line(&change);
                // The model is kept in every view: the summary's duration
                // comes from it.
                self.apply(change);
            }
            View::Live => {
                self.apply(change);
                self.redraw();
            }
            _ => self.apply(change),
        }
    }

    /// Applies a change to the model.
    fn apply(&mut self, change: Change) {
        match change {
            Change::Snapshot(r) => {
                self.status = pb::ReleaseStatus::try_from(r.status).unwrap_or_default();
                self.release = Some(r);
            }
            Change::Release(c) => {
                self.status = pb::ReleaseStatus::try_from(c.status).unwrap_or_default();
                if let Some(r) = &mut self.release {
                    r.status = c.status;
                    r.message = c.message;
                    r.counters = c.counters.or(r.counters);
                    r.start_time = c.start_time.or(r.start_time);
                    r.finish_time = c.finish_time;
                }
            }
            Change::Environment(c) => {
                if let (Some(r), Some(mut e)) = (&mut self.release, c.environment) {
                    match r
                        .environments
                        .iter_mut()
                        .find(|x| x.environment == e.environment)
                    {
                        Some(x) => {
                            if e.steps.is_empty() {
                                e.steps = std::mem::take(&mut x.steps);
                            }
                            *x = e;
                        }
                        None => r.environments.push(e),
                    }
                }
            }
            Change::Step(c) => {
                if let (Some(r), Some(step)) = (&mut self.release, c.step) {
                    let steps = if c.environment.is_empty() {
                        Some(&mut r.hooks)
                    } else {
                        r.environments
                            .iter_mut()
                            .find(|x| x.environment == c.environment)
                            .map(|e| &mut e.steps)
                    };
                    if let Some(steps) = steps {
                        let i = c.index.max(0) as usize;
                        if steps.len() <= i {
                            steps.resize(i + 1, pb::StepRun::default());
                        }
                        steps[i] = step;
                    }
                }
            }
            Change::Heartbeat(_) => {}
        }
    }

    /// One line per change (the view when stdout is not a terminal).
    fn print_line(&mut self, change: &Change) {
        let t = self.start.elapsed().as_secs_f64();
        match change {
            Change::Snapshot(r) => {
                self.status = pb::ReleaseStatus::try_from(r.status).unwrap_or_default();
                for e in &r.environments {
                    self.print_environment(t, e);
                }
                let s = release_status(r.status);
                outln!(
                    "[{t:5.1}s] {} release {s}  ({}){}",
                    symbol(&s),
                    counters(&r.counters.unwrap_or_default()).join(", "),
                    if r.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", r.message)
                    }
                );
            }
            Change::Release(c) => {
                let s = release_status(c.status);
                self.status = pb::ReleaseStatus::try_from(c.status).unwrap_or_default();
                let n = c.counters.unwrap_or_default();
                outln!(
                    "[{t:5.1}s] {} release {s}  ({}){}",
                    symbol(&s),
                    counters(&n).join(", "),
                    if c.message.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", c.message)
                    }
                );
            }
            Change::Environment(c) => {
                if let Some(e) = &c.environment {
                    self.print_environment(t, e);
                }
            }
            Change::Step(c) => {
                if let Some(s) = &c.step {
                    let env = if c.environment.is_empty() {
                        "release"
                    } else {
                        &c.environment
                    };
                    // A running step's message is its progress ("waiting
                    // for Argo CD: OutOfSync").
                    let progress =
                        if s.status == pb::StepStatus::Running as i32 && !s.message.is_empty() {
                            format!(" ({})", s.message)
                        } else {
                            String::new()
                        };
                    outln!(
                        "[{t:5.1}s]   {:<10} {}: {}{progress}",
                        env,
                        step_label(s),
                        step_status(s.status)
                    );
                }
            }
            Change::Heartbeat(_) => {}
        }
    }

    /// An environment's line in the piped view, and the approval hint when
    /// it waits for one.
    fn print_environment(&self, t: f64, e: &pb::EnvironmentRun) {
        let s = env_status(e.status);
        // A running environment's progress is on its step lines.
        let detail = if s == "RUNNING" {
            String::new()
        } else {
            env_detail(e, &s)
        };
        let extra = if detail.is_empty() {
            String::new()
        } else {
            format!(" ({detail})")
        };
        outln!("[{t:5.1}s] {} {:<10} {s}{extra}", symbol(&s), e.environment);
        if let Some(hint) = approval_hint(&self.id, e) {
            outln!("[{t:5.1}s]   {hint}");
        }
    }

    /// Tells the person watching that the stream is being resumed.
    fn lost(&mut self, note: String) {
        match self.view {
            View::Live => {
                self.note = note;
                self.redraw();
            }
            View::Lines => eprintln!("{note}"),
            _ => {}
        }
    }

    /// Redraws the live view in place.
    fn redraw(&mut self) {
        if self.view != View::Live {
            return;
        }
        // A pseudo-terminal without a size reports 0 columns.
        let (width, height) = crossterm::terminal::size()
            .ok()
            .filter(|(w, h)| *w > 0 && *h > 0)
            .map_or((120, 50), |(w, h)| (w as usize, h as usize));
        let (width, height) = (width.max(20), height.max(5));
        let mut lines = self.frame(width - 1);
        // The cursor cannot move above the screen's top: a frame taller than
        // the terminal would scroll and leave stale lines behind.
        if lines.len() >= height {
            let hidden = lines.len() - (height - 2);
            lines.truncate(height - 2);
            lines.push(Line::plain(format!(
                "  … {hidden} more lines (a taller terminal shows them)"
            )));
        }
        let mut out = std::io::stdout().lock();
        if self.drawn > 0 {
            let _ = crossterm::queue!(
                out,
                crossterm::cursor::MoveToPreviousLine(self.drawn as u16),
                crossterm::terminal::Clear(crossterm::terminal::ClearType::FromCursorDown)
            );
        }
        for line in &lines {
            let _ = writeln!(out, "{}", line.render(width - 1));
        }
        let _ = out.flush();
        self.drawn = lines.len();
    }

    /// The live view's lines for a terminal `width` columns wide. What
    /// matters most comes first on each line, so that cutting a line at the
    /// edge never hides a status, a counter or an elapsed time: environment
    /// names are shortened to leave room for them, and the details (current
    /// step, messages) come last.
    fn frame(&self, width: usize) -> Vec<Line> {
        let mut lines = Vec::new();
        let Some(r) = &self.release else {
            lines.push(Line::plain(format!("waiting for release {} …", self.id)));
            return lines;
        };
        let status = release_status(r.status);
        let mut head = Line::plain(format!("release {}  ", r.id));
        head.push(
            format!("{} {status}", symbol(&status)),
            Some(color(&status)),
        );
        head.push(
            format!(
                "  {}  {} {} · flow {} v{}",
                elapsed(
                    r.start_time.as_ref().or(r.create_time.as_ref()),
                    r.finish_time.as_ref()
                ),
                r.product,
                r.version,
                r.flow,
                r.flow_version,
            ),
            None,
        );
        lines.push(head);
        lines.push(Line::plain(String::new()));
        let nodes: Vec<(&str, &[String])> = r
            .environments
            .iter()
            .map(|e| (e.environment.as_str(), e.depends_on.as_slice()))
            .collect();
        // Wave label (10), symbol and spaces (3), status (10), time (8) and
        // a little of the detail: the rest is the names' room.
        let room = width.saturating_sub(10 + 3 + 2 + 10 + 8 + 12).max(8);
        let name_width = nodes
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0)
            .min(room);
        for (i, wave) in output::waves(&nodes).iter().enumerate() {
            for (j, name) in wave.iter().enumerate() {
                let Some(e) = r.environments.iter().find(|e| e.environment == *name) else {
                    continue;
                };
                let s = env_status(e.status);
                let label = if j == 0 {
                    format!("  wave {i:<2} ")
                } else {
                    " ".repeat(10)
                };
                let mut line = Line::plain(label);
                line.push(symbol(&s).to_string(), Some(color(&s)));
                line.push(
                    format!(" {:<name_width$}  ", shorten(name, name_width)),
                    None,
                );
                line.push(format!("{s:<10}"), Some(color(&s)));
                let time = elapsed(e.start_time.as_ref(), e.finish_time.as_ref());
                line.push(format!(" {time:>7}  {}", env_detail(e, &s)), None);
                lines.push(line);
            }
        }
        lines.push(Line::plain(String::new()));
        let n = r.counters.unwrap_or_default();
        let mut summary = Line::plain(format!("  {}/{} succeeded", n.succeeded, n.total));
        // Only the counts that are not zero: the line fits 80 columns.
        for (count, what, status) in counts(&n).into_iter().skip(1) {
            if count > 0 {
                summary.push(" · ".to_string(), None);
                summary.push(format!("{count} {what}"), Some(color(status)));
            }
        }
        lines.push(summary);
        if !r.message.is_empty() {
            lines.push(Line::plain(format!("  {}", r.message)));
        }
        for e in &r.environments {
            if let Some(hint) = approval_hint(&r.id, e) {
                lines.push(Line::plain(format!("  {hint}")));
            }
        }
        if !self.note.is_empty() {
            lines.push(Line::plain(format!("  {}", self.note)));
        }
        lines
    }

    /// Ctrl-C: the release goes on without the watch.
    fn interrupted(&mut self) {
        if self.view == View::Live {
            self.redraw();
        }
        let _ = std::io::stdout().flush();
        let status = release_status(self.status as i32);
        if is_final(self.status) {
            eprintln!("\nstopped watching: release {} is {status}", self.id);
        } else {
            eprintln!(
                "\nstopped watching; release {id} is {status} and keeps running on the server.\n  re-attach: promoflow release watch {id}\n  stop it:   promoflow release terminate {id}",
                id = self.id
            );
        }
    }

    /// Ends the view with the final status line.
    fn finish(&mut self) {
        if self.view == View::Live {
            self.redraw();
        }
        if self.view != View::Quiet {
            outln!(
                "\nrelease {} {} {}",
                self.id,
                release_status(self.status as i32),
                self.duration()
            );
        }
    }

    /// How long the release ran, from the server's times: a release that
    /// finished before the watch began still reads as long as it took.
    fn duration(&self) -> String {
        let r = self.release.as_ref();
        let start = output::datetime(r.and_then(|r| r.start_time.as_ref()));
        let finish = output::datetime(r.and_then(|r| r.finish_time.as_ref()));
        match (start, finish) {
            (Some(s), Some(f)) if is_final(self.status) => {
                format!("in {:.1}s", (f - s).as_seconds_f64().max(0.0))
            }
            (Some(s), _) => format!(
                "after {:.1}s",
                (chrono::Utc::now() - s).as_seconds_f64().max(0.0)
            ),
            _ => format!("after {:.1}s", self.start.elapsed().as_secs_f64()),
        }
    }
}

/// A release's counters by name and the status that colours them;
/// SUSPENDED environments count as awaiting approval (or review), never as
/// running.
fn counts(n: &pb::ReleaseCounters) -> [(i32, &'static str, &'static str); 8] {
    [
        (n.succeeded, "succeeded", "SUCCEEDED"),
        (n.running, "running", "RUNNING"),
        (
            (n.suspended - n.awaiting_review).max(0),
            "awaiting approval",
            "SUSPENDED",
        ),
        (n.awaiting_review, "awaiting review", "SUSPENDED"),
        (n.pending, "pending", "PENDING"),
        (n.failed, "failed", "FAILED"),
        (n.skipped, "skipped", "SKIPPED"),
        (n.terminated, "terminated", "TERMINATED"),
    ]
}

/// The piped view's counters: `3 succeeded, 1 awaiting approval, 1 pending`
/// (the first always, the others when not zero).
pub(super) fn counters(n: &pb::ReleaseCounters) -> Vec<String> {
    counts(n)
        .into_iter()
        .enumerate()
        .filter(|(i, (count, ..))| *i == 0 || *count > 0)
        .map(|(_, (count, what, _))| format!("{count} {what}"))
        .collect()
}

/// What to run to decide an approval the environment waits for (not for a
/// pull request under review: that is decided on the forge).
fn approval_hint(id: &str, e: &pb::EnvironmentRun) -> Option<String> {
    (e.status == pb::EnvironmentStatus::Suspended as i32 && !awaits_review(e)).then(|| {
        format!(
            "approve: promoflow release approve {id} {env}   (or: promoflow release reject {id} {env})",
            env = e.environment
        )
    })
}

/// Whether the environment is suspended on a pull request under review
/// (decided on the forge), not on an approval.
fn awaits_review(e: &pb::EnvironmentRun) -> bool {
    e.steps
        .iter()
        .any(|s| s.status == pb::StepStatus::Suspended as i32 && s.pull_request_number > 0)
}

/// `post-action soak-1s`, or `action` without a workflow.
pub(super) fn step_label(s: &pb::StepRun) -> String {
    if s.workflow.is_empty() {
        step_kind(s.kind)
    } else {
        format!("{} {}", step_kind(s.kind), s.workflow)
    }
}

/// What an environment is doing, waiting for, or why it failed or was
/// skipped (also `release get`'s message column).
pub(super) fn env_detail(e: &pb::EnvironmentRun, status: &str) -> String {
    let current = e.steps.iter().rev().find(|s| {
        matches!(
            pb::StepStatus::try_from(s.status),
            Ok(pb::StepStatus::Running | pb::StepStatus::Suspended)
        )
    });
    let text = match status {
        "PENDING" if !e.blocked_on.is_empty() => {
            format!("waiting for {}", e.blocked_on.join(", "))
        }
        // A PULL_REQUEST action awaits review: its message names the pull
        // request (`awaiting pull request #<n> <url>`).
        "SUSPENDED" if awaits_review(e) => {
            format!(
                "awaiting review: {}",
                e.message.trim_start_matches("awaiting ")
            )
        }
        // The approval's own message counts its decisions (`1 of 2 approvals`).
        "SUSPENDED" => match current {
            // The approval's message may say it all (`awaiting approval
            // (1 of 2)`); otherwise it adds to it.
            Some(s) if s.message.starts_with("awaiting approval") => {
                format!("{}: {}", step_label(s), s.message)
            }
            Some(s) if !s.message.is_empty() => {
                format!("{}: awaiting approval ({})", step_label(s), s.message)
            }
            Some(s) => format!("{}: awaiting approval", step_label(s)),
            None if !e.message.is_empty() => e.message.clone(),
            None => "awaiting approval".to_owned(),
        },
        "RUNNING" => current
            .map(|s| {
                if s.message.is_empty() {
                    step_label(s)
                } else {
                    format!("{}: {}", step_label(s), s.message)
                }
            })
            .unwrap_or_default(),
        "FAILED" | "SKIPPED" | "TERMINATED" if !e.message.is_empty() => e.message.clone(),
        "SKIPPED" if !e.blocked_on.is_empty() => {
            format!("skipped: {} did not succeed", e.blocked_on.join(", "))
        }
        "SKIPPED" => "skipped".to_owned(),
        _ => String::new(),
    };
    match (text.is_empty(), e.attempt > 1) {
        (_, false) => text,
        (true, true) => format!("attempt {}", e.attempt),
        (false, true) => format!("{text}; attempt {}", e.attempt),
    }
}

/// `name` in at most `max` characters: a longer one keeps its start and its
/// end (`prod-europe-…-west-2`), where names usually differ.
fn shorten(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max || max < 3 {
        return name.to_owned();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = name.chars().take(head).collect();
    let end: String = name.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

/// A line of the live view: text segments, some coloured.
struct Line(Vec<(String, Option<Color>)>);

impl Line {
    fn plain(s: String) -> Self {
        Self(vec![(s, None)])
    }

    fn push(&mut self, s: String, c: Option<Color>) {
        self.0.push((s, c));
    }

    /// The line cut to `width` characters (a wrapped line would break the
    /// redraw's line count), with colours.
    fn render(&self, width: usize) -> String {
        let mut out = String::new();
        let mut left = width;
        let last = self.0.len().saturating_sub(1);
        for (i, (text, c)) in self.0.iter().enumerate() {
            let text = if i == last { text.trim_end() } else { text };
            if left == 0 {
                break;
            }
            let part: String = text.chars().take(left).collect();
            left -= part.chars().count();
            match c {
                Some(c) => out.push_str(&part.with(*c).to_string()),
                None => out.push_str(&part),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str, status: pb::EnvironmentStatus, deps: &[&str]) -> pb::EnvironmentRun {
        pb::EnvironmentRun {
            environment: name.into(),
            status: status as i32,
            depends_on: deps.iter().map(|d| d.to_string()).collect(),
            start_time: Some(a_minute_ago()),
            message: "a long message that explains in many words what this environment does now"
                .into(),
            ..Default::default()
        }
    }

    fn a_minute_ago() -> prost_types::Timestamp {
        prost_types::Timestamp {
            seconds: chrono::Utc::now().timestamp() - 65,
            nanos: 0,
        }
    }

    fn watcher(release: pb::Release) -> Watcher {
        Watcher {
            id: release.id.clone(),
            view: View::Live,
            start: Instant::now(),
            after: 0,
            status: pb::ReleaseStatus::Running,
            release: Some(release),
            drawn: 0,
            note: String::new(),
        }
    }

    /// On 80 columns the names give way; statuses, counters and elapsed
    /// times stay whole.
    #[test]
    fn an_80_column_frame_keeps_statuses_counters_and_times() {
        use pb::EnvironmentStatus as S;
        let long = "production-europe-central-frankfurt-primary-cluster";
        let release = pb::Release {
            id: "01a23d51-8a90-7518-8cb6-f58046d5d897".into(),
            product: "a-product-with-a-rather-long-name".into(),
            version: "1.2.3-rc.4+build.567".into(),
            flow: "multi-env-parallel-promotion".into(),
            flow_version: 12,
            status: pb::ReleaseStatus::Running as i32,
            start_time: Some(a_minute_ago()),
            counters: Some(pb::ReleaseCounters {
                total: 4,
                succeeded: 1,
                running: 1,
                suspended: 1,
                pending: 1,
                ..Default::default()
            }),
            environments: vec![
                env("dev", S::Succeeded, &[]),
                env(long, S::Running, &["dev"]),
                env(
                    "production-asia-pacific-singapore-cluster",
                    S::Suspended,
                    &["dev"],
                ),
                env("qa", S::Pending, &[long]),
            ],
            ..Default::default()
        };
        let w = watcher(release);
        let lines: Vec<String> = w.frame(79).iter().map(|l| strip(&l.render(79))).collect();
        let text = lines.join("\n");
        for line in &lines {
            assert!(line.chars().count() <= 79, "{line:?} is too wide:\n{text}");
        }
        assert!(lines[0].contains("RUNNING  1m"), "{text}");
        for status in ["SUCCEEDED", "RUNNING", "SUSPENDED", "PENDING"] {
            // Each row keeps its status and, after it, its elapsed time.
            let row = lines
                .iter()
                .skip(1)
                .find(|l| l.contains(&format!(" {status} ")))
                .unwrap_or_else(|| panic!("no {status} row:\n{text}"));
            let after = row.split(status).nth(1).unwrap_or_default();
            assert!(after.trim_start().starts_with("1m"), "{row:?}\n{text}");
        }
        assert!(
            text.contains("production-europ…t-primary-cluster"),
            "{text}"
        );
        let summary = lines
            .iter()
            .find(|l| l.contains("succeeded"))
            .expect("summary");
        for count in [
            "1/4 succeeded",
            "1 running",
            "1 awaiting approval",
            "1 pending",
        ] {
            assert!(summary.contains(count), "{count} missing in {summary:?}");
        }
    }

    /// The text of a rendered line without its colour codes.
    fn strip(s: &str) -> String {
        let mut out = String::new();
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                for c in chars.by_ref() {
                    if c == 'm' {
                        break;
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn shortened_names_keep_both_ends() {
        assert_eq!(shorten("prod", 8), "prod");
        assert_eq!(shorten("production-europe-west", 11), "produ…-west");
        assert_eq!(shorten("production-europe-west", 11).chars().count(), 11);
    }

    #[test]
    fn suspended_counts_as_awaiting_approval_and_skipped_reads_as_skipped() {
        let n = pb::ReleaseCounters {
            succeeded: 2,
            running: 1,
            suspended: 2,
            awaiting_review: 1,
            ..Default::default()
        };
        assert_eq!(
            counters(&n),
            [
                "2 succeeded",
                "1 running",
                "1 awaiting approval",
                "1 awaiting review"
            ]
        );
        let mut e = env("prod", pb::EnvironmentStatus::Skipped, &["qa"]);
        e.message.clear();
        e.blocked_on = vec!["qa".into()];
        assert_eq!(env_detail(&e, "SKIPPED"), "skipped: qa did not succeed");
        e.attempt = 2;
        assert_eq!(
            env_detail(&e, "SKIPPED"),
            "skipped: qa did not succeed; attempt 2"
        );
        assert_eq!(env_detail(&e, "SUCCEEDED"), "attempt 2");
        let mut approval = env("prod", pb::EnvironmentStatus::Suspended, &["qa"]);
        approval.steps = vec![pb::StepRun {
            kind: pb::StepKind::PreAction as i32,
            workflow: "gate".into(),
            status: pb::StepStatus::Suspended as i32,
            message: "awaiting approval".into(),
            ..Default::default()
        }];
        assert_eq!(
            env_detail(&approval, "SUSPENDED"),
            "pre-action gate: awaiting approval"
        );
        let mut e = env("prod", pb::EnvironmentStatus::Suspended, &["qa"]);
        assert!(
            approval_hint("r1", &e)
                .is_some_and(|h| h.contains("promoflow release approve r1 prod"))
        );
        e.status = pb::EnvironmentStatus::Running as i32;
        assert_eq!(approval_hint("r1", &e), None);
    }
}
