//! `loci bench code`: code intelligence on real repositories. Indexing
//! throughput (first run, and a second run with nothing changed),
//! definitions compared with universal-ctags per language (precision and
//! recall), latency of find_callers and impact_analysis, and search
//! examples. Everything goes through `CodeService`, as REST and MCP do.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use loci_core::OrgId;
use loci_domain::code::{CodeSearchInput, RepoInput, SymbolRef, SymbolView};
use loci_settings::Settings;

/// What `loci bench code` measures.
#[derive(Debug, clap::Args)]
pub struct CodeArgs {
    /// A repository directory to index (repeat); its last segment names it.
    #[arg(long = "repo", required = true)]
    repos: Vec<PathBuf>,
    /// Compare definitions with `ctags` (universal-ctags) output.
    #[arg(long)]
    ctags: bool,
    /// Symbols whose callers and impact are timed.
    #[arg(long, default_value_t = 200)]
    queries: usize,
    /// Search queries to show the first hits of (repeat).
    #[arg(long = "search")]
    searches: Vec<String>,
    /// With --ctags: print this many definitions per language that only
    /// one side has.
    #[arg(long, default_value_t = 0)]
    show_mismatches: usize,
}

/// The ctags kinds comparable with Loci's definitions, per language (what
/// both sides extract; fields, locals, variables and enumerators are not
/// definitions Loci indexes).
fn ctags_kinds(language: &str) -> &'static [&'static str] {
    match language {
        "Rust" => &["macro", "method", "function", "enum", "interface", "module", "struct", "typedef", "variable"],
        "Python" => &["class", "function", "member"],
        "JavaScript" => &["function", "class", "method", "generator"],
        "TypeScript" => &["function", "class", "interface", "enum", "method", "namespace", "alias", "generator"],
        "Go" => &["func", "struct", "interface", "type", "talias", "methodSpec", "const"],
        "Java" => &["class", "interface", "enum", "method", "annotation"],
        _ => &[],
    }
}

/// Loci's language family of a ctags language name.
fn family(ctags_language: &str) -> Option<&'static str> {
    Some(match ctags_language {
        "Rust" => "rust",
        "Python" => "python",
        "JavaScript" => "javascript",
        "TypeScript" => "typescript",
        "Go" => "go",
        "Java" => "java",
        _ => return None,
    })
}

/// Loci's kinds left out of the comparison per language, where ctags has
/// no comparable kind (Python and JavaScript constants are its variables;
/// Java constants its fields).
fn loci_excluded(language: &str, kind: &str) -> bool {
    matches!((language, kind), ("python" | "javascript" | "typescript" | "java", "constant"))
}

#[derive(Debug, Default, Clone)]
struct Score {
    ours: usize,
    theirs: usize,
    matched: usize,
    /// Samples of definitions only ctags has, and only Loci has.
    missed: Vec<String>,
    extra: Vec<String>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// ctags' definitions under `root`: (language, relative path, line, name).
fn ctags_definitions(root: &std::path::Path) -> anyhow::Result<Vec<(String, String, u32, String)>> {
    let out = std::process::Command::new("ctags")
        .args(["-R", "--output-format=json", "--fields=+nKl", "-f", "-"])
        .arg(".")
        .current_dir(root)
        .output()
        .context("ctags (install universal-ctags)")?;
    anyhow::ensure!(out.status.success(), "ctags failed: {}", String::from_utf8_lossy(&out.stderr));
    let mut defs = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(tag) = serde_json::from_str::<serde_json::Value>(line) else { continue };
        let (Some(language), Some(kind), Some(path), Some(n), Some(name)) = (
            tag["language"].as_str(),
            tag["kind"].as_str(),
            tag["path"].as_str(),
            tag["line"].as_u64(),
            tag["name"].as_str(),
        ) else {
            continue;
        };
        if ctags_kinds(language).contains(&kind) {
            let path = path.trim_start_matches("./").to_owned();
            defs.push((language.to_owned(), path, u32::try_from(n).unwrap_or(0), name.to_owned()));
        }
    }
    Ok(defs)
}

