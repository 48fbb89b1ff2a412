//! MCP over stdio: one process per agent, one identity. The token comes from
//! `LOCI_TOKEN` and is validated once at start with the same rules as HTTP
//! (a DPoP-bound token cannot be used: stdio has no proofs to present);
//! its expiry is still checked on every call.

use std::sync::Arc;

use loci_app::{Background, Security, Services, Tasks};
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
    // Only what the tools use: the services, the authenticator, and the
    // indexer that makes this process's writes searchable.
    let services = Services::build(settings).await?;
    let security = Security::build(&services.settings, services.valkey.as_ref(), services.sessions.clone()).await?;
    let authorization = format!("Bearer {}", token.trim());
    let request = AuthRequest {
        method: "POST",
        url: "stdio://loci-mcp",
        authorization: Some(&authorization),
        dpop: &[],
        resource_metadata: None,
    };
    let principal = security.auth.authenticate(&request).await.map_err(|r| McpError::Token(r.error.to_string()))?;
    tracing::info!(
        target: "audit", event = "session.created", transport = "stdio",
        user = %loci_http::mask(&principal.subject), org = %loci_http::mask(principal.org_id.as_str())
    );
    let background = Background::start(&services, Tasks::STDIO);

    let tools = Arc::new(Tools::from_services(&services));
    let handler = LociMcp::new(tools, Identity::Fixed(Box::new(principal)));
    let running = handler.serve(rmcp::transport::stdio()).await.map_err(|e| McpError::Protocol(e.to_string()))?;
    let served = running.waiting().await.map_err(|e| McpError::Protocol(e.to_string()));
    background.shutdown().await;
    served.map(|_| ())
}
