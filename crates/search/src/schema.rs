//! The index schema: one document per event. Only facts that never change for an event are indexed (its
//! fields, its text, the tables its code touches); facts that change after ingest — session membership
//! (sessions are re-derived when logs arrive or the idle gap changes) and findings (re-analysis, triage) —
//! are joined from SQLite at query time, so the index never goes stale when they change.

use crate::tokens::{CODE_TOKENIZER, CodeTokenizer, KEYWORD_TOKENIZER};
use tantivy::Index;
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{LowerCaser, RawTokenizer, TextAnalyzer};

/// Bumped whenever the schema or tokenization changes: an index of another format is rebuilt.
pub const INDEX_FORMAT: u32 = 1;

/// Handles to the schema's fields.
#[derive(Debug, Clone, Copy)]
pub struct Fields {
    /// Event id (indexed for id sets, fast for hits).
    pub event_id: Field,
    /// Event time, ms since the epoch (UTC).
    pub time: Field,
    /// Keyword fields (whole value, lower-cased).
    pub user: Field,
    /// `action` and `service.action`.
    pub action: Field,
    /// Service.
    pub service: Field,
    /// Notebook path(s) and id.
    pub notebook: Field,
    /// Cluster id.
    pub cluster: Field,
    /// Workspace id.
    pub workspace: Field,
    /// Command language.
    pub language: Field,
    /// Command status and response status code.
    pub status: Field,
    /// Source IP.
    pub ip: Field,
    /// Tables read or written: full names and every suffix (`a.b.c`, `b.c`, `c`).
    pub table: Field,
    /// Tables read (same expansion).
    pub table_read: Field,
    /// Tables written (same expansion).
    pub table_write: Field,
    /// Command text (code tokenizer, positions).
    pub code: Field,
    /// Output text.
    pub output: Field,
    /// Searchable metadata: user, notebook path, service.action, tables, error message.
    pub meta: Field,
    /// Facet columns (fast only, original spelling).
    pub f_user: Field,
    /// Notebook path (or id) facet.
    pub f_notebook: Field,
    /// `service.action` facet.
    pub f_action: Field,
    /// Status facet.
    pub f_status: Field,
    /// Full table names facet.
    pub f_table: Field,
}

impl Fields {
    /// The schema and its field handles.
    pub fn build() -> (Schema, Fields) {
        let mut b = Schema::builder();
        let keyword = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(KEYWORD_TOKENIZER)
                .set_index_option(IndexRecordOption::Basic),
        );
        let text = TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(CODE_TOKENIZER)
                .set_index_option(IndexRecordOption::WithFreqsAndPositions),
        );
        let facet = TextOptions::default().set_fast("raw");
        let fields = Fields {
            event_id: b.add_u64_field("event_id", INDEXED | FAST | STORED),
            time: b.add_i64_field("time", INDEXED | FAST),
            user: b.add_text_field("user", keyword.clone()),
            action: b.add_text_field("action", keyword.clone()),
            service: b.add_text_field("service", keyword.clone()),
            notebook: b.add_text_field("notebook", keyword.clone()),
            cluster: b.add_text_field("cluster", keyword.clone()),
            workspace: b.add_text_field("workspace", keyword.clone()),
            language: b.add_text_field("language", keyword.clone()),
            status: b.add_text_field("status", keyword.clone()),
            ip: b.add_text_field("ip", keyword.clone()),
            table: b.add_text_field("table", keyword.clone()),
            table_read: b.add_text_field("table_read", keyword.clone()),
            table_write: b.add_text_field("table_write", keyword),
            code: b.add_text_field("code", text.clone()),
            output: b.add_text_field("output", text.clone()),
            meta: b.add_text_field("meta", text),
            f_user: b.add_text_field("f_user", facet.clone()),
            f_notebook: b.add_text_field("f_notebook", facet.clone()),
            f_action: b.add_text_field("f_action", facet.clone()),
            f_status: b.add_text_field("f_status", facet.clone()),
            f_table: b.add_text_field("f_table", facet),
        };
        (b.build(), fields)
    }
}

/// Registers nbtrail's tokenizers on an index (needed on every open).
pub fn register_tokenizers(index: &Index) {
    index
        .tokenizers()
        .register(CODE_TOKENIZER, TextAnalyzer::from(CodeTokenizer));
    index.tokenizers().register(
        KEYWORD_TOKENIZER,
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .build(),
    );
}
