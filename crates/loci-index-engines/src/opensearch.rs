//! The OpenSearch lexical index (REST, crate `opensearch`), tenant-alias
//! strategy.
//!
//! Every org's documents live in one shared index ([`INDEX`]), each under
//! its memory id and routed by its org. Each org is reached through its
//! alias `tenant_<org>` ([`alias`](engine_queries::opensearch::alias)),
//! filtered to the org and routed by it; the alias is added the first time
//! the org writes. Searches, counts and deletes go through the alias *and*
//! carry the org term in their own body, so the alias is defence in depth.
//! All bodies are built by [`engine_queries::opensearch`] and sent as they
//! are.
//!
//! Opening pings the server and creates the index with its mappings when it
//! is missing (idempotent). Writes are bulk requests without refresh;
//! `flush` refreshes the index, which makes them searchable (as the embedded
//! index's commit). Deletes refresh first, so a delete-by-query also sees
//! documents written since the last flush.
//!
//! BM25 statistics are those of the shard (an org's documents share shards
//! with other orgs'), unlike the embedded index's per-caller statistics:
//! scores may shift with other orgs' documents, hits never come from them.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use loci_core::{MemoryId, OrgId};
use opensearch::auth::Credentials;
use opensearch::http::request::JsonBody;
use opensearch::http::response::Response;
use opensearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use opensearch::indices::{
    IndicesCreateParts, IndicesDeleteParts, IndicesExistsParts, IndicesForcemergeParts, IndicesRefreshParts,
};
use opensearch::{BulkParts, CountParts, DeleteByQueryParts, OpenSearch, SearchParts};
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::engines::{parse_memory_id, run_at_start};
use crate::queries::opensearch as os;
use loci_index::IndexError;
use loci_index::{Hit, IndexDoc, LexicalIndex, SearchFilter};

const ENGINE: &str = "opensearch";
/// The shared index of every org's memories.
pub const INDEX: &str = "loci_memories_v1";
/// The shared index of every org's code symbols (`loci_domain::code`).
pub const CODE_INDEX: &str = "loci_code_v1";
/// Documents per bulk request.
const BULK_CHUNK: usize = 500;
/// Characters of an error body kept in an error message.
const ERROR_BODY_CHARS: usize = 500;

/// Where the OpenSearch cluster is.
#[derive(Clone)]
pub struct OpenSearchOptions {
    /// e.g. `https://opensearch:9200`.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Per request.
    pub timeout: Duration,
    /// The shared index ([`INDEX`] in production; tests use their own).
    pub index: String,
    /// What each org's alias on `index` starts with
    /// ([`MEMORY_ALIAS_PREFIX`](os::MEMORY_ALIAS_PREFIX) for memories,
    /// [`CODE_ALIAS_PREFIX`](os::CODE_ALIAS_PREFIX) for code).
    pub alias_prefix: String,
}

impl OpenSearchOptions {
    /// From `[lexical]`: `lexical.url` is required; the index is [`INDEX`].
    pub fn from_settings(lexical: &loci_settings::LexicalSettings) -> Result<Self, IndexError> {
        Ok(Self {
            url: lexical
                .url
                .clone()
                .ok_or_else(|| IndexError::Config("lexical.url is required for opensearch".into()))?,
            username: lexical.username.clone(),
            password: lexical.password.as_ref().map(|p| p.expose().to_owned()),
            timeout: crate::ENGINE_TIMEOUT,
            index: INDEX.to_owned(),
            alias_prefix: os::MEMORY_ALIAS_PREFIX.to_owned(),
        })
    }

    /// The code index on the same cluster: [`CODE_INDEX`] with its own
    /// aliases.
    pub fn for_code(lexical: &loci_settings::LexicalSettings) -> Result<Self, IndexError> {
        Ok(Self {
            index: CODE_INDEX.to_owned(),
            alias_prefix: os::CODE_ALIAS_PREFIX.to_owned(),
            ..Self::from_settings(lexical)?
        })
    }
}

impl std::fmt::Debug for OpenSearchOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchOptions")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("timeout", &self.timeout)
            .field("index", &self.index)
            .field("alias_prefix", &self.alias_prefix)
            .finish()
    }
}

/// [`LexicalIndex`] over an OpenSearch index with one alias per org (see the
/// module docs).
pub struct OpenSearchLexicalIndex {
    client: OpenSearch,
    options: OpenSearchOptions,
    /// Orgs whose alias is known to exist.
    aliases: Mutex<HashSet<OrgId>>,
}

