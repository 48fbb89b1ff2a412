//! Fact inference (`infer=true`) on the local path: a fixed set of cases
//! (duplicates, paraphrases, contradictions, retractions, multi-speaker
//! conversations, temporal statements), each run as its own user against
//! memories stored first, with the expected event per fact and the memory
//! each touches. Then the history reasons, validation, MCP, and the model
//! path against a local OpenAI-compatible server.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use loci_tests::{AppOptions, Engine, TestApp, TestUser};
use serde_json::{Value, json};

/// What a fact is expected to touch.
#[derive(Debug, Clone, Copy)]
enum Touch {
    /// Nothing (a NOOP with nothing to forget).
    Nothing,
    /// A new memory (ADD).
    New,
    /// The `n`th memory stored before the call.
    Known(usize),
    /// The memory the `n`th fact of the same call stored.
    Fact(usize),
}

use Touch::{Fact, Known, New, Nothing};

struct Case {
    name: &'static str,
    known: &'static [&'static str],
    /// A text, or messages as `(name, role, content)`.
    text: Option<&'static str>,
    messages: &'static [(Option<&'static str>, &'static str, &'static str)],
    expect: &'static [(&'static str, Touch)],
}

const fn text(
    name: &'static str,
    known: &'static [&'static str],
    text: &'static str,
    expect: &'static [(&'static str, Touch)],
) -> Case {
    Case { name, known, text: Some(text), messages: &[], expect }
}

const fn talk(
    name: &'static str,
    known: &'static [&'static str],
    messages: &'static [(Option<&'static str>, &'static str, &'static str)],
    expect: &'static [(&'static str, Touch)],
) -> Case {
    Case { name, known, text: None, messages, expect }
}

