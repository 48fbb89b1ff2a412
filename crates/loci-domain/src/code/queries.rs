//! Queries over the code graph: symbols, callers and callees, impact
//! analysis (across repositories through DEPENDS_ON), explanations and
//! hybrid code search.

use std::collections::{HashMap, HashSet};

use loci_code::manifest::normalise;
use loci_code::{Language, SymbolKind};
use loci_core::AppId;
use loci_index::{Hit, SearchFilter};
use loci_security::Principal;
use loci_stores::TenantTx;
use loci_stores::repo::code::{self as store, CallRow, CodeRepo, SymbolQuery, SymbolRow};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::explainer::SymbolBrief;
use super::{CodeService, MAX_DEPTH};
use crate::search::{SearchFilters, SearchMode, SearchRequest};
use crate::{DomainError, FieldViolation};

/// Most edges a walk returns.
pub const MAX_EDGES: u64 = 500;
/// Most hits of a code search.
pub const MAX_SEARCH_LIMIT: usize = 50;
/// Most symbols a name designates in one query.
const MAX_TARGETS: u64 = 20;
/// Longest code search query.
pub const MAX_QUERY: usize = 1_000;
/// Fusion constant of reciprocal rank fusion.
const RRF_K: f32 = 60.0;

/// A symbol named by id, or by name (exact name or qualified name) within
/// an optional repository (id or name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SymbolRef {
    Id(Uuid),
    Name { name: String, repo: Option<String> },
}

impl SymbolRef {
    /// A UUID is an id; anything else a name.
    pub fn parse(symbol: &str, repo: Option<String>) -> Self {
        match Uuid::parse_str(symbol) {
            Ok(id) => Self::Id(id),
            Err(_) => Self::Name { name: symbol.to_owned(), repo },
        }
    }
}

/// A definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct SymbolView {
    pub id: Uuid,
    pub repo_id: Uuid,
    pub repo: String,
    pub path: String,
    pub name: String,
    pub qualified_name: String,
    pub kind: String,
    pub language: String,
    pub start_line: i32,
    pub end_line: i32,
    pub signature: String,
    pub doc: Option<String>,
}

/// A lookup of symbols by name.
#[derive(Debug, Clone, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SymbolQueryInput {
    /// The exact name or qualified name (`parse`, `Parser::parse`).
    #[param(min_length = 1, max_length = 500)]
    pub name: String,
    /// A repository id or name.
    #[param(max_length = 100)]
    pub repo: Option<String>,
    /// function, method, struct, class, enum, interface, trait, type_alias, module, constant, macro.
    pub kind: Option<String>,
    /// rust, python, typescript, tsx, javascript, go, java.
    pub language: Option<String>,
    /// 1 to 100 (default 20).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 100)]
    pub limit: Option<String>,
}

/// One call edge of a walk.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallEdgeView {
    /// The caller (find_callers) or callee (find_callees); absent for a
    /// call at file level or to a callee outside the repositories.
    pub symbol: Option<SymbolView>,
    /// The callee's name as written (find_callees), else the symbol's.
    pub name: String,
    /// The symbol this edge leads from (the callee for callers, the caller
    /// for callees).
    pub via: Uuid,
    /// Where the call is written.
    pub call_path: String,
    pub call_line: i32,
    /// Steps from the symbol asked about (1: direct).
    pub depth: u32,
    /// same_file, import, method, unique_name (a likely match), unresolved,
    /// cross_repo.
    pub resolution: String,
    /// The module an unresolved callee was imported from.
    pub module: Option<String>,
}

/// The answer of find_callers / find_callees.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CallTreeView {
    /// The symbols asked about (a name can designate several).
    pub targets: Vec<SymbolView>,
    pub depth: u32,
    pub edges: Vec<CallEdgeView>,
    /// More edges existed than were returned.
    pub truncated: bool,
}

