//! The embedded profile's own token issuer: an Ed25519 key created on first
//! start in the data directory, its public JWKS served by the API, and
//! `loci token` to mint tokens with it. The production profile never uses it:
//! there, Loci never holds the identity provider's key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use josekit::jwk::Jwk;
use josekit::jwk::alg::ed::EdCurve;
use josekit::jws::{EdDSA, JwsHeader};
use josekit::jwt::JwtPayload;
use serde_json::Value;

use crate::{SecurityError, jwk_thumbprint, scopes};

/// What a minted token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintRequest {
    pub issuer: String,
    pub audience: String,
    pub subject: String,
    pub org_id: String,
    pub scopes: Vec<String>,
    pub roles: Vec<String>,
    pub grants: Vec<String>,
    pub client_id: Option<String>,
    pub ttl: Duration,
    /// Binds the token to a DPoP key (its RFC 7638 thumbprint).
    pub dpop_jkt: Option<String>,
}

/// Longest lifetime of a minted token.
pub const MAX_MINT_TTL: Duration = Duration::from_secs(30 * 86_400);

impl MintRequest {
    /// Checks what the token would claim before anything is signed: a valid
    /// org id, a subject of 1..=255 characters, known scopes, roles known to
    /// `role_overrides` (`auth.roles`) or built in, well-formed grants, and
    /// a lifetime of 1 s to [`MAX_MINT_TTL`]. Every problem is reported.
    pub fn check(&self, role_overrides: &BTreeMap<String, Vec<String>>) -> Result<(), SecurityError> {
        let mut problems = Vec::new();
        if let Err(e) = loci_core::OrgId::parse(&self.org_id) {
            problems.push(format!("org: {e}"));
        }
        if self.subject.trim().is_empty() || self.subject.chars().count() > 255 {
            problems.push("user: must be 1..=255 characters".to_owned());
        }
        if let Some(unknown) = self.scopes.iter().find(|s| !scopes::ALL.contains(&s.as_str())) {
            problems.push(format!("unknown scope `{unknown}` (known: {})", scopes::ALL.join(" ")));
        }
        let bundles = scopes::role_bundles(role_overrides);
        if let Some(unknown) = self.roles.iter().find(|r| !bundles.contains_key(r.as_str())) {
            let known: Vec<&str> = bundles.keys().map(String::as_str).collect();
            problems.push(format!("unknown role `{unknown}` (known: {})", known.join(" ")));
        }
        for g in &self.grants {
            if let Err(e) = g.parse::<loci_core::AccessEntity>() {
                problems.push(format!("grants: {e}"));
            }
        }
        if self.ttl < Duration::from_secs(1) || self.ttl > MAX_MINT_TTL {
            problems.push("ttl: must be between 1s and 30d".to_owned());
        }
        if problems.is_empty() { Ok(()) } else { Err(SecurityError::InvalidMint(problems.join("; "))) }
    }
}

/// A local Ed25519 signing key.
pub struct LocalIssuer {
    private: Jwk,
    kid: String,
}

