//! Authentication and authorisation, framework-agnostic: JWT and DPoP
//! validation, principals, scopes and grants, the replay-cache trait.
//!
//! Status: skeleton. The security issue fills it; until then no route other
//! than the public health routes is served, so nothing depends on it yet.

use loci_core::OrgId;

/// The authenticated caller, built only from a validated access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub org_id: OrgId,
    /// The identity provider's `sub`.
    pub subject: String,
    pub scopes: Vec<String>,
}

impl Principal {
    /// Whether every scope in `required` is held.
    pub fn has_scopes(&self, required: &[&str]) -> bool {
        required.iter().all(|r| self.scopes.iter().any(|s| s == r))
    }
}

/// Errors of authentication and authorisation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecurityError {
    #[error("authentication is required")]
    MissingAuth,
    #[error("missing scope {0}")]
    InsufficientScope(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_required_scopes_must_be_present() {
        let p = Principal {
            org_id: OrgId::parse("acme").unwrap(),
            subject: "alice".into(),
            scopes: vec!["memories:read".into()],
        };
        assert!(p.has_scopes(&["memories:read"]));
        assert!(!p.has_scopes(&["memories:read", "memories:write"]));
    }
}
