//! Authentication through the HTTP stack: status codes, problem bodies,
//! challenge headers, DPoP over real requests, replay across two API
//! processes sharing Valkey, CORS, metrics and the metadata routes.

use loci_security::testing::{TestKey, jwks};
use loci_tests::{AppOptions, Engine, TestApp, valkey_url};
use serde_json::{Value, json};

async fn body(res: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn no_token_is_401_with_a_challenge_and_security_headers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, headers, problem) = body(app.get("/api/v1/whoami").await).await;
    assert_eq!(status, 401);
    assert_eq!(problem["code"], "MISSING_AUTH");
    assert_eq!(headers["content-type"], "application/problem+json");
    // RFC 9728: each challenge points at the protected-resource metadata.
    let metadata = format!("resource_metadata=\"{}/.well-known/oauth-protected-resource\"", app.address);
    assert_eq!(
        headers["www-authenticate"],
        format!("Bearer realm=\"loci\", {metadata}, DPoP algs=\"RS256 PS256 ES256 EdDSA\", {metadata}").as_str()
    );
    assert_eq!(headers["x-frame-options"], "DENY");
    assert!(problem["request_id"].is_string());
    assert!(!problem.to_string().to_lowercase().contains("bearer "), "no token material in the body");
}

#[tokio::test]
async fn a_local_token_authenticates_and_whoami_reports_the_principal() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let token = app.token("alice", "acme", &["memories:read"]);
    let res = app.client.get(app.url("/api/v1/whoami")).bearer_auth(&token).send().await.unwrap();
    let (status, _, me) = body(res).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!((me["user"].as_str(), me["org"].as_str()), (Some("alice"), Some("acme")));
    assert_eq!(me["scopes"], json!(["memories:read"]));
    assert_eq!(me["grants"], json!(["user:alice"]));
    assert_eq!(me["dpop_bound"], false);
}

#[tokio::test]
async fn bad_tokens_get_401_with_the_right_code_and_a_bearer_error() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let good = app.token("alice", "acme", &[]);
    let mut parts: Vec<&str> = good.split('.').collect();
    let stranger = TestKey::eddsa(Some("not-ours"));
    let foreign = stranger.token(&json!({"iss": "loci-local", "aud": "loci", "sub": "x", "org_id": "acme", "jti": "1",
        "iat": chrono::Utc::now().timestamp(), "exp": chrono::Utc::now().timestamp() + 60}));
    let truncated = {
        parts[2] = "AAAA";
        parts.join(".")
    };
    for (name, authorization) in [
        ("basic", "Basic YWxpY2U6cHc=".to_owned()),
        ("malformed", "Bearer not-a-jwt".to_owned()),
        ("bad signature", format!("Bearer {truncated}")),
        ("unknown key", format!("Bearer {foreign}")),
    ] {
        let res =
            app.client.get(app.url("/api/v1/whoami")).header("authorization", authorization).send().await.unwrap();
        let (status, headers, problem) = body(res).await;
        assert_eq!(status, 401, "{name}");
        let expected = if name == "basic" { "MISSING_AUTH" } else { "INVALID_TOKEN" };
        assert_eq!(problem["code"], expected, "{name}");
        let www = headers["www-authenticate"].to_str().unwrap();
        if name != "basic" {
            assert!(www.starts_with("Bearer realm=\"loci\", resource_metadata="), "{name}: {www}");
            assert!(www.contains("error=\"invalid_token\""), "{name}: {www}");
        }
    }
}

#[tokio::test]
async fn a_missing_scope_is_403_naming_it() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let token = app.token("alice", "acme", &["memories:read"]);
    let res = app.client.get(app.url("/metrics")).bearer_auth(&token).send().await.unwrap();
    let (status, headers, problem) = body(res).await;
    assert_eq!(status, 403);
    assert_eq!(problem["code"], "INSUFFICIENT_SCOPE");
    assert_eq!(problem["required_scope"], "admin:read");
    assert!(problem["detail"].as_str().unwrap().contains("admin:read"));
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"loci\", error=\"insufficient_scope\", scope=\"admin:read\""
    );
    // With the scope: Prometheus text, with the failure just counted.
    let admin = app.token("root", "acme", &["admin:read"]);
    let res = app.client.get(app.url("/metrics")).bearer_auth(&admin).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("auth_failures_total{code=\"INSUFFICIENT_SCOPE\"} 1"), "{text}");
    assert!(text.contains("http_requests_total{method=\"GET\",route=\"/metrics\",status=\"403\"} 1"), "{text}");
}

