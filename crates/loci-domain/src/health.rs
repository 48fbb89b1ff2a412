//! Dependency health: every configured dependency checked concurrently, each
//! bounded by its own timeout, so one hanging dependency cannot stall the report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::future::join_all;
use loci_stores::DependencyCheck;
use serde::Serialize;

/// Outcome of checking one dependency.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DependencyStatus {
    #[serde(skip)]
    pub name: &'static str,
    #[serde(skip)]
    pub required: bool,
    pub status: DependencyState,
    pub latency_ms: f64,
    /// A coarse reason (`timed out`, `unreachable`); details go to the log only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DependencyState {
    Healthy,
    Unavailable,
}

/// The result of one health round.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthReport {
    pub checked_at: DateTime<Utc>,
    pub dependencies: Vec<DependencyStatus>,
}

impl HealthReport {
    pub fn healthy_count(&self) -> usize {
        self.dependencies.iter().filter(|d| d.status == DependencyState::Healthy).count()
    }

    pub fn all_healthy(&self) -> bool {
        self.healthy_count() == self.dependencies.len()
    }
}

/// Runs the dependency checks.
#[derive(Debug, Clone)]
pub struct HealthService {
    checks: Vec<Arc<dyn DependencyCheck>>,
    timeout: Duration,
}

impl HealthService {
    /// Spec default: 2 s per check.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    pub fn new(checks: Vec<Arc<dyn DependencyCheck>>, timeout: Duration) -> Self {
        Self { checks, timeout }
    }

    /// Checks only the dependencies readiness depends on.
    pub async fn readiness(&self) -> HealthReport {
        self.run(|c| c.required()).await
    }

    /// Checks every configured dependency.
    pub async fn all(&self) -> HealthReport {
        self.run(|_| true).await
    }

    async fn run(&self, include: impl Fn(&dyn DependencyCheck) -> bool) -> HealthReport {
        let timeout = self.timeout;
        let checks = self.checks.iter().filter(|c| include(c.as_ref())).map(|check| async move {
            let started = Instant::now();
            let outcome = tokio::time::timeout(timeout, check.check()).await;
            let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 100.0).round() / 100.0;
            let error = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    tracing::warn!(dependency = check.name(), error = %e, "dependency check failed");
                    Some("unreachable".to_owned())
                }
                Err(_) => {
                    tracing::warn!(
                        dependency = check.name(),
                        timeout_ms = timeout.as_millis() as u64,
                        "dependency check timed out"
                    );
                    Some(format!("timed out after {} ms", timeout.as_millis()))
                }
            };
            DependencyStatus {
                name: check.name(),
                required: check.required(),
                status: if error.is_none() { DependencyState::Healthy } else { DependencyState::Unavailable },
                latency_ms,
                error,
            }
        });
        HealthReport { checked_at: Utc::now(), dependencies: join_all(checks).await }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use async_trait::async_trait;
    use loci_stores::StoreError;

    /// A dependency that answers after a delay, or fails: the health service's
    /// own unit under test is the concurrency and timeout logic, so a
    /// hand-written dependency is the input here (real PostgreSQL and Valkey
    /// checks are exercised by the API tests).
    #[derive(Debug)]
    struct Scripted {
        name: &'static str,
        delay: Duration,
        fail: bool,
    }

    #[async_trait]
    impl DependencyCheck for Scripted {
        fn name(&self) -> &'static str {
            self.name
        }
        fn required(&self) -> bool {
            self.name != "optional"
        }
        async fn check(&self) -> Result<(), StoreError> {
            tokio::time::sleep(self.delay).await;
            if self.fail { Err(StoreError::Valkey("refused".into())) } else { Ok(()) }
        }
    }

    fn service(deps: Vec<Scripted>, timeout: Duration) -> HealthService {
        HealthService::new(deps.into_iter().map(|d| Arc::new(d) as Arc<dyn DependencyCheck>).collect(), timeout)
    }

    #[tokio::test]
    async fn checks_run_concurrently_and_time_out_individually() {
        let s = service(
            vec![
                Scripted { name: "a", delay: Duration::from_millis(300), fail: false },
                Scripted { name: "b", delay: Duration::from_millis(300), fail: false },
                Scripted { name: "slow", delay: Duration::from_secs(30), fail: false },
            ],
            Duration::from_millis(600),
        );
        let started = Instant::now();
        let report = s.all().await;
        assert!(started.elapsed() < Duration::from_secs(5), "concurrent, bounded: {:?}", started.elapsed());
        let states: Vec<_> = report.dependencies.iter().map(|d| (d.name, d.status)).collect();
        assert_eq!(
            states,
            [("a", DependencyState::Healthy), ("b", DependencyState::Healthy), ("slow", DependencyState::Unavailable)]
        );
        assert_eq!(report.dependencies[2].error.as_deref(), Some("timed out after 600 ms"));
        assert_eq!(report.healthy_count(), 2);
    }

    #[tokio::test]
    async fn failures_are_reported_without_internal_detail_and_readiness_skips_optional() {
        let s = service(
            vec![
                Scripted { name: "db", delay: Duration::ZERO, fail: true },
                Scripted { name: "optional", delay: Duration::ZERO, fail: false },
            ],
            HealthService::DEFAULT_TIMEOUT,
        );
        let all = s.all().await;
        assert_eq!(all.dependencies[0].error.as_deref(), Some("unreachable"));
        assert!(!all.all_healthy());
        let ready = s.readiness().await;
        assert_eq!(ready.dependencies.len(), 1);
    }
}
