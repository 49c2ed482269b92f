//! Where each flag stood on the command line.
//!
//! clap's derive API gives every flag's values but not their order, and two
//! commands depend on it: `flow edit` applies its edits in the order they
//! were given (as a user reads the line), and `product create|update` attach
//! each `--selector` to the `--flow` before it. [`Cli::parse_args`] reads the
//! positions from clap's matches and stores them in the command's
//! [`FlagOrder`]; a command built without them (in code) falls back to the
//! order its fields are declared in.

use std::collections::HashMap;

use clap::{ArgMatches, CommandFactory, FromArgMatches};

use super::{Cli, Command, flow::FlowCommand, product::ProductCommand};

/// The argv positions of every value of every flag of one subcommand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlagOrder {
    positions: HashMap<String, Vec<usize>>,
}

impl FlagOrder {
    fn from_matches(m: &ArgMatches) -> Self {
        let positions = m
            .ids()
            .filter_map(|id| {
                let indices = m.indices_of(id.as_str())?;
                Some((id.as_str().to_owned(), indices.collect()))
            })
            .collect();
        Self { positions }
    }

    /// Where the `k`-th value of flag `id` (its clap id: the field name)
    /// stood; `None` when unknown, which sorts after every known position and
    /// keeps declaration order among the unknown ones (sorts are stable).
    pub fn position(&self, id: &str, k: usize) -> Option<usize> {
        self.positions.get(id).and_then(|p| p.get(k)).copied()
    }

    /// A sort key for [`Self::position`]: known positions first, in order.
    pub fn key(&self, id: &str, k: usize) -> usize {
        self.position(id, k).unwrap_or(usize::MAX)
    }
}

impl Cli {
    /// Parses the process's arguments like [`clap::Parser::parse`], and keeps
    /// the flag positions the commands above need.
    pub fn parse_args() -> Self {
        Self::parse_from_args(std::env::args_os())
    }

    /// [`Self::parse_args`] of the given arguments (exits on a usage error,
    /// printing clap's message, as `parse` does).
    pub fn parse_from_args<I, T>(args: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let matches = Self::command().get_matches_from(args);
        let mut cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let sub = |path: [&str; 2]| {
            matches
                .subcommand_matches(path[0])
                .and_then(|m| m.subcommand_matches(path[1]))
                .map(FlagOrder::from_matches)
                .unwrap_or_default()
        };
        match &mut cli.command {
            Command::Flow(FlowCommand::Edit(edit)) => edit.order = sub(["flow", "edit"]),
            Command::Product(ProductCommand::Create { order, .. }) => {
                *order = sub(["product", "create"]);
            }
            Command::Product(ProductCommand::Update { order, .. }) => {
                *order = sub(["product", "update"]);
            }
            _ => {}
        }
        cli
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_the_command_line() {
        let cli = Cli::parse_from_args([
            "promoflow",
            "flow",
            "edit",
            "f",
            "--description",
            "d",
            "--depends-on",
            "prod=qa",
            "--depends-on",
            "qa=dev",
        ]);
        let Command::Flow(FlowCommand::Edit(edit)) = cli.command else {
            panic!("not a flow edit: {cli:?}");
        };
        let order = &edit.order;
        assert!(order.key("description", 0) < order.key("depends_on", 0));
        assert!(order.key("depends_on", 0) < order.key("depends_on", 1));
        assert_eq!(order.position("depends_on", 2), None);
        assert_eq!(order.position("policy", 0), None);
        assert_eq!(order.key("policy", 0), usize::MAX);
    }
}
