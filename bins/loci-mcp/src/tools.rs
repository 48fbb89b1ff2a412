//! The MCP tools: one table (name, scopes, input schema) and one dispatcher
//! over loci-domain. Every call checks the table's scopes before anything
//! else (fail closed) and answers structured JSON plus a short text
//! rendering; failures are tool errors carrying Loci's error `code`.

use std::sync::Arc;

use loci_core::{ErrorCode, JobId, MemoryId};
use loci_domain::code::MAX_SEARCH_LIMIT as CODE_SEARCH_MAX;
use loci_domain::context::{ContextRequest, ContextService};
use loci_domain::entities::{
    DEFAULT_ENTITY_LIMIT, DEFAULT_PATH_HOPS, EntityService, MAX_ENTITY_LIMIT, MAX_NAME_CHARS, MAX_SUBGRAPH_DEPTH,
    MergeRequest, MergeView, PATH_HOPS, RELATION_TYPES, RelationsRequest,
};
use loci_domain::episodic::{AddEpisodicInput, EpisodicListQuery, EpisodicService, MAX_LIST_LIMIT, PromoteInput};
use loci_domain::feedback::{FeedbackInput, FeedbackService};
use loci_domain::graph::{DEFAULT_LIMIT as DEFAULT_GRAPH_LIMIT, Dimension, GraphService, MAX_LIMIT as MAX_GRAPH_LIMIT};
use loci_domain::infer::{AddOutcome, InferOutcome, InferService};
use loci_domain::inputs::{FilterBody, IdsBody};
use loci_domain::knowledge_graph::{
    KgEntity, KgObservations, KgRelation, KnowledgeGraphService, MAX_ITEMS_PER_CALL as MAX_KG_ITEMS,
};
use loci_domain::memories::{MemoryService, MemoryView};
use loci_domain::rules::{self, DEFAULT_SEARCH_LIMIT, MAX_IDS_PER_CALL, MAX_SEARCH_LIMIT, MAX_UPDATES_PER_CALL};
use loci_domain::search::{SearchInput, SearchResponse, SearchService};
use loci_domain::validation::{CreateMemoryInput, UpdateMemoryInput};
use loci_domain::{DomainError, FieldViolation};
use loci_security::Principal;
use loci_security::scopes::{
    ENTITIES_WRITE, FEEDBACK_WRITE, GDPR_READ, GRAPH_READ, GRAPH_WRITE, MEMORIES_DELETE, MEMORIES_READ, MEMORIES_WRITE,
    SEARCH_READ,
};
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool, ToolAnnotations};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

/// One tool of the table.
#[derive(Debug)]
pub struct ToolSpec {
    pub name: &'static str,
    /// Every one of these is required (checked first, fail closed).
    pub scopes: &'static [&'static str],
    pub description: &'static str,
    pub read_only: bool,
    pub destructive: bool,
    schema: fn() -> Value,
}

impl ToolSpec {
    /// The MCP `Tool` description (name, description, input schema, hints).
    pub fn tool(&self) -> Tool {
        let schema = match (self.schema)() {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        let mut annotations = ToolAnnotations::default();
        annotations.read_only_hint = Some(self.read_only);
        annotations.destructive_hint = Some(self.destructive);
        annotations.open_world_hint = Some(false);
        let mut tool = Tool::new(self.name, self.description, Arc::new(schema));
        tool.annotations = Some(annotations);
        tool
    }
}

pub(crate) fn object(properties: Value, required: &[&str]) -> Value {
    json!({ "type": "object", "properties": properties, "required": required, "additionalProperties": false })
}

fn no_arguments() -> Value {
    object(json!({}), &[])
}

fn memory_id_property() -> Value {
    json!({ "type": "string", "format": "uuid", "description": "A memory id." })
}

fn metadata_properties() -> Map<String, Value> {
    let props = json!({
        "category": { "type": "string", "enum": ["decision", "convention", "architecture", "dependency", "workflow", "testing", "security", "performance", "runbook", "glossary"] },
        "scope": { "type": "string", "enum": ["session", "user", "team", "project", "org", "enterprise"], "description": "Derived from access_entity when absent." },
        "artifact_type": { "type": "string", "enum": ["repo", "service", "module", "component", "api", "db", "infra", "file"] },
        "artifact_ref": { "type": "string", "description": "What the memory is about, e.g. a repo or file path." },
        "entity": { "type": "string", "description": "The main entity (person, service, library) it concerns." },
        "source": { "type": "string", "enum": ["user", "inference"] },
        "access_entity": { "type": "string", "description": "Who may read it: user:<id>, team:<org>/<team>, project:<org>/<project> or org:<org>. Default: only you." },
        "evidence": { "type": "array", "items": { "type": "string" } },
        "tags": { "type": "object", "description": "Free-form key/value tags." },
        "categories": { "type": "array", "items": { "type": "string" }, "description": "Category names to file it under." }
    });
    match props {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn add_memories_schema() -> Value {
    let mut props = metadata_properties();
    props.insert(
        "text".into(),
        json!({ "type": "string", "description": "What to remember (one fact, decision or note)." }),
    );
    props.insert("app".into(), json!({ "type": "string", "description": "App name; default: this MCP client." }));
    props.insert("infer".into(), json!({ "type": "boolean", "default": false, "description": "Take atomic facts from text or messages and reconcile each with your current memories: ADD, UPDATE (supersedes the memory it replaces), DELETE (retracts) or NOOP (already known). Works offline; an LLM is used when the server has one." }));
    props.insert("messages".into(), json!({
        "type": "array",
        "description": "With infer: a conversation to take facts from, instead of text.",
        "items": {
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "role": { "type": "string", "pattern": "^[a-z_]{1,32}$", "default": "user" },
                "name": { "type": "string", "minLength": 1, "maxLength": 128, "description": "The speaker; facts are attributed to named speakers." },
                "content": { "type": "string", "minLength": 1 },
                "id": { "type": "string", "minLength": 1, "maxLength": 128, "description": "Your id of the message, kept as the evidence of its facts." }
            },
            "required": ["content"]
        }
    }));
    props.insert("async".into(), json!({ "type": "boolean", "default": false, "description": "With infer: run as a job and return its id at once (add_memories_status reports it). Large inputs always do." }));
    object(Value::Object(props), &[])
}

fn session_id_property() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 128, "pattern": "^[A-Za-z0-9._-]+$", "description": "The agent session (yours alone)." })
}

fn session_add_schema() -> Value {
    object(
        json!({
            "session_id": session_id_property(),
            "content": { "type": "string", "minLength": 1, "description": "What to keep for this session." },
            "role": { "type": "string", "pattern": "^[a-z_]{1,32}$", "description": "Who said it: user, assistant, tool, ..." },
            "metadata": { "type": "object", "description": "Anything else to keep with it." }
        }),
        &["session_id", "content"],
    )
}

fn session_get_schema() -> Value {
    object(
        json!({
            "session_id": session_id_property(),
            "limit": { "type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": 50 },
            "include_summarised": { "type": "boolean", "default": false }
        }),
        &["session_id"],
    )
}

fn context_schema() -> Value {
    object(
        json!({
            "query": { "type": "string", "minLength": 1, "maxLength": 2048, "description": "What you are working on: the most relevant memories are included." },
            "session_id": session_id_property(),
            "max_tokens": { "type": "integer", "minimum": 16, "maximum": 32000, "default": 1000 },
            "memories": { "type": "integer", "minimum": 1, "maximum": 50, "default": 10 },
            "session_items": { "type": "integer", "minimum": 1, "maximum": 50, "default": 10 }
        }),
        &[],
    )
}

fn session_promote_schema() -> Value {
    let mut props = metadata_properties();
    props.insert("session_id".into(), session_id_property());
    props.insert(
        "item_id".into(),
        json!({ "type": "string", "format": "uuid", "description": "The session item to keep for good." }),
    );
    props.insert("app".into(), json!({ "type": "string", "description": "App name; default: this MCP client." }));
    object(Value::Object(props), &["session_id", "item_id"])
}

fn supersede_schema() -> Value {
    let mut schema = add_memories_schema();
    if let Some(props) = schema.get_mut("properties").and_then(Value::as_object_mut) {
        props.insert("memory_id".into(), memory_id_property());
    }
    schema["required"] = json!(["memory_id", "text"]);
    schema
}

fn retract_schema() -> Value {
    object(json!({ "memory_id": memory_id_property() }), &["memory_id"])
}

