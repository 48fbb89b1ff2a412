use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::CoreError;

/// Who may see a memory inside a tenant: `user:<id>`, `team:<org>/<team>`,
/// `project:<org>/<project>` or `org:<org>`. Unknown prefixes are rejected at
/// parse time, so they can never be granted by accident.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum AccessEntity {
    User(String),
    Team { org: String, team: String },
    Project { org: String, project: String },
    Org(String),
}

fn segment_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '/')
}

impl FromStr for AccessEntity {
    type Err = CoreError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let bad = || CoreError::InvalidAccessEntity(raw.to_owned());
        let (prefix, rest) = raw.split_once(':').ok_or_else(bad)?;
        let pair = |rest: &str| -> Result<(String, String), CoreError> {
            let (a, b) = rest.split_once('/').ok_or_else(bad)?;
            if segment_ok(a) && segment_ok(b) { Ok((a.to_owned(), b.to_owned())) } else { Err(bad()) }
        };
        match prefix {
            "user" if segment_ok(rest) => Ok(Self::User(rest.to_owned())),
            "org" if segment_ok(rest) => Ok(Self::Org(rest.to_owned())),
            "team" => pair(rest).map(|(org, team)| Self::Team { org, team }),
            "project" => pair(rest).map(|(org, project)| Self::Project { org, project }),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for AccessEntity {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AccessEntity> for String {
    fn from(e: AccessEntity) -> Self {
        e.to_string()
    }
}

impl fmt::Display for AccessEntity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::Team { org, team } => write!(f, "team:{org}/{team}"),
            Self::Project { org, project } => write!(f, "project:{org}/{project}"),
            Self::Org(org) => write!(f, "org:{org}"),
        }
    }
}

impl AccessEntity {
    /// The scope an access entity implies (used when a memory's scope is absent,
    /// and to check that an explicit scope agrees).
    pub fn implied_scope(&self) -> crate::Scope {
        match self {
            Self::User(_) => crate::Scope::User,
            Self::Team { .. } => crate::Scope::Team,
            Self::Project { .. } => crate::Scope::Project,
            Self::Org(_) => crate::Scope::Org,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_every_kind() {
        for raw in ["user:alice", "team:acme/core", "project:acme/loci", "org:acme"] {
            let parsed: AccessEntity = raw.parse().expect("valid");
            assert_eq!(parsed.to_string(), raw);
        }
    }

    #[test]
    fn rejects_unknown_prefixes_and_malformed_values() {
        for raw in ["group:x", "user:", "team:acme", "team:/x", "org:a b", "nocolon", "project:a/b/c"] {
            assert!(raw.parse::<AccessEntity>().is_err(), "{raw}");
        }
    }
}
