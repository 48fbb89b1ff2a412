//! OpenSearch (lexical index): indexes shared by every org, each org reached
//! through a filtered, routed alias; every search and delete body also starts
//! its filter with the org term, so the alias is defence in depth and not the
//! only tenant check.
//!
//! Documents are indexed under the memory id (`PUT /{index}/_doc/{id}` with
//! `routing` = the org). `created_at` is an RFC 3339 timestamp in a
//! `date_nanos` field, so `from`/`to` compare at full precision.

use chrono::{DateTime, SecondsFormat, Utc};
use loci_core::{MemoryId, OrgId};
use serde_json::{Map, Value, json};

use super::{state_strs, tag_terms};
use loci_index::{IndexDoc, SearchFilter};

/// Weight of a match in the context relative to one in the content (as the
/// embedded lexical index).
const CONTEXT_BOOST: f32 = 0.5;
/// Characters of a highlighted fragment (as the embedded lexical index).
const FRAGMENT_CHARS: usize = 150;

/// The prefix of the memories' aliases (the spec's `tenant_<org>`).
pub const MEMORY_ALIAS_PREFIX: &str = "tenant_";
/// The prefix of the code index's aliases: an alias names one index, so code
/// never answers a memory search (nor the other way round).
pub const CODE_ALIAS_PREFIX: &str = "code_tenant_";

/// The org's memory alias (see [`alias_with`]).
pub fn alias(org: &OrgId) -> String {
    alias_with(MEMORY_ALIAS_PREFIX, org)
}

/// The org's alias: `prefix` followed by the org id, where every byte outside
/// `[a-z0-9-]` is written `_` plus two lower-case hex digits (alias names
/// must be lower case and exclude `/ \ * ? " < > | , # :` and spaces). The
/// escape is injective, so two orgs never share an alias: `acme` ->
/// `tenant_acme`, `Acme_1` -> `tenant__41cme_5f1`.
pub fn alias_with(prefix: &str, org: &OrgId) -> String {
    let mut name = String::from(prefix);
    for b in org.as_str().bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            name.push(char::from(b));
        } else {
            name.push_str(&format!("_{b:02x}"));
        }
    }
    name
}

fn org_term(org: &OrgId) -> Value {
    json!({"term": {"org_id": org.as_str()}})
}

