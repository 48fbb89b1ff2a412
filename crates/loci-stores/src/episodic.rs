//! Episodic (session) memory: what one agent session of one user keeps for
//! a while — turns, observations, scratch notes — apart from long-term
//! memories. Items expire on their own (a TTL per item); a session is the
//! items of `(org, user, session id)`, so another user's session, or the
//! same session name in another org, reads as empty.
//!
//! Two implementations of [`EpisodicStore`], held to one contract suite
//! (`crate::testing::episodic_contract`):
//! - [`ValkeyEpisodicStore`] keeps an item as JSON with its TTL under
//!   `<prefix>:episodic:{org}:{user}:{session}:{id}`, and in the sorted set
//!   `<prefix>:episodic:session:{org}:{user}:{session}` its id scored by the
//!   time it was added (the set lives as long as the newest item). Shared by
//!   every instance.
//! - [`InProcessEpisodicStore`] keeps the same in one process (the embedded
//!   profile, no Valkey).
//!
//! Item updates (decay, summarised, promoted) keep the remaining TTL.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use fred::prelude::*;
use loci_core::{MemoryId, OrgId, UserId};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;
use crate::valkey::Valkey;

/// What `decay` multiplies each item's recency by.
pub const DECAY_FACTOR: f64 = 0.9;

/// One session of one user of one org.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub org: OrgId,
    pub user: UserId,
    /// Checked by the caller: 1 to 128 of `A-Z a-z 0-9 . _ -`.
    pub session: String,
}

impl SessionKey {
    fn path(&self) -> String {
        format!("{}:{}:{}", self.org.as_str(), self.user, self.session)
    }
}

/// One item of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpisodicItem {
    pub id: Uuid,
    pub content: String,
    /// Who said it (`user`, `assistant`, `tool`, ...), when known.
    pub role: Option<String>,
    /// A JSON object the client attached.
    pub metadata: serde_json::Value,
    pub created_at: DateTime<Utc>,
    /// 1.0 when added; each decay multiplies it by [`DECAY_FACTOR`].
    pub recency: f64,
    /// Summarised items are left out of listings unless asked for.
    pub summarised: bool,
    /// The long-term memory this item was promoted to.
    pub promoted_to: Option<MemoryId>,
}

/// Episodic memory (see the module docs). Listing is most recent first
/// (then greatest id).
#[async_trait]
pub trait EpisodicStore: Send + Sync + std::fmt::Debug {
    /// `valkey` or `in-process`.
    fn backend(&self) -> &'static str;

    /// Adds `item` for `ttl`; when the session then holds more than
    /// `max_items`, its oldest items go.
    async fn add(
        &self,
        key: &SessionKey,
        item: &EpisodicItem,
        ttl: Duration,
        max_items: usize,
    ) -> Result<(), StoreError>;

    async fn get(&self, key: &SessionKey, id: Uuid) -> Result<Option<EpisodicItem>, StoreError>;

    /// The live items, most recent first, summarised ones only when asked,
    /// at most `limit`.
    async fn list(
        &self,
        key: &SessionKey,
        include_summarised: bool,
        limit: usize,
    ) -> Result<Vec<EpisodicItem>, StoreError>;

    /// Replaces a live item (same id), keeping its remaining TTL; `false`
    /// when it is gone.
    async fn replace(&self, key: &SessionKey, item: &EpisodicItem) -> Result<bool, StoreError>;

    async fn delete(&self, key: &SessionKey, id: Uuid) -> Result<bool, StoreError>;

    /// Deletes every item of the session; returns how many there were.
    async fn expire_session(&self, key: &SessionKey) -> Result<u64, StoreError>;

    /// The names of the user's sessions that hold live items (export).
    async fn sessions_of(&self, org: &OrgId, user: UserId) -> Result<Vec<String>, StoreError>;

    /// Deletes every item and session of the user in the org (erasure);
    /// returns how many items there were. A second call finds none.
    async fn erase_user(&self, org: &OrgId, user: UserId) -> Result<u64, StoreError>;
}

/// `text` with the glob characters of SCAN's MATCH escaped.
fn glob_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Multiplies the recency of every live item by `factor`; returns how many.
pub async fn decay(store: &dyn EpisodicStore, key: &SessionKey, factor: f64) -> Result<u64, StoreError> {
    let mut n = 0;
    for mut item in store.list(key, true, usize::MAX).await? {
        item.recency *= factor;
        if store.replace(key, &item).await? {
            n += 1;
        }
    }
    Ok(n)
}

