//! The deterministic entity extractor: what a text mentions, found by fixed
//! rules (no model, no dictionary beyond the stop lists below), so that
//! indexing and querying always agree.
//!
//! Rules, applied to the whitespace-separated tokens of the text:
//! - **speaker**: a line that starts with one to three capitalised words and
//!   a colon (`Caroline: ...`) names a [`EntityKind::Person`];
//! - **name**: a run of capitalised words (`Caroline`, `New York`,
//!   `Melanie's` -> `melanie`) is a [`EntityKind::Term`]. Words that commonly
//!   start a sentence (`The`, `We`, `When`, ...) are dropped from the front of
//!   a run that starts a sentence, and never count alone; single letters never
//!   count, and weekdays and months alone are not entities. Without a speaker prefix the
//!   extractor cannot tell a person from a place, so names are terms;
//! - **identifier**: `snake_case`, `camelCase`, `PascalCase` with an inner
//!   capital, `dotted.paths` and `rust::paths`, and file paths
//!   (`src/foo.rs`, `/etc/hosts`) are [`EntityKind::Identifier`]s;
//! - **backticks**: a `` `span` `` is an identifier when it has no space and
//!   a term otherwise;
//! - **acronym**: an isolated all-capitals word of 2 to 8 characters (`RLS`,
//!   `JWT`) is a term.
//!
//! Names are normalised by [`normalise`]: wrapping punctuation trimmed, a
//! possessive `'s` stripped, spaces collapsed, lower-cased.

use crate::IndexDoc;

/// Most entities recorded for one memory (the structured one first, then in
/// order of first mention); bounds the pairs, and so the edges, per memory.
pub const MAX_ENTITIES_PER_DOC: usize = 64;
/// Most tokens of a query text looked at by `entities_in`.
pub const MAX_QUERY_TOKENS: usize = 256;
/// Most entities one `memories_mentioning` query uses.
pub const MAX_QUERY_ENTITIES: usize = 64;

/// The entities a document records: its structured `entity` field first,
/// then what [`extract_entities`] finds in its content (not its context: a
/// neighbouring turn's entities are not this memory's), one per name with
/// the highest kind, at most [`MAX_ENTITIES_PER_DOC`].
pub fn doc_entities(doc: &IndexDoc) -> Vec<ExtractedEntity> {
    let mut out: Vec<ExtractedEntity> = Vec::new();
    if let Some(raw) = doc.fields.entity.as_deref()
        && let Some(name) = normalise(raw)
    {
        out.push(ExtractedEntity { name, display: raw.trim().to_owned(), kind: EntityKind::Structured });
    }
    for entity in extract_entities(&doc.content) {
        match out.iter_mut().find(|e| e.name == entity.name) {
            Some(seen) => seen.kind = seen.kind.max(entity.kind),
            None => out.push(entity),
        }
    }
    out.truncate(MAX_ENTITIES_PER_DOC);
    out
}

/// The entities a batch of extractions creates, by normalised name after
/// following `aliases` (merged name -> entity): each with its highest kind
/// and the display name of its first mention under its own name. A mention
/// through a merged name shows the entity's name instead, so merging
/// "caroline" into "melanie" never makes "melanie" display as "Caroline".
pub fn batch_entities<'a>(
    mentions: impl IntoIterator<Item = &'a ExtractedEntity>,
    aliases: &std::collections::HashMap<String, String>,
) -> std::collections::BTreeMap<String, (String, EntityKind)> {
    let mut out: std::collections::BTreeMap<String, (String, EntityKind, bool)> = std::collections::BTreeMap::new();
    for e in mentions {
        let (key, merged) = match aliases.get(&e.name) {
            Some(target) => (target.clone(), true),
            None => (e.name.clone(), false),
        };
        let display = if merged { key.clone() } else { e.display.clone() };
        let slot = out.entry(key).or_insert_with(|| (display.clone(), e.kind, merged));
        if slot.2 && !merged {
            (slot.0, slot.2) = (display, false);
        }
        slot.1 = slot.1.max(e.kind);
    }
    out.into_iter().map(|(name, (display, kind, _))| (name, (display, kind))).collect()
}

