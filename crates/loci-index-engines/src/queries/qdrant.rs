//! Qdrant (vector index): one collection per embedding model, shared by every
//! org; the tenant is the `org_id` payload field, always the first condition
//! of every filter, and of every delete.
//!
//! Points are identified by the memory id (a UUID, which Qdrant accepts as a
//! point id); the payload holds only what filters need (no content).
//! `created_at` is stored as whole unix seconds, so the `from`/`to` bounds are
//! compared at second precision: both are rounded down, which can admit a
//! memory up to one second outside a bound but never drops one inside it.

use loci_core::{MemoryId, OrgId};
use serde_json::{Map, Value, json};

use super::{state_strs, tag_terms};
use loci_index::{IndexDoc, SearchFilter};

/// What the memories' collections start with (the spec's
/// `embeddings_<model>`).
pub const MEMORY_PREFIX: &str = "embeddings";
/// What the code symbols' collections start with: never a memory collection.
pub const CODE_PREFIX: &str = "code";

/// The collection of the memories' embeddings of `model` (see
/// [`collection_name_in`]).
pub fn collection_name(model: &str) -> String {
    collection_name_in(MEMORY_PREFIX, model)
}

/// The collection of `model` under `prefix`: `<prefix>_` followed by the
/// model name lower-cased, with every character outside `[a-z0-9_]` replaced
/// by `_` (`BAAI/bge-small-en-v1.5` -> `embeddings_baai_bge_small_en_v1_5`).
pub fn collection_name_in(prefix: &str, model: &str) -> String {
    let mut name = format!("{prefix}_");
    name.extend(model.chars().map(|c| {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' { c } else { '_' }
    }));
    name
}

/// The collection the adapter uses for `model` at `dims` dimensions:
/// [`collection_name`] followed by `_<dims>`, so that a model served at
/// another size (or a changed `embeddings.dimensions`) never writes into a
/// collection of the wrong size (`all-MiniLM-L6-v2`, 384 ->
/// `embeddings_all_minilm_l6_v2_384`).
pub fn collection_for(model: &str, dims: usize) -> String {
    collection_for_in(MEMORY_PREFIX, model, dims)
}

/// [`collection_for`] under `prefix` ([`MEMORY_PREFIX`] or [`CODE_PREFIX`]).
pub fn collection_for_in(prefix: &str, model: &str, dims: usize) -> String {
    format!("{}_{dims}", collection_name_in(prefix, model))
}

/// The payload stored with the point of `doc`: tenant, owner, app, state,
/// visibility keys, the optional string fields that are set, tags as
/// `key=value` terms and `created_at` in unix seconds.
pub fn point_payload(doc: &IndexDoc) -> Value {
    let mut p = Map::new();
    p.insert("org_id".into(), json!(doc.org_id.as_str()));
    p.insert("user_id".into(), json!(doc.user_id.to_string()));
    p.insert("app_id".into(), json!(doc.app_id.to_string()));
    p.insert("state".into(), json!(doc.state.as_str()));
    p.insert("visibility".into(), json!(doc.visibility_keys()));
    for (field, value) in doc.fields.named() {
        if let Some(value) = value {
            p.insert(field.into(), json!(value));
        }
    }
    p.insert("tags".into(), json!(tag_terms(&doc.tags)));
    p.insert("created_at".into(), json!(doc.created_at.timestamp()));
    Value::Object(p)
}

fn org_condition(org: &OrgId) -> Value {
    json!({"key": "org_id", "match": {"value": org.as_str()}})
}

fn has_id(ids: &[MemoryId]) -> Value {
    json!({"has_id": ids.iter().map(ToString::to_string).collect::<Vec<_>>()})
}

