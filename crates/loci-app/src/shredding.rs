//! Crypto-shredding of backup archives: each user's personal columns
//! (`loci_stores::dump::SEALED_TABLES`) are sealed with the user's data key
//! (`loci_security::sealing`), whose wrapped copy lives only in the live
//! database's `user_keys`. An erasure deletes the key, so that user's rows
//! in every older archive stay ciphertext: a restore skips them (and the
//! rows that depend on them) and restores everyone else's.
//!
//! A sealed row keeps its keys, org, times and states readable and carries
//! `"$sealed": {"user", "data"}` instead of its personal columns; sealing is
//! deterministic, so a restored database sealed again gives the archive's
//! checksums back.

use std::collections::{BTreeMap, HashMap, HashSet};

use loci_security::sealing::{DataKey, MasterKey};
use loci_settings::{Profile, Settings};
use loci_stores::Database;
use loci_stores::dump::{Owner, SEALED_TABLES};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use crate::recovery::RecoveryError;

/// The field of a sealed row that holds its sealed columns.
pub const SEALED_FIELD: &str = "$sealed";

/// The master key: `gdpr.master_key`, or in the embedded profile the key
/// file `<data_dir>/keys/backup-master.key` (created on first use).
pub fn master_key(settings: &Settings) -> Result<MasterKey, RecoveryError> {
    let key = match &settings.gdpr.master_key {
        Some(text) => MasterKey::from_base64(text.expose()),
        None if settings.profile == Profile::Embedded => {
            MasterKey::load_or_create(&settings.data_dir.join("keys").join("backup-master.key"))
        }
        None => {
            return Err(RecoveryError::Refused(
                "gdpr.master_key is not set: backups seal each user's data with a key wrapped by it \
                 (LOCI__GDPR__MASTER_KEY, base64 of 32 random bytes)"
                    .into(),
            ));
        }
    };
    key.map_err(|e| RecoveryError::Refused(e.to_string()))
}

fn key_context(org: &str, user: Uuid) -> String {
    format!("{org}/{user}")
}

fn row_context(table: &str, org: &str, id: &str, user: Uuid) -> String {
    format!("{table}/{org}/{id}/{user}")
}

/// The data keys of a database, unwrapped.
#[derive(Clone)]
pub struct KeyRing {
    master: MasterKey,
    source: Database,
    keys: HashMap<(String, Uuid), DataKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.keys.len()).finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Every key `source` holds.
    pub async fn load(master: MasterKey, source: &Database) -> Result<Self, RecoveryError> {
        let mut keys = HashMap::new();
        for (org, user, wrapped) in source.user_keys().await? {
            let key = master
                .unwrap_key(&wrapped, &key_context(&org, user))
                .map_err(|e| RecoveryError::Refused(format!("the data key of a user of org {org}: {e}")))?;
            keys.insert((org, user), key);
        }
        Ok(Self { master, source: source.clone(), keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    fn get(&self, org: &str, user: Uuid) -> Option<&DataKey> {
        self.keys.get(&(org.to_owned(), user))
    }

    /// The user's key, made and stored in the source first if missing.
    async fn get_or_create(&mut self, org: &str, user: Uuid) -> Result<DataKey, RecoveryError> {
        if let Some(key) = self.get(org, user) {
            return Ok(key.clone());
        }
        let context = key_context(org, user);
        let wrapped = self.master.new_wrapped_key(&context).map_err(|e| RecoveryError::Refused(e.to_string()))?;
        let stored = self.source.add_user_key(org, user, &wrapped).await?;
        let key = self.master.unwrap_key(&stored, &context).map_err(|e| RecoveryError::Refused(e.to_string()))?;
        self.keys.insert((org.to_owned(), user), key.clone());
        Ok(key)
    }
}

fn text<'a>(row: &'a Map<String, Value>, column: &str) -> Result<&'a str, RecoveryError> {
    row.get(column)
        .and_then(Value::as_str)
        .ok_or_else(|| RecoveryError::Refused(format!("a sealed row has no text `{column}`")))
}

fn uuid_of(row: &Map<String, Value>, column: &str) -> Result<Uuid, RecoveryError> {
    text(row, column)?.parse().map_err(|_| RecoveryError::Refused(format!("`{column}` is not a uuid")))
}

/// Seals rows as a backup writes them (in table order: `memories` before
/// the tables whose owner is a memory's).
#[derive(Debug, Default)]
pub struct Sealer {
    memory_owner: HashMap<Uuid, Uuid>,
}