const CASES: &[Case] = &[
    // Duplicates.
    text("exact duplicate", &["I live in Berlin"], "I live in Berlin.", &[("NOOP", Known(0))]),
    text("case and spacing", &["My favourite colour is blue"], "my favourite  colour is BLUE", &[("NOOP", Known(0))]),
    text("repeated within the input", &[], "I like green tea. I like green tea.", &[("ADD", New), ("NOOP", Fact(0))]),
    text(
        "team convention again",
        &["We use PostgreSQL for the main database"],
        "We use PostgreSQL for the main database",
        &[("NOOP", Known(0))],
    ),
    // Paraphrases.
    text("same place, other words", &["I live in Berlin"], "I'm living in Berlin now", &[("NOOP", Known(0))]),
    text("spelling of colour", &["My favorite color is blue"], "My favourite colour is blue", &[("NOOP", Known(0))]),
    text("same employer", &["I work at Google"], "I am working at Google", &[("NOOP", Known(0))]),
    text(
        "near-duplicate hobby",
        &["I really enjoy hiking in the mountains on weekends"],
        "I enjoy hiking in the mountains on weekends",
        &[("NOOP", Known(0))],
    ),
    text(
        "near-duplicate stack",
        &["Our team uses Rust for the backend services"],
        "Our team uses Rust for backend services",
        &[("NOOP", Known(0))],
    ),
    // Contradictions.
    text("moved", &["I live in Berlin"], "I moved to Munich", &[("UPDATE", Known(0))]),
    text("new favourite", &["My favourite colour is blue"], "My favourite colour is green", &[("UPDATE", Known(0))]),
    text("new employer", &["I work at Google"], "I joined Microsoft", &[("UPDATE", Known(0))]),
    text("new test runner", &["We use Jest for testing"], "We switched to Vitest for testing", &[("UPDATE", Known(0))]),
    text("birthday", &["I am 30 years old"], "I'm 31", &[("UPDATE", Known(0))]),
    text("new deploy target", &["The deploy target is AWS"], "The deploy target is now GCP", &[("UPDATE", Known(0))]),
    text("new occupation", &["I work as a nurse"], "I work as a teacher", &[("UPDATE", Known(0))]),
    text("new name", &["My name is Sam"], "My name is Samuel", &[("UPDATE", Known(0))]),
    text(
        "new preference",
        &["I prefer tabs for indentation"],
        "I prefer spaces for indentation",
        &[("UPDATE", Known(0))],
    ),
    text(
        "contradiction within the input",
        &[],
        "I live in Berlin. I moved to Munich.",
        &[("ADD", New), ("UPDATE", Fact(0))],
    ),
    // Retractions.
    text("no longer lives there", &["I live in Berlin"], "I no longer live in Berlin", &[("DELETE", Known(0))]),
    text("not anymore", &["I work at Google"], "I don't work at Google anymore", &[("DELETE", Known(0))]),
    text("not vegan anymore", &["I am vegan"], "I'm not vegan anymore", &[("DELETE", Known(0))]),
    text("stopped using", &["We use Jenkins for CI"], "We stopped using Jenkins", &[("DELETE", Known(0))]),
    text("stopped playing", &["I play tennis on Sundays"], "I stopped playing tennis", &[("DELETE", Known(0))]),
    text("forget", &["I like sushi"], "Forget that I like sushi", &[("DELETE", Known(0))]),
    text("forget what is unknown", &[], "Forget that I like sushi", &[("NOOP", Nothing)]),
    text("retraction of another value", &["I live in Munich"], "I no longer live in Berlin", &[("ADD", New)]),
    text("no longer on Fridays", &["We deploy on Fridays"], "We no longer deploy on Fridays", &[("DELETE", Known(0))]),
    text(
        "used to, but now",
        &["I live in Berlin"],
        "I used to live in Berlin, but now I live in Paris",
        &[("DELETE", Known(0)), ("ADD", New)],
    ),
    // New facts.
    text("first fact", &[], "I have a dog named Max", &[("ADD", New)]),
    text("a similar but different fact", &["I have a dog named Max"], "I have a cat named Luna", &[("ADD", New)]),
    text("another attribute", &["I live in Berlin"], "I work at SAP", &[("ADD", New)]),
    text("small talk only", &[], "Hi! How are you? Thanks, that sounds great.", &[]),
    text("two clauses", &[], "I live in Berlin and I work at SAP", &[("ADD", New), ("ADD", New)]),
    // Conversations with named speakers.
    talk(
        "two speakers",
        &[],
        &[
            (Some("Caroline"), "user", "I went to a LGBTQ support group yesterday."),
            (Some("Melanie"), "user", "That's great! I painted a lake sunrise last year."),
        ],
        &[("ADD", New), ("ADD", New)],
    ),
    talk(
        "same attribute, different speakers",
        &[],
        &[(Some("Caroline"), "user", "I live in Boston."), (Some("Melanie"), "user", "I live in Denver.")],
        &[("ADD", New), ("ADD", New)],
    ),
    talk(
        "a speaker moves",
        &["Caroline lives in Boston"],
        &[(Some("Caroline"), "user", "I moved to Seattle.")],
        &[("UPDATE", Known(0))],
    ),
    talk(
        "another speaker's place",
        &["Melanie lives in Denver"],
        &[(Some("Caroline"), "user", "I moved to Denver.")],
        &[("ADD", New)],
    ),
    talk(
        "assistant turns give no facts",
        &[],
        &[(None, "user", "I'm allergic to peanuts."), (None, "assistant", "Noted, you are allergic to peanuts.")],
        &[("ADD", New)],
    ),
    talk(
        "known and new in one conversation",
        &["My daughter's name is Emma"],
        &[(None, "user", "My daughter's name is Emma."), (None, "user", "She started school in September.")],
        &[("NOOP", Known(0)), ("ADD", New)],
    ),
    // Temporal statements.
    text("since when", &["I live in Berlin"], "Since March I live in Hamburg", &[("UPDATE", Known(0))]),
    text(
        "dated events",
        &[],
        "Yesterday I met Sarah at the conference. Last week I started learning Spanish.",
        &[("ADD", New), ("ADD", New)],
    ),
    text("from next month", &["I work at Google"], "Starting next month I work at Stripe", &[("UPDATE", Known(0))]),
];

fn infer_body(case: &Case) -> Value {
    match case.text {
        Some(t) => json!({ "text": t, "infer": true, "app": "infer" }),
        None => {
            let messages: Vec<Value> = case
                .messages
                .iter()
                .enumerate()
                .map(|(i, (name, role, content))| {
                    let mut m = json!({ "role": role, "content": content, "id": format!("m{i}") });
                    if let Some(n) = name {
                        m["name"] = json!(n);
                    }
                    m
                })
                .collect();
            json!({ "messages": messages, "infer": true, "app": "infer" })
        }
    }
}

async fn current_contents(user: &TestUser<'_>) -> Vec<String> {
    let (_, list) = user.get("/api/v1/memories?size=100").await;
    list["items"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap().to_owned()).collect()
}

