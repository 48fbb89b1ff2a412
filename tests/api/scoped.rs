//! `GET /api/v1/memories/scoped`: identical content kept once, in the copy
//! of the highest scope precedence, paginated after deduplication, with the
//! spec's reporting fields; only what the caller may see.

use loci_tests::{Engine, TestApp};
use serde_json::{Value, json};

fn contents(body: &Value) -> Vec<(String, String)> {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (m["content"].as_str().unwrap().to_owned(), m["metadata"]["scope"].as_str().unwrap_or("user").to_owned())
        })
        .collect()
}

fn pair(content: &str, scope: &str) -> (String, String) {
    (content.to_owned(), scope.to_owned())
}

async fn scoped_retrieval_keeps_the_highest_precedence_copy(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tess = app.user("tess", "acme", &["team:acme/core", "org:acme"]);
    let bob = app.user("bob", "acme", &["org:acme"]);
    let eve = app.user("eve", "acme", &[]);
    tess.remember("Use Rust for services.", json!({})).await;
    tess.remember("use rust  for services.", json!({ "access_entity": "team:acme/core" })).await;
    tess.remember("USE RUST FOR SERVICES.", json!({ "access_entity": "org:acme" })).await;
    tess.remember("Never deploy on Fridays.", json!({ "access_entity": "org:acme" })).await;
    bob.remember("use rust for services.", json!({ "access_entity": "org:acme" })).await;
    eve.remember("Use Rust for services.", json!({})).await;

    let (status, body) = tess.get("/api/v1/memories/scoped").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        contents(&body),
        [pair("Use Rust for services.", "user"), pair("Never deploy on Fridays.", "org")],
        "the user's own copy outranks the team's and the org's; eve's private copy is not tess's"
    );
    assert_eq!((body["total_before_dedup"].clone(), body["total_after_dedup"].clone()), (json!(5), json!(2)));
    assert_eq!(body["dedup_by_scope"], json!({ "org": 2, "team": 1 }));
    assert_eq!((body["page"].clone(), body["pages"].clone()), (json!(1), json!(1)));

    // Only some scopes: the team copy is then the best one.
    let (_, body) = tess.get("/api/v1/memories/scoped?scopes=org,team").await;
    assert_eq!(contents(&body), [pair("use rust  for services.", "team"), pair("Never deploy on Fridays.", "org")]);
    assert_eq!((body["total_before_dedup"].clone(), body["total_after_dedup"].clone()), (json!(4), json!(2)));
    assert_eq!(body["dedup_by_scope"], json!({ "org": 2 }));
    // Among org copies only, the newest wins (bob's).
    let (_, body) = tess.get("/api/v1/memories/scoped?scopes=org").await;
    assert_eq!(contents(&body), [pair("use rust for services.", "org"), pair("Never deploy on Fridays.", "org")]);

    // Pages come after deduplication.
    let (_, body) = tess.get("/api/v1/memories/scoped?size=1&page=2").await;
    assert_eq!(contents(&body), [pair("Never deploy on Fridays.", "org")]);
    assert_eq!((body["pages"].clone(), body["size"].clone()), (json!(2), json!(1)));
    let (_, body) = tess.get("/api/v1/memories/scoped?size=1&page=3").await;
    assert_eq!(body["items"], json!([]));

    // Another user sees what is theirs.
    let (_, body) = eve.get("/api/v1/memories/scoped").await;
    assert_eq!(contents(&body), [pair("Use Rust for services.", "user")]);
    assert_eq!(body["dedup_by_scope"], json!({}));

    let (status, body) = tess.get("/api/v1/memories/scoped?scopes=galaxy").await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("scopes")), "{body}");
    let (status, body) = tess.get("/api/v1/memories/scoped?size=0").await;
    assert_eq!(status, 422, "{body}");
}

/// `dedupe: true` on search: one copy per content, the best scope's, at the
/// rank its content earned; `meta.dedup` reports what went.
async fn search_dedupes_by_scope_on_request(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let tess = app.user("tess", "acme", &["team:acme/core", "org:acme"]);
    tess.remember("USE RUST FOR SERVICES.", json!({ "access_entity": "org:acme" })).await;
    tess.remember("use rust  for services.", json!({ "access_entity": "team:acme/core" })).await;
    tess.remember("Rust services start with cargo new.", json!({})).await;
    app.indexed().await;
    let query = json!({ "query": "rust services", "mode": "lexical", "limit": 10 });
    let (status, plain) = tess.post("/api/v1/search", query.clone()).await;
    assert_eq!(status, 200, "{plain}");
    assert_eq!(plain["results"].as_array().unwrap().len(), 3);
    assert!(plain["meta"].get("dedup").is_none(), "no report unless asked");

    let mut asked = query;
    asked["dedupe"] = json!(true);
    let (status, body) = tess.post("/api/v1/search", asked).await;
    assert_eq!(status, 200, "{body}");
    let scopes: Vec<(&str, &str)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["content"].as_str().unwrap(), r["memory"]["metadata"]["scope"].as_str().unwrap_or("user")))
        .collect();
    assert_eq!(scopes.len(), 2, "{body}");
    assert!(scopes.contains(&("use rust  for services.", "team")), "the team copy outranks the org's: {scopes:?}");
    assert_eq!(
        body["meta"]["dedup"],
        json!({ "total_before_dedup": 3, "total_after_dedup": 2, "dedup_by_scope": { "org": 1 } })
    );
    assert_eq!(body["total_count"], 2);
}

loci_tests::on_both!(scoped_retrieval_keeps_the_highest_precedence_copy, search_dedupes_by_scope_on_request);
