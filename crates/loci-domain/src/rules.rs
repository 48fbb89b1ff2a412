//! The product's bounds and defaults, in one place. REST routes, MCP tools,
//! their schemas and the services all take them from here, so a limit
//! cannot differ between transports.

use loci_core::MemoryState;

use crate::FieldViolation;

/// Ids one call may name (delete, bulk state changes).
pub const MAX_IDS_PER_CALL: usize = 1000;
/// Updates one batched `update_memory` call may carry.
pub const MAX_UPDATES_PER_CALL: usize = 100;
/// Memories one bulk import may carry.
pub const MAX_IMPORT_PER_CALL: usize = 10_000;
/// Page size when none is given.
pub const DEFAULT_PAGE_SIZE: u64 = 50;
/// Largest page size.
pub const MAX_PAGE_SIZE: u64 = 100;
/// Largest page number.
pub const MAX_PAGE: u64 = 1_000_000;
/// Results of a search when no limit is given.
pub const DEFAULT_SEARCH_LIMIT: usize = 10;
/// Largest `limit` of a search, a similar-memories or a related-memories call.
pub const MAX_SEARCH_LIMIT: usize = 100;
/// Longest substring filter of a memory list, in characters.
pub const MAX_SEARCH_QUERY_CHARS: usize = 2048;

/// The states a memory list shows when none are asked for: active and
/// paused, plus archived on request; deleted memories are never listed.
pub fn listed_states(show_archived: bool) -> Vec<MemoryState> {
    if show_archived {
        vec![MemoryState::Active, MemoryState::Paused, MemoryState::Archived]
    } else {
        vec![MemoryState::Active, MemoryState::Paused]
    }
}

/// `limit` checked against `1..=max` (`max` is [`MAX_SEARCH_LIMIT`], or a
/// deployment's lower cap such as `mcp.max_results`).
pub fn limit(field: &str, limit: usize, max: usize) -> Result<usize, FieldViolation> {
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(FieldViolation::new(field, format!("must be between 1 and {max}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_are_inclusive() {
        assert_eq!(limit("limit", 1, 5).ok(), Some(1));
        assert_eq!(limit("limit", 5, 5).ok(), Some(5));
        assert_eq!(limit("limit", 0, 5).unwrap_err().message, "must be between 1 and 5");
        assert!(limit("limit", 6, 5).is_err());
    }

    #[test]
    fn deleted_memories_are_never_listed() {
        assert!(!listed_states(true).contains(&MemoryState::Deleted));
        assert!(!listed_states(false).contains(&MemoryState::Archived));
    }
}
