//! What the three engine adapters (Qdrant, OpenSearch, Neo4j) share: running
//! their start-up checks from synchronous code, and small conversions.

use std::future::Future;

use loci_core::MemoryId;

use loci_index::IndexError;

/// Runs `make()` to completion on a fresh current-thread runtime in a helper
/// thread, and waits for it.
///
/// `loci_app::indexes::open` is synchronous and is called from inside the servers'
/// current-thread runtimes, where neither `block_on` nor `block_in_place` is
/// allowed; a helper thread with its own runtime is. Whatever the future
/// creates (connections, channels) belongs to that runtime and dies with it,
/// so it is only used for the start-up checks and schema preparation; the
/// adapter then talks to the engine through clients created lazily on the
/// caller's runtime.
pub(crate) fn run_at_start<F, Fut, T>(engine: &'static str, make: F) -> Result<T, IndexError>
where
    F: FnOnce() -> Fut + Send,
    Fut: Future<Output = Result<T, IndexError>>,
    T: Send,
{
    std::thread::scope(|scope| {
        let worker = scope.spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| {
                IndexError::Failed(format!("{engine}: cannot start a runtime for the start-up check: {e}"))
            })?;
            runtime.block_on(make())
        });
        worker.join().unwrap_or_else(|_| Err(IndexError::Failed(format!("{engine}: the start-up check panicked"))))
    })
}

/// A memory id as an engine returned it (a UUID string).
pub(crate) fn parse_memory_id(engine: &'static str, raw: &str) -> Result<MemoryId, IndexError> {
    raw.parse::<uuid::Uuid>()
        .map(MemoryId::from_uuid)
        .map_err(|_| IndexError::Failed(format!("{engine} returned a document id that is not a memory id: {raw:?}")))
}

/// Checks an embedding against the index's dimensions: the right length,
/// finite, not all zero.
pub(crate) fn check_vector(engine: &'static str, v: &[f32], dims: usize) -> Result<(), IndexError> {
    if v.len() != dims {
        return Err(IndexError::Failed(format!("{engine}: vector of {} dimensions, the index has {dims}", v.len())));
    }
    if !v.iter().all(|x| x.is_finite()) || v.iter().all(|x| *x == 0.0) {
        return Err(IndexError::Failed(format!("{engine}: vector is not finite or is zero")));
    }
    Ok(())
}

/// `v` scaled to unit length (callers checked it is not zero).
pub(crate) fn normalised(v: &[f32]) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.iter().map(|x| x / norm).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_checks_run_and_report_errors() {
        assert_eq!(run_at_start("x", || async { Ok(5) }).unwrap(), 5);
        let err = run_at_start::<_, _, ()>("x", || async { Err(IndexError::Failed("down".into())) }).unwrap_err();
        assert!(err.to_string().contains("down"));
    }

    #[tokio::test]
    async fn start_checks_run_from_inside_a_current_thread_runtime() {
        let n = run_at_start("x", || async {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            Ok(1)
        })
        .unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn vectors_are_checked() {
        assert!(check_vector("x", &[1.0, 0.0], 2).is_ok());
        assert!(check_vector("x", &[1.0], 2).is_err());
        assert!(check_vector("x", &[f32::NAN, 1.0], 2).is_err());
        assert!(check_vector("x", &[0.0, 0.0], 2).is_err());
        assert_eq!(normalised(&[3.0, 4.0]), vec![0.6, 0.8]);
    }

    #[test]
    fn ids_are_parsed() {
        let id = MemoryId::new();
        assert_eq!(parse_memory_id("x", &id.to_string()).unwrap(), id);
        assert!(parse_memory_id("x", "42").is_err());
    }
}