fn ids_query(ids: &[MemoryId]) -> Value {
    json!({"ids": {"values": ids.iter().map(ToString::to_string).collect::<Vec<_>>()}})
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// One action of `POST /_aliases` (`{"actions": [..]}`): adds the org's alias
/// (`prefix` + org) to `index`, filtered to the org's documents and routed by
/// the org.
pub fn alias_action(index: &str, prefix: &str, org: &OrgId) -> Value {
    json!({"add": {
        "index": index,
        "alias": alias_with(prefix, org),
        "filter": org_term(org),
        "routing": org.as_str(),
    }})
}

/// Body of `PUT /{index}`: strict mappings (filter fields are `keyword`, so
/// `term` matches them exactly) and mandatory routing.
pub fn index_body() -> Value {
    let keyword = json!({"type": "keyword"});
    let mut props = Map::new();
    for field in ["org_id", "user_id", "app_id", "state", "visibility", "tags"] {
        props.insert(field.into(), keyword.clone());
    }
    for field in ["category", "scope", "artifact_type", "artifact_ref", "entity", "source"] {
        props.insert(field.into(), keyword.clone());
    }
    // The built-in English analyzer: lower-case, stop words, stemming (as
    // the embedded index's analyzer).
    props.insert("content".into(), json!({"type": "text", "analyzer": "english"}));
    props.insert("context".into(), json!({"type": "text", "analyzer": "english"}));
    props.insert("created_at".into(), json!({"type": "date_nanos"}));
    json!({"mappings": {"dynamic": "strict", "_routing": {"required": true}, "properties": props}})
}

/// Source of the document of `doc`: content, context and every field the
/// filter reads (unset optional fields absent, tags as `key=value` terms).
pub fn document(doc: &IndexDoc) -> Value {
    let mut d = Map::new();
    d.insert("org_id".into(), json!(doc.org_id.as_str()));
    d.insert("user_id".into(), json!(doc.user_id.to_string()));
    d.insert("app_id".into(), json!(doc.app_id.to_string()));
    d.insert("state".into(), json!(doc.state.as_str()));
    d.insert("visibility".into(), json!(doc.visibility_keys()));
    d.insert("content".into(), json!(doc.content));
    d.insert("context".into(), json!(doc.context));
    for (field, value) in doc.fields.named() {
        if let Some(value) = value {
            d.insert(field.into(), json!(value));
        }
    }
    d.insert("tags".into(), json!(tag_terms(&doc.tags)));
    d.insert("created_at".into(), json!(timestamp(doc.created_at)));
    Value::Object(d)
}

/// The filter clauses of `f`, the org term first.
fn filter_clauses(f: &SearchFilter) -> Vec<Value> {
    let mut out = vec![org_term(&f.org)];
    if !f.states.is_empty() {
        out.push(json!({"terms": {"state": state_strs(&f.states)}}));
    }
    if let Some(keys) = f.visibility_keys() {
        out.push(json!({"terms": {"visibility": keys}}));
    }
    if let Some(app) = f.app_id {
        out.push(json!({"term": {"app_id": app.to_string()}}));
    }
    for (field, value) in f.fields.named() {
        if let Some(value) = value {
            out.push(json!({"term": {field: value}}));
        }
    }
    for term in tag_terms(&f.tags) {
        out.push(json!({"term": {"tags": term}}));
    }
    if f.from.is_some() || f.to.is_some() {
        let mut range = Map::new();
        if let Some(from) = f.from {
            range.insert("gte".into(), json!(timestamp(from)));
        }
        if let Some(to) = f.to {
            range.insert("lte".into(), json!(timestamp(to)));
        }
        out.push(json!({"range": {"created_at": range}}));
    }
    out
}

/// Body of `POST /{alias}/_search?routing={org}`: the `limit` best BM25
/// matches of `text` (analysed, never parsed as query syntax) in the content
/// or, weighted down, the context, among the documents `f` admits, with the
/// content highlighted in `<b>..</b>` (HTML-escaped) and no source.
pub fn search_body(text: &str, f: &SearchFilter, limit: usize) -> Value {
    let mut bool_query = Map::new();
    bool_query.insert("filter".into(), Value::Array(filter_clauses(f)));
    if !f.exclude.is_empty() {
        bool_query.insert("must_not".into(), json!([ids_query(&f.exclude)]));
    }
    bool_query.insert(
        "should".into(),
        json!([{"multi_match": {
            "query": text,
            "type": "most_fields",
            "operator": "or",
            "fields": ["content^1", format!("context^{CONTEXT_BOOST}")],
        }}]),
    );
    bool_query.insert("minimum_should_match".into(), json!(1));
    json!({
        "size": limit,
        "_source": false,
        "track_total_hits": false,
        "query": {"bool": bool_query},
        "highlight": {
            "pre_tags": ["<b>"],
            "post_tags": ["</b>"],
            "encoder": "html",
            "fields": {"content": {"fragment_size": FRAGMENT_CHARS, "number_of_fragments": 1}},
        },
    })
}

/// Most distinct words of a query text sent to the engine (the embedded
/// index analyses at most 64 terms; OpenSearch refuses queries of more than
/// 1024 clauses).
pub const MAX_QUERY_WORDS: usize = 64;

/// The query text as sent: its first [`MAX_QUERY_WORDS`] distinct
/// whitespace-separated words (case-insensitively distinct), joined by
/// spaces. Still analysed, never parsed.
pub fn bounded_text(text: &str) -> String {
    let mut seen: Vec<String> = Vec::new();
    let mut out: Vec<&str> = Vec::new();
    for word in text.split_whitespace() {
        if out.len() == MAX_QUERY_WORDS {
            break;
        }
        let key = word.to_lowercase();
        if !seen.contains(&key) {
            seen.push(key);
            out.push(word);
        }
    }
    out.join(" ")
}

/// One `index` action of `POST /_bulk` and its source line: the document of
/// `doc` under the memory id in the shared `index`, routed by its org (the
/// alias of the org routes reads the same way).
pub fn bulk_index(index: &str, doc: &IndexDoc) -> [Value; 2] {
    [json!({"index": {"_index": index, "_id": doc.id.to_string(), "routing": doc.org_id.as_str()}}), document(doc)]
}

/// Body of `POST /{alias}/_count?routing={org}` and of
/// `POST /{alias}/_delete_by_query?routing={org}` for a whole org (count,
/// clear of one org): the org term alone.
pub fn org_query(org: &OrgId) -> Value {
    json!({"query": {"bool": {"filter": [org_term(org)]}}})
}

/// Body of `POST /{alias}/_delete_by_query?routing={org}`: the documents of
/// `ids` that also belong to `org`.
pub fn delete_by_query(org: &OrgId, ids: &[MemoryId]) -> Value {
    json!({"query": {"bool": {"filter": [org_term(org), ids_query(ids)]}}})
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queries::fixtures::{HOSTILE, at, doc, empty_filter, full_filter, hostile_doc, hostile_filter, org};
    use crate::queries::tag_term;

    fn wire(v: &Value) -> Value {
        serde_json::from_str(&serde_json::to_string(v).unwrap()).unwrap()
    }

    fn filters(body: &Value) -> &Vec<Value> {
        body["query"]["bool"]["filter"].as_array().unwrap()
    }

    fn assert_org_first(clauses: &[Value]) {
        assert_eq!(clauses[0], json!({"term": {"org_id": "acme"}}));
        assert_eq!(clauses.iter().filter(|c| c.to_string().contains("\"org_id\"")).count(), 1);
    }

    /// The clause of kind `kind` (`term`, `terms`, `range`) on `field`.
    fn clause<'a>(clauses: &'a [Value], kind: &str, field: &str) -> &'a Value {
        let found: Vec<&Value> = clauses.iter().filter_map(|c| c.get(kind)?.get(field)).collect();
        assert_eq!(found.len(), 1, "{kind} {field}");
        found[0]
    }

    #[test]
    fn aliases_are_injective_and_valid() {
        assert_eq!(alias(&org()), "tenant_acme");
        assert_eq!(alias(&OrgId::parse("Acme_1").unwrap()), "tenant__41cme_5f1");
        assert_eq!(alias(&OrgId::parse("org-7f3a").unwrap()), "tenant_org-7f3a");
        let tricky = ["a/b", "a_2fb", "A", "a", "_41", "*", "a,b#c:d?e<f>g|h"];
        let names: Vec<String> = tricky.iter().map(|o| alias(&OrgId::parse(o).unwrap())).collect();
        for (i, a) in names.iter().enumerate() {
            assert!(names[i + 1..].iter().all(|b| a != b), "{a} shared");
            assert!(a.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'), "{a}");
        }
    }

    #[test]
    fn code_aliases_never_name_a_memory_alias() {
        assert_eq!(alias_with(CODE_ALIAS_PREFIX, &org()), "code_tenant_acme");
        for o in ["acme", "code", "code_tenant_acme", "Acme_1"] {
            let org = OrgId::parse(o).unwrap();
            assert!(alias_with(CODE_ALIAS_PREFIX, &org).starts_with("code_tenant_"));
            assert!(alias(&org).starts_with("tenant_"), "memory aliases start otherwise");
        }
        let code = wire(&alias_action("loci_code_v1", CODE_ALIAS_PREFIX, &org()));
        assert_eq!(code["add"]["alias"], "code_tenant_acme");
        assert_eq!(code["add"]["index"], "loci_code_v1");
    }

    #[test]
    fn alias_is_filtered_and_routed_by_org() {
        let action = wire(&alias_action("memories_v1", MEMORY_ALIAS_PREFIX, &org()));
        assert_eq!(
            action,
            json!({"add": {
                "index": "memories_v1",
                "alias": "tenant_acme",
                "filter": {"term": {"org_id": "acme"}},
                "routing": "acme",
            }})
        );
    }

    #[test]
    fn mappings_are_keywords_for_filters() {
        let body = index_body();
        let props = &body["mappings"]["properties"];
        let d = document(&doc());
        for (field, _) in d.as_object().unwrap() {
            assert!(props.get(field).is_some(), "{field} not mapped");
        }
        for field in ["org_id", "visibility", "state", "tags", "category", "entity"] {
            assert_eq!(props[field]["type"], "keyword", "{field}");
        }
        assert_eq!(props["content"]["type"], "text");
        assert_eq!(body["mappings"]["_routing"]["required"], true);
        assert_eq!(body["mappings"]["dynamic"], "strict");
    }

    #[test]
    fn document_fields() {
        let d = doc();
        let v = document(&d);
        assert_eq!(v["org_id"], "acme");
        assert_eq!(v["user_id"], d.user_id.to_string());
        assert_eq!(v["app_id"], d.app_id.to_string());
        assert_eq!(v["state"], "active");
        assert_eq!(v["visibility"], json!(d.visibility_keys()));
        assert_eq!(v["content"], d.content);
        assert_eq!(v["context"], d.context);
        assert_eq!(v["category"], "decision");
        assert!(v.get("scope").is_none() && v.get("source").is_none());
        assert_eq!(v["tags"], json!(["team=core"]));
        assert_eq!(v["created_at"], "2025-06-15T15:06:40.123456Z");
    }

    #[test]
    fn hostile_document_values_stay_values() {
        let v = wire(&document(&hostile_doc()));
        assert_eq!(v["org_id"], "acme");
        assert_eq!(v["content"], HOSTILE);
        assert_eq!(v["entity"], HOSTILE);
        assert_eq!(v["tags"], json!([tag_term(HOSTILE, HOSTILE)]));
    }

    #[test]
    fn empty_filter_is_org_only() {
        let body = search_body("deploy", &empty_filter(), 10);
        assert_org_first(filters(&body));
        assert_eq!(filters(&body).len(), 1);
        assert!(body["query"]["bool"].get("must_not").is_none());
        assert_eq!(body["size"], 10);
    }

    #[test]
    fn full_filter_has_every_clause() {
        let sf = full_filter();
        let body = wire(&search_body("deploy", &sf, 5));
        let c = filters(&body);
        assert_org_first(c);
        assert_eq!(clause(c, "terms", "state"), &json!(["active", "paused"]));
        assert_eq!(clause(c, "terms", "visibility"), &json!(sf.visibility_keys().unwrap()));
        assert_eq!(clause(c, "term", "app_id"), &json!(sf.app_id.unwrap().to_string()));
        for (field, want) in [
            ("category", "decision"),
            ("scope", "project"),
            ("artifact_type", "file"),
            ("artifact_ref", "src/main.rs"),
            ("entity", "postgres"),
            ("source", "agent"),
        ] {
            assert_eq!(clause(c, "term", field), want, "{field}");
        }
        let tags: Vec<&Value> = c.iter().filter_map(|v| v.get("term")?.get("tags")).collect();
        assert_eq!(tags, vec!["lang=rust", "team=core"]);
        assert_eq!(
            clause(c, "range", "created_at"),
            &json!({"gte": "2023-11-14T22:13:20.250Z", "lte": "2027-01-15T08:00:00Z"})
        );
        let excluded: Vec<String> = sf.exclude.iter().map(ToString::to_string).collect();
        assert_eq!(body["query"]["bool"]["must_not"], json!([{"ids": {"values": excluded}}]));
        assert_eq!(c.len(), 1 + 1 + 1 + 1 + 6 + 2 + 1);
    }

    #[test]
    fn visibility_only_when_checked() {
        let mut sf = full_filter();
        let has_visibility = |sf: &SearchFilter| {
            filters(&search_body("x", sf, 1))
                .iter()
                .any(|c| c.get("terms").is_some_and(|t| t.get("visibility").is_some()))
        };
        assert!(has_visibility(&sf));
        sf.visible_to = None;
        assert!(!has_visibility(&sf));
        assert_org_first(filters(&search_body("x", &sf, 1)));
    }

    #[test]
    fn text_is_matched_not_parsed() {
        let body = wire(&search_body(HOSTILE, &hostile_filter(), 3));
        let b = &body["query"]["bool"];
        assert_eq!(b["minimum_should_match"], 1);
        let mm = &b["should"][0]["multi_match"];
        assert_eq!(mm["query"], HOSTILE);
        assert_eq!(mm["fields"], json!(["content^1", "context^0.5"]));
        // No clause kind that parses query syntax.
        let text = body.to_string();
        assert!(!text.contains("query_string") && !text.contains("simple_query_string"));
        assert_org_first(filters(&body));
        assert_eq!(clause(filters(&body), "term", "entity"), HOSTILE);
        assert_eq!(clause(filters(&body), "term", "tags"), &json!(tag_term(HOSTILE, HOSTILE)));
    }

    #[test]
    fn highlights_and_size() {
        let body = search_body("deploy", &full_filter(), 12);
        assert_eq!(body["size"], 12);
        assert_eq!(body["_source"], false);
        assert_eq!(body["highlight"]["pre_tags"], json!(["<b>"]));
        assert_eq!(body["highlight"]["post_tags"], json!(["</b>"]));
        assert_eq!(body["highlight"]["encoder"], "html");
        assert!(body["highlight"]["fields"].get("content").is_some());
        assert!(body["highlight"]["fields"].get("context").is_none());
    }

    #[test]
    fn half_open_range() {
        let mut sf = empty_filter();
        sf.from = Some(at(0, 0));
        let body = search_body("x", &sf, 1);
        assert_eq!(clause(filters(&body), "range", "created_at"), &json!({"gte": "1970-01-01T00:00:00Z"}));
    }

    #[test]
    fn bulk_actions_are_routed_by_org() {
        let d = doc();
        let [action, source] = bulk_index("memories_v1", &d);
        assert_eq!(
            wire(&action),
            json!({"index": {"_index": "memories_v1", "_id": d.id.to_string(), "routing": "acme"}})
        );
        assert_eq!(source, document(&d));
        assert_eq!(source["org_id"], "acme");
    }

    #[test]
    fn org_queries_are_the_org_term_alone() {
        let body = wire(&org_query(&org()));
        assert_org_first(filters(&body));
        assert_eq!(filters(&body).len(), 1);
        assert_eq!(body.as_object().unwrap().len(), 1);
    }

    #[test]
    fn query_text_is_bounded() {
        assert_eq!(bounded_text("  Deploy   deploy the\tAPI "), "Deploy the API");
        assert_eq!(bounded_text(""), "");
        let huge = (0..10_000).map(|i| format!("w{i}")).collect::<Vec<_>>().join(" ");
        assert_eq!(bounded_text(&huge).split(' ').count(), MAX_QUERY_WORDS);
        assert_eq!(bounded_text(HOSTILE), HOSTILE.split_whitespace().collect::<Vec<_>>().join(" "));
    }

    #[test]
    fn text_fields_use_the_english_analyzer() {
        let body = index_body();
        for field in ["content", "context"] {
            assert_eq!(body["mappings"]["properties"][field]["analyzer"], "english", "{field}");
        }
    }

    #[test]
    fn deletes_are_scoped_by_org() {
        let list = vec![MemoryId::new(), MemoryId::new()];
        let body = wire(&delete_by_query(&org(), &list));
        let c = filters(&body);
        assert_org_first(c);
        let want: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(c[1], json!({"ids": {"values": want}}));
        assert_eq!(c.len(), 2);
        assert_eq!(body.as_object().unwrap().len(), 1);
        assert_org_first(filters(&delete_by_query(&org(), &[])));
    }
}
