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
/// Longest search query, in characters.
pub const MAX_QUERY_CHARS: usize = 2048;
/// Values one list of a memory filter may carry (ids, enum values, names, tags).
pub const MAX_FILTER_VALUES: usize = 100;
/// Longest `artifact_ref` or `entity`, in characters.
pub const MAX_REF_CHARS: usize = 512;
/// Evidence items of one memory.
pub const MAX_EVIDENCE_ITEMS: usize = 50;
/// Longest evidence item, in characters.
pub const MAX_EVIDENCE_CHARS: usize = 2048;
/// Category names one memory may be filed under.
pub const MAX_CATEGORIES: usize = 20;
/// Longest category name, in characters.
pub const MAX_CATEGORY_CHARS: usize = 64;
/// Longest tag key, in characters.
pub const MAX_TAG_KEY_CHARS: usize = 128;
/// Longest app name, in characters.
pub const MAX_APP_NAME_CHARS: usize = 255;

/// Columns a memory list sorts by (`sort_column`).
pub const SORT_COLUMNS: &[&str] = &["created_at", "updated_at", "content", "app_name"];
/// Sort directions (`sort_direction`).
pub const SORT_DIRECTIONS: &[&str] = &["asc", "desc"];
/// Orders of the app list (`sort_by`).
pub const APP_SORTS: &[&str] = &["name", "memories", "memories_accessed"];
/// States a memory list may ask for (`state`); deleted memories are never listed.
pub const LISTABLE_STATES: &[MemoryState] = &[MemoryState::Active, MemoryState::Paused, MemoryState::Archived];

/// Whether text is blank: empty or only Unicode white space. Lengths are
/// measured on the text as sent; blank text is refused where text is required.
pub fn is_blank(text: &str) -> bool {
    text.chars().all(char::is_whitespace)
}

/// Whether a name holds a control character (refused in names and keys).
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

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
