//! What the domain's validation enforces, written into the generated
//! document: lengths, ranges, enums, formats, array and map bounds, patterns
//! for "not blank" and "no control characters". utoipa's attributes only take
//! literals; here every bound comes from `loci_domain::rules`, the settings'
//! limits or the enums themselves, so the document cannot drift from the
//! validation (the tests in `super::tests` hold the two together).

use loci_core::{ArtifactType, Category, MemoryState, Scope, Source};
use loci_domain::backup::ImportMode;
use loci_domain::inputs::FilterBody;
use loci_domain::memories::StateAction;
use loci_domain::rules::{
    APP_SORTS, LISTABLE_STATES, MAX_APP_NAME_CHARS, MAX_CATEGORIES, MAX_CATEGORY_CHARS, MAX_EVIDENCE_CHARS,
    MAX_EVIDENCE_ITEMS, MAX_FILTER_VALUES, MAX_IDS_PER_CALL, MAX_PAGE, MAX_PAGE_SIZE, MAX_QUERY_CHARS, MAX_REF_CHARS,
    MAX_SEARCH_LIMIT, MAX_SEARCH_QUERY_CHARS, MAX_TAG_KEY_CHARS, SORT_COLUMNS, SORT_DIRECTIONS,
};
use loci_domain::validation::Limits;
use serde_json::{Value, json};

/// Unicode White_Space, exactly what Rust's `char::is_whitespace` (and so
/// `rules::is_blank`) means, as a regex class body valid in ECMA-262 and
/// Python.
pub(crate) const WHITE_SPACE: &str = r"\t-\r \u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Unicode Cc, what `char::is_control` means.
pub(crate) const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";

/// An access entity (`loci_core::AccessEntity`'s grammar): `user:<id>`,
/// `org:<org>`, `team:<org>/<team>` (or `<org>/<project>/<team>`),
/// `project:<org>/<project>`; segments without white space, control
/// characters or `/`.
pub(crate) fn access_entity_pattern() -> String {
    let seg = format!("[^{WHITE_SPACE}{CONTROL}/]{{1,{}}}", loci_core::MAX_ACCESS_SEGMENT_CHARS);
    format!("^(user:{seg}|org:{seg}|team:{seg}/{seg}(/{seg})?|project:{seg}/{seg})$")
}

/// An org id (`loci_core::OrgId`): 1 to 128 visible ASCII characters
/// without quotes, backslash or backtick.
pub(crate) fn org_id_pattern() -> String {
    format!(r"^[!#-&(-\[\]-_a-~]{{1,{}}}$", loci_core::OrgId::MAX_LEN)
}

/// Contains a character that is not white space (not blank).
pub(crate) fn not_blank() -> String {
    format!("[^{WHITE_SPACE}]")
}

/// Not blank and free of control characters.
pub(crate) fn name_pattern() -> String {
    format!("^[^{CONTROL}]*[^{WHITE_SPACE}{CONTROL}][^{CONTROL}]*$")
}

fn names<T: Copy>(all: &[T], name: impl Fn(T) -> &'static str) -> Vec<Value> {
    all.iter().map(|v| Value::from(name(*v))).collect()
}

/// The values of an optional enum field: the names and `null`.
fn nullable(mut values: Vec<Value>) -> Value {
    values.push(Value::Null);
    Value::Array(values)
}

fn strs(values: &[&str]) -> Vec<Value> {
    values.iter().map(|v| Value::from(*v)).collect()
}

/// A comma-separated list of `values` (spaces around items allowed, empty
/// items ignored), as the list query's `state` parameter parses it.
fn comma_list(values: &[Value]) -> String {
    let alternatives: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
    let ws = WHITE_SPACE;
    format!("^[{ws},]*(({})[{ws}]*(,[{ws},]*|$))*$", alternatives.join("|"))
}

/// Edits of one document; `missing` names the targets that were not found
/// (a renamed field or route), which the tests refuse.
struct Patcher<'a> {
    doc: &'a mut Value,
    missing: Vec<String>,
}

