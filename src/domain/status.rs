//! Status values of releases, environment runs and step runs (the README's
//! "Releases" table; `proto/promoflow/v1/release.proto`).
//!
//! Each value has one stable SCREAMING_SNAKE_CASE spelling (`"RUNNING"`). The
//! same string is used by `as_str`, `Display`, `FromStr` and serde, because it
//! is what the store writes into database columns and JSON documents: renaming
//! a variant in Rust must never change what is on disk, so the spelling is
//! written out next to each variant instead of being derived from its name.

/// A string that does not name any value of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {value:?}")]
pub struct UnknownValue {
    /// What was being parsed, e.g. "release status".
    pub kind: &'static str,
    /// The rejected input.
    pub value: String,
}

/// Defines a fieldless enum whose values have fixed string spellings, with
/// `as_str`, `ALL`, `Display`, `FromStr` and string-based serde.
///
/// One macro instead of four hand-written copies keeps the spellings, the
/// parser and the serde format from drifting apart.
macro_rules! string_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($kind:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stable spelling stored in the database and sent to clients.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::std::str::FromStr for $name {
            type Err = $crate::domain::status::UnknownValue;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::status::UnknownValue {
                        kind: $kind,
                        value: s.to_owned(),
                    }),
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <::std::borrow::Cow<'de, str> as ::serde::Deserialize>::deserialize(d)?;
                text.parse().map_err(::serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use string_enum;

string_enum! {
    /// The state of a whole release.
    pub enum ReleaseStatus ("release status") {
        /// Waiting for earlier releases of the same product to finish.
        Queued => "QUEUED",
        Running => "RUNNING",
        /// Some environment awaits approval (or review of its pull request) and nothing else runs.
        Suspended => "SUSPENDED",
        /// Cancelling its running steps after a terminate request or a timeout.
        Terminating => "TERMINATING",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Terminated => "TERMINATED",
    }
}

impl ReleaseStatus {
    /// True when the release does no more work on its own. `FAILED` and
    /// `TERMINATED` releases can still be retried, which makes them `RUNNING`
    /// again, but only on request.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            ReleaseStatus::Succeeded | ReleaseStatus::Failed | ReleaseStatus::Terminated
        )
    }
}

string_enum! {
    /// The state of one environment run (one node of the flow) in a release.
    pub enum EnvironmentStatus ("environment status") {
        /// Waiting for its dependencies (`blocked_on` names them).
        Pending => "PENDING",
        Running => "RUNNING",
        /// Awaiting approval, or review of its pull request (a PULL_REQUEST action).
        Suspended => "SUSPENDED",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        /// Not run because an environment it depends on failed.
        Skipped => "SKIPPED",
        Terminated => "TERMINATED",
    }
}

impl EnvironmentStatus {
    /// True when the environment will not change again unless the release is retried.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            EnvironmentStatus::Succeeded
                | EnvironmentStatus::Failed
                | EnvironmentStatus::Skipped
                | EnvironmentStatus::Terminated
        )
    }
}

string_enum! {
    /// The state of one step run inside an environment run.
    pub enum StepStatus ("step status") {
        Pending => "PENDING",
        Running => "RUNNING",
        /// An approval awaiting a decision, or a PULL_REQUEST action awaiting its pull request.
        Suspended => "SUSPENDED",
        Succeeded => "SUCCEEDED",
        Failed => "FAILED",
        Skipped => "SKIPPED",
        Terminated => "TERMINATED",
    }
}

impl StepStatus {
    /// True when the step will not change again unless the release is retried.
    pub const fn is_final(self) -> bool {
        matches!(
            self,
            StepStatus::Succeeded
                | StepStatus::Failed
                | StepStatus::Skipped
                | StepStatus::Terminated
        )
    }
}

string_enum! {
    /// What a step run does, in the order the steps of one environment run
    /// (`docs/architecture.md`, step 8). `TriggerWorkflow` only occurs
    /// in the trigger environment.
    pub enum StepKind ("step kind") {
        TriggerWorkflow => "TRIGGER_WORKFLOW",
        OnStart => "ON_START",
        PreAction => "PRE_ACTION",
        Action => "ACTION",
        /// The wait until Argo CD reports the promotion Synced and Healthy.
        Sync => "SYNC",
        PostAction => "POST_ACTION",
        OnSuccess => "ON_SUCCESS",
        OnFail => "ON_FAIL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt;
    use std::str::FromStr;

    /// Every spelling parses back to its value, through `FromStr` and serde,
    /// and spellings are unique within an enum.
    fn round_trips<T>(all: &[T])
    where
        T: Copy + fmt::Debug + PartialEq + fmt::Display + FromStr + serde::Serialize,
        T: serde::de::DeserializeOwned,
        <T as FromStr>::Err: fmt::Debug,
    {
        let mut seen = std::collections::HashSet::new();
        for &value in all {
            let text = value.to_string();
            assert!(seen.insert(text.clone()), "duplicate spelling {text}");
            assert!(
                text.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{text} is not SCREAMING_SNAKE_CASE"
            );
            assert_eq!(text.parse::<T>().ok(), Some(value));
            let json = serde_json::to_string(&value).expect("serialize");
            assert_eq!(json, format!("\"{text}\""));
            assert_eq!(
                serde_json::from_str::<T>(&json).expect("deserialize"),
                value
            );
        }
    }

    #[test]
    fn spellings_round_trip() {
        round_trips(ReleaseStatus::ALL);
        round_trips(EnvironmentStatus::ALL);
        round_trips(StepStatus::ALL);
        round_trips(StepKind::ALL);
    }

    #[test]
    fn spellings_are_stable() {
        // These strings are stored in databases: changing one is a migration.
        assert_eq!(ReleaseStatus::Terminating.as_str(), "TERMINATING");
        assert_eq!(EnvironmentStatus::Skipped.as_str(), "SKIPPED");
        assert_eq!(StepStatus::Suspended.as_str(), "SUSPENDED");
        assert_eq!(StepKind::TriggerWorkflow.as_str(), "TRIGGER_WORKFLOW");
        assert_eq!(StepKind::OnFail.as_str(), "ON_FAIL");
    }

    #[test]
    fn unknown_spellings_are_errors() {
        let err = "running".parse::<ReleaseStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown release status \"running\"");
        assert!(serde_json::from_str::<StepKind>("\"HOOK\"").is_err());
        assert!(serde_json::from_str::<StepStatus>("3").is_err());
    }

    #[test]
    fn finality() {
        let final_release: Vec<_> = ReleaseStatus::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(final_release, ["SUCCEEDED", "FAILED", "TERMINATED"]);
        let final_env: Vec<_> = EnvironmentStatus::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| s.as_str())
            .collect();
        assert_eq!(final_env, ["SUCCEEDED", "FAILED", "SKIPPED", "TERMINATED"]);
        assert!(!StepStatus::Suspended.is_final());
        assert!(StepStatus::Skipped.is_final());
    }
}
