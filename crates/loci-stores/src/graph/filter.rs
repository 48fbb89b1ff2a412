//! [`SearchFilter`] as SQL on the `memories` table, for index queries that
//! join the relational source of truth instead of copying its fields.

use sea_orm::ColumnTrait;
use sea_orm::sea_query::Condition;

use crate::TenantTx;
use crate::entities::memories;
use crate::repo::json_text_equals;
use crate::repo::memories::visibility_condition;
use loci_index::SearchFilter;

/// The condition a `memories` row meets iff [`SearchFilter::admits`] its
/// document: org, states, visibility (owner or a covering grant, the same
/// SQL as the memory list), app, structured fields, string tags, creation
/// range and excluded ids. Columns are qualified with `memories` except
/// `access_entity` and `tags`, which no other joined table may have.
pub(crate) fn search_filter_condition(tx: &TenantTx, filter: &SearchFilter) -> Condition {
    let mut all = Condition::all().add(memories::Column::OrgId.eq(filter.org.as_str()));
    if !filter.states.is_empty() {
        all = all.add(memories::Column::State.is_in(filter.states.iter().map(|s| s.as_str())));
    }
    if let Some(v) = &filter.visible_to {
        all = all.add(visibility_condition(v));
    }
    if let Some(app) = filter.app_id {
        all = all.add(memories::Column::AppId.eq(app.as_uuid()));
    }
    // The columns of the structured fields, in `StructuredFields::NAMES` order.
    let columns = [
        memories::Column::Category,
        memories::Column::Scope,
        memories::Column::ArtifactType,
        memories::Column::ArtifactRef,
        memories::Column::Entity,
        memories::Column::Source,
    ];
    for (column, (_, value)) in columns.into_iter().zip(filter.fields.named()) {
        if let Some(value) = value {
            all = all.add(column.eq(value));
        }
    }
    for (key, value) in &filter.tags {
        all = all.add(json_text_equals(tx, "tags", key, value));
    }
    if let Some(from) = filter.from {
        all = all.add(memories::Column::CreatedAt.gte(from));
    }
    if let Some(to) = filter.to {
        all = all.add(memories::Column::CreatedAt.lte(to));
    }
    if !filter.exclude.is_empty() {
        all = all.add(memories::Column::Id.is_not_in(filter.exclude.iter().map(|m| m.as_uuid())));
    }
    all
}
