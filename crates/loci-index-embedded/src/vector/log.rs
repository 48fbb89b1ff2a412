//! The append-only log file: header, replay with torn-tail detection,
//! appends, fsync and atomic rewrite (compaction).
//!
//! Header (36 bytes): `"LOCIVEC1" | version u32 | dims u32 | lineage u64 |
//! base_seq u64 | crc32 of the previous 32 bytes`. The lineage is a random id
//! given to the log when it is created and kept by compactions; graph
//! snapshots carry it, so a snapshot of another log is never reconciled with
//! this one. `base_seq` is the next sequence number at the last compaction,
//! so numbers are never reused after the records holding them are dropped.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::codec::{self, FRAME_HEADER, FrameHead, Record};
use loci_index::IndexError;

/// Name of the log file inside the index directory.
pub const LOG_FILE_NAME: &str = "vectors.log";
const REWRITE_FILE_NAME: &str = "vectors.log.rewrite";
const MAGIC: &[u8; 8] = b"LOCIVEC1";
const VERSION: u32 = 1;
pub(super) const HEADER_LEN: usize = 36;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogHeader {
    pub dims: u32,
    pub lineage: u64,
    pub base_seq: u64,
}

impl LogHeader {
    fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = Vec::with_capacity(HEADER_LEN);
        out.extend_from_slice(MAGIC);
        codec::put_u32(&mut out, VERSION);
        codec::put_u32(&mut out, self.dims);
        codec::put_u64(&mut out, self.lineage);
        codec::put_u64(&mut out, self.base_seq);
        let crc = codec::checksum(&out);
        codec::put_u32(&mut out, crc);
        let mut a = [0u8; HEADER_LEN];
        a.copy_from_slice(&out);
        a
    }

    fn decode(bytes: &[u8; HEADER_LEN]) -> Result<Self, String> {
        if &bytes[..8] != MAGIC {
            return Err("not a vector index log (bad magic)".into());
        }
        let mut r = codec::Reader::new(&bytes[8..]);
        let version = r.u32()?;
        let dims = r.u32()?;
        let lineage = r.u64()?;
        let base_seq = r.u64()?;
        let crc = r.u32()?;
        if crc != codec::checksum(&bytes[..HEADER_LEN - 4]) {
            return Err("log header checksum mismatch".into());
        }
        if version != VERSION {
            return Err(format!("unsupported log version {version}"));
        }
        Ok(Self { dims, lineage, base_seq })
    }
}

/// What opening the log found.
#[derive(Debug)]
pub(super) struct Opened {
    pub log: LogFile,
    pub header: LogHeader,
    /// Records replayed.
    pub records: u64,
    /// Bytes of a torn or garbled tail that were cut off.
    pub dropped_bytes: u64,
}

/// The open log file, positioned for appends after its last valid record.
#[derive(Debug)]
pub(super) struct LogFile {
    dir: PathBuf,
    file: File,
    /// Length of the valid content (header plus complete records).
    len: u64,
}

pub(super) fn io_err(what: &str, path: &Path, e: io::Error) -> IndexError {
    IndexError::Failed(format!("{what} {}: {e}", path.display()))
}

/// Opens the log of `dir` (creating it when absent), feeding every valid
/// record to `apply` in order, and cuts off a torn tail.
pub(super) fn open(
    dir: &Path,
    dims: u32,
    mut apply: impl FnMut(Record) -> Result<(), IndexError>,
) -> Result<Opened, IndexError> {
    let path = dir.join(LOG_FILE_NAME);
    // A rewrite that never got renamed is garbage; the log is still whole.
    let leftover = dir.join(REWRITE_FILE_NAME);
    if leftover.exists() {
        fs::remove_file(&leftover).map_err(|e| io_err("removing", &leftover, e))?;
    }
    let existing_len = match fs::metadata(&path) {
        Ok(m) => Some(m.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err("reading", &path, e)),
    };
    let header = match existing_len {
        // A log is created whole (temp file + rename), so a shorter file holds
        // no record: start afresh.
        None => create(dir, dims)?,
        Some(n) if n < HEADER_LEN as u64 => create(dir, dims)?,
        Some(_) => {
            let mut f = File::open(&path).map_err(|e| io_err("opening", &path, e))?;
            let mut raw = [0u8; HEADER_LEN];
            f.read_exact(&mut raw).map_err(|e| io_err("reading", &path, e))?;
            let header =
                LogHeader::decode(&raw).map_err(|e| IndexError::Corrupt(format!("{}: {e}", path.display())))?;
            if header.dims != dims {
                return Err(IndexError::Config(format!(
                    "the vector index in {} holds {}-dimensional vectors, not {dims}",
                    dir.display(),
                    header.dims
                )));
            }
            header
        }
    };

    let file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| io_err("opening", &path, e))?;
    let file_len = file.metadata().map_err(|e| io_err("reading", &path, e))?.len();
    let mut reader = BufReader::with_capacity(1 << 20, &file);
    reader.seek(SeekFrom::Start(HEADER_LEN as u64)).map_err(|e| io_err("reading", &path, e))?;
    let mut valid = HEADER_LEN as u64;
    let mut records = 0u64;
    let mut payload = Vec::new();
    loop {
        let mut head = [0u8; FRAME_HEADER];
        if !read_full(&mut reader, &mut head).map_err(|e| io_err("reading", &path, e))? {
            break;
        }
        let FrameHead::Payload { len, crc } = codec::frame_head(head) else { break };
        if valid + (FRAME_HEADER + len) as u64 > file_len {
            break;
        }
        payload.resize(len, 0);
        if !read_full(&mut reader, &mut payload).map_err(|e| io_err("reading", &path, e))? {
            break;
        }
        if codec::checksum(&payload) != crc {
            break;
        }
        let record = codec::decode(&payload)
            .map_err(|e| IndexError::Corrupt(format!("{} at byte {valid}: {e}", path.display())))?;
        apply(record)?;
        valid += (FRAME_HEADER + len) as u64;
        records += 1;
    }
    drop(reader);

    let dropped_bytes = file_len - valid;
    if dropped_bytes > 0 {
        tracing::warn!(path = %path.display(), dropped_bytes, "vector index log: cutting off a torn tail");
        file.set_len(valid).map_err(|e| io_err("truncating", &path, e))?;
        file.sync_all().map_err(|e| io_err("syncing", &path, e))?;
    }
    Ok(Opened { log: LogFile { dir: dir.to_owned(), file, len: valid }, header, records, dropped_bytes })
}

