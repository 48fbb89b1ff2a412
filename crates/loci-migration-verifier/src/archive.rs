//! Backup archives: one zip file holding `manifest.json` and one member of
//! canonical JSON lines per table (`tables/<name>.jsonl`, deflated).
//!
//! Zip keeps a CRC per member, so a damaged byte is pinned to the table it
//! hit; the manifest's SHA-256 per table then proves each member holds what
//! was read from the database.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use serde_json::Value;
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipArchive, ZipWriter};

use crate::{FORMAT, Manifest, TableDigest, TableEntry, TableSummary, VerifierError};

const MANIFEST: &str = "manifest.json";

fn member(table: &str) -> String {
    format!("tables/{table}.jsonl")
}

/// Writes an archive to `<path>.partial` and renames it into place only when
/// complete, so a crash never leaves a half archive under the final name.
pub struct ArchiveWriter {
    zip: ZipWriter<File>,
    path: PathBuf,
    partial: PartialFile,
    tables: Vec<TableEntry>,
}

impl std::fmt::Debug for ArchiveWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveWriter").field("path", &self.path).field("tables", &self.tables.len()).finish()
    }
}

impl ArchiveWriter {
    /// Starts an archive at `path`; refuses to overwrite an existing file.
    pub fn create(path: &Path) -> Result<Self, VerifierError> {
        if path.exists() {
            return Err(VerifierError::Io {
                path: path.to_owned(),
                source: std::io::Error::new(std::io::ErrorKind::AlreadyExists, "the file exists; choose another name"),
            });
        }
        let mut partial = path.as_os_str().to_owned();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let file = File::create(&partial).map_err(VerifierError::io(&partial))?;
        Ok(Self {
            zip: ZipWriter::new(file),
            path: path.to_owned(),
            partial: PartialFile(Some(partial)),
            tables: Vec::new(),
        })
    }

    /// Starts the member of `table`; rows are pushed in primary-key order.
    pub fn table(&mut self, table: &str) -> Result<TableWriter<'_>, VerifierError> {
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated).large_file(true);
        let file = member(table);
        self.zip.start_file(file.as_str(), options).map_err(|e| self.damaged(e))?;
        Ok(TableWriter { archive: self, name: table.to_owned(), file, digest: TableDigest::new() })
    }

    /// Writes the manifest (its `tables` replaced by what was written),
    /// syncs the file and moves it to its final name.
    pub fn finish(mut self, mut manifest: Manifest) -> Result<Manifest, VerifierError> {
        manifest.format = FORMAT.to_owned();
        manifest.tables = std::mem::take(&mut self.tables);
        let json = serde_json::to_vec_pretty(&manifest).map_err(|e| VerifierError::Sink(e.to_string()))?;
        let options = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        self.zip.start_file(MANIFEST, options).map_err(|e| self.damaged(e))?;
        self.zip.write_all(&json).map_err(VerifierError::io(self.partial.path()))?;
        let partial = self.partial.path().to_owned();
        let file =
            self.zip.finish().map_err(|e| VerifierError::Corrupt { path: partial.clone(), detail: e.to_string() })?;
        file.sync_all().map_err(VerifierError::io(&partial))?;
        std::fs::rename(&partial, &self.path).map_err(VerifierError::io(&self.path))?;
        self.partial.0 = None;
        Ok(manifest)
    }

    fn damaged(&self, e: zip::result::ZipError) -> VerifierError {
        VerifierError::Corrupt { path: self.partial.path().to_owned(), detail: e.to_string() }
    }
}

/// The partial file of an unfinished archive: removed when the writer is
/// dropped before [`ArchiveWriter::finish`] moved it into place.
#[derive(Debug)]
struct PartialFile(Option<PathBuf>);

impl PartialFile {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The member of one table while it is written.
#[derive(Debug)]
pub struct TableWriter<'a> {
    archive: &'a mut ArchiveWriter,
    name: String,
    file: String,
    digest: TableDigest,
}

impl TableWriter<'_> {
    /// Appends one row (its canonical line).
    pub fn push(&mut self, row: &Value) -> Result<(), VerifierError> {
        let mut line = self.digest.push(row);
        line.push('\n');
        self.archive.zip.write_all(line.as_bytes()).map_err(VerifierError::io(self.archive.partial.path()))
    }

    pub fn rows(&self) -> u64 {
        self.digest.rows()
    }

    /// Closes the member and records its entry.
    pub fn finish(self) -> TableEntry {
        let (rows, sha256) = self.digest.finish();
        let entry = TableEntry { name: self.name, file: self.file, rows, sha256 };
        self.archive.tables.push(entry.clone());
        entry
    }
}

/// Reads an archive: its manifest, then any table as a stream of rows.
pub struct ArchiveReader {
    zip: ZipArchive<BufReader<File>>,
    path: PathBuf,
    manifest: Manifest,
}

impl std::fmt::Debug for ArchiveReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiveReader").field("path", &self.path).finish()
    }
}

