//! The Qdrant vector index (gRPC, crate `qdrant-client`).
//!
//! One collection per embedding model and size
//! ([`collection_for`](engine_queries::qdrant::collection_for)), cosine
//! distance, shared by every org. Opening checks the server, creates the
//! collection when it is missing and creates the payload indexes of
//! [`payload_indexes`](engine_queries::qdrant::payload_indexes) (both
//! idempotent, so every start and every replica may do it).
//!
//! Every request is built by [`engine_queries::qdrant`] as JSON and only
//! translated here into the client's protobuf types ([`grpc_filter`]), so the
//! unit tests of the builders (org first, visibility keys when the caller is
//! restricted) hold for what goes on the wire. Points are keyed by memory id
//! (memory ids are global UUIDs); deletes, counts and the embedding lookup
//! select by a filter that also requires the org, never by id alone.
//!
//! Writes wait for the server's acknowledgement (`wait = true`), after which
//! Qdrant's write-ahead log holds them: `flush` has nothing left to do.

use std::time::Duration;

use async_trait::async_trait;
use loci_core::{MemoryId, OrgId};
use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder, DeletePointsBuilder,
    Distance, FieldCondition, FieldType, Filter, HasIdCondition, Match, PointId, PointStruct, Range, RepeatedStrings,
    ScrollPointsBuilder, SearchPointsBuilder, UpsertPointsBuilder, VectorParamsBuilder, r#match::MatchValue,
    point_id::PointIdOptions, vector_output,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::Value;

use crate::engines::{check_vector, normalised, parse_memory_id, run_at_start};
use crate::queries::qdrant as q;
use loci_index::IndexError;
use loci_index::{Hit, IndexDoc, SearchFilter, VectorIndex};

const ENGINE: &str = "qdrant";
/// Points per upsert request.
const UPSERT_CHUNK: usize = 256;

/// Where the Qdrant server is and which collection to use.
#[derive(Clone)]
pub struct QdrantOptions {
    /// The gRPC URL, e.g. `http://qdrant:6334`.
    pub url: String,
    pub api_key: Option<String>,
    /// The embedding model's name (part of the collection name).
    pub model: String,
    pub dimensions: usize,
    /// Per request.
    pub timeout: Duration,
    /// What the collection's name starts with
    /// ([`MEMORY_PREFIX`](q::MEMORY_PREFIX) or [`CODE_PREFIX`](q::CODE_PREFIX)).
    pub prefix: String,
}

impl QdrantOptions {
    /// From `[vector]` and the embedder's model: `vector.url` is required.
    pub fn from_settings(
        vector: &loci_settings::VectorSettings,
        model: &str,
        dimensions: usize,
    ) -> Result<Self, IndexError> {
        Ok(Self {
            url: vector.url.clone().ok_or_else(|| IndexError::Config("vector.url is required for qdrant".into()))?,
            api_key: vector.api_key.as_ref().map(|k| k.expose().to_owned()),
            model: model.to_owned(),
            dimensions,
            timeout: crate::ENGINE_TIMEOUT,
            prefix: q::MEMORY_PREFIX.to_owned(),
        })
    }

    /// The code symbols' collection of the same model on the same server.
    pub fn for_code(
        vector: &loci_settings::VectorSettings,
        model: &str,
        dimensions: usize,
    ) -> Result<Self, IndexError> {
        Ok(Self { prefix: q::CODE_PREFIX.to_owned(), ..Self::from_settings(vector, model, dimensions)? })
    }
}

impl std::fmt::Debug for QdrantOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantOptions")
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("model", &self.model)
            .field("dimensions", &self.dimensions)
            .field("timeout", &self.timeout)
            .field("prefix", &self.prefix)
            .finish()
    }
}

/// [`VectorIndex`] over a Qdrant collection (see the module docs).
pub struct QdrantVectorIndex {
    client: Qdrant,
    options: QdrantOptions,
    collection: String,
}

impl std::fmt::Debug for QdrantVectorIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QdrantVectorIndex")
            .field("collection", &self.collection)
            .field("options", &self.options)
            .finish()
    }
}

fn err(e: QdrantError) -> IndexError {
    IndexError::Failed(format!("{ENGINE}: {e}"))
}

