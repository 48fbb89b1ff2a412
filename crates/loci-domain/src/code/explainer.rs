//! The optional LLM summary of `explain_code`: what the model is told (a
//! [`SymbolBrief`]: the symbol, its code and its direct neighbours, never
//! the team's memories) and a bounded cache, so asking twice about an
//! unchanged symbol costs one call.

use std::num::NonZeroUsize;
use std::sync::Arc;

use loci_core::OrgId;
use lru::LruCache;
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::queries::{CallEdgeView, CodeSummary, SymbolView};

/// Most neighbours of each side told to the model.
const MAX_NEIGHBOURS: usize = 10;
/// Longest code excerpt told to the model, in characters.
const MAX_CODE_CHARS: usize = 4_000;
/// Summaries kept.
const CACHE_ENTRIES: usize = 1_024;

/// Writes the summary of a symbol (an LLM in production: `loci-llm`).
#[async_trait::async_trait]
pub trait CodeExplainer: Send + Sync + std::fmt::Debug {
    /// The model, as reported with each summary.
    fn model(&self) -> &str;
    /// A few sentences on what the symbol does; an error says why not.
    async fn summarise(&self, brief: &SymbolBrief) -> Result<String, String>;
}

/// What the model is told about a symbol.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SymbolBrief {
    pub qualified_name: String,
    pub kind: String,
    pub language: String,
    pub path: String,
    pub signature: String,
    pub doc: Option<String>,
    pub code: String,
    /// Qualified names (or names as written) of direct callers.
    pub callers: Vec<String>,
    /// Qualified names (or names as written) of direct callees.
    pub callees: Vec<String>,
}

impl SymbolBrief {
    pub(super) fn of(symbol: &SymbolView, code: &str, callers: &[CallEdgeView], callees: &[CallEdgeView]) -> Self {
        let names = |edges: &[CallEdgeView]| -> Vec<String> {
            let mut out: Vec<String> = Vec::new();
            for e in edges.iter().filter(|e| e.depth == 1) {
                let name = e.symbol.as_ref().map(|s| s.qualified_name.clone()).unwrap_or_else(|| e.name.clone());
                if !out.contains(&name) {
                    out.push(name);
                }
                if out.len() == MAX_NEIGHBOURS {
                    break;
                }
            }
            out
        };
        Self {
            qualified_name: symbol.qualified_name.clone(),
            kind: symbol.kind.clone(),
            language: symbol.language.clone(),
            path: symbol.path.clone(),
            signature: symbol.signature.clone(),
            doc: symbol.doc.clone(),
            code: code.chars().take(MAX_CODE_CHARS).collect(),
            callers: names(callers),
            callees: names(callees),
        }
    }

    /// Identifies what the model was told (with the org: a cache entry is
    /// never another org's).
    fn key(&self, org: &OrgId, model: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        for part in [org.as_str(), model] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(serde_json::to_vec(self).unwrap_or_default());
        h.finalize().into()
    }
}

/// An explainer with its cache of summaries.
#[derive(Debug, Clone)]
pub(super) struct CachedExplainer {
    inner: Arc<dyn CodeExplainer>,
    cache: Arc<Mutex<LruCache<[u8; 32], String>>>,
}

impl CachedExplainer {
    pub(super) fn new(inner: Arc<dyn CodeExplainer>) -> Self {
        let size = NonZeroUsize::new(CACHE_ENTRIES).unwrap_or(NonZeroUsize::MIN);
        Self { inner, cache: Arc::new(Mutex::new(LruCache::new(size))) }
    }

    /// The summary of `brief`, from the cache when the same symbol, code
    /// and neighbours were summarised by the same model before.
    pub(super) async fn summary(&self, org: &OrgId, brief: &SymbolBrief) -> Result<CodeSummary, String> {
        let model = self.inner.model().to_owned();
        let key = brief.key(org, &model);
        if let Some(text) = self.cache.lock().get(&key).cloned() {
            return Ok(CodeSummary { text, model });
        }
        let text = self.inner.summarise(brief).await?;
        let text = text.trim().to_owned();
        if text.is_empty() {
            return Err("the model answered an empty summary".into());
        }
        self.cache.lock().put(key, text.clone());
        Ok(CodeSummary { text, model })
    }
}