impl std::fmt::Debug for OpenSearchLexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenSearchLexicalIndex").field("options", &self.options).finish()
    }
}

fn err(e: opensearch::Error) -> IndexError {
    IndexError::Failed(format!("{ENGINE}: {e}"))
}

fn unavailable(e: impl std::fmt::Display) -> IndexError {
    IndexError::Unavailable { engine: ENGINE, reason: e.to_string() }
}

/// The JSON body of a successful response; an error status is an error
/// carrying the start of the body.
async fn success(what: &str, response: Response) -> Result<Value, IndexError> {
    let status = response.status_code();
    if status.is_success() {
        return response.json::<Value>().await.map_err(err);
    }
    let body = response.text().await.unwrap_or_default();
    let body: String = body.chars().take(ERROR_BODY_CHARS).collect();
    Err(IndexError::Failed(format!("{ENGINE}: {what} answered {status}: {body}")))
}

/// Whether a response is a 404 (an alias or index that does not exist yet:
/// the org has no documents).
fn missing(response: &Response) -> bool {
    response.status_code().as_u16() == 404
}

impl OpenSearchLexicalIndex {
    fn lazy(options: OpenSearchOptions) -> Result<Self, IndexError> {
        let url = url::Url::parse(&options.url).map_err(unavailable)?;
        let mut transport = TransportBuilder::new(SingleNodeConnectionPool::new(url)).timeout(options.timeout);
        if let Some(user) = &options.username {
            transport = transport.auth(Credentials::Basic(user.clone(), options.password.clone().unwrap_or_default()));
        }
        let client = OpenSearch::new(transport.build().map_err(unavailable)?);
        Ok(Self { client, options, aliases: Mutex::new(HashSet::new()) })
    }

    /// Connects, checks the cluster and creates the index if it is missing.
    pub async fn connect(options: OpenSearchOptions) -> Result<Self, IndexError> {
        let index = Self::lazy(options)?;
        index.prepare().await?;
        Ok(index)
    }

    /// [`Self::connect`] for synchronous start-up code: an unreachable
    /// cluster or refused credentials are [`IndexError::Unavailable`].
    pub fn open(options: OpenSearchOptions) -> Result<Self, IndexError> {
        let probe = options.clone();
        run_at_start(ENGINE, move || async move { Self::lazy(probe)?.prepare().await })?;
        Self::lazy(options)
    }

    fn index(&self) -> &str {
        &self.options.index
    }

    async fn health(&self) -> Result<(), IndexError> {
        let ping = self.client.ping().send().await.map_err(unavailable)?;
        if !ping.status_code().is_success() {
            return Err(unavailable(format!("ping answered {}", ping.status_code())));
        }
        Ok(())
    }

    async fn prepare(&self) -> Result<(), IndexError> {
        self.health().await?;
        let exists =
            self.client.indices().exists(IndicesExistsParts::Index(&[self.index()])).send().await.map_err(err)?;
        if exists.status_code().is_success() {
            return Ok(());
        }
        let created = self
            .client
            .indices()
            .create(IndicesCreateParts::Index(self.index()))
            .body(os::index_body())
            .send()
            .await
            .map_err(err)?;
        if created.status_code().is_success() {
            return Ok(());
        }
        // Another replica may have created it meanwhile.
        let text = created.text().await.unwrap_or_default();
        if text.contains("resource_already_exists_exception") {
            return Ok(());
        }
        Err(IndexError::Failed(format!("{ENGINE}: cannot create index {}: {text}", self.index())))
    }

    /// Adds the aliases of the orgs not known to have one (idempotent on the
    /// server).
    async fn ensure_aliases(&self, orgs: &[&OrgId]) -> Result<(), IndexError> {
        let missing: Vec<&OrgId> = {
            let known = self.aliases.lock();
            orgs.iter().copied().filter(|o| !known.contains(*o)).collect()
        };
        if missing.is_empty() {
            return Ok(());
        }
        let actions: Vec<Value> =
            missing.iter().map(|org| os::alias_action(self.index(), &self.options.alias_prefix, org)).collect();
        let response =
            self.client.indices().update_aliases().body(json!({"actions": actions})).send().await.map_err(err)?;
        success("adding tenant aliases", response).await?;
        self.aliases.lock().extend(missing.into_iter().cloned());
        Ok(())
    }

    async fn refresh(&self) -> Result<(), IndexError> {
        let response =
            self.client.indices().refresh(IndicesRefreshParts::Index(&[self.index()])).send().await.map_err(err)?;
        success("refresh", response).await.map(drop)
    }

