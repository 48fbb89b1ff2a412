//! Prometheus metrics of the API process (route templates, never raw ids).

use prometheus::{Encoder, Gauge, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

#[derive(Debug, Clone)]
pub struct Metrics {
    /// `telemetry.metrics_enabled`: off, nothing is recorded.
    enabled: bool,
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    auth_failures: IntCounterVec,
    outbox_pending: IntGauge,
    outbox_lag: Gauge,
    dependency_health: prometheus::IntGaugeVec,
    memories_created: prometheus::IntCounter,
    search_queries: IntCounterVec,
    search_stages: HistogramVec,
    rate_limited: IntCounterVec,
    breakers: prometheus::GaugeVec,
}

impl Metrics {
    pub fn new(enabled: bool) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let http_requests =
            IntCounterVec::new(Opts::new("http_requests_total", "HTTP requests"), &["method", "route", "status"])?;
        let http_duration = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency")
                .buckets(vec![0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5]),
            &["method", "route"],
        )?;
        let auth_failures =
            IntCounterVec::new(Opts::new("auth_failures_total", "Rejected authentications by code"), &["code"])?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_duration.clone()))?;
        registry.register(Box::new(auth_failures.clone()))?;
        let outbox_pending = IntGauge::new("loci_outbox_pending", "Outbox rows the indexers have not completed")?;
        let outbox_lag = Gauge::new(
            "loci_outbox_lag_seconds",
            "Age of the oldest outbox row not yet indexed (0 when none): index freshness",
        )?;
        registry.register(Box::new(outbox_pending.clone()))?;
        registry.register(Box::new(outbox_lag.clone()))?;
        let dependency_health = prometheus::IntGaugeVec::new(
            Opts::new("dependency_health", "1 when the dependency answered its health check (at scrape time), else 0"),
            &["dependency"],
        )?;
        registry.register(Box::new(dependency_health.clone()))?;
        let memories_created = prometheus::IntCounter::new(
            "memories_created_total",
            "Memories stored through REST and MCP (an inferred add counts each fact it stores)",
        )?;
        let search_queries =
            IntCounterVec::new(Opts::new("search_queries_total", "Searches by the mode they ran in"), &["mode"])?;
        let search_stages = HistogramVec::new(
            HistogramOpts::new("search_stage_duration_seconds", "Time of each stage of a search that ran it")
                .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0]),
            &["stage"],
        )?;
        registry.register(Box::new(memories_created.clone()))?;
        registry.register(Box::new(search_queries.clone()))?;
        registry.register(Box::new(search_stages.clone()))?;
        let rate_limited = IntCounterVec::new(
            Opts::new("rate_limited_total", "Requests and MCP tool calls refused with 429, by route group"),
            &["group"],
        )?;
        registry.register(Box::new(rate_limited.clone()))?;
        let breakers = prometheus::GaugeVec::new(
            Opts::new("circuit_breaker_state", "Circuit breaker per dependency: 0 closed, 0.5 half-open, 1 open"),
            &["service"],
        )?;
        registry.register(Box::new(breakers.clone()))?;
        Ok(Self {
            enabled,
            registry,
            http_requests,
            http_duration,
            auth_failures,
            outbox_pending,
            outbox_lag,
            dependency_health,
            memories_created,
            search_queries,
            search_stages,
            rate_limited,
            breakers,
        })
    }

    pub fn request(&self, method: &str, route: &str, status: u16, seconds: f64) {
        if !self.enabled {
            return;
        }
        self.http_requests.with_label_values(&[method, route, &status.to_string()]).inc();
        self.http_duration.with_label_values(&[method, route]).observe(seconds);
    }

    pub fn auth_failure(&self, code: &str) {
        if !self.enabled {
            return;
        }
        self.auth_failures.with_label_values(&[code]).inc();
    }

    pub fn rate_limited(&self, group: &str) {
        if !self.enabled {
            return;
        }
        self.rate_limited.with_label_values(&[group]).inc();
    }

    /// Records the indexers' backlog (read at scrape time).
    pub fn outbox(&self, pending: u64, oldest_seconds: f64) {
        self.outbox_pending.set(i64::try_from(pending).unwrap_or(i64::MAX));
        self.outbox_lag.set(oldest_seconds);
    }

    /// Memories stored by one call.
    pub fn memories_created(&self, n: u64) {
        if self.enabled && n > 0 {
            self.memories_created.inc_by(n);
        }
    }

    /// One search: its mode and the stages it ran (a stage it skipped
    /// took no time and is not observed).
    pub fn search(&self, response: &loci_domain::search::SearchResponse) {
        if !self.enabled {
            return;
        }
        let meta = &response.meta;
        // The whole search as the caller waited for it (the SLO's measure).
        self.search_stages.with_label_values(&["total"]).observe(response.took_ms / 1000.0);
        let mode = serde_json::to_value(meta.mode).ok().and_then(|v| v.as_str().map(str::to_owned));
        self.search_queries.with_label_values(&[mode.as_deref().unwrap_or("unknown")]).inc();
        let t = &meta.timings_ms;
        for (stage, ms) in
            [("embed", t.embed), ("vector", t.vector), ("lexical", t.lexical), ("graph", t.graph), ("fuse", t.fuse)]
        {
            if ms > 0.0 {
                self.search_stages.with_label_values(&[stage]).observe(ms / 1000.0);
            }
        }
    }

    /// Records each dependency's health (checked at scrape time).
    pub fn breaker(&self, service: &str, state: f64) {
        if !self.enabled {
            return;
        }
        self.breakers.with_label_values(&[service]).set(state);
    }

    pub fn dependency(&self, name: &str, healthy: bool) {
        self.dependency_health.with_label_values(&[name]).set(i64::from(healthy));
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut buf).is_err() {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}
