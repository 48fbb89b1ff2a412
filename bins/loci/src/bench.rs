//! `loci bench locomo`: retrieval quality and latency on the LoCoMo
//! conversations, following the protocol of the data folder's README: one
//! tenant per conversation, one memory per turn (`"{speaker}: {text}"`, the
//! `dia_id` kept in metadata), every answerable question (categories 1-4 with
//! evidence) searched within its tenant; Recall@5, Recall@10, MRR (cut at
//! 100) and latency per mode.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use loci_core::OrgId;
use loci_core::model::MemoryMetadata;
use loci_domain::Provisioner;
use loci_domain::access_log::AccessLog;
use loci_domain::indexer::{Indexer, IndexingOptions};
use loci_domain::infer::{AddOutcome, FactEvent, InferConfig, InferService};
use loci_domain::memories::{ImportItem, MemoryService};
use loci_domain::search::{SearchConfig, SearchMode, SearchRequest, SearchService, Weights};
use loci_domain::validation::{CreateMemoryInput, Limits, MessageInput};
use loci_index::VectorIndex;
use loci_index_embedded::vector as vector_embedded;
use loci_security::Principal;
use loci_settings::{Secret, Settings};
use loci_stores::{Database, PoolConfig, Valkey};

#[derive(Debug, clap::Args)]
pub struct LocomoArgs {
    /// Folder with the conversation files (*.json).
    #[arg(long)]
    data: PathBuf,
    /// Modes to measure (comma-separated: lexical, semantic, hybrid).
    #[arg(long, default_value = "lexical,semantic,hybrid")]
    modes: String,
    /// Neighbouring turns indexed as context (0 = off).
    #[arg(long)]
    context_window: Option<usize>,
    /// Whether the embedded text includes the context too (default from
    /// settings: `search.embed_context`).
    #[arg(long)]
    embed_context: Option<bool>,
    /// Whether the lexical query leaves out question words (default from
    /// settings: `search.strip_question_words`).
    #[arg(long)]
    strip_question_words: Option<bool>,
    /// Fusion weights vector,lexical,graph (default from settings).
    #[arg(long)]
    weights: Option<String>,
    /// Ingest through fact inference (`infer=true`, local path) instead of
    /// one memory per turn.
    #[arg(long)]
    infer: bool,
    /// Also choose the ranking parameters by leave-one-conversation-out over
    /// a grid and print the held-out table, per category and ablations.
    #[arg(long)]
    loco: bool,
    /// A reranker for the searches: `local:DIR` (a BERT cross-encoder
    /// directory) or `http:URL` (a Cohere-compatible rerank endpoint).
    #[arg(long)]
    reranker: Option<String>,
    /// Another local embedding model directory (BERT family: bge-small,
    /// e5-small, gte-small...); pooling and prefixes from its files.
    #[arg(long)]
    model_dir: Option<PathBuf>,
}

struct Turn {
    dia_id: String,
    session: u32,
    speaker: String,
    text: String,
    content: String,
}

/// Messages per `infer` add of `--infer`.
const INFER_BATCH: usize = 10;

struct Question {
    question: String,
    category: i64,
    evidence: BTreeSet<String>,
}

struct Conversation {
    name: String,
    turns: Vec<Turn>,
    questions: Vec<Question>,
}

fn load(path: &Path) -> anyhow::Result<Conversation> {
    let raw: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    let mut sessions: Vec<(u32, &Vec<serde_json::Value>)> = raw
        .as_object()
        .context("a conversation is a JSON object")?
        .iter()
        .filter_map(|(k, v)| {
            let n = k.strip_prefix("session_")?.parse::<u32>().ok()?;
            Some((n, v.as_array()?))
        })
        .collect();
    sessions.sort_by_key(|(n, _)| *n);
    let mut turns = Vec::new();
    for (n, session) in sessions {
        for t in session {
            let (Some(speaker), Some(text), Some(dia)) =
                (t["speaker"].as_str(), t["text"].as_str(), t["dia_id"].as_str())
            else {
                continue;
            };
            turns.push(Turn {
                dia_id: dia.to_owned(),
                session: n,
                speaker: speaker.to_owned(),
                text: text.to_owned(),
                content: format!("{speaker}: {text}"),
            });
        }
    }
    let questions = raw["qa"]
        .as_array()
        .map(|qa| {
            qa.iter()
                .filter(|q| q["category"].as_i64().is_some_and(|c| (1..=4).contains(&c)))
                .filter_map(|q| {
                    let evidence: BTreeSet<String> =
                        q["evidence"].as_array()?.iter().filter_map(|e| e.as_str().map(str::to_owned)).collect();
                    let question = q["question"].as_str()?.to_owned();
                    let category = q["category"].as_i64()?;
                    (!evidence.is_empty()).then_some(Question { question, category, evidence })
                })
                .collect()
        })
        .unwrap_or_default();
    let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Conversation { name, turns, questions })
}

#[derive(Default)]
struct Scores {
    r5: f64,
    r10: f64,
    mrr: f64,
    n: usize,
    latencies_ms: Vec<f64>,
    /// Category -> (sum of R@10, questions).
    by_category: std::collections::BTreeMap<i64, (f64, usize)>,
}

impl Scores {
    fn add(&mut self, ranked: &[String], evidence: &BTreeSet<String>, category: i64, ms: f64) {
        let [r5, r10, mrr] = crate::bench_loco::measure(ranked, evidence);
        self.r5 += r5;
        self.r10 += r10;
        self.mrr += mrr;
        self.n += 1;
        self.latencies_ms.push(ms);
        let entry = self.by_category.entry(category).or_default();
        entry.0 += r10;
        entry.1 += 1;
    }

    fn line(&mut self, mode: &str) -> String {
        self.latencies_ms.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            let i = ((self.latencies_ms.len() as f64 * q) as usize).min(self.latencies_ms.len().saturating_sub(1));
            self.latencies_ms.get(i).copied().unwrap_or(0.0)
        };
        let n = self.n.max(1) as f64;
        format!(
            "| {mode:<8} | {:.3} | {:.3} | {:.3} | {:.1} | {:.1} |",
            self.r5 / n,
            self.r10 / n,
            self.mrr / n,
            pct(0.5),
            pct(0.95)
        )
    }
}

/// What `--infer` ingestion did.
#[derive(Default)]
struct InferredStats {
    calls_ms: Vec<f64>,
    events: std::collections::BTreeMap<&'static str, usize>,
    current: usize,
}

