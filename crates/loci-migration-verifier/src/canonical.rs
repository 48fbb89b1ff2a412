//! Canonical rows and per-table digests.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// The canonical text of one row: compact JSON with the keys of every object
/// sorted, so two engines that return the same values in a different key
/// order (PostgreSQL `jsonb` sorts keys by length, SQLite keeps the written
/// order) give the same line.
pub fn canonical_line(row: &Value) -> String {
    let mut out = String::new();
    write_canonical(row, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort_unstable();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                if let Some(v) = map.get(key) {
                    write_canonical(v, out);
                }
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Row count and SHA-256 of a table's canonical lines, each followed by a
/// newline, in the order they were fed (primary-key order by contract).
#[derive(Debug, Clone, Default)]
pub struct TableDigest {
    hasher: Sha256,
    rows: u64,
}

impl TableDigest {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one canonical line (without its newline).
    pub fn push_line(&mut self, line: &str) {
        self.hasher.update(line.as_bytes());
        self.hasher.update(b"\n");
        self.rows += 1;
    }

    /// Adds one row; returns its canonical line.
    pub fn push(&mut self, row: &Value) -> String {
        let line = canonical_line(row);
        self.push_line(&line);
        line
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The row count and the lowercase hex SHA-256.
    pub fn finish(self) -> (u64, String) {
        (self.rows, hex::encode(self.hasher.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_line() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,{"d":2,"c":3}],"x":"é\n"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"é\n","y":[1,{"c":3,"d":2}]},"b":1}"#).unwrap();
        assert_eq!(canonical_line(&a), canonical_line(&b));
        assert_eq!(canonical_line(&a), r#"{"a":{"x":"é\n","y":[1,{"c":3,"d":2}]},"b":1}"#);
    }

    #[test]
    fn digest_depends_on_every_row_and_their_order() {
        let digest = |rows: &[Value]| {
            let mut d = TableDigest::new();
            for r in rows {
                d.push(r);
            }
            d.finish()
        };
        let (n, empty) = digest(&[]);
        assert_eq!(n, 0);
        // SHA-256 of nothing.
        assert_eq!(empty, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        let one = digest(&[json!({"id": 1}), json!({"id": 2})]);
        assert_eq!(one.0, 2);
        assert_ne!(one, digest(&[json!({"id": 2}), json!({"id": 1})]));
        assert_ne!(one, digest(&[json!({"id": 1}), json!({"id": 3})]));
        assert_eq!(one, digest(&[json!({"id": 1}), json!({"id": 2})]));
    }
}
