//! The local (no LLM) side of fact inference: a conversation becomes atomic
//! facts, and a fact's subject, attribute and value are read from fixed
//! patterns, deterministically.
//!
//! - Messages are split into sentences (Unicode sentence boundaries), then
//!   into clauses at `;` and at a conjunction followed by a new subject
//!   ("I live in Berlin and I work at SAP" is two facts, "I like tea and
//!   cake" one).
//! - Questions and small talk ("Thanks!", "Wow, that's great") are not
//!   facts. Assistant, system and tool messages are skipped unless they name
//!   their speaker (a multi-party conversation).
//! - Speaker attribution: in a conversation whose messages name their
//!   speakers, a first-person statement is rewritten about its speaker ("I
//!   live in Boston" by Caroline -> "Caroline lives in Boston"), and a
//!   statement that does not name its speaker gets the name in front, so
//!   every fact stands on its own. Unnamed messages keep the first person
//!   (the caller's own facts).
//! - Retractions: "I no longer live in Berlin", "I don't work at Google
//!   anymore", "We stopped using Jenkins" and "Forget that I like sushi"
//!   carry the positive statement they end, which is what gets matched.

use std::sync::LazyLock;

use regex::Regex;
use unicode_segmentation::UnicodeSegmentation;

type Pattern = LazyLock<Option<Regex>>;

// Every pattern is a constant exercised by the unit tests below; one that
// did not compile would match nothing rather than fail a request.
fn captures<'t>(pattern: &Pattern, text: &'t str) -> Option<regex::Captures<'t>> {
    pattern.as_ref()?.captures(text)
}

fn find<'t>(pattern: &Pattern, text: &'t str) -> Option<regex::Match<'t>> {
    pattern.as_ref()?.find(text)
}

/// One message of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Turn<'a> {
    /// `user`, `assistant`, `system`, `tool`...
    pub role: &'a str,
    /// Who said it, when the conversation names its speakers.
    pub speaker: Option<&'a str>,
    pub content: &'a str,
    /// The client's id of the message, kept as the fact's evidence.
    pub id: Option<&'a str>,
}

/// What a fact says about what is already known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactKind {
    /// Something true now.
    Statement,
    /// Ends what `positive` states ("I no longer live in Berlin" ends "I live
    /// in Berlin"); kept as a statement when nothing known matches.
    Negation { positive: String },
    /// An explicit request to forget what `target` states.
    Forget { target: String },
}

/// An atomic fact taken from the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    /// The text to store (speaker attributed, first letter capitalised, no
    /// trailing punctuation).
    pub text: String,
    pub speaker: Option<String>,
    /// Ids of the messages it came from.
    pub evidence: Vec<String>,
    pub kind: FactKind,
    /// The text whose subject and attribute identify what the fact is about
    /// (the positive statement of a negation).
    pub key: Option<FactKey>,
}

/// What a fact is about and what it says: "Caroline lives in Boston" is
/// (`caroline`, `location`, `boston`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FactKey {
    pub subject: String,
    pub attribute: String,
    pub value: String,
}

/// Roles whose unnamed messages are not facts about anyone.
const NON_USER_ROLES: &[&str] = &["assistant", "system", "tool", "function", "developer"];

