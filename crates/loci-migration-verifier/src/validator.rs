//! Checks of backup files that need no restore: present, non-empty, fresh,
//! of a known format; and the newest backup of a directory.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::Serialize;

/// What a file's first bytes say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupFormat {
    /// `loci backup` (a zip archive).
    Zip,
    /// `pg_dump --format=custom`.
    PostgresCustomDump,
    /// A Redis/Valkey RDB snapshot.
    RedisRdb,
    Gzip,
    Json,
    Unknown,
}

/// Recognises a backup by its magic bytes.
pub fn detect_format(head: &[u8]) -> BackupFormat {
    let trimmed = head.iter().position(|b| !b.is_ascii_whitespace()).map_or(&[][..], |i| &head[i..]);
    if head.starts_with(b"PK\x03\x04") {
        BackupFormat::Zip
    } else if head.starts_with(b"PGDMP") {
        BackupFormat::PostgresCustomDump
    } else if head.starts_with(b"REDIS") {
        BackupFormat::RedisRdb
    } else if head.starts_with(&[0x1f, 0x8b]) {
        BackupFormat::Gzip
    } else if trimmed.starts_with(b"{") || trimmed.starts_with(b"[") {
        BackupFormat::Json
    } else {
        BackupFormat::Unknown
    }
}

/// The outcome of [`check_file`].
#[derive(Debug, Clone, Serialize)]
pub struct FileCheck {
    pub path: PathBuf,
    pub exists: bool,
    pub bytes: u64,
    /// Age at the time of the check.
    pub age_secs: Option<u64>,
    pub format: BackupFormat,
    /// One line per problem; empty when the file passes.
    pub problems: Vec<String>,
}

impl FileCheck {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks that `path` exists, is not empty, is younger than `max_age` (when
/// given) and starts with the magic of `expected` (when given).
pub fn check_file(path: &Path, max_age: Option<Duration>, expected: Option<BackupFormat>) -> FileCheck {
    let mut check = FileCheck {
        path: path.to_owned(),
        exists: false,
        bytes: 0,
        age_secs: None,
        format: BackupFormat::Unknown,
        problems: Vec::new(),
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) => {
            check.problems.push(format!("cannot read it: {e}"));
            return check;
        }
    };
    check.exists = true;
    check.bytes = meta.len();
    if !meta.is_file() {
        check.problems.push("not a regular file".into());
        return check;
    }
    if meta.len() == 0 {
        check.problems.push("empty".into());
    }
    let age = meta.modified().ok().and_then(|m| SystemTime::now().duration_since(m).ok());
    check.age_secs = age.map(|a| a.as_secs());
    if let (Some(max), Some(age)) = (max_age, age)
        && age > max
    {
        check.problems.push(format!("stale: {} s old, the limit is {} s", age.as_secs(), max.as_secs()));
    }
    let mut head = [0u8; 16];
    let n = std::fs::File::open(path).and_then(|mut f| std::io::Read::read(&mut f, &mut head)).unwrap_or(0);
    check.format = detect_format(&head[..n]);
    if let Some(expected) = expected
        && check.format != expected
    {
        check.problems.push(format!("expected a {expected:?} file, its first bytes say {:?}", check.format));
    }
    check
}

/// The newest `loci-backup-*.zip` in `dir` (by modification time).
pub fn latest_backup(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("loci-backup-") && name.ends_with(".zip")
        })
        .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
        .max()
        .map(|(_, path)| path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magic_bytes_name_the_format() {
        assert_eq!(detect_format(b"PK\x03\x04rest"), BackupFormat::Zip);
        assert_eq!(detect_format(b"PGDMP\x01"), BackupFormat::PostgresCustomDump);
        assert_eq!(detect_format(b"REDIS0011"), BackupFormat::RedisRdb);
        assert_eq!(detect_format(&[0x1f, 0x8b, 8]), BackupFormat::Gzip);
        assert_eq!(detect_format(b"  {\"a\":1}"), BackupFormat::Json);
        assert_eq!(detect_format(b""), BackupFormat::Unknown);
        assert_eq!(detect_format(b"hello"), BackupFormat::Unknown);
    }

    #[test]
    fn a_file_check_names_each_problem() {
        let dir = tempfile::tempdir().unwrap();
        let missing = check_file(&dir.path().join("nope"), None, None);
        assert!(!missing.exists && !missing.ok());
        let empty = dir.path().join("loci-backup-1.zip");
        std::fs::write(&empty, b"").unwrap();
        let check = check_file(&empty, None, Some(BackupFormat::Zip));
        assert_eq!(check.problems.len(), 2, "{:?}", check.problems);
        assert!(check.problems[0].contains("empty"));
        let good = dir.path().join("loci-backup-2.zip");
        std::fs::write(&good, b"PK\x03\x04....").unwrap();
        assert!(check_file(&good, Some(Duration::from_secs(3600)), Some(BackupFormat::Zip)).ok());
        let stale = check_file(&good, Some(Duration::ZERO), None);
        std::thread::sleep(Duration::from_millis(5));
        let stale = if stale.ok() { check_file(&good, Some(Duration::ZERO), None) } else { stale };
        assert!(stale.problems.iter().any(|p| p.starts_with("stale")), "{:?}", stale.problems);
        assert_eq!(latest_backup(dir.path()).map(|p| p.exists()), Some(true));
        assert_eq!(latest_backup(&dir.path().join("none")), None);
    }
}