impl InferredStats {
    fn print(&mut self, turns: usize) {
        self.calls_ms.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            let i = ((self.calls_ms.len() as f64 * q) as usize).min(self.calls_ms.len().saturating_sub(1));
            self.calls_ms.get(i).copied().unwrap_or(0.0)
        };
        println!(
            "infer (local path): {} adds of up to {INFER_BATCH} messages, p50 {:.1} ms, p95 {:.1} ms; events {:?}; \
             {} current memories for {turns} turns ({:.2} per turn)",
            self.calls_ms.len(),
            pct(0.5),
            pct(0.95),
            self.events,
            self.current,
            self.current as f64 / turns.max(1) as f64
        );
    }
}

/// One conversation through `infer`: session by session, up to
/// [`INFER_BATCH`] messages per add, the indexes drained after each (as a
/// live server indexes within a second).
async fn ingest_inferred(
    infer: &InferService,
    indexer: &Indexer,
    p: &Principal,
    conv: &Conversation,
    stats: &mut InferredStats,
) -> anyhow::Result<()> {
    let mut start = 0;
    while start < conv.turns.len() {
        let session = conv.turns[start].session;
        let end = conv.turns[start..].iter().take(INFER_BATCH).take_while(|t| t.session == session).count() + start;
        let messages = conv.turns[start..end]
            .iter()
            .map(|t| MessageInput {
                role: "user".into(),
                name: Some(t.speaker.clone()),
                content: t.text.clone(),
                id: Some(t.dia_id.clone()),
            })
            .collect();
        let input = CreateMemoryInput {
            infer: true,
            app: Some("locomo".into()),
            messages: Some(messages),
            ..CreateMemoryInput::default()
        };
        let t = Instant::now();
        let outcome = infer.add(p, input).await.map_err(|e| anyhow::anyhow!("infer: {e}"))?;
        stats.calls_ms.push(t.elapsed().as_secs_f64() * 1e3);
        if let AddOutcome::Inferred(outcome) = outcome {
            for r in &outcome.results {
                *stats.events.entry(r.event.as_str()).or_default() += 1;
                match r.event {
                    FactEvent::Add => stats.current += 1,
                    FactEvent::Delete => stats.current = stats.current.saturating_sub(1),
                    FactEvent::Update | FactEvent::Noop => {}
                }
            }
        }
        indexer.drain().await?;
        start = end;
    }
    Ok(())
}

fn mode_name(mode: SearchMode) -> &'static str {
    match mode {
        SearchMode::Lexical => "lexical",
        SearchMode::Semantic => "semantic",
        _ => "hybrid",
    }
}

/// One question's source lists and signals, for the grid.
async fn probe(
    search: &SearchService,
    memories: &MemoryService,
    p: &Principal,
    q: &Question,
    conversation: usize,
    content: &HashMap<loci_core::MemoryId, String>,
) -> anyhow::Result<crate::bench_loco::Probe> {
    let request = SearchRequest {
        query: q.question.clone(),
        limit: 100,
        filters: Default::default(),
        mode: SearchMode::Hybrid,
        // Every list is gathered; each configuration weighs them.
        weights: Some(Weights { vector: 1.0, lexical: 1.0, graph: 1.0 }),
        dedupe: false,
        as_of: None,
        rerank: None,
    };
    let gathered = search.source_lists(p, &request).await?;
    let mut ids: Vec<loci_core::MemoryId> = Vec::new();
    for hits in [&gathered.vector, &gathered.lexical, &gathered.graph].into_iter().flatten().flatten() {
        ids.extend(hits.iter().map(|h| h.id));
    }
    ids.sort();
    ids.dedup();
    let neighbours = memories.stream_neighbours(p, &ids).await?;
    let signals = crate::bench_loco::signals_of(&ids, content, &neighbours, &gathered.entities);
    Ok(crate::bench_loco::Probe {
        conversation,
        category: q.category,
        evidence: q.evidence.clone(),
        asks_when: loci_domain::search::analysis::asks_when(&q.question),
        gathered,
        signals,
    })
}

/// `--model-dir`: the local model of that directory, named after it, its
/// dimensions from its `config.json`.
fn use_model_dir(settings: &mut Settings, dir: &Path) -> anyhow::Result<()> {
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
    settings.embeddings.dimensions =
        config["hidden_size"].as_u64().context("the model's config.json has no hidden_size")? as usize;
    settings.embeddings.model = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    settings.embeddings.model_dir = Some(dir.to_path_buf());
    Ok(())
}

/// `--reranker local:DIR` or `http:URL`.
fn use_reranker(settings: &mut Settings, spec: &str) -> anyhow::Result<()> {
    use loci_settings::RerankerProvider;
    match spec.split_once(':') {
        Some(("local", dir)) => {
            settings.reranker.provider = RerankerProvider::Local;
            settings.reranker.model_dir = Some(PathBuf::from(dir));
        }
        Some(("http", url)) => {
            settings.reranker.provider = RerankerProvider::Http;
            settings.reranker.url = Some(url.to_owned());
        }
        _ => anyhow::bail!("--reranker takes local:DIR or http:URL"),
    }
    Ok(())
}

pub(crate) fn principal(org: &OrgId) -> Principal {
    Principal {
        org_id: org.clone(),
        subject: "locomo".into(),
        scopes: BTreeSet::new(),
        roles: Vec::new(),
        grants: Vec::new(),
        client_id: None,
        token_id: "bench".into(),
        dpop_jkt: None,
        expires_at: chrono::Utc::now() + chrono::Duration::hours(1),
    }
}

