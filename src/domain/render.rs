//! Diagrams of a flow for people: Mermaid (renders in Markdown on GitHub and
//! most dashboards) and Graphviz DOT.
//!
//! Both show every node and every edge, mark the trigger environment, and,
//! given the environment statuses of a release, colour and label each node
//! with its status. Output is deterministic, independent of step order: the
//! trigger first, then nodes by name, edges by (from, to), so a diagram can be
//! diffed or used in a test snapshot.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::flow::FlowSpec;
use super::status::EnvironmentStatus;

/// Renders `spec` as a Mermaid `flowchart`. Nodes are named `n0`, `n1`, … in
/// the diagram and labelled with their environment, because Mermaid reserves
/// words such as `end` that are valid environment names.
pub fn render_mermaid(
    spec: &FlowSpec,
    statuses: Option<&BTreeMap<String, EnvironmentStatus>>,
) -> String {
    let diagram = Diagram::new(spec, statuses);
    let mut out = String::from("flowchart LR\n");
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "    %% flow: {}", one_line(&spec.name));
    for (i, node) in diagram.nodes.iter().enumerate() {
        let mut label = mermaid_text(node.name);
        if node.trigger {
            label.push_str(" (trigger)");
        }
        if let Some(status) = node.status {
            let _ = write!(label, "<br/>{status}");
        }
        // The trigger is a stadium, the steps are rectangles.
        let (open, close) = if node.trigger {
            ("([", "])")
        } else {
            ("[", "]")
        };
        let _ = writeln!(out, "    n{i}{open}\"{label}\"{close}");
    }
    for &(from, to) in &diagram.edges {
        let _ = writeln!(out, "    n{from} --> n{to}");
    }
    for status in EnvironmentStatus::ALL {
        let members: Vec<String> = diagram
            .nodes
            .iter()
            .enumerate()
            .filter(|(_, node)| node.status == Some(*status))
            .map(|(i, _)| format!("n{i}"))
            .collect();
        if members.is_empty() {
            continue;
        }
        let colors = colors(*status);
        let class = status.as_str().to_ascii_lowercase();
        let dash = if colors.dashed {
            ",stroke-dasharray:5 5"
        } else {
            ""
        };
        let _ = writeln!(
            out,
            "    classDef {class} fill:{},stroke:{},color:#000{dash}",
            colors.fill, colors.stroke
        );
        let _ = writeln!(out, "    class {} {class}", members.join(","));
    }
    out
}

/// Renders `spec` as a Graphviz `digraph`, nodes identified by their
/// environment name.
pub fn render_dot(
    spec: &FlowSpec,
    statuses: Option<&BTreeMap<String, EnvironmentStatus>>,
) -> String {
    let diagram = Diagram::new(spec, statuses);
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(out, "digraph {} {{", dot_string(&spec.name));
    out.push_str("    rankdir=LR;\n");
    out.push_str(
        "    node [shape=box, style=\"rounded,filled\", fillcolor=\"#ffffff\", fontname=\"Helvetica\"];\n",
    );
    for node in &diagram.nodes {
        let mut label = node.name.to_owned();
        if node.trigger {
            label.push_str("\n(trigger)");
        }
        let mut attributes = Vec::new();
        if let Some(status) = node.status {
            let colors = colors(status);
            let _ = write!(label, "\n{status}");
            attributes.push(format!("fillcolor=\"{}\"", colors.fill));
            attributes.push(format!("color=\"{}\"", colors.stroke));
            if colors.dashed {
                attributes.push("style=\"rounded,filled,dashed\"".to_owned());
            }
        }
        if node.trigger {
            // A double outline marks where versions come from.
            attributes.push("peripheries=2".to_owned());
        }
        attributes.insert(0, format!("label={}", dot_string(&label)));
        let _ = writeln!(
            out,
            "    {} [{}];",
            dot_string(node.name),
            attributes.join(", ")
        );
    }
    for &(from, to) in &diagram.edges {
        let _ = writeln!(
            out,
            "    {} -> {};",
            dot_string(diagram.nodes[from].name),
            dot_string(diagram.nodes[to].name)
        );
    }
    out.push_str("}\n");
    out
}

