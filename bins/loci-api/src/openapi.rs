//! The OpenAPI 3.1 document, generated from the handlers' annotations and the
//! request/response types, served at `/openapi.json`, browsable at `/docs`.

mod constraints;

use loci_domain::validation::Limits;
use serde_json::{Value, json};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use loci_http::Problem;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "An access token; DPoP-bound tokens use `Authorization: DPoP` with a `DPoP` proof.",
                    ))
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Loci", description = "Memory and retrieval server for AI agents. Errors are RFC 9457 problems; see docs/errors.md."),
    paths(
        loci_http::health::live,
        loci_http::health::ready,
        loci_http::health::deps,
        crate::routes::meta::whoami,
        loci_http::common::protected_resource,
        crate::routes::experiments::list,
        crate::routes::experiments::create,
        crate::routes::experiments::get,
        crate::routes::experiments::set_status,
        crate::routes::experiments::assign,
        crate::routes::experiments::assignment,
        crate::routes::experiments::history,
        crate::routes::feedback::record,
        crate::routes::feedback::list,
        crate::routes::feedback::metrics,
        crate::routes::feedback::by_tool,
        crate::routes::feedback::proposal,
        crate::routes::feedback::purge,
        crate::routes::gdpr::export,
        crate::routes::gdpr::erase,
        crate::routes::gdpr::audit,
        crate::routes::config::get,
        crate::routes::config::put,
        crate::routes::memories::create,
        crate::routes::memories::job,
        crate::routes::memories::list,
        crate::routes::memories::filter,
        crate::routes::memories::scoped,
        crate::routes::memories::supersede,
        crate::routes::memories::retract,
        crate::routes::memories::categories,
        crate::routes::memories::get,
        crate::routes::memories::update,
        crate::routes::memories::delete,
        crate::routes::memories::action,
        crate::routes::memories::history,
        crate::routes::memories::access_log,
        crate::routes::memories::related,
        crate::routes::search::similar,
        crate::routes::search::search,
        crate::routes::search::lexical,
        crate::routes::search::semantic,
        crate::routes::apps::list,
        crate::routes::apps::get,
        crate::routes::apps::memories,
        crate::routes::apps::accessed,
        crate::routes::apps::update,
        crate::routes::apps::stats,
        crate::routes::backup::export,
        crate::routes::backup::import,
        crate::routes::entities::list,
        crate::routes::entities::get,
        crate::routes::entities::network,
        crate::routes::entities::path,
        crate::routes::entities::relations,
        crate::routes::entities::memories,
        crate::routes::entities::centrality,
        crate::routes::entities::duplicates,
        crate::routes::entities::merge,
        crate::routes::entities::import,
        crate::routes::sessions::add,
        crate::routes::sessions::list,
        crate::routes::sessions::get,
        crate::routes::sessions::delete,
        crate::routes::sessions::promote,
        crate::routes::sessions::summarised,
        crate::routes::sessions::decay,
        crate::routes::sessions::expire,
        crate::routes::sessions::context,
        crate::routes::graph::stats,
        crate::routes::graph::aggregate,
        crate::routes::graph::tag_cooccurrence,
        crate::routes::graph::related_tags,
        crate::routes::graph::search_memories,
        crate::routes::graph::search_entities,
        crate::routes::graph::timeline,
        crate::routes::graph::connectivity,
        crate::routes::graph::entity_communities,
        crate::routes::graph::memory_communities,
        crate::routes::code::index,
        crate::routes::code::repos,
        crate::routes::code::repo,
        crate::routes::code::delete_repo,
        crate::routes::code::reindex,
        crate::routes::code::job,
        crate::routes::code::cancel,
        crate::routes::code::search,
        crate::routes::code::symbols,
        crate::routes::code::explain,
        crate::routes::code::callers,
        crate::routes::code::callees,
        crate::routes::code::impact,
    ),
    components(schemas(Problem, loci_http::FieldError, loci_domain::graph::DimensionName)),
    modifiers(&Security),
    tags(
        (name = "health", description = "Liveness and dependencies (public)"),
        (name = "memories", description = "Store, list, filter, change and delete memories"),
        (name = "apps", description = "The apps a user writes through"),
        (name = "search", description = "Hybrid (vector + lexical + graph) search"),
        (name = "backup", description = "Export and import of a user's memories"),
        (name = "entities", description = "The entities of the caller's visible memories and how they connect"),
        (name = "graph", description = "Stats, counts, tags, timelines and communities of the caller's visible memories"),
        (name = "sessions", description = "Episodic memory: an agent session's short-term items, kept for a while, promoted to memories"),
        (name = "config", description = "The effective settings (admin only, secrets redacted)"),
        (name = "gdpr", description = "Subject access export, erasure across every store, and their audit"),
        (name = "feedback", description = "What agents did with search results; aggregates; fusion weights proposed from it"),
        (name = "experiments", description = "Search configurations compared on a share of the org's users, with sticky assignment"),
        (name = "code", description = "Code intelligence: repositories indexed with tree-sitter, symbols, callers and callees, impact across repositories, code search"),
        (name = "identity", description = "Who the caller is; protected-resource metadata"),
    )
)]
pub struct ApiDoc;