pub async fn locomo(base: &Settings, args: &LocomoArgs) -> anyhow::Result<()> {
    let modes: Vec<SearchMode> = args
        .modes
        .split(',')
        .map(|m| match m.trim() {
            "lexical" => Ok(SearchMode::Lexical),
            "semantic" => Ok(SearchMode::Semantic),
            "hybrid" => Ok(SearchMode::Hybrid),
            other => anyhow::bail!("unknown mode `{other}` (lexical, semantic, hybrid)"),
        })
        .collect::<Result<_, _>>()?;
    let weights = match &args.weights {
        None => None,
        Some(raw) => {
            let v: Vec<f32> = raw.split(',').map(|x| x.trim().parse::<f32>()).collect::<Result<_, _>>()?;
            anyhow::ensure!(v.len() == 3, "--weights takes vector,lexical,graph");
            Some(Weights { vector: v[0], lexical: v[1], graph: v[2] })
        }
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(&args.data)
        .with_context(|| format!("reading {}", args.data.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    anyhow::ensure!(!files.is_empty(), "no *.json conversation files in {}", args.data.display());

    let work = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data_dir = work.path().to_path_buf();
    settings.database.url = None;
    // The model directory is resolved against the real data directory.
    if settings.embeddings.model_dir.is_none() {
        settings.embeddings.model_dir = Some(loci_embed::local_model_dir(&base.embeddings, &base.data_dir));
    }
    if let Some(w) = args.context_window {
        settings.search.context_window = w;
    }
    if let Some(embed) = args.embed_context {
        settings.search.embed_context = embed;
    }
    if let Some(strip) = args.strip_question_words {
        settings.search.strip_question_words = strip;
    }
    if let Some(dir) = &args.model_dir {
        use_model_dir(&mut settings, dir)?;
    }
    if let Some(spec) = &args.reranker {
        use_reranker(&mut settings, spec)?;
    }
    let db = Database::connect(&settings.database_url(), &PoolConfig::from_settings(&settings)).await?;
    db.migrate_up().await?;
    let indexes = loci_app::indexes::open(&settings, &db)?;
    let mut modes = modes;
    if indexes.embedder.is_none() {
        eprintln!(
            "note: no embedding model: semantic skipped, hybrid runs without vectors (run scripts/fetch-model.sh)"
        );
        modes.retain(|m| *m != SearchMode::Semantic);
    }
    let options = IndexingOptions::from_settings(&settings.search);
    let indexer = Indexer::new(db.clone(), indexes.clone(), options, 512);
    let memories_service = MemoryService::new(
        db.clone(),
        Provisioner::default(),
        AccessLog::start(db.clone()),
        Limits::from(&settings.limits),
    );
    let mut config = SearchConfig::from_settings(&settings.search);
    config.candidates = config.candidates.max(100);
    // One service per mode: each has its own query-embedding cache, so no
    // mode's latency benefits from another's embedding of the same question.
    let reranker = loci_embed::reranker_from_settings(&settings.reranker)?;
    let service = || {
        let s = SearchService::new(memories_service.clone(), indexes.clone(), config);
        match &reranker {
            Some(r) => s.with_reranker(r.clone(), settings.reranker.candidates),
            None => s,
        }
    };
    let services: HashMap<SearchMode, SearchService> = modes.iter().map(|m| (*m, service())).collect();
    let mut probes: Vec<crate::bench_loco::Probe> = Vec::new();
    let mut dia_of: HashMap<loci_core::MemoryId, String> = HashMap::new();

    let infer = InferService::new(
        memories_service.clone(),
        indexes.clone(),
        InferConfig { async_threshold_chars: usize::MAX, ..InferConfig::from_settings(&settings.infer) },
    );
    let mut inferred = InferredStats::default();
    let mut scores: HashMap<SearchMode, Scores> = HashMap::new();
    let (mut turns_total, mut questions_total) = (0, 0);
    let mut index_secs = 0.0;
    for (conversation, file) in files.iter().enumerate() {
        let conv = load(file)?;
        let org = OrgId::parse(&format!("locomo-{}", conv.name)).map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = principal(&org);
        let started = Instant::now();
        if args.infer {
            ingest_inferred(&infer, &indexer, &p, &conv, &mut inferred).await?;
        } else {
            let t0 = chrono::Utc::now() - chrono::Duration::days(1);
            let items = conv
                .turns
                .iter()
                .enumerate()
                .map(|(i, turn)| {
                    let mut metadata = MemoryMetadata::default();
                    metadata.extra.insert("dia_id".into(), serde_json::Value::String(turn.dia_id.clone()));
                    ImportItem {
                        content: turn.content.clone(),
                        metadata,
                        created_at: t0 + chrono::Duration::seconds(i as i64),
                    }
                })
                .collect();
            let ids = memories_service.import_many(&p, "locomo", items).await?;
            let content: HashMap<loci_core::MemoryId, String> =
                ids.iter().zip(&conv.turns).map(|(id, t)| (*id, t.content.clone())).collect();
            dia_of.extend(ids.iter().zip(&conv.turns).map(|(id, t)| (*id, t.dia_id.clone())));
            indexer.drain().await?;
            if args.loco {
                let search = service();
                for q in &conv.questions {
                    probes.push(probe(&search, &memories_service, &p, q, conversation, &content).await?);
                }
            }
        }
        indexer.drain().await?;
        index_secs += started.elapsed().as_secs_f64();
        turns_total += conv.turns.len();
        questions_total += conv.questions.len();
        for q in &conv.questions {
            for mode in &modes {
                let request = SearchRequest {
                    query: q.question.clone(),
                    limit: 100,
                    filters: Default::default(),
                    mode: *mode,
                    weights,
                    dedupe: false,
                    as_of: None,
                    rerank: None,
                };
                let t = Instant::now();
                let search = services.get(mode).context("a service per mode")?;
                let response = search.search(&p, request).await?;
                let ms = t.elapsed().as_secs_f64() * 1e3;
                // The turns each result stands for: its own (one memory per
                // turn), or those its fact came from (inferred), first seen first.
                let mut ranked: Vec<String> = Vec::new();
                for r in &response.results {
                    let md = &r.memory.memory.metadata;
                    let turns = match md.extra.get("dia_id").and_then(|v| v.as_str()) {
                        Some(d) => vec![d.to_owned()],
                        None => md.evidence.clone(),
                    };
                    for t in turns {
                        if !ranked.contains(&t) {
                            ranked.push(t);
                        }
                    }
                }
                scores.entry(*mode).or_default().add(&ranked, &q.evidence, q.category, ms);
            }
        }
    }
    println!(
        "LoCoMo: {} files, {turns_total} turns, {questions_total} questions; stored + indexed in {index_secs:.1} s; \
         context_window {}, embed_context {}, strip_question_words {}",
        files.len(),
        settings.search.context_window,
        settings.search.embed_context,
        settings.search.strip_question_words
    );
    if args.infer {
        inferred.print(turns_total);
    }
    println!("| mode     | R@5   | R@10  | MRR   | p50 ms | p95 ms |");
    println!("|----------|-------|-------|-------|--------|--------|");
    for mode in &modes {
        let name = mode_name(*mode);
        if let Some(s) = scores.get_mut(mode) {
            println!("{}", s.line(name));
        }
    }
    println!("\nR@10 per category:");
    println!("| mode | multi-hop (1) | temporal (2) | open-domain (3) | single-hop (4) |");
    println!("|---|---|---|---|---|");
    for mode in &modes {
        if let Some(s) = scores.get(mode) {
            let cell = |c: i64| s.by_category.get(&c).map_or("-".to_owned(), |(r, n)| format!("{:.3}", r / *n as f64));
            println!("| {} | {} | {} | {} | {} |", mode_name(*mode), cell(1), cell(2), cell(3), cell(4));
        }
    }
    if args.loco {
        crate::bench_loco::report(&probes, &dia_of, files.len());
    }
    db.close().await?;
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct SearchArgs {
    /// Memories in the measured tenant.
    #[arg(long, default_value_t = 100_000)]
    memories: usize,
    /// Searches per measured case.
    #[arg(long, default_value_t = 300)]
    queries: usize,
}

const TOPICS: &[&str] = &[
    "deploy",
    "rollback",
    "schema",
    "index",
    "latency",
    "queue",
    "cache",
    "token",
    "tenant",
    "replica",
    "backup",
    "budget",
    "review",
    "incident",
    "runbook",
    "owner",
    "service",
    "gateway",
    "retry",
    "timeout",
    "kafka",
    "postgres",
    "valkey",
    "search",
    "embedding",
    "migration",
    "release",
    "alert",
    "dashboard",
    "quota",
    "billing",
    "login",
];
const PEOPLE: &[&str] = &["Alice", "Bob", "Carol", "Dmitri", "Esther", "Farid", "Grace", "Hiro", "Ines", "Jonas"];

/// A deterministic synthetic memory: a person, a few topics, a number.
fn synthetic(i: usize) -> String {
    let t = |k: usize| TOPICS[(i.wrapping_mul(2654435761) >> k) % TOPICS.len()];
    let who = PEOPLE[(i / 7) % PEOPLE.len()];
    format!("{who} noted that the {} {} needs a {} check before the {} ({})", t(3), t(9), t(15), t(21), i % 997)
}

fn rss_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with(field)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let pct = |q: f64| v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1))).copied().unwrap_or(0.0);
    (pct(0.5), pct(0.95), pct(0.99))
}

