//! The local cross-encoder on a tiny BERT the test builds (random weights,
//! a word-level tokenizer with BERT's pair template), and the embedder's
//! pooling and prefix options on the packaged MiniLM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use candle_transformers::models::bert::{BertModel, Config};
use loci_embed::{EmbedError, Embedder, LocalEmbedder, LocalOptions, LocalReranker, Pooling, Reranker};
use serde_json::json;

const WORDS: &[&str] = &["redis", "cache", "eviction", "postgres", "index", "deploy", "friday", "the", "is", "on"];

fn tiny_config() -> serde_json::Value {
    json!({
        "vocab_size": WORDS.len() + 4, "hidden_size": 16, "num_hidden_layers": 2, "num_attention_heads": 2,
        "intermediate_size": 32, "hidden_act": "gelu", "hidden_dropout_prob": 0.0,
        "max_position_embeddings": 64, "type_vocab_size": 2, "initializer_range": 0.02,
        "layer_norm_eps": 1e-12, "pad_token_id": 0, "model_type": "bert", "classifier_dropout": null
    })
}

/// `[PAD]` 0, `[UNK]` 1, `[CLS]` 2, `[SEP]` 3, then the words; pairs are
/// `[CLS] a [SEP] b [SEP]` with token types 0 and 1, as BERT's.
fn tiny_tokenizer() -> serde_json::Value {
    let mut vocab = serde_json::Map::new();
    for (i, w) in ["[PAD]", "[UNK]", "[CLS]", "[SEP]"].iter().chain(WORDS).enumerate() {
        vocab.insert((*w).to_owned(), json!(i));
    }
    let special = |id: &str, type_id: u32| json!({"SpecialToken": {"id": id, "type_id": type_id}});
    let sequence = |id: &str, type_id: u32| json!({"Sequence": {"id": id, "type_id": type_id}});
    json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": [],
        "normalizer": {"type": "Lowercase"},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0)],
            "pair": [special("[CLS]", 0), sequence("A", 0), special("[SEP]", 0), sequence("B", 1), special("[SEP]", 1)],
            "special_tokens": {
                "[CLS]": {"id": "[CLS]", "ids": [2], "tokens": ["[CLS]"]},
                "[SEP]": {"id": "[SEP]", "ids": [3], "tokens": ["[SEP]"]}
            }
        },
        "decoder": null,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "[UNK]"}
    })
}

/// A cross-encoder directory with random weights; `bias` is the
/// classifier's bias.
fn tiny_cross_encoder(dir: &Path, bias: f32) {
    std::fs::write(dir.join("config.json"), tiny_config().to_string()).unwrap();
    std::fs::write(dir.join("tokenizer.json"), tiny_tokenizer().to_string()).unwrap();
    let config: Config = serde_json::from_value(tiny_config()).unwrap();
    let mut varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    BertModel::load(vb.pp("bert"), &config).unwrap();
    candle_nn::linear(16, 16, vb.pp("bert.pooler.dense")).unwrap();
    candle_nn::linear(16, 1, vb.pp("classifier")).unwrap();
    varmap.set_one("classifier.bias", Tensor::new(&[bias], &Device::Cpu).unwrap()).unwrap();
    varmap.save(dir.join("model.safetensors")).unwrap();
}

fn logit(p: f32) -> f32 {
    (p / (1.0 - p)).ln()
}

fn docs() -> Vec<String> {
    ["redis cache eviction", "postgres index", "deploy on friday is the thing", "the"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

#[tokio::test]
async fn a_cross_encoder_scores_each_pair_the_same_alone_or_in_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    tiny_cross_encoder(dir.path(), 0.0);
    let r = LocalReranker::load(dir.path(), 2).unwrap();
    assert_eq!(r.model(), dir.path().file_name().unwrap().to_str().unwrap());
    let docs = docs();
    let batch = r.score("redis eviction", &docs).await.unwrap();
    assert_eq!(batch.len(), docs.len());
    assert!(batch.iter().all(|s| s.is_finite() && *s > 0.0 && *s < 1.0), "{batch:?}");
    for (doc, want) in docs.iter().zip(&batch) {
        let alone = r.score("redis eviction", std::slice::from_ref(doc)).await.unwrap();
        assert!((alone[0] - want).abs() < 1e-5, "{doc}: {} alone, {want} in a padded batch", alone[0]);
    }
    // Reordering the documents reorders the scores.
    let reversed: Vec<String> = docs.iter().rev().cloned().collect();
    let back = r.score("redis eviction", &reversed).await.unwrap();
    for (a, b) in back.iter().rev().zip(&batch) {
        assert!((a - b).abs() < 1e-5);
    }
    // The query is part of the input: another query, other scores.
    let other = r.score("postgres deploy", &docs).await.unwrap();
    assert!(other.iter().zip(&batch).any(|(a, b)| (a - b).abs() > 1e-4), "{other:?} vs {batch:?}");
    assert!(r.score("q", &[]).await.unwrap().is_empty());
    assert!(matches!(r.score("  ", &docs).await, Err(EmbedError::InvalidInput(_))));
}

#[tokio::test]
async fn the_score_is_the_sigmoid_of_the_classifier_logit() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    tiny_cross_encoder(a.path(), 0.0);
    // The same weights with the classifier's bias moved by 1.5.
    for f in ["config.json", "tokenizer.json"] {
        std::fs::copy(a.path().join(f), b.path().join(f)).unwrap();
    }
    let device = Device::Cpu;
    let mut tensors = candle_core::safetensors::load(a.path().join("model.safetensors"), &device).unwrap();
    let bias = tensors["classifier.bias"].to_vec1::<f32>().unwrap()[0];
    tensors.insert("classifier.bias".into(), Tensor::new(&[bias + 1.5], &device).unwrap());
    candle_core::safetensors::save(&tensors, b.path().join("model.safetensors")).unwrap();

    let (ra, rb) = (LocalReranker::load(a.path(), 4).unwrap(), LocalReranker::load(b.path(), 4).unwrap());
    let (sa, sb) = (ra.score("redis", &docs()).await.unwrap(), rb.score("redis", &docs()).await.unwrap());
    for (x, y) in sa.iter().zip(&sb) {
        assert!((logit(*y) - logit(*x) - 1.5).abs() < 1e-3, "{x} -> {y}");
    }
}

