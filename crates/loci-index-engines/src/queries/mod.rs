//! Requests and queries the production search adapters send to their
//! engines: Qdrant (vector), OpenSearch (lexical) and Neo4j (graph).
//!
//! These are pure builders: they turn an `IndexDoc` or a `SearchFilter`
//! into the engine's own JSON body or parameterised Cypher, and do no I/O;
//! the adapters send them. They fix, and unit-test, the tenant and
//! visibility rules of `loci-index` apart from any network code:
//! - every query and every delete carries the org as its first filter,
//!   inside the engine (deletes are never by id alone);
//! - visibility is pushed down as a match of the caller's
//!   [`SearchFilter::visibility_keys`](loci_index::SearchFilter::visibility_keys) against the document's
//!   [`IndexDoc::visibility_keys`](loci_index::IndexDoc::visibility_keys);
//! - user values only ever travel as JSON values or Cypher parameters, never
//!   spliced into query text.
//!
//! Each builder reproduces [`SearchFilter::admits`](loci_index::SearchFilter::admits), except that time bounds
//! are compared at the precision the engine stores (see each module).

#[cfg(feature = "neo4j")]
pub mod neo4j;
#[cfg(feature = "neo4j")]
pub mod neo4j_api;
#[cfg(feature = "neo4j")]
pub mod neo4j_code;
#[cfg(feature = "opensearch")]
pub mod opensearch;
#[cfg(feature = "qdrant")]
pub mod qdrant;

use std::collections::BTreeMap;

use loci_core::MemoryState;

/// One string tag as a single indexed term, `key=value`. The key's `\` and `=`
/// are escaped (`\\`, `\=`) so that the first unescaped `=` always separates
/// key from value: `{"a=b": "c"}` and `{"a": "b=c"}` give different terms.
pub(crate) fn tag_term(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 1);
    for c in key.chars() {
        if matches!(c, '\\' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('=');
    out.push_str(value);
    out
}

/// Every tag of a document or filter as [`tag_term`]s (in key order).
pub(crate) fn tag_terms(tags: &BTreeMap<String, String>) -> Vec<String> {
    tags.iter().map(|(k, v)| tag_term(k, v)).collect()
}

/// The states as their stored strings.
pub(crate) fn state_strs(states: &[MemoryState]) -> Vec<&'static str> {
    states.iter().map(|s| s.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_terms_are_unambiguous() {
        assert_eq!(tag_term("team", "core"), "team=core");
        assert_ne!(tag_term("a=b", "c"), tag_term("a", "b=c"));
        assert_eq!(tag_term("a=b", "c"), "a\\=b=c");
        assert_ne!(tag_term("a\\", "=b"), tag_term("a\\=", "b"));
        let tags = BTreeMap::from([("z".to_owned(), "1".to_owned()), ("a".to_owned(), "2".to_owned())]);
        assert_eq!(tag_terms(&tags), vec!["a=2", "z=1"]);
    }

    #[test]
    fn states_as_strings() {
        assert_eq!(state_strs(&[MemoryState::Active, MemoryState::Archived]), vec!["active", "archived"]);
        assert!(state_strs(&[]).is_empty());
    }
}

/// Documents and filters shared by the builders' tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeZone, Utc};
    use loci_core::{AccessEntity, AppId, MemoryId, MemoryState, OrgId, UserId};

    use loci_core::model::Visibility;
    use loci_index::{IndexDoc, SearchFilter, StructuredFields};

    /// Quotes, `$`, backticks, braces, comment and statement syntax of the
    /// query languages.
    pub(crate) const HOSTILE: &str = "x' OR 1=1 }) MATCH (n) DETACH DELETE n // $org_id `evil` \"q\" \\ {}";

    pub(crate) fn org() -> OrgId {
        OrgId::parse("acme").unwrap()
    }

    pub(crate) fn at(secs: i64, nanos: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(secs, nanos).unwrap()
    }

    /// Only the org: no visibility, every state.
    pub(crate) fn empty_filter() -> SearchFilter {
        let mut f = SearchFilter::new(org(), None);
        f.states.clear();
        f
    }

    /// Every field set.
    pub(crate) fn full_filter() -> SearchFilter {
        let mut f = SearchFilter::new(
            org(),
            Some(Visibility {
                user_id: UserId::new(),
                grants: vec!["team:acme/core".parse::<AccessEntity>().unwrap(), "org:acme".parse().unwrap()],
            }),
        );
        f.states = vec![MemoryState::Active, MemoryState::Paused];
        f.app_id = Some(AppId::new());
        f.fields.category = Some("decision".to_owned());
        f.fields.scope = Some("project".to_owned());
        f.fields.artifact_type = Some("file".to_owned());
        f.fields.artifact_ref = Some("src/main.rs".to_owned());
        f.fields.entity = Some("postgres".to_owned());
        f.fields.source = Some("agent".to_owned());
        f.tags = BTreeMap::from([("team".to_owned(), "core".to_owned()), ("lang".to_owned(), "rust".to_owned())]);
        f.from = Some(at(1_700_000_000, 250_000_000));
        f.to = Some(at(1_800_000_000, 0));
        f.exclude = vec![MemoryId::new(), MemoryId::new()];
        f
    }

    /// A filter whose every string is [`HOSTILE`].
    pub(crate) fn hostile_filter() -> SearchFilter {
        let mut f = full_filter();
        for (_, field) in f.fields.named_mut() {
            *field = Some(HOSTILE.to_owned());
        }
        f.tags = BTreeMap::from([(HOSTILE.to_owned(), HOSTILE.to_owned())]);
        f
    }

    pub(crate) fn doc() -> IndexDoc {
        IndexDoc {
            id: MemoryId::new(),
            org_id: org(),
            user_id: UserId::new(),
            app_id: AppId::new(),
            state: MemoryState::Active,
            content: "We deploy with blue/green".to_owned(),
            context: "earlier turn".to_owned(),
            access_entity: Some("team:acme/core".parse().unwrap()),
            fields: StructuredFields {
                category: Some("decision".to_owned()),
                artifact_type: Some("file".to_owned()),
                artifact_ref: Some("deploy.yaml".to_owned()),
                entity: Some("kubernetes".to_owned()),
                ..StructuredFields::default()
            },
            tags: BTreeMap::from([("team".to_owned(), "core".to_owned())]),
            created_at: at(1_750_000_000, 123_456_000),
        }
    }

    /// A document whose every free string is [`HOSTILE`].
    pub(crate) fn hostile_doc() -> IndexDoc {
        let mut d = doc();
        d.content = HOSTILE.to_owned();
        d.context = HOSTILE.to_owned();
        d.fields.category = Some(HOSTILE.to_owned());
        d.fields.scope = Some(HOSTILE.to_owned());
        d.fields.artifact_type = Some(HOSTILE.to_owned());
        d.fields.artifact_ref = Some(HOSTILE.to_owned());
        d.fields.entity = Some(HOSTILE.to_owned());
        d.fields.source = Some(HOSTILE.to_owned());
        d.tags = BTreeMap::from([(HOSTILE.to_owned(), HOSTILE.to_owned())]);
        d
    }
}
