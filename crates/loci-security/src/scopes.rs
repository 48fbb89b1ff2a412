//! Scope names and the default role bundles.

use std::collections::{BTreeMap, BTreeSet};

pub const MEMORIES_READ: &str = "memories:read";
pub const MEMORIES_WRITE: &str = "memories:write";
pub const MEMORIES_DELETE: &str = "memories:delete";
pub const APPS_READ: &str = "apps:read";
pub const APPS_WRITE: &str = "apps:write";
pub const APPS_DELETE: &str = "apps:delete";
pub const GRAPH_READ: &str = "graph:read";
pub const GRAPH_WRITE: &str = "graph:write";
pub const ENTITIES_READ: &str = "entities:read";
pub const ENTITIES_WRITE: &str = "entities:write";
pub const ADMIN_READ: &str = "admin:read";
pub const ADMIN_WRITE: &str = "admin:write";
pub const STATS_READ: &str = "stats:read";
pub const BACKUP_READ: &str = "backup:read";
pub const BACKUP_WRITE: &str = "backup:write";
pub const FEEDBACK_READ: &str = "feedback:read";
pub const FEEDBACK_WRITE: &str = "feedback:write";
pub const EXPERIMENTS_READ: &str = "experiments:read";
pub const EXPERIMENTS_WRITE: &str = "experiments:write";
pub const SEARCH_READ: &str = "search:read";
pub const GDPR_READ: &str = "gdpr:read";
pub const GDPR_DELETE: &str = "gdpr:delete";

/// Every scope Loci defines.
pub const ALL: &[&str] = &[
    MEMORIES_READ,
    MEMORIES_WRITE,
    MEMORIES_DELETE,
    APPS_READ,
    APPS_WRITE,
    APPS_DELETE,
    GRAPH_READ,
    GRAPH_WRITE,
    ENTITIES_READ,
    ENTITIES_WRITE,
    ADMIN_READ,
    ADMIN_WRITE,
    STATS_READ,
    BACKUP_READ,
    BACKUP_WRITE,
    FEEDBACK_READ,
    FEEDBACK_WRITE,
    EXPERIMENTS_READ,
    EXPERIMENTS_WRITE,
    SEARCH_READ,
    GDPR_READ,
    GDPR_DELETE,
];

/// Role name -> scopes. Defaults: `viewer` = every `*:read`; `editor` =
/// viewer + the write scopes of day-to-day use; `admin` = every scope.
/// Settings may add roles or replace a default one.
pub fn role_bundles(overrides: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, BTreeSet<String>> {
    let viewer: BTreeSet<String> = ALL.iter().filter(|s| s.ends_with(":read")).map(|s| s.to_string()).collect();
    let mut editor = viewer.clone();
    editor.extend(
        [MEMORIES_WRITE, MEMORIES_DELETE, APPS_WRITE, ENTITIES_WRITE, GRAPH_WRITE, FEEDBACK_WRITE].map(String::from),
    );
    let admin: BTreeSet<String> = ALL.iter().map(|s| s.to_string()).collect();
    let mut bundles =
        BTreeMap::from([("viewer".to_owned(), viewer), ("editor".to_owned(), editor), ("admin".to_owned(), admin)]);
    for (role, scopes) in overrides {
        bundles.insert(role.clone(), scopes.iter().cloned().collect());
    }
    bundles
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bundles_follow_the_spec() {
        let b = role_bundles(&BTreeMap::new());
        assert!(b["viewer"].iter().all(|s| s.ends_with(":read")));
        assert!(b["viewer"].contains(GDPR_READ) && !b["viewer"].contains(MEMORIES_WRITE));
        assert!(b["editor"].contains(MEMORIES_DELETE) && !b["editor"].contains(GDPR_DELETE));
        assert_eq!(b["admin"].len(), ALL.len());
    }

    #[test]
    fn settings_add_and_replace_roles() {
        let overrides = BTreeMap::from([
            ("auditor".to_owned(), vec![STATS_READ.to_owned()]),
            ("viewer".to_owned(), vec![MEMORIES_READ.to_owned()]),
        ]);
        let b = role_bundles(&overrides);
        assert_eq!(b["auditor"], BTreeSet::from([STATS_READ.to_owned()]));
        assert_eq!(b["viewer"], BTreeSet::from([MEMORIES_READ.to_owned()]));
    }
}
