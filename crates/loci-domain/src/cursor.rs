//! List cursors: an opaque token for "the page after this one". For the
//! time orders it holds the last memory's (time, id), so the next page is a
//! keyset read that costs the same at page 2 and page 2,000; for the orders
//! without a keyset (content, app name) it holds the page number.
//!
//! A cursor fixes the order and the page size it was issued for; used with
//! another order or size it is a field error, not a silently wrong page.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use loci_core::model::{Memory, MemoryFilter, SortDirection, SortField, SortKey};
use serde::{Deserialize, Serialize};

use crate::FieldViolation;
use crate::rules::MAX_PAGE;

/// The longest cursor accepted (issued ones are about 150 characters).
pub const MAX_CURSOR_CHARS: usize = 512;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Token {
    /// The order and page size the cursor belongs to.
    s: SortField,
    d: SortDirection,
    n: u64,
    /// The page the cursor opens.
    p: u64,
    /// Where that page starts, for keyset orders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    k: Option<SortKey>,
}

/// Where a cursor points: the page number it opens and, for keyset orders,
/// the position after which that page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Position {
    pub page: u64,
    pub after: Option<SortKey>,
}

/// The cursor of the page after `page`, whose last memory is `last`.
pub fn next(filter: &MemoryFilter, size: u64, page: u64, last: &Memory) -> String {
    let after = SortKey::of(last, filter.sort);
    let token = Token { s: filter.sort, d: filter.direction, n: size, p: page.saturating_add(1), k: after };
    // Serializing plain data to JSON cannot fail; an empty cursor would be
    // refused on use rather than misread.
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(&token).unwrap_or_default())
}

/// The position of `raw` for a list in `filter`'s order with pages of
/// `size`; a field error of `field` otherwise.
pub fn parse(
    field: &str,
    raw: &str,
    filter: &MemoryFilter,
    size: u64,
    out: &mut Vec<FieldViolation>,
) -> Option<Position> {
    let token = (raw.len() <= MAX_CURSOR_CHARS)
        .then(|| URL_SAFE_NO_PAD.decode(raw).ok())
        .flatten()
        .and_then(|bytes| serde_json::from_slice::<Token>(&bytes).ok());
    let Some(token) = token else {
        out.push(FieldViolation::new(field, "is not a cursor this server issued"));
        return None;
    };
    if token.s != filter.sort || token.d != filter.direction || token.n != size {
        out.push(FieldViolation::new(
            field,
            "belongs to another order or page size: keep sort_column, sort_direction and size as they were",
        ));
        return None;
    }
    let keyset = token.s.has_keyset();
    if token.p < 2 || (!keyset && token.p > MAX_PAGE) || keyset != token.k.is_some() {
        out.push(FieldViolation::new(field, "is not a cursor this server issued"));
        return None;
    }
    Some(Position { page: token.p, after: token.k })
}

#[cfg(test)]
mod tests {
    use super::*;
    use loci_core::model::{MemoryMetadata, SortValue};
    use loci_core::{AppId, MemoryId, MemoryState, OrgId, UserId};

    fn memory() -> Memory {
        let t = loci_core::model::now();
        Memory {
            id: MemoryId::new(),
            org_id: OrgId::parse("acme").unwrap(),
            user_id: UserId::new(),
            app_id: AppId::new(),
            content: "x".into(),
            content_hash: String::new(),
            metadata: MemoryMetadata::default(),
            state: MemoryState::Active,
            categories: Vec::new(),
            created_at: t,
            updated_at: t,
            archived_at: None,
            deleted_at: None,
            valid_to: None,
            superseded_by: None,
        }
    }

    #[test]
    fn a_time_order_cursor_holds_the_last_position() {
        let m = memory();
        let filter = MemoryFilter::default();
        let raw = next(&filter, 50, 1, &m);
        let mut out = Vec::new();
        let pos = parse("cursor", &raw, &filter, 50, &mut out).unwrap();
        assert!(out.is_empty());
        assert_eq!(pos.page, 2);
        assert_eq!(pos.after, Some(SortKey { value: SortValue::Time(m.created_at), id: m.id }));
    }

    #[test]
    fn an_app_name_cursor_is_a_page_number() {
        let filter = MemoryFilter { sort: SortField::AppName, ..Default::default() };
        let raw = next(&filter, 10, 3, &memory());
        let mut out = Vec::new();
        assert_eq!(parse("cursor", &raw, &filter, 10, &mut out), Some(Position { page: 4, after: None }));
    }

    #[test]
    fn a_cursor_of_another_order_or_size_or_garbage_is_a_field_error() {
        let filter = MemoryFilter::default();
        let raw = next(&filter, 50, 1, &memory());
        let asc = MemoryFilter { direction: SortDirection::Asc, ..Default::default() };
        for (raw, filter, size) in [
            (raw.as_str(), &asc, 50),
            (raw.as_str(), &filter, 20),
            ("not base64!", &filter, 50),
            ("e30", &filter, 50),
            (&"A".repeat(MAX_CURSOR_CHARS + 1), &filter, 50),
        ] {
            let mut out = Vec::new();
            assert_eq!(parse("cursor", raw, filter, size, &mut out), None);
            assert_eq!(out.len(), 1, "{raw}");
            assert_eq!(out[0].field, "cursor");
        }
    }
}
