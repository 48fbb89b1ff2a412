//! Rate limiting (40-operations.md "Rate limiting"): a GCRA budget per
//! caller (org and user from the validated token, never a client header),
//! route group and org plan, kept in a [`RateStore`] shared by every instance
//! (Valkey) or in process (embedded profile). REST routes and MCP tool calls
//! go through the same [`RateLimiter`].
//!
//! GCRA (the generic cell rate algorithm) keeps one number per key, the
//! theoretical arrival time (TAT): a plan of `limit` requests per `window`
//! spends `interval = window / limit` per request and allows the TAT to run
//! at most `window` ahead of now, so a fresh caller may spend the whole
//! window's budget at once, then one request per interval.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use loci_core::ErrorCode;
use loci_settings::{RateLimitFallback, RateLimitSettings, RatePlan};
use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};

use crate::Principal;

/// What a request spends budget on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RouteGroup {
    Read,
    Write,
    Search,
}

impl RouteGroup {
    pub const ALL: [RouteGroup; 3] = [RouteGroup::Read, RouteGroup::Write, RouteGroup::Search];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Search => "search",
        }
    }

    /// The group of a REST request: searches and graph queries (they cost an
    /// embedding or a traversal, whatever the method) are `search`; other
    /// reads `read`; everything else `write`.
    pub fn of_request(method: &str, path: &str) -> Self {
        let path = path.trim_end_matches('/');
        if path.starts_with("/api/v1/search") || path.starts_with("/api/v1/graph") || path.ends_with("/search") {
            Self::Search
        } else if matches!(method, "GET" | "HEAD" | "OPTIONS") {
            Self::Read
        } else {
            Self::Write
        }
    }

    fn is_read(self) -> bool {
        !matches!(self, Self::Write)
    }
}

/// A budget: `limit` requests per `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub limit: u64,
    pub window: Duration,
}

impl Quota {
    /// Microseconds one request costs (at least 1).
    pub fn interval_micros(self) -> u64 {
        (duration_micros(self.window) / self.limit.max(1)).max(1)
    }

    /// How far ahead of now the TAT may run: the whole window's budget.
    pub fn tolerance_micros(self) -> u64 {
        self.interval_micros().saturating_mul(self.limit.max(1))
    }
}

fn duration_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The store's answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests still allowed right now after this one.
    pub remaining: u64,
    /// Until the whole budget is back.
    pub reset: Duration,
    /// Refused: when the next request would be allowed.
    pub retry_after: Duration,
}

/// One GCRA step: the verdict and the TAT to store (none when refused).
/// Times in microseconds on any clock shared by the callers of one key.
pub fn gcra_step(stored_tat: Option<u64>, now: u64, quota: Quota) -> (Verdict, Option<u64>) {
    let interval = quota.interval_micros();
    let tolerance = quota.tolerance_micros();
    let tat = stored_tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(interval);
    let allow_at = new_tat.saturating_sub(tolerance);
    if now < allow_at {
        let verdict = Verdict {
            allowed: false,
            remaining: 0,
            reset: Duration::from_micros(tat - now),
            retry_after: Duration::from_micros(allow_at - now),
        };
        return (verdict, None);
    }
    let verdict = Verdict {
        allowed: true,
        remaining: (now + tolerance - new_tat) / interval,
        reset: Duration::from_micros(new_tat - now),
        retry_after: Duration::ZERO,
    };
    (verdict, Some(new_tat))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateStoreError {
    #[error("rate limit store unavailable: {0}")]
    Unavailable(String),
}

/// Where budgets live. Implementations make one step atomic for every
/// instance that shares the store.
#[async_trait]
pub trait RateStore: Send + Sync + std::fmt::Debug {
    /// Spends one request of `key`'s budget if `quota` allows it.
    async fn spend(&self, key: &str, quota: Quota) -> Result<Verdict, RateStoreError>;
}

/// Budgets in this process (the embedded profile): bounded, expired entries
/// pruned as it grows.
#[derive(Debug)]
pub struct InProcessRateStore {
    started: Instant,
    tats: Mutex<HashMap<String, u64>>,
    capacity: usize,
}

impl InProcessRateStore {
    pub const DEFAULT_CAPACITY: usize = 100_000;

    pub fn new(capacity: usize) -> Self {
        Self { started: Instant::now(), tats: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }
}

impl Default for InProcessRateStore {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl RateStore for InProcessRateStore {
    async fn spend(&self, key: &str, quota: Quota) -> Result<Verdict, RateStoreError> {
        let now = duration_micros(self.started.elapsed());
        let mut tats = self.tats.lock();
        if tats.len() >= self.capacity && !tats.contains_key(key) {
            // A TAT in the past is a full budget: forgetting it changes nothing.
            tats.retain(|_, tat| *tat > now);
            if tats.len() >= self.capacity {
                return Err(RateStoreError::Unavailable("in-process rate limit table is full".into()));
            }
        }
        let (verdict, new_tat) = gcra_step(tats.get(key).copied(), now, quota);
        if let Some(tat) = new_tat {
            tats.insert(key.to_owned(), tat);
        }
        Ok(verdict)
    }
}

/// Plans and their assignment to orgs, changeable at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePolicy {
    pub enabled: bool,
    pub default_plan: String,
    pub plans: BTreeMap<String, RatePlan>,
    pub org_plans: BTreeMap<String, String>,
    pub fallback: RateLimitFallback,
}

impl RatePolicy {
    pub fn from_settings(s: &RateLimitSettings) -> Self {
        Self {
            enabled: s.enabled,
            default_plan: s.default_plan.clone(),
            plans: s.plans.clone(),
            org_plans: s.org_plans.clone(),
            fallback: s.when_store_unavailable,
        }
    }

    /// The plan (name and budget) of an org; `None` when the names do not
    /// resolve, which settings validation prevents.
    fn plan_of(&self, org: &str) -> Option<(&str, &RatePlan)> {
        let name = self.org_plans.get(org).unwrap_or(&self.default_plan);
        self.plans.get(name).map(|plan| (name.as_str(), plan))
    }
}

/// The outcome of a check that let the request through, for the
/// `RateLimit` / `RateLimit-Policy` response headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateStatus {
    pub group: RouteGroup,
    /// The org's plan.
    pub plan: String,
    pub quota: Quota,
    pub remaining: u64,
    pub reset: Duration,
}

/// Why a request may not go through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RateLimitError {
    #[error("rate limit exceeded for {group} requests ({limit} per {window_secs} s); retry in {retry_after_secs} s", group = .status.group.as_str(), limit = .status.quota.limit, window_secs = .status.quota.window.as_secs(), retry_after_secs = .retry_after_secs)]
    Limited { status: RateStatus, retry_after_secs: u64 },
    /// The store is unreachable and the fallback refuses this group.
    #[error("the rate limiter's store is unavailable; retry later")]
    StoreUnavailable,
}

