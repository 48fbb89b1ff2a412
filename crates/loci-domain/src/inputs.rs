//! The request shapes of the memory routes and tools (list, filter, id lists,
//! bulk actions, paging), shared by REST and MCP, and their parsing into
//! store filters: every field error is collected (422) instead of failing on
//! the first. Bounds come from [`crate::rules`].

use std::collections::BTreeMap;
use std::str::FromStr;

use loci_core::model::{MemoryFilter, PageRequest, SortDirection, SortField};
use loci_core::{AppId, ArtifactType, Category, CategoryId, MemoryId, MemoryState, Scope, Source};
use serde::Deserialize;

use crate::FieldViolation;
use crate::memories::parse_time;
use crate::rules::{self, DEFAULT_PAGE_SIZE, MAX_FILTER_VALUES, MAX_IDS_PER_CALL, MAX_PAGE, MAX_PAGE_SIZE};

pub fn page(page: Option<&str>, size: Option<&str>, out: &mut Vec<FieldViolation>) -> PageRequest {
    let mut req = PageRequest { page: 1, size: DEFAULT_PAGE_SIZE };
    if let Some(p) = page {
        match p.parse::<u64>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => req.page = n,
            _ => out.push(FieldViolation::new("page", format!("must be an integer from 1 to {MAX_PAGE}"))),
        }
    }
    if let Some(s) = size {
        match s.parse::<u64>() {
            Ok(n) if (1..=MAX_PAGE_SIZE).contains(&n) => req.size = n,
            _ => out.push(FieldViolation::new("size", format!("must be an integer from 1 to {MAX_PAGE_SIZE}"))),
        }
    }
    req
}

pub use crate::validation::parse_id as id;

/// The filter and page a `cursor` continues (`page` and `cursor` exclude
/// each other).
fn resume(
    mut filter: MemoryFilter,
    mut page: PageRequest,
    page_given: bool,
    cursor: Option<&str>,
    out: &mut Vec<FieldViolation>,
) -> (MemoryFilter, PageRequest) {
    let Some(raw) = cursor else {
        return (filter, page);
    };
    if page_given {
        out.push(FieldViolation::new("cursor", "give either page or cursor, not both"));
    } else if let Some(position) = crate::cursor::parse("cursor", raw, &filter, page.size, out) {
        page.page = position.page;
        filter.after = position.after;
    }
    (filter, page)
}

/// Integer fields of JSON bodies take any JSON number without a fractional
/// part (`10` and `10.0`), as JSON Schema's `integer` does; anything else is
/// a type error of the field.
pub mod whole_number {
    use serde::{Deserialize, Deserializer, de::Error};

    fn integral<E: Error>(n: &serde_json::Number) -> Result<i128, E> {
        if let Some(i) = n.as_i64() {
            return Ok(i128::from(i));
        }
        if let Some(u) = n.as_u64() {
            return Ok(i128::from(u));
        }
        match n.as_f64() {
            // Within ±2^63 an f64 with no fraction is an exact integer.
            Some(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Ok(f as i128),
            _ => Err(E::custom(format!("expected an integer, found {n}"))),
        }
    }

    fn ranged<T: TryFrom<i128>, E: Error>(n: &serde_json::Number) -> Result<T, E> {
        T::try_from(integral::<E>(n)?).map_err(|_| E::custom(format!("{n} is out of range")))
    }

    pub fn option<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i128>,
    {
        Option::<serde_json::Number>::deserialize(d)?.as_ref().map(ranged::<T, D::Error>).transpose()
    }

    pub fn required<'de, D, T>(d: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: TryFrom<i128>,
    {
        ranged::<T, D::Error>(&serde_json::Number::deserialize(d)?)
    }
}

/// A list longer than `max` is one field error (its items are still checked).
fn at_most(field: &str, len: usize, max: usize, out: &mut Vec<FieldViolation>) {
    if len > max {
        out.push(FieldViolation::new(field, format!("at most {max} values")));
    }
}

fn each<T: FromStr>(field: &str, values: &[String], out: &mut Vec<FieldViolation>) -> Vec<T>
where
    T::Err: std::fmt::Display,
{
    let mut parsed = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v.parse::<T>() {
            Ok(x) => parsed.push(x),
            Err(e) => out.push(FieldViolation::new(format!("{field}[{i}]"), e.to_string())),
        }
    }
    parsed
}

