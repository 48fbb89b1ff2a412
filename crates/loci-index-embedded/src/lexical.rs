//! Embedded lexical index: BM25 over memory content with tantivy, in one
//! directory under the data directory.
//!
//! The index is shared by every org: each document carries its org and its
//! visibility keys as raw terms, and every search intersects the text query
//! with those terms inside tantivy. User text is analysed into terms, never
//! parsed, so no input can raise a syntax error or reach another field.
//!
//! Changes (upserts, deletes) become visible to searches and `count` at the
//! next [`LexicalIndex::flush`]; `clear` takes effect at once.

use std::collections::BTreeSet;
use std::ops::{Bound, Range};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use loci_core::{MemoryId, OrgId};
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::query::{
    Bm25StatisticsProvider, BooleanQuery, BoostQuery, ConstScoreQuery, EnableScoring, Explanation, Occur, Query,
    RangeQuery, Scorer, TermQuery, Weight,
};
use tantivy::schema::{FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions, Value};
use tantivy::tokenizer::{
    AsciiFoldingFilter, Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, Stemmer, StopWordFilter, TextAnalyzer,
};
use tantivy::{
    BitSet, DocId, Index, IndexReader, IndexWriter, ReloadPolicy, Score, Searcher, SegmentOrdinal, SegmentReader,
    TantivyDocument, TantivyError, Term,
};

use loci_index::{Hit, IndexDoc, IndexError, LexicalIndex, SearchFilter, StructuredFields};

/// Indexing memory of the writer, shared by its threads (tantivy wants at
/// least 15 MB per thread and lowers the thread count to fit).
const WRITER_MEMORY_BYTES: usize = 50_000_000;
/// Tokens this long are dropped: they are hashes, base64 or URLs, not words.
const MAX_TOKEN_BYTES: usize = 40;
/// Distinct query terms kept (in order of appearance), so that a pasted
/// document does not become a query of thousands of clauses.
const MAX_QUERY_TERMS: usize = 64;
/// Length of the highlighted fragment, in characters.
const HIGHLIGHT_CHARS: usize = 150;
/// Context kept before the match a fragment is built around.
const HIGHLIGHT_LEAD: usize = 40;
/// Matches considered for the fragment (bounds the window search).
const MAX_HIGHLIGHT_MATCHES: usize = 256;

/// Tunables of the lexical index. The analyzer settings (`stemming`,
/// `stopwords`) are part of the on-disk schema: opening an index built with
/// other ones fails, and the index has to be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LexicalOptions {
    /// English (Snowball) stemming, so "deploying" matches "deployment".
    pub stemming: bool,
    /// Drops the common English stop words (Lucene's list) from documents
    /// and queries.
    pub stopwords: bool,
    /// Weight of a match in a memory's context relative to one in its
    /// content; 0 ignores the context.
    pub context_boost: f32,
    /// Computes the BM25 statistics (document count, average lengths, term
    /// frequencies) over the org's documents rather than over the whole
    /// index, so that scores reveal nothing about other orgs. They are
    /// computed once per org and index generation (a pass over the org's
    /// documents, a count per new term) and cached until the next commit, so
    /// a search at rest costs what one without them costs.
    pub tenant_statistics: bool,
}

impl Default for LexicalOptions {
    fn default() -> Self {
        Self { stemming: true, stopwords: true, context_boost: 0.5, tenant_statistics: true }
    }
}

impl LexicalOptions {
    /// Name of the analyzer in the schema; it encodes the analyzer settings
    /// so that an index analysed differently is refused at open.
    fn analyzer_name(&self) -> String {
        format!("loci_en{}{}", if self.stemming { "_stem" } else { "" }, if self.stopwords { "_stop" } else { "" })
    }

    fn analyzer(&self) -> TextAnalyzer {
        let mut builder = TextAnalyzer::builder(SimpleTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_TOKEN_BYTES))
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .dynamic();
        if self.stopwords
            && let Some(stop) = StopWordFilter::new(Language::English)
        {
            builder = builder.filter_dynamic(stop);
        }
        if self.stemming {
            builder = builder.filter_dynamic(Stemmer::new(Language::English));
        }
        builder.build()
    }

    fn context_weight(&self) -> Option<f32> {
        (self.context_boost.is_finite() && self.context_boost > 0.0).then_some(self.context_boost)
    }
}

/// The tantivy index of memory texts (see the module documentation).
pub struct EmbeddedLexicalIndex {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EmbeddedLexicalIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedLexicalIndex").field("options", &self.inner.options).finish_non_exhaustive()
    }
}

struct Inner {
    reader: IndexReader,
    /// tantivy allows one writer per index; commits need it exclusively.
    writer: Mutex<IndexWriter<TantivyDocument>>,
    fields: Fields,
    analyzer: TextAnalyzer,
    options: LexicalOptions,
    statistics: Mutex<StatisticsCache>,
}

/// The orgs' BM25 statistics of one searcher generation: a commit makes a
/// new generation and empties the cache.
#[derive(Default)]
struct StatisticsCache {
    generation: u64,
    orgs: std::collections::HashMap<String, Arc<OrgStatistics>>,
}

