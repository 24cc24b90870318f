//! Full-text search over a case.
//!
//! This crate owns the case's tantivy index (`<case>/index/`), which is *derived*: SQLite is the source
//! of record and the index can always be rebuilt from it ([`SearchIndex::rebuild`], `nbtrail reindex`).
//!
//! * **Sync.** The index's commit payload records the last event id it holds. [`SearchIndex::open`] compares
//!   it with the store and indexes whatever is missing, so a crash between the store's commit and the
//!   index's is repaired on the next open; an index of another format, or one ahead of the store (a case
//!   restored from backup), is rebuilt. While indexing an event it also derives the tables the event's code
//!   reads and writes ([`nbtrail_analyzer::tables`]) and records them in the store (`cell_tables`,
//!   idempotent inserts, committed before the index).
//! * **What is indexed** ([`schema`]): facts that never change for an event. Session membership and findings
//!   change after ingest (new logs, another idle gap, re-analysis), so `session:` and `rule:` are resolved
//!   against SQLite at query time and the index never goes stale when they change.
//! * **Tokens** ([`tokens`]): code-aware — `dbutils.secrets.get`, `df.toPandas`, `customer_id` are found
//!   whole and by their parts, case-insensitively, with phrases intact.
//! * **Queries** ([`query`]): free text, `field:value`, phrases, boolean operators, exclusion, time ranges
//!   (absolute and `last 7d`), prefix wildcards; parsed leniently with warnings, never an error.
//! * **Results** ([`SearchResult`]): total, top hits by time or relevance with snippets as
//!   `(text, ranges)` — never HTML — facet counts and a time histogram over the whole result set.

mod identifier;
pub mod query;
pub mod schema;
pub mod tokens;

use nbtrail_analyzer::cells::Cell;
use nbtrail_analyzer::tables::TableRef;
use nbtrail_model::Shape;
use nbtrail_store::{Case, StoreError};
use schema::{Fields, INDEX_FORMAT};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tantivy::TantivyDocument;
use tantivy::collector::{Collector, Count, SegmentCollector, TopDocs};
use tantivy::columnar::{Column, StrColumn};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, DocId, Index, IndexReader, ReloadPolicy, Score, SegmentReader};

/// Errors of this crate.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The case store.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The index.
    #[error("search index {path}: {source}")]
    Index {
        /// The index folder.
        path: PathBuf,
        /// What tantivy said.
        source: tantivy::TantivyError,
    },
    /// File system.
    #[error("{path}: {source}")]
    Io {
        /// Path.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

/// Result alias.
pub type Result<T, E = SearchError> = std::result::Result<T, E>;

/// Folder of the index inside a case.
pub const INDEX_DIR: &str = "index";

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Payload {
    format: u32,
    through_event_id: i64,
}

/// What a sync did.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct SyncReport {
    /// Events added to the index.
    pub indexed: u64,
    /// Table facts derived (cell × table × access).
    pub table_facts: u64,
    /// Whether the index was rebuilt from scratch (and why).
    pub rebuilt: Option<String>,
    /// Last event id the index now holds.
    pub through_event_id: i64,
}

/// Sync progress.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SyncProgress {
    /// Events indexed so far.
    pub done: u64,
    /// Events to index.
    pub total: u64,
}

/// How hits are ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Newest first (ties: higher event id first).
    #[default]
    Newest,
    /// Oldest first (ties: lower event id first).
    Oldest,
    /// Best match first (BM25).
    Relevance,
}

/// A search.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchRequest {
    /// The query (see [`query`]).
    pub query: String,
    /// Hits to return.
    pub limit: usize,
    /// Hits to skip (paging).
    pub offset: usize,
    /// Order.
    pub sort: Sort,
    /// "Now" for relative times (ms since the epoch); `None` = the clock.
    pub now_ms: Option<i64>,
    /// Values per facet.
    pub facet_limit: usize,
}

impl Default for SearchRequest {
    fn default() -> Self {
        SearchRequest {
            query: String::new(),
            limit: 20,
            offset: 0,
            sort: Sort::Newest,
            now_ms: None,
            facet_limit: 20,
        }
    }
}

/// Matched text: `text` with the matched parts at `ranges` (character offsets, end exclusive).
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct Snippet {
    /// The text.
    pub text: String,
    /// `[start, end)` in characters (Unicode scalar values) of `text`.
    pub ranges: Vec<[usize; 2]>,
}

/// One hit.
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct Hit {
    /// Event id.
    pub event_id: i64,
    /// Session the event belongs to, if any.
    pub session_id: Option<String>,
    /// User.
    pub user: Option<String>,
    /// Time (RFC 3339, UTC, ms).
    pub time: String,
    /// Time (ms since the epoch).
    pub time_ms: i64,
    /// `service.action`.
    pub action: String,
    /// Notebook path (the event's, else the latest known for its notebook id).
    pub notebook_path: Option<String>,
    /// Matched text.
    pub snippet: Snippet,
    /// Finding codes on this event.
    pub rules: Vec<String>,
    /// Relevance score (only with `sort = relevance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

/// A facet value and how many hits have it.
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct FacetCount {
    /// Value.
    pub value: String,
    /// Hits.
    pub count: u64,
}

/// One histogram bucket.
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct Bucket {
    /// Start (ms since the epoch, UTC, aligned to the interval).
    pub start_ms: i64,
    /// Hits in `[start_ms, start_ms + interval_ms)`.
    pub count: u64,
}

/// Hits over time.
#[derive(Debug, Clone, Default, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct Histogram {
    /// Bucket width, chosen so there are at most [`MAX_BUCKETS`].
    pub interval_ms: i64,
    /// Consecutive buckets from the first hit to the last (empty ones included).
    pub buckets: Vec<Bucket>,
}

/// Upper bound on histogram buckets.
pub const MAX_BUCKETS: usize = 120;

/// The answer to a search.
#[derive(Debug, Clone, Serialize, PartialEq, ts_rs::TS)]
#[ts(export)]
pub struct SearchResult {
    /// Hits in total.
    pub total: u64,
    /// The requested page of hits.
    pub hits: Vec<Hit>,
    /// Counts per value for `user`, `notebook`, `action`, `table`, `rule`, `status` over all hits.
    pub facets: BTreeMap<String, Vec<FacetCount>>,
    /// Hits over time.
    pub histogram: Histogram,
    /// What the lenient parse ignored.
    pub warnings: Vec<String>,
}

/// The facet names, in display order.
pub const FACETS: &[&str] = &["user", "notebook", "action", "table", "rule", "status"];

/// A case's search index.
pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    dir: PathBuf,
    /// Finding codes per event, with the findings version they were loaded at: loading them is linear in
    /// the findings (100k+ in a ten-million-event case), so it happens once per analysis, not per search.
    rules: RuleCache,
}

/// Finding codes per event, with the findings version they were loaded at (shared with [`Warmer`]).
type RuleCache = Arc<std::sync::Mutex<Option<(String, Arc<RuleMap>)>>>;