fn search_schema() -> Value {
    object(
        json!({
            "query": { "type": "string", "minLength": 1, "maxLength": 2048 },
            "limit": { "type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": DEFAULT_SEARCH_LIMIT },
            "mode": { "type": "string", "enum": ["auto", "hybrid", "semantic", "lexical"], "default": "auto" },
            "filters": {
                "type": "object",
                "additionalProperties": false,
                "properties": {
                    "category": { "type": "string" }, "scope": { "type": "string" },
                    "artifact_type": { "type": "string" }, "artifact_ref": { "type": "string" },
                    "entity": { "type": "string" }, "source": { "type": "string" },
                    "app_id": { "type": "string", "format": "uuid" },
                    "tags": { "type": "object", "additionalProperties": { "type": "string" } },
                    "from": { "type": "string", "format": "date-time" }, "to": { "type": "string", "format": "date-time" }
                }
            },
            "weights": {
                "type": "object",
                "properties": { "vector": { "type": "number" }, "lexical": { "type": "number" }, "graph": { "type": "number" } }
            },
            "as_of": { "type": "string", "format": "date-time", "description": "Search what was current then (before later memories superseded it)." },
            "dedupe": { "type": "boolean", "default": false, "description": "Keep identical content once, in its highest-precedence scope (session > user > team > project > org > enterprise)." },
            "rerank": { "type": "boolean", "description": "Reorder the best results with the server's reranker (default: when one is configured)." }
        }),
        &["query"],
    )
}

fn list_schema() -> Value {
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    object(
        json!({
            "page": { "type": "integer", "minimum": 1, "default": 1 },
            "size": { "type": "integer", "minimum": 1, "maximum": 100, "default": 50 },
            "cursor": { "type": "string", "maxLength": 512, "description": "The next_cursor of the previous page, instead of page: same order and size." },
            "search_query": { "type": "string", "description": "Case-insensitive substring of the content." },
            "app_ids": strings, "category_ids": strings, "categories": strings,
            "metadata_categories": strings, "scopes": strings, "artifact_types": strings,
            "entities": strings, "sources": strings,
            "tags": { "type": "object", "additionalProperties": { "type": "string" } },
            "show_archived": { "type": "boolean", "default": false },
            "from": { "type": "string", "format": "date-time" }, "to": { "type": "string", "format": "date-time" },
            "sort_column": { "type": "string", "enum": ["created_at", "updated_at", "content", "app_name"] },
            "sort_direction": { "type": "string", "enum": ["asc", "desc"] },
            "as_of": { "type": "string", "format": "date-time", "description": "What was current then: superseded or retracted memories included if they were current at that time." }
        }),
        &[],
    )
}

fn get_memory_schema() -> Value {
    object(json!({ "memory_id": memory_id_property() }), &["memory_id"])
}

fn update_schema() -> Value {
    let one = json!({
        "memory_id": memory_id_property(),
        "text": { "type": "string", "description": "New content." },
        "metadata": { "type": "object", "properties": Value::Object(metadata_properties()), "description": "Fields to change; tags merge (null removes a key), categories replace." }
    });
    let mut props = match one.clone() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    props.insert(
        "updates".into(),
        json!({
            "type": "array", "maxItems": 100,
            "description": "Several updates at once; each gets its own result.",
            "items": { "type": "object", "properties": one, "required": ["memory_id"], "additionalProperties": false }
        }),
    );
    object(Value::Object(props), &[])
}

fn ids_schema() -> Value {
    object(
        json!({ "memory_ids": { "type": "array", "items": { "type": "string", "format": "uuid" }, "minItems": 1, "maxItems": MAX_IDS_PER_CALL } }),
        &["memory_ids"],
    )
}

fn related_schema() -> Value {
    object(
        json!({ "memory_id": memory_id_property(), "limit": { "type": "integer", "minimum": 1, "maximum": MAX_SEARCH_LIMIT, "default": DEFAULT_SEARCH_LIMIT } }),
        &["memory_id"],
    )
}

fn entity_property() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": MAX_NAME_CHARS, "description": "An entity's name (case, possessive and punctuation do not matter)" })
}

fn network_schema() -> Value {
    object(
        json!({ "entity": entity_property(), "limit": { "type": "integer", "minimum": 1, "maximum": MAX_ENTITY_LIMIT, "default": DEFAULT_ENTITY_LIMIT } }),
        &["entity"],
    )
}

fn path_schema() -> Value {
    object(
        json!({
            "from": entity_property(),
            "to": entity_property(),
            "max_hops": { "type": "integer", "minimum": PATH_HOPS.start(), "maximum": PATH_HOPS.end(), "default": DEFAULT_PATH_HOPS },
        }),
        &["from", "to"],
    )
}

fn subgraph_schema() -> Value {
    object(
        json!({
            "entity": entity_property(),
            "depth": { "type": "integer", "minimum": 1, "maximum": MAX_SUBGRAPH_DEPTH, "default": 1 },
            "limit": { "type": "integer", "minimum": 1, "maximum": MAX_ENTITY_LIMIT, "default": 10, "description": "Neighbours per entity expanded" },
        }),
        &["entity"],
    )
}

fn relations_schema() -> Value {
    object(
        json!({
            "entity": entity_property(),
            "relation_types": { "type": "array", "items": { "type": "string", "enum": RELATION_TYPES }, "maxItems": 16 },
            "direction": { "type": "string", "enum": ["in", "out", "both"], "default": "both" },
            "limit": { "type": "integer", "minimum": 1, "maximum": MAX_ENTITY_LIMIT, "default": DEFAULT_ENTITY_LIMIT },
        }),
        &["entity"],
    )
}

fn graph_limit() -> Value {
    json!({ "type": "integer", "minimum": 1, "maximum": MAX_GRAPH_LIMIT, "default": DEFAULT_GRAPH_LIMIT })
}

fn cooccurrence_schema() -> Value {
    object(
        json!({
            "key": { "type": "string", "minLength": 1, "maxLength": rules::MAX_TAG_KEY_CHARS, "description": "Tags set together with this tag key; without it, pairs of tags" },
            "min_memories": { "type": "integer", "minimum": 1, "default": 1 },
            "limit": graph_limit(),
        }),
        &[],
    )
}

fn aggregate_schema() -> Value {
    let dims: Vec<&str> = Dimension::ALL.iter().map(|d| d.as_str()).collect();
    object(json!({ "dimension": { "type": "string", "enum": dims }, "limit": graph_limit() }), &["dimension"])
}

fn normalize_schema() -> Value {
    object(
        json!({
            "dry_run": { "type": "boolean", "default": true, "description": "Report what would change; change nothing" },
            "pairs": {
                "type": "array", "maxItems": 50,
                "description": "Merges to make; without it, the detected duplicates (spelling and same letters, not short forms)",
                "items": { "type": "object", "additionalProperties": false, "required": ["source", "target"],
                    "properties": { "source": entity_property(), "target": entity_property() } },
            },
            "limit": { "type": "integer", "minimum": 1, "maximum": 50, "default": 20 },
        }),
        &[],
    )
}

fn kg_entity_schema() -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["name", "entityType", "observations"],
        "properties": {
            "name": { "type": "string", "description": "The name of the entity" },
            "entityType": { "type": "string", "description": "The type of the entity" },
            "observations": { "type": "array", "items": { "type": "string" }, "description": "Observations about the entity" },
        },
    })
}

fn kg_relation_schema() -> Value {
    json!({
        "type": "object", "additionalProperties": false, "required": ["from", "to", "relationType"],
        "properties": {
            "from": { "type": "string", "description": "The entity the relation starts at" },
            "to": { "type": "string", "description": "The entity the relation ends at" },
            "relationType": { "type": "string", "description": "The relation, in active voice (works_at)" },
        },
    })
}

fn kg_array(item: Value) -> Value {
    json!({ "type": "array", "items": item, "maxItems": MAX_KG_ITEMS })
}

fn create_entities_schema() -> Value {
    object(json!({ "entities": kg_array(kg_entity_schema()) }), &["entities"])
}

fn create_relations_schema() -> Value {
    object(json!({ "relations": kg_array(kg_relation_schema()) }), &["relations"])
}

fn add_observations_schema() -> Value {
    let item = json!({
        "type": "object", "additionalProperties": false, "required": ["entityName", "contents"],
        "properties": {
            "entityName": { "type": "string" },
            "contents": { "type": "array", "items": { "type": "string" } },
        },
    });
    object(json!({ "observations": kg_array(item) }), &["observations"])
}

fn delete_entities_schema() -> Value {
    object(json!({ "entityNames": kg_array(json!({ "type": "string" })) }), &["entityNames"])
}

