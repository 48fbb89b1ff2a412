use loci_tests::{Engine, TestApp};

const SECURITY_HEADERS: &[(&str, &str)] = &[
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "strict-origin-when-cross-origin"),
    ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ("permissions-policy", "geolocation=(), camera=(), microphone=(), payment=(), usb=()"),
    (
        "content-security-policy",
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; \
         font-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'self'",
    ),
];

fn assert_security_headers(res: &reqwest::Response) {
    for (name, value) in SECURITY_HEADERS {
        assert_eq!(res.headers().get(*name).and_then(|v| v.to_str().ok()), Some(*value), "{name}");
    }
}

#[tokio::test]
async fn unknown_routes_get_a_problem_body_with_the_request_id() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let res = app.client.get(app.url("/api/v1/nope")).header("x-request-id", "trace-42.a_b:c").send().await.unwrap();
    assert_eq!(res.status().as_u16(), 404);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_eq!(res.headers()["x-request-id"], "trace-42.a_b:c");
    assert_security_headers(&res);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "NOT_FOUND");
    assert_eq!(body["status"], 404);
    assert_eq!(body["type"], "urn:loci:problem:not_found");
    assert_eq!(body["request_id"], "trace-42.a_b:c");
    assert!(body["title"].is_string() && body["detail"].is_string());
}

#[tokio::test]
async fn malformed_request_ids_are_replaced() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for bad in ["has space", "quote\"s", &"x".repeat(200)] {
        let res = app.client.get(app.url("/health/live")).header("x-request-id", bad).send().await.unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(id, bad);
        assert!(uuid::Uuid::parse_str(&id).is_ok(), "minted ids are UUIDs: {id}");
    }
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    for path in ["/health/live", "/health/ready", "/missing"] {
        let res = app.get(path).await;
        assert_security_headers(&res);
        assert!(res.headers().contains_key("x-request-id"));
    }
}

#[tokio::test]
async fn wrong_method_is_a_405_problem() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let res = app.client.post(app.url("/health/live")).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 405);
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    assert_security_headers(&res);
    assert_eq!(res.headers()["allow"], "GET", "RFC 9110: a 405 lists the methods the resource serves");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "METHOD_NOT_ALLOWED");
    assert!(body["request_id"].is_string());
    let res = app.client.put(app.url("/api/v1/memories")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), &res.headers()["allow"]), (405, &"GET, POST, DELETE".parse().unwrap()));
    let res = app.client.patch(app.url("/mcp")).send().await.unwrap();
    assert_eq!((res.status().as_u16(), &res.headers()["allow"]), (405, &"GET, POST, DELETE".parse().unwrap()));
}

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_docs_are_served() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status().as_u16(), 200);
    assert_security_headers(&res);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    for (path, method) in [
        ("/api/v1/memories", "post"),
        ("/api/v1/memories", "get"),
        ("/api/v1/memories", "delete"),
        ("/api/v1/memories/filter", "post"),
        ("/api/v1/memories/categories", "get"),
        ("/api/v1/memories/{id}", "get"),
        ("/api/v1/memories/{id}", "put"),
        ("/api/v1/memories/actions/{action}", "post"),
        ("/api/v1/memories/{id}/history", "get"),
        ("/api/v1/memories/{id}/access-log", "get"),
        ("/api/v1/memories/{id}/related", "get"),
        ("/api/v1/apps", "get"),
        ("/api/v1/apps/{id}", "get"),
        ("/api/v1/apps/{id}", "put"),
        ("/api/v1/apps/{id}/memories", "get"),
        ("/api/v1/apps/{id}/accessed", "get"),
        ("/api/v1/stats", "get"),
        ("/api/v1/whoami", "get"),
        ("/health/live", "get"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} undocumented");
    }
    assert_eq!(doc["components"]["securitySchemes"]["bearer"]["scheme"], "bearer");
    let page = app.get("/docs").await;
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.text().await.unwrap().contains("/docs/init.js"));
    assert_eq!(app.get("/docs/init.js").await.status().as_u16(), 200);
    assert_eq!(app.get("/docs/secrets.txt").await.status().as_u16(), 404);
}