fn malformed(what: &str, v: &Value) -> IndexError {
    IndexError::Failed(format!("{ENGINE}: cannot translate {what} {v}"))
}

fn keyword_list(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(|s| s.as_str().map(str::to_owned)).collect()
}

/// One condition of a built filter as the client's type. Only the shapes the
/// builders emit are accepted (a keyword match, a keyword any-match, an
/// integer range, `has_id`); anything else is an error rather than a
/// condition silently dropped. String matches are always keyword matches:
/// the client's `From<String>` would turn a value with a space into a
/// full-text match.
fn grpc_condition(c: &Value) -> Result<Condition, IndexError> {
    if let Some(ids) = c.get("has_id") {
        let ids = keyword_list(ids).ok_or_else(|| malformed("has_id", c))?;
        return Ok(HasIdCondition { has_id: ids.into_iter().map(PointId::from).collect() }.into());
    }
    let key = c.get("key").and_then(Value::as_str).ok_or_else(|| malformed("condition", c))?;
    let mut field = FieldCondition { key: key.to_owned(), ..Default::default() };
    if let Some(m) = c.get("match") {
        let value = if let Some(s) = m.get("value").and_then(Value::as_str) {
            MatchValue::Keyword(s.to_owned())
        } else if let Some(any) = m.get("any") {
            MatchValue::Keywords(RepeatedStrings { strings: keyword_list(any).ok_or_else(|| malformed("match", c))? })
        } else {
            return Err(malformed("match", c));
        };
        field.r#match = Some(Match { match_value: Some(value) });
    } else if let Some(r) = c.get("range") {
        let bound = |name: &str| -> Result<Option<f64>, IndexError> {
            match r.get(name) {
                None => Ok(None),
                Some(v) => v.as_i64().map(|i| Some(i as f64)).ok_or_else(|| malformed("range", c)),
            }
        };
        field.range = Some(Range { gte: bound("gte")?, lte: bound("lte")?, ..Default::default() });
    } else {
        return Err(malformed("condition", c));
    }
    Ok(field.into())
}

fn grpc_conditions(f: &Value, part: &str) -> Result<Vec<Condition>, IndexError> {
    match f.get(part) {
        None => Ok(Vec::new()),
        Some(Value::Array(list)) => list.iter().map(grpc_condition).collect(),
        Some(other) => Err(malformed(part, other)),
    }
}

/// A filter built by [`engine_queries::qdrant`](q) as the client's type,
/// condition for condition and in the same order.
pub fn grpc_filter(f: &Value) -> Result<Filter, IndexError> {
    let must = grpc_conditions(f, "must")?;
    if must.is_empty() {
        // Every builder starts `must` with the org: an empty one is a bug.
        return Err(malformed("filter without conditions", f));
    }
    Ok(Filter { must, must_not: grpc_conditions(f, "must_not")?, ..Default::default() })
}

fn point_uuid(id: Option<PointId>) -> Result<MemoryId, IndexError> {
    match id.and_then(|p| p.point_id_options) {
        Some(PointIdOptions::Uuid(s)) => parse_memory_id(ENGINE, &s),
        other => Err(IndexError::Failed(format!("{ENGINE}: unexpected point id {other:?}"))),
    }
}

impl QdrantVectorIndex {
    /// A client for `options`; connects lazily, on the runtime of its first
    /// request.
    fn lazy(options: QdrantOptions) -> Result<Self, IndexError> {
        let client = Qdrant::from_url(&options.url)
            .api_key(options.api_key.clone())
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .skip_compatibility_check()
            .build()
            .map_err(|e| IndexError::Unavailable { engine: ENGINE, reason: e.to_string() })?;
        let collection = q::collection_for_in(&options.prefix, &options.model, options.dimensions);
        Ok(Self { client, options, collection })
    }

    /// Connects, checks the server and prepares the collection (async
    /// callers: tests and tools).
    pub async fn connect(options: QdrantOptions) -> Result<Self, IndexError> {
        let index = Self::lazy(options)?;
        index.prepare().await?;
        Ok(index)
    }