/// Marks the live items among `ids` summarised; returns how many changed.
pub async fn mark_summarised(store: &dyn EpisodicStore, key: &SessionKey, ids: &[Uuid]) -> Result<u64, StoreError> {
    let mut n = 0;
    for id in ids {
        if let Some(mut item) = store.get(key, *id).await?
            && !item.summarised
        {
            item.summarised = true;
            if store.replace(key, &item).await? {
                n += 1;
            }
        }
    }
    Ok(n)
}

fn order(a: &EpisodicItem, b: &EpisodicItem) -> std::cmp::Ordering {
    (b.created_at, b.id).cmp(&(a.created_at, a.id))
}

// ------------------------------------------------------------- in process

#[derive(Debug, Default)]
struct Session {
    items: HashMap<Uuid, (EpisodicItem, Instant)>,
}

impl Session {
    fn purge(&mut self, now: Instant) {
        self.items.retain(|_, (_, expires)| *expires > now);
    }
}

/// [`EpisodicStore`] in this process's memory (lost on restart, as a
/// session's short-term memory may be).
#[derive(Debug, Default)]
pub struct InProcessEpisodicStore {
    sessions: Mutex<BTreeMap<SessionKey, Session>>,
}

impl InProcessEpisodicStore {
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl EpisodicStore for InProcessEpisodicStore {
    fn backend(&self) -> &'static str {
        "in-process"
    }

    async fn add(
        &self,
        key: &SessionKey,
        item: &EpisodicItem,
        ttl: Duration,
        max_items: usize,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        // Sessions whose items all expired go, so memory stays bounded by
        // what is live.
        sessions.retain(|_, s| {
            s.purge(now);
            !s.items.is_empty()
        });
        let session = sessions.entry(key.clone()).or_default();
        session.items.insert(item.id, (item.clone(), now + ttl));
        if session.items.len() > max_items {
            let mut by_age: Vec<(DateTime<Utc>, Uuid)> =
                session.items.values().map(|(i, _)| (i.created_at, i.id)).collect();
            by_age.sort();
            for (_, id) in by_age.into_iter().take(session.items.len() - max_items) {
                session.items.remove(&id);
            }
        }
        Ok(())
    }

    async fn get(&self, key: &SessionKey, id: Uuid) -> Result<Option<EpisodicItem>, StoreError> {
        let now = Instant::now();
        let sessions = self.sessions.lock();
        Ok(sessions
            .get(key)
            .and_then(|s| s.items.get(&id))
            .filter(|(_, expires)| *expires > now)
            .map(|(item, _)| item.clone()))
    }

    async fn list(
        &self,
        key: &SessionKey,
        include_summarised: bool,
        limit: usize,
    ) -> Result<Vec<EpisodicItem>, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let Some(session) = sessions.get_mut(key) else {
            return Ok(Vec::new());
        };
        session.purge(now);
        let mut items: Vec<EpisodicItem> = session
            .items
            .values()
            .map(|(item, _)| item)
            .filter(|item| include_summarised || !item.summarised)
            .cloned()
            .collect();
        items.sort_by(order);
        items.truncate(limit);
        Ok(items)
    }

    async fn replace(&self, key: &SessionKey, item: &EpisodicItem) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        match sessions.get_mut(key).and_then(|s| s.items.get_mut(&item.id)) {
            Some((stored, expires)) if *expires > now => {
                *stored = item.clone();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn delete(&self, key: &SessionKey, id: Uuid) -> Result<bool, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        Ok(sessions.get_mut(key).and_then(|s| s.items.remove(&id)).is_some_and(|(_, expires)| expires > now))
    }

    async fn expire_session(&self, key: &SessionKey) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        Ok(sessions.remove(key).map_or(0, |mut s| {
            s.purge(now);
            s.items.len() as u64
        }))
    }

    async fn sessions_of(&self, org: &OrgId, user: UserId) -> Result<Vec<String>, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let mut names: Vec<String> = sessions
            .iter_mut()
            .filter(|(k, _)| &k.org == org && k.user == user)
            .filter_map(|(k, s)| {
                s.purge(now);
                (!s.items.is_empty()).then(|| k.session.clone())
            })
            .collect();
        names.sort();
        Ok(names)
    }

    async fn erase_user(&self, org: &OrgId, user: UserId) -> Result<u64, StoreError> {
        let now = Instant::now();
        let mut sessions = self.sessions.lock();
        let mut items = 0;
        sessions.retain(|k, s| {
            if &k.org == org && k.user == user {
                s.purge(now);
                items += s.items.len() as u64;
                false
            } else {
                true
            }
        });
        Ok(items)
    }
}