/// The finding codes per event from `cache`, reloaded only when the findings changed. The lock is held
/// while loading: a search waits for a warm-up's load instead of loading a second time.
fn cached_rule_map(cache: &RuleCache, case: &Case) -> Result<Arc<RuleMap>> {
    let version = case.findings_version()?;
    let mut cache = cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((v, map)) = cache.as_ref()
        && *v == version
    {
        return Ok(map.clone());
    }
    let map = Arc::new(RuleMap::load(case)?);
    *cache = Some((version, map.clone()));
    Ok(map)
}

/// Prepares an open index for its first search from another thread (with its own connection to the case),
/// while the app shows the case home: what the first search of a process would otherwise do before its
/// first hit — load the finding codes per event (125k findings in a ten-million-event case) and bring the
/// index's facet, time and id columns into memory.
#[derive(Clone)]
pub struct Warmer {
    rules: RuleCache,
    reader: IndexReader,
}

impl Warmer {
    /// Warms; an error leaves the index as it was (the first search then does the work itself).
    pub fn warm(&self, case: &Case) -> Result<()> {
        cached_rule_map(&self.rules, case)?;
        let searcher = self.reader.searcher();
        for segment in searcher.segment_readers() {
            let ff = segment.fast_fields();
            let max = segment.max_doc();
            let mut sum = 0u64;
            for name in FACET_COLUMNS {
                if let Ok(Some(col)) = ff.str(name) {
                    // Touch each column's pages: one value per 512 documents (a page holds more).
                    for doc in (0..max).step_by(512) {
                        sum = sum.wrapping_add(col.term_ords(doc).next().unwrap_or(0));
                    }
                }
            }
            if let (Ok(time), Ok(ids)) = (ff.i64("time"), ff.u64("event_id")) {
                for doc in (0..max).step_by(512) {
                    sum = sum
                        .wrapping_add(time.first(doc).unwrap_or(0) as u64)
                        .wrapping_add(ids.first(doc).unwrap_or(0));
                }
            }
            std::hint::black_box(sum);
        }
        Ok(())
    }
}

