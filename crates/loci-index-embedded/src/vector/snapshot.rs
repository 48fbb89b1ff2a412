//! Snapshots of the HNSW graphs, so opening a large index does not rebuild
//! its graphs.
//!
//! One file per org under `graphs/`: `"LOCIHNS1" | lineage u64 | dims u32 |
//! org | slot count u32 | per slot the sequence number of its last change
//! (u64) | graph length u64 | graph (`Hnsw::encode`) | crc32 of all before`. Written atomically (temp file, fsync, rename). A snapshot never
//! has to match the log exactly: at open the slots whose sequence number or
//! liveness differ are brought up to date (see `OrgIndex::adopt_graph`).

use std::collections::HashSet;
use std::fs;
use std::io::Write;
use std::path::Path;

use loci_core::OrgId;

use super::codec::{self, Reader};
use super::hnsw::Hnsw;
use super::log::{io_err, sync_dir};
use super::org::OrgIndex;
use loci_index::IndexError;

pub(super) const GRAPH_DIR: &str = "graphs";
const MAGIC: &[u8; 8] = b"LOCIHNS1";
const SUFFIX: &str = ".hnsw";

/// 64-bit FNV-1a, for file names only.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The file name of an org's snapshot: two independent hashes of the org
/// (org ids may be longer than a file name and hold any visible character);
/// the org itself is inside the file and checked.
pub(super) fn file_name(org: &OrgId) -> String {
    let b = org.as_str().as_bytes();
    format!("{:016x}-{:08x}{SUFFIX}", fnv1a(b), codec::checksum(b))
}

/// Serialises the graph of `idx` (none when it has no graph).
pub(super) fn capture(org: &OrgId, lineage: u64, dims: usize, idx: &OrgIndex) -> Result<Option<Vec<u8>>, String> {
    let Some(g) = &idx.graph else { return Ok(None) };
    let n = g.hnsw.len();
    let mut out = Vec::with_capacity(64 + n * 160);
    out.extend_from_slice(MAGIC);
    codec::put_u64(&mut out, lineage);
    codec::put_u32(&mut out, u32::try_from(dims).map_err(|_| "dims too large")?);
    codec::put_str(&mut out, org.as_str());
    codec::put_u32(&mut out, u32::try_from(n).map_err(|_| "graph too large")?);
    for s in 0..n {
        codec::put_u64(&mut out, idx.slots.get(s).map_or(0, |slot| slot.seq));
    }
    let len_at = out.len();
    codec::put_u64(&mut out, 0);
    let graph_start = out.len();
    g.hnsw.encode(&mut out);
    let graph_len = (out.len() - graph_start) as u64;
    out[len_at..len_at + 8].copy_from_slice(&graph_len.to_le_bytes());
    let crc = codec::checksum(&out);
    codec::put_u32(&mut out, crc);
    Ok(Some(out))
}

pub(super) fn write(dir: &Path, org: &OrgId, bytes: &[u8]) -> Result<(), IndexError> {
    let graphs = dir.join(GRAPH_DIR);
    let name = file_name(org);
    let tmp = graphs.join(format!("{name}.tmp"));
    let target = graphs.join(&name);
    let mut f = fs::File::create(&tmp).map_err(|e| io_err("creating", &tmp, e))?;
    f.write_all(bytes).and_then(|()| f.sync_all()).map_err(|e| io_err("writing", &tmp, e))?;
    drop(f);
    fs::rename(&tmp, &target).map_err(|e| io_err("renaming", &tmp, e))?;
    sync_dir(&graphs)
}

/// A loaded snapshot: the graph and the sequence number of each of its slots.
pub(super) struct Loaded {
    pub graph: Hnsw,
    pub seqs: Vec<u64>,
}

/// Reads the snapshot of `org`; `Ok(None)` when there is none, `Err` when it
/// is unusable (damaged, or of another log or dimension).
pub(super) fn load(dir: &Path, org: &OrgId, lineage: u64, dims: usize) -> Result<Option<Loaded>, String> {
    let path = dir.join(GRAPH_DIR).join(file_name(org));
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    if bytes.len() < MAGIC.len() + 4 || &bytes[..MAGIC.len()] != MAGIC {
        return Err("not a graph snapshot".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    if codec::checksum(body) != u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]) {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader::new(&body[MAGIC.len()..]);
    if r.u64()? != lineage {
        return Err("snapshot of another log".into());
    }
    if r.u32()? as usize != dims {
        return Err("snapshot of another dimension".into());
    }
    if r.str()? != org.as_str() {
        return Err("snapshot of another org".into());
    }
    let n = r.u32()? as usize;
    let mut seqs = Vec::with_capacity(n);
    for _ in 0..n {
        seqs.push(r.u64()?);
    }
    let graph_len = usize::try_from(r.u64()?).map_err(|_| "graph length overflow")?;
    let mut graph_reader = Reader::new(r.take(graph_len)?);
    let graph = Hnsw::decode(&mut graph_reader)?;
    if !r.is_empty() || !graph_reader.is_empty() {
        return Err("trailing bytes in snapshot".into());
    }
    Ok(Some(Loaded { graph, seqs }))
}

/// Removes the snapshot of `org` (best effort: a stale snapshot is only
/// slower to reconcile, never wrong).
pub(super) fn remove(dir: &Path, org: &OrgId) {
    let _ = fs::remove_file(dir.join(GRAPH_DIR).join(file_name(org)));
}

/// Removes every snapshot file whose name is not in `keep`.
pub(super) fn remove_all_but(dir: &Path, keep: &HashSet<String>) {
    let Ok(entries) = fs::read_dir(dir.join(GRAPH_DIR)) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !keep.contains(&name) {
            let _ = fs::remove_file(entry.path());
        }
    }
}
