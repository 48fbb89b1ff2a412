//! MCP over stdio: one process per agent, one identity. The token comes from
//! `LOCI_TOKEN` and is validated once at start with the same rules as HTTP
//! (a DPoP-bound token cannot be used: stdio has no proofs to present);
//! its expiry is still checked on every call.

use std::sync::Arc;
use std::time::Duration;

use loci_api::AppState;
use loci_security::AuthRequest;
use loci_settings::Settings;
use rmcp::ServiceExt;

use crate::McpError;
use crate::handler::{Identity, LociMcp};
use crate::tools::Tools;

/// The environment variable holding the access token.
pub const TOKEN_ENV: &str = "LOCI_TOKEN";

/// `loci mcp` / `loci-mcp stdio`: reads `LOCI_TOKEN`, serves until the
/// client disconnects.
pub fn run_stdio(settings: Settings) -> Result<(), McpError> {
    let token = std::env::var(TOKEN_ENV).map_err(|_| McpError::MissingToken)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| McpError::Protocol(format!("cannot start the runtime: {e}")))?;
    rt.block_on(serve_stdio(settings, &token))
}

/// Serves MCP on stdin/stdout until the client disconnects.
pub async fn serve_stdio(settings: Settings, token: &str) -> Result<(), McpError> {
    let state = AppState::init(settings).await?;
    let authorization = format!("Bearer {}", token.trim());
    let request = AuthRequest {
        method: "POST",
        url: "stdio://loci-mcp",
        authorization: Some(&authorization),
        dpop: &[],
        resource_metadata: None,
    };
    let principal = state.auth.authenticate(&request).await.map_err(|r| McpError::Token(r.error.to_string()))?;
    tracing::info!(
        target: "audit", event = "session.created", transport = "stdio",
        user = %loci_api::mask(&principal.subject), org = %loci_api::mask(principal.org_id.as_str())
    );
    // Writes become searchable: this process indexes them like the server does.
    let (_stop_indexer, stopped) = tokio::sync::watch::channel(false);
    let poll = Duration::from_millis(state.settings.search.indexer_poll_ms);
    tokio::spawn(state.indexer.clone().run(poll, stopped));

    let tools = Arc::new(Tools::from_state(&state));
    let handler = LociMcp::new(tools, Identity::Fixed(Box::new(principal)));
    let running = handler.serve(rmcp::transport::stdio()).await.map_err(|e| McpError::Protocol(e.to_string()))?;
    running.waiting().await.map_err(|e| McpError::Protocol(e.to_string()))?;
    state.memories.access_log().flush().await;
    Ok(())
}
