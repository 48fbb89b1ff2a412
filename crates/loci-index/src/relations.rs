//! Typed relations between entities, found by fixed patterns: within one
//! sentence, two entities joined by exactly one of the phrases of
//! [`PATTERNS`] (`Alice works on Payments`, `Billing depends on Kafka`,
//! `Bob is the lead of Search`, `Solr was replaced by OpenSearch`). A
//! sentence that starts with such a phrase (`Depends on Kafka.`) takes the
//! memory's structured `entity` as its subject. Anything else between the two
//! names (another word, a comma, a negation) is no relation: precision over
//! recall, and the same text always gives the same relations.
//!
//! When relations hold is read from the memories that state them: a relation
//! is current from its first statement; for an [`Predicate::exclusive`]
//! predicate (one object at a time: where someone works, whom they report
//! to) it ends when a later memory states the same subject and predicate
//! with another object ([`fold_relations`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use loci_core::MemoryId;

use crate::IndexDoc;
use crate::extract::{ExtractedEntity, normalise};

/// Most relations recorded for one memory.
pub const MAX_RELATIONS_PER_DOC: usize = 64;

/// What a relation says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Predicate {
    WorksOn,
    WorksAt,
    WorksWith,
    Leads,
    Manages,
    ReportsTo,
    DependsOn,
    Uses,
    Owns,
    PartOf,
    Replaces,
}

impl Predicate {
    pub const ALL: [Predicate; 11] = [
        Self::WorksOn,
        Self::WorksAt,
        Self::WorksWith,
        Self::Leads,
        Self::Manages,
        Self::ReportsTo,
        Self::DependsOn,
        Self::Uses,
        Self::Owns,
        Self::PartOf,
        Self::Replaces,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::WorksOn => "works_on",
            Self::WorksAt => "works_at",
            Self::WorksWith => "works_with",
            Self::Leads => "leads",
            Self::Manages => "manages",
            Self::ReportsTo => "reports_to",
            Self::DependsOn => "depends_on",
            Self::Uses => "uses",
            Self::Owns => "owns",
            Self::PartOf => "part_of",
            Self::Replaces => "replaces",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == text)
    }

    /// A subject has one object of it at a time: a later statement with
    /// another object ends the earlier one.
    pub fn exclusive(self) -> bool {
        matches!(self, Self::WorksAt | Self::ReportsTo | Self::PartOf)
    }
}

/// The phrases between two names, lower case, articles at their end
/// dropped; `true` when the second name is the subject (passive voice).
pub const PATTERNS: &[(&str, Predicate, bool)] = &[
    ("works on", Predicate::WorksOn, false),
    ("worked on", Predicate::WorksOn, false),
    ("is working on", Predicate::WorksOn, false),
    ("works at", Predicate::WorksAt, false),
    ("worked at", Predicate::WorksAt, false),
    ("works for", Predicate::WorksAt, false),
    ("joined", Predicate::WorksAt, false),
    ("works with", Predicate::WorksWith, false),
    ("worked with", Predicate::WorksWith, false),
    ("leads", Predicate::Leads, false),
    ("is the lead of", Predicate::Leads, false),
    ("is the lead on", Predicate::Leads, false),
    ("is the lead for", Predicate::Leads, false),
    ("is lead of", Predicate::Leads, false),
    ("is led by", Predicate::Leads, true),
    ("manages", Predicate::Manages, false),
    ("is managed by", Predicate::Manages, true),
    ("reports to", Predicate::ReportsTo, false),
    ("depends on", Predicate::DependsOn, false),
    ("relies on", Predicate::DependsOn, false),
    ("requires", Predicate::DependsOn, false),
    ("uses", Predicate::Uses, false),
    ("is built on", Predicate::Uses, false),
    ("is used by", Predicate::Uses, true),
    ("owns", Predicate::Owns, false),
    ("maintains", Predicate::Owns, false),
    ("is the owner of", Predicate::Owns, false),
    ("is owned by", Predicate::Owns, true),
    ("is maintained by", Predicate::Owns, true),
    ("is part of", Predicate::PartOf, false),
    ("belongs to", Predicate::PartOf, false),
    ("replaced", Predicate::Replaces, false),
    ("replaces", Predicate::Replaces, false),
    ("was replaced by", Predicate::Replaces, true),
    ("is replaced by", Predicate::Replaces, true),
];

/// One relation a text states, between normalised entity names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtractedRelation {
    pub subject: String,
    pub predicate: Predicate,
    pub object: String,
}

/// `(predicate, passive)` of a phrase between two names.
fn pattern(words: &[String]) -> Option<(Predicate, bool)> {
    let mut words: Vec<&str> = words.iter().map(String::as_str).collect();
    while matches!(words.last(), Some(&("the" | "a" | "an"))) {
        words.pop();
    }
    if words.is_empty() {
        return None;
    }
    let phrase = words.join(" ");
    PATTERNS.iter().find(|(p, _, _)| *p == phrase).map(|(_, pred, passive)| (*pred, *passive))
}