/// Facts of `turns`, in input order. A conversation names its speakers when
/// any message has a `speaker`.
pub fn extract(turns: &[Turn<'_>]) -> Vec<Fact> {
    let mut facts = Vec::new();
    for turn in turns {
        if turn.speaker.is_none() && NON_USER_ROLES.contains(&turn.role.to_ascii_lowercase().as_str()) {
            continue;
        }
        let speaker = turn.speaker.map(str::trim).filter(|s| !s.is_empty());
        for sentence in turn.content.unicode_sentences() {
            for clause in clauses(sentence) {
                if let Some(fact) = fact_of(clause, speaker, turn.id) {
                    facts.push(fact);
                }
            }
        }
    }
    facts
}

/// One clause as a fact, or `None` for a question or small talk.
fn fact_of(clause: &str, speaker: Option<&str>, id: Option<&str>) -> Option<Fact> {
    let trimmed = clause.trim();
    if trimmed.ends_with('?') {
        return None;
    }
    let core = strip_lead_ins(trimmed.trim_end_matches(|c: char| ".!,;: \u{2026}".contains(c)));
    if !has_content(core) {
        return None;
    }
    let kind = retraction_of(core);
    let keyed = match &kind {
        FactKind::Statement => core,
        FactKind::Negation { positive } | FactKind::Forget { target: positive } => positive.as_str(),
    };
    let key = key_of(keyed, speaker);
    let text = capitalise(&match speaker {
        Some(name) => attribute_to(core, name),
        None => core.to_owned(),
    });
    let kind = match (kind, speaker) {
        (FactKind::Negation { positive }, Some(name)) => FactKind::Negation { positive: attribute_to(&positive, name) },
        (FactKind::Forget { target }, Some(name)) => FactKind::Forget { target: attribute_to(&target, name) },
        (kind, _) => kind,
    };
    Some(Fact {
        text,
        speaker: speaker.map(str::to_owned),
        evidence: id.map(|i| vec![i.to_owned()]).unwrap_or_default(),
        kind,
        key,
    })
}

static CLAUSE_BREAK: Pattern =
    LazyLock::new(|| Regex::new(r"(?i)\s*;\s*|,?\s+\b(?:and|but|so|although|though|whereas|while)\s+").ok());

/// Words that open a new clause after a conjunction.
const SUBJECTS: &[&str] = &["i", "i'm", "i've", "i'd", "i'll", "we", "we're", "he", "she", "they", "my", "our"];

/// Words skipped between a conjunction and the subject after it.
const ADVERBS: &[&str] = &["now", "then", "also", "still", "actually", "recently", "lately", "today", "currently"];

/// `sentence` cut at `;` and at a conjunction followed by a new subject.
fn clauses(sentence: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for m in CLAUSE_BREAK.iter().flat_map(|r| r.find_iter(sentence)) {
        let rest = &sentence[m.end()..];
        // The subject may follow an adverb: "..., but now I live in Paris".
        let next = rest
            .split_whitespace()
            .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\''))
            .find(|w| !ADVERBS.contains(&w.to_lowercase().as_str()))
            .unwrap_or("");
        let is_semicolon = m.as_str().contains(';');
        if is_semicolon || SUBJECTS.contains(&next.to_lowercase().as_str()) {
            out.push(&sentence[start..m.start()]);
            start = m.end();
        }
    }
    out.push(&sentence[start..]);
    out.into_iter().filter(|c| !c.trim().is_empty()).collect()
}

static LEAD_IN: Pattern = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:(?:and|but|so|also|well|oh|ah|actually|btw|by the way|anyway|yeah|yes|no|ok|okay|um|hmm|hey|hi|hello|sure|plus|then|now|just so you know|fyi|note that|remember that|please remember that|remember)\b[,:!]?\s*)+",
    )
    .ok()
});

fn strip_lead_ins(clause: &str) -> &str {
    match find(&LEAD_IN, clause) {
        // "No longer ..." keeps its "no".
        Some(m) if !clause[m.end()..].to_lowercase().starts_with("longer") => clause[m.end()..].trim(),
        _ => clause.trim(),
    }
}

