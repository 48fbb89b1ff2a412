//! `/api/v1/graph` and the entity analytics of `/api/v1/entities`: known
//! answers on a small corpus, visibility and tenancy of every route, the
//! merge (dry run, apply, idempotent, scoped), and bad input.

use loci_tests::{Engine, TestApp};
use serde_json::{Value, json};

fn names(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap().to_owned()).collect()
}

fn buckets(body: &Value) -> Vec<(String, u64)> {
    body["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| (b["value"].as_str().unwrap().to_owned(), b["memories"].as_u64().unwrap()))
        .collect()
}

async fn graph_routes_answer_for_the_caller_only(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    let tess = app.user("tess", "acme", &["team:acme/core"]);
    let dave = app.user("dave", "acme", &[]);
    let stranger = app.user("eve", "globex", &[]);
    let m1 = alice
        .remember(
            "Caroline met Melanie in Denver.",
            json!({ "category": "decision", "tags": { "team": "core", "lang": "rust" } }),
        )
        .await;
    let m2 = alice.remember("Melanie works with Oscar.", json!({ "tags": { "team": "core" } })).await;
    let m3 = alice.remember("Oscar shared the Kafka runbook.", json!({ "access_entity": "team:acme/core" })).await;
    bob.remember("Caroline knows Quentin.", json!({ "tags": { "team": "secret" } })).await;
    let dated = dave.remember("Oscar plans the release for 2024-05-07.", json!({})).await;
    stranger.remember("Caroline met Zoe.", json!({ "tags": { "team": "core" } })).await;
    app.indexed().await;

    let (status, stats) = alice.get("/api/v1/graph/stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats,
        json!({ "memories": 3, "memories_with_entities": 3, "entities": 5, "mentions": 7, "co_mention_pairs": 5 })
    );
    let (_, theirs) = stranger.get("/api/v1/graph/stats").await;
    assert_eq!((theirs["memories"].clone(), theirs["entities"].clone()), (json!(1), json!(2)));

    let (status, by_tag) = alice.get("/api/v1/graph/aggregate/tag").await;
    assert_eq!(status, 200, "{by_tag}");
    assert_eq!(buckets(&by_tag), [("team=core".to_owned(), 2), ("lang=rust".to_owned(), 1)], "not bob's, not eve's");
    let (_, by_category) = alice.get("/api/v1/graph/aggregate/category?limit=5").await;
    assert_eq!(buckets(&by_category), [("decision".to_owned(), 1)]);
    assert_eq!((by_category["memories"].clone(), by_category["without_value"].clone()), (json!(3), json!(2)));
    let (_, by_app) = alice.get("/api/v1/graph/aggregate/app").await;
    assert_eq!(by_app["buckets"][0]["label"], "cli");
    let (_, by_state) = tess.get("/api/v1/graph/aggregate/state").await;
    assert_eq!(buckets(&by_state), [("active".to_owned(), 1)], "tess sees the shared memory only");

    let (_, pairs) = alice.get("/api/v1/graph/tags/cooccurrence").await;
    assert_eq!(pairs["pairs"], json!([{ "a": "lang=rust", "b": "team=core", "memories": 1 }]));
    let (_, related) = alice.get("/api/v1/graph/tags/team/related").await;
    assert_eq!(
        (related["memories_with_key"].clone(), related["related"].clone()),
        (json!(2), json!([{ "tag": "lang=rust", "memories": 1 }]))
    );

    let (_, found) = alice.get("/api/v1/graph/search/entities?q=MEL").await;
    assert_eq!(names(&found["items"]), ["melanie"]);
    let (_, found) = alice.get("/api/v1/graph/search/entities?q=quentin").await;
    assert_eq!(found["total"], 0, "bob's entity");
    let (status, hits) = alice.get("/api/v1/graph/search/memories?q=What%20did%20Oscar%20do%3F").await;
    assert_eq!(status, 200, "{hits}");
    let ids: Vec<&str> =
        hits["results"].as_array().unwrap().iter().map(|h| h["memory"]["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 2, "{hits}");
    assert!(ids.contains(&m2.as_str()) && ids.contains(&m3.as_str()), "{hits}");
    let (_, hits) = tess.get("/api/v1/graph/search/memories?q=Oscar").await;
    assert_eq!(hits["results"][0]["memory"]["id"], m3.as_str());
    assert_eq!(hits["total"], 1);
    let (_, hits) = stranger.get("/api/v1/graph/search/memories?q=Oscar").await;
    assert_eq!(hits["total"], 0);

    let (status, timeline) = dave.get("/api/v1/graph/timeline?entity=oscar&event_types=stated").await;
    assert_eq!(status, 200, "{timeline}");
    assert_eq!(
        timeline["events"],
        json!([{ "date": "2024-05-07", "precision": "day", "event_type": "stated", "memory_id": dated,
                 "excerpt": "Oscar plans the release for 2024-05-07.", "category": null }])
    );
    let (_, all) = alice.get("/api/v1/graph/timeline?from_year=2000").await;
    let created: Vec<&str> =
        all["events"].as_array().unwrap().iter().map(|e| e["memory_id"].as_str().unwrap()).collect();
    assert_eq!(created, [m1.as_str(), m2.as_str(), m3.as_str()], "oldest first");
    let (_, none) = alice.get("/api/v1/graph/timeline?to_year=2001").await;
    assert_eq!(none["events"], json!([]));
    let (status, _) = alice.get("/api/v1/graph/timeline?entity=quentin").await;
    assert_eq!(status, 404, "bob's entity ends no timeline of alice's");

    let (_, conn) = alice.get("/api/v1/graph/analytics/connectivity").await;
    assert_eq!(
        (
            conn["entities"].clone(),
            conn["edges"].clone(),
            conn["components"].clone(),
            conn["largest_component"].clone()
        ),
        (json!(5), json!(5), json!(1), json!(5))
    );
    let (_, communities) = alice.get("/api/v1/graph/analytics/communities/entities?min_size=1&members=100").await;
    let mut members: Vec<String> =
        communities["communities"].as_array().unwrap().iter().flat_map(|c| names(&c["members"])).collect();
    members.sort();
    assert_eq!(members, ["caroline", "denver", "kafka", "melanie", "oscar"]);
    let (_, again) = alice.get("/api/v1/graph/analytics/communities/entities?min_size=1&members=100").await;
    assert_eq!(again, communities, "same seed, same answer");
    let (_, by_memory) = alice.get("/api/v1/graph/analytics/communities/memories?min_size=1").await;
    let sizes: u64 = by_memory["communities"].as_array().unwrap().iter().map(|c| c["size"].as_u64().unwrap()).sum();
    assert_eq!(sizes, 3);

    let (status, page) = alice.get("/api/v1/entities/melanie/memories?limit=10").await;
    assert_eq!(status, 200, "{page}");
    let ids: Vec<&str> = page["items"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!((page["total"].clone(), ids), (json!(2), vec![m2.as_str(), m1.as_str()]));
    let (status, _) = alice.get("/api/v1/entities/quentin/memories").await;
    assert_eq!(status, 404);
    let relations = |body: &Value| -> Vec<(String, String, String)> {
        body["relations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let s = |v: &Value| v.as_str().unwrap().to_owned();
                (s(&r["relation_type"]), s(&r["direction"]), s(&r["entity"]["name"]))
            })
            .collect()
    };
    let t = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    let (_, rel) = alice.get("/api/v1/entities/melanie/relations").await;
    assert_eq!(
        relations(&rel),
        [
            t("works_with", "out", "oscar"),
            t("co_mentioned", "both", "caroline"),
            t("co_mentioned", "both", "denver"),
            t("co_mentioned", "both", "oscar")
        ],
        "{rel}"
    );
    assert_eq!(
        (rel["relations"][0]["current"].clone(), rel["relations"][0]["valid_to"].clone()),
        (json!(true), json!(null))
    );
    let (_, rel) = alice.get("/api/v1/entities/oscar/relations?direction=in&relation_types=works_with").await;
    assert_eq!(relations(&rel), [t("works_with", "in", "melanie")]);
    let (_, rel) = alice.get("/api/v1/entities/oscar/relations?direction=out&relation_types=works_with").await;
    assert_eq!(relations(&rel), []);
    let (_, central) = alice.get("/api/v1/entities/analytics/centrality?limit=10").await;
    assert_eq!(central["items"][0]["entity"]["name"], "melanie");
    assert_eq!(central["items"][0]["degree"], 3);
    assert_eq!(central["entities"], 5);
}

async fn duplicates_merge_once_and_only_where_the_caller_sees(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let kim = app.user("kim", "acme", &[]);
    let alice = app.user("alice", "acme", &[]);
    kim.remember("Melanie reviewed the Kubernetes upgrade.", json!({})).await;
    kim.remember("Oscar broke the Kubernets cluster.", json!({})).await;
    alice.remember("Caroline met Melanie.", json!({})).await;
    app.indexed().await;

    let (status, dups) = kim.get("/api/v1/entities/normalization/duplicates").await;
    assert_eq!(status, 200, "{dups}");
    assert_eq!(
        (
            dups["pairs"][0]["keep"]["name"].clone(),
            dups["pairs"][0]["merge"]["name"].clone(),
            dups["pairs"][0]["reason"].clone()
        ),
        (json!("kubernetes"), json!("kubernets"), json!("spelling")),
        "{dups}"
    );
    let (_, none) = alice.get("/api/v1/entities/normalization/duplicates").await;
    assert_eq!(none["pairs"], json!([]), "kim's entities are not alice's");

    let merge = json!({ "source": "Kubernets", "target": "kubernetes" });
    let (status, dry) = kim.post("/api/v1/entities/normalization/merge", merge.clone()).await;
    assert_eq!(status, 200, "{dry}");
    assert_eq!(
        (dry["dry_run"].clone(), dry["applied"].clone(), dry["memories_moved"].clone()),
        (json!(true), json!(false), json!(1))
    );
    let (_, still) = kim.get("/api/v1/entities/kubernets").await;
    assert_eq!(still["name"], "kubernets", "a dry run changes nothing");

    let (status, _) = alice
        .post(
            "/api/v1/entities/normalization/merge",
            json!({ "source": "kubernets", "target": "kubernetes", "dry_run": false }),
        )
        .await;
    assert_eq!(status, 404, "alice cannot merge what she cannot see");
    let reader = app.user_with_scopes("kim", "acme", &["entities:read"]);
    let (status, body) = reader
        .post(
            "/api/v1/entities/normalization/merge",
            json!({ "source": "kubernets", "target": "kubernetes", "dry_run": false }),
        )
        .await;
    assert_eq!((status, body["required_scope"].clone()), (403, json!("entities:write")), "{body}");

    let apply = json!({ "source": "Kubernets", "target": "kubernetes", "dry_run": false });
    let (status, done) = kim.post("/api/v1/entities/normalization/merge", apply.clone()).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!((done["applied"].clone(), done["already_merged"].clone()), (json!(true), json!(false)));
    let (_, entity) = kim.get("/api/v1/entities/kubernets").await;
    assert_eq!((entity["name"].clone(), entity["memories"].clone()), (json!("kubernetes"), json!(2)), "{entity}");
    assert_eq!(entity["aliases"][0]["alias"], "kubernets");
    let (_, again) = kim.post("/api/v1/entities/normalization/merge", apply).await;
    assert_eq!((again["applied"].clone(), again["already_merged"].clone()), (json!(false), json!(true)));
    let (_, dups) = kim.get("/api/v1/entities/normalization/duplicates").await;
    assert_eq!(dups["pairs"], json!([]));
    // A memory written later that names the old spelling lands on the entity.
    kim.remember("The Kubernets nodes were drained.", json!({})).await;
    app.indexed().await;
    let (_, entity) = kim.get("/api/v1/entities/kubernetes").await;
    assert_eq!(entity["memories"], 3, "{entity}");
}

async fn bad_graph_input_is_a_422_with_field_errors(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    alice.remember("Caroline met Melanie.", json!({})).await;
    app.indexed().await;
    let long = "x".repeat(10_000);
    for (path, field) in [
        ("/api/v1/graph/aggregate/colour".to_owned(), "dimension"),
        ("/api/v1/graph/aggregate/tag?limit=0".to_owned(), "limit"),
        ("/api/v1/graph/tags/cooccurrence?min_memories=x".to_owned(), "min_memories"),
        (format!("/api/v1/graph/tags/{}/related", "k".repeat(200)), "key"),
        ("/api/v1/graph/search/entities".to_owned(), "q"),
        ("/api/v1/graph/search/memories?q=%20%20".to_owned(), "q"),
        ("/api/v1/graph/search/memories?q=x&limit=101".to_owned(), "limit"),
        ("/api/v1/graph/timeline?event_types=born".to_owned(), "event_types"),
        ("/api/v1/graph/timeline?from_year=3000&to_year=2000".to_owned(), "to_year"),
        ("/api/v1/graph/timeline?from_year=99".to_owned(), "from_year"),
        (format!("/api/v1/graph/timeline?entity={long}"), "entity"),
        ("/api/v1/graph/analytics/communities/entities?members=1000".to_owned(), "members"),
        ("/api/v1/graph/analytics/communities/memories?seed=-1".to_owned(), "seed"),
        ("/api/v1/entities/caroline/memories?limit=0".to_owned(), "limit"),
        ("/api/v1/entities/caroline/relations?direction=up".to_owned(), "direction"),
        ("/api/v1/entities/caroline/relations?relation_types=hates".to_owned(), "relation_types"),
        ("/api/v1/entities/analytics/centrality?limit=9999".to_owned(), "limit"),
        ("/api/v1/entities/normalization/duplicates?limit=abc".to_owned(), "limit"),
    ] {
        let (status, body) = alice.get(&path).await;
        assert_eq!(status, 422, "{path}: {body}");
        let fields: Vec<&str> = body["errors"].as_array().unwrap().iter().filter_map(|e| e["field"].as_str()).collect();
        assert!(fields.contains(&field), "{path}: {body}");
    }
    for (body, field) in [
        (json!({ "source": "caroline", "target": "Caroline's" }), "target"),
        (json!({ "source": long, "target": "melanie" }), "source"),
        (json!({ "source": "caroline" }), "target"),
    ] {
        let (status, reply) = alice.post("/api/v1/entities/normalization/merge", body.clone()).await;
        assert_eq!(status, 422, "{body}: {reply}");
        // A missing field is the body's error, naming the field.
        let errors = reply["errors"].to_string();
        assert!(errors.contains(field), "{body}: {reply}");
    }
    let (_, entity) = alice.get("/api/v1/entities/caroline").await;
    assert_eq!(entity["memories"], 1, "nothing changed");
    let reader = app.user_with_scopes("alice", "acme", &["memories:read", "entities:read"]);
    let (status, body) = reader.get("/api/v1/graph/stats").await;
    assert_eq!((status, body["required_scope"].clone()), (403, json!("graph:read")), "{body}");
}

loci_tests::on_both!(
    graph_routes_answer_for_the_caller_only,
    duplicates_merge_once_and_only_where_the_caller_sees,
    bad_graph_input_is_a_422_with_field_errors
);