/// Runs every case; returns the failures (all of them, not the first).
async fn run_cases(app: &TestApp) -> Vec<String> {
    let mut failures = Vec::new();
    let mut users = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        let user = app.user(&format!("case{n}"), "acme", &[]);
        let mut known = Vec::new();
        for k in case.known {
            known.push(user.remember(k, json!({})).await);
        }
        users.push((user, known));
    }
    // Candidates come from the indexes too: index what is known first.
    app.indexed().await;
    for (case, (user, known)) in CASES.iter().zip(&users) {
        let (status, body) = user.post("/api/v1/memories", infer_body(case)).await;
        let created = body["results"]
            .as_array()
            .is_some_and(|r| r.iter().any(|f| matches!(f["event"].as_str(), Some("ADD" | "UPDATE"))));
        let expected_status = if created { 201 } else { 200 };
        if status != expected_status || body["engine"] != "local" {
            failures.push(format!("{}: status {status}: {body}", case.name));
            continue;
        }
        let results = body["results"].as_array().unwrap();
        let got: Vec<(String, Option<String>)> = results
            .iter()
            .map(|r| (r["event"].as_str().unwrap().to_owned(), r["memory_id"].as_str().map(str::to_owned)))
            .collect();
        let events: Vec<&str> = got.iter().map(|(e, _)| e.as_str()).collect();
        let wanted: Vec<&str> = case.expect.iter().map(|(e, _)| *e).collect();
        if events != wanted {
            failures.push(format!("{}: events {events:?}, expected {wanted:?}: {body}", case.name));
            continue;
        }
        for (i, ((event, id), (_, touch))) in got.iter().zip(case.expect).enumerate() {
            // An UPDATE stores a new memory and names the one it replaces.
            let ok = if event == "UPDATE" {
                id.as_ref().is_some_and(|id| !known.contains(id))
            } else {
                match touch {
                    Nothing => id.is_none(),
                    New => id.as_ref().is_some_and(|id| !known.contains(id)),
                    Known(k) => id.as_deref() == Some(known[*k].as_str()),
                    Fact(f) => id.is_some() && *id == got[*f].1,
                }
            };
            if !ok {
                failures.push(format!("{}: fact {i} ({event}) touched {id:?}, expected {touch:?}: {body}", case.name));
            }
            if event == "UPDATE" {
                let replaces = results[i]["replaces"].as_str();
                let old = match touch {
                    Known(k) => Some(known[*k].clone()),
                    Fact(f) => got[*f].1.clone(),
                    _ => None,
                };
                if replaces != old.as_deref() {
                    failures.push(format!("{}: fact {i} replaces {replaces:?}, expected {old:?}", case.name));
                }
            }
        }
    }
    failures
}

#[tokio::test]
async fn the_local_path_decides_every_case_as_expected() {
    assert!(CASES.len() >= 40, "{} cases", CASES.len());
    let app = TestApp::spawn_with(Engine::Sqlite, AppOptions::default().with_model()).await;
    let failures = run_cases(&app).await;
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), CASES.len(), failures.join("\n"));
}