/// `loci bench search`: builds the indexes for N synthetic memories (SQLite,
/// embedded indexes, local model when present) and measures search latency
/// with query embedding (hybrid, distinct queries so the cache never
/// answers) and without (lexical), plus the process's memory.
/// Stores `n` synthetic memories for `p` through the memory service's import
/// path, 5,000 per call; returns the service.
async fn grow_synthetic(db: &Database, settings: &Settings, p: &Principal, n: usize) -> anyhow::Result<MemoryService> {
    let memories = MemoryService::new(
        db.clone(),
        Provisioner::default(),
        AccessLog::start(db.clone()),
        Limits::from(&settings.limits),
    );
    let mut done = 0;
    while done < n {
        let end = (done + 5000).min(n);
        let t0 = chrono::Utc::now();
        let items = (done..end)
            .map(|i| ImportItem {
                content: synthetic(i),
                metadata: MemoryMetadata::default(),
                created_at: t0 + chrono::Duration::milliseconds(i as i64),
            })
            .collect();
        memories.import_many(p, "bench", items).await?;
        done = end;
    }
    Ok(memories)
}

pub async fn search(base: &Settings, args: &SearchArgs) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data_dir = work.path().to_path_buf();
    settings.database.url = None;
    if settings.embeddings.model_dir.is_none() {
        settings.embeddings.model_dir = Some(loci_embed::local_model_dir(&base.embeddings, &base.data_dir));
    }
    let db = Database::connect(&settings.database_url(), &PoolConfig::from_settings(&settings)).await?;
    db.migrate_up().await?;
    let mut indexes = loci_app::indexes::open(&settings, &db)?;
    // The concrete embedded vector index, for its exact search (recall).
    let ann = match &indexes.embedder {
        Some(e) => Some(std::sync::Arc::new(vector_embedded::EmbeddedVectorIndex::open(
            &work.path().join("ann"),
            e.dimensions(),
            vector_embedded::VectorOptions::default(),
        )?)),
        None => None,
    };
    if let Some(ann) = &ann {
        indexes.vector = Some(ann.clone());
    }
    let embedder = indexes.embedder.clone();
    let semantic = embedder.is_some();
    let org = OrgId::parse("bench-search").map_err(|e| anyhow::anyhow!("{e}"))?;
    let p = principal(&org);
    let started = Instant::now();
    let memories_service = grow_synthetic(&db, &settings, &p, args.memories).await?;
    let stored = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let options = IndexingOptions::from_settings(&settings.search);
    Indexer::new(db.clone(), indexes.clone(), options, 512).drain().await?;
    let indexed = started.elapsed().as_secs_f64();
    let search = SearchService::new(memories_service, indexes, SearchConfig::from_settings(&settings.search));
    if let (Some(ann), Some(embedder)) = (&ann, &embedder) {
        let filter = loci_index::SearchFilter::new(org.clone(), None);
        let (mut recall, n) = (0.0, 100);
        for q in 0..n {
            let query = embedder
                .embed_one(&format!("{} issue with the {} {}", PEOPLE[q % PEOPLE.len()], TOPICS[q % TOPICS.len()], q))
                .await?;
            let approx = ann.search(&query, &filter, 10).await?;
            let exact = ann.exact_search(&query, &filter, 10).await?;
            recall += vector_embedded::recall_at_k(&approx, &exact, 10);
        }
        println!("ANN recall@10 against exact search: {:.3} over {n} queries", recall / n as f64);
    }
    let mut cases = vec![(SearchMode::Lexical, "lexical (no query embedding)")];
    if semantic {
        cases.push((SearchMode::Hybrid, "hybrid (with query embedding)"));
    }
    println!(
        "bench search: {} memories stored in {stored:.1} s, indexed (vector{}, lexical, graph) in {indexed:.1} s ({:.0}/s)",
        args.memories,
        if semantic { "" } else { " skipped: no model" },
        args.memories as f64 / indexed.max(1e-9)
    );
    println!("| case | p50 ms | p95 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (mode, name) in cases {
        let mut lat = Vec::with_capacity(args.queries);
        for q in 0..args.queries {
            let query =
                format!("who noted the {} {} check {}", TOPICS[q % TOPICS.len()], TOPICS[(q / 3) % TOPICS.len()], q);
            let request = SearchRequest {
                query,
                limit: 10,
                filters: Default::default(),
                mode,
                weights: None,
                dedupe: false,
                as_of: None,
                rerank: None,
            };
            let t = Instant::now();
            search.search(&p, request).await?;
            lat.push(t.elapsed().as_secs_f64() * 1e3);
        }
        let (p50, p95, p99) = percentiles(lat);
        println!("| {name} | {p50:.2} | {p95:.2} | {p99:.2} |");
    }
    println!(
        "memory: peak resident {} kB, now {} kB (incl. model and memory-mapped index files)",
        rss_kb("VmHWM:"),
        rss_kb("VmRSS:")
    );
    db.close().await?;
    Ok(())
}