fn ix_err(path: &Path) -> impl Fn(tantivy::TantivyError) -> SearchError + '_ {
    move |source| SearchError::Index {
        path: path.to_path_buf(),
        source,
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> SearchError + '_ {
    move |source| SearchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl SearchIndex {
    /// Opens the case's index, creating or repairing it, and brings it up to date with the store.
    pub fn open(case: &mut Case) -> Result<(SearchIndex, SyncReport)> {
        Self::open_with_progress(case, &mut |_| {})
    }

    /// [`open`](Self::open) with progress reports while indexing.
    pub fn open_with_progress(
        case: &mut Case,
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<(SearchIndex, SyncReport)> {
        let dir = case.dir().join(INDEX_DIR);
        let (mut ix, why) = match Self::open_existing(&dir) {
            Ok(Some(ix)) => (ix, None),
            Ok(None) => (Self::create(&dir)?, None),
            Err(e) => {
                tracing::warn!("rebuilding the search index: {e}");
                (
                    Self::create(&dir)?,
                    Some(format!("the index could not be opened ({e})")),
                )
            }
        };
        let mut report = ix.sync(case, progress)?;
        if report.rebuilt.is_none() {
            report.rebuilt = why;
        }
        Ok((ix, report))
    }

    /// Deletes the index and builds it again from the store.
    pub fn rebuild(
        case: &mut Case,
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<(SearchIndex, SyncReport)> {
        let dir = case.dir().join(INDEX_DIR);
        let mut ix = Self::create(&dir)?;
        let mut report = ix.sync(case, progress)?;
        report.rebuilt = Some("requested".into());
        Ok((ix, report))
    }

    fn open_existing(dir: &Path) -> Result<Option<SearchIndex>> {
        if !dir.join("meta.json").is_file() {
            return Ok(None);
        }
        let index = Index::open_in_dir(dir).map_err(ix_err(dir))?;
        let (schema, fields) = Fields::build();
        if index.schema() != schema {
            return Err(SearchError::Index {
                path: dir.to_path_buf(),
                source: tantivy::TantivyError::SchemaError("schema of another version".into()),
            });
        }
        Ok(Some(Self::finish(index, fields, dir)?))
    }

    fn create(dir: &Path) -> Result<SearchIndex> {
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(io_err(dir))?;
        }
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (schema, fields) = Fields::build();
        let index = Index::create_in_dir(dir, schema).map_err(ix_err(dir))?;
        Self::finish(index, fields, dir)
    }

    fn finish(mut index: Index, fields: Fields, dir: &Path) -> Result<SearchIndex> {
        schema::register_tokenizers(&index);
        // Segments are searched (and their facets counted) in parallel, one thread per core: at ten million
        // events a broad query's facet pass is the cost of a search.
        index
            .set_default_multithread_executor()
            .map_err(ix_err(dir))?;
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()
            .map_err(ix_err(dir))?;
        Ok(SearchIndex {
            index,
            reader,
            fields,
            dir: dir.to_path_buf(),
            rules: RuleCache::default(),
        })
    }

    fn payload(&self) -> Result<Option<Payload>> {
        let metas = self.index.load_metas().map_err(ix_err(&self.dir))?;
        Ok(metas
            .payload
            .and_then(|p| serde_json::from_str::<Payload>(&p).ok()))
    }

    /// The last event id the index holds (0 when empty).
    pub fn through_event_id(&self) -> Result<i64> {
        Ok(self.payload()?.map_or(0, |p| p.through_event_id))
    }

    /// Documents in the index.
    pub fn num_docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// Bytes the index takes on disk.
    pub fn size_bytes(&self) -> u64 {
        walk_size(&self.dir)
    }

    /// Indexes the events the store has and the index does not (and derives their table facts).
    pub fn sync(
        &mut self,
        case: &mut Case,
        progress: &mut dyn FnMut(SyncProgress),
    ) -> Result<SyncReport> {
        let store_max = case.max_event_id()?;
        let mut report = SyncReport::default();
        let mut through = match self.payload()? {
            Some(p) if p.format == INDEX_FORMAT && p.through_event_id <= store_max => {
                p.through_event_id
            }
            Some(p) => {
                let why = if p.format != INDEX_FORMAT {
                    format!(
                        "index format {} (this nbtrail writes {INDEX_FORMAT})",
                        p.format
                    )
                } else {
                    format!(
                        "the index holds events up to id {} but the case only up to {store_max}",
                        p.through_event_id
                    )
                };
                *self = Self::create(&self.dir)?;
                report.rebuilt = Some(why);
                0
            }
            None => {
                if self.num_docs() > 0 {
                    *self = Self::create(&self.dir)?;
                    report.rebuilt = Some("the index has no sync record".into());
                }
                0
            }
        };
        report.through_event_id = through;
        if through == store_max {
            return Ok(report);
        }
        let total = case.count_events_after(through)?;
        let mut writer: tantivy::IndexWriter<TantivyDocument> = self
            .index
            .writer_with_num_threads(index_threads(), WRITER_MEMORY)
            .map_err(ix_err(&self.dir))?;
        writer.set_merge_policy(Box::new(merge_policy()));
        let paths = case.notebook_path_history()?;
        let f = self.fields;
        let mut facts: Vec<(i64, String, &'static str)> = Vec::new();
        {
            let mut done = 0u64;
            let mut payloads = nbtrail_store::payload::BlockReader::default();
            let mut table_memo = TableMemo::default();
            let case: &Case = case;
            // One deep stack for every cell's table derivation (`guard::deep_stack_scope`), not one each.
            nbtrail_analyzer::guard::deep_stack_scope(|| {
                case.scan_events_after(through, |ev| -> Result<()> {
                    let nbtrail_store::IndexRow { event, payload } = ev;
                    let nbtrail_store::EventRow {
                        id,
                        fields:
                            nbtrail_model::EventFields {
                                time,
                                user,
                                workspace_id: workspace,
                                service,
                                action,
                                notebook_id,
                                notebook_path,
                                cluster_id: cluster,
                                language,
                                command_text: code,
                                status,
                                source_ip: ip,
                                response_status,
                                response_error,
                                ..
                            },
                        shape,
                        ..
                    } = event;
                    let time_ms = time.timestamp_millis();

                    let mut doc = TantivyDocument::default();
                    doc.add_u64(f.event_id, id as u64);
                    doc.add_i64(f.time, time_ms);
                    let full_action = format!("{service}.{action}");
                    doc.add_text(f.action, &action);
                    doc.add_text(f.action, &full_action);
                    doc.add_text(f.f_action, &full_action);
                    doc.add_text(f.service, &service);
                    let mut meta = format!("{full_action}\n");
                    if let Some(u) = &user {
                        doc.add_text(f.user, u);
                        doc.add_text(f.f_user, u);
                        meta.push_str(u);
                        meta.push('\n');
                    }
                    let mut shown_path = notebook_path.clone();
                    if let Some(nb) = &notebook_id {
                        doc.add_text(f.notebook, nb);
                        if let Some(known) = paths.get(nb) {
                            for p in known {
                                if Some(p) != notebook_path.as_ref() {
                                    doc.add_text(f.notebook, p);
                                }
                            }
                            if shown_path.is_none() {
                                shown_path = known.last().cloned();
                            }
                        }
                    }
                    if let Some(p) = &notebook_path {
                        doc.add_text(f.notebook, p);
                    }
                    match (&shown_path, &notebook_id) {
                        (Some(p), _) => {
                            doc.add_text(f.f_notebook, p);
                            meta.push_str(p);
                            meta.push('\n');
                        }
                        (None, Some(nb)) => doc.add_text(f.f_notebook, nb),
                        _ => {}
                    }
                    for (field, v) in [
                        (f.workspace, &workspace),
                        (f.cluster, &cluster),
                        (f.language, &language),
                        (f.ip, &ip),
                    ] {
                        if let Some(v) = v {
                            doc.add_text(field, v);
                        }
                    }
                    if let Some(s) = &status {
                        doc.add_text(f.status, s);
                        doc.add_text(f.f_status, s);
                    } else if let Some(code) = response_status {
                        doc.add_text(f.f_status, code.to_string());
                    }
                    if let Some(code) = response_status {
                        doc.add_text(f.status, code.to_string());
                    }
                    if let Some(e) = &response_error {
                        meta.push_str(e);
                        meta.push('\n');
                    }
                    if let Some(code) = &code {
                        add_bounded(&mut doc, f.code, code, &mut meta);
                        for t in table_memo.tables(code, language.as_deref()) {
                            let access_field = match t.access {
                                nbtrail_analyzer::tables::Access::Read => f.table_read,
                                nbtrail_analyzer::tables::Access::Write => f.table_write,
                            };
                            for suffix in name_suffixes(&t.name) {
                                doc.add_text(f.table, suffix);
                                doc.add_text(access_field, suffix);
                            }
                            doc.add_text(f.f_table, &t.name);
                            meta.push_str(&t.name);
                            meta.push('\n');
                            facts.push((id, t.name.clone(), t.access.as_str()));
                        }
                    }
                    if service == "lineage" {
                        // Unity Catalog lineage names the tables itself: found by `table:` like a cell's,
                        // and marked as lineage-derived by the event's own service.
                        let params = case.payload_params(&mut payloads, payload)?;
                        for (name, access) in lineage_tables(&params) {
                            let access_field = match access {
                                nbtrail_analyzer::tables::Access::Read => f.table_read,
                                nbtrail_analyzer::tables::Access::Write => f.table_write,
                            };
                            for suffix in name_suffixes(&name) {
                                doc.add_text(f.table, suffix);
                                doc.add_text(access_field, suffix);
                            }
                            doc.add_text(f.f_table, &name);
                            meta.push_str(&name);
                            meta.push('\n');
                            facts.push((id, name, access.as_str()));
                        }
                    }
                    if shape == Shape::Capture.as_str() && service == "jupyter" {
                        // What the user was shown: captured outputs carry their text in the parameters.
                        let params = case.payload_params(&mut payloads, payload)?;
                        if let Some(text) = output_text(&params) {
                            add_bounded(&mut doc, f.output, &text, &mut meta);
                        }
                    }
                    doc.add_text(f.meta, &meta);
                    writer.add_document(doc).map_err(ix_err(&self.dir))?;
                    through = id;
                    done += 1;
                    if done.is_multiple_of(10_000) {
                        progress(SyncProgress { done, total });
                    }
                    Ok(())
                })
            })?;
            progress(SyncProgress { done, total });
            report.indexed = done;
        }
        report.table_facts = facts.len() as u64;
        // Store first (idempotent), then the index: a crash in between is redone on the next open.
        case.add_cell_tables(&facts)?;
        let mut prepared = writer.prepare_commit().map_err(ix_err(&self.dir))?;
        prepared.set_payload(
            &serde_json::to_string(&Payload {
                format: INDEX_FORMAT,
                through_event_id: through,
            })
            .expect("payload serializes"),
        );
        prepared.commit().map_err(ix_err(&self.dir))?;
        writer.wait_merging_threads().map_err(ix_err(&self.dir))?;
        self.reader.reload().map_err(ix_err(&self.dir))?;
        report.through_event_id = through;
        Ok(report)
    }

    /// Every event id the query matches (for exports of a whole search), with the parse warnings.
    pub fn matching_ids(&self, case: &Case, q: &str) -> Result<(Vec<i64>, Vec<String>)> {
        let lookup = CaseLookup { case };
        let compiled = query::compile(
            q,
            &self.fields,
            &lookup,
            chrono::Utc::now().timestamp_millis(),
        );
        let searcher = self.reader.searcher();
        let docs = searcher
            .search(&*compiled.query, &tantivy::collector::DocSetCollector)
            .map_err(ix_err(&self.dir))?;
        let mut ids = Vec::with_capacity(docs.len());
        let mut columns: HashMap<u32, Column<u64>> = HashMap::new();
        for addr in docs {
            let col = match columns.entry(addr.segment_ord) {
                std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                std::collections::hash_map::Entry::Vacant(v) => v.insert(
                    searcher
                        .segment_reader(addr.segment_ord)
                        .fast_fields()
                        .u64("event_id")
                        .map_err(ix_err(&self.dir))?,
                ),
            };
            if let Some(id) = col.first(addr.doc_id) {
                ids.push(id as i64);
            }
        }
        ids.sort_unstable();
        Ok((ids, compiled.warnings))
    }

    /// The finding codes per event, reloaded only when the findings changed.
    fn rule_map(&self, case: &Case) -> Result<Arc<RuleMap>> {
        cached_rule_map(&self.rules, case)
    }

    /// A handle to warm this index from another thread ([`Warmer::warm`]).
    pub fn warmer(&self) -> Warmer {
        Warmer {
            rules: self.rules.clone(),
            reader: self.reader.clone(),
        }
    }

    /// Runs a search.
    pub fn search(&self, case: &Case, req: &SearchRequest) -> Result<SearchResult> {
        let lookup = CaseLookup { case };
        let now_ms = req
            .now_ms
            .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
        let compiled = query::compile(&req.query, &self.fields, &lookup, now_ms);
        let searcher = self.reader.searcher();
        let rules = self.rule_map(case)?;
        let facets = FacetCollector {
            rules: rules.clone(),
            top: None,
        };
        let err = ix_err(&self.dir);
        let (total, addrs, mut fruit): (usize, Vec<(DocAddress, Option<f32>)>, FacetFruit) =
            match req.sort {
                Sort::Relevance => {
                    let top = TopDocs::with_limit(req.limit.max(1)).and_offset(req.offset);
                    let (n, docs, fr) = searcher
                        .search(&*compiled.query, &(Count, top.order_by_score(), facets))
                        .map_err(&err)?;
                    (n, docs.into_iter().map(|(s, a)| (a, Some(s))).collect(), fr)
                }
                Sort::Newest | Sort::Oldest => {
                    // The facet pass reads every hit's time anyway: it also keeps the newest (oldest) hits,
                    // which is cheaper than a second top-k collector reading the column again.
                    let facets = FacetCollector {
                        top: Some(TimeTop {
                            newest: req.sort == Sort::Newest,
                            keep: req.offset + req.limit.max(1),
                        }),
                        ..facets
                    };
                    let (n, mut fr) = searcher
                        .search(&*compiled.query, &(Count, facets))
                        .map_err(&err)?;
                    let docs = std::mem::take(&mut fr.top)
                        .into_iter()
                        .skip(req.offset)
                        .take(req.limit.max(1))
                        .map(|c| (c.addr, None))
                        .collect();
                    (n, docs, fr)
                }
            };
        let generator = |field| {
            SnippetGenerator::create(&searcher, &*compiled.query, field).map(|mut g| {
                g.set_max_num_chars(240);
                g
            })
        };
        let code_snippets = generator(self.fields.code).map_err(&err)?;
        let meta_snippets = generator(self.fields.meta).map_err(&err)?;
        let output_snippets = generator(self.fields.output).map_err(&err)?;
        let mut hits = Vec::with_capacity(addrs.len());
        for (addr, score) in addrs {
            let ids = searcher
                .segment_reader(addr.segment_ord)
                .fast_fields()
                .u64("event_id")
                .map_err(&err)?;
            let Some(id) = ids.first(addr.doc_id) else {
                continue;
            };
            hits.push(hit(
                case,
                id as i64,
                score,
                &Snippets {
                    code: &code_snippets,
                    meta: &meta_snippets,
                    output: &output_snippets,
                },
                &rules,
            )?);
        }
        let times = std::mem::take(&mut fruit.times);
        Ok(SearchResult {
            total: total as u64,
            hits,
            facets: fruit.facets(&rules, req.facet_limit),
            histogram: histogram(times),
            warnings: compiled.warnings,
        })
    }
}

type Tables = Vec<TableRef>;

/// The tables of recently seen cell texts. Finding a cell's tables parses it (SQL or Python), and the same
/// text runs again and again — re-run cells, scheduled jobs running the same notebook every day — so the
/// answer for a (code, language) pair is remembered. Bounded: forgotten wholesale when full.
#[derive(Default)]
struct TableMemo {
    /// Code → (language, its tables) for each language the code was seen with.
    by_code: HashMap<String, Vec<(Option<String>, Tables)>>,
    entries: usize,
}

impl TableMemo {
    const MAX_ENTRIES: usize = 20_000;

    fn tables(&mut self, code: &str, language: Option<&str>) -> &[TableRef] {
        let known = self
            .by_code
            .get(code)
            .and_then(|v| v.iter().position(|(l, _)| l.as_deref() == language));
        let (list, at) = match known {
            Some(at) => (self.by_code.get_mut(code).expect("present"), at),
            None => {
                if self.entries >= Self::MAX_ENTRIES {
                    self.by_code.clear();
                    self.entries = 0;
                }
                let cell = Cell::new(String::new(), code, language);
                let found = nbtrail_analyzer::tables::tables(&cell);
                self.entries += 1;
                let list = self.by_code.entry(code.to_string()).or_default();
                list.push((language.map(str::to_string), found));
                let at = list.len() - 1;
                (list, at)
            }
        };
        &list[at].1
    }
}

/// Code or output text longer than this is indexed by its first and last halves of this bound (searches
/// find words there); the event's metadata then holds [`CUT_MARK`], so `nbtrail_index_cut` lists them.
/// The store keeps the whole text (replay, export, analysis see all of it).
pub const MAX_INDEXED_TEXT_BYTES: usize = 16 << 20;

/// The word added to the metadata of an event whose text was indexed in part.
pub const CUT_MARK: &str = "nbtrail_index_cut";

/// Adds `text` to `field` within [`MAX_INDEXED_TEXT_BYTES`] (head and tail, cut at character boundaries),
/// noting [`CUT_MARK`] in `meta` when it was cut.
fn add_bounded(
    doc: &mut TantivyDocument,
    field: tantivy::schema::Field,
    text: &str,
    meta: &mut String,
) {
    if text.len() <= MAX_INDEXED_TEXT_BYTES {
        doc.add_text(field, text);
        return;
    }
    let half = MAX_INDEXED_TEXT_BYTES / 2;
    let mut head_end = half;
    while !text.is_char_boundary(head_end) {
        head_end -= 1;
    }
    let mut tail_start = text.len() - half;
    while !text.is_char_boundary(tail_start) {
        tail_start += 1;
    }
    let mut out = String::with_capacity(head_end + 1 + text.len() - tail_start);
    out.push_str(&text[..head_end]);
    out.push('\n');
    out.push_str(&text[tail_start..]);
    doc.add_text(field, &out);
    meta.push_str(CUT_MARK);
    meta.push('\n');
}

/// The index writer's memory budget, shared by its threads: each flushes a segment when its share is full.
const WRITER_MEMORY: usize = 256 << 20;

/// Segments with more documents than this are not merged again.
///
/// tantivy's log merge policy merges 8 segments of a size into one of the next size, so every document is
/// rewritten once per level — and the number of levels grows with the log of the case's size: at 1M events
/// the writer's flushed segments (~56k events each) are merged once into ~450k-event segments; at 10M those
/// would be merged again into ~3.6M-event segments, a further rewrite of nearly everything, which made the
/// index phase 11× the 1M time (issue 21). Capped here, flushed segments are merged once (~450k events
/// each) and left alone after: ingest cost is linear in the events, and a 10M case has two dozen segments
/// (24 measured), which searches run in parallel.
const MAX_DOCS_BEFORE_MERGE: usize = 200_000;

fn merge_policy() -> tantivy::merge_policy::LogMergePolicy {
    let mut p = tantivy::merge_policy::LogMergePolicy::default();
    p.set_max_docs_before_merge(MAX_DOCS_BEFORE_MERGE);
    p
}

/// Indexing threads: one per core up to 4 (`NBTRAIL_INDEX_THREADS` overrides, for benchmarks).
fn index_threads() -> usize {
    std::env::var("NBTRAIL_INDEX_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get().min(4)))
}

fn walk_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.filter_map(std::result::Result::ok)
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk_size(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    })
}

/// `a.b.c` → `a.b.c`, `b.c`, `c`: `table:customers` finds `prod.customers` and `main.prod.customers`.
/// The tables a lineage row names (its source read, its target written), normalised like code's tables.
fn lineage_tables(params: &str) -> Vec<(String, nbtrail_analyzer::tables::Access)> {
    use nbtrail_analyzer::tables::Access;
    nbtrail_store::lineage_endpoints(params)
        .into_iter()
        .map(|(access, name, _)| {
            let access = if access == "write" {
                Access::Write
            } else {
                Access::Read
            };
            (name.to_ascii_lowercase(), access)
        })
        .collect()
}

fn name_suffixes(name: &str) -> impl Iterator<Item = &str> {
    std::iter::once(name).chain(name.match_indices('.').map(move |(i, _)| &name[i + 1..]))
}

struct CaseLookup<'a> {
    case: &'a Case,
}

impl query::Lookup for CaseLookup<'_> {
    fn events_with_rule(&self, code_glob: &str) -> Vec<u64> {
        self.case
            .events_with_finding_code(code_glob)
            .unwrap_or_default()
            .into_iter()
            .map(|i| i as u64)
            .collect()
    }

    fn events_in_session(&self, prefix: &str) -> Vec<u64> {
        self.case
            .events_in_sessions_with_prefix(prefix)
            .unwrap_or_default()
            .into_iter()
            .map(|i| i as u64)
            .collect()
    }
}