/// Words that carry no fact on their own: function words, greetings,
/// reactions.
const FILLER: &[&str] = &[
    "a",
    "an",
    "the",
    "i",
    "i'm",
    "im",
    "me",
    "my",
    "you",
    "you're",
    "your",
    "we",
    "us",
    "our",
    "it",
    "it's",
    "its",
    "that",
    "that's",
    "this",
    "these",
    "those",
    "there",
    "here",
    "is",
    "am",
    "are",
    "was",
    "were",
    "be",
    "been",
    "so",
    "very",
    "really",
    "too",
    "just",
    "much",
    "such",
    "what",
    "how",
    "oh",
    "wow",
    "great",
    "good",
    "nice",
    "cool",
    "awesome",
    "amazing",
    "lovely",
    "wonderful",
    "fantastic",
    "thanks",
    "thank",
    "ok",
    "okay",
    "yes",
    "yeah",
    "yep",
    "no",
    "nope",
    "sure",
    "hi",
    "hello",
    "hey",
    "bye",
    "goodbye",
    "lol",
    "haha",
    "hahaha",
    "sounds",
    "sound",
    "glad",
    "happy",
    "hear",
    "to",
    "for",
    "of",
    "and",
    "but",
    "or",
    "all",
    "agree",
    "totally",
    "absolutely",
    "definitely",
    "indeed",
    "right",
    "true",
    "exactly",
    "welcome",
    "cheers",
    "see",
    "later",
    "soon",
    "take",
    "care",
    "love",
    "it!",
    "fun",
    "same",
    "too!",
    "congrats",
    "congratulations",
    "well",
    "done",
    "do",
    "did",
    "does",
    "have",
    "has",
    "had",
    "can",
    "could",
    "would",
    "will",
    "should",
    "get",
    "got",
    "know",
    "mean",
    "guess",
    "think",
    "pretty",
    "quite",
    "not",
    "with",
    "in",
    "on",
    "at",
    "by",
    "up",
    "out",
    "about",
    "again",
    "anyway",
    "alright",
    "awww",
    "aww",
    "omg",
    "hmm",
    "um",
    "uh",
    "ah",
];

/// Whether `clause` says something: at least two words, one of them not
/// filler.
fn has_content(clause: &str) -> bool {
    let words: Vec<String> = clause
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'').to_lowercase())
        .filter(|w| !w.is_empty())
        .collect();
    words.len() >= 2 && words.iter().any(|w| !FILLER.contains(&w.as_str()))
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

static FORGET: Pattern = LazyLock::new(|| {
    Regex::new(
        r"(?i)^(?:please\s+)?(?:forget|disregard|delete|remove)\s+(?:that\s+|about\s+|the\s+fact\s+that\s+)?(.+)$",
    )
    .ok()
});
static NO_LONGER: Pattern = LazyLock::new(|| Regex::new(r"(?i)\s+no\s+longer\s+").ok());
static NOT_ANYMORE: Pattern = LazyLock::new(|| {
    Regex::new(r"(?i)^(.*?)\b(?:don't|do not|doesn't|does not|dont|am not|'m not|is not|isn't|are not|aren't|'re not)\s+(.+?)\s+(?:anymore|any more|any longer)$")
        .ok()
});
static USED_TO: Pattern = LazyLock::new(|| Regex::new(r"(?i)^(.*?)\b(?:used to|didn't use to)\s+(.+)$").ok());
static STOPPED: Pattern =
    LazyLock::new(|| Regex::new(r"(?i)^(.*?)\b(?:stopped|quit|gave up|have stopped|'ve stopped)\s+(.+)$").ok());

/// Whether `clause` ends something known, and the positive statement it
/// ends.
pub fn retraction_of(clause: &str) -> FactKind {
    if let Some(c) = captures(&FORGET, clause) {
        return FactKind::Forget { target: c[1].trim().to_owned() };
    }
    if let Some(m) = find(&NO_LONGER, clause) {
        return FactKind::Negation { positive: format!("{} {}", &clause[..m.start()], &clause[m.end()..]) };
    }
    if let Some(c) = captures(&NOT_ANYMORE, clause) {
        let subject = c[1].trim();
        let negated = &clause[c.get(1).map_or(0, |m| m.end())..c.get(2).map_or(0, |m| m.start())].to_lowercase();
        // "I'm not vegan anymore" -> "I'm vegan"; "I don't work at X anymore" -> "I work at X".
        let copula = if negated.contains("am not") || negated.contains("'m not") {
            " am "
        } else if negated.contains("is") {
            " is "
        } else if negated.contains("are") || negated.contains("'re") {
            " are "
        } else {
            " "
        };
        let subject = if subject.is_empty() { "I" } else { subject };
        return FactKind::Negation { positive: format!("{subject}{copula}{}", c[2].trim()).trim().to_owned() };
    }
    if let Some(c) = captures(&USED_TO, clause) {
        let subject = c[1].trim();
        let subject = if subject.is_empty() { "I" } else { subject };
        return FactKind::Negation { positive: format!("{subject} {}", c[2].trim()) };
    }
    if let Some(c) = captures(&STOPPED, clause) {
        let subject = c[1].trim();
        let subject = if subject.is_empty() { "I" } else { subject };
        return FactKind::Negation { positive: format!("{subject} {}", c[2].trim()) };
    }
    FactKind::Statement
}