/// One of Loci's definitions: its span, whether a tag matched it, itself.
type Candidate<'a> = (i32, i32, bool, &'a SymbolView);

/// Precision and recall of `ours` against ctags: a definition matches a
/// tag of the same file and name whose line lies within its span. Files
/// the walk does not read (skipped directories, over the size limit) are
/// left out of ctags' side.
fn compare(
    root: &std::path::Path,
    ours: &[SymbolView],
    theirs: &[(String, String, u32, String)],
    scores: &mut BTreeMap<String, Score>,
    max_bytes: u64,
    samples: usize,
) {
    const SKIPPED: &[&str] =
        &["target", "node_modules", ".git", "__pycache__", "dist", "build", "vendor", ".venv", "venv"];
    let read = |path: &str| {
        !path.split('/').any(|seg| SKIPPED.contains(&seg))
            && std::fs::metadata(root.join(path)).is_ok_and(|m| m.len() <= max_bytes)
    };
    let mut by_file: HashMap<(&str, &str), Vec<Candidate<'_>>> = HashMap::new();
    for s in ours.iter().filter(|s| !loci_excluded(&s.language, &s.kind)) {
        by_file.entry((s.path.as_str(), s.name.as_str())).or_default().push((s.start_line, s.end_line, false, s));
        scores.entry(s.language.clone()).or_default().ours += 1;
    }
    for (language, path, line, name) in theirs.iter().filter(|t| read(&t.1)) {
        let Some(family) = family(language) else { continue };
        let entry = scores.entry(family.to_owned()).or_default();
        entry.theirs += 1;
        let line = i32::try_from(*line).unwrap_or(0);
        // The tightest unused span holding the line (a class and its
        // constructor share a name).
        let found = by_file.get_mut(&(path.as_str(), name.as_str())).and_then(|c| {
            c.iter_mut()
                .filter(|(start, end, used, _)| !*used && (*start..=*end).contains(&line))
                .min_by_key(|(start, end, _, _)| end - start)
        });
        match found {
            Some(c) => {
                c.2 = true;
                entry.matched += 1;
            }
            None if entry.missed.len() < samples => entry.missed.push(format!("{path}:{line} {name}")),
            None => {}
        }
    }
    for (_, candidates) in by_file {
        for (_, _, _, s) in candidates.into_iter().filter(|c| !c.2) {
            let entry = scores.entry(s.language.clone()).or_default();
            if entry.extra.len() < samples {
                entry.extra.push(format!("{}:{} {} {}", s.path, s.start_line, s.kind, s.qualified_name));
            }
        }
    }
}