/// At most this many orgs' statistics are kept per generation.
const MAX_CACHED_ORGS: usize = 1024;
/// At most this many term frequencies are kept per org and generation.
const MAX_CACHED_TERMS: usize = 65_536;

#[derive(Debug, Clone, Copy)]
struct Fields {
    /// The memory id (stored: hits are read back from it).
    id: Field,
    /// `<id>:<org>`, the unit of replacement and deletion, so that neither
    /// can touch a document of another org.
    key: Field,
    org: Field,
    visibility: Field,
    state: Field,
    app: Field,
    /// The structured fields, in [`StructuredFields::NAMES`] order.
    structured: [Field; 6],
    /// `key=value`, with `=` and `\` in the key escaped.
    tag: Field,
    /// Nanoseconds since the epoch.
    created_at: Field,
    content: Field,
    context: Field,
}

fn schema(options: &LexicalOptions) -> (Schema, Fields) {
    // Exact-match terms: one raw token, no frequencies or norms (never scored).
    let keyword = || {
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer("raw")
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        )
    };
    let analyzer = options.analyzer_name();
    let text = |positions: bool| {
        TextFieldIndexing::default().set_tokenizer(&analyzer).set_index_option(if positions {
            IndexRecordOption::WithFreqsAndPositions
        } else {
            IndexRecordOption::WithFreqs
        })
    };
    let mut b = Schema::builder();
    let fields = Fields {
        id: b.add_text_field("id", keyword() | STORED),
        key: b.add_text_field("key", keyword()),
        org: b.add_text_field("org_id", keyword()),
        visibility: b.add_text_field("visibility", keyword()),
        state: b.add_text_field("state", keyword()),
        app: b.add_text_field("app_id", keyword()),
        // Added in this order after `app_id`, as the schema always had them.
        structured: StructuredFields::NAMES.map(|name| b.add_text_field(name, keyword())),
        tag: b.add_text_field("tag", keyword()),
        created_at: b.add_i64_field("created_at", INDEXED | FAST),
        // Stored for highlights; positions kept for phrase queries later.
        content: b.add_text_field("content", TextOptions::default().set_indexing_options(text(true)).set_stored()),
        context: b.add_text_field("context", TextOptions::default().set_indexing_options(text(false))),
    };
    (b.build(), fields)
}

fn index_error(what: &str) -> impl FnOnce(TantivyError) -> IndexError + '_ {
    move |e| IndexError::Failed(format!("lexical index: {what}: {e}"))
}

impl EmbeddedLexicalIndex {
    /// Opens the index in `dir` (created with its parents when missing) with
    /// the default options.
    pub fn open(dir: &Path) -> Result<Self, IndexError> {
        Self::open_with(dir, LexicalOptions::default())
    }

    /// Opens or creates the index in `dir`. Fails when the directory holds an
    /// index built with another schema or other analyzer options, or when
    /// another writer holds it.
    pub fn open_with(dir: &Path, options: LexicalOptions) -> Result<Self, IndexError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| IndexError::Failed(format!("lexical index: creating {}: {e}", dir.display())))?;
        let directory = MmapDirectory::open(dir)
            .map_err(|e| IndexError::Failed(format!("lexical index: opening {}: {e}", dir.display())))?;
        let (schema, fields) = schema(&options);
        let index = Index::open_or_create(directory, schema).map_err(|e| match e {
            TantivyError::SchemaError(msg) => IndexError::Failed(format!(
                "lexical index in {}: {msg} (built by another version or with other analyzer options; \
                 remove the directory and reindex)",
                dir.display()
            )),
            other => IndexError::Failed(format!("lexical index: opening {}: {other}", dir.display())),
        })?;
        Self::from_index(index, fields, options)
    }

    /// A fresh index held in memory (tests, benchmarks).
    pub fn open_in_ram(options: LexicalOptions) -> Result<Self, IndexError> {
        let (schema, fields) = schema(&options);
        Self::from_index(Index::create_in_ram(schema), fields, options)
    }

    fn from_index(index: Index, fields: Fields, options: LexicalOptions) -> Result<Self, IndexError> {
        // Tokenizers are not persisted with the index: register before the
        // writer or any search uses the schema's analyzer name.
        let analyzer = options.analyzer();
        index.tokenizers().register(&options.analyzer_name(), analyzer.clone());
        let writer = index.writer(WRITER_MEMORY_BYTES).map_err(index_error("creating the writer"))?;
        // Manual reloads: a search sees exactly what the last flush committed.
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(index_error("creating the reader"))?;
        Ok(Self {
            inner: Arc::new(Inner {
                reader,
                writer: Mutex::new(writer),
                fields,
                analyzer,
                options,
                statistics: Mutex::new(StatisticsCache::default()),
            }),
        })
    }

    /// Runs blocking tantivy work off the async runtime.
    async fn blocking<T, F>(&self, work: F) -> Result<T, IndexError>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T, IndexError> + Send + 'static,
    {
        let inner = Arc::clone(&self.inner);
        tokio::task::spawn_blocking(move || work(&inner))
            .await
            .map_err(|e| IndexError::Failed(format!("lexical index task failed: {e}")))?
    }
}