impl RateLimitError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Limited { .. } => ErrorCode::RateLimited,
            Self::StoreUnavailable => ErrorCode::DependencyUnavailable,
        }
    }

    /// Seconds a client should wait (the `Retry-After` header).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Self::Limited { retry_after_secs, .. } => *retry_after_secs,
            Self::StoreUnavailable => 1,
        }
    }
}

/// Checks requests against the policy; shared by REST and MCP.
#[derive(Debug)]
pub struct RateLimiter {
    store: Arc<dyn RateStore>,
    policy: RwLock<Arc<RatePolicy>>,
}

impl RateLimiter {
    pub fn new(store: Arc<dyn RateStore>, policy: RatePolicy) -> Self {
        Self { store, policy: RwLock::new(Arc::new(policy)) }
    }

    pub fn policy(&self) -> Arc<RatePolicy> {
        self.policy.read().clone()
    }

    /// Replaces the policy (runtime configuration); budgets already spent stay.
    pub fn set_policy(&self, policy: RatePolicy) {
        *self.policy.write() = Arc::new(policy);
    }

    /// Spends one request of the caller's budget for `group`. `Ok(None)`:
    /// not limited (disabled, or the store is down and the fallback lets
    /// this group through).
    pub async fn check(&self, principal: &Principal, group: RouteGroup) -> Result<Option<RateStatus>, RateLimitError> {
        let policy = self.policy();
        if !policy.enabled {
            return Ok(None);
        }
        let org = principal.org_id.as_str();
        let Some((plan, budget)) = policy.plan_of(org) else {
            tracing::error!(org = %loci_core::mask(org), "rate limit plan does not resolve; not limited");
            return Ok(None);
        };
        let limit = match group {
            RouteGroup::Read => budget.read,
            RouteGroup::Write => budget.write,
            RouteGroup::Search => budget.search,
        };
        let quota = Quota { limit, window: Duration::from_secs(budget.window_secs) };
        let key = Self::key(org, &principal.subject, group);
        let verdict = match self.store.spend(&key, quota).await {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::warn!(error = %e, group = group.as_str(), "rate limit store unavailable");
                let through = match policy.fallback {
                    RateLimitFallback::AllowAll => true,
                    RateLimitFallback::AllowReads => group.is_read(),
                    RateLimitFallback::RefuseAll => false,
                };
                return if through { Ok(None) } else { Err(RateLimitError::StoreUnavailable) };
            }
        };
        let status =
            RateStatus { group, plan: plan.to_owned(), quota, remaining: verdict.remaining, reset: verdict.reset };
        if verdict.allowed {
            Ok(Some(status))
        } else {
            let retry_after_secs = verdict.retry_after.as_secs() + u64::from(verdict.retry_after.subsec_nanos() > 0);
            Err(RateLimitError::Limited { status, retry_after_secs: retry_after_secs.max(1) })
        }
    }

    /// `ratelimit:<pseudonym>:<group>`: the caller is named by a hash of
    /// org and subject, so keys stay short and hold no identifier.
    pub fn key(org: &str, subject: &str, group: RouteGroup) -> String {
        let mut hasher = Sha256::new();
        hasher.update(org.as_bytes());
        hasher.update([0]);
        hasher.update(subject.as_bytes());
        let digest = hasher.finalize();
        let mut pseudonym = String::with_capacity(32);
        for byte in &digest[..16] {
            pseudonym.push_str(&format!("{byte:02x}"));
        }
        format!("ratelimit:{pseudonym}:{}", group.as_str())
    }
}

