//! Local model speed: one short query, and 32 memory-sized texts in
//! batches. Needs the model (`scripts/fetch-model.sh`, or
//! `LOCI_TEST_MODEL_DIR`); without it the bench says so and measures nothing.
//!
//! `cargo bench -p loci-embed --bench local_model`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use criterion::Criterion;
use loci_embed::{Embedder, LocalEmbedder, REQUIRED_MODEL_FILES};

fn model_dir() -> PathBuf {
    match std::env::var_os("LOCI_TEST_MODEL_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/loci-models/all-MiniLM-L6-v2"),
    }
}

fn main() {
    let dir = model_dir();
    if !REQUIRED_MODEL_FILES.iter().all(|f| dir.join(f).is_file()) {
        eprintln!("local_model bench: no model at {} (run scripts/fetch-model.sh); nothing measured", dir.display());
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let started = std::time::Instant::now();
    let model = LocalEmbedder::load(&dir, 32).unwrap();
    println!("model load: {:?}", started.elapsed());
    let texts: Vec<String> =
        (0..32).map(|i| format!("Memory number {i}: the deploy key is rotated every ninety days by ops.")).collect();
    let mut c = Criterion::default().configure_from_args().sample_size(20);
    c.bench_function("embed one short query", |b| {
        b.to_async(&rt).iter(|| async { model.embed_one("How do I rotate the deploy key?").await.unwrap() })
    });
    c.bench_function("embed 32 texts (~16 tokens)", |b| {
        b.to_async(&rt).iter(|| async { model.embed(&texts).await.unwrap() })
    });
    c.final_summary();
}