    /// `POST /{alias}/_delete_by_query?routing={org}&refresh=true` with
    /// `body`, after a refresh so that unflushed documents are seen.
    async fn delete_in_org(&self, org: &OrgId, body: Value) -> Result<(), IndexError> {
        self.refresh().await?;
        let alias = os::alias_with(&self.options.alias_prefix, org);
        let routing = [org.as_str()];
        let response = self
            .client
            .delete_by_query(DeleteByQueryParts::Index(&[alias.as_str()]))
            .routing(&routing)
            .refresh(true)
            .body(body)
            .send()
            .await
            .map_err(err)?;
        if missing(&response) {
            return Ok(());
        }
        success("delete by query", response).await.map(drop)
    }
}

/// The first error of a bulk response, if any item failed.
fn bulk_error(answer: &Value) -> Option<String> {
    if answer.get("errors").and_then(Value::as_bool) != Some(true) {
        return None;
    }
    let items = answer.get("items").and_then(Value::as_array)?;
    items
        .iter()
        .filter_map(|item| item.as_object()?.values().next())
        .find_map(|r| r.get("error").map(|e| format!("{}: {e}", r.get("_id").and_then(Value::as_str).unwrap_or("?"))))
}

/// The hits of a search response.
fn hits_of(answer: &Value) -> Result<Vec<Hit>, IndexError> {
    let Some(list) = answer.pointer("/hits/hits").and_then(Value::as_array) else {
        return Err(IndexError::Failed(format!("{ENGINE}: search answer without hits")));
    };
    list.iter()
        .map(|h| {
            let id = h.get("_id").and_then(Value::as_str).unwrap_or_default();
            let mut hit =
                Hit::new(parse_memory_id(ENGINE, id)?, h.get("_score").and_then(Value::as_f64).unwrap_or(0.0) as f32);
            if let Some(fragments) = h.pointer("/highlight/content").and_then(Value::as_array) {
                hit.highlights = fragments.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect();
            }
            Ok(hit)
        })
        .collect()
}

#[async_trait]
impl LexicalIndex for OpenSearchLexicalIndex {
    async fn ping(&self) -> Result<(), IndexError> {
        self.health().await
    }