impl Sealer {
    /// `row` of `table` with its personal columns sealed (unchanged for a
    /// table that is not sealed). Keys missing from `ring` are made when
    /// `create`, else an error.
    pub async fn seal(
        &mut self,
        ring: &mut KeyRing,
        create: bool,
        table: &str,
        mut row: Value,
    ) -> Result<Value, RecoveryError> {
        let Some(spec) = SEALED_TABLES.iter().find(|t| t.table == table) else {
            return Ok(row);
        };
        let Some(obj) = row.as_object_mut() else {
            return Err(RecoveryError::Refused(format!("a row of {table} is not an object")));
        };
        let org = text(obj, "org_id")?.to_owned();
        let id = text(obj, "id")?.to_owned();
        let owner = match spec.owner {
            Owner::Column(column) => uuid_of(obj, column)?,
            Owner::MemoryOf(column) => {
                let memory = uuid_of(obj, column)?;
                *self.memory_owner.get(&memory).ok_or_else(|| {
                    RecoveryError::Refused(format!("a row of {table} names memory {memory}, which was not read"))
                })?
            }
        };
        if table == "memories" {
            self.memory_owner.insert(uuid_of(obj, "id")?, owner);
        }
        let key = if create {
            ring.get_or_create(&org, owner).await?
        } else {
            ring.get(&org, owner)
                .cloned()
                .ok_or_else(|| RecoveryError::Refused(format!("no data key for a user of org {org}")))?
        };
        let mut plain = Map::new();
        for column in spec.columns {
            if let Some(value) = obj.remove(*column) {
                plain.insert((*column).to_owned(), value);
            }
        }
        // Canonical (keys sorted at every depth), so both engines seal alike.
        let bytes = loci_migration_verifier::canonical_line(&Value::Object(plain)).into_bytes();
        let data = key
            .seal(&row_context(table, &org, &id, owner), &bytes)
            .map_err(|e| RecoveryError::Refused(e.to_string()))?;
        obj.insert(SEALED_FIELD.to_owned(), json!({ "user": owner, "data": data }));
        Ok(row)
    }
}

/// Opens sealed rows as a restore reads them; the rows of users whose key
/// is gone (erased) are skipped, and so are the rows that depend on them.
#[derive(Debug, Default)]
pub struct Unsealer {
    gone_users: HashSet<Uuid>,
    gone_memories: HashSet<Uuid>,
    gone_apps: HashSet<Uuid>,
    /// Rows skipped, per table.
    pub shredded: BTreeMap<String, u64>,
}

impl Unsealer {
    /// The row as it was before sealing, or `None` when it cannot be
    /// restored (its user's key is gone, or it belongs to such a row).
    pub fn open(&mut self, ring: &KeyRing, table: &str, mut row: Value) -> Result<Option<Value>, RecoveryError> {
        let Some(obj) = row.as_object_mut() else {
            return Err(RecoveryError::Refused(format!("a row of {table} is not an object")));
        };
        let refers = |column: &str, gone: &HashSet<Uuid>| {
            obj.get(column)
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<Uuid>().ok())
                .is_some_and(|id| gone.contains(&id))
        };
        let orphan = refers("user_id", &self.gone_users)
            || refers("owner_id", &self.gone_users)
            || refers("memory_id", &self.gone_memories)
            || refers("app_id", &self.gone_apps)
            || (table == "users" && refers("id", &self.gone_users));
        let sealed = obj.remove(SEALED_FIELD);
        let owner: Option<Uuid> = match &sealed {
            Some(sealed) => Some(
                sealed
                    .get("user")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .ok_or_else(|| RecoveryError::Refused(format!("a sealed row of {table} names no user")))?,
            ),
            None => None,
        };
        let org = obj.get("org_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let key = owner.and_then(|owner| ring.get(&org, owner));
        if orphan || (owner.is_some() && key.is_none()) {
            // Rows that name this one go too.
            let id = obj.get("id").and_then(Value::as_str).and_then(|s| s.parse::<Uuid>().ok());
            let gone = match table {
                "users" => Some(&mut self.gone_users),
                "memories" => Some(&mut self.gone_memories),
                "apps" => Some(&mut self.gone_apps),
                _ => None,
            };
            if let (Some(gone), Some(id)) = (gone, id) {
                gone.insert(id);
            }
            if let Some(owner) = owner {
                self.gone_users.insert(owner);
            }
            *self.shredded.entry(table.to_owned()).or_default() += 1;
            return Ok(None);
        }
        let (Some(sealed), Some(owner), Some(key)) = (sealed, owner, key) else {
            return Ok(Some(row));
        };
        let id = text(obj, "id")?.to_owned();
        let data = sealed.get("data").and_then(Value::as_str).unwrap_or_default();
        let bytes = key
            .open(&row_context(table, &org, &id, owner), data)
            .map_err(|e| RecoveryError::Mismatch(format!("{table}: {e}")))?;
        let Value::Object(columns) =
            serde_json::from_slice(&bytes).map_err(|e| RecoveryError::Mismatch(format!("{table}: {e}")))?
        else {
            return Err(RecoveryError::Mismatch(format!("{table}: a sealed value is not an object")));
        };
        obj.extend(columns);
        Ok(Some(row))
    }

    /// Rows skipped over every table.
    pub fn total(&self) -> u64 {
        self.shredded.values().sum()
    }
}