impl ArchiveReader {
    /// Opens `path` and reads its manifest.
    pub fn open(path: &Path) -> Result<Self, VerifierError> {
        let corrupt = |detail: String| VerifierError::Corrupt { path: path.to_owned(), detail };
        let file = File::open(path).map_err(VerifierError::io(path))?;
        let mut zip = ZipArchive::new(BufReader::new(file))
            .map_err(|e| corrupt(format!("not a readable zip archive (truncated or overwritten?): {e}")))?;
        let mut json = Vec::new();
        zip.by_name(MANIFEST)
            .map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?
            .read_to_end(&mut json)
            .map_err(|e| corrupt(format!("{MANIFEST}: {e}")))?;
        let manifest: Manifest =
            serde_json::from_slice(&json).map_err(|e| corrupt(format!("{MANIFEST} is not a valid manifest: {e}")))?;
        if manifest.format != FORMAT {
            return Err(VerifierError::Format { path: path.to_owned(), format: manifest.format, expected: FORMAT });
        }
        Ok(Self { zip, path: path.to_owned(), manifest })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Streams the rows of `table` to `on_row` in archive order and returns
    /// what the member actually held (count and SHA-256 of its bytes); the
    /// caller compares that with the manifest.
    pub fn read_table(
        &mut self,
        table: &str,
        mut on_row: impl FnMut(Value) -> Result<(), String>,
    ) -> Result<TableSummary, VerifierError> {
        let entry = self
            .manifest
            .tables
            .iter()
            .find(|t| t.name == table)
            .ok_or_else(|| VerifierError::NoSuchTable(table.to_owned()))?
            .clone();
        let path = self.path.clone();
        let corrupt = |detail: String| VerifierError::Corrupt { path: path.clone(), detail };
        let reader = self.zip.by_name(&entry.file).map_err(|e| corrupt(format!("{}: {e}", entry.file)))?;
        let mut reader = BufReader::with_capacity(1 << 16, reader);
        let mut digest = TableDigest::new();
        let mut line = String::new();
        loop {
            line.clear();
            let n = reader.read_line(&mut line).map_err(|e| corrupt(format!("{}: {e}", entry.file)))?;
            if n == 0 {
                break;
            }
            let text =
                line.strip_suffix('\n').ok_or_else(|| corrupt(format!("{}: the last line is cut", entry.file)))?;
            digest.push_line(text);
            let row: Value = serde_json::from_str(text).map_err(|e| VerifierError::Row {
                table: table.to_owned(),
                row: digest.rows(),
                detail: format!("not JSON: {e}"),
            })?;
            on_row(row).map_err(VerifierError::Sink)?;
        }
        let (rows, sha256) = digest.finish();
        Ok(TableSummary { name: table.to_owned(), rows, sha256 })
    }

    /// Reads every member and checks it against the manifest; returns one
    /// line per problem (empty when the archive is whole).
    pub fn check_members(&mut self) -> Vec<String> {
        let mut problems = Vec::new();
        let expected: Vec<TableEntry> = self.manifest.tables.clone();
        for entry in &expected {
            match self.read_table(&entry.name, |_| Ok(())) {
                Ok(found) if found.rows == entry.rows && found.sha256 == entry.sha256 => {}
                Ok(found) if found.rows != entry.rows => problems.push(format!(
                    "{}: the manifest says {} rows, the archive holds {}",
                    entry.name, entry.rows, found.rows
                )),
                Ok(_) => problems.push(format!(
                    "{}: {} rows as the manifest says, but their checksum differs (a row was changed)",
                    entry.name, entry.rows
                )),
                Err(e) => problems.push(format!("{}: {e}", entry.name)),
            }
        }
        let known: Vec<&str> = expected.iter().map(|t| t.file.as_str()).chain([MANIFEST]).collect();
        for raw in self.zip.file_names_raw() {
            let name = String::from_utf8_lossy(raw);
            if !known.contains(&name.as_ref()) {
                problems.push(format!("{name}: a member the manifest does not list"));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{StoreEntry, StoreStatus};
    use chrono::Utc;
    use serde_json::json;

    fn manifest() -> Manifest {
        Manifest {
            format: String::new(),
            loci_version: "test".into(),
            source_engine: "sqlite".into(),
            schema_revision: Some("m1".into()),
            snapshot: "test".into(),
            started_at: Utc::now(),
            finished_at: Utc::now(),
            stores: vec![StoreEntry {
                name: "relational".into(),
                backend: "sqlite".into(),
                status: StoreStatus::Included,
                detail: String::new(),
            }],
            tables: Vec::new(),
        }
    }

    fn write(dir: &Path, rows: &[Value]) -> PathBuf {
        let path = dir.join("b.zip");
        let mut w = ArchiveWriter::create(&path).unwrap();
        let mut t = w.table("things").unwrap();
        for r in rows {
            t.push(r).unwrap();
        }
        t.finish();
        w.table("empty").unwrap().finish();
        w.finish(manifest()).unwrap();
        path
    }

    #[test]
    fn rows_come_back_in_order_with_the_manifest_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let rows: Vec<Value> =
            (0..500).map(|i| json!({"id": i, "text": format!("row {i}"), "m": {"b": 1, "a": 2}})).collect();
        let path = write(dir.path(), &rows);
        assert!(!dir.path().join("b.zip.partial").exists());
        let mut r = ArchiveReader::open(&path).unwrap();
        assert_eq!(r.manifest().format, FORMAT);
        assert_eq!(r.manifest().total_rows(), 500);
        let mut back = Vec::new();
        let found = r.read_table("things", |row| {
            back.push(row);
            Ok(())
        });
        let found = found.unwrap();
        assert_eq!(back, rows);
        assert_eq!(found, r.manifest().tables[0].summary());
        assert!(r.check_members().is_empty());
        assert!(matches!(r.read_table("nope", |_| Ok(())), Err(VerifierError::NoSuchTable(_))));
    }

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &[json!({"id": 1})]);
        assert!(matches!(ArchiveWriter::create(&path), Err(VerifierError::Io { .. })));
    }

    #[test]
    fn a_truncated_archive_is_reported_as_damaged() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &[json!({"id": 1})]);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let err = ArchiveReader::open(&path).unwrap_err().to_string();
        assert!(err.contains("the archive is damaged"), "{err}");
    }
}