/// What kind of thing an entity is, in increasing order of precedence: when
/// one name is found with several kinds, the highest wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EntityKind {
    /// A capitalised name, an acronym or a backticked phrase.
    Term,
    /// A code identifier or a file path.
    Identifier,
    /// A speaker (`Name: ...`).
    Person,
    /// The memory's structured `entity` field.
    Structured,
}

impl EntityKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Term => "term",
            Self::Identifier => "identifier",
            Self::Person => "person",
            Self::Structured => "structured",
        }
    }

    /// The kind a stored text names (`None` for an unknown one).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "term" => Some(Self::Term),
            "identifier" => Some(Self::Identifier),
            "person" => Some(Self::Person),
            "structured" => Some(Self::Structured),
            _ => None,
        }
    }
}

/// One entity a text mentions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtractedEntity {
    /// Normalised name (the key of the entity within its org).
    pub name: String,
    /// The name as first written in the text.
    pub display: String,
    pub kind: EntityKind,
}

/// Longest normalised name kept, in characters.
pub const MAX_NAME_CHARS: usize = 200;

/// Characters trimmed from the front of a token or name.
const LEADING: &[char] = &['"', '\'', '(', '[', '{', '`', '“', '‘', '«', '*'];
/// Characters trimmed from the end of a token or name.
const TRAILING: &[char] = &['"', '\'', ')', ']', '}', '`', '”', '’', '»', '*', ',', ';', ':', '!', '?', '.', '('];

/// Words that commonly start a sentence capitalised without naming anything;
/// dropped from the front of a capitalised run at the start of a sentence
/// (and never a speaker). Lower case.
const STARTERS: &[&str] = &[
    "a",
    "about",
    "above",
    "absolutely",
    "actually",
    "add",
    "after",
    "again",
    "ah",
    "ai",
    "all",
    "also",
    "although",
    "always",
    "am",
    "an",
    "and",
    "another",
    "answer",
    "any",
    "anyway",
    "are",
    "as",
    "assistant",
    "at",
    "avoid",
    "aw",
    "awesome",
    "be",
    "because",
    "been",
    "before",
    "being",
    "below",
    "besides",
    "between",
    "both",
    "bot",
    "but",
    "by",
    "can",
    "can't",
    "certainly",
    "check",
    "congrats",
    "congratulations",
    "could",
    "currently",
    "dear",
    "definitely",
    "did",
    "didn't",
    "do",
    "does",
    "doesn't",
    "don't",
    "done",
    "during",
    "each",
    "either",
    "else",
    "even",
    "eventually",
    "ever",
    "every",
    "everyone",
    "everything",
    "exactly",
    "finally",
    "first",
    "for",
    "from",
    "good",
    "got",
    "great",
    "had",
    "has",
    "have",
    "having",
    "he",
    "hello",
    "her",
    "here",
    "hers",
    "hey",
    "hi",
    "him",
    "his",
    "how",
    "however",
    "human",
    "i'd",
    "i'll",
    "i'm",
    "i've",
    "if",
    "in",
    "indeed",
    "instead",
    "into",
    "is",
    "isn't",
    "it",
    "its",
    "just",
    "last",
    "later",
    "let",
    "let's",
    "like",
    "lol",
    "make",
    "many",
    "may",
    "maybe",
    "me",
    "meanwhile",
    "might",
    "mine",
    "more",
    "moreover",
    "most",
    "much",
    "must",
    "my",
    "never",
    "next",
    "nice",
    "no",
    "none",
    "nope",
    "nor",
    "not",
    "note",
    "now",
    "of",
    "often",
    "oh",
    "ok",
    "okay",
    "on",
    "once",
    "one",
    "only",
    "or",
    "other",
    "otherwise",
    "our",
    "ours",
    "over",
    "overall",
    "per",
    "perhaps",
    "please",
    "prefer",
    "probably",
    "question",
    "rather",
    "really",
    "recently",
    "remember",
    "run",
    "same",
    "see",
    "set",
    "she",
    "should",
    "since",
    "so",
    "some",
    "something",
    "sometimes",
    "soon",
    "sorry",
    "still",
    "such",
    "summary",
    "sure",
    "system",
    "than",
    "thank",
    "thanks",
    "that",
    "the",
    "their",
    "theirs",
    "them",
    "then",
    "there",
    "therefore",
    "these",
    "they",
    "they're",
    "this",
    "those",
    "though",
    "through",
    "thus",
    "to",
    "today",
    "together",
    "tomorrow",
    "tonight",
    "too",
    "totally",
    "under",
    "unless",
    "until",
    "update",
    "us",
    "use",
    "user",
    "usually",
    "very",
    "via",
    "was",
    "wasn't",
    "we",
    "we're",
    "well",
    "were",
    "what",
    "whatever",
    "when",
    "whenever",
    "where",
    "whether",
    "which",
    "while",
    "who",
    "whom",
    "whose",
    "why",
    "will",
    "with",
    "without",
    "won't",
    "wow",
    "would",
    "yay",
    "yeah",
    "yep",
    "yes",
    "yesterday",
    "yet",
    "you",
    "you're",
    "your",
    "yours",
];

