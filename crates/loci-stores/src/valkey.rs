//! Valkey / Redis connection (fred).

use std::time::Duration;

use std::sync::Arc;

use fred::prelude::*;
use loci_core::breaker::{BreakerConfig, CircuitBreaker, Refusal};
use loci_settings::{Secret, ValkeySettings};

use crate::StoreError;

/// Every key family the stores write, after the configured prefix (the PII
/// inventory classifies each; `{x}` is one segment).
pub const VALKEY_KEY_FAMILIES: &[&str] = &[
    "episodic:{org}:{user}:{session}:{memory}",
    "episodic:session:{org}:{user}:{session}",
    "mcp:session:{id}",
    "dpop:{jkt}:{jti}",
    "ratelimit:{caller}:{group}",
];

/// A pooled Valkey client with the configured key prefix.
#[derive(Clone)]
pub struct Valkey {
    pool: Pool,
    prefix: String,
    timeout: Duration,
    /// Opened by consecutive failed commands: then commands fail at once.
    breaker: Arc<CircuitBreaker>,
}

/// Why a Valkey command did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValkeyFailure {
    #[error("valkey {0} timed out")]
    TimedOut(String),
    #[error("valkey {what}: {details}")]
    Failed { what: String, details: String },
    #[error("valkey is unavailable ({0})")]
    Open(Refusal),
}

impl From<ValkeyFailure> for StoreError {
    fn from(f: ValkeyFailure) -> Self {
        match f {
            ValkeyFailure::TimedOut(what) => Self::Timeout(format!("valkey {what}")),
            ValkeyFailure::Failed { .. } => Self::Valkey(f.to_string()),
            ValkeyFailure::Open(refusal) => Self::CircuitOpen { dependency: "valkey", refusal },
        }
    }
}

