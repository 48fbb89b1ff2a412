//! The rmcp server handler: protocol in, [`Tools`] out. The same handler
//! serves stdio (one identity, from `LOCI_TOKEN`) and streamable HTTP (the
//! identity of each request, authenticated in front of rmcp and handed over
//! in the request's extensions).

use std::borrow::Cow;
use std::sync::Arc;

use loci_security::Principal;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ListToolsResult, PaginatedRequestParams, ProtocolVersion,
    ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};

use crate::tools::Tools;

/// Where the caller's identity comes from.
#[derive(Debug, Clone)]
pub enum Identity {
    /// stdio: the principal of the token validated at start.
    Fixed(Box<Principal>),
    /// HTTP: the principal the HTTP layer put on each request.
    PerRequest,
}

/// One MCP session's handler (cheap to create: rmcp makes one per session).
#[derive(Debug, Clone)]
pub struct LociMcp {
    tools: Arc<Tools>,
    identity: Identity,
}

/// Protocol revisions served: those with the `initialize` handshake and
/// sessions, which the session binding of 10-security.md relies on.
const SUPPORTED: &[ProtocolVersion] = &[
    ProtocolVersion::V_2024_11_05,
    ProtocolVersion::V_2025_03_26,
    ProtocolVersion::V_2025_06_18,
    ProtocolVersion::V_2025_11_25,
];

const INSTRUCTIONS: &str = "Loci is your long-term memory. Call search_memory before answering questions about \
     earlier decisions, conventions or facts; call add_memories to store what you learn that will matter later.";

impl LociMcp {
    pub fn new(tools: Arc<Tools>, identity: Identity) -> Self {
        Self { tools, identity }
    }

    fn principal(&self, context: &RequestContext<RoleServer>) -> Option<Principal> {
        let mut principal = match &self.identity {
            Identity::Fixed(p) => (**p).clone(),
            Identity::PerRequest => context
                .extensions
                .get::<http::request::Parts>()
                .and_then(|parts| parts.extensions.get::<Principal>())
                .cloned()?,
        };
        // Memories and access-log entries name the MCP client as their app.
        if let Some(info) = context.peer.peer_info() {
            let name = info.client_info.name.trim();
            if !name.is_empty() && name.chars().count() <= 255 && !name.chars().any(char::is_control) {
                principal.client_id = Some(name.to_owned());
            }
        }
        Some(principal)
    }
}

impl ServerHandler for LociMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_protocol_version(ProtocolVersion::V_2025_11_25)
            .with_server_info(Implementation::new("loci", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(SUPPORTED)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.list()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        Tools::spec(name).map(|spec| self.tools.describe(spec))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(principal) = self.principal(&context) else {
            // Unreachable through the HTTP layer (it authenticates first);
            // refuse rather than run without an identity.
            let missing = crate::tools::ToolError::new(loci_core::ErrorCode::MissingAuth, "no authenticated caller");
            return Ok(missing.into_result().into());
        };
        match self.tools.call(&principal, &request.name, request.arguments).await {
            Some(result) => Ok(result.into()),
            None => Err(McpError::invalid_params(format!("unknown tool `{}`", request.name), None)),
        }
    }
}