/// A symbol a change would affect.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImpactHit {
    pub symbol: SymbolView,
    pub depth: u32,
    /// Higher first: nearer, and reached through surer edges.
    pub score: f32,
    /// In another repository than the target (through DEPENDS_ON).
    pub cross_repo: bool,
    /// Qualified names from this symbol to the target: why it is hit.
    pub path: Vec<String>,
}

/// The answer of impact_analysis.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImpactView {
    pub targets: Vec<SymbolView>,
    pub depth: u32,
    pub hits: Vec<ImpactHit>,
    /// Registered repositories that depend on a target's repository.
    pub dependent_repos: Vec<String>,
    pub truncated: bool,
}

/// A memory that mentions a symbol.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct MemoryMention {
    pub memory_id: Uuid,
    pub content: String,
    pub score: f32,
}

/// The answer of explain_code.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ExplainView {
    pub symbol: SymbolView,
    /// The start of its code.
    pub code: String,
    pub callers: Vec<CallEdgeView>,
    pub callees: Vec<CallEdgeView>,
    /// The team's memories that mention it (only with memories:read).
    pub memories: Vec<MemoryMention>,
    /// What the symbol does, in a few sentences, by the configured LLM
    /// (`code.llm_summary`); absent without one.
    pub summary: Option<CodeSummary>,
    /// `llm` when a summary was asked of the LLM and it did not answer (the
    /// rest of the explanation is complete).
    pub missing_sources: Vec<String>,
}

/// A symbol summarised by an LLM.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CodeSummary {
    pub text: String,
    /// The model that wrote it.
    pub model: String,
}

/// A code search.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeSearchInput {
    /// 1 to 1,000 characters.
    pub query: String,
    /// A repository id or name.
    #[serde(default)]
    pub repo: Option<String>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
    /// 1 to 50 (default 10).
    #[serde(default, deserialize_with = "crate::inputs::whole_number::option")]
    pub limit: Option<i64>,
    /// hybrid (default), lexical or semantic.
    #[serde(default)]
    pub mode: Option<String>,
}

/// A code search hit with each source's rank score.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CodeSearchHit {
    pub symbol: SymbolView,
    pub score: f32,
    /// lexical, vector, graph: the sources that found it.
    pub sources: Vec<String>,
}

/// The answer of search_code_hybrid.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CodeSearchView {
    pub hits: Vec<CodeSearchHit>,
    pub mode: String,
    /// Sources that could not answer (vector without a model).
    pub missing_sources: Vec<String>,
}

fn invalid(field: &str, detail: impl Into<String>) -> DomainError {
    DomainError::Validation(vec![FieldViolation::new(field, detail.into())])
}

/// A symbol name of a query: 1 to 500 characters, not blank, no control
/// characters.
fn valid_symbol_name(name: &str) -> bool {
    !crate::rules::is_blank(name) && name.chars().count() <= 500 && !crate::rules::has_control(name)
}

/// 1..=MAX_DEPTH, default 3.
pub fn depth(raw: Option<&str>) -> Result<u32, DomainError> {
    match raw {
        None => Ok(3),
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|d| (1..=MAX_DEPTH).contains(d))
            .ok_or_else(|| invalid("depth", format!("a whole number from 1 to {MAX_DEPTH}"))),
    }
}

fn check_kind(kind: Option<&str>) -> Result<Option<String>, DomainError> {
    match kind {
        None => Ok(None),
        Some(k) => SymbolKind::parse_name(k).map(|k| Some(k.as_str().to_owned())).ok_or_else(|| {
            invalid(
                "kind",
                "function, method, struct, class, enum, interface, trait, type_alias, module, constant or macro",
            )
        }),
    }
}

fn check_language(language: Option<&str>) -> Result<Option<String>, DomainError> {
    match language {
        None => Ok(None),
        Some(l) => Language::parse_name(l)
            .map(|l| Some(l.family().to_owned()))
            .ok_or_else(|| invalid("language", "rust, python, typescript, javascript, go or java")),
    }
}

