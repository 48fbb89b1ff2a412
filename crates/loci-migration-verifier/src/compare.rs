//! Comparing two databases (or a database and a manifest) table by table.

use serde::{Deserialize, Serialize};

/// Row count and checksum of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableSummary {
    pub name: String,
    pub rows: u64,
    /// Lowercase hex SHA-256 of the canonical rows in primary-key order.
    pub sha256: String,
}

/// What one side holds of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableState {
    pub rows: u64,
    pub sha256: String,
}

/// A table whose two sides differ; `None` on a side that lacks the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    pub table: String,
    pub before: Option<TableState>,
    pub after: Option<TableState>,
}

impl Mismatch {
    /// One line for a report, e.g. "memories: 120 rows -> 119 rows".
    pub fn describe(&self) -> String {
        match (&self.before, &self.after) {
            (Some(b), Some(a)) if b.rows != a.rows => format!("{}: {} rows -> {} rows", self.table, b.rows, a.rows),
            (Some(b), Some(a)) => format!(
                "{}: {} rows on both sides but the content differs (checksum {} -> {})",
                self.table,
                b.rows,
                short(&b.sha256),
                short(&a.sha256)
            ),
            (Some(b), None) => format!("{}: {} rows -> table missing", self.table, b.rows),
            (None, Some(a)) => format!("{}: table missing -> {} rows", self.table, a.rows),
            (None, None) => format!("{}: missing on both sides", self.table),
        }
    }
}

fn short(sha: &str) -> &str {
    sha.get(..12).unwrap_or(sha)
}

/// The outcome of a comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerificationResult {
    pub success: bool,
    pub tables: usize,
    pub rows: u64,
    pub mismatches: Vec<Mismatch>,
}

/// Compares `before` with `after` table by table (by name, whatever the
/// order): every table of either side must be on both, with the same row
/// count and checksum.
pub fn compare(before: &[TableSummary], after: &[TableSummary]) -> VerificationResult {
    let state = |s: &TableSummary| TableState { rows: s.rows, sha256: s.sha256.clone() };
    let mut mismatches = Vec::new();
    for b in before {
        match after.iter().find(|a| a.name == b.name) {
            Some(a) if a.rows == b.rows && a.sha256 == b.sha256 => {}
            found => {
                mismatches.push(Mismatch { table: b.name.clone(), before: Some(state(b)), after: found.map(state) })
            }
        }
    }
    for a in after.iter().filter(|a| !before.iter().any(|b| b.name == a.name)) {
        mismatches.push(Mismatch { table: a.name.clone(), before: None, after: Some(state(a)) });
    }
    VerificationResult {
        success: mismatches.is_empty(),
        tables: before.len(),
        rows: before.iter().map(|t| t.rows).sum(),
        mismatches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, rows: u64, sha: &str) -> TableSummary {
        TableSummary { name: name.into(), rows, sha256: sha.into() }
    }

    #[test]
    fn equal_sides_succeed_whatever_the_order() {
        let r = compare(&[t("a", 1, "x"), t("b", 2, "y")], &[t("b", 2, "y"), t("a", 1, "x")]);
        assert!(r.success);
        assert_eq!((r.tables, r.rows), (2, 3));
    }

    #[test]
    fn every_difference_is_named() {
        let r = compare(
            &[t("same", 1, "s"), t("count", 3, "c"), t("content", 2, "aaaaaaaaaaaaaaaa"), t("gone", 4, "g")],
            &[t("same", 1, "s"), t("count", 2, "c"), t("content", 2, "bbbbbbbbbbbbbbbb"), t("new", 1, "n")],
        );
        assert!(!r.success);
        let lines: Vec<String> = r.mismatches.iter().map(Mismatch::describe).collect();
        assert_eq!(
            lines,
            [
                "count: 3 rows -> 2 rows",
                "content: 2 rows on both sides but the content differs (checksum aaaaaaaaaaaa -> bbbbbbbbbbbb)",
                "gone: 4 rows -> table missing",
                "new: table missing -> 1 rows",
            ]
        );
    }
}
