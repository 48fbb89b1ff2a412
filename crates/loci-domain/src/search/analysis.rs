//! What a query and a candidate say, as the ranking signals need it:
//! whether a question asks *when*, whether a text holds a time expression,
//! whether it names an entity. English word lists: other languages simply
//! get no temporal signal.

/// Whether `query` asks for a time: "When did ...", "What year ...", "How
/// long ago ...", "Since when ...", "On which date ...".
pub fn asks_when(query: &str) -> bool {
    // Whitespace-separated, so "time-series" is not "time".
    let words: Vec<String> = query
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|w| !w.is_empty())
        .take(4)
        .collect();
    let at = |i: usize| words.get(i).map(String::as_str).unwrap_or_default();
    let unit = |w: &str| {
        matches!(w, "year" | "years" | "month" | "months" | "day" | "days" | "date" | "dates" | "time" | "week")
    };
    match at(0) {
        "when" => true,
        "what" | "which" => unit(at(1)),
        "how" => matches!(at(1), "long" | "soon" | "recently"),
        "since" => at(1) == "when",
        "in" | "on" | "at" | "by" => matches!(at(1), "what" | "which") && unit(at(2)),
        _ => false,
    }
}

/// `query` without its question words and auxiliaries ("what", "did",
/// "how", "would"...), for the lexical index: in a natural-language question
/// they match every turn that asks something, not what is asked about. A
/// query of nothing else is kept whole.
pub fn lexical_query(query: &str) -> std::borrow::Cow<'_, str> {
    let is_question_word = |w: &str| {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase();
        matches!(
            w.as_str(),
            "what"
                | "when"
                | "where"
                | "who"
                | "whom"
                | "whose"
                | "why"
                | "how"
                | "which"
                | "did"
                | "does"
                | "do"
                | "is"
                | "are"
                | "was"
                | "were"
                | "has"
                | "have"
                | "had"
                | "would"
                | "could"
                | "should"
                | "can"
                | "will"
                | "might"
        )
    };
    let kept: Vec<&str> = query.split_whitespace().filter(|w| !is_question_word(w)).collect();
    if kept.len() == query.split_whitespace().count() || !kept.iter().any(|w| w.chars().any(char::is_alphanumeric)) {
        std::borrow::Cow::Borrowed(query)
    } else {
        std::borrow::Cow::Owned(kept.join(" "))
    }
}

/// Whether `text` holds a time expression: a relative day or period
/// ("yesterday", "last week", "two years ago"), a weekday, a month, a year
/// (1900-2099).
pub fn has_time_expression(text: &str) -> bool {
    let mut previous = String::new();
    for w in words(text) {
        let relative_unit = matches!(
            w.as_str(),
            "week" | "weeks" | "weekend" | "month" | "months" | "year" | "years" | "summer" | "winter" | "spring"
        ) && matches!(previous.as_str(), "last" | "next" | "this" | "past" | "few" | "couple");
        if relative_unit || is_time_word(&w) || is_year(&w) {
            return true;
        }
        previous = w;
    }
    false
}

fn is_time_word(w: &str) -> bool {
    matches!(
        w,
        "yesterday"
            | "today"
            | "tomorrow"
            | "tonight"
            | "ago"
            | "recently"
            | "monday"
            | "tuesday"
            | "wednesday"
            | "thursday"
            | "friday"
            | "saturday"
            | "sunday"
            | "january"
            | "february"
            | "march"
            | "april"
            | "june"
            | "july"
            | "august"
            | "september"
            | "october"
            | "november"
            | "december"
    )
}

fn is_year(w: &str) -> bool {
    w.len() == 4 && w.parse::<u16>().is_ok_and(|y| (1900..2100).contains(&y))
}

/// Whether `text` names one of `names` (lower-case entity names) as whole
/// words.
pub fn names_any(text: &str, names: &[String]) -> bool {
    if names.is_empty() {
        return false;
    }
    let text_words: Vec<String> = words(text).collect();
    names.iter().any(|name| {
        let parts: Vec<String> = words(name).collect();
        !parts.is_empty() && text_words.windows(parts.len()).any(|w| w == parts.as_slice())
    })
}

/// Lower-cased runs of letters and digits.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_asking_when() {
        for q in [
            "When did Melanie paint a sunrise?",
            "when is the deploy freeze",
            "What year did John start surfing?",
            "Which month was the outage?",
            "How long ago was Caroline's 18th birthday?",
            "Since when do we use Valkey?",
            "In which year did the migration happen?",
        ] {
            assert!(asks_when(q), "{q}");
        }
        for q in [
            "What did Melanie paint?",
            "Where does Caroline live?",
            "What time-series database do we use?",
            "How do we deploy?",
            "Whenever possible, which cache?",
            "",
        ] {
            assert!(!asks_when(q), "{q}");
        }
    }

    #[test]
    fn question_words_leave_the_lexical_query() {
        assert_eq!(lexical_query("What did Melanie paint recently?"), "Melanie paint recently?");
        assert_eq!(lexical_query("How do Jon and Gina both like to destress?"), "Jon and Gina both like to destress?");
        assert_eq!(lexical_query("deploy key rotation"), "deploy key rotation");
        // Nothing else: the query stays whole.
        assert_eq!(lexical_query("What is it?"), "it?");
        assert_eq!(lexical_query("what?"), "what?");
        assert_eq!(lexical_query("Who? When?"), "Who? When?");
    }

    #[test]
    fn time_expressions() {
        for t in [
            "I went to a support group yesterday",
            "We moved here 3 years ago.",
            "See you on Friday!",
            "Back in May 2021 we switched",
            "The release is next week",
            "Finished it last summer",
        ] {
            assert!(has_time_expression(t), "{t}");
        }
        // "May" the verb, and "week" without last/next/this, say no time.
        for t in ["I love painting sunsets", "The cache is Valkey", "May I ask something?", "a week-long trip", ""] {
            assert!(!has_time_expression(t), "{t}");
        }
    }

    #[test]
    fn names_as_whole_words() {
        let names = vec!["melanie".to_owned(), "new york".to_owned()];
        assert!(names_any("Melanie: I went hiking", &names));
        assert!(names_any("We flew to New York.", &names));
        assert!(!names_any("Melanies everywhere", &names));
        assert!(!names_any("a new yorker", &names));
        assert!(!names_any("anything", &[]));
    }
}