/// First-person words and what they become about a named speaker.
fn third_person(word: &str, name: &str) -> Option<String> {
    Some(match word {
        "I" | "i" | "me" | "Me" | "myself" | "Myself" => name.to_owned(),
        "my" | "My" | "mine" | "Mine" => format!("{name}'s"),
        "I'm" | "i'm" | "I’m" => format!("{name} is"),
        "I've" | "i've" | "I’ve" => format!("{name} has"),
        "I'll" | "i'll" | "I’ll" => format!("{name} will"),
        "I'd" | "i'd" | "I’d" => format!("{name} would"),
        _ => return None,
    })
}

/// Verbs that follow "I" and their third-person form.
fn agreeing(verb: &str) -> Option<&'static str> {
    Some(match verb {
        "am" => "is",
        "have" => "has",
        "do" => "does",
        "don't" => "doesn't",
        "go" => "goes",
        "live" => "lives",
        "work" => "works",
        "like" => "likes",
        "love" => "loves",
        "want" => "wants",
        "need" => "needs",
        "prefer" => "prefers",
        "use" => "uses",
        "think" => "thinks",
        "feel" => "feels",
        "know" => "knows",
        "plan" => "plans",
        "hope" => "hopes",
        "enjoy" => "enjoys",
        "play" => "plays",
        "own" => "owns",
        "study" => "studies",
        "teach" => "teaches",
        "paint" => "paints",
        "write" => "writes",
        "read" => "reads",
        "run" => "runs",
        "volunteer" => "volunteers",
        "hate" => "hates",
        "believe" => "believes",
        "try" => "tries",
        "make" => "makes",
        "keep" => "keeps",
        "collect" => "collects",
        "cook" => "cooks",
        _ => return None,
    })
}

/// `clause` about `name`: first-person words rewritten, and the name in
/// front when the clause does not mention it.
pub fn attribute_to(clause: &str, name: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut after_subject = false;
    for raw in clause.split_whitespace() {
        let word = raw.trim_end_matches(|c: char| ",.;:!".contains(c));
        let tail = &raw[word.len()..];
        if after_subject && let Some(v) = agreeing(&word.to_lowercase()) {
            out.push(format!("{v}{tail}"));
            after_subject = false;
            continue;
        }
        after_subject = false;
        match third_person(word, name) {
            Some(rewritten) => {
                after_subject = matches!(word, "I" | "i");
                out.push(format!("{rewritten}{tail}"));
            }
            None => out.push(raw.to_owned()),
        }
    }
    let text = out.join(" ");
    if text.to_lowercase().contains(&name.to_lowercase()) { text } else { format!("{name}: {text}") }
}

static POSSESSIVE: Pattern = LazyLock::new(|| {
    Regex::new(r"^(my|our|his|her|their|[\p{L}][\p{L}\-]*'s)\s+(.{1,48}?)\s+(?:is|are|was|were|has been|have been)\s+(?:now\s+|currently\s+|still\s+)?(.+)$")
        .ok()
});
static THE_IS: Pattern =
    LazyLock::new(|| Regex::new(r"^the\s+(.{1,48}?)\s+(?:is|are)\s+(?:now\s+|currently\s+|still\s+)?(.+)$").ok());