fn delete_observations_schema() -> Value {
    let item = json!({
        "type": "object", "additionalProperties": false, "required": ["entityName", "observations"],
        "properties": {
            "entityName": { "type": "string" },
            "observations": { "type": "array", "items": { "type": "string" } },
        },
    });
    object(json!({ "deletions": kg_array(item) }), &["deletions"])
}

fn search_nodes_schema() -> Value {
    object(json!({ "query": { "type": "string", "minLength": 1, "maxLength": 2048 } }), &["query"])
}

fn open_nodes_schema() -> Value {
    object(json!({ "names": kg_array(json!({ "type": "string" })) }), &["names"])
}

fn feedback_schema() -> Value {
    object(
        json!({
            "query_id": { "type": "string", "minLength": 1, "maxLength": 128, "description": "The query_id of the search_memory answer." },
            "result_index": { "type": "integer", "minimum": 0, "maximum": 999, "description": "The result's position in that answer (0 first)." },
            "result_id": { "type": "string", "format": "uuid", "description": "The result's memory_id." },
            "outcome": { "type": "string", "enum": ["accepted", "modified", "rejected", "ignored"] },
            "tool_name": { "type": "string", "minLength": 1, "maxLength": 64, "default": "search_memory" },
            "feedback_type": { "type": "string", "enum": ["implicit", "explicit"], "default": "explicit" },
            "decision_time_ms": { "type": "integer", "minimum": 0, "maximum": 86400000 },
            "session_id": { "type": "string", "minLength": 1, "maxLength": 128 },
            "metadata": { "type": "object" }
        }),
        &["outcome"],
    )
}

fn job_schema() -> Value {
    object(json!({ "job_id": { "type": "string" } }), &["job_id"])
}

/// The tools this server offers, in the order `tools/list` shows them.
pub const TOOLS: &[ToolSpec] = &[
    ToolSpec {
        name: "whoami",
        scopes: &[],
        description: "Who you are to Loci: user, organisation, client, scopes and grants.",
        read_only: true,
        destructive: false,
        schema: no_arguments,
    },
    ToolSpec {
        name: "add_memories",
        scopes: &[MEMORIES_WRITE],
        description: "Store a memory (a fact, decision, convention or note) with optional structured metadata; it becomes searchable within a second. With infer, hand over a text or a conversation and the server keeps its facts without duplicates, superseding what they replace.",
        read_only: false,
        destructive: false,
        schema: add_memories_schema,
    },
    ToolSpec {
        name: "add_memories_status",
        scopes: &[MEMORIES_READ],
        description: "State of an add_memories job (queued, running, done or failed), with its results when done.",
        read_only: true,
        destructive: false,
        schema: job_schema,
    },
    ToolSpec {
        name: "search_memory",
        scopes: &[MEMORIES_READ],
        description: "Search your memories (semantic + lexical + graph, fused). Returns the best matches with scores and highlights.",
        read_only: true,
        destructive: false,
        schema: search_schema,
    },
    ToolSpec {
        name: "list_memories",
        scopes: &[MEMORIES_READ],
        description: "List memories page by page, with filters and sorting.",
        read_only: true,
        destructive: false,
        schema: list_schema,
    },
    ToolSpec {
        name: "get_memory",
        scopes: &[MEMORIES_READ],
        description: "One memory by id.",
        read_only: true,
        destructive: false,
        schema: get_memory_schema,
    },
    ToolSpec {
        name: "supersede_memory",
        scopes: &[MEMORIES_WRITE],
        description: "Replace one of your memories with a newer fact (arguments as add_memories, plus memory_id): the old one stops being current but stays readable with as_of.",
        read_only: false,
        destructive: false,
        schema: supersede_schema,
    },
    ToolSpec {
        name: "retract_memory",
        scopes: &[MEMORIES_WRITE],
        description: "Mark one of your memories as no longer true (it stays readable with as_of).",
        read_only: false,
        destructive: false,
        schema: retract_schema,
    },
    ToolSpec {
        name: "update_memory",
        scopes: &[MEMORIES_WRITE],
        description: "Change a memory's text and/or metadata (one, or several with `updates`).",
        read_only: false,
        destructive: false,
        schema: update_schema,
    },
    ToolSpec {
        name: "delete_memories",
        scopes: &[MEMORIES_DELETE],
        description: "Delete your memories by id. Ids you do not own are skipped.",
        read_only: false,
        destructive: true,
        schema: ids_schema,
    },
    ToolSpec {
        name: "delete_all_memories",
        scopes: &[MEMORIES_DELETE],
        description: "Delete every memory you own.",
        read_only: false,
        destructive: true,
        schema: no_arguments,
    },
    ToolSpec {
        name: "export_my_data",
        scopes: &[GDPR_READ],
        description: "Everything Loci holds about you (GDPR subject access): your memories in every state with their history, access logs, jobs, feedback, experiment assignments, index documents (no raw vectors), graph entities and relations from your memories, and your episodic sessions. Erasure is over REST only.",
        read_only: true,
        destructive: false,
        schema: no_arguments,
    },
    ToolSpec {
        name: "graph_related_memories",
        scopes: &[GRAPH_READ],
        description: "Memories that mention the same entities (people, services, code identifiers) as a memory.",
        read_only: true,
        destructive: false,
        schema: related_schema,
    },
    ToolSpec {
        name: "graph_similar_memories",
        scopes: &[GRAPH_READ],
        description: "Memories nearest to a memory by meaning (embedding).",
        read_only: true,
        destructive: false,
        schema: related_schema,
    },
    ToolSpec {
        name: "graph_entity_network",
        scopes: &[GRAPH_READ],
        description: "An entity (person, project, service...) and the entities your memories mention together with it, with how many memories they share.",
        read_only: true,
        destructive: false,
        schema: network_schema,
    },
    ToolSpec {
        name: "graph_path_between_entities",
        scopes: &[GRAPH_READ],
        description: "The shortest chain of entities connecting two entities through memories that mention them together.",
        read_only: true,
        destructive: false,
        schema: path_schema,
    },
    ToolSpec {
        name: "graph_subgraph",
        scopes: &[GRAPH_READ],
        description: "The entities around an entity (up to 3 hops of co-mentions) and the links between them.",
        read_only: true,
        destructive: false,
        schema: subgraph_schema,
    },
    ToolSpec {
        name: "graph_entity_relations",
        scopes: &[GRAPH_READ],
        description: "How an entity relates to other entities in your memories, by relation type and direction.",
        read_only: true,
        destructive: false,
        schema: relations_schema,
    },
    ToolSpec {
        name: "graph_tag_cooccurrence",
        scopes: &[GRAPH_READ],
        description: "Tags set together on your memories: pairs of tags, or the tags that go with one tag key.",
        read_only: true,
        destructive: false,
        schema: cooccurrence_schema,
    },
    ToolSpec {
        name: "graph_aggregate",
        scopes: &[GRAPH_READ],
        description: "Your memories counted by category, scope, artifact type or ref, tag, entity, app, source or state.",
        read_only: true,
        destructive: false,
        schema: aggregate_schema,
    },
    ToolSpec {
        name: "graph_normalize_entities",
        scopes: &[ENTITIES_WRITE],
        description: "Merge entities that name one thing (misspellings, spacing). A dry run unless dry_run is false.",
        read_only: false,
        destructive: true,
        schema: normalize_schema,
    },
    ToolSpec {
        name: "create_entities",
        scopes: &[MEMORIES_WRITE],
        description: "Create multiple new entities in the knowledge graph (names it has already are skipped).",
        read_only: false,
        destructive: false,
        schema: create_entities_schema,
    },
    ToolSpec {
        name: "create_relations",
        scopes: &[MEMORIES_WRITE],
        description: "Create multiple new relations between entities in the knowledge graph, in active voice.",
        read_only: false,
        destructive: false,
        schema: create_relations_schema,
    },
    ToolSpec {
        name: "add_observations",
        scopes: &[MEMORIES_WRITE],
        description: "Add new observations to existing entities in the knowledge graph.",
        read_only: false,
        destructive: false,
        schema: add_observations_schema,
    },
    ToolSpec {
        name: "delete_entities",
        scopes: &[MEMORIES_DELETE],
        description: "Delete entities and their relations from the knowledge graph (your own).",
        read_only: false,
        destructive: true,
        schema: delete_entities_schema,
    },
    ToolSpec {
        name: "delete_observations",
        scopes: &[MEMORIES_DELETE],
        description: "Delete specific observations from entities in the knowledge graph (your own).",
        read_only: false,
        destructive: true,
        schema: delete_observations_schema,
    },
    ToolSpec {
        name: "delete_relations",
        scopes: &[MEMORIES_DELETE],
        description: "Delete relations from the knowledge graph (your own).",
        read_only: false,
        destructive: true,
        schema: create_relations_schema,
    },
    ToolSpec {
        name: "read_graph",
        scopes: &[MEMORIES_READ],
        description: "Read the entire knowledge graph you can see.",
        read_only: true,
        destructive: false,
        schema: no_arguments,
    },
    ToolSpec {
        name: "search_nodes",
        scopes: &[MEMORIES_READ],
        description: "Search the knowledge graph for entities whose name, type or observations contain the query.",
        read_only: true,
        destructive: false,
        schema: search_nodes_schema,
    },
    ToolSpec {
        name: "open_nodes",
        scopes: &[MEMORIES_READ],
        description: "Open specific entities of the knowledge graph by name, with the relations between them.",
        read_only: true,
        destructive: false,
        schema: open_nodes_schema,
    },
    ToolSpec {
        name: "session_context_add",
        scopes: &[MEMORIES_WRITE],
        description: "Keep an item (a turn, an observation, a note) in this session's short-term memory; it expires after a day by default.",
        read_only: false,
        destructive: false,
        schema: session_add_schema,
    },
    ToolSpec {
        name: "session_context_get",
        scopes: &[MEMORIES_READ],
        description: "This session's short-term memory, most recent first (summarised items only when asked).",
        read_only: true,
        destructive: false,
        schema: session_get_schema,
    },
    ToolSpec {
        name: "session_context_promote",
        scopes: &[MEMORIES_WRITE],
        description: "Keep a session item for good: store it as a long-term memory (metadata as for add_memories).",
        read_only: false,
        destructive: false,
        schema: session_promote_schema,
    },
    ToolSpec {
        name: "report_feedback",
        scopes: &[FEEDBACK_WRITE],
        description: "Tell Loci what you did with a search result (accepted, modified, rejected or ignored), naming the search by its query_id and the result by its index: it learns which retrieval works for your organisation.",
        read_only: false,
        destructive: false,
        schema: feedback_schema,
    },
    ToolSpec {
        name: "get_context",
        scopes: &[MEMORIES_READ],
        description: "What you should know now, within a token budget: the user's profile facts, this session's recent items, and the memories most relevant to your query (current only, with ids to cite).",
        read_only: true,
        destructive: false,
        schema: context_schema,
    },
    ToolSpec {
        name: "get_embedder_info",
        scopes: &[MEMORIES_READ],
        description: "The embedding model behind semantic search: provider, model, dimensions.",
        read_only: true,
        destructive: false,
        schema: no_arguments,
    },
    ToolSpec {
        name: "index_codebase",
        scopes: &[GRAPH_WRITE],
        description: "Index a code repository (a local path inside the server's allowed roots, or a git URL) with tree-sitter: files, symbols, imports, calls, package dependencies. Runs as a job (only changed files are parsed again); returns its job_id for index_codebase_status.",
        read_only: false,
        destructive: false,
        schema: crate::code_tools::index_schema,
    },
    ToolSpec {
        name: "index_codebase_status",
        scopes: &[GRAPH_READ],
        description: "State of an index_codebase job (queued, running, done, failed or cancelled) with its progress or report.",
        read_only: true,
        destructive: false,
        schema: job_schema,
    },
    ToolSpec {
        name: "search_code_hybrid",
        scopes: &[SEARCH_READ],
        description: "Search indexed code: symbols by lexical (identifiers split into words), semantic and graph evidence, fused; filter by repository, language and symbol kind.",
        read_only: true,
        destructive: false,
        schema: crate::code_tools::search_schema,
    },
    ToolSpec {
        name: "find_callers",
        scopes: &[GRAPH_READ],
        description: "Who calls a function or method (by name, qualified name or id), up to `depth` steps, with where each call is written and how it was resolved.",
        read_only: true,
        destructive: false,
        schema: crate::code_tools::walk_schema,
    },
    ToolSpec {
        name: "find_callees",
        scopes: &[GRAPH_READ],
        description: "What a function or method calls, up to `depth` steps; calls outside the indexed code are named with the module they come from.",
        read_only: true,
        destructive: false,
        schema: crate::code_tools::walk_schema,
    },
    ToolSpec {
        name: "impact_analysis",
        scopes: &[GRAPH_READ],
        description: "What breaks if a symbol changes: its transitive callers in its repository and in registered repositories that depend on it, ranked, each with the call path that explains it.",
        read_only: true,
        destructive: false,
        schema: crate::code_tools::walk_schema,
    },
    ToolSpec {
        name: "explain_code",
        scopes: &[GRAPH_READ],
        description: "A symbol explained: signature, docs, code, direct callers and callees, and the team's memories that mention it.",
        read_only: true,
        destructive: false,
        schema: crate::code_tools::explain_schema,
    },
];

