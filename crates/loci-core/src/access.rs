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

/// Longest segment of an access entity, in characters.
pub const MAX_SEGMENT_CHARS: usize = 128;

fn segment_ok(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= MAX_SEGMENT_CHARS
        && s.chars().all(|c| !c.is_whitespace() && !c.is_control() && c != '/')
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
            // A team may sit under a project: team:<org>/<project>/<team>.
            "team" => {
                let (org, team) = rest.split_once('/').ok_or_else(bad)?;
                let parts: Vec<&str> = team.split('/').collect();
                if segment_ok(org) && (1..=2).contains(&parts.len()) && parts.iter().all(|p| segment_ok(p)) {
                    Ok(Self::Team { org: org.to_owned(), team: team.to_owned() })
                } else {
                    Err(bad())
                }
            }
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
    /// Whether a grant of `self` gives access to `entity`: a grant covers itself
    /// exactly; `org:X` also covers `project:X/*` and `team:X/*`;
    /// `project:X/P` also covers `team:X/P/*`. Never upward or sideways.
    pub fn covers(&self, entity: &AccessEntity) -> bool {
        if self == entity {
            return true;
        }
        match (self, entity) {
            (Self::Org(org), Self::Project { org: o, .. } | Self::Team { org: o, .. }) => org == o,
            (Self::Project { org, project }, Self::Team { org: o, team }) => {
                org == o && team.strip_prefix(project.as_str()).is_some_and(|rest| rest.starts_with('/'))
            }
            _ => false,
        }
    }

    /// Every grant that covers `self` (itself first): the inverse of
    /// [`covers`](Self::covers), so an index can store these keys with a
    /// document and answer "does any of the caller's grants cover it" as a
    /// plain set intersection inside the engine.
    pub fn covering_grants(&self) -> Vec<AccessEntity> {
        let mut out = vec![self.clone()];
        match self {
            Self::User(_) | Self::Org(_) => {}
            Self::Project { org, .. } => out.push(Self::Org(org.clone())),
            Self::Team { org, team } => {
                let mut end = 0;
                while let Some(pos) = team[end..].find('/') {
                    end += pos;
                    out.push(Self::Project { org: org.clone(), project: team[..end].to_owned() });
                    end += 1;
                }
                out.push(Self::Org(org.clone()));
            }
        }
        out
    }

    /// The org an entity names (`None` for `user:` entities).
    pub fn org(&self) -> Option<&str> {
        match self {
            Self::User(_) => None,
            Self::Team { org, .. } | Self::Project { org, .. } | Self::Org(org) => Some(org),
        }
    }

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
    fn covering_grants_are_exactly_the_grants_that_cover() {
        let all: Vec<AccessEntity> = [
            "user:alice",
            "org:acme",
            "org:other",
            "project:acme/loci",
            "project:acme/lo",
            "team:acme/core",
            "team:acme/loci/backend",
            "team:other/loci/backend",
        ]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
        for entity in &all {
            let keys = entity.covering_grants();
            for grant in &all {
                assert_eq!(keys.contains(grant), grant.covers(entity), "{grant} covers {entity}?");
            }
        }
    }

    #[test]
    fn parses_and_displays_every_kind() {
        for raw in ["user:alice", "team:acme/core", "team:acme/loci/backend", "project:acme/loci", "org:acme"] {
            let parsed: AccessEntity = raw.parse().expect("valid");
            assert_eq!(parsed.to_string(), raw);
        }
    }

    fn e(s: &str) -> AccessEntity {
        s.parse().expect("valid")
    }

    #[test]
    fn coverage_goes_down_never_up_or_sideways() {
        let cases = [
            ("user:alice", "user:alice", true),
            ("user:alice", "user:bob", false),
            ("org:acme", "project:acme/loci", true),
            ("org:acme", "team:acme/core", true),
            ("org:acme", "team:acme/loci/backend", true),
            ("org:acme", "org:globex", false),
            ("org:acme", "project:globex/loci", false),
            ("org:acme", "user:alice", false),
            ("project:acme/loci", "team:acme/loci/backend", true),
            ("project:acme/loci", "team:acme/lociX/backend", false),
            ("project:acme/loci", "team:acme/core", false),
            ("project:acme/loci", "project:acme/other", false),
            ("project:acme/loci", "org:acme", false),
            ("team:acme/core", "project:acme/core", false),
            ("team:acme/loci/backend", "project:acme/loci", false),
            ("team:acme/core", "org:acme", false),
        ];
        for (grant, entity, expected) in cases {
            assert_eq!(e(grant).covers(&e(entity)), expected, "{grant} covers {entity}");
        }
    }

    #[test]
    fn rejects_unknown_prefixes_and_malformed_values() {
        for raw in [
            "group:x",
            "user:",
            "team:acme",
            "team:/x",
            "org:a b",
            "nocolon",
            "project:a/b/c",
            "team:a/b/c/d",
            "team:a//b",
        ] {
            assert!(raw.parse::<AccessEntity>().is_err(), "{raw}");
        }
    }
}