/// `loci bench episodic` arguments.
#[derive(Debug, clap::Args)]
pub struct EpisodicArgs {
    /// Items added per session.
    #[arg(long, default_value_t = 200)]
    pub items: usize,
    /// Sessions, each driven by its own task.
    #[arg(long, default_value_t = 16)]
    pub sessions: usize,
    /// Also run on Valkey at this URL (e.g. `redis://127.0.0.1:6379`).
    #[arg(long)]
    pub valkey: Option<String>,
}

/// `loci bench episodic`: ops/s of the episodic store in process and, given
/// a URL, on Valkey. Each session's task adds `items` items, then lists the
/// 50 newest and reads each item once: adds, lists and gets are timed apart.
pub async fn episodic(args: &EpisodicArgs) -> anyhow::Result<()> {
    use loci_stores::episodic::{EpisodicStore, InProcessEpisodicStore, ValkeyEpisodicStore};
    let mut stores: Vec<Arc<dyn EpisodicStore>> = vec![Arc::new(InProcessEpisodicStore::new())];
    if let Some(url) = &args.valkey {
        let settings = loci_settings::ValkeySettings {
            key_prefix: format!("bench{}", uuid::Uuid::new_v4().simple()),
            pool_size: 8,
            ..Default::default()
        };
        stores.push(Arc::new(ValkeyEpisodicStore::new(Valkey::connect(&Secret::new(url.clone()), &settings).await?)));
    }
    println!("| backend | sessions x items | add ops/s | list (50) ops/s | get ops/s |");
    println!("|---|---|---|---|---|");
    for store in stores {
        let org = loci_core::OrgId::parse("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut timings = [0f64; 3];
        let mut tasks = Vec::new();
        for s in 0..args.sessions {
            let (store, org, items) = (store.clone(), org.clone(), args.items);
            tasks.push(tokio::spawn(async move {
                let key =
                    loci_stores::episodic::SessionKey { org, user: loci_core::UserId::new(), session: format!("s{s}") };
                let ttl = std::time::Duration::from_secs(600);
                let mut ids = Vec::with_capacity(items);
                let t = Instant::now();
                for i in 0..items {
                    let item = loci_stores::episodic::EpisodicItem {
                        id: uuid::Uuid::now_v7(),
                        content: synthetic(i),
                        role: Some("user".into()),
                        metadata: serde_json::json!({}),
                        created_at: chrono::Utc::now(),
                        recency: 1.0,
                        summarised: false,
                        promoted_to: None,
                    };
                    store.add(&key, &item, ttl, 1_000).await?;
                    ids.push(item.id);
                }
                let add = t.elapsed().as_secs_f64();
                let t = Instant::now();
                for _ in 0..items {
                    store.list(&key, false, 50).await?;
                }
                let list = t.elapsed().as_secs_f64();
                let t = Instant::now();
                for id in &ids {
                    store.get(&key, *id).await?;
                }
                let get = t.elapsed().as_secs_f64();
                store.expire_session(&key).await?;
                anyhow::Ok([add, list, get])
            }));
        }
        for task in tasks {
            let done = task.await??;
            for (slot, t) in timings.iter_mut().zip(done) {
                *slot = slot.max(t);
            }
        }
        let ops = (args.sessions * args.items) as f64;
        println!(
            "| {} | {} x {} | {:.0} | {:.0} | {:.0} |",
            store.backend(),
            args.sessions,
            args.items,
            ops / timings[0],
            ops / timings[1],
            ops / timings[2]
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct LearningArgs {
    /// Feedback events written, by `tasks` concurrent writers.
    #[arg(long, default_value_t = 5_000)]
    pub events: usize,
    /// Concurrent writers.
    #[arg(long, default_value_t = 8)]
    pub tasks: usize,
    /// Users assigned to a running experiment (one at a time, for latency).
    #[arg(long, default_value_t = 2_000)]
    pub users: usize,
    /// Also run on PostgreSQL at this URL (a database the bench may migrate).
    #[arg(long)]
    pub postgres: Option<String>,
}

/// `loci bench learning`: feedback write throughput (events/s, through
/// `FeedbackService::record`, each event its own transaction) and the
/// latency of assigning users to a running experiment
/// (`ExperimentService::assign`: read, hash, store), on SQLite and, given a
/// URL, PostgreSQL.
pub async fn learning(base: &Settings, args: &LearningArgs) -> anyhow::Result<()> {
    use loci_domain::experiments::{ExperimentInput, ExperimentService, StatusInput};
    use loci_domain::feedback::{FeedbackInput, FeedbackService};
    let work = tempfile::tempdir()?;
    let mut targets = vec![("sqlite", None)];
    if let Some(url) = &args.postgres {
        targets.push(("postgresql", Some(url.clone())));
    }
    println!("| database | feedback events | events/s | assignments | assign p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (name, url) in targets {
        let mut settings = base.clone();
        settings.data_dir = work.path().join(name);
        settings.database.url = url.map(Secret::new);
        if settings.database.url.is_none() {
            settings.ensure_data_dir()?;
        }
        let db = Database::connect(&settings.database_url(), &PoolConfig::from_settings(&settings)).await?;
        db.migrate_up().await?;
        let memories = MemoryService::new(
            db.clone(),
            Provisioner::default(),
            AccessLog::start(db.clone()),
            Limits::from(&settings.limits),
        );
        let org = OrgId::parse(&format!("bench-learning-{}", uuid::Uuid::new_v4().simple()))
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let feedback = FeedbackService::new(
            memories.clone(),
            Default::default(),
            std::time::Duration::from_secs(30 * 86_400),
            SearchConfig::default().weights,
        );
        // Writers: each its own user, events spread evenly.
        let per_task = args.events / args.tasks.max(1);
        let started = Instant::now();
        let mut writers = Vec::new();
        for t in 0..args.tasks {
            let (feedback, org) = (feedback.clone(), org.clone());
            writers.push(tokio::spawn(async move {
                let mut p = principal(&org);
                p.subject = format!("writer{t}");
                for i in 0..per_task {
                    // Synthetic evidence: results BM25 found are accepted 9 times
                    // in 10, those the vectors found 2 in 10.
                    let (source, accepted) = if i % 2 == 0 { ("lexical", i % 20 != 0) } else { ("vector", i % 10 < 2) };
                    let input = FeedbackInput {
                        tool_name: "search_memory".into(),
                        outcome: if accepted { "accepted" } else { "rejected" }.into(),
                        decision_time_ms: Some((i % 900) as i64),
                        sources: Some(vec![source.into()]),
                        ..Default::default()
                    };
                    feedback.record(&p, input).await.map_err(|e| anyhow::anyhow!("feedback: {e}"))?;
                }
                Ok::<(), anyhow::Error>(())
            }));
        }
        for w in writers {
            w.await??;
        }
        let written = per_task * args.tasks.max(1);
        let events_per_s = written as f64 / started.elapsed().as_secs_f64();

        let mut owner = principal(&org);
        owner.scopes.insert(loci_security::scopes::ADMIN_READ.to_owned());
        let proposal = feedback.proposal(&owner, &Default::default()).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        eprintln!("{name}: weight proposal from the synthetic feedback: {}", serde_json::to_string(&proposal)?);
        let experiments = ExperimentService::new(memories.clone());
        let body = serde_json::json!({
            "name": "bench",
            "traffic_percentage": 0.8,
            "variants": [
                { "name": "a", "weight": 0.5, "config": {} },
                { "name": "b", "weight": 0.5, "config": { "mode": "lexical" } }
            ]
        });
        let input: ExperimentInput = serde_json::from_value(body)?;
        let experiment = experiments.create(&owner, input).await.map_err(|e| anyhow::anyhow!("{e}"))?;
        experiments
            .set_status(&owner, experiment.experiment_id, StatusInput { status: "running".into() })
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut latencies = Vec::with_capacity(args.users);
        for u in 0..args.users {
            let mut p = principal(&org);
            p.subject = format!("user{u}");
            // The user's first request provisions them; assignment alone is timed.
            memories.visibility(&p).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            let t = Instant::now();
            experiments.assign(&p, experiment.experiment_id).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            latencies.push(t.elapsed().as_secs_f64() * 1e3);
        }
        latencies.sort_by(f64::total_cmp);
        let pct = |q: f64| {
            latencies
                .get(((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0.0)
        };
        println!(
            "| {name} | {written} ({} writers) | {events_per_s:.0} | {} | {:.2} | {:.2} |",
            args.tasks,
            args.users,
            pct(0.5),
            pct(0.99)
        );
        db.close().await?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct RecoveryArgs {
    /// Memories in the backed-up tenant.
    #[arg(long, default_value_t = 100_000)]
    memories: usize,
    /// A PostgreSQL server URL whose role may create databases and bypass
    /// row-level security (e.g. postgres://postgres@127.0.0.1/postgres):
    /// measures PostgreSQL too, and `migrate-data` from SQLite to it.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

/// Backup, verify, restore and re-index times and archive sizes for one
/// tenant of `--memories` memories, on SQLite and (with `--postgres`) on
/// PostgreSQL, and the throughput of `migrate-data` from SQLite to
/// PostgreSQL. The memories are grown through the memory service's import
/// path and indexed by the outbox indexer (lexical and graph; no model, so
/// the graph tables hold what they hold in use).
pub async fn recovery(base: &Settings, args: &RecoveryArgs) -> anyhow::Result<()> {
    use loci_app::recovery::{self, Quiet, Rebuild, Scratch};
    use loci_stores::dump::ScratchDatabase;
    let work = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data_dir = work.path().to_path_buf();
    settings.database.url = None;
    // No model: the bench measures the relational store and its archive.
    settings.embeddings.model_dir = Some(work.path().join("no-model"));
    let sqlite_url = |name: &str| Secret::new(format!("sqlite://{}?mode=rwc", work.path().join(name).display()));
    let mut engines = vec![("SQLite", sqlite_url("source.db"), sqlite_url("restored.db"), None, None)];
    if let Some(server) = &args.postgres {
        let server = Secret::new(server.clone());
        let source = ScratchDatabase::create(&server).await?;
        let target = ScratchDatabase::create(&server).await?;
        let (s, t) = (source.url.clone(), target.url.clone());
        engines.push(("PostgreSQL", s, t, Some(source), Some(target)));
    }
    println!("| engine | grow s | backup s | archive MiB | verify s | restore s | re-index s |");
    println!("|---|---|---|---|---|---|---|");
    let mut sqlite_source = None;
    for (name, source_url, target_url, source_scratch, target_scratch) in engines {
        let db = Database::connect(&source_url, &PoolConfig::from_settings(&settings)).await?;
        db.migrate_up().await?;
        let org = OrgId::parse("bench-recovery").map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = principal(&org);
        let started = Instant::now();
        grow_synthetic(&db, &settings, &p, args.memories).await?;
        let indexes = loci_app::indexes::open(&settings, &db)?;
        Indexer::new(db.clone(), indexes, IndexingOptions::from_settings(&settings.search), 512).drain().await?;
        let grown = started.elapsed().as_secs_f64();

        let archive = work.path().join(format!("loci-backup-{name}.zip"));
        let started = Instant::now();
        recovery::backup(&settings, &db, &archive, &Quiet).await?;
        let backed_up = started.elapsed().as_secs_f64();
        let mib = std::fs::metadata(&archive)?.len() as f64 / (1024.0 * 1024.0);
        let started = Instant::now();
        let keys = recovery::KeyRing::load(recovery::master_key(&settings)?, &db).await?;
        let report = recovery::verify(&archive, &Scratch::Sqlite, &keys, &Quiet).await?;
        anyhow::ensure!(report.ok(), "the archive did not verify: {:?}", report.archive_problems);
        let verified = started.elapsed().as_secs_f64();
        let target = Database::connect(&target_url, &PoolConfig::from_settings(&settings)).await?;
        let started = Instant::now();
        recovery::restore_with_keys(&settings, &target, &archive, false, Rebuild::Queue, Some(&db), &Quiet).await?;
        let restored = started.elapsed().as_secs_f64();
        let mut restored_settings = settings.clone();
        restored_settings.data_dir = work.path().join(format!("restored-{name}"));
        let indexes = loci_app::indexes::open(&restored_settings, &target)?;
        let started = Instant::now();
        Indexer::new(target.clone(), indexes, IndexingOptions::from_settings(&settings.search), 512).drain().await?;
        let reindexed = started.elapsed().as_secs_f64();
        target.close().await?;
        println!(
            "| {name} | {grown:.1} | {backed_up:.1} | {mib:.1} | {verified:.1} | {restored:.1} | {reindexed:.1} |"
        );
        if source_scratch.is_none() {
            sqlite_source = Some(db);
        } else {
            db.close().await?;
        }
        if let Some(s) = source_scratch {
            s.drop_now().await?;
        }
        if let Some(t) = target_scratch {
            t.drop_now().await?;
        }
    }
    if let (Some(server), Some(source)) = (&args.postgres, sqlite_source) {
        let target = ScratchDatabase::create(&Secret::new(server.clone())).await?;
        let to = Database::connect(&target.url, &PoolConfig::from_settings(&settings)).await?;
        let mut moved_settings = settings.clone();
        moved_settings.data_dir = work.path().join("moved");
        let started = Instant::now();
        let report = recovery::migrate_data(
            &moved_settings,
            &source,
            &to,
            ("sqlite bench", "postgres bench"),
            &work.path().join("move.json"),
            1000,
            &Quiet,
        )
        .await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "migrate-data SQLite -> PostgreSQL: {} rows in {secs:.1} s: copy {:.1} s ({:.0} rows/s), verify of both \
             sides {:.1} s, re-index of {} memories {:.1} s",
            report.copied,
            report.copy_secs,
            report.copied as f64 / report.copy_secs.max(1e-9),
            report.verify_secs,
            report.reindexed,
            report.reindex_secs
        );
        to.close().await?;
        target.drop_now().await?;
        source.close().await?;
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct GdprArgs {
    /// Memories of the exported and erased user.
    #[arg(long, default_value_t = 10_000)]
    memories: usize,
    /// A PostgreSQL server URL whose role may create databases: measures
    /// PostgreSQL too.
    #[arg(long, value_name = "URL")]
    postgres: Option<String>,
}

/// Counts what an export writes and keeps none of it.
#[derive(Debug, Default)]
struct CountingSink(u64);

#[async_trait::async_trait]
impl loci_domain::gdpr::ExportSink for CountingSink {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), loci_domain::DomainError> {
        self.0 += bytes.len() as u64;
        Ok(())
    }
}

/// The subject access export (time, size) and the erasure (time, rows) of
/// one user with `--memories` memories, indexed (lexical and graph; no
/// model), beside another user's, on SQLite and (with `--postgres`)
/// PostgreSQL, through the services REST and MCP call.
pub async fn gdpr(base: &Settings, args: &GdprArgs) -> anyhow::Result<()> {
    use loci_domain::gdpr::Subject;
    use loci_stores::dump::ScratchDatabase;
    let work = tempfile::tempdir()?;
    let mut engines = vec![("SQLite", None)];
    if let Some(server) = &args.postgres {
        engines.push(("PostgreSQL", Some(ScratchDatabase::create(&Secret::new(server.clone())).await?)));
    }
    println!(
        "| engine | memories | export s | export MiB | erase s | relational rows removed | index documents removed |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (name, scratch) in engines {
        let mut settings = base.clone();
        settings.data_dir = work.path().join(name);
        settings.database.url = scratch.as_ref().map(|s| s.url.clone());
        // The scratch role owns the database (the bench needs no RLS proof).
        settings.database.allow_rls_bypass = true;
        settings.embeddings.model_dir = Some(work.path().join("no-model"));
        let services = loci_app::Services::build(settings.clone()).await?;
        let org = OrgId::parse("bench-gdpr").map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = principal(&org);
        let mut other = principal(&org);
        other.subject = "someone-else".into();
        grow_synthetic(&services.database, &settings, &p, args.memories).await?;
        grow_synthetic(&services.database, &settings, &other, args.memories / 10).await?;
        services.indexer.drain().await?;

        let mut sink = CountingSink::default();
        let started = Instant::now();
        services.gdpr.export(&p, &Subject::Caller, &mut sink).await?;
        let exported = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let report = services.gdpr.erase(&p, &Subject::Caller, "benchmark of an erasure").await?;
        let erased = started.elapsed().as_secs_f64();
        anyhow::ensure!(report.status == "completed", "the erasure was {}: {:?}", report.status, report.stores);
        let relational = report.stores.get("relational").map_or(0, |s| s.count);
        let indexes: u64 =
            ["lexical", "graph", "vector"].iter().filter_map(|s| report.stores.get(*s)).map(|s| s.count).sum();
        println!(
            "| {name} | {} | {exported:.2} | {:.1} | {erased:.2} | {relational} | {indexes} |",
            args.memories,
            sink.0 as f64 / (1024.0 * 1024.0)
        );
        services.access_log().flush().await;
        services.database.clone().close().await?;
        if let Some(s) = scratch {
            s.drop_now().await?;
        }
    }
    Ok(())
}

/// What `loci bench ops` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TracingMode {
    /// No subscriber at all (the floor).
    Off,
    /// Logs only (JSON lines at `warn`), no trace export.
    Logs,
    /// Spans exported over OTLP/HTTP to a sink in this process.
    Otlp,
    /// An OTLP endpoint nobody listens on (the exporter fails in the background).
    OtlpUnreachable,
}

#[derive(Debug, clap::Args)]
pub struct OpsArgs {
    /// Seconds each configuration is measured.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Concurrent clients.
    #[arg(long, default_value_t = 8)]
    connections: usize,
    /// Tracing of this run (one per process: run the bench once per mode).
    #[arg(long, value_enum, default_value_t = TracingMode::Off)]
    tracing: TracingMode,
    /// A Valkey URL: the rate limiter on Valkey is measured too.
    #[arg(long, value_name = "URL")]
    valkey: Option<String>,
}

/// An OTLP/HTTP receiver that accepts and drops every export: HTTP/1.1
/// with keep-alive, answering 200 to each request once its body is read.
async fn otlp_sink() -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 16 * 1024];
                loop {
                    // One request: the head, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..head_end + length);
                    if socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok(format!("http://127.0.0.1:{port}"))
}

/// Authenticated `GET /api/v1/memories/{id}` from `connections` clients for
/// `seconds`: requests per second and latency percentiles (ms).
async fn read_load(url: &str, token: &str, connections: usize, seconds: u64) -> anyhow::Result<(f64, f64, f64)> {
    let client = reqwest::Client::builder().pool_max_idle_per_host(connections).build()?;
    let deadline = Instant::now() + std::time::Duration::from_secs(seconds);
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, token) = (client.clone(), url.to_owned(), token.to_owned());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while Instant::now() < deadline {
                let started = Instant::now();
                let res = client.get(&url).bearer_auth(&token).send().await?;
                anyhow::ensure!(res.status().is_success(), "GET answered {}", res.status());
                res.bytes().await?;
                latencies.push(started.elapsed().as_secs_f64() * 1000.0);
            }
            Ok::<_, anyhow::Error>(latencies)
        }));
    }
    let mut all = Vec::new();
    for worker in workers {
        all.extend(worker.await??);
    }
    let rate = all.len() as f64 / seconds as f64;
    let (p50, _, p99) = percentiles(all);
    Ok((rate, p50, p99))
}

/// The cost of the operability layer: an authenticated by-id read with
/// rate limiting off, in process and on Valkey, under the given tracing;
/// then the time a call takes against a dead dependency with its breaker
/// closed (the timeout) and open.
pub async fn ops(base: &Settings, args: &OpsArgs) -> anyhow::Result<()> {
    let mut telemetry = base.telemetry.clone();
    telemetry.log_level = "warn".into();
    telemetry.log_format = loci_settings::LogFormat::Json;
    let _telemetry = match args.tracing {
        TracingMode::Off => None,
        TracingMode::Logs => Some(loci_app::telemetry::init_stderr(&telemetry)),
        TracingMode::Otlp => {
            telemetry.otlp_endpoint = Some(otlp_sink().await?);
            Some(loci_app::telemetry::init_stderr(&telemetry))
        }
        TracingMode::OtlpUnreachable => {
            // The discard port: nothing listens there.
            telemetry.otlp_endpoint = Some("http://127.0.0.1:9".into());
            Some(loci_app::telemetry::init_stderr(&telemetry))
        }
    };
    let work = tempfile::tempdir()?;
    let mut limiters: Vec<(&str, bool, Option<String>)> = vec![("off", false, None), ("in process", true, None)];
    if let Some(url) = &args.valkey {
        limiters.push(("Valkey", true, Some(url.clone())));
    }
    println!("| tracing | rate limiter | connections | req/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|---|---|");
    for (i, (name, enabled, valkey)) in limiters.into_iter().enumerate() {
        let mut settings = base.clone();
        settings.data_dir = work.path().join(format!("run-{i}"));
        settings.server.port = 0;
        settings.server.host = "127.0.0.1".into();
        settings.embeddings.model_dir = Some(work.path().join("no-model"));
        settings.valkey.url = valkey.map(Secret::new);
        settings.rate_limit.enabled = enabled;
        // A budget the load never exhausts: the cost of counting, not refusals.
        settings.rate_limit.plans.insert("bench".into(), loci_settings::RatePlan::hourly(100_000_000));
        settings.rate_limit.default_plan = "bench".into();
        let state = loci_http::HttpState::init(settings.clone()).await?;
        let app = loci_http::Application::build(state, vec![loci_api::mount()])?;
        let port = app.port();
        let state = app.state().clone();
        let handle = app.handle();
        let server = tokio::spawn(app.run_until_stopped());
        let org = OrgId::parse("bench-ops").map_err(|e| anyhow::anyhow!("{e}"))?;
        let p = principal(&org);
        let view = state
            .services
            .memories
            .create(&p, CreateMemoryInput { text: "the deploy script lives in ops/".into(), ..Default::default() })
            .await?;
        let issuer = state.security.local_issuer.as_ref().context("the embedded profile's issuer")?;
        let token = issuer.mint(&loci_security::MintRequest {
            issuer: settings.issuer().to_owned(),
            audience: settings.audiences()[0].clone(),
            subject: p.subject.clone(),
            org_id: org.as_str().to_owned(),
            scopes: vec!["memories:read".into()],
            roles: Vec::new(),
            grants: Vec::new(),
            client_id: None,
            ttl: std::time::Duration::from_secs(3600),
            dpop_jkt: None,
        })?;
        let url = format!("http://127.0.0.1:{port}/api/v1/memories/{}", view.memory.id);
        read_load(&url, &token, args.connections, 1).await?; // warm-up
        let (rate, p50, p99) = read_load(&url, &token, args.connections, args.seconds).await?;
        println!("| {:?} | {name} | {} | {rate:.0} | {p50:.2} | {p99:.2} |", args.tracing, args.connections);
        handle.stop(true).await;
        server.await??;
    }
    breaker_timing().await
}

/// A Valkey that accepts connections and never answers: each command waits
/// for the timeout until five failures open the breaker, then fails at once.
async fn breaker_timing() -> anyhow::Result<()> {
    use loci_security::RateStore;
    use loci_security::rate_limit::Quota;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut valkey_settings = loci_settings::ValkeySettings::default();
    let timeout_ms = 200;
    valkey_settings.timeout_ms = timeout_ms;
    let valkey = Valkey::connect_lazy(&Secret::new(format!("redis://127.0.0.1:{port}")), &valkey_settings)?;
    let store = loci_stores::ValkeyRateStore::new(valkey);
    let quota = Quota { limit: 10, window: std::time::Duration::from_secs(60) };
    let mut closed = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        anyhow::ensure!(store.spend("bench", quota).await.is_err(), "a silent Valkey cannot answer");
        closed.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    let mut open = Vec::new();
    for _ in 0..1000 {
        let started = Instant::now();
        anyhow::ensure!(store.spend("bench", quota).await.is_err(), "the breaker is open");
        open.push(started.elapsed().as_secs_f64() * 1_000_000.0);
    }
    let (closed_p50, _, _) = percentiles(closed);
    let (open_p50, _, open_p99) = percentiles(open);
    println!();
    println!("| dependency down | per call |");
    println!("|---|---|");
    println!("| breaker closed (Valkey timeout {timeout_ms} ms) | p50 {closed_p50:.1} ms |");
    println!("| breaker open (fail fast) | p50 {open_p50:.1} µs, p99 {open_p99:.1} µs |");
    Ok(())
}