/// Operation ids are the handler's name, which repeats across modules
/// (`list`, `get`, ...): prefixed with the operation's tag they are unique,
/// as generated clients and links need.
fn unique_operation_ids(doc: &mut Value) {
    for item in doc.get_mut("paths").and_then(Value::as_object_mut).into_iter().flat_map(|p| p.values_mut()) {
        for op in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
            let tag = op.pointer("/tags/0").and_then(Value::as_str).unwrap_or("loci").to_owned();
            if let Some(id) = op.get_mut("operationId")
                && let Some(name) = id.as_str()
            {
                *id = Value::from(format!("{tag}_{name}"));
            }
        }
    }
}

/// OpenAPI links from a created memory to what can be done with it, so
/// stateful clients (and property tests) follow create -> read -> update ->
/// state actions -> delete on the same memory.
fn memory_links(doc: &mut Value) {
    let id = "$response.body#/id";
    let by_id = |op: &str| json!({ "operationId": op, "parameters": { "path.id": id } });
    let action = |name: &str| {
        json!({
            "operationId": "memories_action",
            "parameters": { "path.action": name },
            "requestBody": { "memory_ids": [id] },
        })
    };
    let links = json!({
        "GetMemory": by_id("memories_get"),
        "UpdateMemory": by_id("memories_update"),
        "MemoryHistory": by_id("memories_history"),
        "MemoryAccessLog": by_id("memories_access_log"),
        "RelatedMemories": by_id("memories_related"),
        "SimilarMemories": by_id("memories_similar"),
        "PauseMemory": action("pause"),
        "ResumeMemory": action("resume"),
        "ArchiveMemory": action("archive"),
        "DeleteMemory": { "operationId": "memories_delete", "requestBody": { "memory_ids": [id] } },
        "GetApp": { "operationId": "apps_get", "parameters": { "path.id": "$response.body#/app_id" } },
    });
    if let Some(created) = doc.pointer_mut("/paths/~1api~1v1~1memories/post/responses/201") {
        created["links"] = links.clone();
    }
    if let Some(updated) = doc.pointer_mut("/paths/~1api~1v1~1memories~1{id}/put/responses/200") {
        let id = "$response.body#/memory/id";
        updated["links"] = json!({
            "GetMemory": { "operationId": "memories_get", "parameters": { "path.id": id } },
            "DeleteMemory": { "operationId": "memories_delete", "requestBody": { "memory_ids": [id] } },
        });
    }
}

/// A zip is bytes: OpenAPI 3.1 says so with `contentMediaType` (utoipa
/// renders `Vec<u8>` as an array of integers).
fn zip_bodies(doc: &mut Value) {
    let zip = json!({ "type": "string", "format": "binary", "contentMediaType": "application/zip" });
    for pointer in [
        "/paths/~1api~1v1~1backup~1export/post/responses/200/content/application~1zip/schema",
        "/paths/~1api~1v1~1backup~1import/post/requestBody/content/application~1zip/schema",
    ] {
        if let Some(schema) = doc.pointer_mut(pointer) {
            *schema = zip.clone();
        }
    }
}