    /// [`Self::connect`] for synchronous start-up code (see
    /// `engines::run_at_start`): an unreachable server or a refused key is
    /// [`IndexError::Unavailable`].
    pub fn open(options: QdrantOptions) -> Result<Self, IndexError> {
        let probe = options.clone();
        run_at_start(ENGINE, move || async move { Self::lazy(probe)?.prepare().await })?;
        Self::lazy(options)
    }

    /// The collection this index writes (`<prefix>_<model>_<dims>`).
    pub fn collection(&self) -> &str {
        &self.collection
    }

    /// The server's health check, bounded by the timeout.
    async fn health(&self) -> Result<(), IndexError> {
        match tokio::time::timeout(self.options.timeout, self.client.health_check()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(IndexError::Unavailable { engine: ENGINE, reason: e.to_string() }),
            Err(_) => Err(IndexError::Timeout(format!("{ENGINE}: health check"))),
        }
    }

    /// Checks the server, creates the collection if it is missing, and its
    /// payload indexes (idempotent).
    async fn prepare(&self) -> Result<(), IndexError> {
        self.client
            .health_check()
            .await
            .map_err(|e| IndexError::Unavailable { engine: ENGINE, reason: e.to_string() })?;
        if !self.client.collection_exists(&self.collection).await.map_err(err)? {
            let dims = u64::try_from(self.options.dimensions).unwrap_or(u64::MAX);
            let created = self
                .client
                .create_collection(
                    CreateCollectionBuilder::new(&self.collection)
                        .vectors_config(VectorParamsBuilder::new(dims, Distance::Cosine)),
                )
                .await;
            // Another replica may have created it meanwhile.
            if let Err(e) = created
                && !self.client.collection_exists(&self.collection).await.map_err(err)?
            {
                return Err(err(e));
            }
        }
        for (field, schema) in q::payload_indexes() {
            let kind = if schema == "integer" { FieldType::Integer } else { FieldType::Keyword };
            self.client
                .create_field_index(CreateFieldIndexCollectionBuilder::new(&self.collection, field, kind).wait(true))
                .await
                .map_err(err)?;
        }
        Ok(())
    }
}

#[async_trait]
impl VectorIndex for QdrantVectorIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        self.health().await
    }

    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn upsert(&self, docs: &[(IndexDoc, Vec<f32>)]) -> Result<(), IndexError> {
        for (_, v) in docs {
            check_vector(ENGINE, v, self.options.dimensions)?;
        }
        for chunk in docs.chunks(UPSERT_CHUNK) {
            let points = chunk
                .iter()
                .map(|(doc, v)| {
                    let payload = Payload::try_from(q::point_payload(doc)).map_err(err)?;
                    Ok(PointStruct::new(doc.id.to_string(), normalised(v), payload))
                })
                .collect::<Result<Vec<_>, IndexError>>()?;
            self.client
                .upsert_points(UpsertPointsBuilder::new(&self.collection, points).wait(true))
                .await
                .map_err(err)?;
        }
        Ok(())
    }

    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        let body = q::delete_request(org, ids);
        let filter = grpc_filter(&body["filter"])?;
        self.client
            .delete_points(DeletePointsBuilder::new(&self.collection).points(filter).wait(true))
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn search(&self, query: &[f32], filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        check_vector(ENGINE, query, self.options.dimensions)?;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let body = q::search_request(&normalised(query), filter, limit);
        let request = SearchPointsBuilder::new(&self.collection, normalised(query), limit as u64)
            .filter(grpc_filter(&body["filter"])?)
            .with_payload(false)
            .with_vectors(false);
        let answer = self.client.search_points(request).await.map_err(err)?;
        answer.result.into_iter().map(|p| Ok(Hit::new(point_uuid(p.id)?, p.score))).collect()
    }

    async fn embedding(&self, org: &OrgId, id: MemoryId) -> Result<Option<Vec<f32>>, IndexError> {
        let request = ScrollPointsBuilder::new(&self.collection)
            .filter(grpc_filter(&q::point_filter(org, id))?)
            .limit(1)
            .with_payload(false)
            .with_vectors(true);
        let answer = self.client.scroll(request).await.map_err(err)?;
        let Some(point) = answer.result.into_iter().next() else { return Ok(None) };
        match point.vectors.and_then(|v| v.get_vector()) {
            Some(vector_output::Vector::Dense(dense)) => Ok(Some(dense.data)),
            other => Err(IndexError::Failed(format!("{ENGINE}: point {id} has no dense vector ({other:?})"))),
        }
    }

    /// Acknowledged writes are already in Qdrant's write-ahead log.
    async fn flush(&self) -> Result<(), IndexError> {
        Ok(())
    }

    /// One org: its points, selected by the org filter. Every org: the
    /// collection is dropped and prepared again.
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        match org {
            Some(org) => {
                self.client
                    .delete_points(
                        DeletePointsBuilder::new(&self.collection).points(grpc_filter(&q::org_filter(org))?).wait(true),
                    )
                    .await
                    .map_err(err)?;
                Ok(())
            }
            None => {
                if self.client.collection_exists(&self.collection).await.map_err(err)? {
                    self.client.delete_collection(&self.collection).await.map_err(err)?;
                }
                self.prepare().await
            }
        }
    }

    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        let answer = self
            .client
            .count(CountPointsBuilder::new(&self.collection).filter(grpc_filter(&q::org_filter(org))?).exact(true))
            .await
            .map_err(err)?;
        Ok(answer.result.map_or(0, |r| r.count))
    }
}