impl std::fmt::Debug for Valkey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Valkey").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl Valkey {
    /// A client whose connections are not opened yet.
    fn build(url: &Secret, settings: &ValkeySettings) -> Result<Self, StoreError> {
        let config = Config::from_url(&url.expose().replacen("valkey://", "redis://", 1))
            .map_err(|e| StoreError::Config(format!("invalid valkey.url: {}", e.details())))?;
        let timeout = Duration::from_millis(settings.timeout_ms);
        let pool = Builder::from_config(config)
            .with_connection_config(|c| {
                c.connection_timeout = timeout;
                c.internal_command_timeout = timeout;
            })
            .with_performance_config(|p| {
                p.default_command_timeout = timeout;
            })
            .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
            .build_pool(settings.pool_size)
            .map_err(|e| StoreError::Valkey(e.details().to_owned()))?;
        let breaker = Arc::new(CircuitBreaker::new(BreakerConfig::default()));
        Ok(Self { pool, prefix: settings.key_prefix.clone(), timeout, breaker })
    }

    /// Replaces the default circuit-breaker policy (`[resilience]`).
    pub fn with_breaker(mut self, config: BreakerConfig) -> Self {
        self.breaker = Arc::new(CircuitBreaker::new(config));
        self
    }

    /// Valkey's circuit breaker (its state is a metric).
    pub fn breaker(&self) -> Arc<CircuitBreaker> {
        Arc::clone(&self.breaker)
    }

    /// Runs one command bounded by the timeout and guarded by the breaker:
    /// any failure counts, since the stores only send commands that succeed
    /// against a healthy server.
    pub(crate) async fn run<T>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = Result<T, Error>>,
        timeout: Duration,
    ) -> Result<T, ValkeyFailure> {
        let bounded = async {
            match tokio::time::timeout(timeout, command).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(ValkeyFailure::Failed { what: what.to_owned(), details: e.details().to_owned() }),
                Err(_) => Err(ValkeyFailure::TimedOut(what.to_owned())),
            }
        };
        match self.breaker.call(bounded, |_| true).await {
            Ok(outcome) => outcome,
            Err(refusal) => Err(ValkeyFailure::Open(refusal)),
        }
    }

    /// Connects and waits (bounded by the timeout) for the first connection.
    pub async fn connect(url: &Secret, settings: &ValkeySettings) -> Result<Self, StoreError> {
        let valkey = Self::build(url, settings)?;
        valkey.pool.init().await.map_err(|e| StoreError::Valkey(e.details().to_owned()))?;
        Ok(valkey)
    }

    /// The configured key prefix (`<prefix>:...` for every key Loci writes).
    pub fn key(&self, suffix: &str) -> String {
        format!("{}:{suffix}", self.prefix)
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The bound on every command.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Every key under this prefix matching `pattern` (a glob after the
    /// prefix, e.g. `episodic:*`), without the prefix. SCAN, so the server is
    /// never blocked; keys written meanwhile may or may not be seen.
    pub async fn scan_keys(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        use futures::TryStreamExt;
        let full = self.key(pattern);
        let strip = format!("{}:", self.prefix);
        let keys: Vec<fred::types::Key> = self
            .pool
            .next()
            .scan_buffered(full, Some(500), None)
            .try_collect()
            .await
            .map_err(|e| StoreError::Valkey(e.details().to_owned()))?;
        Ok(keys.iter().filter_map(|k| k.as_str()).map(|k| k.strip_prefix(&strip).unwrap_or(k).to_owned()).collect())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let reply: Result<String, Error> = match tokio::time::timeout(self.timeout, self.pool.next().ping(None)).await {
            Ok(r) => r,
            Err(_) => return Err(StoreError::Timeout("valkey ping".into())),
        };
        reply.map(|_| ()).map_err(|e| StoreError::Valkey(e.details().to_owned()))
    }

    /// Connects without waiting for the server: commands fail (after the
    /// timeout) while it is unreachable, and succeed once it is back. For
    /// tools and tests that must not block on start-up; the server itself
    /// uses [`Valkey::connect`] and refuses to start without Valkey.
    pub fn connect_lazy(url: &Secret, settings: &ValkeySettings) -> Result<Self, StoreError> {
        let valkey = Self::build(url, settings)?;
        drop(valkey.pool.connect());
        Ok(valkey)
    }

    pub async fn quit(&self) {
        let _ = self.pool.quit().await;
    }
}

/// The DPoP replay cache on Valkey: `SET key 1 NX PX ttl` is atomic across
/// every API and MCP instance sharing the server. Any error is reported, and
/// the authenticator then rejects the request (fail closed).
#[derive(Debug, Clone)]
pub struct ValkeyReplayCache {
    valkey: Valkey,
}

impl ValkeyReplayCache {
    pub fn new(valkey: Valkey) -> Self {
        Self { valkey }
    }
}

#[async_trait::async_trait]
impl loci_security::ReplayCache for ValkeyReplayCache {
    async fn first_use(&self, key: &str, ttl: Duration) -> Result<bool, loci_security::ReplayCacheError> {
        let key = self.valkey.key(key);
        let millis = i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1);
        let set = self.valkey.pool.set::<Option<String>, _, _>(
            key,
            "1",
            Some(Expiration::PX(millis)),
            Some(SetOptions::NX),
            false,
        );
        let reply = self.valkey.run("replay check", set, self.valkey.timeout).await;
        reply.map(|r| r.is_some()).map_err(|e| loci_security::ReplayCacheError::Unavailable(e.to_string()))
    }
}

/// One GCRA step (see `loci_security::rate_limit`) done atomically in
/// Valkey, on the server's clock so every instance agrees on "now".
/// KEYS[1] the budget; ARGV interval and tolerance in microseconds. Returns
/// {allowed, remaining, reset us, retry-after us}.
const GCRA_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, tat - now, allow_at - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return {1, math.floor((now + tolerance - new_tat) / interval), new_tat - now, 0}
"#;

/// Rate-limit budgets on Valkey, shared by every API and MCP instance.
#[derive(Clone)]
pub struct ValkeyRateStore {
    valkey: Valkey,
    script: fred::types::scripts::Script,
}

impl std::fmt::Debug for ValkeyRateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValkeyRateStore").finish_non_exhaustive()
    }
}

impl ValkeyRateStore {
    pub fn new(valkey: Valkey) -> Self {
        Self { valkey, script: fred::types::scripts::Script::from_lua(GCRA_SCRIPT) }
    }
}

