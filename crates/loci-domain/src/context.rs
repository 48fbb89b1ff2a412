//! Context for agents: one call that assembles, within the caller's token
//! budget, what an agent should see now — the user's profile facts, the
//! recent items of the session, and the memories most relevant to a query
//! (or the newest) — current memories only, each content once, with ids for
//! citation. No LLM: profile facts come from fixed first-person patterns
//! over the caller's own current memories.
//!
//! Tokens are counted with the embedding model's own tokenizer when a local
//! model is loaded (`tokenizer` names it), else estimated as one token per
//! four characters (`tokenizer: "estimate"`), rounded up. The budget covers
//! the texts handed over (facts, items, memory contents); sections are
//! filled in that order and an item that does not fit is left out whole.

use std::collections::HashSet;

use loci_core::MemoryId;
use loci_core::model::{MemoryFilter, PageRequest};
use loci_security::Principal;
use serde::{Deserialize, Serialize};

use crate::episodic::{EpisodicListQuery, EpisodicService};
use crate::memories::MemoryService;
use crate::search::{SearchInput, SearchMode, SearchService};
use crate::{DomainError, FieldViolation};

/// Bounds of `max_tokens`.
pub const TOKEN_BUDGET: std::ops::RangeInclusive<i64> = 16..=32_000;
/// Own memories scanned for profile facts (newest first).
pub const PROFILE_SCAN: u64 = 500;
/// Most preference facts kept.
const MAX_PREFERENCES: usize = 10;

/// What to assemble.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContextRequest {
    /// What the agent is working on: relevant memories are searched for it
    /// (hybrid when a model is loaded); without it, the newest memories.
    pub query: Option<String>,
    /// The agent session whose recent items to include.
    pub session_id: Option<String>,
    /// 16 to 32,000 (default 1,000).
    #[serde(default, deserialize_with = "crate::inputs::whole_number::option")]
    pub max_tokens: Option<i64>,
    /// Most relevant memories (1 to 50, default 10).
    #[serde(default, deserialize_with = "crate::inputs::whole_number::option")]
    pub memories: Option<i64>,
    /// Most session items (1 to 50, default 10).
    #[serde(default, deserialize_with = "crate::inputs::whole_number::option")]
    pub session_items: Option<i64>,
}

/// A stable fact about the user, with the memory that states it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProfileFact {
    /// `name`, `role`, `employer`, `location` or `preference`.
    pub kind: String,
    pub value: String,
    pub memory_id: MemoryId,
}

/// A piece of context with its id for citation.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContextItem {
    /// A memory id, or a session item id.
    pub id: String,
    pub text: String,
    pub tokens: usize,
}

/// The assembled context.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ContextView {
    pub profile: Vec<ProfileFact>,
    pub session: Vec<ContextItem>,
    pub memories: Vec<ContextItem>,
    pub max_tokens: usize,
    pub tokens_used: usize,
    /// The model whose tokenizer counted, or `estimate`.
    pub tokenizer: String,
    /// Whether something was left out for the budget.
    pub truncated: bool,
}

/// Lower-cased first-person phrases and the fact kind they introduce.
const PATTERNS: &[(&str, &str)] = &[
    ("my name is ", "name"),
    ("call me ", "name"),
    ("i work as an ", "role"),
    ("i work as a ", "role"),
    ("i work as ", "role"),
    ("my role is ", "role"),
    ("i work at ", "employer"),
    ("i work for ", "employer"),
    ("i live in ", "location"),
    ("i am based in ", "location"),
    ("i'm based in ", "location"),
    ("i prefer ", "preference"),
    ("i like ", "preference"),
    ("i love ", "preference"),
    ("i always use ", "preference"),
];

/// The facts one text states about its author, in text order.
pub fn profile_facts(text: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for sentence in text.split(['.', '!', '?', '\n', ';']) {
        let lower = sentence.trim().to_lowercase();
        for (phrase, kind) in PATTERNS {
            let Some(pos) = lower.find(phrase) else { continue };
            // A phrase inside a word ("my name is" in "enemy name is") does not count.
            if pos > 0 && lower[..pos].chars().last().is_some_and(|c| c.is_alphanumeric()) {
                continue;
            }
            let start = pos + phrase.len();
            let value: String = sentence.trim()[start..].split(',').next().unwrap_or("").trim().to_owned();
            let words = value.split_whitespace().count();
            if !value.is_empty() && words <= 8 {
                out.push((*kind, value));
                break;
            }
        }
    }
    out
}

fn bounded(
    field: &str,
    raw: Option<i64>,
    range: std::ops::RangeInclusive<i64>,
    default: i64,
    out: &mut Vec<FieldViolation>,
) -> usize {
    match raw {
        None => default as usize,
        Some(n) if range.contains(&n) => n as usize,
        Some(_) => {
            out.push(FieldViolation::new(field, format!("must be {} to {}", range.start(), range.end())));
            default as usize
        }
    }
}

/// Context for agents (see the module docs).
#[derive(Debug, Clone)]
pub struct ContextService {
    memories: MemoryService,
    search: SearchService,
    episodic: EpisodicService,
}

struct Budget<'a> {
    search: &'a SearchService,
    max: usize,
    used: usize,
    truncated: bool,
}

