//! sea-orm entities, one per table of the core schema. Private to the crate:
//! callers see the record types of `crate::records`.

pub mod apps;
pub mod categories;
pub mod code_calls;
pub mod code_files;
pub mod code_repos;
pub mod code_symbols;
pub mod experiment_assignments;
pub mod experiment_history;
pub mod experiments;
pub mod feedback_events;
pub mod gdpr_audit_logs;
pub mod graph_aliases;
pub mod graph_edges;
pub mod graph_entities;
pub mod graph_mentions;
pub mod graph_relations;
pub mod job_queue;
pub mod memories;
pub mod memory_access_logs;
pub mod memory_categories;
pub mod memory_jobs;
pub mod memory_status_history;
pub mod orgs;
pub mod outbox;
pub mod user_keys;
pub mod users;
