//! The code tools' schemas and handlers (`loci_domain::code`), in the one
//! tool table of `tools`.

use loci_core::ErrorCode;
use loci_domain::code::{CodeSearchInput, CodeService, MAX_DEPTH, RepoInput, SymbolRef};
use loci_security::Principal;
use rmcp::model::JsonObject;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::tools::{ToolError, Tools, arguments, object};

pub(crate) fn index_schema() -> Value {
    object(
        json!({
            "path": { "type": "string", "description": "An absolute directory on the server, inside code.allowed_roots (embedded profile)" },
            "git_url": { "type": "string", "description": "A git URL the server can clone" },
            "name": { "type": "string", "description": "The repository's name in Loci (default: the last segment of the path or URL)" }
        }),
        &[],
    )
}

pub(crate) fn search_schema() -> Value {
    object(
        json!({
            "query": { "type": "string", "description": "Words, identifiers or a description of the code" },
            "repo": { "type": "string", "description": "A repository name or id" },
            "language": { "type": "string", "enum": ["rust", "python", "typescript", "javascript", "go", "java"] },
            "kind": { "type": "string", "enum": ["function", "method", "struct", "class", "enum", "interface", "trait", "type_alias", "module", "constant", "macro"] },
            "limit": { "type": "integer", "minimum": 1 },
            "mode": { "type": "string", "enum": ["hybrid", "lexical", "semantic"] }
        }),
        &["query"],
    )
}

pub(crate) fn walk_schema() -> Value {
    object(
        json!({
            "symbol": { "type": "string", "description": "A name (`parse`), qualified name (`Parser::parse`) or symbol id" },
            "repo": { "type": "string", "description": "A repository name or id, to tell same-named symbols apart" },
            "depth": { "type": "integer", "minimum": 1, "maximum": MAX_DEPTH, "default": 3 }
        }),
        &["symbol"],
    )
}

pub(crate) fn explain_schema() -> Value {
    object(
        json!({
            "symbol": { "type": "string", "description": "A name, qualified name or symbol id" },
            "repo": { "type": "string", "description": "A repository name or id" }
        }),
        &["symbol"],
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WalkArgs {
    symbol: String,
    repo: Option<String>,
    depth: Option<i64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExplainArgs {
    symbol: String,
    repo: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JobArgs {
    job_id: String,
}

fn depth(raw: Option<i64>) -> Result<u32, ToolError> {
    let text = raw.map(|d| d.to_string());
    loci_domain::code::parse_depth(text.as_deref()).map_err(ToolError::from)
}

fn json_of<T: serde::Serialize>(value: &T) -> Result<Value, ToolError> {
    serde_json::to_value(value).map_err(|e| ToolError::new(ErrorCode::Internal, e.to_string()))
}

impl Tools {
    fn code(&self) -> Result<&CodeService, ToolError> {
        self.code.as_ref().ok_or_else(|| {
            ToolError::new(ErrorCode::NotImplemented, "code intelligence is not available in this server")
        })
    }

    pub(crate) async fn index_codebase(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let input: RepoInput = arguments(args)?;
        let (repo, job) = self.code()?.index(p, input).await?;
        let text = format!("indexing `{}`: job {} is {}", repo.name, job.job_id, job.status);
        Ok((json!({ "repo": json_of(&repo)?, "job": json_of(&job)? }), text))
    }

    pub(crate) async fn index_codebase_status(
        &self,
        p: &Principal,
        args: &JsonObject,
    ) -> Result<(Value, String), ToolError> {
        let a: JobArgs = arguments(args)?;
        let id =
            uuid::Uuid::parse_str(&a.job_id).map_err(|_| ToolError::from(loci_domain::DomainError::NotFound("job")))?;
        let job = self.code()?.job(p, id).await?;
        let text = format!("job {} is {}", job.job_id, job.status);
        Ok((json_of(&job)?, text))
    }

    pub(crate) async fn search_code(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let input: CodeSearchInput = arguments(args)?;
        let found = self.code()?.search(p, &input).await?;
        let lines: Vec<String> = found
            .hits
            .iter()
            .map(|h| {
                format!("{} {} ({}:{})", h.symbol.kind, h.symbol.qualified_name, h.symbol.path, h.symbol.start_line)
            })
            .collect();
        let text = if lines.is_empty() { "no code matches".to_owned() } else { lines.join("\n") };
        Ok((json_of(&found)?, text))
    }

    pub(crate) async fn find_callers(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: WalkArgs = arguments(args)?;
        let tree = self.code()?.callers(p, &SymbolRef::parse(&a.symbol, a.repo), depth(a.depth)?).await?;
        let text = format!("{} call(s) into {} within {} step(s)", tree.edges.len(), a.symbol, tree.depth);
        Ok((json_of(&tree)?, text))
    }

    pub(crate) async fn find_callees(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: WalkArgs = arguments(args)?;
        let tree = self.code()?.callees(p, &SymbolRef::parse(&a.symbol, a.repo), depth(a.depth)?).await?;
        let text = format!("{} call(s) from {} within {} step(s)", tree.edges.len(), a.symbol, tree.depth);
        Ok((json_of(&tree)?, text))
    }

    pub(crate) async fn impact_analysis(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: WalkArgs = arguments(args)?;
        let impact = self.code()?.impact(p, &SymbolRef::parse(&a.symbol, a.repo), depth(a.depth)?).await?;
        let cross = impact.hits.iter().filter(|h| h.cross_repo).count();
        let text = format!("{} affected symbol(s), {cross} in other repositories", impact.hits.len());
        Ok((json_of(&impact)?, text))
    }

    pub(crate) async fn explain_code(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: ExplainArgs = arguments(args)?;
        let view = self.code()?.explain(p, &SymbolRef::parse(&a.symbol, a.repo)).await?;
        let text = format!(
            "{} {} ({}:{}): {} caller(s), {} callee(s)",
            view.symbol.kind,
            view.symbol.signature,
            view.symbol.path,
            view.symbol.start_line,
            view.callers.len(),
            view.callees.len()
        );
        Ok((json_of(&view)?, text))
    }
}
