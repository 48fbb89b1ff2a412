//! MCP JSON-RPC messages as a client sends them over stdio or HTTP.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rmcp::model::ClientJsonRpcMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(message) = serde_json::from_slice::<ClientJsonRpcMessage>(data) {
        // What the server echoes back must serialise again.
        let _ = serde_json::to_vec(&message);
    }
});