/// Finding codes per event (cached by [`SearchIndex`] per findings version).
struct RuleMap {
    codes: Vec<String>,
    by_event: HashMap<u64, Vec<u32>, IdHash>,
}

/// Hashing for event ids, which are looked up once per hit while counting the rule facet: one multiply
/// (Fibonacci hashing) instead of SipHash. Ids are the store's own integers, not attacker-chosen keys.
#[derive(Clone, Copy, Default)]
struct IdHash;

impl std::hash::BuildHasher for IdHash {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(0)
    }
}

struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (n ^ self.0).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

impl RuleMap {
    fn load(case: &Case) -> Result<RuleMap> {
        let mut codes: Vec<String> = Vec::new();
        let mut by_event: HashMap<u64, Vec<u32>, IdHash> = HashMap::default();
        let mut last = usize::MAX;
        case.for_each_finding_code(|id, code| {
            // Rows of one code tend to come together: the previous code is tried first.
            if codes.get(last).is_none_or(|c| c != code) {
                last = match codes.iter().position(|c| c == code) {
                    Some(k) => k,
                    None => {
                        codes.push(code.to_string());
                        codes.len() - 1
                    }
                };
            }
            let ks = by_event.entry(id as u64).or_default();
            if !ks.contains(&(last as u32)) {
                ks.push(last as u32);
            }
        })?;
        // Codes in order, and each event's codes in that order (what hits show).
        let mut order: Vec<usize> = (0..codes.len()).collect();
        order.sort_by(|&a, &b| codes[a].cmp(&codes[b]));
        let mut rank = vec![0u32; codes.len()];
        for (r, &k) in order.iter().enumerate() {
            rank[k] = r as u32;
        }
        for ks in by_event.values_mut() {
            for k in ks.iter_mut() {
                *k = rank[*k as usize];
            }
            ks.sort_unstable();
        }
        let codes = order.into_iter().map(|k| codes[k].clone()).collect();
        Ok(RuleMap { codes, by_event })
    }