/// What both formats draw, in drawing order.
struct Diagram<'a> {
    /// The trigger first, then the other nodes by name.
    nodes: Vec<Node<'a>>,
    /// Indices into `nodes`, sorted by (from name, to name), without repeats.
    edges: Vec<(usize, usize)>,
}

struct Node<'a> {
    name: &'a str,
    trigger: bool,
    status: Option<EnvironmentStatus>,
}

impl<'a> Diagram<'a> {
    fn new(spec: &'a FlowSpec, statuses: Option<&BTreeMap<String, EnvironmentStatus>>) -> Self {
        let trigger = spec.trigger_environment.as_str();
        // Dependencies that name no step are drawn too (only an invalid flow
        // has them), so that no edge of the input disappears.
        let others: BTreeSet<&str> = spec
            .nodes()
            .chain(spec.edges().map(|(from, _)| from))
            .filter(|name| *name != trigger)
            .collect();
        let nodes: Vec<Node<'a>> = std::iter::once(trigger)
            .chain(others)
            .map(|name| Node {
                name,
                trigger: name == trigger,
                status: statuses.and_then(|s| s.get(name)).copied(),
            })
            .collect();
        let position: BTreeMap<&str, usize> = nodes
            .iter()
            .enumerate()
            .map(|(i, node)| (node.name, i))
            .collect();
        let edges: BTreeSet<(&str, &str)> = spec.edges().collect();
        let edges = edges
            .into_iter()
            .filter_map(|(from, to)| Some((*position.get(from)?, *position.get(to)?)))
            .collect();
        Self { nodes, edges }
    }
}

struct Colors {
    fill: &'static str,
    stroke: &'static str,
    dashed: bool,
}

/// One colour per status: grey waiting, blue running, amber waiting for a
/// person, green and red for the outcomes, dashed grey for skipped.
fn colors(status: EnvironmentStatus) -> Colors {
    let (fill, stroke, dashed) = match status {
        EnvironmentStatus::Pending => ("#eeeeee", "#9e9e9e", false),
        EnvironmentStatus::Running => ("#bbdefb", "#1e88e5", false),
        EnvironmentStatus::Suspended => ("#ffe0b2", "#fb8c00", false),
        EnvironmentStatus::Succeeded => ("#c8e6c9", "#43a047", false),
        EnvironmentStatus::Failed => ("#ffcdd2", "#e53935", false),
        EnvironmentStatus::Skipped => ("#f5f5f5", "#bdbdbd", true),
        EnvironmentStatus::Terminated => ("#d7ccc8", "#6d4c41", false),
    };
    Colors {
        fill,
        stroke,
        dashed,
    }
}

/// Text inside a quoted Mermaid label. Valid flows only have DNS-label names;
/// this keeps anything else from breaking out of the label.
fn mermaid_text(text: &str) -> String {
    one_line(text)
        .replace('#', "#35;")
        .replace('"', "#quot;")
        .replace('<', "#lt;")
        .replace('>', "#gt;")
}

fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// A double-quoted DOT string.
fn dot_string(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for c in text.chars() {
        match c {
            '"' => quoted.push_str("\\\""),
            '\\' => quoted.push_str("\\\\"),
            '\n' => quoted.push_str("\\n"),
            c if c.is_control() => quoted.push(' '),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flow::testing::flow;

    fn parallel() -> FlowSpec {
        flow(
            "dev",
            &[
                ("prod-eu", &["qa"]),
                ("qa", &["dev"]),
                ("prod", &["qa"]),
                ("prod-asia", &["qa"]),
            ],
        )
    }

    #[test]
    fn mermaid_shows_every_node_and_edge() {
        let expected = r#"flowchart LR
    %% flow: demo
    n0(["dev (trigger)"])
    n1["prod"]
    n2["prod-asia"]
    n3["prod-eu"]
    n4["qa"]
    n0 --> n4
    n4 --> n1
    n4 --> n2
    n4 --> n3
"#;
        assert_eq!(render_mermaid(&parallel(), None), expected);
    }

    #[test]
    fn mermaid_colours_statuses() {
        let statuses = BTreeMap::from([
            ("dev".to_owned(), EnvironmentStatus::Succeeded),
            ("qa".to_owned(), EnvironmentStatus::Succeeded),
            ("prod".to_owned(), EnvironmentStatus::Failed),
            ("prod-eu".to_owned(), EnvironmentStatus::Running),
        ]);
        let text = render_mermaid(&parallel(), Some(&statuses));
        for line in [
            r#"n0(["dev (trigger)<br/>SUCCEEDED"])"#,
            r#"n1["prod<br/>FAILED"]"#,
            r#"n2["prod-asia"]"#,
            r#"n3["prod-eu<br/>RUNNING"]"#,
            "classDef running fill:#bbdefb,stroke:#1e88e5,color:#000",
            "class n3 running",
            "class n0,n4 succeeded",
            "class n1 failed",
        ] {
            assert!(
                text.lines().any(|l| l.trim() == line),
                "missing {line}:\n{text}"
            );
        }
        // Only the statuses present get a class.
        assert!(!text.contains("classDef pending"));
    }

    #[test]
    fn dot_shows_every_node_and_edge() {
        let expected = r##"digraph "demo" {
    rankdir=LR;
    node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];
    "dev" [label="dev\n(trigger)", peripheries=2];
    "prod" [label="prod"];
    "prod-asia" [label="prod-asia"];
    "prod-eu" [label="prod-eu"];
    "qa" [label="qa"];
    "dev" -> "qa";
    "qa" -> "prod";
    "qa" -> "prod-asia";
    "qa" -> "prod-eu";
}
"##;
        assert_eq!(render_dot(&parallel(), None), expected);
    }

    #[test]
    fn dot_colours_statuses() {
        let statuses = BTreeMap::from([
            ("dev".to_owned(), EnvironmentStatus::Succeeded),
            ("prod".to_owned(), EnvironmentStatus::Skipped),
        ]);
        let text = render_dot(&parallel(), Some(&statuses));
        assert!(text.contains(
            r##""dev" [label="dev\n(trigger)\nSUCCEEDED", fillcolor="#c8e6c9", color="#43a047", peripheries=2];"##
        ), "{text}");
        assert!(text.contains(
            r##""prod" [label="prod\nSKIPPED", fillcolor="#f5f5f5", color="#bdbdbd", style="rounded,filled,dashed"];"##
        ), "{text}");
    }

    #[test]
    fn output_does_not_depend_on_step_order() {
        let mut reversed = parallel();
        reversed.steps.reverse();
        assert_eq!(
            render_mermaid(&reversed, None),
            render_mermaid(&parallel(), None)
        );
        assert_eq!(render_dot(&reversed, None), render_dot(&parallel(), None));
    }

    #[test]
    fn fan_in_draws_each_edge_once() {
        let spec = flow(
            "dev",
            &[
                ("qa", &["dev"]),
                ("staging", &["dev"]),
                ("prod", &["qa", "staging", "qa"]),
            ],
        );
        let text = render_mermaid(&spec, None);
        assert_eq!(text.matches("-->").count(), 4, "{text}");
        let text = render_dot(&spec, None);
        assert_eq!(text.matches("->").count(), 4, "{text}");
    }

    #[test]
    fn hostile_names_stay_inside_their_labels() {
        let mut spec = flow("dev", &[("a\"b", &["dev", "x<y>#z"])]);
        spec.name = "evil\"\n}".to_owned();
        let mermaid = render_mermaid(&spec, None);
        assert!(mermaid.contains(r#"["a#quot;b"]"#), "{mermaid}");
        assert!(mermaid.contains(r#"["x#lt;y#gt;#35;z"]"#), "{mermaid}");
        assert!(mermaid.contains("%% flow: evil\" }"), "{mermaid}");
        let dot = render_dot(&spec, None);
        assert!(dot.starts_with("digraph \"evil\\\"\\n}\" {"), "{dot}");
        assert!(dot.contains(r#""x<y>#z" -> "a\"b";"#), "{dot}");
    }
}
