//! Provisioning from the principal: the org, the user and (for writes) the app
//! exist from the first authenticated request on.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loci_core::{OrgId, UserId};
use loci_security::Principal;
use loci_stores::repo::{orgs, users};
use loci_stores::{Database, TenantTx};
use parking_lot::Mutex;

use crate::DomainError;

/// Inserts into a per-process cache of facts that stay true while the
/// process runs; a full cache starts over rather than tracking recency.
pub(crate) fn insert_bounded<K: std::hash::Hash + Eq, V>(
    map: &Mutex<HashMap<K, V>>,
    key: K,
    value: V,
    capacity: usize,
) {
    let mut map = map.lock();
    if map.len() >= capacity {
        map.clear();
    }
    map.insert(key, value);
}

/// Maps (org, subject) to the internal user id, provisioning on first sight.
/// The cache saves two queries per request. A user row goes only with a
/// GDPR erasure, which drops the entry in its own process ([`Provisioner::forget`]);
/// other instances learn it within [`Provisioner::TTL`], after which an
/// entry is looked up again.
#[derive(Debug, Clone, Default)]
pub struct Provisioner {
    known: Arc<Mutex<HashMap<SubjectKey, (UserId, Instant)>>>,
}

/// A subject of an org.
type SubjectKey = (OrgId, String);

impl Provisioner {
    const CAPACITY: usize = 100_000;
    /// How long an id is trusted without a lookup.
    pub const TTL: Duration = Duration::from_secs(60);

    /// The caller's user id, inside `tx` (which must be a write transaction
    /// the first time a user is seen).
    pub async fn user(&self, db: &Database, principal: &Principal) -> Result<UserId, DomainError> {
        let key = (principal.org_id.clone(), principal.subject.clone());
        if let Some((id, at)) = self.known.lock().get(&key)
            && at.elapsed() < Self::TTL
        {
            return Ok(*id);
        }
        let tx = db.begin_tenant(&principal.org_id).await?;
        let id = Self::ensure_in(&tx, principal).await?;
        tx.commit().await?;
        insert_bounded(&self.known, key, (id, Instant::now()), Self::CAPACITY);
        Ok(id)
    }

    /// Drops what the cache knows of a subject (after an erasure, whose
    /// user row is gone; the next request provisions a new one).
    pub fn forget(&self, org: &OrgId, subject: &str) {
        self.known.lock().remove(&(org.clone(), subject.to_owned()));
    }

    async fn ensure_in(tx: &TenantTx, principal: &Principal) -> Result<UserId, DomainError> {
        orgs::ensure(tx).await?;
        Ok(users::ensure(tx, &principal.subject).await?.id)
    }
}