/// Capitalised words that are never an entity on their own.
const NEVER_ALONE: &[&str] = &[
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// The months, lower case (the last twelve of [`NEVER_ALONE`]); the date
/// reader of `algorithms` shares them.
pub(crate) const MONTH_NAMES: &[&str] = NEVER_ALONE.split_at(7).1;

/// All-capitals words that are not acronyms worth an entity.
const NOT_ACRONYMS: &[&str] = &["am", "asap", "fyi", "imo", "lol", "ok", "omg", "pm", "tbd", "todo", "wip"];

/// A run of non-whitespace characters of the text.
#[derive(Debug, Clone, Copy)]
struct Token<'a> {
    raw: &'a str,
    start: usize,
    /// A line break separates it from the previous token.
    newline_before: bool,
}

fn tokens(text: &str) -> Vec<Token<'_>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    let mut newline = false;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(Token { raw: &text[s..i], start: s, newline_before: newline });
                newline = false;
            }
            newline |= c == '\n';
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(Token { raw: &text[s..], start: s, newline_before: newline });
    }
    out
}

/// `token` split into leading punctuation, core and trailing punctuation.
fn split_wrapping(token: &str) -> (&str, &str, &str) {
    let core_start = token.len() - token.trim_start_matches(LEADING).len();
    let rest = &token[core_start..];
    let core = rest.trim_end_matches(TRAILING);
    (&token[..core_start], core, &rest[core.len()..])
}

/// `word` without a possessive `'s` (or a bare trailing apostrophe after
/// `s`), and whether it had one.
fn strip_possessive(word: &str) -> (&str, bool) {
    for suffix in ["'s", "’s", "'S", "’S"] {
        if let Some(stem) = word.strip_suffix(suffix).filter(|s| !s.is_empty()) {
            return (stem, true);
        }
    }
    for suffix in ["'", "’"] {
        if let Some(stem) = word.strip_suffix(suffix).filter(|s| s.ends_with(['s', 'S'])) {
            return (stem, true);
        }
    }
    (word, false)
}

/// The normalised form of a name: wrapping punctuation trimmed, possessive
/// stripped, whitespace collapsed, lower case; `None` when nothing is left
/// or it is longer than [`MAX_NAME_CHARS`].
pub fn normalise(text: &str) -> Option<String> {
    let trimmed = text.trim().trim_start_matches(LEADING).trim_end_matches(TRAILING);
    let (stem, _) = strip_possessive(trimmed);
    let stem = stem.trim_end_matches(TRAILING);
    let name = stem.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    (!name.is_empty() && name.chars().count() <= MAX_NAME_CHARS).then_some(name)
}

/// A capitalised word: an upper-case letter, then lower-case letters and
/// digits, with `-` or `'` joining parts that may start upper-case
/// (`Jean-Luc`, `O'Brien`). At least two characters.
fn is_capitalised(word: &str) -> bool {
    let mut chars = word.chars();
    let Some(first) = chars.next() else { return false };
    if !first.is_uppercase() || word.chars().count() < 2 {
        return false;
    }
    let mut after_joiner = false;
    for c in chars {
        if c == '-' || c == '\'' || c == '’' {
            if after_joiner {
                return false;
            }
            after_joiner = true;
        } else if c.is_lowercase() || c.is_numeric() || (after_joiner && c.is_uppercase()) {
            after_joiner = false;
        } else {
            return false;
        }
    }
    !after_joiner
}