/// How sure an edge is, for ranking impact.
fn certainty(resolution: &str) -> f32 {
    match resolution {
        "same_file" | "import" | "method" => 1.0,
        "cross_repo" => 0.8,
        "unique_name" => 0.6,
        _ => 0.3,
    }
}

struct Walk {
    /// (depth, edge, the far end's id when the edge is resolved)
    edges: Vec<(u32, CallRow, String)>,
    truncated: bool,
}

impl CodeService {
    async fn repo_id(&self, tx: &TenantTx, repo: Option<&str>) -> Result<Option<Uuid>, DomainError> {
        let Some(r) = repo else {
            return Ok(None);
        };
        let found = match Uuid::parse_str(r) {
            Ok(id) => store::get_repo(tx, id).await?,
            Err(_) => store::repo_by_name(tx, r).await?,
        };
        found.map(|r| Some(r.id)).ok_or(DomainError::NotFound("repository"))
    }

    async fn views(&self, tx: &TenantTx, rows: Vec<SymbolRow>) -> Result<Vec<SymbolView>, DomainError> {
        let files: Vec<Uuid> = rows.iter().map(|s| s.file_id).collect::<HashSet<_>>().into_iter().collect();
        let paths = store::file_paths(tx, &files).await?;
        let repos: HashMap<Uuid, String> = store::list_repos(tx).await?.into_iter().map(|r| (r.id, r.name)).collect();
        Ok(rows
            .into_iter()
            .map(|s| SymbolView {
                id: s.id,
                repo_id: s.repo_id,
                repo: repos.get(&s.repo_id).cloned().unwrap_or_default(),
                path: paths.get(&s.file_id).cloned().unwrap_or_default(),
                name: s.name,
                qualified_name: s.qualified_name,
                kind: s.kind,
                language: s.language,
                start_line: s.start_line,
                end_line: s.end_line,
                signature: s.signature,
                doc: s.doc,
            })
            .collect())
    }

    /// Symbols by exact name or qualified name.
    pub async fn symbols(&self, p: &Principal, q: &SymbolQueryInput) -> Result<Vec<SymbolView>, DomainError> {
        let mut errors = Vec::new();
        if !valid_symbol_name(&q.name) {
            errors.push(FieldViolation::new("name", "1 to 500 characters, not blank, no control characters"));
        }
        let limit = match q.limit.as_deref() {
            None => 20,
            Some(s) => match s.parse::<u64>() {
                Ok(n) if (1..=100).contains(&n) => n,
                _ => {
                    errors.push(FieldViolation::new("limit", "a whole number from 1 to 100"));
                    20
                }
            },
        };
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let kind = check_kind(q.kind.as_deref())?;
        let language = check_language(q.language.as_deref())?;
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let repo = self.repo_id(&tx, q.repo.as_deref()).await?;
        let rows = store::find_symbols(&tx, &SymbolQuery { name: q.name.clone(), repo, kind, language, limit }).await?;
        let views = self.views(&tx, rows).await?;
        tx.commit().await?;
        Ok(views)
    }