fn ids<T: FromStr>(field: &str, values: &[String], out: &mut Vec<FieldViolation>) -> Vec<T> {
    let mut parsed = Vec::new();
    for (i, v) in values.iter().enumerate() {
        match v.parse::<T>() {
            Ok(x) => parsed.push(x),
            Err(_) => out.push(FieldViolation::new(format!("{field}[{i}]"), "must be a UUID")),
        }
    }
    parsed
}

fn sort(column: Option<&str>, direction: Option<&str>, out: &mut Vec<FieldViolation>) -> (SortField, SortDirection) {
    let field = match column {
        None | Some("created_at") => SortField::CreatedAt,
        Some("updated_at") => SortField::UpdatedAt,
        Some("content") => SortField::Content,
        Some("app_name") => SortField::AppName,
        Some(_) => {
            out.push(FieldViolation::new("sort_column", "must be created_at, updated_at, content or app_name"));
            SortField::CreatedAt
        }
    };
    let dir = match direction {
        None | Some("desc") => SortDirection::Desc,
        Some("asc") => SortDirection::Asc,
        Some(_) => {
            out.push(FieldViolation::new("sort_direction", "must be asc or desc"));
            SortDirection::Desc
        }
    };
    (field, dir)
}

fn states(raw: Option<&str>, show_archived: bool, out: &mut Vec<FieldViolation>) -> Vec<MemoryState> {
    match raw {
        Some(list) => {
            let values: Vec<String> = list.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect();
            let parsed: Vec<MemoryState> = each("state", &values, out);
            if parsed.contains(&MemoryState::Deleted) {
                out.push(FieldViolation::new("state", "deleted memories are not listed"));
            }
            parsed
        }
        None => rules::listed_states(show_archived),
    }
}

/// `GET /api/v1/memories` query parameters (all as text, parsed here).
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[param(value_type = Option<u64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub size: Option<String>,
    /// The `next_cursor` of the previous page (instead of `page`): the next
    /// page by keyset, as fast deep in a list as at its start.
    pub cursor: Option<String>,
    #[param(value_type = Option<String>, format = Uuid)]
    pub app_id: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<String>,
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<String>,
    /// Comma-separated category names.
    pub categories: Option<String>,
    pub search_query: Option<String>,
    /// Comma-separated states (active, paused, archived).
    pub state: Option<String>,
    pub show_archived: Option<bool>,
    /// created_at, updated_at, content or app_name.
    pub sort_column: Option<String>,
    /// asc or desc.
    pub sort_direction: Option<String>,
    /// RFC 3339: the memories current at that time (created by then, not yet
    /// superseded or retracted), archived ones included unless `state` says
    /// otherwise.
    #[param(value_type = Option<String>, format = DateTime)]
    pub as_of: Option<String>,
}

impl ListQuery {
    pub fn parse(&self) -> Result<(MemoryFilter, PageRequest), Vec<FieldViolation>> {
        let mut out = Vec::new();
        let page = page(self.page.as_deref(), self.size.as_deref(), &mut out);
        let (sort, direction) = sort(self.sort_column.as_deref(), self.sort_direction.as_deref(), &mut out);
        let filter = MemoryFilter {
            app_id: self.app_id.as_deref().and_then(|a| id::<AppId>("app_id", a, &mut out)),
            from: self.from.as_deref().and_then(|t| parse_time("from", t, &mut out)),
            to: self.to.as_deref().and_then(|t| parse_time("to", t, &mut out)),
            category_names: comma_separated(self.categories.as_deref()),
            search: search(self.search_query.as_deref(), &mut out),
            states: states(self.state.as_deref(), self.show_archived.unwrap_or(false), &mut out),
            as_of: self.as_of.as_deref().and_then(|t| parse_time("as_of", t, &mut out)),
            sort,
            direction,
            ..Default::default()
        };
        let filter = at_time(filter, self.state.is_none());
        let (filter, page) = resume(filter, page, self.page.is_some(), self.cursor.as_deref(), &mut out);
        if out.is_empty() { Ok((filter, page)) } else { Err(out) }
    }
}

/// The non-empty, trimmed items of a comma-separated parameter.
fn comma_separated(raw: Option<&str>) -> Vec<String> {
    raw.map(|c| c.split(',').map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()).unwrap_or_default()
}

/// With `as_of`, what was current then includes memories archived since
/// (superseded or retracted), unless the states were asked for.
fn at_time(mut filter: MemoryFilter, default_states: bool) -> MemoryFilter {
    if filter.as_of.is_some() && default_states && !filter.states.contains(&MemoryState::Archived) {
        filter.states.push(MemoryState::Archived);
    }
    filter
}

fn search(raw: Option<&str>, out: &mut Vec<FieldViolation>) -> Option<String> {
    let s = raw?;
    if s.chars().count() > rules::MAX_SEARCH_QUERY_CHARS {
        out.push(FieldViolation::new(
            "search_query",
            format!("must be at most {} characters", rules::MAX_SEARCH_QUERY_CHARS),
        ));
        return None;
    }
    Some(s.to_owned())
}

/// `POST /api/v1/memories/filter` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterBody {
    #[serde(default, deserialize_with = "whole_number::option")]
    pub page: Option<u64>,
    #[serde(default, deserialize_with = "whole_number::option")]
    pub size: Option<u64>,
    /// The `next_cursor` of the previous page (instead of `page`).
    pub cursor: Option<String>,
    pub search_query: Option<String>,
    #[serde(default)]
    pub app_ids: Vec<String>,
    #[serde(default)]
    pub category_ids: Vec<String>,
    #[serde(default)]
    pub categories: Vec<String>,
    #[serde(default)]
    pub metadata_categories: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub artifact_types: Vec<String>,
    #[serde(default)]
    pub entities: Vec<String>,
    #[serde(default)]
    pub sources: Vec<String>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    #[serde(default)]
    pub show_archived: bool,
    pub from: Option<String>,
    pub to: Option<String>,
    pub sort_column: Option<String>,
    pub sort_direction: Option<String>,
    /// RFC 3339: the memories current at that time (archived ones included).
    pub as_of: Option<String>,
}