fn is_ident_segment(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `snake_case` or `SCREAMING_SNAKE`: identifier characters with an
/// underscore between two letters or digits.
fn is_snake(word: &str) -> bool {
    let b = word.as_bytes();
    word.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && word.chars().any(|c| c.is_ascii_alphabetic())
        && (1..b.len().saturating_sub(1))
            .any(|i| b[i] == b'_' && b[i - 1].is_ascii_alphanumeric() && b[i + 1].is_ascii_alphanumeric())
}

/// `camelCase` (lower first, an upper inside) or `PascalCase` with an upper
/// after the first letter and at least one lower (`HashMap`, `PostgreSQL`).
fn is_mixed_case(word: &str) -> bool {
    let mut chars = word.chars();
    let Some(first) = chars.next() else { return false };
    if !first.is_ascii_alphabetic() || !word.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let inner_upper = word.chars().skip(1).any(|c| c.is_ascii_uppercase());
    let any_lower = word.chars().any(|c| c.is_ascii_lowercase());
    inner_upper && any_lower
}

/// `dotted.names` and `rust::paths`: two or more identifier segments, not
/// all of one letter (`e.g`), and not two sentences run together
/// (`home.Then`).
fn is_dotted(word: &str) -> bool {
    let sep = if word.contains("::") { "::" } else { "." };
    let segments: Vec<&str> = word.split(sep).collect();
    if segments.len() < 2 || !segments.iter().all(|s| is_ident_segment(s)) {
        return false;
    }
    if segments.iter().all(|s| s.len() == 1) {
        return false;
    }
    let lower_start = segments[0].chars().all(|c| c.is_ascii_lowercase());
    !(sep == "." && lower_start && segments[1..].iter().any(|s| is_capitalised(s)))
}

/// A file path: slash-separated segments of path characters, anchored
/// (`/x`, `./x`, `~/x`), ending in a file extension, or three segments deep.
fn is_path(word: &str) -> bool {
    if !word.contains('/') || word.contains("://") || !word.chars().any(|c| c.is_alphabetic()) {
        return false;
    }
    let body = word.strip_suffix('/').unwrap_or(word);
    let path_char = |c: char| c.is_alphanumeric() || matches!(c, '_' | '.' | '-' | '~' | '@' | '+');
    let segments: Vec<&str> = body.split('/').collect();
    let (first, rest) = match segments.split_first() {
        Some((first, rest)) if !rest.is_empty() => (*first, rest),
        _ => return false,
    };
    if !rest.iter().all(|s| !s.is_empty() && s.chars().all(path_char)) || !first.chars().all(path_char) {
        return false;
    }
    let anchored = matches!(first, "" | "." | ".." | "~");
    let has_extension = rest.last().and_then(|last| last.rsplit_once('.')).is_some_and(|(stem, ext)| {
        !stem.is_empty()
            && (1..=6).contains(&ext.len())
            && ext.chars().all(|c| c.is_ascii_alphanumeric())
            && ext.chars().any(|c| c.is_ascii_alphabetic())
    });
    anchored || has_extension || segments.len() >= 3
}

fn is_identifier(word: &str) -> bool {
    is_path(word) || is_dotted(word) || is_snake(word) || is_mixed_case(word)
}

fn is_all_caps(word: &str) -> bool {
    word.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        && word.chars().filter(|c| c.is_ascii_uppercase()).count() >= 2
}

fn is_acronym(word: &str) -> bool {
    (2..=8).contains(&word.len()) && is_all_caps(word) && !NOT_ACRONYMS.contains(&word.to_lowercase().as_str())
}

/// The one-word phrases of the relation patterns (`Uses Redis.`, `Leads
/// Search.`): verbs, so starters too.
const RELATION_VERBS: &[&str] = &[
    "belongs",
    "depends",
    "joined",
    "leads",
    "maintains",
    "manages",
    "owns",
    "relies",
    "replaced",
    "replaces",
    "reports",
    "requires",
    "uses",
    "works",
    "worked",
];

fn is_starter(word: &str) -> bool {
    let word = word.to_lowercase();
    STARTERS.contains(&word.as_str()) || RELATION_VERBS.contains(&word.as_str())
}

/// Collects found entities with their position in the text.
#[derive(Debug, Default)]
struct Found(Vec<(usize, ExtractedEntity)>);

impl Found {
    fn add(&mut self, pos: usize, display: &str, kind: EntityKind) {
        if let Some(name) = normalise(display) {
            let display = display.trim().trim_start_matches(LEADING).trim_end_matches(TRAILING);
            let display = strip_possessive(display).0.split_whitespace().collect::<Vec<_>>().join(" ");
            self.0.push((pos, ExtractedEntity { name, display, kind }));
        }
    }

    /// One entity per name, in order of first mention, with the highest
    /// kind it was found with.
    fn finish(mut self) -> Vec<ExtractedEntity> {
        self.0.sort_by_key(|(pos, _)| *pos);
        let mut out: Vec<ExtractedEntity> = Vec::new();
        for (_, entity) in self.0 {
            match out.iter_mut().find(|e| e.name == entity.name) {
                Some(seen) => seen.kind = seen.kind.max(entity.kind),
                None => out.push(entity),
            }
        }
        out
    }
}

/// Whether the token starts a sentence: first of the text or of a line,
/// after a token ending a sentence or clause (`.`, `!`, `?`, `:`, `;`), or
/// opening a quotation or parenthesis.
fn starts_sentence(tokens: &[Token<'_>], i: usize) -> bool {
    let Some(tok) = tokens.get(i) else { return false };
    if i == 0 || tok.newline_before || tok.raw.starts_with(['"', '“', '‘', '(', '\'', '«']) {
        return true;
    }
    let prev = tokens[i - 1].raw.trim_end_matches(['"', '\'', ')', ']', '}', '”', '’', '»', '*']);
    prev.ends_with(['.', '!', '?', ':', ';']) || prev.chars().all(|c| matches!(c, '-' | '–' | '—'))
}

/// Speakers: a line starting with one to three capitalised words and a colon.
fn speakers(text: &str, found: &mut Found) {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let indent = line.len() - line.trim_start().len();
        let body = &line[indent..];
        if let Some((head, tail)) = body.split_once(':')
            && (tail.is_empty() || tail.starts_with(char::is_whitespace))
        {
            let words: Vec<&str> = head.split(' ').collect();
            if (1..=3).contains(&words.len())
                && words.iter().all(|w| is_capitalised(w))
                && !is_starter(words[0])
                && !(words.len() == 1 && NEVER_ALONE.contains(&words[0].to_lowercase().as_str()))
            {
                found.add(offset + indent, head, EntityKind::Person);
            }
        }
        offset += line.len();
    }
}

/// Capitalised runs (names) and isolated acronyms.
fn names(tokens: &[Token<'_>], found: &mut Found) {
    let mut run: Vec<(usize, &str)> = Vec::new();
    let mut run_initial = false;
    let flush = |run: &mut Vec<(usize, &str)>, initial: bool, found: &mut Found| {
        let mut words: &[(usize, &str)] = run;
        // At the start of a sentence every leading starter goes (`When
        // Caroline` -> `Caroline`); inside one only a starter standing alone
        // (`..., We talked`), so `visited The Hague` keeps its article.
        if initial || words.len() == 1 {
            while let Some(((_, w), rest)) = words.split_first()
                && is_starter(w)
            {
                words = rest;
            }
        }
        let single_never = words.len() == 1 && NEVER_ALONE.contains(&words[0].1.to_lowercase().as_str());
        if let Some((pos, _)) = words.first()
            && !single_never
        {
            let display = words.iter().map(|(_, w)| *w).collect::<Vec<_>>().join(" ");
            found.add(*pos, &display, EntityKind::Term);
        }
        run.clear();
    };
    for (i, tok) in tokens.iter().enumerate() {
        let initial = starts_sentence(tokens, i);
        let (lead, core, trail) = split_wrapping(tok.raw);
        let (word, possessive) = strip_possessive(core);
        let capitalised = is_capitalised(word);
        if !capitalised || initial || !lead.is_empty() {
            flush(&mut run, run_initial, found);
        }
        if capitalised {
            if run.is_empty() {
                run_initial = initial;
            }
            run.push((tok.start + lead.len(), word));
        } else if is_acronym(word) {
            let caps_near = |j: Option<usize>| {
                j.and_then(|j| tokens.get(j)).is_some_and(|t| is_all_caps(strip_possessive(split_wrapping(t.raw).1).0))
            };
            if !caps_near(i.checked_sub(1)) && !caps_near(i.checked_add(1)) {
                found.add(tok.start + lead.len(), word, EntityKind::Term);
            }
        }
        if !trail.is_empty() || possessive {
            flush(&mut run, run_initial, found);
        }
    }
    flush(&mut run, run_initial, found);
}

/// Code identifiers and file paths.
fn identifiers(tokens: &[Token<'_>], found: &mut Found) {
    for tok in tokens {
        let (lead, core, _) = split_wrapping(tok.raw);
        let (word, _) = strip_possessive(core);
        if word.contains("://") || word.contains('@') {
            continue;
        }
        if is_identifier(word) {
            found.add(tok.start + lead.len(), word, EntityKind::Identifier);
        }
    }
}

/// `` `spans` `` (single backticks; runs of two or more, as in code fences,
/// are not delimiters).
fn backticked(text: &str, found: &mut Found) {
    let bytes = text.as_bytes();
    let is_tick =
        |i: usize| bytes.get(i) == Some(&b'`') && (i == 0 || bytes[i - 1] != b'`') && bytes.get(i + 1) != Some(&b'`');
    let ticks: Vec<usize> = (0..bytes.len()).filter(|&i| is_tick(i)).collect();
    for pair in ticks.chunks_exact(2) {
        let (open, close) = (pair[0], pair[1]);
        let inner = &text[open + 1..close];
        let trimmed = inner.trim();
        if trimmed.is_empty() || trimmed.contains('\n') || trimmed.chars().count() > MAX_NAME_CHARS {
            continue;
        }
        let kind = if trimmed.contains(char::is_whitespace) { EntityKind::Term } else { EntityKind::Identifier };
        found.add(open + 1, trimmed, kind);
    }
}

/// The entities `text` mentions, one per normalised name, in order of first
/// mention (see the module documentation for the rules).
pub fn extract_entities(text: &str) -> Vec<ExtractedEntity> {
    let toks = tokens(text);
    let mut found = Found::default();
    speakers(text, &mut found);
    names(&toks, &mut found);
    identifiers(&toks, &mut found);
    backticked(text, &mut found);
    found.finish()
}

/// Candidate entity names of a query: every run of one to three tokens,
/// normalised, in text order, then what [`extract_entities`] finds (for
/// longer names); without duplicates.
pub fn query_candidates(text: &str, max_tokens: usize) -> Vec<String> {
    let words: Vec<String> = tokens(text).iter().filter_map(|t| normalise(t.raw)).take(max_tokens).collect();
    let mut out: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for i in 0..words.len() {
        for n in 1..=3 {
            if let Some(gram) = words.get(i..i + n)
                && let Some(name) = normalise(&gram.join(" "))
                && seen.insert(name.clone())
            {
                out.push(name);
            }
        }
    }
    for entity in extract_entities(text) {
        if seen.insert(entity.name.clone()) {
            out.push(entity.name);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_of(text: &str) -> Vec<(String, EntityKind)> {
        extract_entities(text).into_iter().map(|e| (e.name, e.kind)).collect()
    }

    #[test]
    fn extraction_table() {
        use EntityKind::{Identifier as I, Person as P, Term as T};
        let cases: &[(&str, &[(&str, EntityKind)])] = &[
            ("", &[]),
            ("nothing to see here", &[]),
            ("Caroline went to the park.", &[("caroline", T)]),
            ("I met Caroline in New York yesterday.", &[("caroline", T), ("new york", T)]),
            ("Melanie's kids love painting.", &[("melanie", T)]),
            ("The meeting is on Monday with Bob.", &[("bob", T)]),
            ("When Caroline called, We talked.", &[("caroline", T)]),
            ("Caroline: I went to a support group", &[("caroline", P)]),
            ("Note: call the bank", &[]),
            ("Caroline: hi\nMelanie Smith: hello Caroline", &[("caroline", P), ("melanie smith", P)]),
            ("rename user_id to account_id", &[("user_id", I), ("account_id", I)]),
            ("call getUser from the HashMap", &[("getuser", I), ("hashmap", I)]),
            ("see src/foo.rs and docs/API.md.", &[("src/foo.rs", I), ("docs/api.md", I)]),
            ("use std::collections::BTreeMap here", &[("std::collections::btreemap", I)]),
            ("config lives in settings.toml, e.g. here", &[("settings.toml", I)]),
            ("run `cargo test` then `make_it`", &[("cargo test", T), ("make_it", I)]),
            ("we enforce RLS on every table", &[("rls", T)]),
            ("DO NOT DEPLOY ON FRIDAY", &[]),
            ("and/or 24/7 https://example.com/a/b.rs", &[]),
            ("A B C", &[]),
            ("\"Hello,\" said Jean-Luc O'Brien.", &[("jean-luc o'brien", T)]),
            ("She moved to Zürich.", &[("zürich", T)]),
        ];
        for (text, want) in cases {
            let want: Vec<(String, EntityKind)> = want.iter().map(|(n, k)| ((*n).to_owned(), *k)).collect();
            assert_eq!(names_of(text), want, "{text:?}");
        }
    }

    #[test]
    fn display_keeps_the_written_form() {
        let found = extract_entities("We visited New York with Melanie's sister.");
        let displays: Vec<&str> = found.iter().map(|e| e.display.as_str()).collect();
        assert_eq!(displays, ["New York", "Melanie"]);
    }

    #[test]
    fn extraction_is_deterministic() {
        let text = "Caroline: Bob and Alice fixed src/db.rs in `TenantTx` with Melanie.";
        assert_eq!(extract_entities(text), extract_entities(text));
    }

    #[test]
    fn normalise_table() {
        for (raw, want) in [
            ("  Caroline ", Some("caroline")),
            ("Melanie's", Some("melanie")),
            ("James'", Some("james")),
            ("\"New   York\",", Some("new york")),
            ("(src/foo.rs).", Some("src/foo.rs")),
            ("`x`", Some("x")),
            ("...", None),
            ("", None),
        ] {
            assert_eq!(normalise(raw).as_deref(), want, "{raw:?}");
        }
        assert_eq!(normalise(&"x".repeat(MAX_NAME_CHARS + 1)), None);
    }

    #[test]
    fn query_candidates_are_ngrams_and_extracted_names() {
        let got = query_candidates("what did caroline's friend say?", 100);
        assert!(got.contains(&"caroline".to_owned()), "{got:?}");
        assert!(got.contains(&"did caroline friend".to_owned()), "{got:?}");
        assert!(got.contains(&"say".to_owned()), "{got:?}");
        assert_eq!(query_candidates("a b c d", 2), ["a", "a b", "b"]);
    }

    #[test]
    fn a_batch_shows_entities_by_their_own_names() {
        let m = |name: &str, display: &str, kind| ExtractedEntity { name: name.into(), display: display.into(), kind };
        let aliases = std::collections::HashMap::from([("caroline".to_owned(), "melanie".to_owned())]);
        let batch = [
            m("caroline", "Caroline", EntityKind::Person),
            m("melanie", "Melanie", EntityKind::Term),
            m("zoe", "Zoe", EntityKind::Term),
            m("zoe", "ZOE", EntityKind::Identifier),
        ];
        let out = batch_entities(&batch, &aliases);
        assert_eq!(out["melanie"], ("Melanie".to_owned(), EntityKind::Person), "its own display, the highest kind");
        assert_eq!(out["zoe"], ("Zoe".to_owned(), EntityKind::Identifier), "the first display");
        let only_merged = batch_entities(&batch[..1], &aliases);
        assert_eq!(only_merged["melanie"].0, "melanie", "a merged name never becomes the display");
        assert!(!out.contains_key("caroline"));
    }
}
