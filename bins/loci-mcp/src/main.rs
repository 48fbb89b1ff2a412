//! `loci-mcp`: the MCP server (stdio and streamable HTTP).
//!
//! Status: skeleton. It validates the configuration like every Loci binary and
//! then stops with a NOT_IMPLEMENTED error; the MCP issue fills it.

use loci_settings::{Settings, Sources};

fn main() -> anyhow::Result<()> {
    Settings::load(&Sources::from_process(None))?;
    anyhow::bail!("NOT_IMPLEMENTED: the MCP server is not implemented yet (see the MCP issue)")
}