static SUBJECT_VERB: Pattern = LazyLock::new(|| {
    Regex::new(r"^(i|we|he|she|they|[\p{L}][\p{L}\-]*)\s+(?:now\s+|currently\s+|still\s+)?(.+)$").ok()
});
static LOCATION: Pattern = LazyLock::new(|| {
    Regex::new(r"^(?:live|lives|am living|is living|are living|reside|resides|am based|is based|are based|'m based|'m living)\s+in\s+(.+)$|^(?:moved|have moved|has moved|relocated|am moving|is moving|'m moving)\s+to\s+(.+)$")
        .ok()
});
static EMPLOYER: Pattern = LazyLock::new(|| {
    Regex::new(r"^(?:work|works|am working|is working|'m working|are working)\s+(?:at|for)\s+(.+)$|^(?:joined|have joined|has joined|started at|started working at|started working for)\s+(.+)$")
        .ok()
});
static OCCUPATION: Pattern =
    LazyLock::new(|| Regex::new(r"^(?:work|works|am working|is working|'m working)\s+as\s+(?:an?\s+)?(.+)$").ok());
static TOOL_FOR: Pattern = LazyLock::new(|| {
    Regex::new(r"^(?:use|uses|are using|'re using|is using|am using|switched to|have switched to|migrated to|moved to|standardised on|standardized on|rely on|relies on)\s+(.+?)\s+for\s+(.+)$")
        .ok()
});
static PREFER_FOR: Pattern = LazyLock::new(|| Regex::new(r"^(?:prefer|prefers)\s+(.+?)\s+(?:for|when)\s+(.+)$").ok());
static AGE: Pattern = LazyLock::new(|| Regex::new(r"^(?:am|is|'m)\s+(\d{1,3})(?:\s+years?\s+old)?$").ok());
static NAME: Pattern = LazyLock::new(|| Regex::new(r"^(?:go by|am called|is called)\s+(.+)$").ok());

/// The subject, attribute and value of `statement`, when it has one of the
/// fixed shapes; first-person subjects are `speaker` (or `i`).
pub fn key_of(statement: &str, speaker: Option<&str>) -> Option<FactKey> {
    let text = statement.trim().trim_end_matches(|c: char| ".!,;:".contains(c)).replace('’', "'").to_lowercase();
    let text = without_time_lead(&text);
    let me = speaker.map_or_else(|| "i".to_owned(), str::to_lowercase);
    let subject_of = |word: &str| -> String {
        match word {
            "i" | "me" | "my" => me.clone(),
            "we" | "our" | "us" => "we".to_owned(),
            "his" => "he".to_owned(),
            "her" => "she".to_owned(),
            "their" => "they".to_owned(),
            other => other.trim_end_matches("'s").to_owned(),
        }
    };
    let key = |subject: String, attribute: &str, value: &str| {
        let value = tidy_value(value);
        (!value.is_empty()).then(|| FactKey { subject, attribute: tidy_attribute(attribute), value })
    };
    if let Some(c) = captures(&POSSESSIVE, &text) {
        return key(subject_of(&c[1]), &c[2], &c[3]);
    }
    if let Some(c) = captures(&THE_IS, &text) {
        return key(String::new(), &c[1], &c[2]);
    }
    // "I'm based in ..." / "I'm 30": split the contraction off the subject.
    let text = text.replacen("i'm ", "i am ", 1).replacen("we're ", "we are ", 1);
    let c = captures(&SUBJECT_VERB, &text)?;
    let subject = subject_of(&c[1]);
    let rest = &c[2];
    if let Some(m) = captures(&LOCATION, rest) {
        return key(subject, "location", m.get(1).or(m.get(2))?.as_str());
    }
    if let Some(m) = captures(&OCCUPATION, rest) {
        return key(subject, "occupation", &m[1]);
    }
    if let Some(m) = captures(&EMPLOYER, rest) {
        return key(subject, "employer", m.get(1).or(m.get(2))?.as_str());
    }
    if let Some(m) = captures(&TOOL_FOR, rest) {
        return key(subject, &format!("tool for {}", &m[2]), &m[1]);
    }
    if let Some(m) = captures(&PREFER_FOR, rest) {
        return key(subject, &format!("preference for {}", &m[2]), &m[1]);
    }
    if let Some(m) = captures(&AGE, rest) {
        return key(subject, "age", &m[1]);
    }
    if let Some(m) = captures(&NAME, rest) {
        return key(subject, "name", &m[1]);
    }
    None
}

