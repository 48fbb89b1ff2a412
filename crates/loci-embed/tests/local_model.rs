//! The local model against reference values of all-MiniLM-L6-v2 (sentence-transformers).
//!
//! Needs the model files: `scripts/fetch-model.sh ~/.cache/loci-models/all-MiniLM-L6-v2`, or set
//! `LOCI_TEST_MODEL_DIR`. Without them every test here fails (`scripts/test.sh` fetches them
//! first). Speed is measured by `cargo bench -p loci-embed --bench local_model`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::OnceLock;

use loci_embed::{EmbedError, Embedder, LocalEmbedder, REQUIRED_MODEL_FILES, cosine};
use loci_settings::{EmbeddingsProvider, EmbeddingsSettings};

fn model_dir() -> PathBuf {
    match std::env::var_os("LOCI_TEST_MODEL_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/loci-models/all-MiniLM-L6-v2"),
    }
}

/// The model, loaded once per test binary; a missing model fails the test.
fn model() -> LocalEmbedder {
    static MODEL: OnceLock<LocalEmbedder> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            let dir = model_dir();
            assert!(
                REQUIRED_MODEL_FILES.iter().all(|f| dir.join(f).is_file()),
                "no model at {} (run scripts/fetch-model.sh there, or set LOCI_TEST_MODEL_DIR)",
                dir.display()
            );
            LocalEmbedder::load(&dir, 8).expect("the model loads")
        })
        .clone()
}

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| (*t).to_owned()).collect()
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

#[tokio::test]
async fn hello_world_matches_the_reference_vector() {
    let m = model();
    assert_eq!(m.dimensions(), 384);
    let v = m.embed_one("hello world").await.unwrap();
    assert_eq!(v.len(), 384);
    assert!((norm(&v) - 1.0).abs() < 1e-5, "norm {}", norm(&v));
    let reference = [-0.0345, 0.0310, 0.0067, 0.0261, -0.0394];
    eprintln!("hello world -> {:?}", &v[..5]);
    for (got, want) in v.iter().zip(reference) {
        assert!((got - want).abs() < 1e-3, "got {:?}, want {reference:?}", &v[..5]);
    }
}

#[tokio::test]
async fn related_sentences_are_close_and_unrelated_ones_are_not() {
    let m = model();
    let v = m
        .embed(&strings(&["How do I rotate the deploy key?", "Deploy key rotation procedure", "My cat likes tuna"]))
        .await
        .unwrap();
    let (related, cat_a, cat_b) = (cosine(&v[0], &v[1]), cosine(&v[0], &v[2]), cosine(&v[1], &v[2]));
    eprintln!("cos(deploy pair) = {related:.4}, cos(cat, a) = {cat_a:.4}, cos(cat, b) = {cat_b:.4}");
    assert!((related - 0.81).abs() < 0.03, "{related}");
    assert!(cat_a < 0.15 && cat_b < 0.15, "{cat_a} {cat_b}");
    for x in &v {
        assert!((norm(x) - 1.0).abs() < 1e-5);
    }
}

#[tokio::test]
async fn a_text_gets_the_same_vector_alone_and_in_a_padded_batch() {
    let m = model();
    let long = "The indexer reads the outbox in order and retries failed rows with backoff. ".repeat(8);
    let texts = strings(&[
        "short",
        &long,
        "How do I rotate the deploy key?",
        "a b c",
        "Mean pooling ignores the padding tokens of shorter texts in the same batch.",
        "hello world",
        "x",
        "Deploy key rotation procedure",
        "twelve texts make two batches of eight and four, sorted by length",
        "ok",
        "the same text alone and inside a padded batch agree",
        "last",
    ]);
    let batch = m.embed(&texts).await.unwrap();
    assert_eq!(batch.len(), texts.len());
    let mut worst = 0.0f32;
    for (text, in_batch) in texts.iter().zip(&batch) {
        let alone = m.embed_one(text).await.unwrap();
        let diff = alone.iter().zip(in_batch).map(|(a, b)| (a - b).abs()).fold(0.0, f32::max);
        worst = worst.max(diff);
    }
    eprintln!("largest difference alone vs in batch: {worst:e}");
    assert!(worst < 1e-5, "{worst}");
}

#[tokio::test]
async fn long_texts_are_truncated_at_256_tokens() {
    let m = model();
    let head = "memory ".repeat(300);
    let a = format!("{head} the ending is about cats");
    let b = format!("{head} a completely different ending about the deploy pipeline");
    let v = m.embed(&[a, b]).await.unwrap();
    assert!((norm(&v[0]) - 1.0).abs() < 1e-5);
    let diff = v[0].iter().zip(&v[1]).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(diff < 1e-6, "texts differing only after 256 tokens embed alike, diff {diff}");
}

#[tokio::test]
async fn empty_inputs() {
    let m = model();
    assert!(m.embed(&[]).await.unwrap().is_empty());
    assert!(matches!(m.embed(&strings(&["fine", " "])).await, Err(EmbedError::InvalidInput(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_agree() {
    let m = model();
    let texts = strings(&["concurrent one", "concurrent two is longer than one", "three"]);
    let expected = m.embed(&texts).await.unwrap();
    let tasks: Vec<_> = (0..4)
        .map(|_| {
            let (m, texts) = (m.clone(), texts.clone());
            tokio::spawn(async move { m.embed(&texts).await.unwrap() })
        })
        .collect();
    for t in tasks {
        let got = t.await.unwrap();
        for (a, b) in got.iter().zip(&expected) {
            assert!(a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-6));
        }
    }
}

#[test]
fn from_settings_loads_the_local_model_and_checks_its_dimensions() {
    model();
    let settings = EmbeddingsSettings {
        provider: EmbeddingsProvider::Local,
        model_dir: Some(model_dir()),
        ..EmbeddingsSettings::default()
    };
    let e = loci_embed::from_settings(&settings, std::path::Path::new("/nonexistent")).unwrap().unwrap();
    assert_eq!((e.model(), e.dimensions()), ("all-MiniLM-L6-v2", 384));

    let wrong = EmbeddingsSettings { dimensions: 768, ..settings };
    assert!(matches!(
        loci_embed::from_settings(&wrong, std::path::Path::new("/nonexistent")),
        Err(EmbedError::DimensionMismatch { expected: 768, got: 384 })
    ));
}

#[test]
fn a_directory_without_the_weights_is_model_missing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("config.json"), "{}").unwrap();
    match LocalEmbedder::load(dir.path(), 8) {
        Err(EmbedError::ModelMissing { dir: d, missing }) => {
            assert_eq!(d, dir.path());
            assert_eq!(missing, "model.safetensors, tokenizer.json");
        }
        other => panic!("expected ModelMissing, got {other:?}"),
    }
}
