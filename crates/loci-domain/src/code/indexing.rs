//! The indexing job: walk the repository, parse what changed (content
//! hash), drop what is gone, resolve every call again, then put the new
//! symbols into the search indexes and only then mark their files
//! searchable (so a crash leaves them to the next run, like the outbox).
//!
//! A job is idempotent: run twice (a retry, a lease that ran out), it
//! ends with the same graph.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use loci_code::resolve::RepoFile;
use loci_code::{Language, ParsedFile, Resolution};
use loci_core::{AppId, JobId, MemoryId, MemoryState, OrgId, UserId};
use loci_index::{CodeFileNode, CodeRepoGraph, CodeSymbolNode, IndexDoc};
use loci_stores::repo::code::{self as store, CallRow, NewFile, RepoSummary, SymbolRow};
use loci_stores::repo::jobs;
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

use super::source::{self, Refused, Source};
use super::{CodeService, INDEX_JOB, IndexRequest};
use crate::DomainError;

/// Files parsed per transaction.
const FILE_BATCH: usize = 64;
/// Symbols embedded and indexed per batch.
const INDEX_BATCH: usize = 128;
/// Retries of a failed job before it fails for good.
const MAX_ATTEMPTS: i32 = 3;

/// What one run did.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct IndexReport {
    pub files_seen: u64,
    pub files_parsed: u64,
    pub files_unchanged: u64,
    pub files_removed: u64,
    pub files_with_syntax_errors: u64,
    pub files_skipped_over_limit: u64,
    pub lines_parsed: u64,
    pub symbols: u64,
    pub symbols_indexed: u64,
    pub calls: u64,
    pub calls_resolved: u64,
    pub packages: Vec<String>,
    pub dependencies: Vec<String>,
    pub refused: Vec<Refused>,
    pub seconds: f64,
}