impl FilterBody {
    /// The list fields, each at most [`MAX_FILTER_VALUES`] long (as is the
    /// `tags` map); the OpenAPI document bounds the same fields.
    pub const LISTS: [&'static str; 8] = [
        "app_ids",
        "category_ids",
        "categories",
        "metadata_categories",
        "scopes",
        "artifact_types",
        "entities",
        "sources",
    ];

    /// The lengths of [`Self::LISTS`], in that order.
    fn list_lengths(&self) -> [usize; 8] {
        [
            self.app_ids.len(),
            self.category_ids.len(),
            self.categories.len(),
            self.metadata_categories.len(),
            self.scopes.len(),
            self.artifact_types.len(),
            self.entities.len(),
            self.sources.len(),
        ]
    }

    pub fn parse(&self) -> Result<(MemoryFilter, PageRequest), Vec<FieldViolation>> {
        let mut out = Vec::new();
        for (field, len) in Self::LISTS.iter().zip(self.list_lengths()) {
            at_most(field, len, MAX_FILTER_VALUES, &mut out);
        }
        at_most("tags", self.tags.len(), MAX_FILTER_VALUES, &mut out);
        let page =
            page(self.page.map(|p| p.to_string()).as_deref(), self.size.map(|s| s.to_string()).as_deref(), &mut out);
        let (sort, direction) = sort(self.sort_column.as_deref(), self.sort_direction.as_deref(), &mut out);
        let filter = MemoryFilter {
            app_ids: ids::<AppId>("app_ids", &self.app_ids, &mut out),
            category_ids: ids::<CategoryId>("category_ids", &self.category_ids, &mut out),
            category_names: self.categories.clone(),
            categories: each::<Category>("metadata_categories", &self.metadata_categories, &mut out),
            scopes: each::<Scope>("scopes", &self.scopes, &mut out),
            artifact_types: each::<ArtifactType>("artifact_types", &self.artifact_types, &mut out),
            entities: self.entities.clone(),
            sources: each::<Source>("sources", &self.sources, &mut out),
            tags: self.tags.clone(),
            from: self.from.as_deref().and_then(|t| parse_time("from", t, &mut out)),
            to: self.to.as_deref().and_then(|t| parse_time("to", t, &mut out)),
            search: search(self.search_query.as_deref(), &mut out),
            states: states(None, self.show_archived, &mut out),
            as_of: self.as_of.as_deref().and_then(|t| parse_time("as_of", t, &mut out)),
            sort,
            direction,
            ..Default::default()
        };
        let filter = at_time(filter, true);
        let (filter, page) = resume(filter, page, self.page.is_some(), self.cursor.as_deref(), &mut out);
        if out.is_empty() { Ok((filter, page)) } else { Err(out) }
    }
}

