//! A local cross-encoder: a BERT model for sequence classification (one
//! label), as sentence-transformers' `CrossEncoder` saves it
//! (cross-encoder/ms-marco-MiniLM-L-6-v2 and the like), run with candle.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{Device, Tensor};
use candle_nn::{Linear, Module, linear};
use candle_transformers::models::bert::BertModel;
use tokenizers::Tokenizer;

use crate::local::{BertParts, padded_batch};
use crate::{EmbedError, Reranker};

/// Query and document together are cut to this many tokens (ms-marco
/// cross-encoders are trained on 512).
pub const MAX_PAIR_TOKENS: usize = 512;

/// Scores (query, document) pairs with a BERT cross-encoder: the pair is
/// encoded as `[CLS] query [SEP] document [SEP]` (token types 0 and 1), the
/// `[CLS]` vector goes through BERT's pooler (dense + tanh) and the
/// classifier; the score is the sigmoid of its one logit. Runs on tokio's
/// blocking pool, in batches of at most `max_batch` pairs.
#[derive(Clone)]
pub struct LocalReranker {
    model: Arc<CrossEncoder>,
    name: String,
    max_batch: usize,
}

struct CrossEncoder {
    bert: BertModel,
    pooler: Linear,
    classifier: Linear,
    tokenizer: Tokenizer,
    device: Device,
    pad_id: u32,
}

impl fmt::Debug for LocalReranker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalReranker").field("model", &self.name).field("max_batch", &self.max_batch).finish()
    }
}

impl LocalReranker {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from
    /// `model_dir`: BERT weights (with or without the `bert.` prefix), the
    /// pooler (`bert.pooler.dense`) and a one-label `classifier`.
    pub fn load(model_dir: &Path, max_batch: usize) -> Result<Self, EmbedError> {
        let parts = BertParts::load(model_dir, MAX_PAIR_TOKENS)?;
        let config = &parts.config;
        let bert =
            BertModel::load(parts.vb.clone(), config).map_err(|e| EmbedError::Model(format!("building BERT: {e}")))?;
        let prefix =
            if parts.vb.contains_tensor("bert.pooler.dense.weight") { "bert.pooler.dense" } else { "pooler.dense" };
        let pooler = linear(config.hidden_size, config.hidden_size, parts.vb.pp(prefix))
            .map_err(|e| EmbedError::Model(format!("the pooler ({prefix}): {e}")))?;
        let classifier = linear(config.hidden_size, 1, parts.vb.pp("classifier"))
            .map_err(|e| EmbedError::Model(format!("the classifier (one label expected): {e}")))?;
        Ok(Self {
            model: Arc::new(CrossEncoder {
                bert,
                pooler,
                classifier,
                tokenizer: parts.tokenizer,
                device: parts.device,
                pad_id: parts.pad_id,
            }),
            name: parts.name,
            max_batch: max_batch.max(1),
        })
    }

    /// Sets the name [`Reranker::model`] reports.
    pub fn with_model_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Scores on the calling thread (CPU-bound: milliseconds per pair).
    pub fn score_blocking(&self, query: &str, documents: &[String]) -> Result<Vec<f32>, EmbedError> {
        self.model.score(query, documents, self.max_batch)
    }
}

impl CrossEncoder {
    fn score(&self, query: &str, documents: &[String], max_batch: usize) -> Result<Vec<f32>, EmbedError> {
        if documents.is_empty() {
            return Ok(Vec::new());
        }
        if query.trim().is_empty() {
            return Err(EmbedError::InvalidInput("the query is empty".into()));
        }
        let pairs: Vec<(&str, &str)> = documents.iter().map(|d| (query, d.as_str())).collect();
        let encodings = self.tokenizer.encode_batch(pairs, true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        // Pairs of similar lengths together waste the least on padding.
        let mut order: Vec<usize> = (0..encodings.len()).collect();
        order.sort_by_key(|&i| encodings[i].get_ids().len());
        let mut out = vec![0.0f32; encodings.len()];
        for chunk in order.chunks(max_batch) {
            let ids: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_ids()).collect();
            let types: Vec<&[u32]> = chunk.iter().map(|&i| encodings[i].get_type_ids()).collect();
            let (input_ids, mask, type_ids) = padded_batch(&ids, Some(&types), self.pad_id, &self.device)?;
            let hidden = self.bert.forward(&input_ids, &type_ids, Some(&mask))?; // (rows, len, hidden)
            let cls = hidden.narrow(1, 0, 1)?.squeeze(1)?;
            let pooled = self.pooler.forward(&cls)?.tanh()?;
            let logits: Tensor = self.classifier.forward(&pooled)?.squeeze(1)?; // (rows,)
            for (&i, logit) in chunk.iter().zip(logits.to_vec1::<f32>()?) {
                out[i] = 1.0 / (1.0 + (-logit).exp());
            }
        }
        Ok(out)
    }
}

#[async_trait]
impl Reranker for LocalReranker {
    fn model(&self) -> &str {
        &self.name
    }

    async fn score(&self, query: &str, documents: &[String]) -> Result<Vec<f32>, EmbedError> {
        let model = Arc::clone(&self.model);
        let (query, documents, max_batch) = (query.to_owned(), documents.to_vec(), self.max_batch);
        tokio::task::spawn_blocking(move || model.score(&query, &documents, max_batch))
            .await
            .map_err(|e| EmbedError::Model(format!("rerank task failed: {e}")))?
    }
}