fn merge(target: &mut Value, patch: &Value) {
    if let (Some(t), Some(p)) = (target.as_object_mut(), patch.as_object()) {
        for (k, v) in p {
            t.insert(k.clone(), v.clone());
        }
    }
}

impl Patcher<'_> {
    /// A property of a component schema; a nullable `$ref` (`oneOf`) is
    /// left as it is and the patch applies to the property itself.
    /// A component schema itself.
    fn schema(&mut self, schema: &str, patch: Value) {
        match self.doc.pointer_mut(&format!("/components/schemas/{schema}")) {
            Some(target) => merge(target, &patch),
            None => self.missing.push(schema.to_owned()),
        }
    }

    fn prop(&mut self, schema: &str, prop: &str, patch: Value) {
        match self.doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{prop}")) {
            Some(target) => merge(target, &patch),
            None => self.missing.push(format!("{schema}.{prop}")),
        }
    }

    /// A property replaced whole (a nullable `oneOf` made plain).
    fn replace(&mut self, schema: &str, prop: &str, value: Value) {
        match self.doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{prop}")) {
            Some(target) => *target = value,
            None => self.missing.push(format!("{schema}.{prop}")),
        }
    }

    /// The items of an array property.
    fn items(&mut self, schema: &str, prop: &str, patch: Value) {
        match self.doc.pointer_mut(&format!("/components/schemas/{schema}/properties/{prop}/items")) {
            Some(target) => merge(target, &patch),
            None => self.missing.push(format!("{schema}.{prop}[]")),
        }
    }

    /// The JSON request body of one operation, replaced whole.
    fn body(&mut self, path: &str, method: &str, schema: Value) {
        let pointer =
            format!("/paths/{}/{method}/requestBody/content/application~1json/schema", path.replace('/', "~1"));
        match self.doc.pointer_mut(&pointer) {
            Some(target) => *target = schema,
            None => self.missing.push(format!("{method} {path} body")),
        }
    }

    /// The schema of a parameter of every operation whose path starts with
    /// `prefix` and that declares it.
    fn param(&mut self, prefix: &str, name: &str, patch: Value) {
        let mut found = false;
        if let Some(paths) = self.doc.get_mut("paths").and_then(Value::as_object_mut) {
            for (_, item) in paths.iter_mut().filter(|(p, _)| p.starts_with(prefix)) {
                for op in item.as_object_mut().into_iter().flat_map(|o| o.values_mut()) {
                    for param in op.get_mut("parameters").and_then(Value::as_array_mut).into_iter().flatten() {
                        if param.get("name").and_then(Value::as_str) != Some(name) {
                            continue;
                        }
                        if let Some(schema) = param.get_mut("schema") {
                            merge(schema, &patch);
                            found = true;
                        }
                    }
                }
            }
        }
        if !found {
            self.missing.push(format!("{prefix} ?{name}"));
        }
    }
}