#[cfg(test)]
mod tests {
    use qdrant_client::qdrant::condition::ConditionOneOf;
    use serde_json::json;

    use super::*;
    use crate::queries::fixtures::{HOSTILE, empty_filter, full_filter, hostile_filter, org};
    use crate::queries::tag_term;

    fn field(c: &Condition) -> &FieldCondition {
        match &c.condition_one_of {
            Some(ConditionOneOf::Field(f)) => f,
            other => panic!("not a field condition: {other:?}"),
        }
    }

    fn keyword(c: &Condition) -> &str {
        match field(c).r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
            Some(MatchValue::Keyword(k)) => k,
            other => panic!("not a keyword match: {other:?}"),
        }
    }

    fn assert_org_first(f: &Filter) {
        assert_eq!(field(&f.must[0]).key, "org_id");
        assert_eq!(keyword(&f.must[0]), "acme");
        assert_eq!(
            f.must
                .iter()
                .filter(|c| matches!(&c.condition_one_of, Some(ConditionOneOf::Field(x)) if x.key == "org_id"))
                .count(),
            1
        );
    }

    #[test]
    fn every_condition_is_translated_in_order() {
        for sf in [empty_filter(), SearchFilter::new(org(), None), full_filter(), hostile_filter()] {
            let built = q::filter(&sf);
            let f = grpc_filter(&built).unwrap();
            assert_org_first(&f);
            assert_eq!(f.must.len(), built["must"].as_array().unwrap().len());
            assert_eq!(f.must_not.len(), built.get("must_not").map_or(0, |m| m.as_array().unwrap().len()));
            assert!(f.should.is_empty() && f.min_should.is_none());
            for (c, want) in f.must.iter().zip(built["must"].as_array().unwrap()) {
                assert_eq!(field(c).key, want["key"].as_str().unwrap());
            }
        }
    }

    #[test]
    fn visibility_keys_are_an_any_match_when_restricted() {
        let sf = full_filter();
        let f = grpc_filter(&q::filter(&sf)).unwrap();
        let vis = f.must.iter().find(|c| field(c).key == "visibility").unwrap();
        match field(vis).r#match.as_ref().and_then(|m| m.match_value.as_ref()) {
            Some(MatchValue::Keywords(k)) => assert_eq!(k.strings, sf.visibility_keys().unwrap()),
            other => panic!("{other:?}"),
        }
        let mut open = sf;
        open.visible_to = None;
        let f = grpc_filter(&q::filter(&open)).unwrap();
        assert!(f.must.iter().all(|c| field(c).key != "visibility"));
    }

    #[test]
    fn hostile_strings_stay_keywords() {
        let f = grpc_filter(&q::filter(&hostile_filter())).unwrap();
        assert_org_first(&f);
        let entity = f.must.iter().find(|c| field(c).key == "entity").unwrap();
        assert_eq!(keyword(entity), HOSTILE, "a value with spaces is not a full-text match");
        let tags = f.must.iter().find(|c| field(c).key == "tags").unwrap();
        assert_eq!(keyword(tags), tag_term(HOSTILE, HOSTILE));
    }

    #[test]
    fn ranges_and_exclusions() {
        let sf = full_filter();
        let f = grpc_filter(&q::filter(&sf)).unwrap();
        let range = field(f.must.iter().find(|c| field(c).key == "created_at").unwrap()).range.unwrap();
        assert_eq!(
            (range.gte, range.lte, range.gt, range.lt),
            (Some(1_700_000_000.0), Some(1_800_000_000.0), None, None)
        );
        match &f.must_not[0].condition_one_of {
            Some(ConditionOneOf::HasId(h)) => {
                let want: Vec<PointId> = sf.exclude.iter().map(|id| PointId::from(id.to_string())).collect();
                assert_eq!(h.has_id, want);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deletes_counts_and_lookups_are_scoped_by_org() {
        let ids = vec![MemoryId::new(), MemoryId::new()];
        let f = grpc_filter(&q::delete_request(&org(), &ids)["filter"]).unwrap();
        assert_org_first(&f);
        assert_eq!(f.must.len(), 2);
        assert!(matches!(&f.must[1].condition_one_of, Some(ConditionOneOf::HasId(h)) if h.has_id.len() == 2));
        let f = grpc_filter(&q::org_filter(&org())).unwrap();
        assert_org_first(&f);
        assert_eq!(f.must.len(), 1);
        let f = grpc_filter(&q::point_filter(&org(), ids[0])).unwrap();
        assert_org_first(&f);
        assert_eq!(f.must.len(), 2);
    }

    #[test]
    fn unknown_shapes_are_refused() {
        for bad in [
            json!({}),
            json!({"must": []}),
            json!({"must": [{"key": "org_id"}]}),
            json!({"must": [{"key": "org_id", "match": {"value": 3}}]}),
            json!({"must": [{"key": "org_id", "match": {"text": "acme"}}]}),
            json!({"must": [{"key": "created_at", "range": {"gte": "soon"}}]}),
            json!({"must": [{"has_id": [1]}]}),
        ] {
            assert!(grpc_filter(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn payload_converts_without_loss() {
        let d = crate::queries::fixtures::doc();
        let p = Payload::try_from(q::point_payload(&d)).unwrap();
        let back: serde_json::Value = serde_json::Value::from(p);
        assert_eq!(back, q::point_payload(&d));
    }

    #[test]
    fn an_unreachable_server_is_a_typed_error_at_open() {
        let o = QdrantOptions {
            url: "http://127.0.0.1:9".into(),
            api_key: None,
            model: "m".into(),
            dimensions: 3,
            timeout: Duration::from_secs(2),
            prefix: q::MEMORY_PREFIX.into(),
        };
        assert!(matches!(QdrantVectorIndex::open(o), Err(IndexError::Unavailable { engine: "qdrant", .. })));
    }

    #[test]
    fn options_do_not_print_the_key() {
        let o = QdrantOptions {
            url: "http://q:6334".into(),
            api_key: Some("s3cret".into()),
            model: "m".into(),
            dimensions: 3,
            timeout: Duration::from_secs(1),
            prefix: q::MEMORY_PREFIX.into(),
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn the_code_collection_is_named_apart_on_the_same_server() {
        let vector = loci_settings::VectorSettings {
            url: Some("http://q:6334".into()),
            ..loci_settings::VectorSettings::default()
        };
        let memories = QdrantOptions::from_settings(&vector, "all-MiniLM-L6-v2", 384).unwrap();
        let code = QdrantOptions::for_code(&vector, "all-MiniLM-L6-v2", 384).unwrap();
        assert_eq!(code.url, memories.url);
        let name = |o: &QdrantOptions| q::collection_for_in(&o.prefix, &o.model, o.dimensions);
        assert_eq!(name(&memories), "embeddings_all_minilm_l6_v2_384");
        assert_eq!(name(&code), "code_all_minilm_l6_v2_384");
    }
}