// ------------------------------------------------------------------ Valkey

/// [`EpisodicStore`] on Valkey (see the module docs).
#[derive(Debug, Clone)]
pub struct ValkeyEpisodicStore {
    valkey: Valkey,
}

impl ValkeyEpisodicStore {
    pub fn new(valkey: Valkey) -> Self {
        Self { valkey }
    }

    fn item_key(&self, key: &SessionKey, id: Uuid) -> String {
        self.valkey.key(&format!("episodic:{}:{id}", key.path()))
    }

    fn index_key(&self, key: &SessionKey) -> String {
        self.valkey.key(&format!("episodic:session:{}", key.path()))
    }

    async fn bounded<T>(&self, what: &str, command: impl Future<Output = Result<T, Error>>) -> Result<T, StoreError> {
        Ok(self.valkey.run(what, command, self.valkey.timeout()).await?)
    }

    async fn bounded_scan(&self, pattern: &str) -> Result<Vec<String>, StoreError> {
        match tokio::time::timeout(self.valkey.timeout() * 4, self.valkey.scan_keys(pattern)).await {
            Ok(keys) => keys,
            Err(_) => Err(StoreError::Timeout("valkey scan".into())),
        }
    }

    fn decode(json: &str) -> Result<EpisodicItem, StoreError> {
        serde_json::from_str(json).map_err(|e| StoreError::corrupt(format!("episodic item: {e}")))
    }

    fn encode(item: &EpisodicItem) -> Result<String, StoreError> {
        serde_json::to_string(item).map_err(|e| StoreError::corrupt(format!("episodic item: {e}")))
    }

    /// The ids of the session, most recent first (ranks `start..=stop`;
    /// `-1` is the last).
    async fn ids(&self, key: &SessionKey, start: i64, stop: i64) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<String> = self
            .bounded("zrange", self.valkey.pool().zrange(self.index_key(key), start, stop, None, true, None, false))
            .await?;
        Ok(ids.iter().filter_map(|id| id.parse().ok()).collect())
    }
}

