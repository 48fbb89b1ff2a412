//! Binary encoding of the log records and of the small headers.
//!
//! A record is framed as `len: u32 LE | crc32(payload): u32 LE | payload`, so
//! a torn or garbled tail is detected at replay (short read or bad checksum)
//! and dropped. The payload starts with a kind byte and the record's sequence
//! number; strings are `u32 LE length | UTF-8 bytes`, options a `0/1` byte
//! before the value, ids their 16 UUID bytes, vectors `u32 LE length | f32 LE`.

use std::collections::BTreeMap;

use chrono::DateTime;
use loci_core::{AccessEntity, AppId, MemoryId, MemoryState, OrgId, UserId};
use uuid::Uuid;

use loci_index::{IndexDoc, StructuredFields};

/// Bytes of a frame header (`len | crc`).
pub(super) const FRAME_HEADER: usize = 8;
/// Larger payloads are treated as garbage (a vector of 2^20 dimensions fits).
pub(super) const MAX_PAYLOAD: usize = 64 << 20;

const KIND_UPSERT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_CLEAR_ORG: u8 = 3;
const KIND_CLEAR_ALL: u8 = 4;

/// One decoded log record.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Record {
    /// A document stored in `slot` of its org (content and context are not
    /// stored: no filter reads them).
    Upsert {
        seq: u64,
        slot: u32,
        doc: Box<IndexDoc>,
        vector: Vec<f32>,
    },
    Delete {
        seq: u64,
        org: OrgId,
        id: MemoryId,
    },
    ClearOrg {
        seq: u64,
        org: OrgId,
    },
    ClearAll {
        seq: u64,
    },
}

/// Appends one framed upsert record to `out`.
pub(super) fn encode_upsert(out: &mut Vec<u8>, seq: u64, slot: u32, doc: &IndexDoc, vector: &[f32]) {
    frame(out, |p| {
        p.push(KIND_UPSERT);
        put_u64(p, seq);
        put_str(p, doc.org_id.as_str());
        put_u32(p, slot);
        put_uuid(p, doc.id.as_uuid());
        put_uuid(p, doc.user_id.as_uuid());
        put_uuid(p, doc.app_id.as_uuid());
        put_str(p, doc.state.as_str());
        put_opt(p, doc.access_entity.as_ref().map(ToString::to_string).as_deref());
        // The structured fields in their fixed order (the format's order).
        for (_, value) in doc.fields.named() {
            put_opt(p, value);
        }
        put_len(p, doc.tags.len());
        for (k, v) in &doc.tags {
            put_str(p, k);
            put_str(p, v);
        }
        p.extend_from_slice(&doc.created_at.timestamp().to_le_bytes());
        put_u32(p, doc.created_at.timestamp_subsec_nanos());
        put_len(p, vector.len());
        p.reserve(vector.len() * 4);
        for x in vector {
            p.extend_from_slice(&x.to_le_bytes());
        }
    });
}

pub(super) fn encode_delete(out: &mut Vec<u8>, seq: u64, org: &OrgId, id: MemoryId) {
    frame(out, |p| {
        p.push(KIND_DELETE);
        put_u64(p, seq);
        put_str(p, org.as_str());
        put_uuid(p, id.as_uuid());
    });
}

pub(super) fn encode_clear(out: &mut Vec<u8>, seq: u64, org: Option<&OrgId>) {
    frame(out, |p| match org {
        Some(org) => {
            p.push(KIND_CLEAR_ORG);
            put_u64(p, seq);
            put_str(p, org.as_str());
        }
        None => {
            p.push(KIND_CLEAR_ALL);
            put_u64(p, seq);
        }
    });
}

/// What a frame header announces.
pub(super) enum FrameHead {
    /// A payload of this many bytes with this checksum follows.
    Payload { len: usize, crc: u32 },
    /// Not a plausible frame: the tail is garbage.
    Garbage,
}

pub(super) fn frame_head(bytes: [u8; FRAME_HEADER]) -> FrameHead {
    let len = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
    let crc = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
    if len == 0 || len > MAX_PAYLOAD { FrameHead::Garbage } else { FrameHead::Payload { len, crc } }
}