/// Applies every constraint to `doc`; returns the targets not found.
pub(crate) fn apply(doc: &mut Value, limits: &Limits) -> Vec<String> {
    let mut p = Patcher { doc, missing: Vec::new() };
    let text = |max: usize| json!({ "minLength": 1, "maxLength": max, "pattern": not_blank() });
    let name = |max: usize| json!({ "minLength": 1, "maxLength": max, "pattern": name_pattern() });
    let uuid = json!({ "format": "uuid" });
    let uuid_format = uuid.clone();
    let time = json!({ "format": "date-time" });
    let categories = names(Category::ALL, Category::as_str);
    let scopes = names(Scope::ALL, Scope::as_str);
    let scopes_list = scopes.clone();
    let artifact_types = names(ArtifactType::ALL, ArtifactType::as_str);
    let sources = names(Source::ALL, Source::as_str);
    let content = json!({
        "minLength": 1,
        // JSON Schema counts characters; the limit is in UTF-8 bytes, so a
        // text longer than this many characters is always refused.
        "maxLength": limits.max_content_bytes,
        "pattern": not_blank(),
    });

    // Memories: create and update.
    for schema in ["CreateMemoryInput", "UpdateMemoryInput"] {
        p.prop(schema, "text", content.clone());
    }
    p.prop("CreateMemoryInput", "app", name(MAX_APP_NAME_CHARS));
    // A conversation for `infer`: each message's content is a memory's.
    p.prop("MessageInput", "content", content.clone());
    p.prop("MessageInput", "role", json!({ "pattern": "^[a-z_]{1,32}$" }));
    p.prop("MessageInput", "name", name(128));
    p.prop("MessageInput", "id", name(128));
    p.prop("MetadataInput", "category", json!({ "enum": nullable(categories.clone()) }));
    p.prop("MetadataInput", "scope", json!({ "enum": nullable(scopes.clone()) }));
    p.prop("MetadataInput", "artifact_type", json!({ "enum": nullable(artifact_types.clone()) }));
    p.prop("MetadataInput", "source", json!({ "enum": nullable(sources.clone()) }));
    // Which org an access entity may name is the caller's: a rule across
    // the token and the body that a schema cannot state (422 otherwise), as
    // is the agreement of `scope` with the access entity.
    p.prop("MetadataInput", "access_entity", json!({ "pattern": access_entity_pattern() }));
    p.prop("MetadataInput", "artifact_ref", text(MAX_REF_CHARS));
    p.prop("MetadataInput", "entity", text(MAX_REF_CHARS));
    p.prop("MetadataInput", "evidence", json!({ "maxItems": MAX_EVIDENCE_ITEMS }));
    p.items("MetadataInput", "evidence", text(MAX_EVIDENCE_CHARS));
    p.prop("MetadataInput", "categories", json!({ "maxItems": MAX_CATEGORIES }));
    p.items("MetadataInput", "categories", name(MAX_CATEGORY_CHARS));
    p.prop(
        "MetadataInput",
        "tags",
        json!({
            "maxProperties": limits.max_tags,
            "propertyNames": { "minLength": 1, "maxLength": MAX_TAG_KEY_CHARS, "pattern": format!("^[^{CONTROL}]*$") },
        }),
    );

    // An update changes something (text, metadata or both); a field given
    // is not null.
    p.schema("UpdateMemoryInput", json!({ "minProperties": 1 }));
    p.prop("UpdateMemoryInput", "text", json!({ "type": "string" }));
    p.replace("UpdateMemoryInput", "metadata", json!({ "$ref": "#/components/schemas/MetadataInput" }));

    // Memories: lists and filters.
    p.param("/api/v1/", "page", json!({ "minimum": 1, "maximum": MAX_PAGE }));
    p.param("/api/v1/", "size", json!({ "minimum": 1, "maximum": MAX_PAGE_SIZE }));
    p.param("/api/v1/memories", "search_query", json!({ "maxLength": MAX_SEARCH_QUERY_CHARS }));
    p.param("/api/v1/memories", "cursor", json!({ "maxLength": loci_domain::cursor::MAX_CURSOR_CHARS }));
    p.param("/api/v1/memories", "sort_column", json!({ "enum": strs(SORT_COLUMNS) }));
    p.param("/api/v1/", "sort_direction", json!({ "enum": strs(SORT_DIRECTIONS) }));
    p.param(
        "/api/v1/memories",
        "state",
        json!({ "pattern": comma_list(&names(LISTABLE_STATES, MemoryState::as_str)) }),
    );
    p.param("/api/v1/apps", "sort_by", json!({ "enum": strs(APP_SORTS) }));
    p.param("/api/v1/memories/actions/", "action", json!({ "enum": names(StateAction::ALL, StateAction::as_str) }));
    p.param("/api/v1/backup/import", "mode", json!({ "enum": names(ImportMode::ALL, ImportMode::as_str) }));
    p.prop("FilterBody", "page", json!({ "minimum": 1, "maximum": MAX_PAGE }));
    p.prop("FilterBody", "size", json!({ "minimum": 1, "maximum": MAX_PAGE_SIZE }));
    p.prop("FilterBody", "search_query", json!({ "maxLength": MAX_SEARCH_QUERY_CHARS }));
    p.prop("FilterBody", "cursor", json!({ "maxLength": loci_domain::cursor::MAX_CURSOR_CHARS }));
    p.prop("FilterBody", "sort_column", json!({ "enum": nullable(strs(SORT_COLUMNS)) }));
    p.prop("FilterBody", "sort_direction", json!({ "enum": nullable(strs(SORT_DIRECTIONS)) }));
    p.prop("FilterBody", "from", time.clone());
    p.prop("FilterBody", "to", time.clone());
    for list in FilterBody::LISTS {
        p.prop("FilterBody", list, json!({ "maxItems": MAX_FILTER_VALUES }));
    }
    p.prop("FilterBody", "tags", json!({ "maxProperties": MAX_FILTER_VALUES }));
    p.items("FilterBody", "app_ids", uuid.clone());
    p.items("FilterBody", "category_ids", uuid.clone());
    p.items("FilterBody", "metadata_categories", json!({ "enum": categories.clone() }));
    p.items("FilterBody", "scopes", json!({ "enum": scopes.clone() }));
    p.items("FilterBody", "artifact_types", json!({ "enum": artifact_types.clone() }));
    p.items("FilterBody", "sources", json!({ "enum": sources.clone() }));

    // Memories: id lists and bulk actions.
    p.prop("IdsBody", "memory_ids", json!({ "minItems": 1, "maxItems": MAX_IDS_PER_CALL }));
    p.items("IdsBody", "memory_ids", uuid.clone());
    p.prop("ActionBody", "memory_ids", json!({ "maxItems": MAX_IDS_PER_CALL }));
    p.items("ActionBody", "memory_ids", uuid.clone());
    p.prop("ActionBody", "category_ids", json!({ "maxItems": MAX_IDS_PER_CALL }));
    p.items("ActionBody", "category_ids", uuid.clone());
    p.prop("ActionBody", "app_id", uuid.clone());
    // A bulk action selects memories by at least one of its lists or app.
    p.schema(
        "ActionBody",
        json!({ "anyOf": [
            { "required": ["memory_ids"], "properties": { "memory_ids": { "minItems": 1 } } },
            { "required": ["app_id"], "properties": { "app_id": { "type": "string" } } },
            { "required": ["category_ids"], "properties": { "category_ids": { "minItems": 1 } } },
        ] }),
    );

    // Runtime settings: at least one of them; each bounded as in settings;
    // `null` leaves a setting as it is (as leaving it out does).
    let weight = json!({ "type": ["number", "null"], "minimum": 0, "maximum": 100 });
    let budget = json!({ "type": "integer", "minimum": 1, "maximum": 100_000_000 });
    let plan = json!({
        "type": "object", "additionalProperties": false,
        "required": ["window_secs", "read", "write", "search"],
        "properties": {
            "window_secs": { "type": "integer", "minimum": 1, "maximum": 86_400 },
            "read": budget, "write": budget, "search": budget,
        },
    });
    p.body(
        "/api/v1/config",
        "put",
        json!({
            "type": "object", "additionalProperties": false, "minProperties": 1,
            "properties": {
                "search": {
                    "type": ["object", "null"], "additionalProperties": false, "minProperties": 1,
                    "properties": { "weight_vector": weight, "weight_lexical": weight, "weight_graph": weight },
                },
                "rate_limit": {
                    "type": ["object", "null"], "additionalProperties": false, "minProperties": 1,
                    "properties": {
                        "enabled": { "type": ["boolean", "null"] },
                        "default_plan": { "type": ["string", "null"], "minLength": 1, "maxLength": 64 },
                        "plans": { "type": ["object", "null"], "additionalProperties": plan },
                        "org_plans": { "type": ["object", "null"], "additionalProperties": { "type": "string" } },
                    },
                },
                "log_level": { "type": ["string", "null"], "minLength": 1 },
            },
        }),
    );

    // Backups: the form carries the zip as `file` and nothing else.
    p.schema("ImportForm", json!({ "additionalProperties": false }));

    // Backups sent as JSON (the zip's memories.json).
    p.prop("ExportMeta", "version", json!({ "minimum": 0, "maximum": loci_domain::backup::FORMAT_VERSION }));
    p.prop("ExportMeta", "org_id", json!({ "type": "string", "pattern": org_id_pattern() }));
    p.prop("MemoryMetadata", "access_entity", json!({ "pattern": access_entity_pattern() }));

    // Search.
    p.prop("SearchInput", "query", json!({ "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": not_blank() }));
    p.prop("SearchInput", "limit", json!({ "minimum": 1, "maximum": MAX_SEARCH_LIMIT }));
    for w in ["vector", "lexical", "graph"] {
        p.prop("Weights", w, json!({ "minimum": 0, "maximum": 100 }));
    }
    p.prop("SearchFiltersInput", "category", json!({ "enum": nullable(categories) }));
    p.prop("SearchFiltersInput", "scope", json!({ "enum": nullable(scopes) }));
    p.prop("SearchFiltersInput", "artifact_type", json!({ "enum": nullable(artifact_types) }));
    p.prop("SearchFiltersInput", "source", json!({ "enum": nullable(sources) }));
    p.prop("SearchFiltersInput", "app_id", uuid);
    p.prop("SearchFiltersInput", "from", time.clone());
    p.prop("SearchFiltersInput", "to", time.clone());
    p.prop("SearchInput", "as_of", time.clone());
    p.prop("FilterBody", "as_of", time);

    // Scoped retrieval: a comma-separated list of scopes.
    p.param("/api/v1/memories/scoped", "scopes", json!({ "pattern": comma_list(&scopes_list) }));

    // Sessions (episodic memory) and context.
    let session = json!({ "pattern": "^[A-Za-z0-9._-]{1,128}$" });
    p.param("/api/v1/sessions/", "session_id", session.clone());
    p.param("/api/v1/sessions/", "item_id", uuid_format.clone());
    p.param("/api/v1/sessions/", "limit", json!({ "minimum": 1, "maximum": loci_domain::episodic::MAX_LIST_LIMIT }));
    p.prop("AddEpisodicInput", "content", content.clone());
    p.prop("AddEpisodicInput", "role", json!({ "pattern": "^[a-z_]{1,32}$" }));
    p.prop("SummarisedInput", "ids", json!({ "minItems": 1, "maxItems": loci_domain::episodic::MAX_IDS }));
    p.items("SummarisedInput", "ids", uuid_format);
    p.prop("PromoteInput", "app", name(MAX_APP_NAME_CHARS));
    p.prop("ContextRequest", "query", json!({ "minLength": 1, "maxLength": MAX_QUERY_CHARS, "pattern": not_blank() }));
    p.prop("ContextRequest", "session_id", session);
    let (lo, hi) = (loci_domain::context::TOKEN_BUDGET.start(), loci_domain::context::TOKEN_BUDGET.end());
    p.prop("ContextRequest", "max_tokens", json!({ "minimum": lo, "maximum": hi }));
    p.prop("ContextRequest", "memories", json!({ "minimum": 1, "maximum": 50 }));
    p.prop("ContextRequest", "session_items", json!({ "minimum": 1, "maximum": 50 }));

    // Feedback.
    let outcomes = names(loci_core::FeedbackOutcome::ALL, loci_core::FeedbackOutcome::as_str);
    let kinds = names(loci_core::FeedbackType::ALL, loci_core::FeedbackType::as_str);
    p.prop("FeedbackInput", "outcome", json!({ "enum": outcomes }));
    p.prop("FeedbackInput", "feedback_type", json!({ "enum": nullable(kinds) }));
    p.prop("FeedbackInput", "tool_name", name(64));
    for (field, max) in [("query_id", 128), ("session_id", 128), ("reranker_used", 64), ("variant_id", 64)] {
        p.prop("FeedbackInput", field, name(max));
    }
    p.prop("FeedbackInput", "result_index", json!({ "minimum": 0, "maximum": 999 }));
    p.prop("FeedbackInput", "decision_time_ms", json!({ "minimum": 0, "maximum": 86_400_000 }));
    p.prop("FeedbackInput", "result_id", json!({ "format": "uuid" }));
    p.prop("FeedbackInput", "experiment_id", json!({ "format": "uuid" }));
    p.prop("FeedbackInput", "timestamp", json!({ "format": "date-time" }));
    p.prop("FeedbackInput", "sources", json!({ "maxItems": 3 }));
    p.items("FeedbackInput", "sources", json!({ "enum": ["vector", "lexical", "graph"] }));
    // (`rrf_weights` is a `Weights`, bounded with search above.)

    // Experiments.
    p.prop("ExperimentInput", "name", name(128));
    p.prop("ExperimentInput", "description", json!({ "maxLength": 2000 }));
    p.prop("ExperimentInput", "traffic_percentage", json!({ "minimum": 0, "maximum": 1 }));
    p.prop("ExperimentInput", "variants", json!({ "minItems": 2, "maxItems": loci_domain::experiments::MAX_VARIANTS }));
    p.prop("Variant", "name", json!({ "pattern": "^[A-Za-z0-9._-]{1,64}$" }));
    p.prop("Variant", "weight", json!({ "minimum": 0, "maximum": 1 }));
    let statuses = names(loci_core::ExperimentStatus::ALL, loci_core::ExperimentStatus::as_str);
    p.prop("StatusInput", "status", json!({ "enum": statuses.clone() }));
    p.param("/api/v1/experiments", "status", json!({ "enum": statuses }));
    p.param("/api/v1/experiments/", "id", json!({ "format": "uuid" }));
    p.param("/api/v1/feedback", "scope", json!({ "enum": ["mine", "org"] }));
    p.param("/api/v1/feedback", "query_id", name(128));
    p.param("/api/v1/feedback", "tool_name", name(64));
    p.param("/api/v1/feedback", "experiment_id", json!({ "format": "uuid" }));
    p.param("/api/v1/feedback", "from", json!({ "format": "date-time" }));
    p.param("/api/v1/feedback", "to", json!({ "format": "date-time" }));

    // GDPR.
    use loci_domain::gdpr::{MAX_SUBJECT_CHARS, REASON_MAX_CHARS, REASON_MIN_CHARS};
    let subject = MAX_SUBJECT_CHARS;
    p.prop(
        "EraseRequest",
        "reason",
        json!({ "minLength": REASON_MIN_CHARS, "maxLength": REASON_MAX_CHARS, "pattern": name_pattern() }),
    );
    p.prop("EraseRequest", "subject", name(subject));
    p.param("/api/v1/gdpr/export", "subject", name(subject));
    p.param("/api/v1/gdpr/audit", "limit", json!({ "minimum": 1, "maximum": 1000 }));

    // Code intelligence.
    let kinds = strs(&loci_domain::code::kind_names());
    let languages = strs(&loci_domain::code::language_names());
    p.param("/api/v1/code/symbols", "kind", json!({ "enum": kinds.clone() }));
    p.param("/api/v1/code/symbols", "language", json!({ "enum": languages.clone() }));
    p.param("/api/v1/code/symbols", "name", json!({ "pattern": name_pattern() }));
    p.param("/api/v1/code/", "id", json!({ "format": "uuid" }));
    p.prop(
        "CodeSearchInput",
        "query",
        json!({ "minLength": 1, "maxLength": loci_domain::code::MAX_QUERY, "pattern": not_blank() }),
    );
    p.prop("CodeSearchInput", "limit", json!({ "minimum": 1, "maximum": loci_domain::code::MAX_SEARCH_LIMIT }));
    p.prop("CodeSearchInput", "kind", json!({ "enum": nullable(kinds) }));
    p.prop("CodeSearchInput", "language", json!({ "enum": nullable(languages) }));
    p.prop("CodeSearchInput", "mode", json!({ "enum": nullable(strs(&["hybrid", "lexical", "semantic"])) }));
    p.prop("CodeSearchInput", "repo", json!({ "maxLength": loci_domain::code::MAX_NAME.max(36) }));
    p.prop("RepoInput", "name", json!({ "pattern": "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,99}$" }));
    p.prop("RepoInput", "path", json!({ "maxLength": loci_domain::code::MAX_SOURCE, "pattern": "^/" }));
    p.prop("RepoInput", "git_url", json!({ "minLength": 1, "maxLength": loci_domain::code::MAX_SOURCE }));

    p.missing
}
