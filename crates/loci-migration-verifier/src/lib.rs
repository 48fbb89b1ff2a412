//! Migration verification (row counts, checksums, batch migration, savepoint
//! rollback, backup validation).
//!
//! Status: skeleton; its own issue fills it. The one operation it offers now
//! says so instead of pretending.

/// Errors of migration verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifierError {
    #[error("NOT_IMPLEMENTED: {0}")]
    NotImplemented(&'static str),
}

/// Compares a database before and after a migration.
pub fn verify() -> Result<(), VerifierError> {
    Err(VerifierError::NotImplemented("migration verification arrives with its own issue"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn verify_reports_not_implemented() {
        assert!(super::verify().unwrap_err().to_string().starts_with("NOT_IMPLEMENTED"));
    }
}