pub(super) fn checksum(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}

/// Decodes a payload whose checksum matched. An error here is a real
/// corruption (or a format this version does not know), not a torn write.
pub(super) fn decode(payload: &[u8]) -> Result<Record, String> {
    let mut r = Reader::new(payload);
    let kind = r.u8()?;
    let seq = r.u64()?;
    let record = match kind {
        KIND_UPSERT => {
            let org_id = r.org()?;
            let slot = r.u32()?;
            let id = MemoryId::from_uuid(r.uuid()?);
            let user_id = UserId::from_uuid(r.uuid()?);
            let app_id = AppId::from_uuid(r.uuid()?);
            let state: MemoryState = r.str()?.parse().map_err(|e| format!("state: {e}"))?;
            let access_entity = match r.opt()? {
                Some(s) => Some(s.parse::<AccessEntity>().map_err(|e| format!("access entity: {e}"))?),
                None => None,
            };
            let mut fields = StructuredFields::default();
            for (_, value) in fields.named_mut() {
                *value = r.opt()?.map(str::to_owned);
            }
            let n_tags = r.u32()? as usize;
            let mut tags = BTreeMap::new();
            for _ in 0..n_tags {
                let k = r.str()?.to_owned();
                let v = r.str()?.to_owned();
                tags.insert(k, v);
            }
            let secs = r.i64()?;
            let nanos = r.u32()?;
            let created_at = DateTime::from_timestamp(secs, nanos).ok_or("created_at out of range")?;
            let n = r.u32()? as usize;
            let raw = r.take(n.checked_mul(4).ok_or("vector length overflow")?)?;
            let vector =
                raw.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>();
            let doc = IndexDoc {
                id,
                org_id,
                user_id,
                app_id,
                state,
                content: String::new(),
                context: String::new(),
                access_entity,
                fields,
                tags,
                created_at,
            };
            Record::Upsert { seq, slot, doc: Box::new(doc), vector }
        }
        KIND_DELETE => {
            let org = r.org()?;
            let id = MemoryId::from_uuid(r.uuid()?);
            Record::Delete { seq, org, id }
        }
        KIND_CLEAR_ORG => Record::ClearOrg { seq, org: r.org()? },
        KIND_CLEAR_ALL => Record::ClearAll { seq },
        other => return Err(format!("unknown record kind {other}")),
    };
    if !r.is_empty() {
        return Err("trailing bytes in record".into());
    }
    Ok(record)
}

/// Writes the frame around what `body` appends.
fn frame(out: &mut Vec<u8>, body: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    body(out);
    let payload = &out[start + FRAME_HEADER..];
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    let crc = checksum(payload);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

pub(super) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

pub(super) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}

/// Lengths are bounded well below `u32::MAX` by the callers (strings of a
/// memory, vector dimensions).
fn put_len(out: &mut Vec<u8>, n: usize) {
    put_u32(out, u32::try_from(n).unwrap_or(u32::MAX));
}

pub(super) fn put_str(out: &mut Vec<u8>, s: &str) {
    put_len(out, s.len());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => {
            out.push(1);
            put_str(out, s);
        }
        None => out.push(0),
    }
}

fn put_uuid(out: &mut Vec<u8>, id: Uuid) {
    out.extend_from_slice(id.as_bytes());
}