    fn of(&self, id: u64) -> Vec<String> {
        self.by_event
            .get(&id)
            .map(|ks| ks.iter().map(|&k| self.codes[k as usize].clone()).collect())
            .unwrap_or_default()
    }
}

fn hit(
    case: &Case,
    id: i64,
    score: Option<f32>,
    snippets: &Snippets<'_>,
    rules: &RuleMap,
) -> Result<Hit> {
    let Some(row) = case.hit_row(id)? else {
        return Err(SearchError::Store(StoreError::NotFound(format!(
            "event {id} is in the index but not in the case; run `nbtrail reindex`"
        ))));
    };
    let nbtrail_store::HitRow {
        time_ms,
        user,
        action,
        notebook_path,
        command_text: code,
        response_error: error,
        session_id,
        output_params,
    } = row;
    // A captured output stands in for code: its text is what the hit shows.
    let code = code.or_else(|| output_params.as_deref().and_then(output_text));
    let generator = if action.starts_with("jupyter.") {
        snippets.output
    } else {
        snippets.code
    };
    // The code's (output's) match if it matched; else the metadata's match; else the start of the code
    // (or of the metadata when there is no code).
    let code_hit = code
        .as_deref()
        .map(|c| generator.snippet(c))
        .filter(|s| !s.highlighted().is_empty());
    let snippet = match code_hit {
        Some(s) => to_snippet(&s),
        None => {
            let meta = meta_line(&user, &action, &notebook_path, &error);
            let m = snippets.meta.snippet(&meta);
            if !m.highlighted().is_empty() {
                to_snippet(&m)
            } else {
                head(code.as_deref().unwrap_or(&meta))
            }
        }
    };
    Ok(Hit {
        event_id: id,
        session_id,
        user,
        time: nbtrail_model::format_time(nbtrail_model::time_from_ms(time_ms).unwrap_or_default()),
        time_ms,
        action,
        notebook_path,
        snippet,
        rules: rules.of(id as u64),
        score,
    })
}

/// The snippet generators of one query, per field.
struct Snippets<'a> {
    code: &'a SnippetGenerator,
    meta: &'a SnippetGenerator,
    output: &'a SnippetGenerator,
}