/// Words that open a time phrase in front of a statement ("Since March I
/// live in Hamburg").
const TIME_LEADS: &[&str] = &[
    "since",
    "as",
    "from",
    "starting",
    "in",
    "on",
    "last",
    "this",
    "next",
    "yesterday",
    "today",
    "tomorrow",
    "recently",
    "lately",
    "currently",
    "after",
    "before",
    "by",
];
const SUBJECT_WORDS: &[&str] = &["i", "i'm", "we", "we're", "my", "our"];

/// `text` without a leading time phrase of at most five words before its
/// subject.
fn without_time_lead(text: &str) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.first().is_some_and(|w| TIME_LEADS.contains(&w.trim_end_matches(','))) {
        for (i, w) in words.iter().enumerate().take(6).skip(1) {
            if SUBJECT_WORDS.contains(w) {
                return words[i..].join(" ");
            }
        }
    }
    text.to_owned()
}

fn tidy_value(value: &str) -> String {
    let mut v = value.trim();
    for lead in ["a ", "an ", "the "] {
        v = v.strip_prefix(lead).unwrap_or(v);
    }
    for tail in [" now", " currently", " these days", " nowadays", " as well", " too"] {
        v = v.strip_suffix(tail).unwrap_or(v);
    }
    v.trim().to_owned()
}