    fn engine(&self) -> &'static str {
        ENGINE
    }

    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        if docs.is_empty() {
            return Ok(());
        }
        // The last document of a memory wins, as in the embedded index.
        let mut latest: BTreeMap<(&OrgId, MemoryId), &IndexDoc> = BTreeMap::new();
        for doc in docs {
            latest.insert((&doc.org_id, doc.id), doc);
        }
        let mut orgs: Vec<&OrgId> = latest.keys().map(|(org, _)| *org).collect();
        orgs.dedup();
        self.ensure_aliases(&orgs).await?;
        let docs: Vec<&IndexDoc> = latest.into_values().collect();
        for chunk in docs.chunks(BULK_CHUNK) {
            let body: Vec<JsonBody<Value>> =
                chunk.iter().flat_map(|doc| os::bulk_index(self.index(), doc)).map(JsonBody::new).collect();
            let response = self.client.bulk(BulkParts::None).body(body).send().await.map_err(err)?;
            let answer = success("bulk", response).await?;
            if let Some(e) = bulk_error(&answer) {
                return Err(IndexError::Failed(format!("{ENGINE}: bulk item failed: {e}")));
            }
        }
        Ok(())
    }

    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        self.delete_in_org(org, os::delete_by_query(org, ids)).await
    }

    async fn search(&self, query: &str, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        let text = os::bounded_text(query);
        if limit == 0 || text.is_empty() {
            return Ok(Vec::new());
        }
        let alias = os::alias_with(&self.options.alias_prefix, &filter.org);
        let routing = [filter.org.as_str()];
        let response = self
            .client
            .search(SearchParts::Index(&[alias.as_str()]))
            .routing(&routing)
            .body(os::search_body(&text, filter, limit))
            .send()
            .await
            .map_err(err)?;
        if missing(&response) {
            return Ok(Vec::new());
        }
        hits_of(&success("search", response).await?)
    }

    async fn flush(&self) -> Result<(), IndexError> {
        self.refresh().await
    }

    /// `POST /{index}/_forcemerge?only_expunge_deletes=true`: segments
    /// holding deleted documents are rewritten without them (an erasure).
    async fn expunge(&self) -> Result<(), IndexError> {
        let response = self
            .client
            .indices()
            .forcemerge(IndicesForcemergeParts::Index(&[self.index()]))
            .only_expunge_deletes(true)
            .send()
            .await
            .map_err(err)?;
        success("forcemerge", response).await.map(drop)
    }

    /// One org: its documents, through its alias. Every org: the index is
    /// deleted (with every alias) and created again.
    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        match org {
            Some(org) => self.delete_in_org(org, os::org_query(org)).await,
            None => {
                let response = self
                    .client
                    .indices()
                    .delete(IndicesDeleteParts::Index(&[self.index()]))
                    .send()
                    .await
                    .map_err(err)?;
                if !missing(&response) {
                    success("delete index", response).await?;
                }
                self.aliases.lock().clear();
                self.prepare().await
            }
        }
    }

    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        let alias = os::alias_with(&self.options.alias_prefix, org);
        let routing = [org.as_str()];
        let response = self
            .client
            .count(CountParts::Index(&[alias.as_str()]))
            .routing(&routing)
            .body(os::org_query(org))
            .send()
            .await
            .map_err(err)?;
        if missing(&response) {
            return Ok(0);
        }
        let answer = success("count", response).await?;
        answer
            .get("count")
            .and_then(Value::as_u64)
            .ok_or_else(|| IndexError::Failed(format!("{ENGINE}: count answer without a count")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bulk_errors_are_found() {
        assert_eq!(bulk_error(&json!({"errors": false, "items": []})), None);
        let answer = json!({"errors": true, "items": [
            {"index": {"_id": "a", "status": 201}},
            {"index": {"_id": "b", "status": 400, "error": {"type": "strict_dynamic_mapping_exception"}}},
        ]});
        let e = bulk_error(&answer).unwrap();
        assert!(e.starts_with("b: ") && e.contains("strict_dynamic_mapping_exception"), "{e}");
    }

    #[test]
    fn hits_carry_ids_scores_and_highlights() {
        let id = MemoryId::new();
        let answer = json!({"hits": {"hits": [
            {"_id": id.to_string(), "_score": 1.5, "highlight": {"content": ["the <b>deploy</b>"]}},
            {"_id": id.to_string(), "_score": 0.5},
        ]}});
        let hits = hits_of(&answer).unwrap();
        assert_eq!(hits[0], Hit { id, score: 1.5, highlights: vec!["the <b>deploy</b>".into()] });
        assert!(hits[1].highlights.is_empty());
        assert!(hits_of(&json!({"hits": {"hits": [{"_id": "nope"}]}})).is_err());
        assert!(hits_of(&json!({})).is_err());
    }

    #[test]
    fn the_code_index_has_its_own_index_and_aliases() {
        let lexical = loci_settings::LexicalSettings {
            url: Some("http://o:9200".into()),
            ..loci_settings::LexicalSettings::default()
        };
        let memories = OpenSearchOptions::from_settings(&lexical).unwrap();
        let code = OpenSearchOptions::for_code(&lexical).unwrap();
        assert_eq!((memories.index.as_str(), memories.alias_prefix.as_str()), (INDEX, "tenant_"));
        assert_eq!((code.index.as_str(), code.alias_prefix.as_str()), (CODE_INDEX, "code_tenant_"));
        assert_eq!(code.url, memories.url);
    }

    #[test]
    fn options_do_not_print_the_password() {
        let o = OpenSearchOptions {
            url: "http://o:9200".into(),
            username: Some("admin".into()),
            password: Some("s3cret".into()),
            timeout: Duration::from_secs(1),
            index: INDEX.into(),
            alias_prefix: os::MEMORY_ALIAS_PREFIX.into(),
        };
        assert!(!format!("{o:?}").contains("s3cret"));
    }

    #[test]
    fn an_unreachable_cluster_is_a_typed_error_at_open() {
        let o = OpenSearchOptions {
            url: "http://127.0.0.1:9".into(),
            username: None,
            password: None,
            timeout: Duration::from_secs(2),
            index: INDEX.into(),
            alias_prefix: os::MEMORY_ALIAS_PREFIX.into(),
        };
        assert!(matches!(OpenSearchLexicalIndex::open(o), Err(IndexError::Unavailable { engine: "opensearch", .. })));
        let bad = OpenSearchOptions {
            url: "not a url".into(),
            username: None,
            password: None,
            timeout: Duration::from_secs(2),
            index: INDEX.into(),
            alias_prefix: os::MEMORY_ALIAS_PREFIX.into(),
        };
        assert!(matches!(OpenSearchLexicalIndex::open(bad), Err(IndexError::Unavailable { .. })));
    }
}
