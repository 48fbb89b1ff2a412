//! The local model: a BERT sentence-transformer (all-MiniLM-L6-v2) run with candle on the CPU.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use candle_core::{D, DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::{EmbedError, Embedder, check_texts};
pub use loci_settings::Pooling;

/// `texts` with `prefix` before each (borrowed through when it is empty).
fn prefixed(prefix: &str, texts: &[String]) -> Vec<String> {
    if prefix.is_empty() { texts.to_vec() } else { texts.iter().map(|t| format!("{prefix}{t}")).collect() }
}

/// The directory name of the default model under `<data_dir>/models/`.
pub const DEFAULT_MODEL_DIR_NAME: &str = "all-MiniLM-L6-v2";

/// The files a model directory must hold.
pub const REQUIRED_MODEL_FILES: [&str; 3] = ["model.safetensors", "config.json", "tokenizer.json"];

/// Texts are truncated to this many tokens (special tokens included), as sentence-transformers
/// does for all-MiniLM-L6-v2.
pub const MAX_TOKENS: usize = 256;

/// Embeds with a BERT model in process, on the CPU, in F32.
///
/// Texts are tokenised (truncated to [`MAX_TOKENS`]), sorted by length and run in batches of at
/// most `max_batch`, each padded to its longest text; the token embeddings are pooled (mean over
/// the attention mask, or the first token's) and L2-normalised. Queries and stored texts get the
/// model's prefixes (e5's `query: ` / `passage: `), none for MiniLM. Inference runs on tokio's blocking pool, so `embed`
/// never blocks the async runtime. A text gets the same vector (to ~1e-6) alone or in a batch.
#[derive(Clone)]
pub struct LocalEmbedder {
    model: Arc<Model>,
    name: String,
    max_batch: usize,
    /// Put before a query ([`Embedder::embed_query`]) and before every other
    /// text; empty for models trained without them (MiniLM).
    query_prefix: String,
    passage_prefix: String,
}

/// How a local model is run, where the settings choose (see
/// [`LocalEmbedder::load_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalOptions {
    pub pooling: Option<Pooling>,
    pub query_prefix: Option<String>,
    pub passage_prefix: Option<String>,
}

impl LocalOptions {
    /// What a sentence-transformers model directory says about itself:
    /// `1_Pooling/config.json` (`pooling_mode_cls_token`,
    /// `pooling_mode_mean_tokens`) and the `prompts` of
    /// `config_sentence_transformers.json` (`query`, `passage` or
    /// `document`). Missing or unreadable files say nothing.
    pub fn from_model_dir(dir: &Path) -> Self {
        let read = |name: &str| -> Option<serde_json::Value> {
            serde_json::from_slice(&std::fs::read(dir.join(name)).ok()?).ok()
        };
        let pooling = read("1_Pooling/config.json").and_then(|c| {
            if c["pooling_mode_cls_token"].as_bool() == Some(true) {
                Some(Pooling::Cls)
            } else if c["pooling_mode_mean_tokens"].as_bool() == Some(true) {
                Some(Pooling::Mean)
            } else {
                None
            }
        });
        let prompts = read("config_sentence_transformers.json").map(|c| c["prompts"].clone()).unwrap_or_default();
        let prompt =
            |keys: &[&str]| keys.iter().find_map(|k| prompts[*k].as_str().filter(|p| !p.is_empty()).map(str::to_owned));
        Self { pooling, query_prefix: prompt(&["query"]), passage_prefix: prompt(&["passage", "document"]) }
    }
}

struct Model {
    bert: BertModel,
    tokenizer: Tokenizer,
    /// The same tokenizer without truncation, for counting.
    counter: Tokenizer,
    device: Device,
    hidden_size: usize,
    pad_id: u32,
    pooling: Pooling,
}

/// What every BERT model directory gives: its config, its tokenizer (no
/// padding, truncated to the model's limit), the weights, the pad id.
pub(crate) struct BertParts {
    pub(crate) config: Config,
    pub(crate) tokenizer: Tokenizer,
    /// The same tokenizer without truncation, for counting.
    pub(crate) counter: Tokenizer,
    pub(crate) vb: VarBuilder<'static>,
    pub(crate) device: Device,
    pub(crate) pad_id: u32,
    /// The directory's name (the default model name).
    pub(crate) name: String,
}