/// The document with the deployment's limits, and the targets of
/// constraints that were not found (empty unless a field or route was
/// renamed without its constraint; the tests refuse that).
fn build(limits: &Limits) -> (Value, Vec<String>) {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_else(|_| json!({}));
    unique_operation_ids(&mut doc);
    memory_links(&mut doc);
    zip_bodies(&mut doc);
    let missing = constraints::apply(&mut doc, limits);
    (doc, missing)
}

/// The document as JSON, for a server running with `limits`. Built once per
/// set of limits (a process has one; tests start servers with others).
pub fn document(limits: &Limits) -> std::sync::Arc<str> {
    static BUILT: std::sync::Mutex<Vec<(Limits, std::sync::Arc<str>)>> = std::sync::Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, doc)) = built.iter().find(|(l, _)| l == limits) {
        return doc.clone();
    }
    let (doc, missing) = build(limits);
    if !missing.is_empty() {
        tracing::warn!(?missing, "OpenAPI constraints name schema fields or parameters that do not exist");
    }
    let doc: std::sync::Arc<str> = doc.to_string().into();
    built.push((*limits, doc.clone()));
    doc
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::BTreeMap;

    use loci_core::OrgId;
    use loci_domain::backup::ImportMode;
    use loci_domain::inputs::{ActionBody, FilterBody, IdsBody, ListQuery};
    use loci_domain::memories::StateAction;
    use loci_domain::rules;
    use loci_domain::search::SearchInput;
    use loci_domain::validation::{self, MetadataInput};
    use serde_json::Map;

    use super::*;

    fn doc() -> Value {
        let (doc, missing) = build(&Limits::default());
        assert!(missing.is_empty(), "constraints without a target: {missing:?}");
        doc
    }

    fn prop(doc: &Value, schema: &str, prop: &str) -> Value {
        doc.pointer(&format!("/components/schemas/{schema}/properties/{prop}"))
            .unwrap_or_else(|| panic!("{schema}.{prop} is not in the document"))
            .clone()
    }

    fn usize_of(v: &Value, key: &str) -> usize {
        v[key].as_u64().unwrap_or_else(|| panic!("no {key} in {v}")) as usize
    }

    fn strings(v: &Value) -> Vec<String> {
        v["enum"].as_array().unwrap().iter().filter_map(|x| x.as_str().map(str::to_owned)).collect()
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = doc();
        let mut seen = BTreeMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let id = op["operationId"].as_str().unwrap().to_owned();
                assert!(seen.insert(id.clone(), format!("{method} {path}")).is_none(), "{id} repeats");
            }
        }
        assert!(seen.len() >= 28);
    }

    #[test]
    fn zips_are_binary_strings() {
        let doc = doc();
        let export = doc.pointer("/paths/~1api~1v1~1backup~1export/post/responses/200/content/application~1zip/schema");
        let import = doc.pointer("/paths/~1api~1v1~1backup~1import/post/requestBody/content/application~1zip/schema");
        for schema in [export, import] {
            assert_eq!(schema.unwrap()["contentMediaType"], "application/zip");
        }
    }

    #[test]
    fn links_name_existing_operations() {
        let doc = doc();
        let ids: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|i| i.as_object().unwrap().values())
            .map(|op| op["operationId"].as_str().unwrap())
            .collect();
        let links = doc.pointer("/paths/~1api~1v1~1memories/post/responses/201/links").unwrap().as_object().unwrap();
        assert!(links.len() >= 10);
        for (name, link) in links {
            assert!(ids.contains(&link["operationId"].as_str().unwrap()), "{name}");
        }
    }

    /// The regex classes mean what `char::is_whitespace` and
    /// `char::is_control` mean, over every code point.
    #[test]
    fn patterns_match_the_rust_character_classes() {
        let blank = regex::Regex::new(&format!("^[{}]$", constraints::WHITE_SPACE)).unwrap();
        let control = regex::Regex::new(&format!("^[{}]$", constraints::CONTROL)).unwrap();
        let mut buf = [0u8; 4];
        for c in (0..=0x10FFFFu32).filter_map(char::from_u32) {
            let s = c.encode_utf8(&mut buf);
            assert_eq!(blank.is_match(s), c.is_whitespace(), "U+{:04X}", c as u32);
            assert_eq!(control.is_match(s), c.is_control(), "U+{:04X}", c as u32);
        }
        let name = regex::Regex::new(&constraints::name_pattern()).unwrap();
        let mut out = Vec::new();
        for candidate in ["ok", " padded ", "", "   ", "tab\there", "\u{85}", "x\u{9f}", "ünïcode"] {
            let accepted = validation::app_name("app", candidate, &mut out).is_some();
            assert_eq!(name.is_match(candidate), accepted, "{candidate:?}");
        }
    }

    #[test]
    fn identifier_patterns_match_the_parsers() {
        let access = regex::Regex::new(&constraints::access_entity_pattern()).unwrap();
        let long = "s".repeat(loci_core::MAX_ACCESS_SEGMENT_CHARS);
        for raw in [
            "user:alice".to_owned(),
            "org:acme".into(),
            "team:acme/core".into(),
            "team:acme/web/core".into(),
            "team:acme/a/b/c".into(),
            "project:acme/web".into(),
            "project:acme".into(),
            "user:".into(),
            "user:a b".into(),
            "user:a/b".into(),
            "group:x".into(),
            "".into(),
            format!("user:{long}"),
            format!("user:{long}s"),
            "user:ünï:code".into(),
        ] {
            assert_eq!(access.is_match(&raw), raw.parse::<loci_core::AccessEntity>().is_ok(), "{raw:?}");
        }
        let org = regex::Regex::new(&constraints::org_id_pattern()).unwrap();
        for c in (0u8..=127).map(char::from) {
            let raw = format!("a{c}b");
            assert_eq!(org.is_match(&raw), OrgId::parse(&raw).is_ok(), "{raw:?}");
        }
        for raw in ["", &"o".repeat(OrgId::MAX_LEN), &"o".repeat(OrgId::MAX_LEN + 1)] {
            assert_eq!(org.is_match(raw), OrgId::parse(raw).is_ok(), "{} chars", raw.len());
        }
    }

    #[test]
    fn page_bounds_match_the_domain_rules() {
        let doc = doc();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (_, op) in item.as_object().unwrap() {
                for param in op["parameters"].as_array().into_iter().flatten() {
                    let schema = &param["schema"];
                    match param["name"].as_str().unwrap() {
                        "size" => assert_eq!(
                            (usize_of(schema, "minimum"), usize_of(schema, "maximum")),
                            (1, rules::MAX_PAGE_SIZE as usize),
                            "{path}"
                        ),
                        "page" => assert_eq!(
                            (usize_of(schema, "minimum"), usize_of(schema, "maximum")),
                            (1, rules::MAX_PAGE as usize),
                            "{path}"
                        ),
                        _ => continue,
                    }
                    checked += 1;
                }
            }
        }
        assert!(checked >= 8, "the paged routes declare `page` and `size` ({checked} found)");
        let mut out = Vec::new();
        let max = rules::MAX_PAGE.to_string();
        let over = (rules::MAX_PAGE + 1).to_string();
        assert!(loci_domain::inputs::page(Some(&max), Some("100"), &mut out).page == rules::MAX_PAGE && out.is_empty());
        loci_domain::inputs::page(Some(&over), Some("101"), &mut out);
        assert_eq!(out.len(), 2);
    }

    /// Every documented length, count and enum of a memory's input is what
    /// the validation accepts, and one past it is refused.
    #[test]
    fn memory_input_constraints_are_the_validation() {
        let doc = doc();
        let limits = Limits::default();
        let org = OrgId::parse("acme").unwrap();
        let meta_ok = |input: MetadataInput| {
            let mut out = Vec::new();
            validation::metadata(&input, &org, &limits, &mut out).is_some()
        };

        let text = prop(&doc, "CreateMemoryInput", "text");
        assert_eq!(usize_of(&text, "maxLength"), limits.max_content_bytes);
        assert_eq!(prop(&doc, "UpdateMemoryInput", "text")["maxLength"], text["maxLength"]);
        let mut out = Vec::new();
        assert!(validation::content("text", &"a".repeat(usize_of(&text, "maxLength")), &limits, &mut out).is_some());
        assert!(
            validation::content("text", &"a".repeat(usize_of(&text, "maxLength") + 1), &limits, &mut out).is_none()
        );

        let app = usize_of(&prop(&doc, "CreateMemoryInput", "app"), "maxLength");
        assert!(validation::app_name("app", &"a".repeat(app), &mut out).is_some());
        assert!(validation::app_name("app", &"a".repeat(app + 1), &mut out).is_none());

        for field in ["artifact_ref", "entity"] {
            let max = usize_of(&prop(&doc, "MetadataInput", field), "maxLength");
            let with = |n: usize| {
                let mut m = MetadataInput::default();
                let v = Some("r".repeat(n));
                if field == "entity" {
                    m.entity = v
                } else {
                    m.artifact_ref = v
                }
                m
            };
            assert!(meta_ok(with(max)) && !meta_ok(with(max + 1)), "{field}");
        }

        let evidence = prop(&doc, "MetadataInput", "evidence");
        let (items, chars) = (usize_of(&evidence, "maxItems"), usize_of(&evidence["items"], "maxLength"));
        // (the total size of the metadata is a separate limit, in bytes)
        assert!(meta_ok(MetadataInput { evidence: vec!["e".into(); items], ..Default::default() }));
        assert!(meta_ok(MetadataInput { evidence: vec!["e".repeat(chars)], ..Default::default() }));
        assert!(!meta_ok(MetadataInput { evidence: vec!["e".into(); items + 1], ..Default::default() }));
        assert!(!meta_ok(MetadataInput { evidence: vec!["e".repeat(chars + 1)], ..Default::default() }));

        let categories = prop(&doc, "MetadataInput", "categories");
        let (items, chars) = (usize_of(&categories, "maxItems"), usize_of(&categories["items"], "maxLength"));
        let many = |n: usize, len: usize| (0..n).map(|i| format!("{i:0>len$}")).collect::<Vec<_>>();
        assert!(meta_ok(MetadataInput { categories: many(items, chars), ..Default::default() }));
        assert!(!meta_ok(MetadataInput { categories: many(items + 1, 3), ..Default::default() }));
        assert!(!meta_ok(MetadataInput { categories: many(1, chars + 1), ..Default::default() }));

        let tags = prop(&doc, "MetadataInput", "tags");
        let key_max = usize_of(&tags["propertyNames"], "maxLength");
        let tag_map = |n: usize, key_len: usize| {
            (0..n).map(|i| (format!("{i:0>key_len$}"), Value::from(1))).collect::<Map<String, Value>>()
        };
        assert!(meta_ok(MetadataInput {
            tags: tag_map(usize_of(&tags, "maxProperties"), key_max),
            ..Default::default()
        }));
        assert!(!meta_ok(MetadataInput {
            tags: tag_map(usize_of(&tags, "maxProperties") + 1, 3),
            ..Default::default()
        }));
        assert!(!meta_ok(MetadataInput { tags: tag_map(1, key_max + 1), ..Default::default() }));

        for (field, set) in [
            ("category", (|m: &mut MetadataInput, v| m.category = v) as fn(&mut MetadataInput, Option<String>)),
            ("scope", |m, v| m.scope = v),
            ("artifact_type", |m, v| m.artifact_type = v),
            ("source", |m, v| m.source = v),
        ] {
            let values = strings(&prop(&doc, "MetadataInput", field));
            assert!(values.len() >= 2, "{field}");
            for v in values.iter().chain(["not-a-value".to_owned()].iter()) {
                let mut m = MetadataInput::default();
                set(&mut m, Some(v.clone()));
                assert_eq!(meta_ok(m), v != "not-a-value", "{field} = {v}");
            }
        }
    }

    #[test]
    fn list_filter_and_bulk_constraints_are_the_validation() {
        let doc = doc();
        let uuid = "0190f3b4-6f3a-7cc0-8a4c-8d2c7e8e0b11".to_owned();
        for list in FilterBody::LISTS {
            let max = usize_of(&prop(&doc, "FilterBody", list), "maxItems");
            let body = |n: usize| {
                let mut b = FilterBody::default();
                let item = match list {
                    "app_ids" | "category_ids" => uuid.clone(),
                    "metadata_categories" => "decision".into(),
                    "scopes" => "team".into(),
                    "artifact_types" => "repo".into(),
                    "sources" => "user".into(),
                    _ => "x".into(),
                };
                let v = vec![item; n];
                match list {
                    "app_ids" => b.app_ids = v,
                    "category_ids" => b.category_ids = v,
                    "categories" => b.categories = v,
                    "metadata_categories" => b.metadata_categories = v,
                    "scopes" => b.scopes = v,
                    "artifact_types" => b.artifact_types = v,
                    "entities" => b.entities = v,
                    _ => b.sources = v,
                }
                b
            };
            assert!(body(max).parse().is_ok(), "{list}");
            assert!(body(max + 1).parse().is_err(), "{list}");
        }
        for (field, values) in [("sort_column", rules::SORT_COLUMNS), ("sort_direction", rules::SORT_DIRECTIONS)] {
            assert_eq!(strings(&prop(&doc, "FilterBody", field)), values);
            for v in values {
                let q = ListQuery {
                    sort_column: (field == "sort_column").then(|| v.to_string()),
                    sort_direction: (field == "sort_direction").then(|| v.to_string()),
                    ..Default::default()
                };
                assert!(q.parse().is_ok(), "{field} = {v}");
            }
        }

        let ids = prop(&doc, "IdsBody", "memory_ids");
        assert_eq!((usize_of(&ids, "minItems"), usize_of(&ids, "maxItems")), (1, rules::MAX_IDS_PER_CALL));
        assert!(IdsBody { memory_ids: vec![uuid.clone(); rules::MAX_IDS_PER_CALL] }.parse().is_ok());
        assert!(IdsBody { memory_ids: vec![uuid.clone(); rules::MAX_IDS_PER_CALL + 1] }.parse().is_err());
        assert!(IdsBody { memory_ids: Vec::new() }.parse().is_err());
        let max = usize_of(&prop(&doc, "ActionBody", "category_ids"), "maxItems");
        assert!(ActionBody { category_ids: vec![uuid.clone(); max], ..Default::default() }.parse().is_ok());
        assert!(ActionBody { category_ids: vec![uuid; max + 1], ..Default::default() }.parse().is_err());

        // Enumerated path and query parameters.
        let param = |path: &str, method: &str, name: &str| -> Vec<String> {
            let op = &doc["paths"][path][method];
            let p = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == name).unwrap();
            strings(&p["schema"])
        };
        let actions = param("/api/v1/memories/actions/{action}", "post", "action");
        assert_eq!(actions, ["pause", "resume", "archive"]);
        assert!(actions.iter().all(|a| StateAction::from_name(a).is_some()));
        let modes = param("/api/v1/backup/import", "post", "mode");
        assert!(modes.iter().all(|m| ImportMode::from_name(m).is_some()) && modes.len() == 2);
        assert_eq!(param("/api/v1/apps", "get", "sort_by"), rules::APP_SORTS);

        // The comma-separated `state` list.
        let op = &doc["paths"]["/api/v1/memories"]["get"];
        let p = op["parameters"].as_array().unwrap().iter().find(|p| p["name"] == "state").unwrap();
        let state = regex::Regex::new(p["schema"]["pattern"].as_str().unwrap()).unwrap();
        for raw in
            ["active", "active,paused", " paused , archived ", "active,,", "deleted", "act", "active paused", "activex"]
        {
            let q = ListQuery { state: Some(raw.into()), ..Default::default() };
            assert_eq!(state.is_match(raw), q.parse().is_ok(), "{raw:?}");
        }
    }

    #[test]
    fn search_constraints_are_the_validation() {
        let doc = doc();
        let query = prop(&doc, "SearchInput", "query");
        assert_eq!((usize_of(&query, "minLength"), usize_of(&query, "maxLength")), (1, rules::MAX_QUERY_CHARS));
        let limit = prop(&doc, "SearchInput", "limit");
        let (lo, hi) = (usize_of(&limit, "minimum"), usize_of(&limit, "maximum"));
        let input = |limit: usize| SearchInput {
            query: "q".into(),
            limit: Some(limit as i64),
            filters: None,
            mode: None,
            weights: None,
            dedupe: None,
            as_of: None,
            rerank: None,
        };
        assert!(input(lo).parse(None).is_ok() && input(hi).parse(None).is_ok());
        assert!(input(lo - 1).parse(None).is_err() && input(hi + 1).parse(None).is_err());
        for field in ["category", "scope", "artifact_type", "source"] {
            assert_eq!(strings(&prop(&doc, "SearchFiltersInput", field)), strings(&prop(&doc, "MetadataInput", field)));
        }
    }
}
