use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::CoreError;

/// A closed set of lower-case string values, stored as text in every backend.
macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $kind:literal { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            const EXPECTED: &'static str = concat!($($text, " "),+);

            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(CoreError::UnknownValue {
                        kind: $kind,
                        value: other.to_owned(),
                        expected: $name::EXPECTED.trim_ascii_end(),
                    }),
                }
            }
        }
    };
}

string_enum!(
    /// Lifecycle state of a memory.
    MemoryState, "state" {
        Active => "active",
        Paused => "paused",
        Archived => "archived",
        Deleted => "deleted",
    }
);

impl MemoryState {
    /// The enforced state machine: active <-> paused; active/paused -> archived
    /// -> active; any -> deleted (terminal). Same-state changes are not transitions.
    pub fn can_transition_to(self, next: MemoryState) -> bool {
        use MemoryState::*;
        matches!(
            (self, next),
            (Active, Paused)
                | (Paused, Active)
                | (Active, Archived)
                | (Paused, Archived)
                | (Archived, Active)
                | (Active | Paused | Archived, Deleted)
        )
    }
}

string_enum!(
    /// Kind of knowledge a memory holds.
    Category, "category" {
        Decision => "decision",
        Convention => "convention",
        Architecture => "architecture",
        Dependency => "dependency",
        Workflow => "workflow",
        Testing => "testing",
        Security => "security",
        Performance => "performance",
        Runbook => "runbook",
        Glossary => "glossary",
    }
);

string_enum!(
    /// Visibility scope of a memory.
    Scope, "scope" {
        Session => "session",
        User => "user",
        Team => "team",
        Project => "project",
        Org => "org",
        Enterprise => "enterprise",
    }
);

impl Scope {
    /// Precedence used by scoped retrieval when deduplicating identical content.
    pub const fn precedence(self) -> u8 {
        match self {
            Scope::Session => 60,
            Scope::User => 50,
            Scope::Team => 40,
            Scope::Project => 30,
            Scope::Org => 20,
            Scope::Enterprise => 10,
        }
    }
}

string_enum!(
    /// Kind of artifact a memory is about.
    ArtifactType, "artifact_type" {
        Repo => "repo",
        Service => "service",
        Module => "module",
        Component => "component",
        Api => "api",
        Db => "db",
        Infra => "infra",
        File => "file",
    }
);

string_enum!(
    /// Where a memory came from.
    Source, "source" {
        User => "user",
        Inference => "inference",
    }
);

string_enum!(
    /// Where an asynchronous job is.
    JobStatus, "job status" {
        Queued => "queued",
        Running => "running",
        Done => "done",
        Failed => "failed",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// What became of a search result an agent was given.
    FeedbackOutcome, "outcome" {
        Accepted => "accepted",
        Modified => "modified",
        Rejected => "rejected",
        Ignored => "ignored",
    }
);

string_enum!(
    /// Whether the agent said so or its client inferred it.
    FeedbackType, "feedback_type" {
        Implicit => "implicit",
        Explicit => "explicit",
    }
);

string_enum!(
    /// Where an experiment is in its life.
    ExperimentStatus, "experiment status" {
        Draft => "draft",
        Running => "running",
        Paused => "paused",
        Completed => "completed",
        RolledBack => "rolled_back",
    }
);

impl ExperimentStatus {
    /// draft -> running; running -> paused, completed, rolled_back;
    /// paused -> running, completed, rolled_back. Nothing else.
    pub fn can_transition_to(self, next: Self) -> bool {
        use ExperimentStatus::*;
        matches!(
            (self, next),
            (Draft, Running) | (Running, Paused | Completed | RolledBack) | (Paused, Running | Completed | RolledBack)
        )
    }
}

/// Normalised form used for deduplication: trimmed, inner whitespace collapsed,
/// lower-cased.
pub fn normalise_content(content: &str) -> String {
    content.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// SHA-256 (hex) of the normalised content.
pub fn content_hash(content: &str) -> String {
    hex::encode(Sha256::digest(normalise_content(content).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn experiments_move_only_along_their_machine() {
        use ExperimentStatus::*;
        let allowed = [
            (Draft, Running),
            (Running, Paused),
            (Running, Completed),
            (Running, RolledBack),
            (Paused, Running),
            (Paused, Completed),
            (Paused, RolledBack),
        ];
        for &from in ExperimentStatus::ALL {
            for &to in ExperimentStatus::ALL {
                assert_eq!(from.can_transition_to(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn state_machine_allows_exactly_the_specified_transitions() {
        use MemoryState::*;
        let allowed = [
            (Active, Paused),
            (Paused, Active),
            (Active, Archived),
            (Paused, Archived),
            (Archived, Active),
            (Active, Deleted),
            (Paused, Deleted),
            (Archived, Deleted),
        ];
        for &from in MemoryState::ALL {
            for &to in MemoryState::ALL {
                assert_eq!(from.can_transition_to(to), allowed.contains(&(from, to)), "{from} -> {to}");
            }
        }
    }

    #[test]
    fn enums_parse_their_text_and_name_the_alternatives_on_error() {
        assert_eq!("runbook".parse::<Category>(), Ok(Category::Runbook));
        let err = "nope".parse::<Scope>().err().map(|e| e.to_string());
        assert_eq!(
            err.as_deref(),
            Some("unknown scope value `nope` (expected one of: session user team project org enterprise)")
        );
    }

    #[test]
    fn content_hash_ignores_case_and_whitespace_layout() {
        assert_eq!(content_hash("  Use  Rust\n"), content_hash("use rust"));
        assert_ne!(content_hash("use rust"), content_hash("use go"));
        assert_eq!(content_hash("x").len(), 64);
    }
}