#[async_trait::async_trait]
impl loci_security::RateStore for ValkeyRateStore {
    async fn spend(
        &self,
        key: &str,
        quota: loci_security::rate_limit::Quota,
    ) -> Result<loci_security::rate_limit::Verdict, loci_security::rate_limit::RateStoreError> {
        use loci_security::rate_limit::{RateStoreError, Verdict};
        let key = self.valkey.key(key);
        let interval = i64::try_from(quota.interval_micros()).unwrap_or(i64::MAX);
        let tolerance = i64::try_from(quota.tolerance_micros()).unwrap_or(i64::MAX);
        let client = self.valkey.pool.next();
        let call = self.script.evalsha_with_reload::<Vec<i64>, _, _>(client, vec![key], vec![interval, tolerance]);
        let reply = self
            .valkey
            .run("rate limit", call, self.valkey.timeout)
            .await
            .map_err(|e| RateStoreError::Unavailable(e.to_string()))?;
        let [allowed, remaining, reset, retry_after] = reply[..] else {
            return Err(RateStoreError::Unavailable(format!("unexpected script reply {reply:?}")));
        };
        let micros = |v: i64| Duration::from_micros(u64::try_from(v).unwrap_or(0));
        Ok(Verdict {
            allowed: allowed == 1,
            remaining: u64::try_from(remaining).unwrap_or(0),
            reset: micros(reset),
            retry_after: micros(retry_after),
        })
    }
}

/// MCP session bindings on Valkey, as JSON under `<prefix>:mcp:session:<id>`
/// with a TTL that every use renews, so any instance can serve a session and
/// idle ones vanish on their own.
#[derive(Debug, Clone)]
pub struct ValkeySessionStore {
    valkey: Valkey,
}

impl ValkeySessionStore {
    pub fn new(valkey: Valkey) -> Self {
        Self { valkey }
    }

    fn key(&self, id: &str) -> String {
        self.valkey.key(&format!("mcp:session:{id}"))
    }

    async fn bounded<T>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = Result<T, Error>>,
    ) -> Result<T, loci_security::SessionStoreError> {
        self.valkey
            .run(what, command, self.valkey.timeout)
            .await
            .map_err(|e| loci_security::SessionStoreError::Unavailable(e.to_string()))
    }
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait::async_trait]
impl loci_security::SessionStore for ValkeySessionStore {
    async fn put(
        &self,
        id: &str,
        binding: &loci_security::SessionBinding,
        ttl: Duration,
    ) -> Result<(), loci_security::SessionStoreError> {
        let json = serde_json::to_string(binding)
            .map_err(|e| loci_security::SessionStoreError::Unavailable(format!("encoding: {e}")))?;
        let set = self.valkey.pool.set::<(), _, _>(self.key(id), json, Some(Expiration::PX(millis(ttl))), None, false);
        self.bounded("session put", set).await
    }

    async fn get(
        &self,
        id: &str,
        ttl: Duration,
    ) -> Result<Option<loci_security::SessionBinding>, loci_security::SessionStoreError> {
        let key = self.key(id);
        // Read and renew in one round trip; PEXPIRE on a missing key is a no-op.
        let pipeline = self.valkey.pool.next().pipeline();
        let (value, _renewed): (Option<String>, i64) = self
            .bounded("session get", async {
                let () = pipeline.get(&key).await?;
                let () = pipeline.pexpire(&key, millis(ttl), None).await?;
                pipeline.all().await
            })
            .await?;
        match value {
            None => Ok(None),
            Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| {
                loci_security::SessionStoreError::Unavailable(format!("a stored binding is corrupt: {e}"))
            }),
        }
    }

    async fn delete(&self, id: &str) -> Result<(), loci_security::SessionStoreError> {
        let del = self.valkey.pool.del::<i64, _>(self.key(id));
        self.bounded("session delete", del).await.map(|_| ())
    }

    async fn delete_bound_to(&self, org: &str, subject: &str) -> Result<u64, loci_security::SessionStoreError> {
        let keys = match tokio::time::timeout(self.valkey.timeout * 4, self.valkey.scan_keys("mcp:session:*")).await {
            Ok(keys) => keys.map_err(|e| loci_security::SessionStoreError::Unavailable(e.to_string()))?,
            Err(_) => return Err(loci_security::SessionStoreError::Unavailable("session scan timed out".into())),
        };
        let mut n = 0;
        for key in keys {
            let full = self.valkey.key(&key);
            let value: Option<String> = self.bounded("session get", self.valkey.pool.get(&full)).await?;
            let bound = value
                .and_then(|json| serde_json::from_str::<loci_security::SessionBinding>(&json).ok())
                .is_some_and(|b| b.org == org && b.user == subject);
            if bound {
                let _: i64 = self.bounded("session delete", self.valkey.pool.del(&full)).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}
