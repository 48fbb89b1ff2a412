//! Code intelligence end to end: repositories indexed from the fixture set
//! (tests/fixtures/code: Rust, Python, TypeScript, Go, Java, and two
//! repositories that depend on others), callers checked against the
//! hand-verified lists below, impact across repositories, code search,
//! explanations with memories, incremental re-indexing equal to a full
//! one, tenancy, path safety, the job queue's cap and cancellation, and the
//! MCP tools.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use loci_tests::{AppOptions, Engine, TestApp, TestUser};
use serde_json::{Value, json};

use crate::mcp::{connect, ok};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/code")
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A server whose allowed root is a fresh copy of the fixtures.
async fn app_with_root(engine: Engine, model: bool) -> (TestApp, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(), root.path());
    let allowed = root.path().to_path_buf();
    let mut options = AppOptions::default().with(move |s| {
        s.code.allowed_roots = vec![allowed.clone()];
        s.code.allowed_git_schemes.push("file".into());
    });
    if model {
        options = options.with_model();
    }
    (TestApp::spawn_with(engine, options).await, root)
}

/// Waits for a job to end; its final view.
async fn finished(user: &TestUser<'_>, job: &str) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = user.get(&format!("/api/v1/code/jobs/{job}")).await;
        assert_eq!(status, 200, "{body}");
        if !matches!(body["status"].as_str(), Some("queued" | "running")) {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "job {job} did not end: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Registers and indexes `dir` under `name`; the job's report.
async fn index(user: &TestUser<'_>, root: &Path, dir: &str, name: &str) -> Value {
    let path = root.join(dir).to_string_lossy().into_owned();
    let (status, body) = user.post("/api/v1/code/repos", json!({ "path": path, "name": name })).await;
    assert_eq!(status, 202, "{body}");
    let job = finished(user, body["job"]["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "done", "{job}");
    job["progress"].clone()
}

async fn symbol_id(user: &TestUser<'_>, name: &str, repo: &str) -> String {
    let (status, body) = user.get(&format!("/api/v1/code/symbols?name={name}&repo={repo}")).await;
    assert_eq!(status, 200, "{body}");
    let hits = body.as_array().unwrap();
    assert_eq!(hits.len(), 1, "{name} in {repo}: {body}");
    hits[0]["id"].as_str().unwrap().to_owned()
}

/// `(name of the far end, depth, resolution)` of every edge of a walk.
fn edges(tree: &Value) -> BTreeSet<(String, u64, String)> {
    tree["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["depth"].as_u64().unwrap(),
                e["resolution"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn set(items: &[(&str, u64, &str)]) -> BTreeSet<(String, u64, String)> {
    items.iter().map(|(n, d, r)| ((*n).to_owned(), *d, (*r).to_owned())).collect()
}

async fn indexes_queries_and_isolates(engine: Engine) {
    let (app, root) = app_with_root(engine, true).await;
    let alice = app.user("alice", "acme", &[]);
    for (dir, name) in [
        ("python", "shop"),
        ("python-app", "shop-report"),
        ("rust", "parse"),
        ("rust-app", "report"),
        ("ts", "web"),
        ("go", "inventory"),
        ("java", "store"),
    ] {
        let report = index(&alice, root.path(), dir, name).await;
        assert!(report["files_parsed"].as_u64().unwrap() > 0, "{name}: {report}");
        assert_eq!(report["files_parsed"], report["files_seen"], "{name}: first run parses everything");
        assert_eq!(report["symbols_indexed"], report["symbols"], "{name}: every symbol is searchable");
    }

    // DEPENDS_ON from the manifests, between registered repositories.
    let (_, repos) = alice.get("/api/v1/code/repos").await;
    let by_name = |n: &str| repos["items"].as_array().unwrap().iter().find(|r| r["name"] == n).unwrap().clone();
    assert_eq!(by_name("report")["depends_on"], json!(["parse"]));
    assert_eq!(by_name("shop-report")["depends_on"], json!(["shop"]));
    assert_eq!(by_name("web")["depends_on"], json!(["shop"]), "package.json names acme-shop");
    assert_eq!(by_name("parse")["packages"], json!(["acme_parse"]));
    assert_eq!(by_name("parse")["dependencies"], json!(["serde", "serde_json"]));

    // Callers, hand-verified against the fixture sources.
    let discount = symbol_id(&alice, "apply_discount", "shop").await;
    let (status, callers) = alice.get(&format!("/api/v1/code/symbols/{discount}/callers?depth=3")).await;
    assert_eq!(status, 200, "{callers}");
    assert_eq!(
        edges(&callers),
        set(&[("Cart.checkout", 1, "import"), ("quick_checkout", 2, "unique_name")]),
        "{callers}"
    );
    let with_tax = symbol_id(&alice, "with_tax", "shop").await;
    let (_, callers) = alice.get(&format!("/api/v1/code/symbols/{with_tax}/callers?depth=1")).await;
    assert_eq!(edges(&callers), set(&[("PriceBook.total", 1, "same_file"), ("Cart.checkout", 1, "import")]));
    let parse_orders = symbol_id(&alice, "parse_orders", "parse").await;
    let (_, callees) = alice.get(&format!("/api/v1/code/symbols/{parse_orders}/callees?depth=1")).await;
    assert!(edges(&callees).iter().all(|(_, _, how)| how == "unresolved"), "std calls only: {callees}");
    let count = symbol_id(&alice, "count_orders", "parse").await;
    let (_, callees) = alice.get(&format!("/api/v1/code/symbols/{count}/callees?depth=1")).await;
    let named = edges(&callees);
    assert!(named.contains(&("parse_orders".into(), 1, "same_file".into())), "{callees}");
    assert!(named.contains(&("Order::total".into(), 1, "import".into())), "{callees}");
    let external = callees["edges"].as_array().unwrap().iter().find(|e| e["name"] == "to_string").unwrap();
    assert_eq!(external["module"], "serde_json", "a call out of the repository names its module");

    // Impact crosses into the repositories that depend on this one.
    let (status, impact) = alice.get(&format!("/api/v1/code/symbols/{parse_orders}/impact?depth=3")).await;
    assert_eq!(status, 200, "{impact}");
    let hits: Vec<(String, u64, bool)> = impact["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["symbol"]["qualified_name"].as_str().unwrap().to_owned(),
                h["depth"].as_u64().unwrap(),
                h["cross_repo"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        hits,
        vec![("count_orders".into(), 1, false), ("summarize".into(), 2, true), ("main".into(), 3, true)],
        "ranked nearest first: {impact}"
    );
    let main = impact["hits"].as_array().unwrap().iter().find(|h| h["symbol"]["name"] == "main").unwrap();
    assert_eq!(main["path"], json!(["main", "summarize", "count_orders", "parse_orders"]), "the path explains the hit");
    assert_eq!(impact["dependent_repos"], json!(["report"]));
    let (_, impact) = alice.get(&format!("/api/v1/code/symbols/{discount}/impact?depth=2")).await;
    let report = impact["hits"].as_array().unwrap().iter().find(|h| h["symbol"]["name"] == "discounted_report");
    assert!(report.is_some_and(|h| h["cross_repo"] == true && h["depth"] == 1), "python import across repos: {impact}");

    // Code search: identifiers split into words, filters, all three sources.
    let (status, found) = alice.post("/api/v1/code/search", json!({ "query": "apply discount to a price" })).await;
    assert_eq!(status, 200, "{found}");
    assert_eq!(found["hits"][0]["symbol"]["qualified_name"], "apply_discount", "{found}");
    assert_eq!(found["missing_sources"], json!([]));
    let (_, found) =
        alice.post("/api/v1/code/search", json!({ "query": "formatMoney", "language": "typescript" })).await;
    let first = &found["hits"][0];
    assert_eq!(first["symbol"]["name"], "formatMoney", "{found}");
    assert!(first["sources"].as_array().unwrap().contains(&json!("graph")), "an exact name is graph evidence: {found}");
    assert!(found["hits"].as_array().unwrap().iter().all(|h| h["symbol"]["language"] == "typescript"));
    let (_, found) = alice
        .post("/api/v1/code/search", json!({ "query": "reserve stock", "repo": "inventory", "kind": "method" }))
        .await;
    assert!(
        found["hits"]
            .as_array()
            .unwrap()
            .iter()
            .all(|h| h["symbol"]["repo"] == "inventory" && h["symbol"]["kind"] == "method")
    );
    let top: BTreeSet<&str> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .take(2)
        .map(|h| h["symbol"]["qualified_name"].as_str().unwrap())
        .collect();
    assert_eq!(top, BTreeSet::from(["Stock.Reserve", "Store.Reserve"]), "{found}");

    // Explanations bring the team's memories that mention the symbol.
    alice.remember("Always build orders with Order::new so that quantities are checked", json!({})).await;
    app.indexed().await;
    let client = connect(&app, &alice.token).await;
    let explained = ok(&client, "explain_code", json!({ "symbol": "Order::new", "repo": "parse" })).await;
    assert_eq!(explained["symbol"]["doc"], "Builds an order.");
    assert_eq!(explained["callers"][0]["name"], "parse_line");
    assert!(explained["code"].as_str().unwrap().starts_with("pub fn new"));
    assert!(explained["memories"][0]["content"].as_str().unwrap().contains("Order::new"), "{explained}");
    let callers = ok(&client, "find_callers", json!({ "symbol": "Ledger.audit", "depth": 2 })).await;
    assert_eq!(callers["edges"][0]["name"], "Ledger.record");
    let impact = ok(&client, "impact_analysis", json!({ "symbol": "NewStock" })).await;
    assert_eq!(impact["hits"][0]["symbol"]["name"], "main");
    let searched = ok(&client, "search_code_hybrid", json!({ "query": "render the basket", "kind": "method" })).await;
    let top: Vec<&str> = searched["hits"]
        .as_array()
        .unwrap()
        .iter()
        .take(3)
        .map(|h| h["symbol"]["qualified_name"].as_str().unwrap())
        .collect();
    assert!(top.contains(&"BasketView.render"), "{searched}");

    // Another org sees none of it, through any route or tool.
    let eve = app.user("eve", "other", &[]);
    let (_, theirs) = eve.get("/api/v1/code/repos").await;
    assert_eq!(theirs["items"], json!([]));
    let (status, none) = eve.get("/api/v1/code/symbols?name=apply_discount").await;
    assert_eq!((status, none), (200, json!([])));
    for route in ["", "/callers", "/callees", "/impact"] {
        let (status, body) = eve.get(&format!("/api/v1/code/symbols/{discount}{route}")).await;
        assert_eq!(status, 404, "{route}: {body}");
        assert_eq!(body["code"], "NOT_FOUND");
    }
    let (_, found) = eve.post("/api/v1/code/search", json!({ "query": "apply discount" })).await;
    assert_eq!(found["hits"], json!([]));
    let repo_id = by_name("shop")["id"].as_str().unwrap().to_owned();
    assert_eq!(eve.get(&format!("/api/v1/code/repos/{repo_id}")).await.0, 404);
    assert_eq!(eve.post(&format!("/api/v1/code/repos/{repo_id}/index"), json!({})).await.0, 404);
    assert_eq!(eve.send(reqwest::Method::DELETE, &format!("/api/v1/code/repos/{repo_id}"), None).await.0, 404);
    let (status, _) = eve.post("/api/v1/code/search", json!({ "query": "x", "repo": "shop" })).await;
    assert_eq!(status, 404, "another org's repository name is unknown");
    let eve_client = connect(&app, &eve.token).await;
    let result = eve_client
        .call_tool(
            rmcp::model::CallToolRequestParams::new("find_callers")
                .with_arguments(json!({ "symbol": "apply_discount" }).as_object().unwrap().clone()),
        )
        .await
        .unwrap();
    assert_eq!(result.structured_content.unwrap()["code"], "NOT_FOUND");

    // Deleting a repository takes its symbols out of every index.
    assert_eq!(alice.send(reqwest::Method::DELETE, &format!("/api/v1/code/repos/{repo_id}"), None).await.0, 204);
    let (_, found) = alice.post("/api/v1/code/search", json!({ "query": "apply discount", "mode": "lexical" })).await;
    assert!(found["hits"].as_array().unwrap().iter().all(|h| h["symbol"]["repo"] != "shop"), "{found}");
    assert_eq!(alice.get(&format!("/api/v1/code/symbols/{discount}")).await.0, 404);
}

/// `(path, kind, qualified name, lines)` of every symbol and `(caller,
/// callee, resolution)` of every call of a repository, by name (ids differ
/// between repositories).
async fn graph_of(user: &TestUser<'_>, repo: &str, names: &[&str]) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for name in names {
        let (_, symbols) = user.get(&format!("/api/v1/code/symbols?name={name}&repo={repo}&limit=100")).await;
        for s in symbols.as_array().unwrap() {
            let text = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            out.insert(format!(
                "def {} {} {} {}-{}",
                text(&s["path"]),
                text(&s["kind"]),
                text(&s["qualified_name"]),
                s["start_line"],
                s["end_line"]
            ));
            let id = s["id"].as_str().unwrap();
            let (_, callees) = user.get(&format!("/api/v1/code/symbols/{id}/callees?depth=1")).await;
            for e in callees["edges"].as_array().unwrap() {
                out.insert(format!(
                    "call {} -> {} {} @{}:{}",
                    text(&s["qualified_name"]),
                    text(&e["name"]),
                    text(&e["resolution"]),
                    text(&e["call_path"]),
                    e["call_line"]
                ));
            }
        }
    }
    out
}

async fn reindexing_parses_only_what_changed_and_matches_a_full_index(engine: Engine) {
    let (app, root) = app_with_root(engine, false).await;
    let alice = app.user("alice", "acme", &[]);
    let first = index(&alice, root.path(), "python", "shop").await;
    assert_eq!(first["files_parsed"], 3);

    // Nothing changed: nothing parsed.
    let (_, repos) = alice.get("/api/v1/code/repos").await;
    let repo_id = repos["items"][0]["id"].as_str().unwrap().to_owned();
    let (_, job) = alice.post(&format!("/api/v1/code/repos/{repo_id}/index"), json!({})).await;
    let again = finished(&alice, job["job_id"].as_str().unwrap()).await["progress"].clone();
    assert_eq!((again["files_parsed"].clone(), again["files_unchanged"].clone()), (json!(0), json!(3)), "{again}");

    // One file changes (a function added and called, one removed), one is deleted.
    let pricing = root.path().join("python/shop/pricing.py");
    let text = std::fs::read_to_string(&pricing).unwrap();
    let changed = text.replace("    def lookup(self, sku):\n        return self.prices.get(sku, 0)\n", "")
        + "\n\ndef rounded(value):\n    return round(value, 2)\n";
    let changed = changed.replace(
        "def with_tax(price):\n    return price * (1 + TAX_RATE)",
        "def with_tax(price):\n    return rounded(price * (1 + TAX_RATE))",
    );
    std::fs::write(&pricing, &changed).unwrap();
    std::fs::remove_file(root.path().join("python/shop/__init__.py")).unwrap();
    let (_, job) = alice.post(&format!("/api/v1/code/repos/{repo_id}/index"), json!({})).await;
    let incremental = finished(&alice, job["job_id"].as_str().unwrap()).await["progress"].clone();
    assert_eq!(incremental["files_parsed"], 1, "only the changed file is parsed again: {incremental}");
    assert_eq!(incremental["files_unchanged"], 1);
    assert_eq!(incremental["files_removed"], 1);

    // The same tree indexed from scratch gives the same graph.
    copy_dir(&root.path().join("python"), &root.path().join("python-copy"));
    let full = index(&alice, root.path(), "python-copy", "shop-full").await;
    assert_eq!(full["files_parsed"], 2);
    let names = [
        "apply_discount",
        "with_tax",
        "rounded",
        "PriceBook",
        "total",
        "lookup",
        "checkout",
        "quick_checkout",
        "add",
        "set_price",
        "__init__",
        "TAX_RATE",
        "Cart",
    ];
    let incremental_graph = graph_of(&alice, "shop", &names).await;
    let full_graph = graph_of(&alice, "shop-full", &names).await;
    assert_eq!(incremental_graph, full_graph);
    assert!(
        incremental_graph.iter().any(|l| l.starts_with("call with_tax -> rounded same_file")),
        "{incremental_graph:#?}"
    );
    assert!(
        !incremental_graph.iter().any(|l| l.starts_with("def") && l.contains("lookup")),
        "a removed function leaves the graph"
    );
    assert!(
        incremental_graph.iter().any(|l| l.starts_with("call PriceBook.total -> lookup unresolved")),
        "{incremental_graph:#?}"
    );
    let (_, gone) =
        alice.post("/api/v1/code/search", json!({ "query": "lookup", "repo": "shop", "mode": "lexical" })).await;
    assert!(gone["hits"].as_array().unwrap().iter().all(|h| h["symbol"]["name"] != "lookup"), "and the index: {gone}");
}

/// With `code.llm_summary`, explain_code adds the model's summary (told the
/// symbol, its code and neighbours, never the team's memories), asks once
/// per unchanged symbol, and explains without it when the model fails.
#[tokio::test]
async fn explain_code_adds_the_models_summary_and_explains_without_it() {
    use crate::infer::{Answer, Script, model_endpoint};
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};
    let script: Script = Arc::new(Mutex::new(vec![
        Answer::ok(json!({ "summary": "Builds an order and checks its quantity; parse_line relies on it." })),
        Answer { status: 503, content: String::new(), delay: Duration::ZERO },
    ]));
    let (url, calls, seen) = model_endpoint(script);
    let root = tempfile::tempdir().unwrap();
    copy_dir(&fixtures(), root.path());
    let allowed = root.path().to_path_buf();
    let app = TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with(move |s| {
            s.code.allowed_roots = vec![allowed.clone()];
            s.code.llm_summary = true;
            s.infer.url = Some(url.clone());
            s.infer.model = Some("code-model".into());
            s.infer.timeout_ms = 500;
            s.infer.retries = 0;
        }),
    )
    .await;
    let alice = app.user("alice", "acme", &[]);
    index(&alice, root.path(), "rust", "parse").await;
    alice.remember("Order::new is where the secret quantity rule lives", json!({})).await;
    app.indexed().await;

    let order_new = symbol_id(&alice, "Order::new", "parse").await;
    let (status, explained) = alice.get(&format!("/api/v1/code/symbols/{order_new}")).await;
    assert_eq!(status, 200, "{explained}");
    assert_eq!(
        explained["summary"],
        json!({ "text": "Builds an order and checks its quantity; parse_line relies on it.", "model": "code-model" })
    );
    assert_eq!(explained["missing_sources"], json!([]));
    assert!(explained["memories"][0]["content"].as_str().unwrap().contains("secret quantity"), "{explained}");
    let asked = seen.lock().unwrap()[0].clone();
    assert_eq!(asked["model"], "code-model");
    assert_eq!(asked["response_format"]["json_schema"]["name"], "code_summary");
    let told: Value = serde_json::from_str(asked["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(told["qualified_name"], "Order::new");
    assert_eq!(told["callers"][0], "parse_line", "{told}");
    assert!(told["code"].as_str().unwrap().starts_with("pub fn new"), "{told}");
    assert!(!asked.to_string().contains("secret quantity"), "memories are never sent to the model");

    // The same symbol again: from the cache.
    let (_, again) = alice.get(&format!("/api/v1/code/symbols/{order_new}")).await;
    assert_eq!(again["summary"], explained["summary"]);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // The model fails: the explanation is whole but for the summary.
    let parse_line = symbol_id(&alice, "parse_line", "parse").await;
    let (status, degraded) = alice.get(&format!("/api/v1/code/symbols/{parse_line}")).await;
    assert_eq!(status, 200, "{degraded}");
    assert_eq!(degraded["summary"], Value::Null);
    assert_eq!(degraded["missing_sources"], json!(["llm"]));
    assert_eq!(degraded["symbol"]["name"], "parse_line");
    assert!(!degraded["callees"].as_array().unwrap().is_empty(), "{degraded}");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

loci_tests::on_both!(indexes_queries_and_isolates, reindexing_parses_only_what_changed_and_matches_a_full_index);

#[tokio::test]
async fn paths_outside_the_allowlist_escaping_symlinks_and_huge_files_are_refused() {
    let (app, root) = app_with_root(Engine::Sqlite, false).await;
    let alice = app.user("alice", "acme", &[]);
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.py"), "def secret():\n    return 42\n").unwrap();
    let refused = |body: &Value, field: &str| body["errors"].as_array().unwrap().iter().any(|e| e["field"] == field);
    for (body, field) in [
        (json!({ "path": outside.path() }), "path"),
        (json!({ "path": "relative/dir" }), "path"),
        (json!({ "path": "/etc" }), "path"),
        (json!({ "path": root.path().join("python"), "git_url": "https://example.com/x.git" }), "path"),
        (json!({}), "path"),
        (json!({ "git_url": "ftp://example.com/x.git" }), "git_url"),
        (json!({ "git_url": "--upload-pack=evil" }), "git_url"),
        (json!({ "path": root.path().join("python"), "name": "../etc" }), "name"),
    ] {
        let (status, problem) = alice.post("/api/v1/code/repos", body.clone()).await;
        assert_eq!(status, 422, "{body}: {problem}");
        assert!(refused(&problem, field), "{body}: {problem}");
    }
    // A symlink inside the root that leads outside it, as the repository.
    let link = root.path().join("escape");
    std::os::unix::fs::symlink(outside.path(), &link).unwrap();
    let (status, problem) = alice.post("/api/v1/code/repos", json!({ "path": link })).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("outside"), "{problem}");

    // Inside a repository: an escaping symlink and a 2 GB file are refused
    // with a reason, never read; the rest is indexed.
    let repo = root.path().join("python");
    std::os::unix::fs::symlink(outside.path().join("secret.py"), repo.join("shop/leak.py")).unwrap();
    let huge = std::fs::File::create(repo.join("shop/huge.py")).unwrap();
    huge.set_len(2 * 1024 * 1024 * 1024).unwrap();
    let report = index(&alice, root.path(), "python", "shop").await;
    let reasons: Vec<(String, String)> = report["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["path"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
        .collect();
    assert!(reasons.iter().any(|(p, r)| p == "shop/leak.py" && r.contains("outside")), "{reasons:?}");
    assert!(reasons.iter().any(|(p, r)| p == "shop/huge.py" && r.contains("max_file_bytes")), "{reasons:?}");
    assert_eq!(report["files_parsed"], 3);
    let (_, none) = alice.get("/api/v1/code/symbols?name=secret").await;
    assert_eq!(none, json!([]), "nothing outside the root was read");

    // Scopes: registering needs graph:write, searching search:read.
    let reader = app.user_with_scopes("bob", "acme", &["graph:read"]);
    let (status, body) = reader.post("/api/v1/code/repos", json!({ "path": repo })).await;
    assert_eq!((status, body["code"].as_str()), (403, Some("INSUFFICIENT_SCOPE")));
    assert_eq!(reader.post("/api/v1/code/search", json!({ "query": "x" })).await.0, 403);
    assert_eq!(reader.get("/api/v1/code/repos").await.0, 200);
}

#[tokio::test]
async fn local_paths_are_refused_without_an_allowlist() {
    let app = TestApp::spawn(Engine::Sqlite).await;
    let alice = app.user("alice", "acme", &[]);
    let (status, problem) = alice.post("/api/v1/code/repos", json!({ "path": fixtures() })).await;
    assert_eq!(status, 422, "{problem}");
    assert!(problem["errors"][0]["message"].as_str().unwrap().contains("code.allowed_roots"), "{problem}");
}

#[tokio::test]
async fn git_sources_are_cloned_and_jobs_are_capped_and_cancellable() {
    let (app, root) = app_with_root(Engine::Sqlite, false).await;
    let alice = app.user("alice", "acme", &[]);
    // A git repository in the allowed root, registered by file:// URL.
    let repo = root.path().join("rust");
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git").current_dir(&repo).args(args).output().unwrap();
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    git(&["init", "-q"]);
    git(&["-c", "user.email=t@example.com", "-c", "user.name=t", "add", "."]);
    git(&["-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-qm", "fixture"]);
    let url = format!("file://{}", repo.display());
    let (status, body) = alice.post("/api/v1/code/repos", json!({ "git_url": url })).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["repo"]["name"], "rust");
    assert_eq!(body["repo"]["source_kind"], "git");
    let job = finished(&alice, body["job"]["job_id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "done", "{job}");
    symbol_id(&alice, "parse_orders", "rust").await;

    // A clone that never answers holds the only worker; the org's queue
    // (code.max_queued_jobs, 4) fills up.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let mut jobs = Vec::new();
    for i in 0..4 {
        let (status, body) =
            alice.post("/api/v1/code/repos", json!({ "git_url": format!("git://127.0.0.1:{port}/r{i}.git") })).await;
        assert_eq!(status, 202, "{body}");
        jobs.push(body["job"]["job_id"].as_str().unwrap().to_owned());
    }
    let (status, body) =
        alice.post("/api/v1/code/repos", json!({ "git_url": format!("git://127.0.0.1:{port}/r9.git") })).await;
    assert_eq!(status, 429, "a fifth job in the org's queue: {body}");
    assert_eq!(body["code"], "RATE_LIMITED");
    // Asking again for a queued repository gives its job, not a new one.
    let (status, body) =
        alice.post("/api/v1/code/repos", json!({ "git_url": format!("git://127.0.0.1:{port}/r3.git") })).await;
    assert_eq!((status, body["job"]["job_id"].as_str()), (202, Some(jobs[3].as_str())));
    // Cancelled jobs leave the queue (and a cancelled job stays cancelled).
    for job in &jobs {
        let (status, body) = alice.post(&format!("/api/v1/code/jobs/{job}/cancel"), json!({})).await;
        assert_eq!((status, body["status"].as_str()), (200, Some("cancelled")), "{body}");
    }
    let (status, again) = alice.post(&format!("/api/v1/code/jobs/{}/cancel", jobs[0]), json!({})).await;
    assert_eq!(status, 409, "{again}");
    let (status, body) =
        alice.post("/api/v1/code/repos", json!({ "git_url": format!("git://127.0.0.1:{port}/r9.git") })).await;
    assert_eq!(status, 202, "room again: {body}");
    let (_, other) = app.user("eve", "other", &[]).get(&format!("/api/v1/code/jobs/{}", jobs[0])).await;
    assert_eq!(other["code"], "NOT_FOUND");
    drop(silent);
}

/// A repository whose symbols went into other code indexes (a database
/// restored into a new data directory, another model) is indexed into
/// these again in full on its next run, without parsing anything again.
#[tokio::test]
async fn new_code_indexes_get_every_symbol_again_without_parsing() {
    let (app, root) = app_with_root(Engine::Sqlite, false).await;
    let alice = app.user("alice", "acme", &[]);
    let first = index(&alice, root.path(), "python", "shop").await;
    let (_, repos) = alice.get("/api/v1/code/repos").await;
    let repo_id: uuid::Uuid = repos["items"][0]["id"].as_str().unwrap().parse().unwrap();

    // The same database, the code indexes of another data directory.
    let services = &app.state.services;
    let mut elsewhere = (*services.settings).clone();
    let other_dir = tempfile::tempdir().unwrap();
    elsewhere.data_dir = other_dir.path().to_path_buf();
    let indexes = loci_app::indexes::open_code(&elsewhere, None, &mut Vec::new()).unwrap();
    assert_ne!(indexes.generation, services.code.indexes().generation);
    let moved = loci_domain::code::CodeService::new(
        services.memories.clone(),
        services.search.clone(),
        indexes,
        loci_domain::code::CodeConfig::from_settings(&elsewhere),
    );
    let p = loci_security::Principal {
        org_id: loci_core::OrgId::parse("acme").unwrap(),
        subject: "alice".into(),
        scopes: Default::default(),
        roles: Vec::new(),
        grants: Vec::new(),
        client_id: None,
        token_id: "test".into(),
        dpop_jkt: None,
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    };
    let search = || loci_domain::code::CodeSearchInput {
        query: "apply discount".into(),
        mode: Some("lexical".into()),
        ..Default::default()
    };
    assert!(moved.search(&p, &search()).await.unwrap().hits.is_empty(), "nothing in the new indexes yet");
    let report = moved.index_now(&p, repo_id).await.unwrap();
    assert_eq!(report["files_parsed"], 0, "{report}");
    assert_eq!(report["symbols_indexed"], first["symbols"], "{report}");
    let found = moved.search(&p, &search()).await.unwrap();
    assert_eq!(found.hits[0].symbol.name, "apply_discount");
    // And back on the first indexes, the same holds: their generation is not
    // the repository's any more.
    let (_, job) = alice.post(&format!("/api/v1/code/repos/{repo_id}/index"), json!({})).await;
    let again = finished(&alice, job["job_id"].as_str().unwrap()).await["progress"].clone();
    assert_eq!((again["files_parsed"].clone(), again["symbols_indexed"].clone()), (json!(0), first["symbols"].clone()));
}