async fn decisions_change_memories_and_say_why(engine: Engine) {
    let app = TestApp::spawn_with(engine, AppOptions::default().with_model()).await;
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    let berlin = alice.remember("I live in Berlin", json!({})).await;
    let bobs = bob.remember("I live in Berlin", json!({})).await;
    app.indexed().await;

    let (status, body) = alice
        .post(
            "/api/v1/memories",
            json!({
                "infer": true,
                "app": "chat",
                "metadata": { "scope": "user", "tags": { "via": "chat" } },
                "messages": [
                    { "content": "I moved to Munich. I live in Munich.", "id": "t1" },
                    { "role": "assistant", "content": "Munich is lovely." },
                    { "content": "My favourite editor is Helix", "id": "t2" }
                ]
            }),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let results = body["results"].as_array().unwrap();
    let events: Vec<&str> = results.iter().map(|r| r["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["UPDATE", "NOOP", "ADD"], "{body}");
    let munich = results[0]["memory_id"].as_str().unwrap();
    assert_eq!(results[0]["replaces"], berlin);
    assert_eq!(results[1]["memory_id"], munich, "the repeat is the new memory");
    assert_eq!(results[0]["evidence"], json!(["t1"]));

    // The new memory: the input's metadata, source inference, the message as evidence.
    let (_, m) = alice.get(&format!("/api/v1/memories/{munich}")).await;
    assert_eq!(m["content"], "I moved to Munich");
    let md = &m["metadata"];
    assert_eq!((md["source"].as_str(), md["scope"].as_str()), (Some("inference"), Some("user")), "{m}");
    assert_eq!(md["evidence"], json!(["t1"]));
    assert_eq!(md["tags"]["via"], "chat");
    assert_eq!(m["app_name"], "chat");
    // The old one: superseded, its history says why.
    let (_, old) = alice.get(&format!("/api/v1/memories/{berlin}")).await;
    assert_eq!((old["state"].as_str(), old["superseded_by"].as_str()), (Some("archived"), Some(munich)), "{old}");
    let (_, history) = alice.get(&format!("/api/v1/memories/{berlin}/history")).await;
    let last = history.as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["new_state"], "archived");
    assert!(last["reason"].as_str().unwrap().contains("location of i was berlin, now munich"), "{history}");
    let (_, history) = alice.get(&format!("/api/v1/memories/{munich}/history")).await;
    let reasons: Vec<&str> = history.as_array().unwrap().iter().filter_map(|h| h["reason"].as_str()).collect();
    assert_eq!(reasons.len(), 2, "the creation and the NOOP say why: {history}");
    assert!(reasons[1].starts_with("already known"), "{history}");
    // Bob's identical memory is untouched.
    let (_, b) = bob.get(&format!("/api/v1/memories/{bobs}")).await;
    assert_eq!(b["state"], "active");

    // Present and past.
    let contents = current_contents(&alice).await;
    assert_eq!(contents.len(), 2, "{contents:?}");
    assert!(!contents.contains(&"I live in Berlin".to_owned()));

    // Retract through infer; nothing stored answers 200.
    let (status, body) =
        alice.post("/api/v1/memories", json!({ "infer": true, "text": "I no longer live in Munich" })).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["event"], "DELETE");
    assert_eq!(body["results"][0]["memory_id"], munich);
    assert_eq!(current_contents(&alice).await, ["My favourite editor is Helix"]);
}

async fn bad_inference_input_is_a_field_error(engine: Engine) {
    let app = TestApp::spawn(engine).await;
    let alice = app.user("alice", "acme", &[]);
    for (body, field) in [
        (json!({ "infer": true }), "text"),
        (json!({ "infer": true, "text": "a", "messages": [{ "content": "b" }] }), "messages"),
        (json!({ "infer": true, "messages": [] }), "messages"),
        (json!({ "infer": true, "messages": [{ "content": " " }] }), "messages[0].content"),
        (json!({ "infer": true, "messages": [{ "content": "x", "role": "Robot!" }] }), "messages[0].role"),
        (json!({ "infer": true, "messages": [{ "content": "x", "name": "" }] }), "messages[0].name"),
        (json!({ "text": "a", "messages": [{ "content": "b" }] }), "messages"),
        (json!({ "text": "a", "async": true }), "async"),
        (json!({ "infer": true, "text": "a", "metadata": { "scope": "galaxy" } }), "metadata.scope"),
    ] {
        let (status, reply) = alice.post("/api/v1/memories", body.clone()).await;
        assert_eq!(status, 422, "{body} -> {reply}");
        let fields: Vec<&str> =
            reply["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
        assert!(fields.contains(&field), "{body} -> {reply}");
    }
    let (status, reply) =
        alice.post("/api/v1/memories", json!({ "infer": true, "messages": [{ "content": "x", "mood": 1 }] })).await;
    assert_eq!((status, reply["errors"][0]["field"].as_str()), (422, Some("messages[0].mood")), "{reply}");
    assert_eq!(current_contents(&alice).await.len(), 0, "nothing was stored");
}

loci_tests::on_both!(decisions_change_memories_and_say_why, bad_inference_input_is_a_field_error);

/// A recorded answer of the fake model: HTTP status, the message content,
/// and a delay.
#[derive(Debug, Clone)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) content: String,
    pub(crate) delay: Duration,
}

impl Answer {
    pub(crate) fn ok(content: Value) -> Self {
        Self { status: 200, content: content.to_string(), delay: Duration::ZERO }
    }
}

pub(crate) type Script = Arc<Mutex<Vec<Answer>>>;

/// An OpenAI-compatible chat endpoint answering from `script` in order (the
/// last answer repeats), counting calls.
pub(crate) fn model_endpoint(script: Script) -> (String, Arc<AtomicUsize>, Arc<Mutex<Vec<Value>>>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (counted, recorded) = (calls.clone(), seen.clone());
    let server = HttpServer::new(move || {
        let (script, counted, recorded) = (script.clone(), counted.clone(), recorded.clone());
        App::new().route(
            "/v1/chat/completions",
            web::post().to(move |body: web::Json<Value>| {
                let (script, counted, recorded) = (script.clone(), counted.clone(), recorded.clone());
                async move {
                    let n = counted.fetch_add(1, Ordering::SeqCst);
                    recorded.lock().unwrap().push(body.into_inner());
                    let answer = {
                        let script = script.lock().unwrap();
                        script.get(n).or(script.last()).cloned().unwrap()
                    };
                    tokio::time::sleep(answer.delay).await;
                    if answer.status != 200 {
                        return HttpResponse::build(actix_web::http::StatusCode::from_u16(answer.status).unwrap())
                            .body("upstream trouble");
                    }
                    HttpResponse::Ok()
                        .json(json!({ "choices": [{ "message": { "role": "assistant", "content": answer.content } }] }))
                }
            }),
        )
    })
    .workers(1)
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    tokio::spawn(server.run());
    (format!("http://127.0.0.1:{port}/v1"), calls, seen)
}

async fn app_with_model(url: String, retries: u32) -> TestApp {
    TestApp::spawn_with(
        Engine::Sqlite,
        AppOptions::default().with_model().with(move |s| {
            s.infer.llm = true;
            s.infer.url = Some(url.clone());
            s.infer.model = Some("test-model".into());
            s.infer.timeout_ms = 500;
            s.infer.retries = retries;
            s.infer.breaker_failures = 3;
            s.infer.breaker_cool_down_secs = 60;
        }),
    )
    .await
}

#[tokio::test]
async fn the_model_extracts_and_decides_over_the_callers_memories() {
    let script: Script = Arc::new(Mutex::new(vec![
        Answer::ok(json!({ "facts": [
            { "text": "Alice moved to Lisbon", "messages": [0] },
            { "text": "Alice has two cats", "messages": [0, 1] }
        ]})),
        Answer::ok(json!({ "decisions": [
            { "fact": 0, "event": "UPDATE", "known": 0, "reason": "she lives elsewhere now" },
            { "fact": 1, "event": "ADD", "known": null, "reason": "new" }
        ]})),
    ]));
    let (url, calls, seen) = model_endpoint(script);
    let app = app_with_model(url, 0).await;
    let alice = app.user("alice", "acme", &[]);
    let porto = alice.remember("Alice lives in Porto", json!({})).await;
    app.indexed().await;
    let (status, body) = alice
        .post(
            "/api/v1/memories",
            json!({ "infer": true, "messages": [
                { "name": "Alice", "content": "I moved to Lisbon with my cat.", "id": "a" },
                { "name": "Alice", "content": "Now there are two of them!", "id": "b" }
            ]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["engine"], "llm", "{body}");
    assert!(body["fallback"].is_null());
    let results = body["results"].as_array().unwrap();
    assert_eq!((results[0]["event"].as_str(), results[0]["replaces"].as_str()), (Some("UPDATE"), Some(porto.as_str())));
    assert_eq!(results[0]["reason"], "model: she lives elsewhere now");
    assert_eq!(results[1]["evidence"], json!(["a", "b"]));
    assert_eq!(results[1]["speaker"], "Alice");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // What the model was asked: a strict schema, and the caller's memory as a numbered candidate.
    let asked = seen.lock().unwrap().clone();
    assert_eq!(asked[0]["model"], "test-model");
    assert_eq!(asked[0]["response_format"]["json_schema"]["strict"], true);
    let question: Value = serde_json::from_str(asked[1]["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(question["facts"][0]["memories"][0]["memory"], "Alice lives in Porto", "{question}");
    let contents = current_contents(&alice).await;
    assert!(
        contents.contains(&"Alice moved to Lisbon".to_owned())
            && !contents.contains(&"Alice lives in Porto".to_owned())
    );
}

#[tokio::test]
async fn a_failing_model_never_fails_the_write() {
    let failures: Vec<(&str, Vec<Answer>, &str)> = vec![
        ("server error", vec![Answer { status: 500, content: String::new(), delay: Duration::ZERO }], "HTTP 500"),
        (
            "malformed JSON",
            vec![Answer { status: 200, content: "{\"facts\": [".into(), delay: Duration::ZERO }],
            "malformed JSON",
        ),
        ("timeout", vec![Answer { status: 200, content: "{}".into(), delay: Duration::from_secs(2) }], "timed out"),
        (
            "schema violation",
            vec![Answer::ok(json!({ "facts": [{ "text": "x", "messages": [7] }] }))],
            "message that does not exist",
        ),
        (
            "unknown memory",
            vec![
                Answer::ok(json!({ "facts": [{ "text": "I live in Rome", "messages": [0] }] })),
                Answer::ok(json!({ "decisions": [{ "fact": 0, "event": "DELETE", "known": 9, "reason": "?" }] })),
            ],
            "memory that was not listed",
        ),
    ];
    for (name, answers, why) in failures {
        let (url, calls, _) = model_endpoint(Arc::new(Mutex::new(answers)));
        let app = app_with_model(url, 1).await;
        let alice = app.user("alice", "acme", &[]);
        let (status, body) = alice.post("/api/v1/memories", json!({ "infer": true, "text": "I live in Rome" })).await;
        assert_eq!(status, 201, "{name}: {body}");
        assert_eq!(body["engine"], "local", "{name}: {body}");
        assert!(body["fallback"].as_str().unwrap().contains(why), "{name}: {body}");
        assert_eq!(body["results"][0]["event"], "ADD", "{name}: {body}");
        assert!(calls.load(Ordering::SeqCst) >= 1, "{name}");
        assert_eq!(current_contents(&alice).await, ["I live in Rome"], "{name}");
    }
}

#[tokio::test]
async fn the_breaker_stops_calling_a_model_that_keeps_failing() {
    let (url, calls, _) = model_endpoint(Arc::new(Mutex::new(vec![Answer {
        status: 503,
        content: String::new(),
        delay: Duration::ZERO,
    }])));
    let app = app_with_model(url, 0).await;
    let alice = app.user("alice", "acme", &[]);
    for i in 0..6 {
        let (status, body) =
            alice.post("/api/v1/memories", json!({ "infer": true, "text": format!("Fact number {i} is here") })).await;
        assert_eq!((status, body["engine"].as_str()), (201, Some("local")), "{body}");
        if i >= 3 {
            assert!(body["fallback"].as_str().unwrap().contains("circuit breaker open"), "{body}");
        }
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3, "three failures open the breaker; no call after");
}

#[tokio::test]
async fn large_or_async_inputs_run_as_jobs_of_their_caller() {
    let app = TestApp::spawn_with(
        Engine::Postgres,
        AppOptions::default().with_model().with(|s| {
            s.infer.async_threshold_chars = 200;
            s.infer.max_pending_jobs_per_org = 3;
        }),
    )
    .await;
    let alice = app.user("alice", "acme", &[]);
    let bob = app.user("bob", "acme", &[]);
    let long: Vec<Value> = (0..10)
        .map(|i| json!({ "name": "Alice", "content": format!("I visited city number {i} in the summer of 20{i:02}."), "id": format!("t{i}") }))
        .collect();
    let (status, job) = alice.post("/api/v1/memories", json!({ "infer": true, "messages": long })).await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "queued");
    let id = job["job_id"].as_str().unwrap().to_owned();
    let (status, other) = bob.get(&format!("/api/v1/memories/jobs/{id}")).await;
    assert_eq!(status, 404, "another user's job is not found: {other}");
    let done = wait_for_job(&alice, &id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert_eq!(done["attempts"], 1);
    let results = done["result"]["results"].as_array().unwrap();
    assert_eq!(results.len(), 10, "{done}");
    assert!(results.iter().all(|r| r["event"] == "ADD"));
    assert_eq!(current_contents(&alice).await.len(), 10);

    // A short input with async: a job as well; MCP reports it.
    let (status, job) =
        alice.post("/api/v1/memories", json!({ "infer": true, "async": true, "text": "I live in Oslo" })).await;
    assert_eq!(status, 202, "{job}");
    let id = job["job_id"].as_str().unwrap().to_owned();
    wait_for_job(&alice, &id).await;
    let (status, body) = alice.get("/api/v1/memories/jobs/not-a-uuid").await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("id")), "{body}");
    assert_eq!(current_contents(&alice).await.len(), 11);
}

async fn wait_for_job(user: &TestUser<'_>, id: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, job) = user.get(&format!("/api/v1/memories/jobs/{id}")).await;
        assert_eq!(status, 200, "{job}");
        if matches!(job["status"].as_str(), Some("done" | "failed")) {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "job never finished: {job}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