impl BertParts {
    /// Reads `model_dir`; inputs are truncated to `max_tokens` (or the
    /// model's position limit when smaller).
    pub(crate) fn load(model_dir: &Path, max_tokens: usize) -> Result<Self, EmbedError> {
        let missing: Vec<&str> =
            REQUIRED_MODEL_FILES.iter().copied().filter(|f| !model_dir.join(f).is_file()).collect();
        if !missing.is_empty() {
            return Err(EmbedError::ModelMissing { dir: model_dir.to_path_buf(), missing: missing.join(", ") });
        }
        let config_text = std::fs::read_to_string(model_dir.join("config.json"))
            .map_err(|e| EmbedError::Model(format!("reading config.json: {e}")))?;
        let config: Config =
            serde_json::from_str(&config_text).map_err(|e| EmbedError::Model(format!("parsing config.json: {e}")))?;

        let mut tokenizer = Tokenizer::from_file(model_dir.join("tokenizer.json"))
            .map_err(|e| EmbedError::Tokenizer(format!("loading tokenizer.json: {e}")))?;
        let pad_id = tokenizer.get_padding().map_or(config.pad_token_id as u32, |p| p.pad_id);
        let max_tokens = max_tokens.min(config.max_position_embeddings);
        tokenizer.with_padding(None);
        let mut counter = tokenizer.clone();
        counter.with_truncation(None).map_err(|e| EmbedError::Tokenizer(format!("clearing truncation: {e}")))?;
        tokenizer
            .with_truncation(Some(TruncationParams {
                max_length: max_tokens,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                direction: TruncationDirection::Right,
            }))
            .map_err(|e| EmbedError::Tokenizer(format!("setting truncation: {e}")))?;

        let device = Device::Cpu;
        let tensors = candle_core::safetensors::load(model_dir.join("model.safetensors"), &device)
            .map_err(|e| EmbedError::Model(format!("reading model.safetensors: {e}")))?;
        let vb = VarBuilder::from_tensors(tensors, DType::F32, &device);
        let name = model_dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.is_empty())
            .unwrap_or(DEFAULT_MODEL_DIR_NAME)
            .to_owned();
        Ok(Self { config, tokenizer, counter, vb, device, pad_id, name })
    }
}

/// Token-id sequences padded to the longest: ids, attention mask, and the
/// token types (`types`, or zeros), each `(rows, len)`.
pub(crate) fn padded_batch(
    batch: &[&[u32]],
    types: Option<&[&[u32]]>,
    pad_id: u32,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor), EmbedError> {
    let rows = batch.len();
    let len = batch.iter().map(|s| s.len()).max().unwrap_or(0).max(1);
    let mut input_ids = Vec::with_capacity(rows * len);
    let mut mask = Vec::with_capacity(rows * len);
    let mut type_ids = Vec::with_capacity(rows * len);
    for (row, seq) in batch.iter().enumerate() {
        input_ids.extend_from_slice(seq);
        input_ids.extend(std::iter::repeat_n(pad_id, len - seq.len()));
        mask.extend(std::iter::repeat_n(1u32, seq.len()));
        mask.extend(std::iter::repeat_n(0u32, len - seq.len()));
        match types.and_then(|t| t.get(row)) {
            Some(t) => type_ids.extend_from_slice(t),
            None => type_ids.extend(std::iter::repeat_n(0u32, seq.len())),
        }
        type_ids.extend(std::iter::repeat_n(0u32, len - seq.len()));
    }
    Ok((
        Tensor::from_vec(input_ids, (rows, len), device)?,
        Tensor::from_vec(mask, (rows, len), device)?,
        Tensor::from_vec(type_ids, (rows, len), device)?,
    ))
}

impl fmt::Debug for LocalEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEmbedder")
            .field("model", &self.name)
            .field("dimensions", &self.model.hidden_size)
            .field("max_batch", &self.max_batch)
            .finish_non_exhaustive()
    }
}

impl LocalEmbedder {
    /// Loads `model.safetensors`, `config.json` and `tokenizer.json` from `model_dir`.
    ///
    /// The tokenizer's own padding (all-MiniLM-L6-v2 ships a fixed 128) is replaced by padding
    /// each batch to its longest text, and truncation is set to [`MAX_TOKENS`]. `max_batch` (at
    /// least 1) bounds the texts per forward pass. The model name defaults to the directory name;
    /// see [`LocalEmbedder::with_model_name`].
    pub fn load(model_dir: &Path, max_batch: usize) -> Result<Self, EmbedError> {
        Self::load_with(model_dir, max_batch, &LocalOptions::default())
    }