impl Budget<'_> {
    fn count(&self, text: &str) -> usize {
        self.search.count_tokens(text).unwrap_or_else(|| text.chars().count().div_ceil(4))
    }

    /// Takes `text` if it fits; its token count when it does.
    fn take(&mut self, text: &str) -> Option<usize> {
        let n = self.count(text);
        if self.used + n <= self.max {
            self.used += n;
            Some(n)
        } else {
            self.truncated = true;
            None
        }
    }
}

impl ContextService {
    pub fn new(memories: MemoryService, search: SearchService, episodic: EpisodicService) -> Self {
        Self { memories, search, episodic }
    }

    /// The user's profile facts from their own current memories, newest
    /// statement of each kind first (preferences: up to ten, newest first).
    async fn profile(&self, p: &Principal) -> Result<Vec<ProfileFact>, DomainError> {
        let me = self.memories.visibility(p).await?.user_id;
        let filter = MemoryFilter { user_id: Some(me), ..MemoryFilter::default() };
        let page = self.memories.list_quiet(p, filter, PageRequest { page: 1, size: PROFILE_SCAN }).await?;
        let mut facts: Vec<ProfileFact> = Vec::new();
        for m in page {
            for (kind, value) in profile_facts(&m.content) {
                let single = kind != "preference";
                let seen = facts.iter().any(|f| f.kind == kind && (single || f.value.eq_ignore_ascii_case(&value)));
                let preferences = facts.iter().filter(|f| f.kind == "preference").count();
                if !seen && (single || preferences < MAX_PREFERENCES) {
                    facts.push(ProfileFact { kind: kind.to_owned(), value, memory_id: m.id });
                }
            }
        }
        Ok(facts)
    }

    pub async fn assemble(&self, p: &Principal, req: ContextRequest) -> Result<ContextView, DomainError> {
        let mut errors = Vec::new();
        let max_tokens = bounded("max_tokens", req.max_tokens, TOKEN_BUDGET, 1_000, &mut errors);
        let n_memories = bounded("memories", req.memories, 1..=50, 10, &mut errors);
        let n_items = bounded("session_items", req.session_items, 1..=50, 10, &mut errors);
        if let Some(q) = &req.query
            && (q.trim().is_empty() || q.chars().count() > crate::rules::MAX_QUERY_CHARS)
        {
            errors.push(FieldViolation::new(
                "query",
                format!("must be 1 to {} characters, not only whitespace", crate::rules::MAX_QUERY_CHARS),
            ));
        }
        if !errors.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let mut budget = Budget { search: &self.search, max: max_tokens, used: 0, truncated: false };

        let mut profile = Vec::new();
        for fact in self.profile(p).await? {
            if budget.take(&format!("{}: {}", fact.kind, fact.value)).is_some() {
                profile.push(fact);
            }
        }

        let mut session = Vec::new();
        if let Some(id) = &req.session_id {
            let q = EpisodicListQuery { limit: Some(n_items as i64), include_summarised: Some(false) };
            for item in self.episodic.list(p, id, &q).await?.items {
                if let Some(tokens) = budget.take(&item.content) {
                    session.push(ContextItem { id: item.id.to_string(), text: item.content, tokens });
                }
            }
        }

        // Relevant (or newest) current memories, each content once.
        let candidates: Vec<(MemoryId, String)> = match &req.query {
            Some(q) => {
                let input = SearchInput {
                    query: q.clone(),
                    limit: Some(n_memories as i64),
                    filters: None,
                    mode: Some(SearchMode::Auto),
                    weights: None,
                    dedupe: Some(true),
                    as_of: None,
                    rerank: None,
                };
                let request = input.parse(None).map_err(DomainError::Validation)?;
                self.search.search(p, request).await?.results.into_iter().map(|r| (r.memory_id, r.content)).collect()
            }
            None => {
                let filter = MemoryFilter { states: vec![loci_core::MemoryState::Active], ..MemoryFilter::default() };
                let page = self.memories.list(p, filter, PageRequest { page: 1, size: n_memories as u64 }).await?;
                page.items.into_iter().map(|m| (m.memory.id, m.memory.content)).collect()
            }
        };
        let mut hashes: HashSet<String> = HashSet::new();
        let mut memories = Vec::new();
        for (id, text) in candidates {
            if !hashes.insert(loci_core::content_hash(&text)) {
                continue;
            }
            if let Some(tokens) = budget.take(&text) {
                memories.push(ContextItem { id: id.to_string(), text, tokens });
            }
        }
        let tokenizer = match self.search.count_tokens("") {
            Some(_) => self.search.embedder_info().map_or_else(|| "estimate".to_owned(), |(model, _)| model),
            None => "estimate".to_owned(),
        };
        Ok(ContextView {
            profile,
            session,
            memories,
            max_tokens,
            tokens_used: budget.used,
            tokenizer,
            truncated: budget.truncated,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_person_statements_become_facts() {
        let facts = profile_facts("Hi! My name is Dana Reyes. I work as a platform engineer, mostly on Kafka.");
        assert_eq!(facts, [("name", "Dana Reyes".to_owned()), ("role", "platform engineer".to_owned())]);
        assert_eq!(
            profile_facts("I prefer tabs over spaces; I live in Lisbon"),
            [("preference", "tabs over spaces".to_owned()), ("location", "Lisbon".to_owned())]
        );
        assert!(profile_facts("The enemy name is unknown. We like it.").is_empty(), "not inside words, not 'we'");
        assert!(profile_facts("I like to think that this sentence goes on and on for far too many words").is_empty());
    }
}