fn doc_key(org: &OrgId, id: MemoryId) -> String {
    // The id has a fixed length, so the key cannot be ambiguous.
    format!("{id}:{org}")
}

fn tag_term(key: &str, value: &str) -> String {
    let mut out = String::with_capacity(key.len() + value.len() + 1);
    for c in key.chars() {
        if matches!(c, '=' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('=');
    out.push_str(value);
    out
}

/// Nanoseconds since the epoch, saturated outside 1677..2262 (order kept).
fn nanos(t: DateTime<Utc>) -> i64 {
    t.timestamp_nanos_opt().unwrap_or(if t.timestamp() < 0 { i64::MIN } else { i64::MAX })
}

fn term_query(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
}

/// Matches documents having any of `values` in `field`. A union of term
/// queries rather than a `TermSetQuery`: it is lazy, so intersecting it with
/// a rare term stays cheap.
fn any_of<S: AsRef<str>>(field: Field, values: impl IntoIterator<Item = S>) -> Box<dyn Query> {
    Box::new(BooleanQuery::union(values.into_iter().map(|v| term_query(field, v.as_ref())).collect()))
}

impl Inner {
    fn lock_writer(&self) -> std::sync::MutexGuard<'_, IndexWriter<TantivyDocument>> {
        // A panic while holding the lock leaves tantivy's writer consistent
        // (its operations are queued), so a poisoned lock is still usable.
        self.writer.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Commits, merges every segment into one (which drops deleted
    /// documents) and deletes the files nothing uses any more.
    fn expunge(&self) -> Result<(), IndexError> {
        {
            let mut writer = self.lock_writer();
            writer.commit().map_err(index_error("commit"))?;
            let segments = writer.index().searchable_segment_ids().map_err(index_error("listing segments"))?;
            if !segments.is_empty() {
                writer.merge(&segments).wait().map_err(index_error("merging segments"))?;
            }
            writer.garbage_collect_files().wait().map_err(index_error("removing unused files"))?;
        }
        self.reader.reload().map_err(index_error("reloading the reader"))
    }

    fn commit(&self) -> Result<(), IndexError> {
        self.lock_writer().commit().map_err(index_error("commit"))?;
        self.reader.reload().map_err(index_error("reloading the reader"))
    }

    fn document(&self, d: &IndexDoc) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        doc.add_text(f.id, d.id.to_string());
        doc.add_text(f.key, doc_key(&d.org_id, d.id));
        doc.add_text(f.org, d.org_id.as_str());
        for key in d.visibility_keys() {
            doc.add_text(f.visibility, key);
        }
        doc.add_text(f.state, d.state.as_str());
        doc.add_text(f.app, d.app_id.to_string());
        for (field, (_, value)) in f.structured.into_iter().zip(d.fields.named()) {
            if let Some(value) = value {
                doc.add_text(field, value);
            }
        }
        for (k, v) in &d.tags {
            doc.add_text(f.tag, tag_term(k, v));
        }
        doc.add_i64(f.created_at, nanos(d.created_at));
        doc.add_text(f.content, &d.content);
        if !d.context.is_empty() {
            doc.add_text(f.context, &d.context);
        }
        doc
    }

    /// The distinct terms of `text` after analysis, in order of appearance.
    fn analyze(&self, text: &str) -> Vec<String> {
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(text);
        let mut seen = BTreeSet::new();
        let mut terms = Vec::new();
        while terms.len() < MAX_QUERY_TERMS && stream.advance() {
            let token = &stream.token().text;
            if !token.is_empty() && seen.insert(token.clone()) {
                terms.push(token.clone());
            }
        }
        terms
    }

    /// The org and, unless unchecked, the caller's visibility: the documents
    /// a caller may see at all.
    fn scope_clauses(&self, filter: &SearchFilter) -> Vec<(Occur, Box<dyn Query>)> {
        let mut clauses = vec![(Occur::Must, term_query(self.fields.org, filter.org.as_str()))];
        if let Some(keys) = filter.visibility_keys() {
            clauses.push((Occur::Must, any_of(self.fields.visibility, keys)));
        }
        clauses
    }

    /// Every restriction of `filter` as one query (see [`SearchFilter::admits`]).
    fn filter_query(&self, filter: &SearchFilter) -> BooleanQuery {
        let f = &self.fields;
        let mut clauses = self.scope_clauses(filter);
        if !filter.states.is_empty() {
            clauses.push((Occur::Must, any_of(f.state, filter.states.iter().map(|s| s.as_str()))));
        }
        if let Some(app) = filter.app_id {
            clauses.push((Occur::Must, term_query(f.app, &app.to_string())));
        }
        for (field, (_, value)) in f.structured.into_iter().zip(filter.fields.named()) {
            if let Some(value) = value {
                clauses.push((Occur::Must, term_query(field, value)));
            }
        }
        for (k, v) in &filter.tags {
            clauses.push((Occur::Must, term_query(f.tag, &tag_term(k, v))));
        }
        if filter.from.is_some() || filter.to.is_some() {
            let bound = |t: Option<DateTime<Utc>>| {
                t.map_or(Bound::Unbounded, |t| Bound::Included(Term::from_field_i64(f.created_at, nanos(t))))
            };
            clauses.push((Occur::Must, Box::new(RangeQuery::new(bound(filter.from), bound(filter.to)))));
        }
        for id in &filter.exclude {
            clauses.push((Occur::MustNot, term_query(f.id, &id.to_string())));
        }
        BooleanQuery::new(clauses)
    }

    /// Any analysed term in the content, or (weighted down) in the context.
    fn text_query(&self, terms: &[String]) -> Option<Box<dyn Query>> {
        if terms.is_empty() {
            return None;
        }
        let context = self.options.context_weight();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(terms.len() * 2);
        for t in terms {
            let on = |field| Box::new(TermQuery::new(Term::from_field_text(field, t), IndexRecordOption::WithFreqs));
            clauses.push((Occur::Should, on(self.fields.content)));
            if let Some(boost) = context {
                clauses.push((Occur::Should, Box::new(BoostQuery::new(on(self.fields.context), boost))));
            }
        }
        Some(Box::new(BooleanQuery::new(clauses)))
    }

    /// The search query: the text query (BM25) over the documents the filter
    /// selects. `None` when there is no searchable term.
    fn query(&self, terms: &[String], filter: &SearchFilter) -> Option<Box<dyn Query>> {
        let text = self.text_query(terms)?;
        Some(Box::new(FilteredText { text, filter: Box::new(self.filter_query(filter)) }))
    }

    /// [`Inner::query`] of the analysed `text`.
    #[cfg(test)]
    fn build_query(&self, text: &str, filter: &SearchFilter) -> Option<Box<dyn Query>> {
        self.query(&self.analyze(text), filter)
    }

    fn search(&self, text: &str, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let terms = self.analyze(text);
        let Some(query) = self.query(&terms, filter) else {
            return Ok(Vec::new());
        };
        let searcher = self.reader.searcher();
        let collector = TopDocs::with_limit(limit).order_by_score();
        let top = if self.options.tenant_statistics {
            let stats = self.org_statistics(&searcher, filter.org.as_str()).map_err(index_error("statistics"))?;
            searcher.search_with_statistics_provider(&*query, &collector, &stats)
        } else {
            searcher.search(&*query, &collector)
        }
        .map_err(index_error("search"))?;
        let terms: BTreeSet<String> = terms.into_iter().collect();
        top.into_iter()
            .map(|(score, address)| {
                let doc: TantivyDocument = searcher.doc(address).map_err(index_error("reading a hit"))?;
                let id = doc
                    .get_first(self.fields.id)
                    .and_then(|v| v.as_str())
                    .and_then(|s| s.parse::<MemoryId>().ok())
                    .ok_or_else(|| IndexError::Corrupt("lexical index: a document without a valid id".into()))?;
                let content = doc.get_first(self.fields.content).and_then(|v| v.as_str()).unwrap_or_default();
                Ok(Hit { id, score, highlights: self.highlight(content, &terms).into_iter().collect() })
            })
            .collect()
    }

    /// The BM25 statistics of `org`'s documents in `searcher`'s generation,
    /// from the cache or computed now.
    fn org_statistics<'a>(&self, searcher: &'a Searcher, org: &str) -> tantivy::Result<ScopedStatistics<'a>> {
        let generation = searcher.generation().generation_id();
        let scope = BooleanQuery::new(vec![(Occur::Must, term_query(self.fields.org, org))]);
        let cached = {
            let mut cache = self.statistics.lock().unwrap_or_else(PoisonError::into_inner);
            if cache.generation != generation {
                *cache = StatisticsCache { generation, orgs: Default::default() };
            }
            cache.orgs.get(org).cloned()
        };
        let totals = match cached {
            Some(totals) => totals,
            None => {
                let fields = [self.fields.content, self.fields.context];
                let (num_docs, tokens) = searcher.search(&scope, &ScopeTotals(fields.to_vec()))?;
                let totals = Arc::new(OrgStatistics {
                    num_docs,
                    tokens: fields.into_iter().zip(tokens).collect(),
                    doc_freq: Mutex::default(),
                });
                let mut cache = self.statistics.lock().unwrap_or_else(PoisonError::into_inner);
                if cache.generation == generation {
                    if cache.orgs.len() >= MAX_CACHED_ORGS {
                        cache.orgs.clear();
                    }
                    cache.orgs.insert(org.to_owned(), totals.clone());
                }
                totals
            }
        };
        Ok(ScopedStatistics { searcher, scope, totals })
    }

    /// The window of about [`HIGHLIGHT_CHARS`] characters of `content` with
    /// the most distinct query terms, HTML-escaped, matches in `<b>..</b>`
    /// and `…` where text was cut. `None` when no term occurs in the content
    /// (the memory matched through its context).
    fn highlight(&self, content: &str, terms: &BTreeSet<String>) -> Option<String> {
        // Matches are found with the index's own analyzer, so "deploys"
        // highlights for a query "deploying".
        let mut analyzer = self.analyzer.clone();
        let mut stream = analyzer.token_stream(content);
        let mut matches: Vec<(Range<usize>, String)> = Vec::new();
        while matches.len() < MAX_HIGHLIGHT_MATCHES && stream.advance() {
            let token = stream.token();
            if terms.contains(&token.text) {
                matches.push((token.offset_from..token.offset_to, token.text.clone()));
            }
        }
        let window = best_window(content, &matches)?;
        let mut out = String::with_capacity(window.len() + 32);
        if window.start > 0 {
            out.push('…');
        }
        let mut at = window.start;
        for (m, _) in matches.iter().filter(|(m, _)| m.start >= window.start && m.end <= window.end) {
            escape_into(&mut out, &content[at..m.start]);
            out.push_str("<b>");
            escape_into(&mut out, &content[m.clone()]);
            out.push_str("</b>");
            at = m.end;
        }
        escape_into(&mut out, &content[at..window.end]);
        if window.end < content.len() {
            out.push('…');
        }
        Some(out)
    }
}

