//! Code-aware tokens: an identifier is indexed whole and as its words, so
//! `parseHttpBody` is found by "parseHttpBody", "parse http body" and
//! "http_body".

/// The words of an identifier: split at `_`, `-`, digits boundaries and
/// case changes (`HTTPServer` -> `http`, `server`), lower-cased.
pub fn split_identifier(ident: &str) -> Vec<String> {
    let mut words = Vec::new();
    let chars: Vec<char> = ident.chars().collect();
    let mut current = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_alphanumeric() {
            flush(&mut current, &mut words);
            continue;
        }
        if !current.is_empty() {
            let prev = chars[i - 1];
            let next = chars.get(i + 1).copied();
            let boundary = (prev.is_lowercase() && c.is_uppercase())
                || (prev.is_alphabetic() != c.is_alphabetic())
                // the last capital of an acronym starts the next word: HTTPServer
                || (prev.is_uppercase() && c.is_uppercase() && next.is_some_and(char::is_lowercase));
            if boundary {
                flush(&mut current, &mut words);
            }
        }
        current.extend(c.to_lowercase());
    }
    flush(&mut current, &mut words);
    words
}

fn flush(current: &mut String, words: &mut Vec<String>) {
    if !current.is_empty() {
        words.push(std::mem::take(current));
    }
}

/// The identifiers of `text` (letters, digits, `_`, `$`; not starting with
/// a digit).
pub fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|t| !t.is_empty() && !t.starts_with(|c: char| c.is_ascii_digit()))
}

/// The extra text a lexical index reads beside a symbol's own text: every
/// compound identifier's words, so prose queries and partial names match.
/// Identifiers that are one word already are left out (the text has them).
pub fn expansion(text: &str) -> String {
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for ident in identifiers(text) {
        if !seen.insert(ident) {
            continue;
        }
        let words = split_identifier(ident);
        if words.len() > 1 {
            out.push(ident.to_lowercase());
            out.extend(words);
        }
    }
    out.join(" ")
}

/// A query as code search reads it: the words as given, and each compound
/// identifier also as its words.
pub fn query_text(query: &str) -> String {
    let extra = expansion(query);
    if extra.is_empty() { query.to_owned() } else { format!("{query} {extra}") }
}