/// `{memory_ids}` bodies.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IdsBody {
    pub memory_ids: Vec<String>,
}

impl IdsBody {
    pub fn parse(&self) -> Result<Vec<MemoryId>, Vec<FieldViolation>> {
        let mut out = Vec::new();
        if self.memory_ids.is_empty() || self.memory_ids.len() > MAX_IDS_PER_CALL {
            out.push(FieldViolation::new("memory_ids", format!("give 1 to {MAX_IDS_PER_CALL} ids")));
        }
        let parsed = ids::<MemoryId>("memory_ids", &self.memory_ids, &mut out);
        if out.is_empty() { Ok(parsed) } else { Err(out) }
    }
}

/// `/actions/*` body.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    #[serde(default)]
    pub memory_ids: Vec<String>,
    pub app_id: Option<String>,
    #[serde(default)]
    pub category_ids: Vec<String>,
}

impl ActionBody {
    pub fn parse(&self) -> Result<crate::memories::Selection, Vec<FieldViolation>> {
        let mut out = Vec::new();
        at_most("memory_ids", self.memory_ids.len(), MAX_IDS_PER_CALL, &mut out);
        at_most("category_ids", self.category_ids.len(), MAX_IDS_PER_CALL, &mut out);
        let selection = crate::memories::Selection {
            memory_ids: ids::<MemoryId>("memory_ids", &self.memory_ids, &mut out),
            app_id: self.app_id.as_deref().and_then(|a| id::<AppId>("app_id", a, &mut out)),
            category_ids: ids::<CategoryId>("category_ids", &self.category_ids, &mut out),
        };
        if out.is_empty() { Ok(selection) } else { Err(out) }
    }
}

/// Paging-only query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    #[param(value_type = Option<u64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub size: Option<String>,
}

impl PageQuery {
    pub fn parse(&self) -> Result<PageRequest, Vec<FieldViolation>> {
        let mut out = Vec::new();
        let p = page(self.page.as_deref(), self.size.as_deref(), &mut out);
        if out.is_empty() { Ok(p) } else { Err(out) }
    }
}

/// `GET /api/v1/memories/scoped` query parameters.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ScopedQuery {
    #[param(value_type = Option<u64>, minimum = 1)]
    pub page: Option<String>,
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub size: Option<String>,
    /// Comma-separated scopes to read (session, user, team, project, org,
    /// enterprise); default: every scope the caller may see.
    pub scopes: Option<String>,
    /// Comma-separated category names.
    pub categories: Option<String>,
    pub search_query: Option<String>,
}

impl ScopedQuery {
    pub fn parse(&self) -> Result<(MemoryFilter, PageRequest), Vec<FieldViolation>> {
        let mut out = Vec::new();
        let page = page(self.page.as_deref(), self.size.as_deref(), &mut out);
        let mut scopes = Vec::new();
        for raw in comma_separated(self.scopes.as_deref()) {
            match Scope::from_str(&raw).ok() {
                Some(scope) if !scopes.contains(&scope) => scopes.push(scope),
                Some(_) => {}
                None => out.push(FieldViolation::new(
                    "scopes",
                    format!("unknown scope `{raw}`: session, user, team, project, org or enterprise"),
                )),
            }
        }
        let filter = MemoryFilter {
            scopes,
            category_names: comma_separated(self.categories.as_deref()),
            search: search(self.search_query.as_deref(), &mut out),
            states: vec![MemoryState::Active],
            ..Default::default()
        };
        if out.is_empty() { Ok((filter, page)) } else { Err(out) }
    }
}
