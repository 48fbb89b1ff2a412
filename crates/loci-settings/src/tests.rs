#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::io::Write;

use super::*;

fn env(pairs: &[(&str, &str)]) -> Sources {
    Sources { file: None, env: pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>() }
}

fn keys(err: SettingsError) -> Vec<String> {
    match err {
        SettingsError::Invalid(problems) => problems.into_iter().map(|p| p.key).collect(),
        SettingsError::Load(e) => panic!("expected validation problems, got load error {e}"),
    }
}

#[test]
fn empty_configuration_is_a_valid_embedded_setup() {
    let s = Settings::load(&env(&[])).expect("defaults are valid");
    assert_eq!(s.profile, Profile::Embedded);
    assert_eq!(s.server.port, 8080);
    assert!(s.database_url().expose().starts_with("sqlite://loci-data/loci.db"));
    assert_eq!(s.issuer(), "loci-local");
}

#[test]
fn production_with_nothing_set_names_every_missing_setting() {
    let err = Settings::load(&env(&[("LOCI_PROFILE", "production")])).unwrap_err();
    assert_eq!(keys(err), ["auth.audience", "auth.issuer", "auth.jwks_url", "database.url", "valkey.url"]);
}

#[test]
fn production_with_everything_set_is_valid() {
    let s = Settings::load(&env(&[
        ("LOCI__PROFILE", "production"),
        ("LOCI__DATABASE__URL", "postgres://loci:pw@db/loci"),
        ("LOCI__VALKEY__URL", "redis://cache:6379"),
        ("LOCI__AUTH__ISSUER", "https://idp.example/"),
        ("LOCI__AUTH__AUDIENCE", "loci-api,loci-mcp"),
        ("LOCI__AUTH__JWKS_URL", "https://idp.example/.well-known/jwks.json"),
    ]))
    .expect("complete production settings are valid");
    assert_eq!(s.auth.audience, ["loci-api", "loci-mcp"]);
}

#[test]
fn production_rejects_sqlite() {
    let err =
        Settings::load(&env(&[("LOCI_PROFILE", "production"), ("LOCI__DATABASE__URL", "sqlite://x.db")])).unwrap_err();
    assert!(err.to_string().contains("needs PostgreSQL"), "{err}");
}

#[test]
fn environment_overrides_file_which_overrides_defaults() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    writeln!(file, "[server]\nport = 9000\nhost = \"0.0.0.0\"\n[limits]\nmax_tags = 10").expect("write");
    let mut sources = env(&[("LOCI__SERVER__PORT", "9100")]);
    sources.file = Some(file.path().to_path_buf());
    let s = Settings::load(&sources).expect("valid");
    assert_eq!(s.server.port, 9100, "env wins over file");
    assert_eq!(s.server.host, "0.0.0.0", "file wins over default");
    assert_eq!(s.limits.max_tags, 10);
    assert_eq!(s.limits.max_content_bytes, 16 * 1024, "default kept");
}

#[test]
fn loci_config_env_names_the_file() {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    writeln!(file, "[server]\nport = 9200").expect("write");
    let path = file.path().to_string_lossy().to_string();
    let s = Settings::load(&env(&[("LOCI_CONFIG", &path)])).expect("valid");
    assert_eq!(s.server.port, 9200);
}

#[test]
fn missing_file_and_unknown_keys_are_load_errors() {
    let mut sources = env(&[]);
    sources.file = Some("/nonexistent/loci.toml".into());
    assert!(matches!(Settings::load(&sources), Err(SettingsError::Load(_))));
    let err = Settings::load(&env(&[("LOCI__SERVER__PROT", "1")])).unwrap_err();
    assert!(matches!(err, SettingsError::Load(ref m) if m.contains("prot")), "{err}");
}

#[test]
fn field_rules_are_reported_with_dotted_keys() {
    let err = Settings::load(&env(&[
        ("LOCI__SERVER__WORKERS", "100000"),
        ("LOCI__DATABASE__MAX_CONNECTIONS", "0"),
        ("LOCI__SERVER__EXTERNAL_BASE_URL", "not a url"),
    ]))
    .unwrap_err();
    assert_eq!(
        keys(err),
        ["database.max_connections", "database.min_connections", "server.external_base_url", "server.workers"]
    );
}

#[test]
fn short_hmac_key_is_rejected_without_echoing_it() {
    let err =
        Settings::load(&env(&[("LOCI__AUTH__ALGORITHMS", "HS256"), ("LOCI__AUTH__HMAC_KEYS", "short-secret-value")]))
            .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("auth.hmac_keys[0]: an HMAC key must be at least 32 bytes"), "{text}");
    assert!(!text.contains("short-secret-value"));
}

#[test]
fn hs256_without_a_key_and_alg_none_are_rejected() {
    let err = Settings::load(&env(&[("LOCI__AUTH__ALGORITHMS", "HS256,none")])).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no HMAC key"), "{text}");
    assert!(text.contains("`none` is never accepted"), "{text}");
}

#[test]
fn cors_wildcard_with_credentials_is_rejected() {
    let err = Settings::load(&env(&[("LOCI__CORS__ALLOWED_ORIGINS", "*"), ("LOCI__CORS__ALLOW_CREDENTIALS", "true")]))
        .unwrap_err();
    assert_eq!(keys(err), ["cors.allowed_origins"]);
    let ok = Settings::load(&env(&[("LOCI__CORS__ALLOWED_ORIGINS", "https://app.example,http://localhost:3000")]));
    assert!(ok.is_ok());
    let bad = Settings::load(&env(&[("LOCI__CORS__ALLOWED_ORIGINS", "https://app.example/path")]));
    assert!(bad.is_err());
}