impl std::fmt::Debug for LocalIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalIssuer").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl LocalIssuer {
    /// Where the key lives inside the data directory.
    pub fn key_path(data_dir: &Path) -> PathBuf {
        data_dir.join("keys").join("local-signing-key.jwk")
    }

    /// Loads the key from `data_dir`, creating it (mode 0600) on first use.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, SecurityError> {
        let path = Self::key_path(data_dir);
        if path.exists() {
            let bytes = std::fs::read(&path)?;
            let jwk = Jwk::from_bytes(&bytes).map_err(|e| SecurityError::Key(format!("{}: {e}", path.display())))?;
            return Self::from_private_jwk(jwk);
        }
        let pair = EdDSA.generate_key_pair(EdCurve::Ed25519).map_err(|e| SecurityError::Key(e.to_string()))?;
        let jwk = josekit::jwk::KeyPair::to_jwk_key_pair(&pair);
        let issuer = Self::from_private_jwk(jwk)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec(issuer.private.as_ref()).map_err(|e| SecurityError::Key(e.to_string()))?;
        write_private(&path, &json)?;
        tracing::info!(path = %path.display(), kid = %issuer.kid, "created the local token signing key");
        Ok(issuer)
    }

    fn from_private_jwk(mut jwk: Jwk) -> Result<Self, SecurityError> {
        if jwk.key_type() != "OKP" || jwk.curve() != Some("Ed25519") || jwk.parameter("d").is_none() {
            return Err(SecurityError::Key("the local signing key must be a private Ed25519 JWK".into()));
        }
        let kid = jwk_thumbprint(jwk.as_ref()).ok_or_else(|| SecurityError::Key("cannot compute the key id".into()))?;
        jwk.set_key_id(kid.clone());
        jwk.set_algorithm("EdDSA");
        jwk.set_key_use("sig");
        Ok(Self { private: jwk, kid })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half, as served in the JWKS.
    pub fn public_jwk(&self) -> Jwk {
        crate::jwks::public_only(&self.private).unwrap_or_else(|| Jwk::new("OKP"))
    }

    /// Signs an access token.
    pub fn mint(&self, req: &MintRequest) -> Result<String, SecurityError> {
        let key = |e: josekit::JoseError| SecurityError::Key(e.to_string());
        // Whole seconds: NumericDate may be fractional, but many validators
        // only accept integers.
        let secs = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);

        let mut payload = JwtPayload::new();
        payload.set_issuer(&req.issuer);
        payload.set_audience(vec![req.audience.clone()]);
        payload.set_subject(&req.subject);
        let exp = secs + req.ttl.as_secs().max(1);
        payload.set_claim("iat", Some(Value::from(secs))).map_err(key)?;
        payload.set_claim("nbf", Some(Value::from(secs))).map_err(key)?;
        payload.set_claim("exp", Some(Value::from(exp))).map_err(key)?;
        payload.set_jwt_id(uuid::Uuid::new_v4().to_string());
        payload.set_claim("org_id", Some(Value::String(req.org_id.clone()))).map_err(key)?;
        payload.set_claim("scope", Some(Value::String(req.scopes.join(" ")))).map_err(key)?;
        if !req.roles.is_empty() {
            payload.set_claim("roles", Some(serde_json::json!(req.roles))).map_err(key)?;
        }
        if !req.grants.is_empty() {
            payload.set_claim("grants", Some(serde_json::json!(req.grants))).map_err(key)?;
        }
        if let Some(client) = &req.client_id {
            payload.set_claim("client_id", Some(Value::String(client.clone()))).map_err(key)?;
        }
        if let Some(jkt) = &req.dpop_jkt {
            payload.set_claim("cnf", Some(serde_json::json!({ "jkt": jkt }))).map_err(key)?;
        }
        let mut header = JwsHeader::new();
        header.set_token_type("JWT");
        header.set_key_id(&self.kid);
        let signer = EdDSA.signer_from_jwk(&self.private).map_err(key)?;
        josekit::jwt::encode_with_signer(&payload, &header, &signer).map_err(key)
    }
}

#[cfg(unix)]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

#[cfg(not(unix))]
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    std::fs::write(path, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> MintRequest {
        MintRequest {
            issuer: "loci-local".into(),
            audience: "loci".into(),
            subject: "alice".into(),
            org_id: "acme".into(),
            scopes: vec!["memories:read".into()],
            roles: vec!["editor".into()],
            grants: vec!["team:acme/core".into()],
            client_id: None,
            ttl: Duration::from_secs(3600),
            dpop_jkt: None,
        }
    }

    #[test]
    fn mint_requests_are_checked_and_every_problem_is_named() {
        assert!(request().check(&BTreeMap::new()).is_ok());
        let bad = MintRequest {
            subject: " ".into(),
            org_id: "a\\b".into(),
            scopes: vec!["memories:everything".into()],
            roles: vec!["wizard".into()],
            grants: vec!["nonsense".into()],
            ttl: MAX_MINT_TTL + Duration::from_secs(1),
            ..request()
        };
        let message = bad.check(&BTreeMap::new()).unwrap_err().to_string();
        for part in ["org:", "user:", "memories:everything", "wizard", "grants:", "ttl:"] {
            assert!(message.contains(part), "{part} missing from {message}");
        }
        let custom = BTreeMap::from([("wizard".to_owned(), vec!["memories:read".to_owned()])]);
        assert!(MintRequest { roles: vec!["wizard".into()], ..request() }.check(&custom).is_ok());
    }

    #[test]
    fn the_key_is_created_once_private_to_its_owner_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let first = LocalIssuer::load_or_create(dir.path()).unwrap();
        let second = LocalIssuer::load_or_create(dir.path()).unwrap();
        assert_eq!(first.kid(), second.kid());
        assert!(first.public_jwk().parameter("d").is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(LocalIssuer::key_path(dir.path())).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!format!("{first:?}").contains("\"d\""));
    }
}