/// The IETF draft headers (draft-ietf-httpapi-ratelimit-headers):
/// `RateLimit-Policy: "<plan>-<group>";q=<limit>;w=<window s>` and
/// `RateLimit: "<plan>-<group>";r=<remaining>;t=<s until full>`. Names in
/// lower case, as HTTP/2 writes them (and `HeaderName::from_static` wants).
pub fn rate_limit_headers(status: &RateStatus) -> [(&'static str, String); 2] {
    let name = format!("{}-{}", status.plan, status.group.as_str());
    let reset = status.reset.as_secs() + u64::from(status.reset.subsec_nanos() > 0);
    [
        ("ratelimit-policy", format!("\"{name}\";q={};w={}", status.quota.limit, status.quota.window.as_secs())),
        ("ratelimit", format!("\"{name}\";r={};t={reset}", status.remaining)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000;

    fn quota(limit: u64, secs: u64) -> Quota {
        Quota { limit, window: Duration::from_secs(secs) }
    }

    /// Runs `n` requests at `now` from `tat`, returning how many passed and the last TAT.
    fn burst(mut tat: Option<u64>, now: u64, q: Quota, n: u64) -> (u64, Option<u64>, Verdict) {
        let mut passed = 0;
        let mut last = None;
        for _ in 0..n {
            let (verdict, new_tat) = gcra_step(tat, now, q);
            if let Some(t) = new_tat {
                tat = Some(t);
                passed += 1;
            }
            last = Some(verdict);
        }
        (
            passed,
            tat,
            last.unwrap_or(Verdict {
                allowed: false,
                remaining: 0,
                reset: Duration::ZERO,
                retry_after: Duration::ZERO,
            }),
        )
    }

    #[test]
    fn a_fresh_caller_gets_exactly_the_window_budget_then_one_per_interval() {
        let q = quota(10, 60);
        let now = 1_000 * SEC;
        let (passed, tat, last) = burst(None, now, q, 15);
        assert_eq!(passed, 10);
        assert!(!last.allowed);
        // One request costs 6 s: the next is allowed 6 s later, not before.
        assert_eq!(last.retry_after, Duration::from_secs(6));
        let (early, _) = gcra_step(tat, now + 6 * SEC - 1, q);
        assert!(!early.allowed);
        let (on_time, _) = gcra_step(tat, now + 6 * SEC, q);
        assert!(on_time.allowed);
        assert_eq!(on_time.remaining, 0);
    }

    #[test]
    fn remaining_counts_down_and_reset_is_the_time_to_a_full_budget() {
        let q = quota(4, 40);
        let now = 50 * SEC;
        let (first, tat) = gcra_step(None, now, q);
        assert_eq!((first.allowed, first.remaining), (true, 3));
        assert_eq!(first.reset, Duration::from_secs(10));
        let (second, _) = gcra_step(tat, now, q);
        assert_eq!((second.remaining, second.reset), (2, Duration::from_secs(20)));
        // After a whole window idle the budget is full again.
        let (later, _) = gcra_step(tat, now + 40 * SEC, q);
        assert_eq!(later.remaining, 3);
    }

    #[test]
    fn request_groups_follow_method_and_path() {
        assert_eq!(RouteGroup::of_request("GET", "/api/v1/memories"), RouteGroup::Read);
        assert_eq!(RouteGroup::of_request("POST", "/api/v1/memories"), RouteGroup::Write);
        assert_eq!(RouteGroup::of_request("DELETE", "/api/v1/memories/x"), RouteGroup::Write);
        assert_eq!(RouteGroup::of_request("POST", "/api/v1/search"), RouteGroup::Search);
        assert_eq!(RouteGroup::of_request("GET", "/api/v1/graph/entities"), RouteGroup::Search);
        assert_eq!(RouteGroup::of_request("POST", "/api/v1/memories/search/"), RouteGroup::Search);
    }

    #[test]
    fn keys_name_no_identifier_and_differ_per_caller_and_group() {
        let a = RateLimiter::key("org-a", "alice", RouteGroup::Read);
        assert!(a.starts_with("ratelimit:") && a.ends_with(":read"));
        assert!(!a.contains("alice") && !a.contains("org-a"));
        assert_ne!(a, RateLimiter::key("org-b", "alice", RouteGroup::Read));
        assert_ne!(a, RateLimiter::key("org-a", "alice", RouteGroup::Write));
        // The separator keeps ("ab", "c") and ("a", "bc") apart.
        assert_ne!(RateLimiter::key("ab", "c", RouteGroup::Read), RateLimiter::key("a", "bc", RouteGroup::Read));
    }

    #[test]
    fn headers_name_the_plan_and_group() {
        let status = RateStatus {
            group: RouteGroup::Search,
            plan: "free".into(),
            quota: quota(1000, 3600),
            remaining: 998,
            reset: Duration::from_millis(7_200),
        };
        let [policy, current] = rate_limit_headers(&status);
        assert_eq!(policy, ("ratelimit-policy", "\"free-search\";q=1000;w=3600".to_owned()));
        assert_eq!(current, ("ratelimit", "\"free-search\";r=998;t=8".to_owned()));
    }

    #[derive(Debug)]
    struct DownStore;

    #[async_trait]
    impl RateStore for DownStore {
        async fn spend(&self, _: &str, _: Quota) -> Result<Verdict, RateStoreError> {
            Err(RateStoreError::Unavailable("connection refused".into()))
        }
    }

    fn principal(org: &str, subject: &str) -> Principal {
        Principal {
            org_id: loci_core::OrgId::parse(org).expect("org"),
            subject: subject.into(),
            scopes: Default::default(),
            roles: Vec::new(),
            grants: Vec::new(),
            client_id: None,
            token_id: "t".into(),
            dpop_jkt: None,
            expires_at: chrono::Utc::now(),
        }
    }

    fn policy(fallback: RateLimitFallback) -> RatePolicy {
        RatePolicy {
            enabled: true,
            default_plan: "tiny".into(),
            plans: BTreeMap::from([("tiny".to_owned(), RatePlan { window_secs: 60, read: 2, write: 1, search: 3 })]),
            org_plans: BTreeMap::new(),
            fallback,
        }
    }

    #[tokio::test]
    async fn an_unreachable_store_follows_the_fallback() {
        let alice = principal("org-a", "alice");
        let reads = RateLimiter::new(Arc::new(DownStore), policy(RateLimitFallback::AllowReads));
        assert_eq!(reads.check(&alice, RouteGroup::Read).await, Ok(None));
        assert_eq!(reads.check(&alice, RouteGroup::Search).await, Ok(None));
        assert_eq!(reads.check(&alice, RouteGroup::Write).await, Err(RateLimitError::StoreUnavailable));
        let all = RateLimiter::new(Arc::new(DownStore), policy(RateLimitFallback::AllowAll));
        assert_eq!(all.check(&alice, RouteGroup::Write).await, Ok(None));
        let none = RateLimiter::new(Arc::new(DownStore), policy(RateLimitFallback::RefuseAll));
        let refused = none.check(&alice, RouteGroup::Read).await;
        assert_eq!(refused.map_err(|e| e.code()), Err(ErrorCode::DependencyUnavailable));
    }

    #[tokio::test]
    async fn budgets_are_per_caller_and_group_in_process() {
        let limiter = RateLimiter::new(Arc::new(InProcessRateStore::default()), policy(RateLimitFallback::AllowReads));
        let alice = principal("org-a", "alice");
        let bob = principal("org-b", "alice");
        assert!(limiter.check(&alice, RouteGroup::Write).await.is_ok());
        let limited = limiter.check(&alice, RouteGroup::Write).await.expect_err("second write is over budget");
        assert_eq!(limited.code(), ErrorCode::RateLimited);
        assert_eq!(limited.retry_after_secs(), 60);
        // Another org's caller and another group keep their budgets.
        assert!(limiter.check(&bob, RouteGroup::Write).await.is_ok());
        let read = limiter.check(&alice, RouteGroup::Read).await.expect("read").expect("limited");
        assert_eq!((read.remaining, read.plan.as_str()), (1, "tiny"));
        // Disabled at run time: nothing is limited.
        limiter.set_policy(RatePolicy { enabled: false, ..policy(RateLimitFallback::AllowReads) });
        assert_eq!(limiter.check(&alice, RouteGroup::Write).await, Ok(None));
    }
}