/// The Qdrant filter of `f`: `must` starts with the org, then the states,
/// the visibility keys (when checked), app, string fields, tags and the
/// `created_at` range; `must_not` excludes ids.
pub fn filter(f: &SearchFilter) -> Value {
    let mut must = vec![org_condition(&f.org)];
    if !f.states.is_empty() {
        must.push(json!({"key": "state", "match": {"any": state_strs(&f.states)}}));
    }
    if let Some(keys) = f.visibility_keys() {
        must.push(json!({"key": "visibility", "match": {"any": keys}}));
    }
    if let Some(app) = f.app_id {
        must.push(json!({"key": "app_id", "match": {"value": app.to_string()}}));
    }
    for (field, value) in f.fields.named() {
        if let Some(value) = value {
            must.push(json!({"key": field, "match": {"value": value}}));
        }
    }
    for term in tag_terms(&f.tags) {
        must.push(json!({"key": "tags", "match": {"value": term}}));
    }
    if f.from.is_some() || f.to.is_some() {
        let mut range = Map::new();
        if let Some(from) = f.from {
            range.insert("gte".into(), json!(from.timestamp()));
        }
        if let Some(to) = f.to {
            range.insert("lte".into(), json!(to.timestamp()));
        }
        must.push(json!({"key": "created_at", "range": range}));
    }
    let mut out = Map::new();
    out.insert("must".into(), Value::Array(must));
    if !f.exclude.is_empty() {
        out.insert("must_not".into(), json!([has_id(&f.exclude)]));
    }
    Value::Object(out)
}

/// Body of `POST /collections/{collection}/points/search`: the `limit`
/// nearest points to `vector` that `f` admits, ids and scores only.
pub fn search_request(vector: &[f32], f: &SearchFilter, limit: usize) -> Value {
    json!({
        "vector": vector,
        "filter": filter(f),
        "limit": limit,
        "with_payload": false,
        "with_vector": false,
    })
}

/// Payload indexes each collection gets (`PUT
/// /collections/{collection}/index` with `field_name` and `field_schema`):
/// the tenant and visibility fields every query filters on.
pub fn payload_indexes() -> Vec<(&'static str, &'static str)> {
    vec![
        ("org_id", "keyword"),
        ("user_id", "keyword"),
        ("visibility", "keyword"),
        ("state", "keyword"),
        ("created_at", "integer"),
    ]
}

/// A filter selecting every point of `org` (count, clear of one org).
pub fn org_filter(org: &OrgId) -> Value {
    json!({"must": [org_condition(org)]})
}

/// A filter selecting the point of memory `id` only if it belongs to `org`
/// (the stored embedding of "similar memories").
pub fn point_filter(org: &OrgId, id: MemoryId) -> Value {
    json!({"must": [org_condition(org), has_id(&[id])]})
}

/// Body of `POST /collections/{collection}/points/delete`: the points of
/// `ids` selected by a filter that also requires `org`, so an id of another
/// org is never deleted.
pub fn delete_request(org: &OrgId, ids: &[MemoryId]) -> Value {
    json!({"filter": {"must": [org_condition(org), has_id(ids)]}})
}

#[cfg(test)]
mod tests {
    use loci_core::MemoryId;

    use super::*;
    use crate::queries::fixtures::{HOSTILE, doc, empty_filter, full_filter, hostile_doc, hostile_filter, org};
    use crate::queries::tag_term;

    fn must(filter: &Value) -> &Vec<Value> {
        filter["must"].as_array().unwrap()
    }