/// A failed tool call: Loci's code, a message, and extra members
/// (`required_scope`, field `errors`).
#[derive(Debug, Clone)]
pub struct ToolError {
    pub code: ErrorCode,
    pub message: String,
    pub extra: Map<String, Value>,
}

impl ToolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), extra: Map::new() }
    }

    fn with(mut self, key: &str, value: Value) -> Self {
        self.extra.insert(key.into(), value);
        self
    }

    fn invalid(errors: Vec<FieldViolation>) -> Self {
        let list: Vec<Value> = errors.iter().map(|e| json!({ "field": e.field, "message": e.message })).collect();
        let summary = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        Self::new(ErrorCode::InvalidInput, summary).with("errors", Value::Array(list))
    }

    pub fn into_result(self) -> CallToolResult {
        let mut body = Map::new();
        body.insert("code".into(), json!(self.code.code()));
        body.insert("status".into(), json!(self.code.status()));
        body.insert("message".into(), json!(self.message));
        body.extend(self.extra);
        let text = format!("{}: {}", self.code.code(), self.message);
        let mut result = CallToolResult::structured_error(Value::Object(body));
        result.content = vec![ContentBlock::text(text)];
        result
    }
}

impl From<DomainError> for ToolError {
    /// Through the domain's own code and public detail, as REST does, so both
    /// transports hide and name errors alike.
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::Validation(errors) => Self::invalid(errors),
            other => Self::new(other.code(), other.public_detail()),
        }
    }
}

/// Decodes tool arguments into `T`, naming the offending field.
pub(crate) fn arguments<T: DeserializeOwned>(args: &JsonObject) -> Result<T, ToolError> {
    let value = Value::Object(args.clone());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "arguments".to_owned() } else { path };
        ToolError::invalid(vec![FieldViolation::new(&field, e.inner().to_string())])
    })
}

fn memory_id(field: &str, raw: &str) -> Result<MemoryId, ToolError> {
    let mut errors = Vec::new();
    loci_domain::validation::parse_id(field, raw, &mut errors).ok_or_else(|| ToolError::invalid(errors))
}