/// Byte range of the highlight window: for each match as anchor, a window
/// starting a few words before it; the one holding the most distinct terms
/// (then the most matches, then the earliest) wins.
fn best_window(content: &str, matches: &[(Range<usize>, String)]) -> Option<Range<usize>> {
    if matches.is_empty() {
        return None;
    }
    if content.chars().count() <= HIGHLIGHT_CHARS {
        return Some(0..content.len());
    }
    let mut best: Option<((usize, usize), Range<usize>)> = None;
    for (anchor, _) in matches {
        // Up to HIGHLIGHT_LEAD characters of lead-in, starting at a word.
        let lead = content[..anchor.start].char_indices().rev().nth(HIGHLIGHT_LEAD - 1).map_or(0, |(i, _)| i);
        let start = if lead == 0 {
            0
        } else {
            content[lead..anchor.start]
                .char_indices()
                .find(|(_, c)| c.is_whitespace())
                .map_or(lead, |(i, c)| lead + i + c.len_utf8())
        };
        let mut end = content[start..].char_indices().nth(HIGHLIGHT_CHARS).map_or(content.len(), |(i, _)| start + i);
        // Never cut a match; cut between words when there is a space after
        // the last whole match.
        if let Some((m, _)) = matches.iter().find(|(m, _)| m.start < end && m.end > end) {
            end = m.start;
        }
        if end < content.len() {
            let last_match = matches.iter().map(|(m, _)| m.end).filter(|e| *e <= end).max().unwrap_or(start);
            let from = last_match.max(start);
            if let Some(ws) = content[from..end].rfind(char::is_whitespace) {
                end = from + ws;
            }
        }
        let inside: Vec<&String> =
            matches.iter().filter(|(m, _)| m.start >= start && m.end <= end).map(|(_, t)| t).collect();
        let distinct = inside.iter().collect::<BTreeSet<_>>().len();
        let rank = (distinct, inside.len());
        if best.as_ref().is_none_or(|(r, _)| rank > *r) {
            best = Some((rank, start..end));
        }
    }
    best.map(|(_, w)| w)
}

fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
}

/// BM25 statistics of one org's documents in one searcher generation:
/// document count, token totals of the scored fields (from the field
/// norms) and the document frequencies of the terms asked for so far.
struct OrgStatistics {
    num_docs: u64,
    tokens: Vec<(Field, u64)>,
    doc_freq: Mutex<std::collections::HashMap<Term, u64>>,
}

/// BM25 statistics restricted to one org's documents, so that scores
/// depend on nothing outside it.
struct ScopedStatistics<'a> {
    searcher: &'a Searcher,
    scope: BooleanQuery,
    totals: Arc<OrgStatistics>,
}

impl Bm25StatisticsProvider for ScopedStatistics<'_> {
    fn total_num_tokens(&self, field: Field) -> tantivy::Result<u64> {
        match self.totals.tokens.iter().find(|(f, _)| *f == field) {
            // Never 0: BM25 divides by the average length.
            Some((_, n)) => Ok((*n).max(1)),
            None => <Searcher as Bm25StatisticsProvider>::total_num_tokens(self.searcher, field),
        }
    }

    fn total_num_docs(&self) -> tantivy::Result<u64> {
        // Never 0 either; doc_freq stays <= it, as tantivy asserts.
        Ok(self.totals.num_docs.max(1))
    }

    fn doc_freq(&self, term: &Term) -> tantivy::Result<u64> {
        let known = self.totals.doc_freq.lock().unwrap_or_else(PoisonError::into_inner).get(term).copied();
        if let Some(n) = known {
            return Ok(n);
        }
        let query = BooleanQuery::new(vec![
            (Occur::Must, Box::new(self.scope.clone())),
            (Occur::Must, Box::new(TermQuery::new(term.clone(), IndexRecordOption::Basic))),
        ]);
        let n = self.searcher.search(&query, &Count)? as u64;
        let mut cache = self.totals.doc_freq.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHED_TERMS {
            cache.clear();
        }
        cache.insert(term.clone(), n);
        Ok(n)
    }
}