    /// The condition on `key` (exactly one must exist).
    fn condition<'a>(filter: &'a Value, key: &str) -> &'a Value {
        let found: Vec<&Value> = must(filter).iter().filter(|c| c["key"] == key).collect();
        assert_eq!(found.len(), 1, "{key} in {filter}");
        found[0]
    }

    fn assert_org_first(filter: &Value) {
        assert_eq!(must(filter)[0], json!({"key": "org_id", "match": {"value": "acme"}}), "{filter}");
        assert_eq!(must(filter).iter().filter(|c| c["key"] == "org_id").count(), 1);
    }

    /// Round trip through the wire text, as the engine would read it.
    fn wire(v: &Value) -> Value {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }

    #[test]
    fn collection_names_are_sanitised() {
        assert_eq!(collection_name("text-embedding-3-small"), "embeddings_text_embedding_3_small");
        assert_eq!(collection_name("BAAI/bge-small-en-v1.5"), "embeddings_baai_bge_small_en_v1_5");
        assert_eq!(collection_name("all_minilm_l6"), "embeddings_all_minilm_l6");
        assert_eq!(collection_name("Ünï cöde"), "embeddings__n__c_de");
        for model in [HOSTILE, "../../etc/passwd", "a/b?c#d%2F", ""] {
            let name = collection_name(model);
            assert!(name.starts_with("embeddings_"), "{name}");
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}");
        }
    }

    #[test]
    fn code_collections_never_name_a_memory_collection() {
        assert_eq!(collection_for_in(CODE_PREFIX, "all-MiniLM-L6-v2", 384), "code_all_minilm_l6_v2_384");
        for model in ["m", "embeddings_m", HOSTILE] {
            assert!(collection_for_in(CODE_PREFIX, model, 3).starts_with("code_"));
            assert!(collection_for(model, 3).starts_with("embeddings_"));
        }
    }

    #[test]
    fn collection_names_carry_the_dimensions() {
        assert_eq!(collection_for("all-MiniLM-L6-v2", 384), "embeddings_all_minilm_l6_v2_384");
        assert_ne!(collection_for("m", 384), collection_for("m", 768));
        let name = collection_for(HOSTILE, 3);
        assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'), "{name}");
    }

    #[test]
    fn payload_carries_tenant_visibility_and_fields() {
        let d = doc();
        let p = point_payload(&d);
        assert_eq!(p["org_id"], "acme");
        assert_eq!(p["user_id"], d.user_id.to_string());
        assert_eq!(p["app_id"], d.app_id.to_string());
        assert_eq!(p["state"], "active");
        assert_eq!(p["visibility"], json!(d.visibility_keys()));
        assert_eq!(p["visibility"], json!([format!("owner:{}", d.user_id), "grant:team:acme/core", "grant:org:acme"]));
        assert_eq!(p["category"], "decision");
        assert_eq!(p["artifact_type"], "file");
        assert_eq!(p["artifact_ref"], "deploy.yaml");
        assert_eq!(p["entity"], "kubernetes");
        // Unset fields are absent, so a filter on them never matches.
        assert!(p.get("scope").is_none() && p.get("source").is_none());
        assert_eq!(p["tags"], json!(["team=core"]));
        assert_eq!(p["created_at"], json!(1_750_000_000_i64));
        assert!(p.get("content").is_none() && p.get("context").is_none());
    }

    #[test]
    fn payload_without_access_entity_has_only_owner_key() {
        let mut d = doc();
        d.access_entity = None;
        assert_eq!(point_payload(&d)["visibility"], json!([format!("owner:{}", d.user_id)]));
    }

    #[test]
    fn hostile_payload_values_stay_values() {
        let p = wire(&point_payload(&hostile_doc()));
        assert_eq!(p["org_id"], "acme");
        for field in ["category", "scope", "artifact_type", "artifact_ref", "entity", "source"] {
            assert_eq!(p[field], HOSTILE);
        }
        assert_eq!(p["tags"], json!([tag_term(HOSTILE, HOSTILE)]));
    }

    #[test]
    fn empty_filter_is_org_only() {
        let f = filter(&empty_filter());
        assert_org_first(&f);
        assert_eq!(must(&f).len(), 1);
        assert!(f.get("must_not").is_none());
    }

    #[test]
    fn default_filter_is_org_and_active() {
        let f = filter(&SearchFilter::new(org(), None));
        assert_org_first(&f);
        assert_eq!(condition(&f, "state")["match"]["any"], json!(["active"]));
        assert!(must(&f).iter().all(|c| c["key"] != "visibility"));
    }

    #[test]
    fn full_filter_has_every_condition() {
        let sf = full_filter();
        let f = wire(&filter(&sf));
        assert_org_first(&f);
        assert_eq!(condition(&f, "state")["match"]["any"], json!(["active", "paused"]));
        assert_eq!(condition(&f, "visibility")["match"]["any"], json!(sf.visibility_keys().unwrap()));
        assert_eq!(condition(&f, "app_id")["match"]["value"], sf.app_id.unwrap().to_string());
        for (field, want) in [
            ("category", "decision"),
            ("scope", "project"),
            ("artifact_type", "file"),
            ("artifact_ref", "src/main.rs"),
            ("entity", "postgres"),
            ("source", "agent"),
        ] {
            assert_eq!(condition(&f, field)["match"]["value"], want, "{field}");
        }
        let tags: Vec<&Value> = must(&f).iter().filter(|c| c["key"] == "tags").map(|c| &c["match"]["value"]).collect();
        assert_eq!(tags, vec!["lang=rust", "team=core"]);
        // from has a fraction: rounded down, so a memory at that second stays in.
        assert_eq!(condition(&f, "created_at")["range"], json!({"gte": 1_700_000_000_i64, "lte": 1_800_000_000_i64}));
        let excluded: Vec<String> = sf.exclude.iter().map(ToString::to_string).collect();
        assert_eq!(f["must_not"], json!([{"has_id": excluded}]));
        assert_eq!(must(&f).len(), 1 + 1 + 1 + 1 + 6 + 2 + 1);
    }

    #[test]
    fn visibility_only_when_checked() {
        let mut sf = full_filter();
        let keys = sf.visibility_keys().unwrap();
        assert_eq!(keys.len(), 3);
        assert!(keys[0].starts_with("owner:"));
        assert!(must(&filter(&sf)).iter().any(|c| c["key"] == "visibility"));
        sf.visible_to = None;
        let f = filter(&sf);
        assert!(must(&f).iter().all(|c| c["key"] != "visibility"));
        assert_org_first(&f);
    }

    #[test]
    fn half_open_ranges() {
        let mut sf = empty_filter();
        sf.to = full_filter().to;
        assert_eq!(condition(&filter(&sf), "created_at")["range"], json!({"lte": 1_800_000_000_i64}));
        sf.to = None;
        sf.from = full_filter().from;
        assert_eq!(condition(&filter(&sf), "created_at")["range"], json!({"gte": 1_700_000_000_i64}));
    }

    #[test]
    fn hostile_filter_values_stay_values() {
        let f = wire(&filter(&hostile_filter()));
        assert_org_first(&f);
        assert_eq!(condition(&f, "entity")["match"]["value"], HOSTILE);
        assert_eq!(condition(&f, "tags")["match"]["value"], tag_term(HOSTILE, HOSTILE));
    }

    #[test]
    fn search_request_body() {
        let sf = full_filter();
        let body = wire(&search_request(&[0.5, -0.25], &sf, 7));
        assert_eq!(body["vector"], json!([0.5, -0.25]));
        assert_eq!(body["limit"], 7);
        assert_eq!(body["with_payload"], false);
        assert_eq!(body["filter"], filter(&sf));
        assert_org_first(&body["filter"]);
        let body = search_request(&[1.0], &empty_filter(), 1);
        assert_org_first(&body["filter"]);
    }

    #[test]
    fn indexes_cover_tenant_and_visibility() {
        let idx = payload_indexes();
        for want in [
            ("org_id", "keyword"),
            ("user_id", "keyword"),
            ("visibility", "keyword"),
            ("state", "keyword"),
            ("created_at", "integer"),
        ] {
            assert!(idx.contains(&want), "{want:?}");
        }
        // Every indexed field is one the payload writes.
        let p = point_payload(&doc());
        assert!(idx.iter().all(|(field, _)| p.get(*field).is_some()));
    }

    #[test]
    fn deletes_are_scoped_by_org() {
        let ids = vec![MemoryId::new(), MemoryId::new()];
        let body = wire(&delete_request(&org(), &ids));
        let f = &body["filter"];
        assert_org_first(f);
        let want: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert_eq!(must(f)[1], json!({"has_id": want}));
        assert_eq!(must(f).len(), 2);
        // Never a bare id selector.
        assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), vec!["filter"]);
        // Even with no ids the selector is still the org's.
        assert_org_first(&delete_request(&org(), &[])["filter"]);
    }

    #[test]
    fn org_and_point_filters_are_scoped_by_org() {
        let f = wire(&org_filter(&org()));
        assert_org_first(&f);
        assert_eq!(must(&f).len(), 1);
        let id = MemoryId::new();
        let f = wire(&point_filter(&org(), id));
        assert_org_first(&f);
        assert_eq!(must(&f)[1], json!({"has_id": [id.to_string()]}));
        assert_eq!(must(&f).len(), 2);
        assert!(f.get("must_not").is_none());
    }

    /// Qdrant's semantics for the conditions [`filter`] emits: a keyword
    /// match holds if the payload value, or any element of a payload array,
    /// equals it.
    fn holds(cond: &Value, id: &str, payload: &Value) -> bool {
        if let Some(ids) = cond.get("has_id") {
            return ids.as_array().unwrap().iter().any(|i| i == id);
        }
        let have: Vec<&Value> = match &payload[cond["key"].as_str().unwrap()] {
            Value::Null => vec![],
            Value::Array(a) => a.iter().collect(),
            v => vec![v],
        };
        if let Some(want) = cond["match"].get("value") {
            return have.contains(&want);
        }
        if let Some(any) = cond["match"].get("any") {
            return any.as_array().unwrap().iter().any(|w| have.contains(&w));
        }
        let range = &cond["range"];
        have.iter().any(|v| {
            let v = v.as_i64().unwrap();
            range.get("gte").is_none_or(|g| v >= g.as_i64().unwrap())
                && range.get("lte").is_none_or(|l| v <= l.as_i64().unwrap())
        })
    }

    fn qdrant_admits(filter: &Value, doc: &IndexDoc) -> bool {
        let (id, payload) = (doc.id.to_string(), point_payload(doc));
        let none = Vec::new();
        must(filter).iter().all(|c| holds(c, &id, &payload))
            && filter
                .get("must_not")
                .and_then(Value::as_array)
                .unwrap_or(&none)
                .iter()
                .all(|c| !holds(c, &id, &payload))
    }

    /// The filter admits exactly what [`SearchFilter::admits`] does, over
    /// documents and filters that differ in one field at a time (timestamps
    /// in whole seconds, the payload's precision).
    #[test]
    fn filter_matches_reference_semantics() {
        use crate::queries::fixtures::at;
        use loci_core::{AppId, MemoryState, UserId};

        let base = doc();
        let mut docs = vec![base.clone()];
        let mut push = |change: &dyn Fn(&mut IndexDoc)| {
            let mut d = base.clone();
            change(&mut d);
            docs.push(d);
        };
        push(&|d| d.org_id = OrgId::parse("other").unwrap());
        push(&|d| d.state = MemoryState::Archived);
        push(&|d| d.user_id = UserId::new());
        push(&|d| d.access_entity = Some("team:acme/infra".parse().unwrap()));
        push(&|d| d.access_entity = None);
        push(&|d| d.app_id = AppId::new());
        push(&|d| d.fields.category = None);
        push(&|d| d.fields.category = Some("convention".to_owned()));
        push(&|d| d.fields.entity = Some("redis".to_owned()));
        push(&|d| d.tags.clear());
        push(&|d| {
            d.tags.insert("lang".to_owned(), "go".to_owned());
        });
        push(&|d| d.created_at = at(1_600_000_000, 0));
        push(&|d| d.created_at = at(1_900_000_000, 0));
        push(&|d| d.created_at = at(1_800_000_000, 0));

        let mut filters = vec![SearchFilter::new(org(), None), empty_filter()];
        let mut f =
            SearchFilter::new(org(), Some(loci_core::model::Visibility { user_id: base.user_id, grants: vec![] }));
        filters.push(f.clone());
        f.visible_to = Some(loci_core::model::Visibility {
            user_id: UserId::new(),
            grants: vec!["project:acme/core".parse().unwrap(), "org:acme".parse().unwrap()],
        });
        filters.push(f.clone());
        f.visible_to = Some(loci_core::model::Visibility {
            user_id: UserId::new(),
            grants: vec!["team:acme/core".parse().unwrap()],
        });
        filters.push(f.clone());
        f.states = vec![MemoryState::Active, MemoryState::Archived];
        f.app_id = Some(base.app_id);
        filters.push(f.clone());
        f.fields.category = Some("decision".to_owned());
        f.fields.entity = Some("kubernetes".to_owned());
        filters.push(f.clone());
        f.tags.insert("team".to_owned(), "core".to_owned());
        filters.push(f.clone());
        f.from = Some(at(1_700_000_000, 0));
        f.to = Some(at(1_800_000_000, 0));
        filters.push(f.clone());
        f.exclude = vec![base.id];
        filters.push(f.clone());

        let mut admitted = 0;
        for sf in &filters {
            let qf = filter(sf);
            for d in &docs {
                assert_eq!(qdrant_admits(&qf, d), sf.admits(d), "{sf:?}\n{d:?}");
                admitted += usize::from(sf.admits(d));
            }
        }
        // The cases are not all trivially rejected.
        assert!(admitted > 20, "{admitted}");
    }
}
