//! The PII inventory (`docs/pii-inventory.toml`, compiled in): every store,
//! table, column, Valkey key family and index field Loci keeps, classified.
//!
//! Erasure and subject access export follow it; tests check it against the
//! real schema of both engines, the key families the stores write and the
//! index document, so it cannot drift (an unclassified column fails them).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::DomainError;

/// The inventory as shipped.
pub const INVENTORY_TOML: &str = include_str!("../../../docs/pii-inventory.toml");

/// What a field holds (see the file's header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldClass {
    Content,
    Person,
    Pseudonym,
    Tenant,
    Metadata,
    Time,
    Operational,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreEntry {
    pub name: String,
    pub backends: Vec<String>,
    pub encryption: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableEntry {
    pub name: String,
    pub retention: String,
    /// Columns that are personal data (each must be a classified column).
    #[serde(default)]
    pub personal: Vec<String>,
    pub columns: BTreeMap<String, FieldClass>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyEntry {
    /// The key after the configured prefix, with `{placeholders}`.
    pub family: String,
    pub retention: String,
    pub personal: bool,
    pub holds: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexField {
    pub name: String,
    pub class: FieldClass,
}

/// The parsed inventory.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PiiInventory {
    #[serde(rename = "store")]
    pub stores: Vec<StoreEntry>,
    #[serde(rename = "table")]
    pub tables: Vec<TableEntry>,
    #[serde(rename = "key")]
    pub keys: Vec<KeyEntry>,
    #[serde(rename = "index_field")]
    pub index_fields: Vec<IndexField>,
}

impl PiiInventory {
    /// The inventory compiled into this build.
    pub fn shipped() -> Result<Self, DomainError> {
        Self::parse(INVENTORY_TOML)
    }

    pub fn parse(text: &str) -> Result<Self, DomainError> {
        let inventory: Self = toml::from_str(text).map_err(|e| DomainError::Internal(format!("PII inventory: {e}")))?;
        let inconsistent = inventory.inconsistencies();
        if inconsistent.is_empty() {
            Ok(inventory)
        } else {
            Err(DomainError::Internal(format!("PII inventory: {}", inconsistent.join("; "))))
        }
    }

    /// Entries that contradict the file itself: a `personal` column that is
    /// not among the table's columns, a table listed twice.
    fn inconsistencies(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (i, t) in self.tables.iter().enumerate() {
            if self.tables[..i].iter().any(|o| o.name == t.name) {
                out.push(format!("table {} is listed twice", t.name));
            }
            for p in t.personal.iter().filter(|p| !t.columns.contains_key(*p)) {
                out.push(format!("{}.{p} is marked personal but is not a classified column", t.name));
            }
        }
        out
    }

    pub fn table(&self, name: &str) -> Option<&TableEntry> {
        self.tables.iter().find(|t| t.name == name)
    }

    /// What the schema holds that the inventory does not classify, and what
    /// the inventory lists that the schema no longer has; one line each
    /// (empty when they agree). `schema` is (table, columns).
    pub fn schema_drift(&self, schema: &[(String, Vec<String>)]) -> Vec<String> {
        let mut out = Vec::new();
        for (table, columns) in schema {
            let Some(entry) = self.table(table) else {
                out.push(format!("table {table} is not classified"));
                continue;
            };
            for column in columns.iter().filter(|c| !entry.columns.contains_key(*c)) {
                out.push(format!("column {table}.{column} is not classified"));
            }
            for column in entry.columns.keys().filter(|c| !columns.contains(c)) {
                out.push(format!("column {table}.{column} is classified but not in the schema"));
            }
        }
        for entry in self.tables.iter().filter(|t| !schema.iter().any(|(name, _)| *name == t.name)) {
            out.push(format!("table {} is classified but not in the schema", entry.name));
        }
        out
    }

    /// Key families written by the code (`families`) against the inventory.
    pub fn key_drift(&self, families: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = families
            .iter()
            .filter(|f| !self.keys.iter().any(|k| k.family == **f))
            .map(|f| format!("key family {f} is not classified"))
            .collect();
        out.extend(
            self.keys
                .iter()
                .filter(|k| !families.contains(&k.family.as_str()))
                .map(|k| format!("key family {} is classified but no store writes it", k.family)),
        );
        out
    }

    /// The family a concrete key (after the prefix) belongs to: of those it
    /// matches, the one with the most literal segments
    /// (`episodic:session:a:b:c` is a session index, not an item of org
    /// `session`).
    pub fn family_of(&self, key: &str) -> Option<&KeyEntry> {
        let literals = |family: &str| family.split(':').filter(|p| !p.starts_with('{')).count();
        self.keys.iter().filter(|k| key_matches(&k.family, key)).max_by_key(|k| literals(&k.family))
    }

    /// Index document fields (`fields`) against the inventory.
    pub fn index_drift(&self, fields: &[&str]) -> Vec<String> {
        let mut out: Vec<String> = fields
            .iter()
            .filter(|f| !self.index_fields.iter().any(|i| i.name == **f))
            .map(|f| format!("index field {f} is not classified"))
            .collect();
        out.extend(
            self.index_fields
                .iter()
                .filter(|i| !fields.contains(&i.name.as_str()))
                .map(|i| format!("index field {} is classified but not in the index document", i.name)),
        );
        out
    }
}

/// Whether a concrete key (after the prefix) belongs to `family`: each
/// `{placeholder}` stands for one non-empty segment without `:`.
pub fn key_matches(family: &str, key: &str) -> bool {
    let pattern: Vec<&str> = family.split(':').collect();
    let parts: Vec<&str> = key.split(':').collect();
    pattern.len() == parts.len()
        && pattern.iter().zip(&parts).all(
            |(p, k)| {
                if p.starts_with('{') && p.ends_with('}') { !k.is_empty() } else { p == k }
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_inventory_parses_and_is_consistent() {
        let inventory = PiiInventory::shipped().unwrap();
        assert!(inventory.table("memories").unwrap().personal.contains(&"content".to_owned()));
        for store in ["relational", "valkey", "vector", "lexical", "graph"] {
            assert!(inventory.stores.iter().any(|s| s.name == store), "{store}");
        }
    }

    #[test]
    fn drift_is_named_both_ways() {
        let inventory = PiiInventory::parse(
            r#"
            store = []
            key = []
            index_field = []
            [[table]]
            name = "t"
            retention = "r"
            personal = ["a"]
            columns = { a = "content", gone = "time" }
            "#,
        )
        .unwrap();
        let schema = vec![("t".to_owned(), vec!["a".to_owned(), "new".to_owned()]), ("u".to_owned(), vec![])];
        assert_eq!(
            inventory.schema_drift(&schema),
            [
                "column t.new is not classified",
                "column t.gone is classified but not in the schema",
                "table u is not classified",
            ]
        );
        assert!(PiiInventory::parse("store = []\nkey = []\nindex_field = []\n[[table]]\nname = \"t\"\nretention = \"r\"\npersonal = [\"x\"]\ncolumns = {}\n").is_err());
        assert!(PiiInventory::parse("store = []\nkey = []\nindex_field = []\ntable = []\n[[table]]\n").is_err());
    }

    #[test]
    fn key_families_match_segment_by_segment() {
        assert!(key_matches("episodic:session:{org}:{user}:{session}", "episodic:session:acme:u1:s1"));
        assert!(!key_matches("episodic:session:{org}:{user}:{session}", "episodic:acme:u1:s1:m1"));
        assert!(key_matches("episodic:{org}:{user}:{session}:{memory}", "episodic:acme:u1:s1:m1"));
        assert!(!key_matches("mcp:session:{id}", "mcp:session:"));
        assert!(!key_matches("dpop:{jkt}:{jti}", "dpop:abc"));
        let inventory = PiiInventory::shipped().unwrap();
        let family = |key: &str| inventory.family_of(key).map(|k| k.family.as_str());
        assert_eq!(family("episodic:session:acme:u1:s1"), Some("episodic:session:{org}:{user}:{session}"));
        assert_eq!(family("episodic:acme:u1:s1:m1"), Some("episodic:{org}:{user}:{session}:{memory}"));
        assert_eq!(family("ratelimit:acme"), None);
    }
}