/// Counts the matching documents and sums their field norms (token counts)
/// for each of the fields.
struct ScopeTotals(Vec<Field>);

struct ScopeTotalsSegment {
    norms: Vec<FieldNormReader>,
    docs: u64,
    tokens: Vec<u64>,
}

impl Collector for ScopeTotals {
    type Fruit = (u64, Vec<u64>);
    type Child = ScopeTotalsSegment;

    fn for_segment(&self, _: SegmentOrdinal, segment: &SegmentReader) -> tantivy::Result<ScopeTotalsSegment> {
        let norms = self.0.iter().map(|f| segment.get_fieldnorms_reader(*f)).collect::<tantivy::Result<Vec<_>>>()?;
        Ok(ScopeTotalsSegment { tokens: vec![0; norms.len()], norms, docs: 0 })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<(u64, Vec<u64>)>) -> tantivy::Result<(u64, Vec<u64>)> {
        let mut tokens = vec![0; self.0.len()];
        let mut docs = 0;
        for (d, t) in fruits {
            docs += d;
            tokens.iter_mut().zip(t).for_each(|(sum, n)| *sum += n);
        }
        Ok((docs, tokens))
    }
}

impl SegmentCollector for ScopeTotalsSegment {
    type Fruit = (u64, Vec<u64>);

    fn collect(&mut self, doc: DocId, _: Score) {
        self.docs += 1;
        for (sum, norms) in self.tokens.iter_mut().zip(&self.norms) {
            *sum += u64::from(norms.fieldnorm(doc));
        }
    }

    fn harvest(self) -> (u64, Vec<u64>) {
        (self.docs, self.tokens)
    }
}

#[async_trait]
impl LexicalIndex for EmbeddedLexicalIndex {
    fn engine(&self) -> &'static str {
        "embedded"
    }

    async fn upsert(&self, docs: &[IndexDoc]) -> Result<(), IndexError> {
        if docs.is_empty() {
            return Ok(());
        }
        let prepared: Vec<(Term, TantivyDocument)> = docs
            .iter()
            .map(|d| (Term::from_field_text(self.inner.fields.key, &doc_key(&d.org_id, d.id)), self.inner.document(d)))
            .collect();
        self.blocking(move |inner| {
            let writer = inner.lock_writer();
            for (key, doc) in prepared {
                // A delete applies to the documents added before it, so
                // repeating an upsert (even within one batch) keeps one copy.
                writer.delete_term(key);
                writer.add_document(doc).map_err(index_error("adding a document"))?;
            }
            Ok(())
        })
        .await
    }

    async fn delete(&self, org: &OrgId, ids: &[MemoryId]) -> Result<(), IndexError> {
        if ids.is_empty() {
            return Ok(());
        }
        let key = self.inner.fields.key;
        let keys: Vec<Term> = ids.iter().map(|id| Term::from_field_text(key, &doc_key(org, *id))).collect();
        self.blocking(move |inner| {
            let writer = inner.lock_writer();
            for key in keys {
                writer.delete_term(key);
            }
            Ok(())
        })
        .await
    }

    async fn search(&self, query: &str, filter: &SearchFilter, limit: usize) -> Result<Vec<Hit>, IndexError> {
        let (query, filter) = (query.to_owned(), filter.clone());
        self.blocking(move |inner| inner.search(&query, &filter, limit)).await
    }

    async fn flush(&self) -> Result<(), IndexError> {
        self.blocking(Inner::commit).await
    }

    async fn expunge(&self) -> Result<(), IndexError> {
        self.blocking(Inner::expunge).await
    }

    async fn clear(&self, org: Option<&OrgId>) -> Result<(), IndexError> {
        let org = org.map(|o| Term::from_field_text(self.inner.fields.org, o.as_str()));
        self.blocking(move |inner| {
            {
                let writer = inner.lock_writer();
                match org {
                    Some(org) => {
                        writer.delete_term(org);
                    }
                    None => {
                        writer.delete_all_documents().map_err(index_error("clear"))?;
                    }
                }
            }
            inner.commit()
        })
        .await
    }

    async fn count(&self, org: &OrgId) -> Result<u64, IndexError> {
        let query = term_query(self.inner.fields.org, org.as_str());
        self.blocking(move |inner| {
            let n = inner.reader.searcher().search(&*query, &Count).map_err(index_error("count"))?;
            Ok(n as u64)
        })
        .await
    }
}

/// BM25 of `text` over the documents `filter` selects, keeping the text
/// query's top-k pruning. Tantivy prunes (block-max WAND) a plain union of
/// terms, but not the same union intersected with a filter: every document
/// of the org that held a query term was scored before the top 10 were
/// kept. Here the filter becomes a bitset of the segment first, and the
/// pruned union offers only admitted documents to the collector (a refused
/// document leaves the threshold where it was).
#[derive(Debug)]
struct FilteredText {
    text: Box<dyn Query>,
    filter: Box<dyn Query>,
}

