//! MCP session bindings: who a session belongs to.
//!
//! A session is bound, when it is created, to the caller's user, org and DPoP
//! key thumbprint. Every later request of the session must come from the same
//! triple (10-security.md "MCP over HTTP"). Bindings expire unless used; they
//! live in Valkey so any instance can serve any session, or in process memory
//! in the embedded profile.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::Principal;

/// The owner of a session plus what its transport needs to resume it on
/// another instance (the client's `initialize` parameters, as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionBinding {
    pub user: String,
    pub org: String,
    /// Thumbprint of the DPoP key the session was created with, if any.
    pub jkt: Option<String>,
    /// Transport state needed to restore the session elsewhere.
    #[serde(default)]
    pub state: Option<serde_json::Value>,
}

/// Why a request may not use a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindingMismatch {
    User,
    Org,
    DpopKey,
}

impl std::fmt::Display for BindingMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::User => "the session belongs to another user",
            Self::Org => "the session belongs to another organisation",
            Self::DpopKey => "the session is bound to another DPoP key",
        })
    }
}

impl SessionBinding {
    pub fn for_principal(principal: &Principal, state: Option<serde_json::Value>) -> Self {
        Self {
            user: principal.subject.clone(),
            org: principal.org_id.to_string(),
            jkt: principal.dpop_jkt.clone(),
            state,
        }
    }

    /// Ok when `principal` is the session's owner, presenting the same key.
    pub fn check(&self, principal: &Principal) -> Result<(), BindingMismatch> {
        if self.org != principal.org_id.as_str() {
            return Err(BindingMismatch::Org);
        }
        if self.user != principal.subject {
            return Err(BindingMismatch::User);
        }
        if self.jkt != principal.dpop_jkt {
            return Err(BindingMismatch::DpopKey);
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionStoreError {
    #[error("session store unavailable: {0}")]
    Unavailable(String),
    #[error("session store is full")]
    Full,
}

/// Where bindings live. Callers treat errors as a refusal (fail closed).
#[async_trait]
pub trait SessionStore: Send + Sync + std::fmt::Debug {
    /// Stores (or replaces) a binding for `ttl`.
    async fn put(&self, id: &str, binding: &SessionBinding, ttl: Duration) -> Result<(), SessionStoreError>;
    /// The binding, refreshing its expiry to `ttl` (sessions expire when idle).
    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<SessionBinding>, SessionStoreError>;
    async fn delete(&self, id: &str) -> Result<(), SessionStoreError>;
    /// Deletes every session bound to `subject` in `org` (erasure); returns
    /// how many.
    async fn delete_bound_to(&self, org: &str, subject: &str) -> Result<u64, SessionStoreError>;
}

/// Bindings in process memory (embedded profile: one instance), bounded.
#[derive(Debug)]
pub struct InMemorySessionStore {
    entries: Mutex<HashMap<String, (SessionBinding, Instant)>>,
    capacity: usize,
}

impl InMemorySessionStore {
    pub const DEFAULT_CAPACITY: usize = 100_000;

    pub fn new(capacity: usize) -> Self {
        Self { entries: Mutex::new(HashMap::new()), capacity: capacity.max(1) }
    }
}

impl Default for InMemorySessionStore {
    fn default() -> Self {
        Self::new(Self::DEFAULT_CAPACITY)
    }
}

#[async_trait]
impl SessionStore for InMemorySessionStore {
    async fn put(&self, id: &str, binding: &SessionBinding, ttl: Duration) -> Result<(), SessionStoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity && !entries.contains_key(id) {
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= self.capacity {
                return Err(SessionStoreError::Full);
            }
        }
        entries.insert(id.to_owned(), (binding.clone(), now + ttl));
        Ok(())
    }

    async fn get(&self, id: &str, ttl: Duration) -> Result<Option<SessionBinding>, SessionStoreError> {
        let now = Instant::now();
        let mut entries = self.entries.lock();
        match entries.get_mut(id) {
            Some((binding, expires)) if *expires > now => {
                *expires = now + ttl;
                Ok(Some(binding.clone()))
            }
            Some(_) => {
                entries.remove(id);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn delete(&self, id: &str) -> Result<(), SessionStoreError> {
        self.entries.lock().remove(id);
        Ok(())
    }

    async fn delete_bound_to(&self, org: &str, subject: &str) -> Result<u64, SessionStoreError> {
        let mut entries = self.entries.lock();
        let before = entries.len();
        entries.retain(|_, (b, _)| !(b.org == org && b.user == subject));
        Ok((before - entries.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use loci_core::OrgId;

    use super::*;

    fn principal(user: &str, org: &str, jkt: Option<&str>) -> Principal {
        Principal {
            org_id: OrgId::parse(org).unwrap(),
            subject: user.into(),
            scopes: BTreeSet::new(),
            roles: vec![],
            grants: vec![],
            client_id: None,
            token_id: "t".into(),
            dpop_jkt: jkt.map(Into::into),
            expires_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn binding_accepts_only_its_owner_with_the_same_key() {
        let owner = principal("alice", "acme", Some("k1"));
        let b = SessionBinding::for_principal(&owner, None);
        assert_eq!(b.check(&owner), Ok(()));
        assert_eq!(b.check(&principal("bob", "acme", Some("k1"))), Err(BindingMismatch::User));
        assert_eq!(b.check(&principal("alice", "other", Some("k1"))), Err(BindingMismatch::Org));
        assert_eq!(b.check(&principal("alice", "acme", Some("k2"))), Err(BindingMismatch::DpopKey));
        assert_eq!(b.check(&principal("alice", "acme", None)), Err(BindingMismatch::DpopKey));
    }

    #[tokio::test]
    async fn in_memory_bindings_expire_when_idle_and_slide_when_used() {
        let store = InMemorySessionStore::default();
        let b = SessionBinding::for_principal(&principal("alice", "acme", None), Some(serde_json::json!({"a": 1})));
        let ttl = Duration::from_millis(120);
        store.put("s1", &b, ttl).await.unwrap();
        tokio::time::sleep(Duration::from_millis(70)).await;
        assert_eq!(store.get("s1", ttl).await.unwrap(), Some(b.clone()));
        tokio::time::sleep(Duration::from_millis(70)).await;
        // Used 70 ms ago with a 120 ms TTL: still alive.
        assert!(store.get("s1", ttl).await.unwrap().is_some());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(store.get("s1", ttl).await.unwrap(), None);
        store.put("s2", &b, ttl).await.unwrap();
        store.delete("s2").await.unwrap();
        assert_eq!(store.get("s2", ttl).await.unwrap(), None);
    }

    #[tokio::test]
    async fn in_memory_store_refuses_when_full_of_live_sessions() {
        let store = InMemorySessionStore::new(1);
        let b = SessionBinding::for_principal(&principal("alice", "acme", None), None);
        store.put("a", &b, Duration::from_secs(60)).await.unwrap();
        assert_eq!(store.put("b", &b, Duration::from_secs(60)).await, Err(SessionStoreError::Full));
        // Replacing an existing one is fine.
        store.put("a", &b, Duration::from_secs(60)).await.unwrap();
    }
}
