//! Input types shared by REST and MCP, and their rules: enum values, the
//! agreement of scope and access entity, and size limits. Every problem is
//! reported with its field path, all at once.

use std::collections::BTreeMap;

use loci_core::model::MemoryMetadata;
use loci_core::{AccessEntity, ArtifactType, Category, OrgId, Scope, Source};
use loci_settings::LimitsSettings;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::FieldViolation;
use crate::rules::{
    MAX_APP_NAME_CHARS, MAX_CATEGORIES, MAX_CATEGORY_CHARS, MAX_EVIDENCE_CHARS, MAX_EVIDENCE_ITEMS, MAX_REF_CHARS,
    MAX_TAG_KEY_CHARS, has_control, is_blank,
};

/// Limits in force (from `[limits]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_content_bytes: usize,
    pub max_metadata_bytes: usize,
    pub max_tags: usize,
}

impl From<&LimitsSettings> for Limits {
    fn from(l: &LimitsSettings) -> Self {
        Self { max_content_bytes: l.max_content_bytes, max_metadata_bytes: l.max_metadata_bytes, max_tags: l.max_tags }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from(&LimitsSettings::default())
    }
}

/// Structured metadata as clients send it: enums as strings, so an unknown
/// value is a per-field error rather than a parse failure of the whole body.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
pub struct MetadataInput {
    /// decision, convention, architecture, dependency, workflow, testing,
    /// security, performance, runbook or glossary.
    pub category: Option<String>,
    /// session, user, team, project, org or enterprise; derived from
    /// `access_entity` when absent.
    pub scope: Option<String>,
    /// repo, service, module, component, api, db, infra or file.
    pub artifact_type: Option<String>,
    pub artifact_ref: Option<String>,
    pub entity: Option<String>,
    /// user or inference.
    pub source: Option<String>,
    /// user:<id>, team:<org>/<team>, project:<org>/<project> or org:<org>.
    pub access_entity: Option<String>,
    #[serde(default)]
    pub evidence: Vec<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tags: Map<String, Value>,
    /// Category names to file the memory under.
    #[serde(default)]
    pub categories: Vec<String>,
    /// Anything else the client stores alongside.
    #[serde(flatten)]
    #[schema(ignore)]
    pub extra: Map<String, Value>,
}

/// Input of "create a memory".
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMemoryInput {
    /// What to remember. With `infer`, the text facts are taken from (or
    /// give `messages` instead).
    #[serde(default)]
    pub text: String,
    /// App name; default: the token's client, else `default`.
    pub app: Option<String>,
    #[serde(default)]
    pub metadata: MetadataInput,
    /// Take atomic facts from the input and reconcile each with the
    /// caller's current memories: ADD, UPDATE (supersede), DELETE (retract)
    /// or NOOP (already known). `metadata` applies to every fact.
    #[serde(default)]
    pub infer: bool,
    /// With `infer`: a conversation to take facts from, instead of `text`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<MessageInput>>,
    /// With `infer`: run as a job and answer 202 with its id at once (inputs
    /// above `infer.async_threshold_chars` always do).
    #[serde(default, rename = "async")]
    pub run_async: bool,
}

/// One message of a conversation given to `infer`.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageInput {
    /// `user` (default), `assistant`, `system` or `tool`: unnamed assistant,
    /// system and tool messages give no facts.
    #[serde(default = "user_role")]
    pub role: String,
    /// Who said it: facts are attributed to named speakers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub content: String,
    /// The client's id of the message, kept as the evidence of its facts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

fn user_role() -> String {
    "user".to_owned()
}

/// Input of "update a memory": at least one field; a field left out is
/// unchanged (`null` is refused: leave the field out instead); `tags` merge
/// (a `null` tag value removes a key), `categories` replace.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMemoryInput {
    #[serde(default, deserialize_with = "given")]
    pub text: Option<String>,
    #[serde(default, deserialize_with = "given")]
    pub metadata: Option<MetadataInput>,
}

/// A field that may be left out but, when given, is not `null`.
fn given<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// Parsed, valid metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidMetadata {
    pub metadata: MemoryMetadata,
    pub categories: Vec<String>,
}

pub(crate) fn parse_enum<T: std::str::FromStr>(
    field: &str,
    value: &Option<String>,
    out: &mut Vec<FieldViolation>,
) -> Option<T>
where
    T::Err: std::fmt::Display,
{
    let raw = value.as_deref()?;
    match raw.parse::<T>() {
        Ok(v) => Some(v),
        Err(e) => {
            out.push(FieldViolation::new(field, e.to_string()));
            None
        }
    }
}