#[tokio::test]
async fn dpop_works_end_to_end_and_a_replay_is_rejected() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let key = TestKey::es256(None);
    let token = app.mint("alice", "acme", &["memories:read"], Some(key.thumbprint()));
    let url = app.url("/api/v1/whoami");
    let proof = key.proof("GET", &url, Some(&token));
    let call = |proof: String| {
        app.client.get(&url).header("authorization", format!("DPoP {token}")).header("dpop", proof).send()
    };
    let (status, _, me) = body(call(proof.clone()).await.unwrap()).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["dpop_bound"], true);
    let (status, headers, problem) = body(call(proof).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(problem["code"], "INVALID_DPOP_PROOF");
    let www = headers["www-authenticate"].to_str().unwrap();
    let metadata = format!("resource_metadata=\"{}/.well-known/oauth-protected-resource\"", app.address);
    assert!(
        www.starts_with(&format!("DPoP algs=\"RS256 PS256 ES256 EdDSA\", {metadata}, error=\"invalid_dpop_proof\"")),
        "{www}"
    );
    // The bound token presented as Bearer is refused.
    let res = app.client.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 401);
}

/// Two API processes behind one public URL, sharing Valkey: a proof used on
/// one is a replay on the other.
#[tokio::test]
async fn a_proof_replayed_against_a_second_instance_sharing_valkey_is_rejected() {
    let signing = TestKey::es256(Some("idp-1"));
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&signing]).to_string()).unwrap();
    let options = AppOptions::default().valkey(valkey_url()).with(move |s| {
        s.server.external_base_url = Some("https://api.loci.test".into());
        s.auth.issuer = Some("https://idp.loci.test/".into());
        s.auth.audience = vec!["loci-api".into()];
        s.auth.jwks_path = Some(jwks_path.clone());
    });
    let a = TestApp::spawn_with(Engine::Postgres, options.clone()).await;
    let b = TestApp::spawn_with(Engine::Postgres, options).await;

    let proof_key = TestKey::es256(None);
    let mut claims = loci_security::testing::claims("https://idp.loci.test/", "loci-api");
    claims["cnf"] = json!({ "jkt": proof_key.thumbprint() });
    let token = signing.token(&claims);
    let proof = proof_key.proof("GET", "https://api.loci.test/api/v1/whoami", Some(&token));
    let send = |app: &TestApp| {
        app.client
            .get(app.url("/api/v1/whoami"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof.clone())
            .send()
    };
    assert_eq!(send(&a).await.unwrap().status().as_u16(), 200);
    let (status, _, problem) = body(send(&b).await.unwrap()).await;
    assert_eq!(status, 401, "{problem}");
    assert_eq!(problem["code"], "INVALID_DPOP_PROOF");
    assert!(problem["detail"].as_str().unwrap().contains("replay"));
}

#[tokio::test]
async fn metadata_routes_are_public() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let (status, _, meta) = body(app.get("/.well-known/oauth-protected-resource").await).await;
    assert_eq!(status, 200);
    assert_eq!(meta["resource"], app.address);
    assert_eq!(meta["authorization_servers"], json!(["loci-local"]));
    assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
    assert!(meta["scopes_supported"].as_array().unwrap().contains(&json!("memories:read")));
    let (status, _, keys) = body(app.get("/.well-known/jwks.json").await).await;
    assert_eq!(status, 200);
    let key = &keys["keys"][0];
    assert_eq!((key["kty"].as_str(), key["crv"].as_str()), (Some("OKP"), Some("Ed25519")));
    assert!(key.get("d").is_none(), "never the private key");
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(|s| s.cors.allowed_origins = vec!["https://app.example".into()]),
    )
    .await;
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, app.url("/api/v1/whoami"))
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .header("access-control-request-headers", "authorization, dpop")
            .send()
    };
    let res = preflight("https://app.example").await.unwrap();
    assert!(res.status().is_success());
    assert_eq!(res.headers()["access-control-allow-origin"], "https://app.example");
    let res = preflight("https://evil.example").await.unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn restricted_health_deps_needs_admin_read() {
    let app =
        TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with(|s| s.server.public_health_deps = false)).await;
    assert_eq!(app.get("/health/deps").await.status().as_u16(), 401);
    let admin = app.token("root", "acme", &["admin:read"]);
    let res = app.client.get(app.url("/health/deps")).bearer_auth(admin).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
}