#[test]
fn every_problem_of_a_bad_production_config_is_listed_at_once() {
    let err = Settings::load(&env(&[
        ("LOCI_PROFILE", "production"),
        ("LOCI__AUTH__ALGORITHMS", "HS256"),
        ("LOCI__AUTH__HMAC_KEYS", "tooshort"),
        ("LOCI__CORS__ALLOWED_ORIGINS", "*"),
        ("LOCI__CORS__ALLOW_CREDENTIALS", "true"),
    ]))
    .unwrap_err();
    assert_eq!(
        keys(err),
        [
            "auth.algorithms",
            "auth.audience",
            "auth.hmac_keys[0]",
            "auth.issuer",
            "auth.jwks_url",
            "cors.allowed_origins",
            "database.url",
            "valkey.url"
        ]
    );
}

#[test]
fn redacted_dump_hides_every_secret() {
    let s = Settings::load(&env(&[
        ("LOCI__DATABASE__URL", "postgres://loci:db-password-123@db/loci"),
        ("LOCI__VALKEY__URL", "redis://:valkey-password-456@cache:6379"),
        ("LOCI__AUTH__ALGORITHMS", "HS256,ES256"),
        ("LOCI__AUTH__HMAC_KEYS", "0123456789abcdef0123456789abcdef-hmac"),
        ("LOCI__EMBEDDINGS__API_KEY", "sk-embeddings-789"),
    ]))
    .expect("valid");
    let dump = s.to_redacted_toml().expect("toml");
    let debug = format!("{s:?}");
    for secret in ["db-password-123", "valkey-password-456", "0123456789abcdef", "sk-embeddings-789"] {
        assert!(!dump.contains(secret), "{secret} leaked into the dump");
        assert!(!debug.contains(secret), "{secret} leaked into Debug");
    }
    assert!(dump.contains("[REDACTED]"));
    assert_eq!(s.database_url().expose(), "postgres://loci:db-password-123@db/loci");
}

#[test]
fn production_refuses_hs256_and_unshared_nonce_secrets() {
    let err = Settings::load(&env(&[
        ("LOCI_PROFILE", "production"),
        ("LOCI__DATABASE__URL", "postgres://loci@db/loci"),
        ("LOCI__VALKEY__URL", "redis://cache:6379"),
        ("LOCI__AUTH__ISSUER", "https://idp.example/"),
        ("LOCI__AUTH__AUDIENCE", "loci"),
        ("LOCI__AUTH__JWKS_URL", "https://idp.example/jwks.json"),
        ("LOCI__AUTH__ALGORITHMS", "ES256,HS256"),
        ("LOCI__AUTH__HMAC_KEYS", "0123456789abcdef0123456789abcdef"),
        ("LOCI__DPOP__REQUIRE_NONCE", "true"),
    ]))
    .unwrap_err();
    assert_eq!(keys(err), ["auth.algorithms", "dpop.nonce_secret"]);
}

#[test]
fn code_roots_and_schemes_come_from_the_environment_and_are_checked() {
    let s = Settings::load(&env(&[
        ("LOCI__CODE__ALLOWED_ROOTS", "/srv/repos,/home/me/src"),
        ("LOCI__CODE__ALLOWED_GIT_SCHEMES", "https,file"),
    ]))
    .unwrap();
    assert_eq!(
        s.code.allowed_roots,
        [std::path::PathBuf::from("/srv/repos"), std::path::PathBuf::from("/home/me/src")]
    );
    assert_eq!(s.code.allowed_git_schemes, ["https", "file"]);
    let err = Settings::load(&env(&[("LOCI__CODE__ALLOWED_GIT_SCHEMES", "https,gopher")])).unwrap_err();
    assert_eq!(keys(err), ["code.allowed_git_schemes"]);
    let err = Settings::load(&env(&[
        ("LOCI_PROFILE", "production"),
        ("LOCI__DATABASE__URL", "postgres://loci:pw@db/loci"),
        ("LOCI__VALKEY__URL", "redis://cache:6379"),
        ("LOCI__AUTH__ISSUER", "https://idp.example/"),
        ("LOCI__AUTH__AUDIENCE", "loci-api"),
        ("LOCI__AUTH__JWKS_URL", "https://idp.example/.well-known/jwks.json"),
        ("LOCI__CODE__ALLOWED_ROOTS", "/srv/repos"),
    ]))
    .unwrap_err();
    assert_eq!(keys(err), ["code.allowed_roots"], "local paths are for the embedded profile");
}

#[test]
fn a_code_summary_needs_an_llm_url() {
    let err = Settings::load(&env(&[("LOCI__CODE__LLM_SUMMARY", "true")])).unwrap_err();
    assert!(err.to_string().contains("infer.url: required when code.llm_summary = true"), "{err}");
    let s = Settings::load(&env(&[
        ("LOCI__CODE__LLM_SUMMARY", "true"),
        ("LOCI__CATEGORIZER__URL", "http://127.0.0.1:11434/v1"),
    ]))
    .expect("the categoriser's endpoint serves");
    assert!(s.code.llm_summary);
}