    /// [`LocalEmbedder::load`] with the pooling and prefixes of `options`;
    /// what they leave unset comes from the model directory
    /// (sentence-transformers' `1_Pooling/config.json` and
    /// `config_sentence_transformers.json`), else mean pooling and no prefix.
    pub fn load_with(model_dir: &Path, max_batch: usize, options: &LocalOptions) -> Result<Self, EmbedError> {
        let parts = BertParts::load(model_dir, MAX_TOKENS)?;
        let bert = BertModel::load(parts.vb.clone(), &parts.config)
            .map_err(|e| EmbedError::Model(format!("building BERT: {e}")))?;
        let found = LocalOptions::from_model_dir(model_dir);
        let pooling = options.pooling.or(found.pooling).unwrap_or(Pooling::Mean);
        let query_prefix = options.query_prefix.clone().or(found.query_prefix).unwrap_or_default();
        let passage_prefix = options.passage_prefix.clone().or(found.passage_prefix).unwrap_or_default();
        Ok(Self {
            model: Arc::new(Model {
                bert,
                tokenizer: parts.tokenizer,
                counter: parts.counter,
                device: parts.device,
                hidden_size: parts.config.hidden_size,
                pad_id: parts.pad_id,
                pooling,
            }),
            name: parts.name,
            max_batch: max_batch.max(1),
            query_prefix,
            passage_prefix,
        })
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.model.pooling
    }

    /// The prefixes put before queries and before stored texts.
    pub fn prefixes(&self) -> (&str, &str) {
        (&self.query_prefix, &self.passage_prefix)
    }

    /// Sets the name [`Embedder::model`] reports (e.g. the `embeddings.model` setting).
    pub fn with_model_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// The largest number of texts run in one forward pass.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Embeds on the calling thread. CPU-bound (milliseconds per text): call it from a blocking
    /// context; [`Embedder::embed`] does that for you.
    pub fn embed_blocking(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        check_texts(texts)?;
        self.model.embed(&prefixed(&self.passage_prefix, texts), self.max_batch)
    }

    async fn embed_prefixed(&self, prefix: &str, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        check_texts(texts)?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let model = Arc::clone(&self.model);
        let texts = prefixed(prefix, texts);
        let max_batch = self.max_batch;
        tokio::task::spawn_blocking(move || model.embed(&texts, max_batch))
            .await
            .map_err(|e| EmbedError::Model(format!("inference task failed: {e}")))?
    }
}

impl Model {
    fn embed(&self, texts: &[String], max_batch: usize) -> Result<Vec<Vec<f32>>, EmbedError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let inputs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let encodings = self.tokenizer.encode_batch(inputs, true).map_err(|e| EmbedError::Tokenizer(e.to_string()))?;
        let ids: Vec<&[u32]> = encodings.iter().map(|e| e.get_ids()).collect();

        // Batches of similar lengths waste the least compute on padding.
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| ids[i].len());

        let mut out: Vec<Vec<f32>> = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(max_batch) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i]).collect();
            let vectors = self.forward(&batch)?;
            for (&i, v) in chunk.iter().zip(vectors) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    /// One forward pass over token-id sequences, padded to the longest: mean pooling over the
    /// attention mask, then L2 normalisation.
    fn forward(&self, batch: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let (input_ids, mask, token_type_ids) = padded_batch(batch, None, self.pad_id, &self.device)?;
        let hidden = self.bert.forward(&input_ids, &token_type_ids, Some(&mask))?; // (rows, len, hidden)
        let pooled = match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?, // (rows, hidden)
            Pooling::Mean => {
                let mask = mask.to_dtype(DType::F32)?.unsqueeze(D::Minus1)?; // (rows, len, 1)
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?; // (rows, hidden)
                let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?; // (rows, 1)
                summed.broadcast_div(&counts)?
            }
        };
        let norms = pooled.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?.clamp(1e-12, f64::MAX)?;
        let unit = pooled.broadcast_div(&norms)?;
        Ok(unit.to_vec2::<f32>()?)
    }
}

#[async_trait]
impl Embedder for LocalEmbedder {
    fn model(&self) -> &str {
        &self.name
    }

    fn dimensions(&self) -> usize {
        self.model.hidden_size
    }

    /// With the special tokens the model sees (`[CLS]`, `[SEP]`).
    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.model.counter.encode(text, true).ok().map(|e| e.get_ids().len())
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        self.embed_prefixed(&self.passage_prefix, texts).await
    }

    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        let mut out = self.embed_prefixed(&self.query_prefix, &[text.to_owned()]).await?;
        out.pop().ok_or_else(|| EmbedError::BadResponse("expected exactly one vector".into()))
    }
}