/// Sentences: split at `.`, `!`, `?` and `;` followed by white space (or
/// the end), and at line breaks; so `v1.2` and `a.b` stay whole.
fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let next_is_space = chars.peek().is_none_or(|(_, n)| n.is_whitespace());
        if c == '\n' || (matches!(c, '.' | '!' | '?' | ';') && next_is_space) {
            out.push(&text[start..i + c.len_utf8()]);
            start = i + c.len_utf8();
        }
    }
    out.push(&text[start..]);
    out
}

/// A word as the patterns compare it: lower case, no wrapping punctuation.
fn plain(word: &str) -> String {
    word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase()
}

/// Longest name (in words) looked for.
const MAX_NAME_WORDS: usize = 6;

/// The relations `text` states between `entities` (normalised names known
/// for it), with `subject` (a structured entity) for sentences that start
/// with a pattern. In text order, each once, at most
/// [`MAX_RELATIONS_PER_DOC`].
pub fn extract_relations(text: &str, entities: &[ExtractedEntity], subject: Option<&str>) -> Vec<ExtractedRelation> {
    let names: BTreeSet<&str> = entities.iter().map(|e| e.name.as_str()).collect();
    let longest = entities.iter().map(|e| e.name.split(' ').count()).max().unwrap_or(1).min(MAX_NAME_WORDS);
    let mut out: Vec<ExtractedRelation> = Vec::new();
    let mut push = |subject: &str, predicate: Predicate, object: &str| {
        let r = ExtractedRelation { subject: subject.to_owned(), predicate, object: object.to_owned() };
        if r.subject != r.object && !out.contains(&r) && out.len() < MAX_RELATIONS_PER_DOC {
            out.push(r);
        }
    };
    for sentence in sentences(text) {
        let words: Vec<&str> = sentence.split_whitespace().collect();
        // Entity mentions as (first word, end word, name), longest first.
        let mut found: Vec<(usize, usize, String)> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let hit = (1..=longest.min(words.len() - i)).rev().find_map(|n| {
                normalise(&words[i..i + n].join(" ")).filter(|name| names.contains(name.as_str())).map(|name| (n, name))
            });
            match hit {
                Some((n, name)) => {
                    found.push((i, i + n, name));
                    i += n;
                }
                None => i += 1,
            }
        }
        // `Depends on Kafka.`: the words before the first name after the
        // sentence's start (a capitalised verb may itself read as a name).
        if let Some(subject) = subject {
            let led = found.iter().filter(|(start, _, _)| *start > 0).find_map(|(start, _, object)| {
                let lead: Vec<String> = words[..*start].iter().map(|w| plain(w)).collect();
                matches!(pattern(&lead), Some((_, false))).then(|| (pattern(&lead), object))
            });
            if let Some((Some((predicate, _)), object)) = led {
                push(subject, predicate, object);
            }
        }
        for pair in found.windows(2) {
            let ((_, a_end, a), (b_start, _, b)) = (&pair[0], &pair[1]);
            // Punctuation after the first name breaks the relation (a list, a clause).
            if words[*a_end - 1].ends_with([',', ':', '(', ')']) {
                continue;
            }
            let between: Vec<String> = words[*a_end..*b_start].iter().map(|w| plain(w)).collect();
            match pattern(&between) {
                Some((predicate, false)) => push(a, predicate, b),
                Some((predicate, true)) => push(b, predicate, a),
                None => {}
            }
        }
    }
    out
}

/// The relations a document records, between the entities it records.
pub fn doc_relations(doc: &IndexDoc, entities: &[ExtractedEntity]) -> Vec<ExtractedRelation> {
    let subject = doc.fields.entity.as_deref().and_then(normalise);
    extract_relations(&doc.content, entities, subject.as_deref())
}

/// One memory's statement of a relation, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationStatement {
    pub subject: String,
    pub predicate: Predicate,
    pub object: String,
    pub memory: MemoryId,
    pub stated_at: DateTime<Utc>,
}

/// A relation with when it held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub subject: String,
    pub predicate: Predicate,
    pub object: String,
    /// Memories stating it.
    pub memories: u64,
    /// Its first statement.
    pub valid_from: DateTime<Utc>,
    /// When a later statement of an exclusive predicate with another object
    /// ended it; `None` while current.
    pub valid_to: Option<DateTime<Utc>>,
}

/// Relations from their statements: one per (subject, predicate, object),
/// ended where an exclusive predicate's subject was later stated with
/// another object (and not restated since). Ordered current first, then
/// newest first, then by names.
/// `(subject, predicate, object)` borrowed from a statement.
type Triple<'a> = (&'a str, Predicate, &'a str);
/// When a subject was stated with which object.
type StatedObjects<'a> = Vec<(DateTime<Utc>, &'a str)>;
/// Statements of a triple: how many, first and last time.
type Stated = (u64, DateTime<Utc>, DateTime<Utc>);