/// A tool's result limit: the search default when absent, at most the
/// deployment's `mcp.max_results` (itself at most the domain's bound).
fn limit(raw: Option<i64>, max: u64) -> Result<usize, ToolError> {
    let max = usize::try_from(max).unwrap_or(MAX_SEARCH_LIMIT).min(MAX_SEARCH_LIMIT);
    match raw {
        None => Ok(DEFAULT_SEARCH_LIMIT.min(max)),
        Some(n) => rules::limit("limit", usize::try_from(n).unwrap_or(0), max).map_err(|e| ToolError::invalid(vec![e])),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryRef {
    memory_id: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RelatedArgs {
    memory_id: String,
    limit: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkArgs {
    entity: String,
    limit: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PathArgs {
    from: String,
    to: String,
    max_hops: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SubgraphArgs {
    entity: String,
    depth: Option<i64>,
    limit: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RelationsArgs {
    entity: String,
    relation_types: Option<Vec<String>>,
    direction: Option<String>,
    limit: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TagsArgs {
    key: Option<String>,
    min_memories: Option<i64>,
    limit: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionAddArgs {
    session_id: String,
    content: String,
    role: Option<String>,
    metadata: Option<Value>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionGetArgs {
    session_id: String,
    limit: Option<i64>,
    include_summarised: Option<bool>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SessionItemArgs {
    session_id: String,
    item_id: uuid::Uuid,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AggregateArgs {
    dimension: String,
    limit: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MergePair {
    source: String,
    target: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NormalizeArgs {
    dry_run: Option<bool>,
    pairs: Option<Vec<MergePair>>,
    limit: Option<i64>,
}

/// A whole-number argument in `range` (`default` when absent).
fn bounded(
    field: &str,
    value: Option<i64>,
    range: std::ops::RangeInclusive<usize>,
    default: usize,
) -> Result<usize, ToolError> {
    match value {
        None => Ok(default),
        Some(n) => usize::try_from(n).ok().filter(|n| range.contains(n)).ok_or_else(|| {
            ToolError::invalid(vec![FieldViolation::new(
                field,
                format!("must be from {} to {}", range.start(), range.end()),
            )])
        }),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateEntitiesArgs {
    entities: Vec<KgEntity>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RelationsListArgs {
    relations: Vec<KgRelation>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AddObservationsArgs {
    observations: Vec<KgObservations>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct DeleteEntitiesArgs {
    entity_names: Vec<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteObservationsArgs {
    deletions: Vec<KgObservations>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchNodesArgs {
    query: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct OpenNodesArgs {
    names: Vec<String>,
}

/// A knowledge-graph tool's answer: as text the JSON the memory server
/// prints (agents written for it parse that); as structured content the
/// same, inside an object under `key` when it is a list (structured content
/// is an object).
fn as_memory_server(value: Value, key: &str) -> Result<(Value, String), ToolError> {
    let text = serde_json::to_string_pretty(&value)
        .map_err(|e| ToolError::new(ErrorCode::Internal, format!("could not render the answer: {e}")))?;
    let structured = if value.is_object() { value } else { json!({ key: value }) };
    Ok((structured, text))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct JobArgs {
    job_id: String,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateOne {
    memory_id: String,
    text: Option<String>,
    metadata: Option<loci_domain::validation::MetadataInput>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateArgs {
    memory_id: Option<String>,
    text: Option<String>,
    metadata: Option<loci_domain::validation::MetadataInput>,
    #[serde(default)]
    updates: Vec<UpdateOne>,
}

/// What the embedder is, for `get_embedder_info`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EmbedderInfo {
    pub provider: String,
    pub model: Option<String>,
    pub dimensions: Option<usize>,
    pub available: bool,
}

/// The services tools run on.
#[derive(Debug, Clone)]
pub struct Tools {
    memories: MemoryService,
    infer: InferService,
    feedback: FeedbackService,
    search: SearchService,
    entities: EntityService,
    graph: GraphService,
    knowledge_graph: KnowledgeGraphService,
    episodic: EpisodicService,
    context: ContextService,
    embedder: EmbedderInfo,
    max_results: u64,
    gdpr: Option<loci_domain::gdpr::GdprService>,
    /// The server's metrics (over HTTP; stdio has none).
    metrics: Option<loci_http::Metrics>,
    /// Every tool call spends the caller's budget, as a REST request does.
    rate_limiter: Option<Arc<loci_security::RateLimiter>>,
    /// The code tools (without it they answer NOT_IMPLEMENTED).
    pub(crate) code: Option<loci_domain::code::CodeService>,
}

impl Tools {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        memories: MemoryService,
        infer: InferService,
        feedback: FeedbackService,
        search: SearchService,
        entities: EntityService,
        graph: GraphService,
        episodic: EpisodicService,
        embedder: EmbedderInfo,
        max_results: u64,
    ) -> Self {
        let knowledge_graph = KnowledgeGraphService::new(memories.clone());
        let context = ContextService::new(memories.clone(), search.clone(), episodic.clone());
        Self {
            memories,
            infer,
            feedback,
            search,
            entities,
            graph,
            knowledge_graph,
            episodic,
            context,
            embedder,
            max_results,
            gdpr: None,
            metrics: None,
            rate_limiter: None,
            code: None,
        }
    }

    /// Counts memories stored and searches run in the server's metrics.
    pub fn with_metrics(mut self, metrics: loci_http::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Limits tool calls with the server's rate limiter.
    pub fn with_rate_limiter(mut self, limiter: Arc<loci_security::RateLimiter>) -> Self {
        self.rate_limiter = Some(limiter);
        self
    }

    /// Offers the code tools.
    pub fn with_code(mut self, code: loci_domain::code::CodeService) -> Self {
        self.code = Some(code);
        self
    }

    /// Offers `export_my_data`.
    pub fn with_gdpr(mut self, gdpr: loci_domain::gdpr::GdprService) -> Self {
        self.gdpr = Some(gdpr);
        self
    }

    pub fn from_services(services: &loci_app::Services) -> Self {
        let s = &services.settings;
        let info = services.search.embedder_info();
        let embedder = EmbedderInfo {
            provider: format!("{:?}", s.embeddings.provider).to_lowercase(),
            model: info.as_ref().map(|(m, _)| m.clone()),
            dimensions: info.as_ref().map(|(_, d)| *d),
            available: info.is_some(),
        };
        Self::new(
            services.memories.clone(),
            services.infer.clone(),
            services.feedback.clone(),
            services.search.clone(),
            services.entities.clone(),
            services.graph.clone(),
            services.episodic.clone(),
            embedder,
            s.mcp.max_results,
        )
        .with_gdpr(services.gdpr.clone())
        .with_code(services.code.clone())
        .with_rate_limiter(services.rate_limiter.clone())
    }

    /// Every listed tool, with this deployment's result cap as the
    /// `maximum` of every `limit` argument.
    pub fn list(&self) -> Vec<Tool> {
        TOOLS.iter().map(|spec| self.describe(spec)).collect()
    }

    /// The MCP description of `spec` for this deployment.
    pub fn describe(&self, spec: &ToolSpec) -> Tool {
        let mut tool = spec.tool();
        let max = usize::try_from(self.max_results).unwrap_or(MAX_SEARCH_LIMIT).min(MAX_SEARCH_LIMIT);
        let mut schema = tool.input_schema.as_ref().clone();
        if let Some(Value::Object(limit)) =
            schema.get_mut("properties").and_then(|p| p.as_object_mut()).and_then(|p| p.get_mut("limit"))
        {
            let max = if spec.name == "search_code_hybrid" { max.min(CODE_SEARCH_MAX) } else { max };
            limit.insert("maximum".into(), json!(max));
            limit.insert("default".into(), json!(DEFAULT_SEARCH_LIMIT.min(max)));
        }
        tool.input_schema = Arc::new(schema);
        tool
    }

    /// Spends one call of the caller's budget: searches and graph queries
    /// in `search`, read-only tools in `read`, the others in `write`.
    async fn spend_budget(&self, p: &Principal, spec: &ToolSpec) -> Option<CallToolResult> {
        use loci_security::{RateLimitError, RouteGroup};
        let limiter = self.rate_limiter.as_ref()?;
        let group = if spec.name.contains("search") || spec.name.starts_with("graph_") {
            RouteGroup::Search
        } else if spec.read_only {
            RouteGroup::Read
        } else {
            RouteGroup::Write
        };
        let refused = limiter.check(p, group).await.err()?;
        if let (Some(metrics), RateLimitError::Limited { .. }) = (&self.metrics, &refused) {
            metrics.rate_limited(group.as_str());
        }
        Some(
            ToolError::new(refused.code(), refused.to_string())
                .with("retry_after", json!(refused.retry_after_secs()))
                .into_result(),
        )
    }

    /// The spec of a tool by name (listed tools only).
    pub fn spec(name: &str) -> Option<&'static ToolSpec> {
        TOOLS.iter().find(|t| t.name == name)
    }

    /// Runs tool `name` for `p`. `None` for a name no tool has (a protocol
    /// error for the caller); otherwise the tool's result or its error.
    pub async fn call(&self, p: &Principal, name: &str, args: Option<JsonObject>) -> Option<CallToolResult> {
        use tracing::Instrument;
        let span = tracing::info_span!("mcp.tool_call", otel.name = %format!("tools/call {name}"), tool = %name);
        self.dispatch(p, name, args).instrument(span).await
    }

    async fn dispatch(&self, p: &Principal, name: &str, args: Option<JsonObject>) -> Option<CallToolResult> {
        let args = args.unwrap_or_default();
        let spec = Self::spec(name)?;
        let scopes: &[&str] = spec.scopes;
        if let Err(missing) = p.require_scopes(scopes) {
            let required = match &missing {
                loci_security::AuthError::InsufficientScope(m) => m.join(" "),
                _ => scopes.join(" "),
            };
            return Some(
                ToolError::new(ErrorCode::InsufficientScope, format!("`{name}` requires the scope `{required}`"))
                    .with("required_scope", json!(required))
                    .into_result(),
            );
        }
        if p.expires_at <= chrono::Utc::now() {
            return Some(ToolError::new(ErrorCode::TokenExpired, "the access token has expired").into_result());
        }
        if let Some(refused) = self.spend_budget(p, spec).await {
            return Some(refused);
        }
        let outcome = match name {
            "whoami" => Ok(whoami(p)),
            "add_memories" => self.add_memories(p, &args).await,
            "add_memories_status" => self.add_memories_status(p, &args).await,
            "search_memory" => self.search_memory(p, &args).await,
            "list_memories" => self.list_memories(p, &args).await,
            "get_memory" => self.get_memory(p, &args).await,
            "update_memory" => self.update_memory(p, &args).await,
            "supersede_memory" => self.supersede_memory(p, &args).await,
            "retract_memory" => self.retract_memory(p, &args).await,
            "delete_memories" => self.delete_memories(p, &args).await,
            "delete_all_memories" => self.delete_all_memories(p, &args).await,
            "export_my_data" => self.export_my_data(p, &args).await,
            "graph_related_memories" => self.graph_related(p, &args).await,
            "graph_similar_memories" => self.graph_similar(p, &args).await,
            "graph_entity_network" => self.graph_entity_network(p, &args).await,
            "graph_path_between_entities" => self.graph_path(p, &args).await,
            "graph_subgraph" => self.graph_subgraph(p, &args).await,
            "graph_entity_relations" => self.graph_relations(p, &args).await,
            "graph_tag_cooccurrence" => self.graph_tags(p, &args).await,
            "graph_aggregate" => self.graph_aggregate(p, &args).await,
            "graph_normalize_entities" => self.graph_normalize(p, &args).await,
            "create_entities" => self.create_entities(p, &args).await,
            "create_relations" => self.create_relations(p, &args).await,
            "add_observations" => self.add_observations(p, &args).await,
            "delete_entities" => self.delete_entities(p, &args).await,
            "delete_observations" => self.delete_observations(p, &args).await,
            "delete_relations" => self.delete_relations(p, &args).await,
            "read_graph" => self.read_graph(p, &args).await,
            "search_nodes" => self.search_nodes(p, &args).await,
            "open_nodes" => self.open_nodes(p, &args).await,
            "session_context_add" => self.session_add(p, &args).await,
            "report_feedback" => self.report_feedback(p, &args).await,
            "session_context_get" => self.session_get(p, &args).await,
            "session_context_promote" => self.session_promote(p, &args).await,
            "get_context" => self.get_context(p, &args).await,
            "get_embedder_info" => self.embedder_info(&args),
            "index_codebase" => self.index_codebase(p, &args).await,
            "index_codebase_status" => self.index_codebase_status(p, &args).await,
            "search_code_hybrid" => self.search_code(p, &args).await,
            "find_callers" => self.find_callers(p, &args).await,
            "find_callees" => self.find_callees(p, &args).await,
            "impact_analysis" => self.impact_analysis(p, &args).await,
            "explain_code" => self.explain_code(p, &args).await,
            other => Err(ToolError::new(ErrorCode::NotImplemented, format!("`{other}` has no handler"))),
        };
        Some(match outcome {
            Ok((value, text)) => {
                let mut result = CallToolResult::structured(value);
                result.content = vec![ContentBlock::text(text)];
                result
            }
            Err(e) => e.into_result(),
        })
    }

    async fn add_memories(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let input = create_input(args)?;
        let outcome = self.infer.add(p, input).await?;
        if let Some(metrics) = &self.metrics {
            metrics.memories_created(outcome.stored());
        }
        match outcome {
            AddOutcome::Created(view) => {
                let text = format!("Stored memory {}: {}", view.memory.id, one_line(&view.memory.content));
                Ok((json!({ "memories": [view], "count": 1 }), text))
            }
            AddOutcome::Inferred(outcome) => {
                let text = render_inferred(&outcome);
                Ok((to_value(&outcome)?, text))
            }
            AddOutcome::Queued(job) => {
                let text = format!("Queued as job {}: ask add_memories_status for its results", job.job_id);
                Ok((to_value(&job)?, text))
            }
        }
    }

    async fn supersede_memory(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let mut rest = args.clone();
        let raw = match rest.remove("memory_id") {
            Some(Value::String(s)) => s,
            _ => return Err(ToolError::invalid(vec![FieldViolation::new("memory_id", "a memory id is required")])),
        };
        let id = memory_id("memory_id", &raw)?;
        let view = self.memories.supersede(p, id, create_input(&rest)?).await?;
        let text = format!(
            "Memory {} superseded {}: {}",
            view.memory.memory.id,
            view.superseded.memory.id,
            one_line(&view.memory.memory.content)
        );
        Ok((to_value(&view)?, text))
    }

    async fn retract_memory(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: MemoryRef = arguments(args)?;
        let view = self.memories.retract(p, memory_id("memory_id", &a.memory_id)?).await?;
        let text = format!("Memory {} is no longer current", view.memory.id);
        Ok((to_value(&view)?, text))
    }
}

impl Tools {
    async fn report_feedback(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let mut args = args.clone();
        args.entry("tool_name").or_insert_with(|| json!("search_memory"));
        let input: FeedbackInput = arguments(&args)?;
        let event = self.feedback.record(p, input).await?;
        let text = format!("Recorded: {} ({})", event.outcome, event.event_id);
        Ok((to_value(&event)?, text))
    }
}

/// One line per fact: its event, the memory it touched, the fact.
fn render_inferred(outcome: &InferOutcome) -> String {
    let mut lines = vec![format!("{} facts ({} path)", outcome.results.len(), outcome.engine)];
    for r in &outcome.results {
        let id = r.memory_id.map(|m| m.to_string()).unwrap_or_else(|| "-".into());
        lines.push(format!("{} {id}: {} ({})", r.event.as_str(), one_line(&r.fact), r.reason));
    }
    lines.join("\n")
}

/// The flat `add_memories` arguments as the REST create body (metadata
/// inlined); an unknown argument is a field error.
fn create_input(args: &JsonObject) -> Result<CreateMemoryInput, ToolError> {
    {
        let mut body = Map::new();
        let mut metadata = Map::new();
        let metadata_keys = metadata_properties();
        for (k, v) in args {
            match k.as_str() {
                "text" | "app" | "infer" | "messages" | "async" => {
                    body.insert(k.clone(), v.clone());
                }
                known if metadata_keys.contains_key(known) => {
                    metadata.insert(k.clone(), v.clone());
                }
                other => {
                    return Err(ToolError::invalid(vec![FieldViolation::new(other, "unknown argument")]));
                }
            }
        }
        body.insert("metadata".into(), Value::Object(metadata));
        arguments(&body)
    }
}

impl Tools {
    async fn add_memories_status(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: JobArgs = arguments(args)?;
        let id = a
            .job_id
            .parse::<JobId>()
            .map_err(|e| ToolError::invalid(vec![FieldViolation::new("job_id", e.to_string())]))?;
        let job = self.infer.job(p, id).await?;
        let text = match &job.result {
            Some(outcome) => format!("Job {} is {}\n{}", job.job_id, job.status, render_inferred(outcome)),
            None => match &job.error {
                Some(e) => format!("Job {} failed: {e}", job.job_id),
                None => format!("Job {} is {}", job.job_id, job.status),
            },
        };
        Ok((to_value(&job)?, text))
    }

    async fn search_memory(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let input: SearchInput = arguments(args)?;
        if let Some(n) = input.limit {
            limit(Some(n), self.max_results)?;
        }
        let request = input.parse(None).map_err(ToolError::invalid)?;
        let response = self.search.search(p, request).await?;
        if let Some(metrics) = &self.metrics {
            metrics.search(&response);
        }
        let text = render_search(&response);
        Ok((to_value(&response)?, text))
    }

    async fn list_memories(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let body: FilterBody = arguments(args)?;
        let (filter, page) = body.parse().map_err(ToolError::invalid)?;
        let page = self.memories.list(p, filter, page).await?;
        let text = format!(
            "Page {} of {} ({} memories in all)\n{}",
            page.page,
            page.pages,
            page.total,
            render_views(&page.items)
        );
        Ok((to_value(&page)?, text))
    }

    async fn get_memory(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: MemoryRef = arguments(args)?;
        let view = self.memories.get(p, memory_id("memory_id", &a.memory_id)?).await?;
        let text = format!("{}: {}", view.memory.id, view.memory.content);
        Ok((to_value(&view)?, text))
    }

    async fn update_memory(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: UpdateArgs = arguments(args)?;
        let single = a.memory_id.is_some();
        if single != a.updates.is_empty() {
            return Err(ToolError::invalid(vec![FieldViolation::new(
                "arguments",
                "give either memory_id (with text and/or metadata) or updates",
            )]));
        }
        if a.updates.len() > MAX_UPDATES_PER_CALL {
            return Err(ToolError::invalid(vec![FieldViolation::new(
                "updates",
                format!("at most {MAX_UPDATES_PER_CALL} per call"),
            )]));
        }
        if let Some(id) = a.memory_id {
            let id = memory_id("memory_id", &id)?;
            let view = self.memories.update(p, id, UpdateMemoryInput { text: a.text, metadata: a.metadata }).await?;
            let text = format!("Updated memory {}", view.memory.id);
            return Ok((json!({ "memory": view }), text));
        }
        let mut results = Vec::with_capacity(a.updates.len());
        let mut updated = 0;
        for (i, u) in a.updates.into_iter().enumerate() {
            let outcome = match memory_id(&format!("updates[{i}].memory_id"), &u.memory_id) {
                Ok(id) => self
                    .memories
                    .update(p, id, UpdateMemoryInput { text: u.text, metadata: u.metadata })
                    .await
                    .map_err(ToolError::from),
                Err(e) => Err(e),
            };
            results.push(match outcome {
                Ok(view) => {
                    updated += 1;
                    json!({ "memory_id": u.memory_id, "ok": true, "memory": view })
                }
                Err(e) => json!({ "memory_id": u.memory_id, "ok": false, "code": e.code.code(), "message": e.message }),
            });
        }
        let text = format!("Updated {updated} of {} memories", results.len());
        Ok((json!({ "results": results, "updated": updated }), text))
    }

    async fn delete_memories(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: IdsBody = arguments(args)?;
        let ids = a.parse().map_err(ToolError::invalid)?;
        let outcome = self.memories.delete(p, &ids).await?;
        let text = format!("Deleted {}, skipped {}", outcome.changed.len(), outcome.skipped.len());
        Ok((json!({ "deleted": outcome.changed, "skipped": outcome.skipped }), text))
    }

    async fn delete_all_memories(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let _: Empty = arguments(args)?;
        let outcome = self.memories.delete_all(p).await?;
        let text = format!("Deleted {} memories ({} remaining)", outcome.deleted.len(), outcome.remaining);
        Ok((to_value(&outcome)?, text))
    }

    async fn export_my_data(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let _: Empty = arguments(args)?;
        let Some(gdpr) = &self.gdpr else {
            return Err(ToolError::new(ErrorCode::NotImplemented, "this server offers no GDPR export"));
        };
        let mut document = Vec::new();
        gdpr.export(p, &loci_domain::gdpr::Subject::Caller, &mut document).await?;
        let document: Value = serde_json::from_slice(&document)
            .map_err(|e| ToolError::new(ErrorCode::Internal, format!("the export is not JSON: {e}")))?;
        let count = |section: &str| document["relational"][section].as_array().map_or(0, Vec::len);
        let text = format!(
            "Exported {} memories, {} history rows, {} access log rows{}",
            count("memories"),
            count("memory_status_history"),
            count("memory_access_logs"),
            if document["partial"] == json!(true) {
                format!("; partial: {}", document["errors"])
            } else {
                String::new()
            }
        );
        Ok((document, text))
    }

    async fn graph_related(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: RelatedArgs = arguments(args)?;
        let id = memory_id("memory_id", &a.memory_id)?;
        let limit = limit(a.limit, self.max_results)?;
        let ids = self.search.related_by_graph(p, id, limit).await?;
        let items = self.memories.visible_in_order(p, &ids, limit, "related").await?;
        let text = render_views(&items);
        Ok((json!({ "items": items, "total": items.len() }), text))
    }

    async fn graph_similar(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: RelatedArgs = arguments(args)?;
        let id = memory_id("memory_id", &a.memory_id)?;
        let limit = limit(a.limit, self.max_results)?;
        let items = self.search.similar(p, id, limit).await?;
        let text = items
            .iter()
            .enumerate()
            .map(|(i, r)| format!("{}. [{:.3}] {} ({})", i + 1, r.score, one_line(&r.content), r.memory_id))
            .collect::<Vec<_>>()
            .join("\n");
        Ok((json!({ "items": items, "total": items.len() }), text))
    }

    async fn graph_entity_network(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: NetworkArgs = arguments(args)?;
        let limit = match a.limit {
            None => DEFAULT_ENTITY_LIMIT,
            Some(n) => usize::try_from(n).unwrap_or(0),
        };
        let network = self.entities.network(p, &a.entity, limit).await?;
        let mut lines = vec![format!("{} ({} memories)", network.entity.display_name, network.entity.memories)];
        lines.extend(
            network.neighbours.iter().map(|n| {
                format!("- {} ({} shared of {})", n.entity.display_name, n.shared_memories, n.entity.memories)
            }),
        );
        Ok((to_value(&network)?, lines.join("\n")))
    }

    async fn graph_path(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: PathArgs = arguments(args)?;
        let max_hops = match a.max_hops {
            None => DEFAULT_PATH_HOPS,
            Some(n) => usize::try_from(n).unwrap_or(0),
        };
        let path = self.entities.path(p, &a.from, &a.to, max_hops).await?;
        let text = if path.found {
            path.entities.iter().map(|e| e.display_name.as_str()).collect::<Vec<_>>().join(" -> ")
        } else {
            format!("no chain from {} to {} within {max_hops} hops", path.from, path.to)
        };
        Ok((to_value(&path)?, text))
    }

    async fn graph_subgraph(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: SubgraphArgs = arguments(args)?;
        let depth = bounded("depth", a.depth, 1..=MAX_SUBGRAPH_DEPTH, 1)?;
        let limit = bounded("limit", a.limit, 1..=MAX_ENTITY_LIMIT, 10)?;
        let sub = self.entities.subgraph(p, &a.entity, depth, limit).await?;
        let mut lines = vec![format!("{} entities, {} links around {}", sub.nodes.len(), sub.edges.len(), sub.center)];
        lines.extend(sub.edges.iter().map(|e| format!("- {} -- {} ({} memories)", e.a, e.b, e.shared_memories)));
        Ok((to_value(&sub)?, lines.join("\n")))
    }

    async fn graph_relations(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: RelationsArgs = arguments(args)?;
        let limit = bounded("limit", a.limit, 1..=MAX_ENTITY_LIMIT, DEFAULT_ENTITY_LIMIT)?;
        let query = loci_domain::entities::RelationsQuery {
            relation_types: a.relation_types.map(|t| t.join(",")),
            direction: a.direction,
            limit: Some(limit.to_string()),
        };
        let req: RelationsRequest = query.parse()?;
        let rel = self.entities.relations(p, &a.entity, &req).await?;
        let mut lines = vec![format!("{} ({} memories)", rel.entity.display_name, rel.entity.memories)];
        lines.extend(
            rel.relations
                .iter()
                .map(|r| format!("- {} {} ({} memories)", r.relation_type, r.entity.display_name, r.memories)),
        );
        Ok((to_value(&rel)?, lines.join("\n")))
    }

    async fn graph_tags(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: TagsArgs = arguments(args)?;
        let limit = bounded("limit", a.limit, 1..=MAX_GRAPH_LIMIT, DEFAULT_GRAPH_LIMIT)?;
        match a.key {
            Some(key) => {
                let related = self.graph.related_tags(p, &key, limit).await?;
                let mut lines =
                    vec![format!("{} memories have the tag key {}", related.memories_with_key, related.key)];
                lines.extend(related.related.iter().map(|t| format!("- {} ({} memories)", t.tag, t.memories)));
                Ok((to_value(&related)?, lines.join("\n")))
            }
            None => {
                let min = bounded("min_memories", a.min_memories, 1..=1_000_000, 1)?;
                let pairs = self.graph.tag_cooccurrence(p, limit, min as u64).await?;
                let lines: Vec<String> =
                    pairs.pairs.iter().map(|t| format!("- {} + {} ({} memories)", t.a, t.b, t.memories)).collect();
                let text = if lines.is_empty() { "no tags set together".to_owned() } else { lines.join("\n") };
                Ok((to_value(&pairs)?, text))
            }
        }
    }

    async fn get_context(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let req: ContextRequest = arguments(args)?;
        let view = self.context.assemble(p, req).await?;
        let mut lines: Vec<String> = view.profile.iter().map(|f| format!("- {}: {}", f.kind, f.value)).collect();
        lines.extend(view.session.iter().map(|i| format!("- [session {}] {}", i.id, one_line(&i.text))));
        lines.extend(view.memories.iter().map(|m| format!("- [{}] {}", m.id, one_line(&m.text))));
        lines.push(format!("({} of {} tokens, {})", view.tokens_used, view.max_tokens, view.tokenizer));
        Ok((to_value(&view)?, lines.join("\n")))
    }

    async fn session_add(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: SessionAddArgs = arguments(args)?;
        let input = AddEpisodicInput { content: a.content, role: a.role, metadata: a.metadata };
        let item = self.episodic.add(p, &a.session_id, input).await?;
        let text = format!("kept {} in session {}", item.id, item.session_id);
        Ok((to_value(&item)?, text))
    }

    async fn session_get(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: SessionGetArgs = arguments(args)?;
        let q = EpisodicListQuery { limit: a.limit, include_summarised: a.include_summarised };
        let list = self.episodic.list(p, &a.session_id, &q).await?;
        let lines: Vec<String> = list
            .items
            .iter()
            .map(|i| match &i.role {
                Some(role) => format!("- [{}] {role}: {}", i.id, one_line(&i.content)),
                None => format!("- [{}] {}", i.id, one_line(&i.content)),
            })
            .collect();
        let text = if lines.is_empty() { "nothing in this session".to_owned() } else { lines.join("\n") };
        Ok((to_value(&list)?, text))
    }

    async fn session_promote(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        // Like add_memories, the memory's metadata is inlined.
        let mut rest = args.clone();
        let session = rest.remove("session_id");
        let item = rest.remove("item_id");
        let app = rest.remove("app");
        let ids: SessionItemArgs = arguments(
            &[
                ("session_id".to_owned(), session.unwrap_or(Value::Null)),
                ("item_id".to_owned(), item.unwrap_or(Value::Null)),
            ]
            .into_iter()
            .collect(),
        )?;
        let app: Option<String> = match app {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => return Err(ToolError::invalid(vec![FieldViolation::new("app", "must be a string")])),
        };
        let known = metadata_properties();
        let unknown: Vec<FieldViolation> =
            rest.keys().filter(|k| !known.contains_key(*k)).map(|k| FieldViolation::new(k, "unknown field")).collect();
        if !unknown.is_empty() {
            return Err(ToolError::invalid(unknown));
        }
        let metadata: loci_domain::validation::MetadataInput = arguments(&rest)?;
        let promoted = self.episodic.promote(p, &ids.session_id, ids.item_id, PromoteInput { app, metadata }).await?;
        let text = format!("session item {} is memory {}", promoted.item.id, promoted.memory.memory.id);
        Ok((to_value(&promoted)?, text))
    }

    async fn graph_aggregate(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: AggregateArgs = arguments(args)?;
        let limit = bounded("limit", a.limit, 1..=MAX_GRAPH_LIMIT, DEFAULT_GRAPH_LIMIT)?;
        let agg = self.graph.aggregate(p, &a.dimension, limit).await?;
        let mut lines = vec![format!("{} memories by {} ({} values)", agg.memories, agg.dimension, agg.values)];
        lines.extend(
            agg.buckets.iter().map(|b| format!("- {}: {}", b.label.as_deref().unwrap_or(&b.value), b.memories)),
        );
        Ok((to_value(&agg)?, lines.join("\n")))
    }

    async fn graph_normalize(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: NormalizeArgs = arguments(args)?;
        let dry_run = a.dry_run.unwrap_or(true);
        let limit = bounded("limit", a.limit, 1..=50, 20)?;
        let pairs: Vec<(String, String)> = match a.pairs {
            Some(pairs) => pairs.into_iter().map(|m| (m.source, m.target)).collect(),
            None => self
                .entities
                .duplicates(p, limit)
                .await?
                .pairs
                .into_iter()
                .filter(|d| d.reason != "short_form")
                .map(|d| (d.merge.name, d.keep.name))
                .collect(),
        };
        let mut merges: Vec<MergeView> = Vec::new();
        let mut skipped: Vec<Value> = Vec::new();
        for (source, target) in pairs.into_iter().take(limit) {
            let req = MergeRequest { source: source.clone(), target: target.clone(), dry_run: Some(dry_run) };
            match self.entities.merge(p, req).await {
                Ok(m) => merges.push(m),
                Err(e @ (DomainError::NotFound(_) | DomainError::Validation(_))) => {
                    skipped.push(json!({ "source": source, "target": target, "reason": e.to_string() }));
                }
                Err(e) => return Err(e.into()),
            }
        }
        let verb = if dry_run { "would merge" } else { "merged" };
        let mut lines: Vec<String> = merges
            .iter()
            .map(|m| format!("- {verb} {} into {} ({} memories)", m.source, m.target, m.memories_moved))
            .collect();
        if lines.is_empty() {
            lines.push("nothing to merge".to_owned());
        }
        Ok((json!({ "dry_run": dry_run, "merges": merges, "skipped": skipped }), lines.join("\n")))
    }

    async fn create_entities(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: CreateEntitiesArgs = arguments(args)?;
        let created = self.knowledge_graph.create_entities(p, a.entities).await?;
        as_memory_server(to_value(&created)?, "entities")
    }

    async fn create_relations(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: RelationsListArgs = arguments(args)?;
        let created = self.knowledge_graph.create_relations(p, a.relations).await?;
        as_memory_server(to_value(&created)?, "relations")
    }

    async fn add_observations(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: AddObservationsArgs = arguments(args)?;
        let added = self.knowledge_graph.add_observations(p, a.observations).await?;
        as_memory_server(to_value(&added)?, "results")
    }

    async fn delete_entities(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: DeleteEntitiesArgs = arguments(args)?;
        let deleted = self.knowledge_graph.delete_entities(p, &a.entity_names).await?;
        Ok((json!({ "deleted_memories": deleted }), "Entities deleted successfully".to_owned()))
    }

    async fn delete_observations(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: DeleteObservationsArgs = arguments(args)?;
        let deleted = self.knowledge_graph.delete_observations(p, a.deletions).await?;
        Ok((json!({ "deleted_memories": deleted }), "Observations deleted successfully".to_owned()))
    }

    async fn delete_relations(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: RelationsListArgs = arguments(args)?;
        let deleted = self.knowledge_graph.delete_relations(p, a.relations).await?;
        Ok((json!({ "deleted_memories": deleted }), "Relations deleted successfully".to_owned()))
    }

    async fn read_graph(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let _: Empty = arguments(args)?;
        as_memory_server(to_value(&self.knowledge_graph.read_graph(p).await?)?, "graph")
    }

    async fn search_nodes(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: SearchNodesArgs = arguments(args)?;
        as_memory_server(to_value(&self.knowledge_graph.search_nodes(p, &a.query).await?)?, "graph")
    }

    async fn open_nodes(&self, p: &Principal, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let a: OpenNodesArgs = arguments(args)?;
        as_memory_server(to_value(&self.knowledge_graph.open_nodes(p, &a.names).await?)?, "graph")
    }

    fn embedder_info(&self, args: &JsonObject) -> Result<(Value, String), ToolError> {
        let _: Empty = arguments(args)?;
        let text = match (&self.embedder.model, self.embedder.dimensions) {
            (Some(m), Some(d)) => format!("{} ({}, {d} dimensions)", m, self.embedder.provider),
            _ => "no embedder: semantic search is off, lexical and graph search work".to_owned(),
        };
        Ok((to_value(&self.embedder)?, text))
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

fn whoami(p: &Principal) -> (Value, String) {
    let text = format!("{} in {} ({} scopes)", p.subject, p.org_id, p.scopes.len());
    (p.summary(), text)
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ToolError> {
    serde_json::to_value(v).map_err(|e| ToolError::new(ErrorCode::Internal, format!("encoding the result: {e}")))
}

/// The first line of a text, at most 160 characters.
fn one_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or("");
    let mut out: String = line.chars().take(160).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

fn render_views(items: &[MemoryView]) -> String {
    if items.is_empty() {
        return "No memories.".to_owned();
    }
    items
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{}. {} ({})", i + 1, one_line(&v.memory.content), v.memory.id))
        .collect::<Vec<_>>()
        .join("\n")
}

fn render_search(r: &SearchResponse) -> String {
    let mut out = if r.results.is_empty() {
        "No matching memories.".to_owned()
    } else {
        r.results
            .iter()
            .enumerate()
            .map(|(i, hit)| format!("{}. [{:.4}] {} ({})", i + 1, hit.score, one_line(&hit.content), hit.memory_id))
            .collect::<Vec<_>>()
            .join("\n")
    };
    out.push_str(&format!("\n(query_id {}: report_feedback on what you use)", r.query_id));
    if r.meta.degraded_mode {
        out.push_str(&format!("\n(degraded: missing {})", r.meta.missing_sources.join(", ")));
    }
    out
}
