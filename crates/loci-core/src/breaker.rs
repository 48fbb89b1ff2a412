//! A small circuit breaker, one per dependency (the database, Valkey, each
//! index engine, the embedding and LLM endpoints): 40-operations.md
//! "Resilience".
//!
//! Closed: requests go through; consecutive transport failures are counted. After
//! `failure_threshold` of them the breaker opens: requests fail at once for `cool_down`. Then it
//! is half-open: one trial request goes through (the others still fail at once); its success
//! closes the breaker, its failure opens it for another cool-down.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Consecutive failed attempts that open the breaker (at least 1).
    pub failure_threshold: u32,
    /// How long the breaker stays open before a trial request.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { failure_threshold: 5, cool_down: Duration::from_secs(30) }
    }
}

/// The state of a breaker, for health reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    /// The `circuit_breaker_state` gauge: 0 closed, 0.5 half-open, 1 open.
    pub fn gauge(self) -> f64 {
        match self {
            Self::Closed => 0.0,
            Self::HalfOpen => 0.5,
            Self::Open => 1.0,
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// A trial request is in flight.
    HalfOpen,
}

#[derive(Debug)]
pub struct CircuitBreaker {
    config: BreakerConfig,
    state: Mutex<State>,
}

/// Why a request may not go through now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Open for this much longer.
    Open(Duration),
    /// Half-open, and the one trial request is already in flight.
    TrialInFlight,
}

impl Refusal {
    /// When a caller may try again (`Retry-After`): the rest of the
    /// cool-down, or a second while the trial request runs.
    pub fn retry_after(self) -> Duration {
        match self {
            Self::Open(left) => left,
            Self::TrialInFlight => Duration::from_secs(1),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Open(left) => write!(f, "circuit breaker open, next try in {} ms", left.as_millis()),
            Self::TrialInFlight => write!(f, "circuit breaker half-open, trial request in flight"),
        }
    }
}

impl CircuitBreaker {
    /// Runs `call` through the breaker: refused at once while open, and
    /// its outcome recorded (`is_failure` tells which errors mean the
    /// dependency is down, as opposed to a bad request it answered).
    pub async fn call<T, E>(
        &self,
        call: impl std::future::Future<Output = Result<T, E>>,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<Result<T, E>, Refusal> {
        let permit = self.acquire()?;
        let outcome = call.await;
        match &outcome {
            Err(e) if is_failure(e) => permit.failure(),
            _ => permit.success(),
        }
        Ok(outcome)
    }

    pub fn new(config: BreakerConfig) -> Self {
        let config = BreakerConfig { failure_threshold: config.failure_threshold.max(1), ..config };
        Self { config, state: Mutex::new(State::Closed { failures: 0 }) }
    }

    pub fn state(&self) -> BreakerState {
        match *self.state.lock() {
            State::Closed { .. } => BreakerState::Closed,
            State::Open { until } if Instant::now() < until => BreakerState::Open,
            State::Open { .. } | State::HalfOpen => BreakerState::HalfOpen,
        }
    }

    /// Asks to send a request now. The permit must be settled with `success` or `failure`;
    /// dropping it unsettled (a cancelled request) lets the next caller make the trial.
    pub fn acquire(&self) -> Result<Permit<'_>, Refusal> {
        self.acquire_at(Instant::now())
    }

    fn acquire_at(&self, now: Instant) -> Result<Permit<'_>, Refusal> {
        let mut state = self.state.lock();
        match *state {
            State::Closed { .. } => Ok(Permit { breaker: self, trial: false, settled: false }),
            State::Open { until } if now < until => Err(Refusal::Open(until - now)),
            State::Open { .. } => {
                *state = State::HalfOpen;
                Ok(Permit { breaker: self, trial: true, settled: false })
            }
            State::HalfOpen => Err(Refusal::TrialInFlight),
        }
    }

    fn record(&self, trial: bool, ok: bool, now: Instant) {
        let mut state = self.state.lock();
        let open = State::Open { until: now + self.config.cool_down };
        *state = match (*state, ok) {
            (_, true) => State::Closed { failures: 0 },
            (State::HalfOpen, false) if trial => open,
            (State::Closed { failures }, false) => {
                let failures = failures.saturating_add(1);
                if failures >= self.config.failure_threshold { open } else { State::Closed { failures } }
            }
            // Already open, or another request holds the trial: this late failure changes nothing.
            (current, false) => current,
        };
    }
}