fn millis(ttl: Duration) -> i64 {
    i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl EpisodicStore for ValkeyEpisodicStore {
    fn backend(&self) -> &'static str {
        "valkey"
    }

    async fn add(
        &self,
        key: &SessionKey,
        item: &EpisodicItem,
        ttl: Duration,
        max_items: usize,
    ) -> Result<(), StoreError> {
        let json = Self::encode(item)?;
        let index = self.index_key(key);
        let score = item.created_at.timestamp_micros() as f64;
        let pipeline = self.valkey.pool().next().pipeline();
        let (_set, _added, _expire, size): ((), i64, i64, i64) = self
            .bounded("add", async {
                let () = pipeline
                    .set(self.item_key(key, item.id), json, Some(Expiration::PX(millis(ttl))), None, false)
                    .await?;
                let () = pipeline.zadd(&index, None, None, false, false, (score, item.id.to_string())).await?;
                let () = pipeline.pexpire(&index, millis(ttl), None).await?;
                let () = pipeline.zcard(&index).await?;
                pipeline.all().await
            })
            .await?;
        let extra = usize::try_from(size).unwrap_or(0).saturating_sub(max_items);
        if extra > 0 {
            let oldest: Vec<(String, f64)> =
                self.bounded("zpopmin", self.valkey.pool().zpopmin(&index, Some(extra))).await?;
            let keys: Vec<String> =
                oldest.iter().filter_map(|(id, _)| id.parse().ok()).map(|id| self.item_key(key, id)).collect();
            if !keys.is_empty() {
                let _: i64 = self.bounded("del", self.valkey.pool().del(keys)).await?;
            }
        }
        Ok(())
    }

    async fn get(&self, key: &SessionKey, id: Uuid) -> Result<Option<EpisodicItem>, StoreError> {
        let json: Option<String> = self.bounded("get", self.valkey.pool().get(self.item_key(key, id))).await?;
        json.as_deref().map(Self::decode).transpose()
    }

    async fn list(
        &self,
        key: &SessionKey,
        include_summarised: bool,
        limit: usize,
    ) -> Result<Vec<EpisodicItem>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Newest first, a window of ranks at a time, until `limit` items
        // pass (summarised or expired ones are skipped).
        let window = i64::try_from(limit.saturating_mul(2).max(32)).unwrap_or(i64::MAX);
        let mut items = Vec::new();
        let mut start = 0i64;
        loop {
            let ids = self.ids(key, start, start.saturating_add(window - 1)).await?;
            if ids.is_empty() {
                break;
            }
            let keys: Vec<String> = ids.iter().map(|id| self.item_key(key, *id)).collect();
            let values: Vec<Option<String>> = self.bounded("mget", self.valkey.pool().mget(keys)).await?;
            let mut expired = Vec::new();
            for (id, value) in ids.iter().zip(values) {
                match value {
                    Some(json) => {
                        let item = Self::decode(&json)?;
                        if include_summarised || !item.summarised {
                            items.push(item);
                        }
                    }
                    None => expired.push(id.to_string()),
                }
            }
            let got = i64::try_from(ids.len()).unwrap_or(i64::MAX);
            // Expired ones leave the index, and the ranks after them shift down.
            start = start.saturating_add(got) - i64::try_from(expired.len()).unwrap_or(0);
            if !expired.is_empty() {
                let _: i64 = self.bounded("zrem", self.valkey.pool().zrem(self.index_key(key), expired)).await?;
            }
            if items.len() >= limit || got < window {
                break;
            }
        }
        items.sort_by(order);
        items.truncate(limit);
        Ok(items)
    }

    async fn replace(&self, key: &SessionKey, item: &EpisodicItem) -> Result<bool, StoreError> {
        let json = Self::encode(item)?;
        let done: Option<String> = self
            .bounded(
                "replace",
                self.valkey.pool().set(
                    self.item_key(key, item.id),
                    json,
                    Some(Expiration::KEEPTTL),
                    Some(SetOptions::XX),
                    false,
                ),
            )
            .await?;
        Ok(done.is_some())
    }

    async fn delete(&self, key: &SessionKey, id: Uuid) -> Result<bool, StoreError> {
        let deleted: i64 = self.bounded("del", self.valkey.pool().del(self.item_key(key, id))).await?;
        let _: i64 = self.bounded("zrem", self.valkey.pool().zrem(self.index_key(key), id.to_string())).await?;
        Ok(deleted > 0)
    }

    async fn expire_session(&self, key: &SessionKey) -> Result<u64, StoreError> {
        let ids = self.ids(key, 0, -1).await?;
        let mut keys: Vec<String> = ids.iter().map(|id| self.item_key(key, *id)).collect();
        let items = keys.len();
        keys.push(self.index_key(key));
        let deleted: i64 = self.bounded("del", self.valkey.pool().del(keys)).await?;
        // The index counted too, when it existed; expired items did not.
        Ok(u64::try_from(deleted).unwrap_or(0).saturating_sub(u64::from(items > 0)).min(items as u64))
    }

    async fn sessions_of(&self, org: &OrgId, user: UserId) -> Result<Vec<String>, StoreError> {
        let prefix = format!("episodic:session:{}:{user}:", org.as_str());
        let pattern = format!("{}*", glob_escape(&prefix));
        let keys = self.bounded_scan(&pattern).await?;
        let mut names: Vec<String> = keys.iter().filter_map(|k| k.strip_prefix(&prefix)).map(str::to_owned).collect();
        names.sort();
        Ok(names)
    }

    async fn erase_user(&self, org: &OrgId, user: UserId) -> Result<u64, StoreError> {
        let user_path = format!("{}:{user}:", org.as_str());
        let items = self.bounded_scan(&format!("episodic:{}*", glob_escape(&user_path))).await?;
        let sets = self.bounded_scan(&format!("episodic:session:{}*", glob_escape(&user_path))).await?;
        let n = items.len() as u64;
        for chunk in items.iter().chain(&sets).collect::<Vec<_>>().chunks(500) {
            let keys: Vec<String> = chunk.iter().map(|k| self.valkey.key(k)).collect();
            let _: i64 = self.bounded("del", self.valkey.pool().del(keys)).await?;
        }
        Ok(n)
    }
}