pub async fn code(base: &Settings, args: &CodeArgs) -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let mut settings = base.clone();
    settings.data_dir = work.path().join("data");
    settings.database.url = None;
    let roots: Vec<PathBuf> = args.repos.iter().map(std::fs::canonicalize).collect::<Result<_, _>>()?;
    settings.code.allowed_roots = roots.clone();
    let max_bytes = settings.code.max_file_bytes;
    let services = loci_app::Services::build(settings).await?;
    let org = OrgId::parse("bench-code").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut p = super::bench::principal(&org);
    p.scopes.insert(loci_security::scopes::MEMORIES_READ.to_owned());
    let embedder = services.code.indexes().embedder.as_ref().map(|e| e.model().to_owned());
    println!("embedder: {}", embedder.as_deref().unwrap_or("none (lexical and graph only)"));

    println!(
        "| repository | files | lines | symbols | calls (resolved) | index s | files/s | lines/s | no-change re-index s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut repos = Vec::new();
    let mut scores: BTreeMap<String, Score> = BTreeMap::new();
    for root in &roots {
        let name = root
            .file_name()
            .map(|n| {
                n.to_string_lossy()
                    .replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '_' && c != '.', "-")
            })
            .unwrap_or_default();
        let input =
            RepoInput { name: Some(name.clone()), path: Some(root.to_string_lossy().into_owned()), git_url: None };
        let repo = services.code.register(&p, input).await?;
        let started = Instant::now();
        let report = services.code.index_now(&p, repo.id).await?;
        let first = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let again = services.code.index_now(&p, repo.id).await?;
        let second = started.elapsed().as_secs_f64();
        anyhow::ensure!(again["files_parsed"] == 0, "a second run parsed files again: {again}");
        let files = report["files_parsed"].as_u64().unwrap_or(0);
        let lines = report["lines_parsed"].as_u64().unwrap_or(0);
        println!(
            "| {name} | {files} | {lines} | {} | {} ({}) | {first:.2} | {:.0} | {:.0} | {second:.2} |",
            report["symbols"],
            report["calls"],
            report["calls_resolved"],
            files as f64 / first,
            lines as f64 / first
        );
        if args.ctags {
            let ours = services.code.repo_symbols(&p, repo.id).await?;
            let theirs = ctags_definitions(root)?;
            compare(root, &ours, &theirs, &mut scores, max_bytes, args.show_mismatches);
        }
        repos.push((name, repo.id));
    }

    if args.ctags {
        println!("\n| language | Loci definitions | ctags definitions | matched | precision | recall |");
        println!("|---|---|---|---|---|---|");
        for (language, s) in &scores {
            let precision = if s.ours == 0 { 0.0 } else { s.matched as f64 / s.ours as f64 };
            let recall = if s.theirs == 0 { 0.0 } else { s.matched as f64 / s.theirs as f64 };
            println!("| {language} | {} | {} | {} | {precision:.3} | {recall:.3} |", s.ours, s.theirs, s.matched);
        }
        for (language, s) in scores.iter().filter(|(_, s)| !s.missed.is_empty() || !s.extra.is_empty()) {
            println!("\n{language}: only ctags: {:?}\n{language}: only Loci: {:?}", s.missed, s.extra);
        }
    }

    // Latency of the graph queries, on callable symbols spread over every repository.
    let mut targets = Vec::new();
    for (_, id) in &repos {
        let symbols = services.code.repo_symbols(&p, *id).await?;
        let callable: Vec<SymbolView> =
            symbols.into_iter().filter(|s| matches!(s.kind.as_str(), "function" | "method")).collect();
        let step = (callable.len() / (args.queries / repos.len().max(1)).max(1)).max(1);
        targets.extend(callable.into_iter().step_by(step));
    }
    targets.truncate(args.queries);
    let mut callers_ms = Vec::new();
    let mut impact_ms = Vec::new();
    let mut edges = 0usize;
    let mut hits = 0usize;
    for t in &targets {
        let started = Instant::now();
        let tree = services.code.callers(&p, &SymbolRef::Id(t.id), 3).await?;
        callers_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        edges += tree.edges.len();
        let started = Instant::now();
        let impact = services.code.impact(&p, &SymbolRef::Id(t.id), 3).await?;
        impact_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        hits += impact.hits.len();
    }
    callers_ms.sort_by(f64::total_cmp);
    impact_ms.sort_by(f64::total_cmp);
    println!("\n| query (depth 3, {} symbols) | p50 ms | p95 ms | mean results |", targets.len());
    println!("|---|---|---|---|");
    let n = targets.len().max(1) as f64;
    println!(
        "| find_callers | {:.2} | {:.2} | {:.1} |",
        percentile(&callers_ms, 0.5),
        percentile(&callers_ms, 0.95),
        edges as f64 / n
    );
    println!(
        "| impact_analysis | {:.2} | {:.2} | {:.1} |",
        percentile(&impact_ms, 0.5),
        percentile(&impact_ms, 0.95),
        hits as f64 / n
    );

    for query in &args.searches {
        let started = Instant::now();
        let found = services.code.search(&p, &CodeSearchInput { query: query.clone(), ..Default::default() }).await?;
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        println!("\nsearch_code_hybrid {query:?} ({ms:.1} ms):");
        for h in found.hits.iter().take(5) {
            println!(
                "  {:.4} [{}] {} {} ({}/{}:{})",
                h.score,
                h.sources.join("+"),
                h.symbol.kind,
                h.symbol.qualified_name,
                h.symbol.repo,
                h.symbol.path,
                h.symbol.start_line
            );
        }
    }
    services.access_log().flush().await;
    Ok(())
}