/// Fills `buf`; `false` when the input ends first (cleanly or mid-way).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    match r.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

fn create(dir: &Path, dims: u32) -> Result<LogHeader, IndexError> {
    let id = uuid::Uuid::new_v4();
    let b = id.as_bytes();
    let lineage = u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
    let header = LogHeader { dims, lineage, base_seq: 0 };
    Rewrite::begin(dir, &header)?.finish_into(dir)?;
    Ok(header)
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), IndexError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_err("syncing", dir, e))
}

impl LogFile {
    /// Writes `bytes` (whole records) after the last valid record. On failure
    /// the file is cut back, so a later append never follows garbage.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<(), IndexError> {
        if bytes.is_empty() {
            return Ok(());
        }
        let res = self.file.seek(SeekFrom::Start(self.len)).and_then(|_| self.file.write_all(bytes));
        match res {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                Err(io_err("appending to", &self.dir.join(LOG_FILE_NAME), e))
            }
        }
    }

    pub(super) fn sync(&mut self) -> Result<(), IndexError> {
        self.file.sync_data().map_err(|e| io_err("syncing", &self.dir.join(LOG_FILE_NAME), e))
    }

    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Replaces the log with the content of a finished rewrite.
    pub(super) fn replace(&mut self, rewrite: Rewrite) -> Result<(), IndexError> {
        let len = rewrite.finish_into(&self.dir)?;
        let path = self.dir.join(LOG_FILE_NAME);
        self.file = OpenOptions::new().read(true).write(true).open(&path).map_err(|e| io_err("opening", &path, e))?;
        self.len = len;
        Ok(())
    }
}

/// A new log being written beside the current one.
#[derive(Debug)]
pub(super) struct Rewrite {
    path: PathBuf,
    out: BufWriter<File>,
    len: u64,
}

impl Rewrite {
    pub(super) fn begin(dir: &Path, header: &LogHeader) -> Result<Self, IndexError> {
        let path = dir.join(REWRITE_FILE_NAME);
        let file = File::create(&path).map_err(|e| io_err("creating", &path, e))?;
        let mut rw = Self { path, out: BufWriter::with_capacity(1 << 20, file), len: 0 };
        rw.write(&header.encode())?;
        Ok(rw)
    }

    pub(super) fn write(&mut self, bytes: &[u8]) -> Result<(), IndexError> {
        self.out.write_all(bytes).map_err(|e| io_err("writing", &self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Syncs the new file and renames it over the log; returns its length.
    fn finish_into(self, dir: &Path) -> Result<u64, IndexError> {
        let Self { path, out, len } = self;
        let file = out.into_inner().map_err(|e| io_err("writing", &path, e.into_error()))?;
        file.sync_all().map_err(|e| io_err("syncing", &path, e))?;
        drop(file);
        let target = dir.join(LOG_FILE_NAME);
        fs::rename(&path, &target).map_err(|e| io_err("renaming", &path, e))?;
        sync_dir(dir)?;
        Ok(len)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_damage() {
        let h = LogHeader { dims: 384, lineage: 0xdead_beef_0123, base_seq: 42 };
        let raw = h.encode();
        assert_eq!(LogHeader::decode(&raw).unwrap(), h);
        let mut bad = raw;
        bad[13] ^= 1;
        assert!(LogHeader::decode(&bad).is_err());
        let mut bad = raw;
        bad[0] = b'X';
        assert!(LogHeader::decode(&bad).is_err());
    }
}
