//! An LRU cache in front of an embedder, for query embeddings.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use lru::LruCache;
use parking_lot::Mutex;

use crate::{EmbedError, Embedder, check_texts};

/// The cache key of a text: its words separated by single spaces (leading and trailing
/// whitespace dropped). Texts with the same key get the same vector.
pub fn cache_key(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Counters of a [`CachedEmbedder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub len: usize,
    pub capacity: usize,
}

/// Wraps an embedder with an LRU cache keyed by [`cache_key`].
///
/// Texts are embedded by their key (whitespace-normalised), so a cached and an uncached call give
/// the same vector. Texts missing from the cache are embedded in one call to the inner embedder
/// (duplicates once). Errors are not cached. Meant for search queries, which repeat; writes are
/// better sent to the inner embedder directly, so they do not evict the queries.
#[derive(Debug)]
pub struct CachedEmbedder<E> {
    inner: E,
    cache: Mutex<LruCache<String, Arc<[f32]>>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl<E: Embedder> CachedEmbedder<E> {
    /// A cache of at most `capacity` vectors (at least 1).
    pub fn new(inner: E, capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self { inner, cache: Mutex::new(LruCache::new(capacity)), hits: AtomicU64::new(0), misses: AtomicU64::new(0) }
    }

    pub fn inner(&self) -> &E {
        &self.inner
    }

    pub fn stats(&self) -> CacheStats {
        let cache = self.cache.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            len: cache.len(),
            capacity: cache.cap().get(),
        }
    }

    /// Empties the cache (the counters stay).
    pub fn clear(&self) {
        self.cache.lock().clear();
    }
}

#[async_trait]
impl<E: Embedder> Embedder for CachedEmbedder<E> {
    fn model(&self) -> &str {
        self.inner.model()
    }

    fn dimensions(&self) -> usize {
        self.inner.dimensions()
    }

    fn count_tokens(&self, text: &str) -> Option<usize> {
        self.inner.count_tokens(text)
    }

    async fn ping(&self) -> Result<(), EmbedError> {
        self.inner.ping().await
    }

    /// Cached apart from [`Embedder::embed`]'s vectors: a model with a
    /// query prefix embeds the same text differently as a query.
    async fn embed_query(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        check_texts(std::slice::from_ref(&text.to_owned()))?;
        let key = format!("query\u{0}{}", cache_key(text));
        if let Some(v) = self.cache.lock().get(&key) {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v.to_vec());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let vector = self.inner.embed_query(text).await?;
        self.cache.lock().put(key, Arc::from(vector.clone()));
        Ok(vector)
    }

    async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
        check_texts(texts)?;
        let keys: Vec<String> = texts.iter().map(|t| cache_key(t)).collect();
        let mut out: Vec<Option<Vec<f32>>> = vec![None; texts.len()];
        // Keys to embed, each once, with the positions waiting for it.
        let mut missing: Vec<String> = Vec::new();
        let mut waiting: HashMap<&str, Vec<usize>> = HashMap::new();
        {
            let mut cache = self.cache.lock();
            for (i, key) in keys.iter().enumerate() {
                if let Some(v) = cache.get(key) {
                    out[i] = Some(v.to_vec());
                } else {
                    waiting
                        .entry(key.as_str())
                        .or_insert_with(|| {
                            missing.push(key.clone());
                            Vec::new()
                        })
                        .push(i);
                }
            }
        }
        let hits = texts.len() - waiting.values().map(Vec::len).sum::<usize>();
        self.hits.fetch_add(hits as u64, Ordering::Relaxed);
        self.misses.fetch_add((texts.len() - hits) as u64, Ordering::Relaxed);

        if !missing.is_empty() {
            let vectors = self.inner.embed(&missing).await?;
            if vectors.len() != missing.len() {
                return Err(EmbedError::BadResponse(format!(
                    "{} embeddings for {} inputs",
                    vectors.len(),
                    missing.len()
                )));
            }
            let mut cache = self.cache.lock();
            for (key, vector) in missing.iter().zip(vectors) {
                for &i in waiting.get(key.as_str()).map(Vec::as_slice).unwrap_or_default() {
                    out[i] = Some(vector.clone());
                }
                cache.put(key.clone(), Arc::from(vector));
            }
        }
        Ok(out.into_iter().flatten().collect())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    #[test]
    fn keys_collapse_whitespace_only() {
        assert_eq!(cache_key("  How do I\trotate\n the  key? "), "How do I rotate the key?");
        assert_ne!(cache_key("Key"), cache_key("key"));
    }

    /// Vectors `[len, 1]` (not normalised: the test only checks the plumbing), counting texts.
    #[derive(Debug, Default)]
    struct Counting {
        texts: AtomicUsize,
        calls: AtomicUsize,
    }

    #[async_trait]
    impl Embedder for Counting {
        fn model(&self) -> &str {
            "counting"
        }
        fn dimensions(&self) -> usize {
            2
        }
        async fn embed(&self, texts: &[String]) -> Result<Vec<Vec<f32>>, EmbedError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.texts.fetch_add(texts.len(), Ordering::SeqCst);
            Ok(texts.iter().map(|t| vec![t.len() as f32, 1.0]).collect())
        }
    }

    #[tokio::test]
    async fn repeats_and_whitespace_variants_hit_the_cache() {
        let c = CachedEmbedder::new(Counting::default(), 10);
        let first = c.embed(&["a  b".into(), "c".into(), "a b".into()]).await.unwrap();
        assert_eq!(first, vec![vec![3.0, 1.0], vec![1.0, 1.0], vec![3.0, 1.0]]);
        assert_eq!(c.inner().texts.load(Ordering::SeqCst), 2, "duplicates embedded once");

        let again = c.embed_one(" a b ").await.unwrap();
        assert_eq!(again, vec![3.0, 1.0]);
        assert_eq!(c.inner().calls.load(Ordering::SeqCst), 1, "served from the cache");
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.len, s.capacity), (1, 3, 2, 10));
    }

    #[tokio::test]
    async fn least_recently_used_is_evicted() {
        let c = CachedEmbedder::new(Counting::default(), 2);
        c.embed_one("one").await.unwrap();
        c.embed_one("two").await.unwrap();
        c.embed_one("one").await.unwrap(); // "two" is now the oldest
        c.embed_one("three").await.unwrap();
        assert_eq!(c.inner().texts.load(Ordering::SeqCst), 3);
        c.embed_one("one").await.unwrap();
        assert_eq!(c.inner().texts.load(Ordering::SeqCst), 3, "one stayed");
        c.embed_one("two").await.unwrap();
        assert_eq!(c.inner().texts.load(Ordering::SeqCst), 4, "two was evicted");
        assert!(c.embed_one("  ").await.is_err());
    }

    #[tokio::test]
    async fn wraps_a_shared_dyn_embedder() {
        let shared: Arc<dyn Embedder> = Arc::new(Counting::default());
        let c = CachedEmbedder::new(Arc::clone(&shared), 4);
        assert_eq!((c.model(), c.dimensions()), ("counting", 2));
        assert_eq!(c.embed_one("q").await.unwrap(), c.embed_one("q").await.unwrap());
        assert_eq!(c.stats().hits, 1);
    }
}
