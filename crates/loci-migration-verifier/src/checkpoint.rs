//! What a resumable copy has done, kept in a small JSON file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::VerifierError;

/// The progress of one copy from `source` to `target`.
///
/// Rows are copied in primary-key order and each batch commits on its own,
/// so the target always holds a prefix of each table; `rows` records that
/// prefix per table after each commit. The file is replaced atomically
/// (write, sync, rename), so a kill leaves either the old or the new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Identities of the two sides (URLs without passwords), so a checkpoint
    /// is never applied to another copy.
    pub source: String,
    pub target: String,
    /// Rows committed on the target, per table.
    pub rows: BTreeMap<String, u64>,
    /// Tables copied completely.
    pub done: Vec<String>,
    /// True once the copy was verified.
    pub verified: bool,
    #[serde(skip)]
    path: PathBuf,
}

impl Checkpoint {
    /// A fresh checkpoint, not yet written.
    pub fn new(path: &Path, source: &str, target: &str) -> Self {
        Self {
            source: source.to_owned(),
            target: target.to_owned(),
            rows: BTreeMap::new(),
            done: Vec::new(),
            verified: false,
            path: path.to_owned(),
        }
    }

    /// The checkpoint at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Self>, VerifierError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(VerifierError::Io { path: path.to_owned(), source: e }),
        };
        let mut checkpoint: Self = serde_json::from_slice(&bytes)
            .map_err(|e| VerifierError::Corrupt { path: path.to_owned(), detail: format!("not a checkpoint: {e}") })?;
        checkpoint.path = path.to_owned();
        Ok(Some(checkpoint))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Rows of `table` already on the target.
    pub fn rows_of(&self, table: &str) -> u64 {
        self.rows.get(table).copied().unwrap_or(0)
    }

    pub fn is_done(&self, table: &str) -> bool {
        self.done.iter().any(|t| t == table)
    }

    /// Records `rows` committed rows of `table` and writes the file.
    pub fn record(&mut self, table: &str, rows: u64) -> Result<(), VerifierError> {
        self.rows.insert(table.to_owned(), rows);
        self.save()
    }

    /// Marks `table` complete and writes the file.
    pub fn finish_table(&mut self, table: &str) -> Result<(), VerifierError> {
        if !self.is_done(table) {
            self.done.push(table.to_owned());
        }
        self.save()
    }

    /// Writes the file atomically.
    pub fn save(&self) -> Result<(), VerifierError> {
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let json = serde_json::to_vec_pretty(self).map_err(|e| VerifierError::Sink(e.to_string()))?;
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp).map_err(VerifierError::io(&tmp))?;
            file.write_all(&json).map_err(VerifierError::io(&tmp))?;
            file.sync_all().map_err(VerifierError::io(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(VerifierError::io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_survives_a_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("copy.json");
        assert!(Checkpoint::load(&path).unwrap().is_none());
        let mut c = Checkpoint::new(&path, "sqlite://a", "postgres://b");
        c.record("memories", 3000).unwrap();
        c.finish_table("orgs").unwrap();
        c.finish_table("orgs").unwrap();
        let back = Checkpoint::load(&path).unwrap().unwrap();
        assert_eq!(back, c);
        assert_eq!(back.rows_of("memories"), 3000);
        assert_eq!(back.rows_of("apps"), 0);
        assert_eq!(back.done, ["orgs"]);
        std::fs::write(&path, b"{").unwrap();
        assert!(matches!(Checkpoint::load(&path), Err(VerifierError::Corrupt { .. })));
    }
}