/// A cursor over a byte slice whose reads fail instead of panicking.
pub(super) struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err("truncated record".into());
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.array::<1>()?[0])
    }

    pub(super) fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    pub(super) fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, String> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn uuid(&mut self) -> Result<Uuid, String> {
        Ok(Uuid::from_bytes(self.array()?))
    }

    pub(super) fn str(&mut self) -> Result<&'a str, String> {
        let n = self.u32()? as usize;
        std::str::from_utf8(self.take(n)?).map_err(|_| "invalid UTF-8 in record".to_owned())
    }

    fn opt(&mut self) -> Result<Option<&'a str>, String> {
        match self.u8()? {
            0 => Ok(None),
            1 => self.str().map(Some),
            other => Err(format!("invalid option tag {other}")),
        }
    }

    pub(super) fn org(&mut self) -> Result<OrgId, String> {
        OrgId::parse(self.str()?).map_err(|e| format!("org: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn doc() -> IndexDoc {
        IndexDoc {
            id: MemoryId::new(),
            org_id: OrgId::parse("acme/team:1").unwrap(),
            user_id: UserId::new(),
            app_id: AppId::new(),
            state: MemoryState::Paused,
            content: String::new(),
            context: String::new(),
            access_entity: Some("team:acme/loci/backend".parse().unwrap()),
            fields: StructuredFields {
                category: Some("preference".into()),
                artifact_type: Some("code".into()),
                artifact_ref: Some("src/main.rs#L1".into()),
                entity: Some("Zoë ☃".into()),
                ..StructuredFields::default()
            },
            tags: [("k".to_owned(), "v".to_owned()), ("empty".to_owned(), String::new())].into_iter().collect(),
            created_at: Utc::now(),
        }
    }

    fn decode_all(mut bytes: &[u8]) -> Vec<Record> {
        let mut out = Vec::new();
        while !bytes.is_empty() {
            let head: [u8; FRAME_HEADER] = bytes[..FRAME_HEADER].try_into().unwrap();
            let FrameHead::Payload { len, crc } = frame_head(head) else { panic!("garbage") };
            let payload = &bytes[FRAME_HEADER..FRAME_HEADER + len];
            assert_eq!(checksum(payload), crc);
            out.push(decode(payload).unwrap());
            bytes = &bytes[FRAME_HEADER + len..];
        }
        out
    }

    #[test]
    fn records_round_trip() {
        let d = doc();
        let mut plain = doc();
        plain.access_entity = None;
        plain.tags.clear();
        plain.fields.category = None;
        let vector = vec![0.25, -1.5, f32::MIN_POSITIVE, 3.0e-7];
        let mut buf = Vec::new();
        encode_upsert(&mut buf, 7, 3, &d, &vector);
        encode_upsert(&mut buf, 8, 0, &plain, &[]);
        encode_delete(&mut buf, 9, &d.org_id, d.id);
        encode_clear(&mut buf, 10, Some(&d.org_id));
        encode_clear(&mut buf, 11, None);
        let records = decode_all(&buf);
        assert_eq!(
            records,
            vec![
                Record::Upsert { seq: 7, slot: 3, doc: Box::new(d.clone()), vector },
                Record::Upsert { seq: 8, slot: 0, doc: Box::new(plain), vector: vec![] },
                Record::Delete { seq: 9, org: d.org_id.clone(), id: d.id },
                Record::ClearOrg { seq: 10, org: d.org_id.clone() },
                Record::ClearAll { seq: 11 },
            ]
        );
    }

    #[test]
    fn content_is_not_stored() {
        let mut d = doc();
        d.content = "secret text".into();
        d.context = "more".into();
        let mut buf = Vec::new();
        encode_upsert(&mut buf, 1, 0, &d, &[1.0]);
        let Record::Upsert { doc, .. } = decode(&buf[FRAME_HEADER..]).unwrap() else { panic!() };
        assert!(doc.content.is_empty() && doc.context.is_empty());
        assert_eq!(doc.id, d.id);
    }

    #[test]
    fn damaged_payloads_are_rejected_not_panicking() {
        let mut buf = Vec::new();
        encode_upsert(&mut buf, 1, 0, &doc(), &[1.0, 2.0]);
        let payload = &buf[FRAME_HEADER..];
        for cut in 0..payload.len() {
            assert!(decode(&payload[..cut]).is_err(), "prefix of {cut} bytes decoded");
        }
        let mut flipped = payload.to_vec();
        flipped[0] = 99;
        assert!(decode(&flipped).is_err());
        assert!(matches!(frame_head([0; FRAME_HEADER]), FrameHead::Garbage));
        assert!(matches!(frame_head([0xff; FRAME_HEADER]), FrameHead::Garbage));
    }
}