/// The `output_text` parameter of a captured output (see `nbtrail_ingest::capture`).
fn output_text(params: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(params).ok()?;
    v.get("output_text")?.as_str().map(str::to_string)
}

fn meta_line(
    user: &Option<String>,
    action: &str,
    path: &Option<String>,
    error: &Option<String>,
) -> String {
    [
        Some(action),
        user.as_deref(),
        path.as_deref(),
        error.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" · ")
}

fn head(text: &str) -> Snippet {
    Snippet {
        text: text.chars().take(240).collect(),
        ranges: vec![],
    }
}

/// Converts tantivy's byte ranges to character ranges, merging parts of one identifier
/// (`secrets` `.` `get` → one range).
fn to_snippet(s: &tantivy::snippet::Snippet) -> Snippet {
    let text = s.fragment();
    let mut ranges: Vec<std::ops::Range<usize>> = s.highlighted().to_vec();
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for r in ranges {
        if let Some(last) = merged.last_mut()
            && r.start >= last.end
            && text[last.end..r.start]
                .chars()
                .all(|c| c == '.' || c == '_')
            && r.start - last.end <= 2
        {
            last.end = last.end.max(r.end);
            continue;
        }
        if let Some(last) = merged.last_mut()
            && r.start < last.end
        {
            last.end = last.end.max(r.end);
            continue;
        }
        merged.push(r);
    }
    let char_at = |b: usize| text[..b].chars().count();
    Snippet {
        text: text.to_string(),
        ranges: merged
            .into_iter()
            .map(|r| [char_at(r.start), char_at(r.end)])
            .collect(),
    }
}

/// Chooses a bucket width giving at most [`MAX_BUCKETS`] buckets and counts `times` into it.
pub fn histogram(times: Vec<i64>) -> Histogram {
    if times.is_empty() {
        return Histogram::default();
    }
    let (lo, hi) = times
        .iter()
        .fold((i64::MAX, i64::MIN), |(lo, hi), &t| (lo.min(t), hi.max(t)));
    const S: i64 = 1000;
    const STEPS: &[i64] = &[
        S,
        5 * S,
        15 * S,
        60 * S,
        5 * 60 * S,
        15 * 60 * S,
        30 * 60 * S,
        3600 * S,
        3 * 3600 * S,
        6 * 3600 * S,
        12 * 3600 * S,
        86_400 * S,
        7 * 86_400 * S,
        30 * 86_400 * S,
        365 * 86_400 * S,
    ];
    let interval = STEPS
        .iter()
        .copied()
        .find(|&i| (hi.div_euclid(i) - lo.div_euclid(i)) < MAX_BUCKETS as i64)
        .unwrap_or_else(|| ((hi - lo) / (MAX_BUCKETS as i64 - 1)).max(1));
    let first = lo.div_euclid(interval) * interval;
    let n = (hi.div_euclid(interval) - lo.div_euclid(interval) + 1) as usize;
    let mut buckets: Vec<Bucket> = (0..n)
        .map(|k| Bucket {
            start_ms: first + k as i64 * interval,
            count: 0,
        })
        .collect();
    for t in times {
        let k = ((t - first).div_euclid(interval)) as usize;
        buckets[k.min(n - 1)].count += 1;
    }
    Histogram {
        interval_ms: interval,
        buckets,
    }
}

// ---- facets ---------------------------------------------------------------------------------------

/// Counts facet values and collects hit times over the whole result set.
struct FacetCollector {
    rules: Arc<RuleMap>,
    /// Also keep the newest (oldest) hits, for the time-sorted orders.
    top: Option<TimeTop>,
}

/// Which hits a time-sorted search keeps: by (time, event id), newest or oldest first.
#[derive(Clone, Copy)]
struct TimeTop {
    newest: bool,
    /// Offset + limit.
    keep: usize,
}

/// A hit kept for a time-sorted result. Ordered so that the heap's greatest is the *worst* kept hit.
#[derive(Clone, Copy, PartialEq, Eq)]
struct TimeHit {
    time: i64,
    id: u64,
    addr: DocAddress,
    newest: bool,
}

impl TimeHit {
    /// Best first.
    fn rank(&self, other: &Self) -> std::cmp::Ordering {
        let by_key = (self.time, self.id).cmp(&(other.time, other.id));
        if self.newest {
            by_key.reverse()
        } else {
            by_key
        }
    }
}

impl Ord for TimeHit {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank(other)
    }
}

impl PartialOrd for TimeHit {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The `top.keep` best of one segment's hits (`times[k]` is the time of `docs[k]`), best first. Hits come in
/// document order, which is about ingest (time) order: walking from the end that favours the wanted order
/// (the end for newest first) fills the heap with the answer early, and from then on most hits are turned
/// away by one comparison of times, without reading their event id.
fn segment_time_top(
    top: TimeTop,
    segment_ord: u32,
    times: &[i64],
    docs: &[DocId],
    ids: &Column<u64>,
) -> Vec<TimeHit> {
    let mut heap: std::collections::BinaryHeap<TimeHit> =
        std::collections::BinaryHeap::with_capacity(top.keep.min(times.len()) + 1);
    let mut consider = |k: usize| {
        let time = times[k];
        if heap.len() == top.keep
            && let Some(worst) = heap.peek()
        {
            let worse_time = if top.newest {
                time < worst.time
            } else {
                time > worst.time
            };
            if worse_time {
                return;
            }
        }
        let hit = TimeHit {
            time,
            id: ids.first(docs[k]).unwrap_or(0),
            addr: DocAddress::new(segment_ord, docs[k]),
            newest: top.newest,
        };
        if heap.len() < top.keep {
            heap.push(hit);
        } else if let Some(mut worst) = heap.peek_mut()
            && hit < *worst
        {
            *worst = hit;
        }
    };
    if top.newest {
        (0..times.len()).rev().for_each(&mut consider);
    } else {
        (0..times.len()).for_each(&mut consider);
    }
    heap.into_sorted_vec()
}

struct FacetFruit {
    /// Per facet column (user, notebook, action, status, table): value → count.
    columns: Vec<HashMap<String, u64>>,
    /// Rule code index → count.
    rules: Vec<u64>,
    times: Vec<i64>,
    /// The kept hits of a time-sorted search, best first.
    top: Vec<TimeHit>,
}

impl FacetFruit {
    fn facets(self, rules: &RuleMap, limit: usize) -> BTreeMap<String, Vec<FacetCount>> {
        let top = |m: HashMap<String, u64>| {
            let mut v: Vec<FacetCount> = m
                .into_iter()
                .map(|(value, count)| FacetCount { value, count })
                .collect();
            v.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
            v.truncate(limit);
            v
        };
        let mut out = BTreeMap::new();
        let mut cols = self.columns.into_iter();
        for name in ["user", "notebook", "action", "status", "table"] {
            out.insert(name.to_string(), top(cols.next().unwrap_or_default()));
        }
        let rule_counts: HashMap<String, u64> = self
            .rules
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| (rules.codes[k].clone(), *c))
            .collect();
        out.insert("rule".into(), top(rule_counts));
        out
    }
}