// Lengths are measured on the value as sent (what the OpenAPI document's
// maxLength describes); the stored value is trimmed.
fn bounded_text(field: &str, value: &Option<String>, max: usize, out: &mut Vec<FieldViolation>) -> Option<String> {
    let v = value.as_deref()?;
    if is_blank(v) {
        out.push(FieldViolation::new(field, "must not be blank when given"));
        return None;
    }
    if v.chars().count() > max {
        out.push(FieldViolation::new(field, format!("must be at most {max} characters")));
        return None;
    }
    Some(v.trim().to_owned())
}

/// The memory text: not blank, within the byte limit as sent; stored trimmed.
pub fn content(field: &str, text: &str, limits: &Limits, out: &mut Vec<FieldViolation>) -> Option<String> {
    if is_blank(text) {
        out.push(FieldViolation::new(field, "must not be blank"));
        None
    } else if text.len() > limits.max_content_bytes {
        out.push(FieldViolation::new(field, format!("must be at most {} bytes", limits.max_content_bytes)));
        None
    } else {
        Some(text.trim().to_owned())
    }
}

/// An app name: 1..=255 characters, no control characters.
/// The size rules of [`metadata`] for metadata that arrives already typed
/// (a backup being imported): tag count and the byte size of tags, extra
/// fields and evidence.
pub fn stored_metadata(md: &MemoryMetadata, limits: &Limits, out: &mut Vec<FieldViolation>) -> bool {
    let before = out.len();
    if md.tags.len() > limits.max_tags {
        out.push(FieldViolation::new("metadata.tags", format!("at most {} tags", limits.max_tags)));
    }
    let size = serde_json::to_vec(&(&md.tags, &md.extra, &md.evidence)).map_or(usize::MAX, |v| v.len());
    if size > limits.max_metadata_bytes {
        out.push(FieldViolation::new("metadata", format!("must be at most {} bytes", limits.max_metadata_bytes)));
    }
    out.len() == before
}

/// An id (UUID) given as text; a field error otherwise.
pub fn parse_id<T: std::str::FromStr>(field: &str, raw: &str, out: &mut Vec<FieldViolation>) -> Option<T> {
    match raw.parse::<T>() {
        Ok(v) => Some(v),
        Err(_) => {
            out.push(FieldViolation::new(field, "must be a UUID"));
            None
        }
    }
}

pub fn app_name(field: &str, name: &str, out: &mut Vec<FieldViolation>) -> Option<String> {
    if is_blank(name) || name.chars().count() > MAX_APP_NAME_CHARS || has_control(name) {
        out.push(FieldViolation::new(
            field,
            format!("must be 1 to {MAX_APP_NAME_CHARS} characters, not blank, without control characters"),
        ));
        None
    } else {
        Some(name.trim().to_owned())
    }
}