pub fn fold_relations(statements: &[RelationStatement]) -> Vec<Relation> {
    let mut by_triple: BTreeMap<Triple<'_>, Stated> = BTreeMap::new();
    for s in statements {
        let slot = by_triple.entry((&s.subject, s.predicate, &s.object)).or_insert((0, s.stated_at, s.stated_at));
        slot.0 += 1;
        slot.1 = slot.1.min(s.stated_at);
        slot.2 = slot.2.max(s.stated_at);
    }
    // For exclusive predicates: every (time, object) a subject was stated with.
    let mut timeline: HashMap<(&str, Predicate), StatedObjects<'_>> = HashMap::new();
    for s in statements.iter().filter(|s| s.predicate.exclusive()) {
        timeline.entry((&s.subject, s.predicate)).or_default().push((s.stated_at, &s.object));
    }
    let mut out: Vec<Relation> = by_triple
        .into_iter()
        .map(|((subject, predicate, object), (memories, first, last))| {
            let valid_to = timeline.get(&(subject, predicate)).and_then(|times| {
                times.iter().filter(|(at, other)| *at > last && *other != object).map(|(at, _)| *at).min()
            });
            Relation {
                subject: subject.to_owned(),
                predicate,
                object: object.to_owned(),
                memories,
                valid_from: first,
                valid_to,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (a.valid_to.is_some(), std::cmp::Reverse(a.valid_from), &a.subject, a.predicate, &a.object).cmp(&(
            b.valid_to.is_some(),
            std::cmp::Reverse(b.valid_from),
            &b.subject,
            b.predicate,
            &b.object,
        ))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::extract_entities;

    fn relations(text: &str) -> Vec<(String, &'static str, String)> {
        extract_relations(text, &extract_entities(text), None)
            .into_iter()
            .map(|r| (r.subject, r.predicate.as_str(), r.object))
            .collect()
    }

    fn triple(s: &str, p: &'static str, o: &str) -> (String, &'static str, String) {
        (s.to_owned(), p, o.to_owned())
    }

    #[test]
    fn patterns_between_two_names_are_relations() {
        assert_eq!(relations("Alice works on Payments."), [triple("alice", "works_on", "payments")]);
        assert_eq!(
            relations("Billing depends on the Kafka Cluster; Alice is the lead of Search Platform."),
            [triple("billing", "depends_on", "kafka cluster"), triple("alice", "leads", "search platform")]
        );
        assert_eq!(relations("Solr was replaced by OpenSearch."), [triple("opensearch", "replaces", "solr")]);
        assert_eq!(relations("Then Bob joined Acme in May."), [triple("bob", "works_at", "acme")]);
    }

    #[test]
    fn anything_else_between_the_names_is_no_relation() {
        assert!(relations("Alice never works on Payments.").is_empty());
        assert!(relations("Alice, who works on Payments, left.").is_empty());
        assert!(relations("Alice met Bob. Works on Payments.").is_empty(), "no subject across sentences");
        assert!(relations("Alice and Bob work on Payments.").is_empty());
    }

    #[test]
    fn a_sentence_starting_with_a_pattern_takes_the_structured_entity() {
        let text = "Depends on Kafka and Postgres. Uses Redis.";
        let found: Vec<(String, &str, String)> = extract_relations(text, &extract_entities(text), Some("billing"))
            .into_iter()
            .map(|r| (r.subject, r.predicate.as_str(), r.object))
            .collect();
        assert_eq!(found, [triple("billing", "depends_on", "kafka"), triple("billing", "uses", "redis")]);
        assert!(extract_relations(text, &extract_entities(text), None).is_empty());
    }

    #[test]
    fn a_later_statement_ends_an_exclusive_relation_only() {
        let at = |d: u32| DateTime::<Utc>::from_timestamp(i64::from(d) * 86_400, 0).unwrap();
        let s = |subject: &str, predicate, object: &str, day| RelationStatement {
            subject: subject.into(),
            predicate,
            object: object.into(),
            memory: MemoryId::new(),
            stated_at: at(day),
        };
        let folded = fold_relations(&[
            s("alice", Predicate::WorksAt, "acme", 1),
            s("alice", Predicate::WorksOn, "search", 2),
            s("alice", Predicate::WorksAt, "globex", 5),
            s("alice", Predicate::WorksOn, "billing", 6),
            s("alice", Predicate::WorksAt, "acme", 3),
        ]);
        let view: Vec<(&str, &str, u64, Option<DateTime<Utc>>)> =
            folded.iter().map(|r| (r.predicate.as_str(), r.object.as_str(), r.memories, r.valid_to)).collect();
        assert_eq!(
            view,
            [
                ("works_on", "billing", 1, None),
                ("works_at", "globex", 1, None),
                ("works_on", "search", 1, None),
                ("works_at", "acme", 2, Some(at(5))),
            ],
            "acme ended when globex was stated; works_on is not exclusive"
        );
        assert_eq!(folded[3].valid_from, at(1));
    }
}