impl Clone for FilteredText {
    fn clone(&self) -> Self {
        Self { text: self.text.box_clone(), filter: self.filter.box_clone() }
    }
}

impl FilteredText {
    /// The same documents and scores as one boolean query (the filter scored
    /// 0): what scorers, explanations and counts use.
    fn combined(&self) -> BooleanQuery {
        let filter = ConstScoreQuery::new(self.filter.box_clone(), 0.0);
        BooleanQuery::new(vec![(Occur::Must, Box::new(filter)), (Occur::Must, self.text.box_clone())])
    }
}

impl Query for FilteredText {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        Ok(Box::new(FilteredTextWeight {
            text: self.text.weight(scoring)?,
            filter: self.filter.weight(scoring)?,
            combined: self.combined().weight(scoring)?,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        self.filter.query_terms(visitor);
        self.text.query_terms(visitor);
    }
}

struct FilteredTextWeight {
    text: Box<dyn Weight>,
    filter: Box<dyn Weight>,
    combined: Box<dyn Weight>,
}

impl Weight for FilteredTextWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        self.combined.scorer(reader, boost)
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        self.combined.explain(reader, doc)
    }

    fn for_each_pruning(
        &self,
        threshold: Score,
        reader: &SegmentReader,
        callback: &mut dyn FnMut(DocId, Score) -> Score,
    ) -> tantivy::Result<()> {
        let mut admitted = BitSet::with_max_value(reader.max_doc());
        self.filter.for_each_no_score(reader, &mut |docs| {
            for &doc in docs {
                admitted.insert(doc);
            }
        })?;
        let mut current = threshold;
        self.text.for_each_pruning(threshold, reader, &mut |doc, score| {
            if admitted.contains(doc) {
                current = callback(doc, score);
            }
            current
        })
    }
}

#[cfg(test)]
mod tests {
    use loci_core::{MemoryState, UserId};

    use super::*;
    use loci_core::model::Visibility;

    fn index() -> EmbeddedLexicalIndex {
        EmbeddedLexicalIndex::open_in_ram(LexicalOptions::default()).unwrap()
    }

    fn org(s: &str) -> OrgId {
        OrgId::parse(s).unwrap()
    }

    #[test]
    fn every_query_carries_the_org_term() {
        let idx = index();
        let mut filter = SearchFilter::new(org("acme-org"), None);
        let q = idx.inner.build_query("deploy", &filter).unwrap();
        assert!(format!("{q:?}").contains("\"acme-org\""), "{q:?}");
        filter.visible_to = Some(Visibility { user_id: UserId::new(), grants: vec!["org:acme-org".parse().unwrap()] });
        filter.states = vec![];
        let q = format!("{:?}", idx.inner.build_query("deploy", &filter).unwrap());
        assert!(q.contains("\"acme-org\""), "{q}");
        assert!(q.contains("grant:org:acme-org"), "{q}");
    }

    /// The pruned search returns what scoring every admitted document would:
    /// the same top scores, and the same documents wherever scores differ.
    #[tokio::test]
    async fn pruned_top_k_equals_scoring_every_admitted_document() {
        let idx = index();
        let words = ["deploy", "kafka", "postgres", "rollback", "review", "budget", "alice", "oncall", "cache"];
        let (alice, bob) = (UserId::new(), UserId::new());
        let mut seed = 17u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut docs = Vec::new();
        for i in 0..3_000u64 {
            let (org_id, user) = match i % 5 {
                0 => (org("other"), UserId::new()),
                1 | 2 => (org("acme"), bob),
                _ => (org("acme"), alice),
            };
            let n = 3 + next() % 12;
            // Skewed towards the first words, so term frequencies differ.
            let text: Vec<&str> = (0..n).map(|_| words[(next() % 9).min(next() % 9) as usize]).collect();
            docs.push(loci_index::contract::plain_doc(&org_id, user, &text.join(" ")));
        }
        for chunk in docs.chunks(500) {
            idx.upsert(chunk).await.unwrap();
            idx.flush().await.unwrap();
        }
        let mut filter = SearchFilter::new(org("acme"), None);
        filter.visible_to = Some(Visibility { user_id: alice, grants: vec![] });
        for text in ["deploy kafka", "postgres rollback review", "cache", "budget oncall alice deploy"] {
            let pruned = idx.inner.search(text, &filter, 10).unwrap();
            let terms = idx.inner.analyze(text);
            let everything = FilteredText {
                text: idx.inner.text_query(&terms).unwrap(),
                filter: Box::new(idx.inner.filter_query(&filter)),
            }
            .combined();
            let searcher = idx.inner.reader.searcher();
            let stats = idx.inner.org_statistics(&searcher, "acme").unwrap();
            let exhaustive = searcher
                .search_with_statistics_provider(&everything, &TopDocs::with_limit(10).order_by_score(), &stats)
                .unwrap();
            assert_eq!(pruned.len(), 10, "{text}");
            assert_eq!(exhaustive.len(), 10, "{text}");
            for (hit, (score, _)) in pruned.iter().zip(&exhaustive) {
                assert!((hit.score - score).abs() < 1e-4, "{text}: {} vs {score}", hit.score);
            }
            let cut = exhaustive[9].0;
            let strictly_above = |scores: Vec<(Score, MemoryId)>| {
                let mut ids: Vec<MemoryId> =
                    scores.into_iter().filter(|(s, _)| *s > cut + 1e-4).map(|(_, id)| id).collect();
                ids.sort();
                ids
            };
            let id_of = |address| {
                let doc: TantivyDocument = searcher.doc(address).unwrap();
                doc.get_first(idx.inner.fields.id).and_then(|v| v.as_str()).unwrap().parse::<MemoryId>().unwrap()
            };
            assert_eq!(
                strictly_above(pruned.iter().map(|h| (h.score, h.id)).collect()),
                strictly_above(exhaustive.iter().map(|(s, a)| (*s, id_of(*a))).collect()),
                "{text}"
            );
        }
    }