/// A stable id from its parts: the same file or symbol keeps its id
/// across runs, so calls into an unchanged file stay valid.
fn stable_id(parts: &[&str]) -> Uuid {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The ids of a file's symbols, in order (duplicates of one qualified
/// name and kind numbered).
fn symbol_ids(repo: Uuid, path: &str, parsed: &ParsedFile) -> Vec<Uuid> {
    let mut seen: HashMap<(String, &'static str), u32> = HashMap::new();
    let repo = repo.to_string();
    parsed
        .symbols
        .iter()
        .map(|s| {
            let n = seen.entry((s.qualified_name.clone(), s.kind.as_str())).or_insert(0);
            *n += 1;
            stable_id(&[&repo, path, s.kind.as_str(), &s.qualified_name, &n.to_string()])
        })
        .collect()
}

/// A parsed source file ready to be written.
struct Parsed {
    file: NewFile,
    symbols: Vec<SymbolRow>,
    has_errors: bool,
}

/// Reads a source file once; `None` when its content is still `known`
/// (the hash of its last parse).
fn parse_file(repo: Uuid, found: &source::Found, known: Option<&str>) -> Result<Option<Parsed>, String> {
    let Some(language) = Language::from_path(&found.abs) else {
        return Ok(None);
    };
    let bytes = std::fs::read(&found.abs).map_err(|e| format!("cannot be read: {e}"))?;
    let hash = loci_code::content_hash(&bytes);
    if known == Some(hash.as_str()) {
        return Ok(None);
    }
    let text = String::from_utf8(bytes).map_err(|_| "not UTF-8 text".to_owned())?;
    let parsed = loci_code::parse(language, &text).map_err(|e| e.to_string())?;
    let file_id = stable_id(&[&repo.to_string(), &found.rel]);
    let ids = symbol_ids(repo, &found.rel, &parsed);
    let symbols = parsed
        .symbols
        .iter()
        .zip(&ids)
        .map(|(s, id)| SymbolRow {
            id: *id,
            repo_id: repo,
            file_id,
            name: s.name.clone(),
            qualified_name: s.qualified_name.clone(),
            kind: s.kind.as_str().to_owned(),
            language: language.family().to_owned(),
            start_line: i32::try_from(s.start_line).unwrap_or(i32::MAX),
            end_line: i32::try_from(s.end_line).unwrap_or(i32::MAX),
            signature: s.signature.clone(),
            doc: s.doc.clone(),
            owner_type: s.owner_type.clone(),
            parent_id: s.parent.and_then(|i| ids.get(i).copied()),
            excerpt: s.excerpt.clone(),
        })
        .collect();
    let has_errors = parsed.has_errors;
    let lines = i32::try_from(parsed.lines).unwrap_or(i32::MAX);
    let parsed_json = serde_json::to_value(&parsed).map_err(|e| e.to_string())?;
    Ok(Some(Parsed {
        file: NewFile {
            id: file_id,
            path: found.rel.clone(),
            language: language.as_str().to_owned(),
            content_hash: hash,
            bytes: i64::try_from(found.size).unwrap_or(i64::MAX),
            lines,
            parsed: parsed_json,
        },
        symbols,
        has_errors,
    }))
}

/// The document a symbol is searched by: its names, signature, doc, path
/// and the start of its code, and the words of every compound identifier.
pub(super) fn symbol_doc(org: &OrgId, s: &SymbolRow, path: &str) -> IndexDoc {
    let content =
        format!("{}\n{}\n{}\n{}\n{}", s.qualified_name, s.signature, s.doc.as_deref().unwrap_or(""), path, s.excerpt);
    let context = loci_code::tokens::expansion(&format!("{} {} {}", s.qualified_name, s.signature, path));
    let mut tags = std::collections::BTreeMap::new();
    tags.insert("kind".to_owned(), s.kind.clone());
    tags.insert("language".to_owned(), s.language.clone());
    IndexDoc {
        id: MemoryId::from_uuid(s.id),
        org_id: org.clone(),
        user_id: UserId::from_uuid(Uuid::nil()),
        app_id: AppId::from_uuid(s.repo_id),
        state: MemoryState::Active,
        content,
        context,
        access_entity: None,
        fields: Default::default(),
        tags,
        created_at: Utc::now(),
    }
}

/// Longest text a symbol's vector is computed from, in characters: the
/// model's cost grows with the tokens, and the name, signature and the
/// doc's summary carry the meaning (the code itself and the rest of the
/// doc are lexical evidence).
const EMBEDDED_CHARS: usize = 200;

/// The text a symbol's vector is computed from.
fn embedding_text(s: &SymbolRow) -> String {
    let words = loci_code::tokens::split_identifier(&s.name).join(" ");
    // The doc's first sentence: its summary.
    let doc = s.doc.as_deref().unwrap_or("");
    let summary = doc.split_terminator(". ").next().unwrap_or(doc).lines().next().unwrap_or("");
    let text = format!("{} {}\n{}", words, s.signature, summary);
    match text.char_indices().nth(EMBEDDED_CHARS) {
        Some((i, _)) => text[..i].to_owned(),
        None => text,
    }
}

impl CodeService {
    /// Runs indexing jobs until `stop`.
    pub async fn run_jobs(self, poll: Duration, stop: watch::Receiver<bool>) {
        let worker = crate::job_worker::Worker {
            db: self.memories.db().clone(),
            kind: INDEX_JOB,
            concurrency: self.config.job_concurrency,
            lease: self.config.job_lease,
            wake: Arc::clone(&self.wake),
        };
        worker
            .run(poll, stop, move |job| {
                let service = self.clone();
                async move { service.run_claimed(&job).await }
            })
            .await;
    }

    async fn run_claimed(&self, job: &jobs::ClaimedJob) {
        let outcome = async {
            let tx = self.memories.db().begin_tenant(&job.org_id).await?;
            let record = jobs::get(&tx, job.id).await?.ok_or(DomainError::NotFound("job"))?;
            if !matches!(record.status, loci_core::JobStatus::Queued | loci_core::JobStatus::Running) {
                tx.commit().await?;
                return Err(DomainError::JobEnded);
            }
            jobs::start(&tx, job.id, job.attempts).await?;
            tx.commit().await?;
            let request: IndexRequest = serde_json::from_value(record.request)
                .map_err(|e| DomainError::Internal(format!("code job request unreadable: {e}")))?;
            self.index_repo(&job.org_id, request.repo_id, Some(job.id)).await
        }
        .await;
        match outcome {
            Ok(()) | Err(DomainError::JobEnded) => {}
            Err(e) => {
                let detail = e.public_detail();
                let permanent =
                    matches!(e, DomainError::Validation(_) | DomainError::NotFound(_) | DomainError::Conflict(_));
                let result = if permanent || job.attempts >= MAX_ATTEMPTS {
                    self.end_job(&job.org_id, job.id, Err(detail.clone())).await
                } else {
                    let delay = Duration::from_secs(5 * u64::try_from(job.attempts).unwrap_or(1));
                    jobs::available_after(self.memories.db(), job.id, delay).await.map_err(DomainError::from)
                };
                if let Err(store) = result {
                    tracing::warn!(error = %store, job = %job.id, "could not record a code job failure");
                }
                tracing::warn!(error = %detail, job = %job.id, attempts = job.attempts, "code indexing job failed");
            }
        }
    }

    async fn end_job(
        &self,
        org: &OrgId,
        job: JobId,
        outcome: Result<serde_json::Value, String>,
    ) -> Result<(), DomainError> {
        let tx = self.memories.db().begin_tenant(org).await?;
        jobs::finish(&tx, job, outcome).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn progress(&self, org: &OrgId, job: Option<JobId>, report: &IndexReport) -> Result<(), DomainError> {
        let Some(job) = job else {
            return Ok(());
        };
        if self.cancelled(org, job).await? {
            return Err(DomainError::JobEnded);
        }
        let tx = self.memories.db().begin_tenant(org).await?;
        let value = serde_json::to_value(report).map_err(|e| DomainError::Internal(e.to_string()))?;
        jobs::set_progress(&tx, job, value).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Indexes one repository of `org` (the job's work; also callable
    /// directly by benchmarks). With a job, it is ended with the report.
    pub async fn index_repo(&self, org: &OrgId, repo_id: Uuid, job: Option<JobId>) -> Result<(), DomainError> {
        let report = self.index_repo_report(org, repo_id, job).await?;
        if let Some(job) = job {
            let value = serde_json::to_value(&report).map_err(|e| DomainError::Internal(e.to_string()))?;
            self.end_job(org, job, Ok(value)).await?;
        }
        Ok(())
    }

    pub(super) async fn index_repo_report(
        &self,
        org: &OrgId,
        repo_id: Uuid,
        job: Option<JobId>,
    ) -> Result<IndexReport, DomainError> {
        let started = Instant::now();
        let tx = self.memories.db().begin_tenant_read(org).await?;
        let repo = store::get_repo(&tx, repo_id).await?.ok_or(DomainError::NotFound("repository"))?;
        tx.commit().await?;
        if repo.index_generation.as_deref() != Some(self.indexes.generation.as_str()) {
            // Its symbols are not in these indexes (or not all): every
            // file goes in again, unchanged ones without being parsed.
            let tx = self.memories.db().begin_tenant(org).await?;
            store::mark_unsearchable(&tx, repo_id).await?;
            tx.commit().await?;
        }
        let tx = self.memories.db().begin_tenant_read(org).await?;
        let stored = store::files(&tx, repo_id).await?;
        tx.commit().await?;
        let source = Source::from_stored(&repo.source_kind, &repo.source);
        let root = self.materialise(org, repo_id, &source).await?;

        let (max_bytes, max_files) = (self.config.max_file_bytes, self.config.max_files);
        let walk_root = root.clone();
        let (found, refused, skipped) =
            tokio::task::spawn_blocking(move || source::walk(&walk_root, max_bytes, max_files))
                .await
                .map_err(|e| DomainError::Internal(format!("walk: {e}")))?;
        let mut report = IndexReport { refused, files_skipped_over_limit: skipped, ..Default::default() };

        // Manifests: what the repository publishes and depends on.
        let mut packages = BTreeSet::new();
        let mut dependencies = BTreeSet::new();
        for f in found.iter().filter(|f| loci_code::manifest::is_manifest(f.rel.rsplit('/').next().unwrap_or(""))) {
            let name = f.rel.rsplit('/').next().unwrap_or("");
            let Ok(text) = std::fs::read_to_string(&f.abs) else {
                continue;
            };
            match loci_code::read_manifest(name, &text) {
                Ok(Some(m)) => {
                    packages.extend(m.package);
                    dependencies.extend(m.dependencies);
                }
                Ok(None) => {}
                Err(e) => report.refused.push(Refused { path: f.rel.clone(), reason: e.to_string() }),
            }
        }
        for p in &packages {
            dependencies.remove(p);
        }

        // What changed since the last run.
        let by_path: HashMap<&str, &store::FileState> = stored.iter().map(|f| (f.path.as_str(), f)).collect();
        let sources: Vec<&source::Found> = found.iter().filter(|f| Language::from_path(&f.abs).is_some()).collect();
        report.files_seen = sources.len() as u64;
        let present: HashSet<&str> = sources.iter().map(|f| f.rel.as_str()).collect();
        let removed: Vec<Uuid> = stored.iter().filter(|f| !present.contains(f.path.as_str())).map(|f| f.id).collect();
        let mut retired: HashSet<Uuid> = HashSet::new();
        let mut kept: HashSet<Uuid> = HashSet::new();

        for batch in sources.chunks(FILE_BATCH) {
            let owned: Vec<source::Found> = batch.iter().map(|f| (*f).clone()).collect();
            let known: Vec<Option<String>> =
                owned.iter().map(|f| by_path.get(f.rel.as_str()).map(|s| s.content_hash.clone())).collect();
            let parsed = tokio::task::spawn_blocking(move || {
                owned
                    .iter()
                    .zip(known)
                    .map(|(f, known)| (f.rel.clone(), parse_file(repo_id, f, known.as_deref())))
                    .collect::<Vec<_>>()
            })
            .await
            .map_err(|e| DomainError::Internal(format!("parse: {e}")))?;
            let tx = self.memories.db().begin_tenant(org).await?;
            for (rel, outcome) in parsed {
                match outcome {
                    Ok(None) => report.files_unchanged += 1,
                    Ok(Some(p)) => {
                        report.files_parsed += 1;
                        report.lines_parsed += u64::try_from(p.file.lines).unwrap_or(0);
                        report.files_with_syntax_errors += u64::from(p.has_errors);
                        kept.extend(p.symbols.iter().map(|s| s.id));
                        retired.extend(store::replace_file(&tx, repo_id, p.file, p.symbols).await?);
                    }
                    Err(reason) => report.refused.push(Refused { path: rel, reason }),
                }
            }
            tx.commit().await?;
            self.progress(org, job, &report).await?;
        }
        if !removed.is_empty() {
            let tx = self.memories.db().begin_tenant(org).await?;
            retired.extend(store::remove_files(&tx, &removed).await?);
            tx.commit().await?;
            report.files_removed = removed.len() as u64;
        }

        // Calls, resolved against the whole repository as it is now.
        let tx = self.memories.db().begin_tenant(org).await?;
        let all = store::parsed_files(&tx, repo_id).await?;
        let decoded: Vec<(Uuid, String, Language, ParsedFile)> = all
            .into_iter()
            .filter_map(|(id, path, language, parsed)| {
                let language = Language::parse_name(&language)?;
                let parsed: ParsedFile = serde_json::from_value(parsed).ok()?;
                Some((id, path, language, parsed))
            })
            .collect();
        // What each file imports, for the graph engine's IMPORTS.
        let imports: HashMap<Uuid, Vec<String>> = match &self.graph {
            Some(_) => decoded
                .iter()
                .map(|(id, _, _, parsed)| {
                    let mut modules: Vec<String> = parsed.imports.iter().map(|i| i.module.clone()).collect();
                    modules.sort();
                    modules.dedup();
                    (*id, modules)
                })
                .collect(),
            None => HashMap::new(),
        };
        let (calls, symbol_count) = tokio::task::spawn_blocking(move || resolved_calls(repo_id, &decoded))
            .await
            .map_err(|e| DomainError::Internal(format!("resolve: {e}")))?;
        report.calls = calls.len() as u64;
        report.calls_resolved = calls.iter().filter(|c| c.callee_id.is_some()).count() as u64;
        report.symbols = symbol_count;
        let graph_calls = if self.graph.is_some() { calls.clone() } else { Vec::new() };
        store::replace_calls(&tx, repo_id, calls).await?;
        report.packages = packages.into_iter().collect();
        report.dependencies = dependencies.into_iter().collect();
        let summary = RepoSummary {
            packages: report.packages.clone(),
            dependencies: report.dependencies.clone(),
            file_count: i32::try_from(present.len()).unwrap_or(i32::MAX),
            symbol_count: i32::try_from(symbol_count).unwrap_or(i32::MAX),
        };
        store::update_summary(&tx, repo_id, &summary).await?;
        tx.commit().await?;
        if let Some(graph) = &self.graph {
            let snapshot = self.graph_of(org, &repo, &summary, graph_calls, imports).await?;
            graph.replace_repo(org, &snapshot).await?;
        }

        // Search indexes: drop what is gone, add what is new; then mark.
        let gone: Vec<Uuid> = retired.difference(&kept).copied().collect();
        self.unindex(org, &gone).await?;
        report.symbols_indexed = self.index_unsearchable(org, repo_id).await?;
        let tx = self.memories.db().begin_tenant(org).await?;
        store::set_index_generation(&tx, repo_id, &self.indexes.generation).await?;
        tx.commit().await?;
        report.seconds = started.elapsed().as_secs_f64();
        Ok(report)
    }

    /// The repository's whole graph as the code tables hold it now, for
    /// the graph engine.
    async fn graph_of(
        &self,
        org: &OrgId,
        repo: &store::CodeRepo,
        summary: &RepoSummary,
        calls: Vec<CallRow>,
        mut imports: HashMap<Uuid, Vec<String>>,
    ) -> Result<CodeRepoGraph, DomainError> {
        let tx = self.memories.db().begin_tenant_read(org).await?;
        let files = store::files(&tx, repo.id).await?;
        let symbols = store::symbols_of_repo(&tx, repo.id).await?;
        tx.commit().await?;
        Ok(CodeRepoGraph {
            id: repo.id,
            name: repo.name.clone(),
            packages: summary.packages.clone(),
            dependencies: summary.dependencies.clone(),
            files: files
                .into_iter()
                .map(|f| CodeFileNode {
                    imports: imports.remove(&f.id).unwrap_or_default(),
                    id: f.id,
                    path: f.path,
                    language: f.language,
                })
                .collect(),
            symbols: symbols
                .into_iter()
                .map(|s| CodeSymbolNode {
                    id: s.id,
                    file_id: s.file_id,
                    name: s.name,
                    qualified_name: s.qualified_name,
                    kind: s.kind,
                })
                .collect(),
            calls,
        })
    }

    /// Puts the symbols of files not yet searchable into the search
    /// indexes, flushes them, then marks the files; the symbols indexed.
    async fn index_unsearchable(&self, org: &OrgId, repo_id: Uuid) -> Result<u64, DomainError> {
        let tx = self.memories.db().begin_tenant_read(org).await?;
        let pending: Vec<store::FileState> =
            store::files(&tx, repo_id).await?.into_iter().filter(|f| !f.searchable).collect();
        tx.commit().await?;
        let mut indexed = 0u64;
        for files in pending.chunks(FILE_BATCH) {
            let ids: Vec<Uuid> = files.iter().map(|f| f.id).collect();
            let paths: HashMap<Uuid, &str> = files.iter().map(|f| (f.id, f.path.as_str())).collect();
            let tx = self.memories.db().begin_tenant_read(org).await?;
            let symbols = store::symbols_of_files(&tx, &ids).await?;
            tx.commit().await?;
            for chunk in symbols.chunks(INDEX_BATCH) {
                let docs: Vec<IndexDoc> =
                    chunk.iter().map(|s| symbol_doc(org, s, paths.get(&s.file_id).copied().unwrap_or(""))).collect();
                if let (Some(vector), Some(embedder)) = (&self.indexes.vector, &self.indexes.embedder) {
                    let texts: Vec<String> = chunk.iter().map(embedding_text).collect();
                    let vectors =
                        embedder.embed(&texts).await.map_err(|e| DomainError::Internal(format!("embedding: {e}")))?;
                    let pairs: Vec<(IndexDoc, Vec<f32>)> = docs.iter().cloned().zip(vectors).collect();
                    vector.upsert(&pairs).await?;
                }
                self.indexes.lexical.upsert(&docs).await?;
                indexed += chunk.len() as u64;
            }
            self.indexes.lexical.flush().await?;
            if let Some(vector) = &self.indexes.vector {
                vector.flush().await?;
            }
            let tx = self.memories.db().begin_tenant(org).await?;
            store::mark_searchable(&tx, &ids).await?;
            tx.commit().await?;
        }
        Ok(indexed)
    }
}

/// Every call of the repository with its target; the symbol count.
fn resolved_calls(repo: Uuid, files: &[(Uuid, String, Language, ParsedFile)]) -> (Vec<CallRow>, u64) {
    let views: Vec<RepoFile<'_>> =
        files.iter().map(|(_, path, language, parsed)| RepoFile { path, language: *language, parsed }).collect();
    let resolved = loci_code::resolve_calls(&views);
    let ids: Vec<Vec<Uuid>> = files.iter().map(|(_, path, _, parsed)| symbol_ids(repo, path, parsed)).collect();
    let symbol_count = ids.iter().map(Vec::len).sum::<usize>() as u64;
    let mut out = Vec::new();
    for (f, ((file_id, _, _, parsed), results)) in files.iter().zip(&resolved).enumerate() {
        for (i, (call, r)) in parsed.calls.iter().zip(results).enumerate() {
            let callee_id = r.target.and_then(|(g, s)| ids.get(g).and_then(|v| v.get(s)).copied());
            out.push(CallRow {
                id: stable_id(&[&file_id.to_string(), &i.to_string()]),
                repo_id: repo,
                file_id: *file_id,
                caller_id: call.caller.and_then(|c| ids.get(f).and_then(|v| v.get(c)).copied()),
                callee_id,
                callee_name: call.callee.clone(),
                qualifier: call.qualifier.clone(),
                module: r.module.clone(),
                line: i32::try_from(call.line).unwrap_or(i32::MAX),
                resolution: if callee_id.is_some() { r.resolution } else { Resolution::Unresolved }.as_str().to_owned(),
            });
        }
    }
    (out, symbol_count)
}