#[test]
fn a_model_without_a_classifier_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    tiny_cross_encoder(dir.path(), 0.0);
    let device = Device::Cpu;
    let mut tensors = candle_core::safetensors::load(dir.path().join("model.safetensors"), &device).unwrap();
    tensors.remove("classifier.weight");
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();
    match LocalReranker::load(dir.path(), 4) {
        Err(EmbedError::Model(m)) => assert!(m.contains("classifier"), "{m}"),
        other => panic!("expected a model error, got {other:?}"),
    }
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(LocalReranker::load(empty.path(), 4), Err(EmbedError::ModelMissing { .. })));
}

fn minilm_dir() -> PathBuf {
    match std::env::var_os("LOCI_TEST_MODEL_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/loci-models/all-MiniLM-L6-v2"),
    }
}

#[tokio::test]
async fn prefixes_and_pooling_of_a_local_embedding_model() {
    let dir = minilm_dir();
    assert!(dir.join("model.safetensors").is_file(), "no model at {} (scripts/fetch-model.sh)", dir.display());
    let plain = LocalEmbedder::load(&dir, 8).unwrap();
    assert_eq!(plain.pooling(), Pooling::Mean, "MiniLM's 1_Pooling says mean, or nothing does");
    assert_eq!(plain.prefixes(), ("", ""));
    // e5-style prefixes: a query is embedded as "query: ...", a stored text as "passage: ...".
    let options =
        LocalOptions { pooling: None, query_prefix: Some("query: ".into()), passage_prefix: Some("passage: ".into()) };
    let e5 = LocalEmbedder::load_with(&dir, 8, &options).unwrap();
    let q = e5.embed_query("where is the cache").await.unwrap();
    let want = plain.embed_one("query: where is the cache").await.unwrap();
    assert!(loci_embed::cosine(&q, &want) > 0.99999);
    let p = e5.embed(&["the cache is redis".to_owned()]).await.unwrap();
    let want = plain.embed_one("passage: the cache is redis").await.unwrap();
    assert!(loci_embed::cosine(&p[0], &want) > 0.99999);
    // A cached query embedder keeps queries apart from stored texts.
    let cached = loci_embed::CachedEmbedder::new(e5.clone(), 16);
    let cq = cached.embed_query("the cache is redis").await.unwrap();
    let cp = cached.embed_one("the cache is redis").await.unwrap();
    assert!(loci_embed::cosine(&cq, &cp) < 0.9999, "query and passage prefixes differ");

    // CLS pooling: unit vectors, the same alone or in a batch, not the mean's.
    let cls =
        LocalEmbedder::load_with(&dir, 8, &LocalOptions { pooling: Some(Pooling::Cls), ..LocalOptions::default() })
            .unwrap();
    let texts = vec!["a short one".to_owned(), "a much longer text about caches, eviction and redis".to_owned()];
    let batch = cls.embed(&texts).await.unwrap();
    for (t, v) in texts.iter().zip(&batch) {
        let alone = cls.embed_one(t).await.unwrap();
        assert!(loci_embed::cosine(&alone, v) > 0.99999);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4);
    }
    let mean = plain.embed(&texts).await.unwrap();
    assert!(loci_embed::cosine(&mean[1], &batch[1]) < 0.999);
}

#[test]
fn a_model_directory_describes_its_pooling_and_prompts() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(LocalOptions::from_model_dir(dir.path()), LocalOptions::default());
    std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
    std::fs::write(
        dir.path().join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 384, "pooling_mode_cls_token": true, "pooling_mode_mean_tokens": false}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("config_sentence_transformers.json"),
        r#"{"prompts": {"query": "Represent this sentence for searching relevant passages: ", "document": ""}}"#,
    )
    .unwrap();
    let found = LocalOptions::from_model_dir(dir.path());
    assert_eq!(found.pooling, Some(Pooling::Cls));
    assert_eq!(found.query_prefix.as_deref(), Some("Represent this sentence for searching relevant passages: "));
    assert_eq!(found.passage_prefix, None, "an empty prompt is no prefix");
}