    #[test]
    fn hostile_or_empty_text_builds_no_query_or_plain_terms() {
        let idx = index();
        let filter = SearchFilter::new(org("acme"), None);
        for text in ["", "   ", "!!! ... ---", "the and of"] {
            assert!(idx.inner.build_query(text, &filter).is_none(), "{text:?}");
        }
        assert_eq!(idx.inner.analyze("foo:\"bar AND OR ("), ["foo", "bar"]);
        assert!(idx.inner.build_query("foo:\"bar", &filter).is_some());
    }

    #[test]
    fn analyzer_stems_folds_and_dedups() {
        let idx = index();
        assert_eq!(idx.inner.analyze("Deploying deployment DEPLOYS Café café"), ["deploy", "cafe"]);
        let plain = EmbeddedLexicalIndex::open_in_ram(LexicalOptions {
            stemming: false,
            stopwords: false,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(plain.inner.analyze("The deploys"), ["the", "deploys"]);
    }

    #[test]
    fn query_terms_are_capped() {
        let idx = index();
        let text: String = (0..500).map(|i| format!("w{i} ")).collect();
        assert_eq!(idx.inner.analyze(&text).len(), MAX_QUERY_TERMS);
    }

    fn terms(idx: &EmbeddedLexicalIndex, text: &str) -> BTreeSet<String> {
        idx.inner.analyze(text).into_iter().collect()
    }

    #[test]
    fn highlights_short_long_and_unicode_content() {
        let idx = index();
        let h = |content: &str, q: &str| idx.inner.highlight(content, &terms(&idx, q));
        assert_eq!(h("Deploys <fast> & safe", "deploying").unwrap(), "<b>Deploys</b> &lt;fast&gt; &amp; safe");
        assert_eq!(h("nothing relevant", "deploy"), None);

        // The window goes to the densest region and starts at a word.
        let long = format!("{}alpha beta {}gamma{}", "lorem ipsum ".repeat(30), "dolor ".repeat(8), " sit".repeat(60));
        let out = h(&long, "beta gamma").unwrap();
        assert!(out.starts_with('…') && out.ends_with('…'), "{out}");
        assert!(out.contains("<b>beta</b>") && out.contains("<b>gamma</b>"), "{out}");
        assert!(out.trim_start_matches('…').starts_with(|c: char| c.is_alphabetic()), "{out}");
        let visible = out.replace("<b>", "").replace("</b>", "").replace('…', "");
        assert!(visible.chars().count() <= HIGHLIGHT_CHARS, "{visible}");

        // Multi-byte text and whitespace never split a character.
        let cjk = format!("{}\u{3000}déploiement café{}", "日本語の文章".repeat(40), "\u{a0}ü".repeat(100));
        let out = h(&cjk, "cafe").unwrap();
        assert!(out.contains("<b>café</b>"), "{out}");
        let out = h(&"ü ".repeat(300), "ü").unwrap();
        assert!(out.contains("<b>ü</b>"), "{out}");
    }

    #[test]
    fn tag_terms_are_unambiguous() {
        assert_ne!(tag_term("a=b", "c"), tag_term("a", "b=c"));
        assert_eq!(tag_term("env", "prod"), "env=prod");
    }

    #[test]
    fn filter_translates_every_field() {
        let idx = index();
        let mut filter = SearchFilter::new(org("acme"), None);
        filter.states = vec![MemoryState::Active, MemoryState::Paused];
        filter.fields.category = Some("decision".into());
        filter.tags.insert("env".into(), "prod".into());
        filter.from = Some(Utc::now());
        filter.exclude = vec![MemoryId::new()];
        let q = format!("{:?}", idx.inner.filter_query(&filter));
        for needle in ["\"acme\"", "\"active\"", "\"paused\"", "\"decision\"", "\"env=prod\"", "MustNot"] {
            assert!(q.contains(needle), "{needle} missing from {q}");
        }
    }
}