/// Validates structured metadata for a memory of `org`.
pub fn metadata(
    input: &MetadataInput,
    org: &OrgId,
    limits: &Limits,
    out: &mut Vec<FieldViolation>,
) -> Option<ValidMetadata> {
    let before = out.len();
    let category = parse_enum::<Category>("metadata.category", &input.category, out);
    let mut scope = parse_enum::<Scope>("metadata.scope", &input.scope, out);
    let artifact_type = parse_enum::<ArtifactType>("metadata.artifact_type", &input.artifact_type, out);
    let source = parse_enum::<Source>("metadata.source", &input.source, out);
    let access_entity = parse_enum::<AccessEntity>("metadata.access_entity", &input.access_entity, out);
    if let Some(entity) = &access_entity {
        if entity.org().is_some_and(|o| o != org.as_str()) {
            out.push(FieldViolation::new("metadata.access_entity", format!("must name your org `{org}`")));
        }
        let implied = entity.implied_scope();
        match scope {
            None => scope = Some(implied),
            Some(s) if s != implied => out.push(FieldViolation::new(
                "metadata.scope",
                format!("`{s}` does not agree with access_entity `{entity}` (scope `{implied}`)"),
            )),
            Some(_) => {}
        }
    }
    let artifact_ref = bounded_text("metadata.artifact_ref", &input.artifact_ref, MAX_REF_CHARS, out);
    let entity = bounded_text("metadata.entity", &input.entity, MAX_REF_CHARS, out);
    if input.evidence.len() > MAX_EVIDENCE_ITEMS {
        out.push(FieldViolation::new("metadata.evidence", format!("at most {MAX_EVIDENCE_ITEMS} items")));
    }
    for (i, e) in input.evidence.iter().enumerate() {
        if is_blank(e) || e.chars().count() > MAX_EVIDENCE_CHARS {
            out.push(FieldViolation::new(
                format!("metadata.evidence[{i}]"),
                format!("must be 1 to {MAX_EVIDENCE_CHARS} characters"),
            ));
        }
    }
    if input.tags.len() > limits.max_tags {
        out.push(FieldViolation::new("metadata.tags", format!("at most {} tags", limits.max_tags)));
    }
    for key in input.tags.keys() {
        if key.is_empty() || key.chars().count() > MAX_TAG_KEY_CHARS || has_control(key) {
            out.push(FieldViolation::new(
                "metadata.tags",
                format!("tag keys must be 1 to {MAX_TAG_KEY_CHARS} characters"),
            ));
            break;
        }
    }
    let mut categories: Vec<String> = Vec::new();
    if input.categories.len() > MAX_CATEGORIES {
        out.push(FieldViolation::new("metadata.categories", format!("at most {MAX_CATEGORIES} categories")));
    }
    for (i, raw) in input.categories.iter().enumerate() {
        let c = raw.trim();
        if is_blank(raw) || raw.chars().count() > MAX_CATEGORY_CHARS || has_control(raw) {
            out.push(FieldViolation::new(
                format!("metadata.categories[{i}]"),
                format!("must be 1 to {MAX_CATEGORY_CHARS} characters"),
            ));
        } else if !categories.iter().any(|x| x == c) {
            categories.push(c.to_owned());
        }
    }
    let size = serde_json::to_vec(&(&input.tags, &input.extra, &input.evidence)).map_or(usize::MAX, |v| v.len());
    if size > limits.max_metadata_bytes {
        out.push(FieldViolation::new("metadata", format!("must be at most {} bytes", limits.max_metadata_bytes)));
    }
    if out.len() > before {
        return None;
    }
    Some(ValidMetadata {
        metadata: MemoryMetadata {
            category,
            scope,
            artifact_type,
            artifact_ref,
            entity,
            source,
            access_entity,
            evidence: input.evidence.iter().map(|e| e.trim().to_owned()).collect(),
            tags: input.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect::<BTreeMap<_, _>>(),
            extra: input.extra.clone(),
        },
        categories,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_metadata_keeps_the_size_limits() {
        let limits = Limits { max_content_bytes: 10, max_metadata_bytes: 64, max_tags: 2 };
        let mut out = Vec::new();
        assert!(stored_metadata(&MemoryMetadata::default(), &limits, &mut out) && out.is_empty());
        let mut md = MemoryMetadata::default();
        for k in ["a", "b", "c"] {
            md.tags.insert(k.into(), Value::from(1));
        }
        assert!(!stored_metadata(&md, &limits, &mut out));
        assert_eq!(out[0].field, "metadata.tags");
        let mut md = MemoryMetadata::default();
        md.extra.insert("blob".into(), Value::from("x".repeat(100)));
        out.clear();
        assert!(!stored_metadata(&md, &limits, &mut out));
        assert_eq!(out[0].field, "metadata");
    }

    fn org() -> OrgId {
        OrgId::parse("acme").unwrap()
    }

    fn check(input: MetadataInput) -> Result<ValidMetadata, Vec<FieldViolation>> {
        let mut out = Vec::new();
        metadata(&input, &org(), &Limits::default(), &mut out).ok_or(out)
    }

    #[test]
    fn scope_is_derived_from_the_access_entity_and_must_agree_with_it() {
        let v = check(MetadataInput { access_entity: Some("team:acme/core".into()), ..Default::default() }).unwrap();
        assert_eq!(v.metadata.scope, Some(Scope::Team));
        let e = check(MetadataInput {
            access_entity: Some("team:acme/core".into()),
            scope: Some("org".into()),
            ..Default::default()
        })
        .unwrap_err();
        assert_eq!(e[0].field, "metadata.scope");
    }

    #[test]
    fn every_bad_field_is_reported_at_once() {
        let e = check(MetadataInput {
            category: Some("nonsense".into()),
            artifact_type: Some("spaceship".into()),
            source: Some("oracle".into()),
            access_entity: Some("org:globex".into()),
            categories: vec!["".into()],
            ..Default::default()
        })
        .unwrap_err();
        let fields: Vec<&str> = e.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "metadata.category",
                "metadata.artifact_type",
                "metadata.source",
                "metadata.access_entity",
                "metadata.categories[0]"
            ]
        );
    }

    #[test]
    fn limits_apply_to_content_tags_and_metadata_size() {
        let limits = Limits { max_content_bytes: 10, max_metadata_bytes: 64, max_tags: 2 };
        let mut out = Vec::new();
        assert_eq!(content("text", "  hello  ", &limits, &mut out), Some("hello".into()));
        assert_eq!(content("text", "   ", &limits, &mut out), None);
        assert_eq!(content("text", "01234567890", &limits, &mut out), None);
        assert_eq!(out.len(), 2);
        let mut tags = Map::new();
        for k in ["a", "b", "c"] {
            tags.insert(k.into(), Value::from("x".repeat(30)));
        }
        let mut out = Vec::new();
        assert!(metadata(&MetadataInput { tags, ..Default::default() }, &org(), &limits, &mut out).is_none());
        let fields: Vec<&str> = out.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["metadata.tags", "metadata"]);
    }
}