/// Leave to send one request.
#[derive(Debug)]
pub struct Permit<'a> {
    breaker: &'a CircuitBreaker,
    trial: bool,
    settled: bool,
}

impl Permit<'_> {
    /// The endpoint answered (any answer that shows it is up, a 4xx included).
    pub fn success(mut self) {
        self.settled = true;
        self.breaker.record(self.trial, true, Instant::now());
    }

    /// The endpoint could not be reached, timed out or answered 5xx.
    pub fn failure(self) {
        self.failure_at(Instant::now());
    }

    fn failure_at(mut self, now: Instant) {
        self.settled = true;
        self.breaker.record(self.trial, false, now);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.trial && !self.settled {
            let mut state = self.breaker.state.lock();
            if matches!(*state, State::HalfOpen) {
                *state = State::Open { until: Instant::now() };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> CircuitBreaker {
        CircuitBreaker::new(BreakerConfig { failure_threshold: threshold, cool_down: Duration::from_secs(10) })
    }

    #[test]
    fn opens_after_consecutive_failures_only() {
        let b = breaker(3);
        let t0 = Instant::now();
        b.acquire_at(t0).unwrap().failure_at(t0);
        b.acquire_at(t0).unwrap().failure_at(t0);
        b.acquire_at(t0).unwrap().success(); // resets the count
        b.acquire_at(t0).unwrap().failure_at(t0);
        b.acquire_at(t0).unwrap().failure_at(t0);
        assert_eq!(b.state(), BreakerState::Closed);
        b.acquire_at(t0).unwrap().failure_at(t0);
        assert_eq!(b.state(), BreakerState::Open);
        assert!(
            matches!(b.acquire_at(t0 + Duration::from_secs(3)), Err(Refusal::Open(d)) if d == Duration::from_secs(7))
        );
    }

    #[test]
    fn half_open_lets_one_trial_through() {
        let b = breaker(1);
        let t0 = Instant::now();
        b.acquire_at(t0).unwrap().failure_at(t0);
        let later = t0 + Duration::from_secs(11);
        let trial = b.acquire_at(later).unwrap();
        assert!(matches!(b.acquire_at(later), Err(Refusal::TrialInFlight)));
        trial.failure_at(later);
        assert!(matches!(b.acquire_at(later + Duration::from_secs(1)), Err(Refusal::Open(_))));

        let much_later = later + Duration::from_secs(11);
        b.acquire_at(much_later).unwrap().success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.acquire_at(much_later).is_ok());
    }

    #[test]
    fn an_abandoned_trial_hands_the_trial_to_the_next_caller() {
        let b = breaker(1);
        let t0 = Instant::now();
        b.acquire_at(t0).unwrap().failure_at(t0);
        let later = t0 + Duration::from_secs(11);
        drop(b.acquire_at(later).unwrap());
        assert!(b.acquire_at(Instant::now() + Duration::from_secs(11)).is_ok());
    }

    #[test]
    fn a_late_failure_does_not_spoil_the_trial() {
        let b = breaker(1);
        let t0 = Instant::now();
        let early = b.acquire_at(t0).unwrap();
        b.acquire_at(t0).unwrap().failure_at(t0);
        let later = t0 + Duration::from_secs(11);
        let trial = b.acquire_at(later).unwrap();
        early.failure_at(later);
        trial.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