    /// Every symbol of a repository (benchmarks compare them with other
    /// tools' output).
    pub async fn repo_symbols(&self, p: &Principal, repo: Uuid) -> Result<Vec<SymbolView>, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        store::get_repo(&tx, repo).await?.ok_or(DomainError::NotFound("repository"))?;
        let rows = store::symbols_of_repo(&tx, repo).await?;
        let views = self.views(&tx, rows).await?;
        tx.commit().await?;
        Ok(views)
    }

    /// The symbols a reference designates (404 when none).
    async fn targets(&self, tx: &TenantTx, target: &SymbolRef) -> Result<Vec<SymbolRow>, DomainError> {
        let rows = match target {
            SymbolRef::Id(id) => store::symbols_by_ids(tx, &[*id]).await?,
            SymbolRef::Name { name, repo } => {
                if !valid_symbol_name(name) {
                    return Err(invalid("symbol", "1 to 500 characters, not blank, no control characters"));
                }
                let repo = self.repo_id(tx, repo.as_deref()).await?;
                let q = SymbolQuery { name: name.clone(), repo, kind: None, language: None, limit: MAX_TARGETS };
                store::find_symbols(tx, &q).await?
            }
        };
        if rows.is_empty() {
            return Err(DomainError::NotFound("symbol"));
        }
        Ok(rows)
    }

    /// Calls into `ids` (`up`) or made by them, at most `limit`: from the
    /// graph engine when there is one, else (or when it fails: the
    /// relational tables are the record) from the code tables.
    async fn calls(&self, tx: &TenantTx, ids: &[Uuid], up: bool, limit: u64) -> Result<Vec<CallRow>, DomainError> {
        if let Some(graph) = &self.graph {
            let found = if up {
                graph.calls_to(tx.org(), ids, limit).await
            } else {
                graph.calls_from(tx.org(), ids, limit).await
            };
            match found {
                Ok(edges) => return Ok(edges),
                Err(e) => {
                    tracing::warn!(error = %e, engine = graph.engine(), "code graph lookup failed; answered from the code tables")
                }
            }
        }
        Ok(if up { store::calls_to(tx, ids, limit).await? } else { store::calls_from(tx, ids, limit).await? })
    }

    /// Unresolved calls named `callee` in `repos` (see [`Self::calls`]).
    async fn external_calls(
        &self,
        tx: &TenantTx,
        repos: &[Uuid],
        callee: &str,
        limit: u64,
    ) -> Result<Vec<CallRow>, DomainError> {
        if let Some(graph) = &self.graph {
            match graph.external_calls(tx.org(), repos, callee, limit).await {
                Ok(edges) => return Ok(edges),
                Err(e) => {
                    tracing::warn!(error = %e, engine = graph.engine(), "code graph lookup failed; answered from the code tables")
                }
            }
        }
        Ok(store::external_calls(tx, repos, callee, limit).await?)
    }

    /// Breadth-first over calls: towards callers (`up`) or callees.
    /// With `across`, a symbol's callers also include calls from
    /// repositories that depend on its repository, made through an import
    /// of it (resolution `cross_repo`).
    async fn walk(
        &self,
        tx: &TenantTx,
        start: &[SymbolRow],
        depth: u32,
        up: bool,
        across: bool,
    ) -> Result<Walk, DomainError> {
        let repos = if across { store::list_repos(tx).await? } else { Vec::new() };
        let mut visited: HashSet<Uuid> = start.iter().map(|s| s.id).collect();
        let mut frontier: Vec<SymbolRow> = start.to_vec();
        let mut edges = Vec::new();
        let mut truncated = false;
        for d in 1..=depth {
            if frontier.is_empty() {
                break;
            }
            let budget = MAX_EDGES.saturating_sub(edges.len() as u64);
            if budget == 0 {
                truncated = true;
                break;
            }
            let ids: Vec<Uuid> = frontier.iter().map(|s| s.id).collect();
            let mut rows: Vec<(CallRow, String)> = self
                .calls(tx, &ids, up, budget + 1)
                .await?
                .into_iter()
                .map(|r| {
                    let how = r.resolution.clone();
                    (r, how)
                })
                .collect();
            if across && up {
                rows.extend(self.cross_repo_calls(tx, &frontier, &repos, budget).await?);
            }
            if rows.len() as u64 > budget {
                truncated = true;
                rows.truncate(usize::try_from(budget).unwrap_or(usize::MAX));
            }
            let mut next_ids = Vec::new();
            for (row, how) in rows {
                let far = if up { row.caller_id } else { row.callee_id };
                if let Some(id) = far
                    && visited.insert(id)
                {
                    next_ids.push(id);
                }
                edges.push((d, row, how));
            }
            frontier = store::symbols_by_ids(tx, &next_ids).await?;
        }
        Ok(Walk { edges, truncated })
    }

    /// Calls into `symbols` from repositories that depend on theirs: an
    /// unresolved call of the same name whose module names the package or
    /// the symbol's file.
    async fn cross_repo_calls(
        &self,
        tx: &TenantTx,
        symbols: &[SymbolRow],
        repos: &[CodeRepo],
        budget: u64,
    ) -> Result<Vec<(CallRow, String)>, DomainError> {
        let mut out = Vec::new();
        let paths = store::file_paths(tx, &symbols.iter().map(|s| s.file_id).collect::<Vec<_>>()).await?;
        for s in symbols.iter().filter(|s| matches!(s.kind.as_str(), "function" | "method")) {
            let Some(home) = repos.iter().find(|r| r.id == s.repo_id) else {
                continue;
            };
            let dependents: Vec<Uuid> = repos
                .iter()
                .filter(|r| r.id != home.id && r.dependencies.iter().any(|d| home.packages.contains(d)))
                .map(|r| r.id)
                .collect();
            if dependents.is_empty() {
                continue;
            }
            let path = paths.get(&s.file_id).map(String::as_str).unwrap_or("");
            for mut call in self.external_calls(tx, &dependents, &s.name, budget).await? {
                let module = call.module.clone().unwrap_or_default();
                if module_reaches(&module, &home.packages, path) {
                    call.callee_id = Some(s.id);
                    out.push((call, "cross_repo".to_owned()));
                }
            }
        }
        Ok(out)
    }

    async fn edge_views(
        &self,
        tx: &TenantTx,
        walk: &Walk,
        up: bool,
    ) -> Result<(Vec<CallEdgeView>, HashMap<Uuid, SymbolView>), DomainError> {
        let ids: Vec<Uuid> = walk
            .edges
            .iter()
            .flat_map(|(_, r, _)| [r.caller_id, r.callee_id])
            .flatten()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let rows = store::symbols_by_ids(tx, &ids).await?;
        let views: HashMap<Uuid, SymbolView> = self.views(tx, rows).await?.into_iter().map(|v| (v.id, v)).collect();
        let files: Vec<Uuid> =
            walk.edges.iter().map(|(_, r, _)| r.file_id).collect::<HashSet<_>>().into_iter().collect();
        let paths = store::file_paths(tx, &files).await?;
        let edges = walk
            .edges
            .iter()
            .map(|(d, r, how)| {
                let (far, near) = if up { (r.caller_id, r.callee_id) } else { (r.callee_id, r.caller_id) };
                let symbol = far.and_then(|id| views.get(&id).cloned());
                let name = match (&symbol, up) {
                    (Some(s), _) => s.qualified_name.clone(),
                    (None, true) => "<file level>".to_owned(),
                    (None, false) => r.callee_name.clone(),
                };
                CallEdgeView {
                    symbol,
                    name,
                    via: near.unwrap_or_default(),
                    call_path: paths.get(&r.file_id).cloned().unwrap_or_default(),
                    call_line: r.line,
                    depth: *d,
                    resolution: how.clone(),
                    module: if r.callee_id.is_none() { r.module.clone() } else { None },
                }
            })
            .collect();
        Ok((edges, views))
    }

    /// Who calls the symbol, up to `depth` steps.
    pub async fn callers(&self, p: &Principal, target: &SymbolRef, depth: u32) -> Result<CallTreeView, DomainError> {
        self.call_tree(p, target, depth, true).await
    }

    /// What the symbol calls, up to `depth` steps.
    pub async fn callees(&self, p: &Principal, target: &SymbolRef, depth: u32) -> Result<CallTreeView, DomainError> {
        self.call_tree(p, target, depth, false).await
    }

    async fn call_tree(
        &self,
        p: &Principal,
        target: &SymbolRef,
        depth: u32,
        up: bool,
    ) -> Result<CallTreeView, DomainError> {
        if !(1..=MAX_DEPTH).contains(&depth) {
            return Err(invalid("depth", format!("a whole number from 1 to {MAX_DEPTH}")));
        }
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let targets = self.targets(&tx, target).await?;
        let walk = self.walk(&tx, &targets, depth, up, false).await?;
        let (edges, _) = self.edge_views(&tx, &walk, up).await?;
        let targets = self.views(&tx, targets).await?;
        tx.commit().await?;
        Ok(CallTreeView { targets, depth, edges, truncated: walk.truncated })
    }

    /// What a change to the symbol would affect: its transitive callers,
    /// in its repository and in those that depend on it, ranked, each with
    /// the chain of calls that explains it.
    pub async fn impact(&self, p: &Principal, target: &SymbolRef, depth: u32) -> Result<ImpactView, DomainError> {
        if !(1..=MAX_DEPTH).contains(&depth) {
            return Err(invalid("depth", format!("a whole number from 1 to {MAX_DEPTH}")));
        }
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let targets = self.targets(&tx, target).await?;
        let walk = self.walk(&tx, &targets, depth, true, true).await?;
        let (_, views) = self.edge_views(&tx, &walk, true).await?;
        let target_views = self.views(&tx, targets.clone()).await?;
        let repos = store::list_repos(&tx).await?;
        tx.commit().await?;

        let target_repos: HashSet<Uuid> = targets.iter().map(|t| t.repo_id).collect();
        let mut names: HashMap<Uuid, String> = target_views.iter().map(|v| (v.id, v.qualified_name.clone())).collect();
        names.extend(views.values().map(|v| (v.id, v.qualified_name.clone())));
        // The first (shallowest) edge that reached each caller.
        let mut reached: HashMap<Uuid, (u32, Uuid, f32)> = HashMap::new();
        for (d, row, how) in &walk.edges {
            let (Some(caller), Some(callee)) = (row.caller_id, row.callee_id) else {
                continue;
            };
            if names.contains_key(&caller) && !reached.contains_key(&caller) && !targets.iter().any(|t| t.id == caller)
            {
                let via_score = reached.get(&callee).map_or(1.0, |(_, _, s)| *s);
                reached.insert(caller, (*d, callee, via_score * certainty(how)));
            }
        }
        let mut hits: Vec<ImpactHit> = reached
            .iter()
            .filter_map(|(id, (d, _, sure))| {
                let symbol = views.get(id)?.clone();
                let mut path = vec![symbol.qualified_name.clone()];
                let mut cursor = *id;
                let mut guard = 0;
                while let Some((_, next, _)) = reached.get(&cursor) {
                    path.push(names.get(next).cloned().unwrap_or_default());
                    cursor = *next;
                    guard += 1;
                    if guard > MAX_DEPTH {
                        break;
                    }
                }
                let cross_repo = !target_repos.contains(&symbol.repo_id);
                Some(ImpactHit { score: sure / *d as f32, depth: *d, cross_repo, path, symbol })
            })
            .collect();
        hits.sort_by(|a, b| {
            b.score
                .total_cmp(&a.score)
                .then(a.depth.cmp(&b.depth))
                .then(a.symbol.qualified_name.cmp(&b.symbol.qualified_name))
        });
        let packages: HashSet<&String> =
            repos.iter().filter(|r| target_repos.contains(&r.id)).flat_map(|r| r.packages.iter()).collect();
        let dependent_repos = repos
            .iter()
            .filter(|r| !target_repos.contains(&r.id) && r.dependencies.iter().any(|d| packages.contains(d)))
            .map(|r| r.name.clone())
            .collect();
        Ok(ImpactView { targets: target_views, depth, hits, dependent_repos, truncated: walk.truncated })
    }

    /// A symbol with its signature, docs, code, direct callers and callees,
    /// and the memories that mention it (with memories:read).
    pub async fn explain(&self, p: &Principal, target: &SymbolRef) -> Result<ExplainView, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let targets = self.targets(&tx, target).await?;
        let first = targets.into_iter().next().ok_or(DomainError::NotFound("symbol"))?;
        let code = first.excerpt.clone();
        let up = self.walk(&tx, std::slice::from_ref(&first), 1, true, false).await?;
        let down = self.walk(&tx, std::slice::from_ref(&first), 1, false, false).await?;
        let (mut callers, _) = self.edge_views(&tx, &up, true).await?;
        let (mut callees, _) = self.edge_views(&tx, &down, false).await?;
        callers.truncate(20);
        callees.truncate(20);
        let symbol = self.views(&tx, vec![first]).await?.into_iter().next().ok_or(DomainError::NotFound("symbol"))?;
        tx.commit().await?;
        let memories = if p.has_scope(loci_security::scopes::MEMORIES_READ) {
            let query =
                format!("{} {}", symbol.qualified_name, loci_code::tokens::split_identifier(&symbol.name).join(" "));
            let request = SearchRequest {
                query,
                limit: 5,
                filters: SearchFilters::default(),
                mode: SearchMode::Lexical,
                weights: None,
                dedupe: false,
                as_of: None,
                rerank: None,
            };
            match self.search.search(p, request).await {
                Ok(found) => found
                    .results
                    .into_iter()
                    .map(|r| MemoryMention { memory_id: r.memory_id.as_uuid(), content: r.content, score: r.score })
                    .collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "memories for explain_code could not be searched");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let (summary, missing_sources) = match &self.explainer {
            None => (None, Vec::new()),
            Some(explainer) => {
                let brief = SymbolBrief::of(&symbol, &code, &callers, &callees);
                match explainer.summary(&p.org_id, &brief).await {
                    Ok(summary) => (Some(summary), Vec::new()),
                    Err(e) => {
                        tracing::warn!(error = %e, "the LLM summary of explain_code failed; answered without it");
                        (None, vec!["llm".to_owned()])
                    }
                }
            }
        };
        Ok(ExplainView { symbol, code, callers, callees, memories, summary, missing_sources })
    }

    /// Hybrid code search: lexical (code-aware tokens), vector (the local
    /// model) and graph (symbols named by the query, by how often they are
    /// called), fused by reciprocal rank.
    pub async fn search(&self, p: &Principal, input: &CodeSearchInput) -> Result<CodeSearchView, DomainError> {
        let mut errors = Vec::new();
        let query = input.query.trim();
        if query.is_empty() || input.query.chars().count() > MAX_QUERY {
            errors.push(FieldViolation::new("query", format!("1 to {MAX_QUERY} characters, not blank")));
        }
        let limit = match input.limit {
            None => 10,
            Some(n) if (1..=MAX_SEARCH_LIMIT as i64).contains(&n) => usize::try_from(n).unwrap_or(10),
            Some(_) => {
                errors.push(FieldViolation::new("limit", format!("1 to {MAX_SEARCH_LIMIT}")));
                10
            }
        };
        let mode = input.mode.as_deref().unwrap_or("hybrid");
        if !matches!(mode, "hybrid" | "lexical" | "semantic") {
            errors.push(FieldViolation::new("mode", "hybrid, lexical or semantic"));
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let kind = check_kind(input.kind.as_deref())?;
        let language = check_language(input.language.as_deref())?;
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let repo = self.repo_id(&tx, input.repo.as_deref()).await?;
        tx.commit().await?;

        let mut filter = SearchFilter::new(p.org_id.clone(), None);
        filter.app_id = repo.map(AppId::from_uuid);
        if let Some(k) = &kind {
            filter.tags.insert("kind".into(), k.clone());
        }
        if let Some(l) = &language {
            filter.tags.insert("language".into(), l.clone());
        }
        let depth = limit * 3;
        let mut missing = Vec::new();
        let mut lists: Vec<(&'static str, Vec<Uuid>)> = Vec::new();
        if mode != "semantic" {
            let hits: Vec<Hit> =
                self.indexes.lexical.search(&loci_code::tokens::query_text(query), &filter, depth).await?;
            lists.push(("lexical", hits.into_iter().map(|h| h.id.as_uuid()).collect()));
        }
        if mode != "lexical" {
            match (&self.indexes.vector, &self.indexes.embedder) {
                (Some(vector), Some(embedder)) => {
                    let v = embedder.embed_query(query).await.map_err(|_| DomainError::EmbedderUnavailable)?;
                    let hits = vector.search(&v, &filter, depth).await?;
                    lists.push(("vector", hits.into_iter().map(|h| h.id.as_uuid()).collect()));
                }
                _ if mode == "semantic" => return Err(DomainError::EmbedderUnavailable),
                _ => missing.push("vector".to_owned()),
            }
        }
        if mode == "hybrid" {
            lists.push(("graph", self.named_symbols(p, query, repo, kind.clone(), language.clone(), depth).await?));
        }

        let mut fused: HashMap<Uuid, (f32, Vec<String>)> = HashMap::new();
        for (source, ids) in &lists {
            for (rank, id) in ids.iter().enumerate() {
                let entry = fused.entry(*id).or_insert((0.0, Vec::new()));
                entry.0 += 1.0 / (RRF_K + rank as f32 + 1.0);
                entry.1.push((*source).to_owned());
            }
        }
        let mut ranked: Vec<(Uuid, f32, Vec<String>)> = fused.into_iter().map(|(id, (s, src))| (id, s, src)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        ranked.truncate(limit);
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let rows = store::symbols_by_ids(&tx, &ranked.iter().map(|r| r.0).collect::<Vec<_>>()).await?;
        let views: HashMap<Uuid, SymbolView> = self.views(&tx, rows).await?.into_iter().map(|v| (v.id, v)).collect();
        tx.commit().await?;
        let hits = ranked
            .into_iter()
            .filter_map(|(id, score, sources)| {
                views.get(&id).cloned().map(|symbol| CodeSearchHit { symbol, score, sources })
            })
            .collect();
        Ok(CodeSearchView { hits, mode: mode.to_owned(), missing_sources: missing })
    }

    /// The graph source of code search: symbols the query names, most
    /// called first.
    async fn named_symbols(
        &self,
        p: &Principal,
        query: &str,
        repo: Option<Uuid>,
        kind: Option<String>,
        language: Option<String>,
        limit: usize,
    ) -> Result<Vec<Uuid>, DomainError> {
        let tx = self.memories.db().begin_tenant_read(&p.org_id).await?;
        let mut found: Vec<SymbolRow> = Vec::new();
        // Names the query gives as code: a lone word, or compound
        // identifiers (`apply_discount`, `formatMoney`); the words of a
        // sentence are lexical evidence, not names.
        let all: Vec<&str> = loci_code::tokens::identifiers(query).collect();
        let idents: Vec<&str> = if all.len() == 1 {
            all
        } else {
            all.into_iter().filter(|i| loci_code::tokens::split_identifier(i).len() > 1).take(8).collect()
        };
        for ident in idents {
            let q = SymbolQuery {
                name: ident.to_owned(),
                repo,
                kind: kind.clone(),
                language: language.clone(),
                limit: limit as u64,
            };
            found.extend(store::find_symbols(&tx, &q).await?);
        }
        let ids: Vec<Uuid> = found.iter().map(|s| s.id).collect();
        let calls = store::calls_to(&tx, &ids, MAX_EDGES).await?;
        tx.commit().await?;
        let mut fan_in: HashMap<Uuid, usize> = HashMap::new();
        for c in calls {
            if let Some(id) = c.callee_id {
                *fan_in.entry(id).or_default() += 1;
            }
        }
        let mut ids: Vec<Uuid> = ids.into_iter().collect::<HashSet<_>>().into_iter().collect();
        ids.sort_by(|a, b| fan_in.get(b).unwrap_or(&0).cmp(fan_in.get(a).unwrap_or(&0)).then(a.cmp(b)));
        ids.truncate(limit);
        Ok(ids)
    }
}

/// Whether an import `module` in a dependent repository designates the
/// dependency: by its package name, or by the path of the file defining
/// the symbol.
fn module_reaches(module: &str, packages: &[String], path: &str) -> bool {
    let m = normalise(module);
    let head = m.split(['/', ':', '.']).next().unwrap_or("");
    packages.iter().any(|p| *p == head || m.starts_with(p.as_str()))
        || loci_code::resolve::module_designates(module, path)
}
