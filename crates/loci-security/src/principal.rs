use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use loci_core::{AccessEntity, OrgId};
use serde::Serialize;

use crate::AuthError;

/// The authenticated caller, built only from a validated access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub org_id: OrgId,
    /// The identity provider's `sub`.
    pub subject: String,
    /// Effective scopes: the `scope` claim plus every role bundle.
    pub scopes: BTreeSet<String>,
    pub roles: Vec<String>,
    /// Access entities granted by the token; `user:<sub>` is always included.
    pub grants: Vec<AccessEntity>,
    /// The client (`client_id` or `azp` claim), used as the app name.
    pub client_id: Option<String>,
    /// The token's `jti`.
    pub token_id: String,
    /// Thumbprint of the DPoP key the token is bound to, if any.
    pub dpop_jkt: Option<String>,
    pub expires_at: DateTime<Utc>,
}

impl Principal {
    /// Ok when every scope in `required` is held; otherwise
    /// `InsufficientScope` naming each missing one.
    pub fn require_scopes(&self, required: &[&str]) -> Result<(), AuthError> {
        let missing: Vec<String> =
            required.iter().filter(|r| !self.scopes.contains(**r)).map(|r| r.to_string()).collect();
        if missing.is_empty() { Ok(()) } else { Err(AuthError::InsufficientScope(missing)) }
    }

    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.contains(scope)
    }

    /// Whether the caller may see something shared with `entity`. `None` (no
    /// access entity) is visible only to its owner, which the caller checks.
    pub fn can_access(&self, entity: &AccessEntity) -> bool {
        self.grants.iter().any(|g| g.covers(entity))
    }

    /// What `whoami` shows (REST and MCP): identity, scopes and grants,
    /// never the token.
    pub fn summary(&self) -> serde_json::Value {
        serde_json::json!({
            "user": self.subject,
            "org": self.org_id,
            "client": self.client_id,
            "scopes": self.scopes,
            "roles": self.roles,
            "grants": self.grants.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "dpop_bound": self.dpop_jkt.is_some(),
            "expires_at": self.expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        })
    }

    /// The caller's own access entity.
    pub fn user_entity(&self) -> AccessEntity {
        AccessEntity::User(self.subject.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: &[&str], grants: &[&str]) -> Principal {
        Principal {
            org_id: OrgId::parse("acme").unwrap(),
            subject: "alice".into(),
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            roles: vec![],
            grants: grants.iter().map(|g| g.parse().unwrap()).collect(),
            client_id: None,
            token_id: "t1".into(),
            dpop_jkt: None,
            expires_at: Utc::now(),
        }
    }

    #[test]
    fn require_scopes_names_every_missing_scope() {
        let p = principal(&["memories:read"], &[]);
        assert_eq!(p.require_scopes(&["memories:read"]), Ok(()));
        assert_eq!(
            p.require_scopes(&["memories:read", "memories:write", "apps:read"]),
            Err(AuthError::InsufficientScope(vec!["memories:write".into(), "apps:read".into()]))
        );
    }

    #[test]
    fn access_follows_grants() {
        let p = principal(&[], &["user:alice", "project:acme/loci"]);
        assert!(p.can_access(&"team:acme/loci/backend".parse().unwrap()));
        assert!(p.can_access(&"user:alice".parse().unwrap()));
        assert!(!p.can_access(&"org:acme".parse().unwrap()));
        assert!(!p.can_access(&"user:bob".parse().unwrap()));
    }
}