fn tidy_attribute(attribute: &str) -> String {
    attribute
        .split_whitespace()
        .map(|w| match w {
            "favorite" => "favourite",
            "color" => "colour",
            other => other,
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The words that tell similar statements apart: numbers and names
/// (capitalised words after the first, other than "I"), lower-cased.
/// Sentence embeddings hardly see them ("I visited city 2" and "... 3" are
/// almost one vector), so two texts whose sets differ are never merged as
/// near-duplicates.
pub fn distinguishing(text: &str) -> std::collections::BTreeSet<String> {
    text.split_whitespace()
        .enumerate()
        .map(|(i, w)| (i, w.trim_matches(|c: char| !c.is_alphanumeric())))
        .filter(|(i, w)| {
            w.chars().any(|c| c.is_ascii_digit())
                || (*i > 0 && w.chars().next().is_some_and(char::is_uppercase) && !matches!(*w, "I" | "I'm" | "I've"))
        })
        .map(|(_, w)| w.trim_end_matches("'s").to_lowercase())
        .filter(|w| !w.is_empty())
        .collect()
}

/// Comparable form of a fact or memory: lower case, letters and digits
/// only, single spaces ("I like sushi." and "i like  sushi" are one).
pub fn comparable(text: &str) -> String {
    text.to_lowercase()
        .split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(content: &str) -> Turn<'_> {
        Turn { role: "user", speaker: None, content, id: None }
    }

    fn texts(turns: &[Turn<'_>]) -> Vec<String> {
        extract(turns).into_iter().map(|f| f.text).collect()
    }

    #[test]
    fn sentences_and_clauses_become_facts_and_small_talk_does_not() {
        assert_eq!(
            texts(&[user("Hi! I live in Berlin and I work at SAP. Thanks! What about you? I like tea and cake.")]),
            ["I live in Berlin", "I work at SAP", "I like tea and cake"]
        );
        assert!(texts(&[user("Wow, that's great!")]).is_empty());
        assert!(
            texts(&[Turn { role: "assistant", speaker: None, content: "You live in Berlin.", id: None }]).is_empty()
        );
    }

    #[test]
    fn named_speakers_get_their_statements_attributed() {
        let turns = [
            Turn { role: "user", speaker: Some("Caroline"), content: "I live in Boston now.", id: Some("D1:1") },
            Turn { role: "user", speaker: Some("Melanie"), content: "Painting a sunset this week.", id: Some("D1:2") },
        ];
        let facts = extract(&turns);
        assert_eq!(facts[0].text, "Caroline lives in Boston now");
        assert_eq!(facts[0].evidence, ["D1:1"]);
        assert_eq!(facts[1].text, "Melanie: Painting a sunset this week");
        assert_eq!(
            facts[0].key,
            Some(FactKey { subject: "caroline".into(), attribute: "location".into(), value: "boston".into() })
        );
    }

    #[test]
    fn keys_read_subject_attribute_and_value() {
        let k = |s: &str| key_of(s, None).map(|k| (k.subject, k.attribute, k.value));
        let t = |a: &str, b: &str, c: &str| Some((a.to_owned(), b.to_owned(), c.to_owned()));
        assert_eq!(k("My favorite color is blue"), t("i", "favourite colour", "blue"));
        assert_eq!(k("I moved to Munich"), t("i", "location", "munich"));
        assert_eq!(k("I'm based in Lisbon"), t("i", "location", "lisbon"));
        assert_eq!(k("We use Jest for testing"), t("we", "tool for testing", "jest"));
        assert_eq!(k("I work as a nurse"), t("i", "occupation", "nurse"));
        assert_eq!(k("I am 31 years old"), t("i", "age", "31"));
        assert_eq!(k("The deploy target is AWS"), t("", "deploy target", "aws"));
        assert_eq!(k("Since March, I live in Hamburg"), t("i", "location", "hamburg"));
        assert_eq!(k("I like sushi"), None);
    }

    #[test]
    fn retractions_carry_the_statement_they_end() {
        let positive = |s: &str| match retraction_of(s) {
            FactKind::Negation { positive } => positive,
            FactKind::Forget { target } => format!("forget: {target}"),
            FactKind::Statement => "statement".into(),
        };
        assert_eq!(positive("I no longer live in Berlin"), "I live in Berlin");
        assert_eq!(positive("I don't work at Google anymore"), "I work at Google");
        assert_eq!(positive("I'm not vegan anymore"), "I am vegan");
        assert_eq!(positive("We stopped using Jenkins"), "We using Jenkins");
        assert_eq!(positive("Forget that I like sushi"), "forget: I like sushi");
        assert_eq!(positive("I used to live in Berlin"), "I live in Berlin");
        assert_eq!(positive("I like sushi"), "statement");
    }

    #[test]
    fn every_pattern_compiles() {
        for pattern in [
            &CLAUSE_BREAK,
            &LEAD_IN,
            &FORGET,
            &NO_LONGER,
            &NOT_ANYMORE,
            &USED_TO,
            &STOPPED,
            &POSSESSIVE,
            &THE_IS,
            &SUBJECT_VERB,
            &LOCATION,
            &EMPLOYER,
            &OCCUPATION,
            &TOOL_FOR,
            &PREFER_FOR,
            &AGE,
            &NAME,
        ] {
            assert!(pattern.is_some());
        }
    }

    #[test]
    fn numbers_and_names_tell_statements_apart() {
        assert_ne!(distinguishing("I visited city 2 in 2002"), distinguishing("I visited city 3 in 2003"));
        assert_eq!(distinguishing("Our team uses Rust here"), distinguishing("Our team uses Rust"));
        assert_eq!(distinguishing("Caroline: I went to Rome"), ["rome"].map(String::from).into());
    }

    #[test]
    fn comparable_ignores_case_and_punctuation() {
        assert_eq!(comparable("I like  Sushi."), comparable("i like sushi"));
    }
}