const FACET_COLUMNS: [&str; 5] = ["f_user", "f_notebook", "f_action", "f_status", "f_table"];
/// The first this many facet columns hold at most one value per document.
const SINGLE_VALUED: usize = 4;

struct FacetSegment {
    columns: Vec<Option<StrColumn>>,
    counts: Vec<Vec<u32>>,
    ids: Column<u64>,
    time: Column<i64>,
    times: Vec<i64>,
    rule_counts: Vec<u64>,
    rules: Arc<RuleMap>,
    /// Scratch for a block of documents' column values (`collect_block`).
    ords: Vec<Option<u64>>,
    stamps: Vec<Option<i64>>,
    /// Hits given one at a time, waiting to be counted as a block.
    pending: Vec<DocId>,
    /// For a time-sorted search: which hits to keep, the segment, and each timed hit (beside `times`).
    top: Option<TimeTop>,
    segment_ord: u32,
    docs: Vec<DocId>,
}

impl Collector for FacetCollector {
    type Fruit = FacetFruit;
    type Child = FacetSegment;

    fn for_segment(&self, ord: u32, segment: &SegmentReader) -> tantivy::Result<FacetSegment> {
        let ff = segment.fast_fields();
        let mut columns = Vec::new();
        let mut counts = Vec::new();
        for name in FACET_COLUMNS {
            let col = ff.str(name)?;
            counts.push(vec![0u32; col.as_ref().map_or(0, |c| c.num_terms())]);
            columns.push(col);
        }
        Ok(FacetSegment {
            columns,
            counts,
            ids: ff.u64("event_id")?,
            time: ff.i64("time")?,
            times: Vec::new(),
            rule_counts: vec![0; self.rules.codes.len()],
            rules: self.rules.clone(),
            ords: Vec::new(),
            stamps: Vec::new(),
            pending: Vec::with_capacity(tantivy::COLLECT_BLOCK_BUFFER_LEN),
            top: self.top,
            segment_ord: ord,
            docs: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<FacetFruit>) -> tantivy::Result<FacetFruit> {
        let mut out = FacetFruit {
            columns: vec![HashMap::new(); FACET_COLUMNS.len()],
            rules: vec![0; self.rules.codes.len()],
            times: Vec::new(),
            top: Vec::new(),
        };
        for f in fruits {
            for (acc, m) in out.columns.iter_mut().zip(f.columns) {
                for (k, v) in m {
                    *acc.entry(k).or_default() += v;
                }
            }
            for (a, b) in out.rules.iter_mut().zip(f.rules) {
                *a += b;
            }
            out.times.extend(f.times);
            out.top.extend(f.top);
        }
        if let Some(top) = self.top {
            out.top.sort_unstable_by(TimeHit::rank);
            out.top.truncate(top.keep);
        }
        Ok(out)
    }
}

impl SegmentCollector for FacetSegment {
    type Fruit = FacetFruit;

    /// One hit (scored queries come one at a time): buffered, and counted a block at a time.
    fn collect(&mut self, doc: DocId, _score: Score) {
        self.pending.push(doc);
        if self.pending.len() == tantivy::COLLECT_BLOCK_BUFFER_LEN {
            let block = std::mem::take(&mut self.pending);
            self.collect_block(&block);
            self.pending = block;
            self.pending.clear();
        }
    }

    /// A block of hits (up to 64 at a time): each column is read for the whole block at once
    /// (`first_vals`), which is what makes counting facets over millions of hits cheap.
    fn collect_block(&mut self, docs: &[DocId]) {
        let n = docs.len();
        self.ords.clear();
        self.ords.resize(n, None);
        for (k, (col, counts)) in self.columns.iter().zip(self.counts.iter_mut()).enumerate() {
            let Some(col) = col else { continue };
            if k < SINGLE_VALUED {
                col.ords().first_vals(docs, &mut self.ords);
                for ord in self.ords.iter().flatten() {
                    counts[*ord as usize] += 1;
                }
            } else {
                for &doc in docs {
                    for ord in col.term_ords(doc) {
                        counts[ord as usize] += 1;
                    }
                }
            }
        }
        self.stamps.clear();
        self.stamps.resize(n, None);
        self.time.first_vals(docs, &mut self.stamps);
        self.times.extend(self.stamps.iter().flatten());
        if self.top.is_some() {
            self.docs.extend(
                docs.iter()
                    .zip(&self.stamps)
                    .filter(|(_, t)| t.is_some())
                    .map(|(d, _)| *d),
            );
        }
        if !self.rules.by_event.is_empty() {
            self.ords.iter_mut().for_each(|o| *o = None);
            self.ids.first_vals(docs, &mut self.ords);
            for id in self.ords.iter().flatten() {
                if let Some(ks) = self.rules.by_event.get(id) {
                    for &k in ks {
                        self.rule_counts[k as usize] += 1;
                    }
                }
            }
        }
    }

    fn harvest(mut self) -> FacetFruit {
        if !self.pending.is_empty() {
            let block = std::mem::take(&mut self.pending);
            self.collect_block(&block);
        }
        let mut columns = Vec::new();
        for (col, counts) in self.columns.iter().zip(self.counts) {
            let mut m = HashMap::new();
            if let Some(col) = col {
                // The values seen, in ordinal order: one pass through the dictionary's blocks instead of a
                // lookup (and a block decode) per value.
                let ords: Vec<u64> = (0..counts.len() as u64)
                    .filter(|&o| counts[o as usize] > 0)
                    .collect();
                let mut k = 0usize;
                let _ = col.dictionary().sorted_ords_to_term_cb(&ords, |term| {
                    if let Some(&o) = ords.get(k) {
                        m.insert(
                            String::from_utf8_lossy(term).into_owned(),
                            u64::from(counts[o as usize]),
                        );
                    }
                    k += 1;
                });
            }
            columns.push(m);
        }
        let top = match self.top {
            Some(top) => {
                segment_time_top(top, self.segment_ord, &self.times, &self.docs, &self.ids)
            }
            None => Vec::new(),
        };
        FacetFruit {
            columns,
            rules: self.rule_counts,
            times: self.times,
            top,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn direct(code: &str, language: Option<&str>) -> Vec<TableRef> {
        nbtrail_analyzer::tables::tables(&Cell::new(String::new(), code, language))
    }

    /// A delivered audit-log record of a notebook command: request `i`, at `time_ms`, running `code`.
    fn run_command(i: u32, time_ms: i64, code: &str) -> String {
        serde_json::json!({"timestamp": time_ms, "workspaceId": 1,
            "userIdentity": {"email": "a@example.com"}, "serviceName": "notebook", "actionName": "runCommand",
            "requestId": format!("r{i}"), "requestParams": {"notebookId": "n", "clusterId": "c",
            "commandId": i.to_string(), "commandText": code}, "response": {"statusCode": 200}})
        .to_string()
    }

    /// Writes `lines` to `log` and ingests it into `case` (one run).
    fn ingest_lines(case: &mut Case, log: &Path, lines: &[String]) {
        std::fs::write(log, lines.join("\n") + "\n").unwrap();
        let stream = nbtrail_ingest::RecordStream::open(&[log.to_path_buf()], &[]).unwrap();
        case.ingest(
            stream,
            &std::sync::atomic::AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    }

    /// The finding codes a search reports (hits' `rules`, the `rule` facet) are cached per findings
    /// version: a re-analysis with other findings must show at once in the same open index, as in the app.
    #[test]
    fn rule_facets_follow_a_new_analysis_in_an_open_index() {
        let dir = tempfile::tempdir().unwrap();
        let t = |i: u32| 1_714_550_400_000i64 + i64::from(i) * 1000;
        let mut case = Case::create(&dir.path().join("case")).unwrap();
        ingest_lines(
            &mut case,
            &dir.path().join("a.json"),
            &[
                run_command(1, t(1), "x = 1"),
                run_command(2, t(2), "print(x)"),
            ],
        );
        let (index, _) = SearchIndex::open(&mut case).unwrap();
        let req = SearchRequest {
            query: "print".into(),
            limit: 10,
            ..SearchRequest::default()
        };
        let rules_of = |case: &Case| {
            let r = index.search(case, &req).unwrap();
            (
                r.hits
                    .iter()
                    .flat_map(|h| h.rules.clone())
                    .collect::<Vec<_>>(),
                r.facets["rule"]
                    .iter()
                    .map(|f| f.value.clone())
                    .collect::<Vec<_>>(),
            )
        };
        assert_eq!(rules_of(&case), (vec![], vec![]));
        let session = case.sessions(&Default::default()).unwrap()[0].id.clone();
        let finding = |code: &str| nbtrail_store::StoredFinding {
            id: 0,
            session_id: session.clone(),
            event_id: Some(2),
            source_event_id: Some(2),
            code: code.into(),
            rule: "r".into(),
            severity: "high".into(),
            message: "m".into(),
            line: 1,
            col: 1,
            end_line: 1,
            end_col: 2,
            trace: vec![],
            fingerprint: code.into(),
            triage: "uncategorized".into(),
            time_ms: None,
        };
        for code in ["NBT001", "NBT007"] {
            case.save_findings("sha", &[(session.clone(), vec![finding(code)])], 0)
                .unwrap();
            let want = vec![code.to_string()];
            assert_eq!(rules_of(&case), (want.clone(), want));
        }
        // A warm-up on another thread, with its own connection, fills the same cache the searches read.
        case.save_findings("sha", &[(session.clone(), vec![finding("NBT003")])], 0)
            .unwrap();
        let warmer = index.warmer();
        let case_dir = dir.path().join("case");
        std::thread::spawn(move || warmer.warm(&Case::open(&case_dir).unwrap()).unwrap())
            .join()
            .unwrap();
        let cached = index.rules.lock().unwrap().clone().unwrap();
        assert_eq!(cached.0, case.findings_version().unwrap());
        assert_eq!(cached.1.codes, vec!["NBT003".to_string()]);
        let want = vec!["NBT003".to_string()];
        assert_eq!(rules_of(&case), (want.clone(), want));
    }

    /// Time-sorted results are kept by the facet pass (`segment_time_top`), not by a top-k collector: over
    /// several segments, hits out of time order, many equal times and any offset and limit, the page must be
    /// exactly the brute-force sort by (time, event id), newest or oldest first.
    #[test]
    fn time_sorted_pages_equal_a_full_sort_across_segments_ties_and_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let mut case = Case::create(&dir.path().join("case")).unwrap();
        for run in 0..3u32 {
            let lines: Vec<String> = (0..40u32)
                .map(|k| {
                    let i = run * 40 + k;
                    // Out of order, and only 11 distinct times: ties everywhere.
                    let t = 1_714_550_400_000i64 + i64::from((i * 37) % 11) * 1000;
                    let code = if i % 3 == 0 {
                        format!("x = {i}")
                    } else {
                        format!("print({i})")
                    };
                    run_command(i, t, &code)
                })
                .collect();
            ingest_lines(&mut case, &dir.path().join(format!("{run}.json")), &lines);
            SearchIndex::open(&mut case).unwrap(); // one commit, one segment per run
        }
        let (index, _) = SearchIndex::open(&mut case).unwrap();
        assert!(
            index.reader.searcher().segment_readers().len() > 1,
            "several segments"
        );
        let mut all: Vec<(i64, i64)> = Vec::new();
        case.scan_events_after(0, |row| -> Result<()> {
            if row
                .event
                .fields
                .command_text
                .as_deref()
                .is_some_and(|c| c.starts_with("print"))
            {
                all.push((row.event.fields.time.timestamp_millis(), row.event.id));
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(all.len(), 80);
        for (sort, newest) in [(Sort::Newest, true), (Sort::Oldest, false)] {
            let mut want = all.clone();
            want.sort_unstable();
            if newest {
                want.reverse();
            }
            for (offset, limit) in [
                (0, 1),
                (0, 5),
                (3, 7),
                (20, 30),
                (75, 20),
                (0, 200),
                (90, 5),
            ] {
                let r = index
                    .search(
                        &case,
                        &SearchRequest {
                            query: "print".into(),
                            sort,
                            offset,
                            limit,
                            ..SearchRequest::default()
                        },
                    )
                    .unwrap();
                assert_eq!(r.total, 80);
                let got: Vec<i64> = r.hits.iter().map(|h| h.event_id).collect();
                let expect: Vec<i64> = want
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .map(|&(_, id)| id)
                    .collect();
                assert_eq!(got, expect, "{sort:?} offset {offset} limit {limit}");
            }
        }
    }

    #[test]
    fn the_table_memo_answers_as_the_extractor_per_code_and_language() {
        let mut memo = TableMemo::default();
        let sql = "SELECT * FROM prod.crm.customers";
        let py = "spark.table(\"prod.sales.orders\").write.saveAsTable(\"scratch.x\")";
        let cases = [
            (sql, Some("sql")),
            (sql, Some("python")), // same text, another language: not SQL, no tables
            (py, Some("python")),
            (py, None),
            ("%sql\nINSERT INTO a.b SELECT * FROM c.d", Some("python")),
        ];
        for _ in 0..3 {
            for (code, lang) in cases {
                assert_eq!(
                    memo.tables(code, lang),
                    direct(code, lang),
                    "{code} {lang:?}"
                );
            }
        }
        assert!(!memo.tables(sql, Some("sql")).is_empty());
        assert!(memo.tables(sql, Some("python")).is_empty());
        assert_eq!(memo.entries, cases.len());
        // Bounded: full means forgotten, and answers stay right.
        for i in 0..TableMemo::MAX_ENTRIES + 10 {
            let code = format!("SELECT * FROM t{i}");
            assert_eq!(memo.tables(&code, Some("sql")), direct(&code, Some("sql")));
        }
        assert!(memo.entries <= TableMemo::MAX_ENTRIES);
    }
}
