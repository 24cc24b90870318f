//! One identifier of several parts searched in one field — `prod.sales.orders`, `df.toPandas`,
//! `customer_id` — without reading positions where the answer is already known.
//!
//! The tokenizer indexes such a word as its parts at consecutive positions *and* whole (see [`crate::tokens`]).
//! A search for it must find both the word itself and its parts in a row anywhere else
//! (`catalog.prod.sales.orders_v2`, prose): the whole term or the phrase of parts. tantivy's phrase query
//! checks positions for every document that holds all the parts; for an identifier, most of those hold the
//! whole word, and checking their positions is wasted (it was half of a relevance-sorted identifier search
//! over 384k candidates at 10M events, issue 21). [`IdentifierQuery`] matches exactly the documents the
//! `whole OR phrase` query matched, reading positions only for candidates without the whole word.
//!
//! Scores: a document without the whole word scores as the phrase did (BM25 of the phrase count); one with
//! it scores as the boosted whole term plus the phrase, the phrase counted as the whole word's occurrences
//! (occurrences inside longer words are not counted for it: they would need the positions this saves).

use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{Bm25Weight, EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, Term};

/// A word of several parts: documents with `whole`, or with `parts` at consecutive positions.
#[derive(Clone, Debug)]
pub(crate) struct IdentifierQuery {
    whole: Term,
    parts: Vec<Term>,
    /// How much more a document with the whole word counts than the parts elsewhere.
    whole_boost: Score,
}

impl IdentifierQuery {
    /// `parts` (at least two) and `whole` must be of the same field.
    pub(crate) fn new(whole: Term, parts: Vec<Term>, whole_boost: Score) -> Self {
        debug_assert!(parts.len() >= 2);
        debug_assert!(parts.iter().all(|p| p.field() == whole.field()));
        IdentifierQuery {
            whole,
            parts,
            whole_boost,
        }
    }
}

impl Query for IdentifierQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let bm25 = match scoring {
            EnableScoring::Enabled {
                statistics_provider,
                ..
            } => Some((
                Bm25Weight::for_terms(statistics_provider, std::slice::from_ref(&self.whole))?
                    .boost_by(self.whole_boost),
                Bm25Weight::for_terms(statistics_provider, &self.parts)?,
            )),
            EnableScoring::Disabled { .. } => None,
        };
        Ok(Box::new(IdentifierWeight {
            query: self.clone(),
            bm25,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        visitor(&self.whole, false);
        for p in &self.parts {
            visitor(p, true);
        }
    }
}

struct IdentifierWeight {
    query: IdentifierQuery,
    /// (whole term, phrase) when scoring.
    bm25: Option<(Bm25Weight, Bm25Weight)>,
}

impl IdentifierWeight {
    fn identifier_scorer(
        &self,
        reader: &SegmentReader,
        boost: Score,
    ) -> tantivy::Result<IdentifierScorer> {
        let field = self.query.whole.field();
        let inverted = reader.inverted_index(field)?;
        let whole = inverted.read_postings(&self.query.whole, IndexRecordOption::WithFreqs)?;
        let mut parts = Vec::with_capacity(self.query.parts.len());
        for (k, term) in self.query.parts.iter().enumerate() {
            match inverted.read_postings(term, IndexRecordOption::WithFreqsAndPositions)? {
                Some(p) => parts.push((k as u32, p)),
                None => {
                    // A part this segment never saw: no phrase here, only the whole word.
                    parts.clear();
                    break;
                }
            }
        }
        // The rarest part leads the intersection.
        parts.sort_by_key(|(_, p)| p.doc_freq());
        let scoring = match &self.bm25 {
            Some((w, p)) => Some(Scoring {
                whole: w.boost_by(boost),
                phrase: p.boost_by(boost),
                norms: match reader.fieldnorms_readers().get_field(field)? {
                    Some(n) => n,
                    None => FieldNormReader::constant(reader.max_doc(), 1),
                },
            }),
            None => None,
        };
        let mut s = IdentifierScorer {
            whole,
            span: self.query.parts.len() as u32,
            parts,
            doc: 0,
            in_whole: false,
            phrase_count: 0,
            scoring,
            left: Vec::new(),
            right: Vec::new(),
        };
        s.settle(0);
        Ok(s)
    }
}

impl Weight for IdentifierWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let s = self.identifier_scorer(reader, boost)?;
        if s.doc == TERMINATED {
            return Ok(Box::new(EmptyScorer));
        }
        Ok(Box::new(s))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        let mut s = self.identifier_scorer(reader, 1.0)?;
        if s.seek(doc) != doc {
            return Err(tantivy::TantivyError::InvalidArgument(format!(
                "document #({doc}) does not match"
            )));
        }
        let how = if s.in_whole {
            "identifier: the whole word"
        } else {
            "identifier: its parts in a row"
        };
        Ok(Explanation::new(how, s.score()))
    }
}

struct Scoring {
    whole: Bm25Weight,
    phrase: Bm25Weight,
    norms: FieldNormReader,
}

struct IdentifierScorer {
    /// Postings of the whole word (absent from this segment: `None`).
    whole: Option<SegmentPostings>,
    /// Each part's position in the word and its postings, rarest first; empty when a part is missing.
    parts: Vec<(u32, SegmentPostings)>,
    /// Number of parts.
    span: u32,
    doc: DocId,
    /// The current document holds the whole word (no positions were read).
    in_whole: bool,
    /// Phrase occurrences in the current document, when it matched by its parts.
    phrase_count: u32,
    scoring: Option<Scoring>,
    left: Vec<u32>,
    right: Vec<u32>,
}

impl IdentifierScorer {
    /// The first document ≥ `target` where every part is; `TERMINATED` when none.
    fn parts_from(&mut self, target: DocId) -> DocId {
        if self.parts.is_empty() {
            return TERMINATED;
        }
        let mut t = target;
        'again: loop {
            for (_, p) in &mut self.parts {
                let d = if p.doc() < t { p.seek(t) } else { p.doc() };
                if d == TERMINATED {
                    return TERMINATED;
                }
                if d > t {
                    t = d;
                    continue 'again;
                }
            }
            return t;
        }
    }

    /// How often the parts stand in a row in the current document (all parts are on it).
    fn count_phrase(&mut self) -> u32 {
        // Part k at position p + k, shifted by span - 1 - k: every part of one occurrence lands on p + span - 1.
        let span = self.span;
        let mut first = true;
        for (k, p) in &mut self.parts {
            let shift = span - 1 - *k;
            if first {
                p.positions_with_offset(shift, &mut self.left);
                first = false;
                continue;
            }
            p.positions_with_offset(shift, &mut self.right);
            let right = &self.right;
            let mut j = 0;
            self.left.retain(|&x| {
                while j < right.len() && right[j] < x {
                    j += 1;
                }
                j < right.len() && right[j] == x
            });
            if self.left.is_empty() {
                return 0;
            }
        }
        self.left.len() as u32
    }

    /// Moves to the first matching document ≥ `target`.
    fn settle(&mut self, target: DocId) -> DocId {
        let mut t = target;
        loop {
            let w = match &mut self.whole {
                Some(w) if w.doc() < t => w.seek(t),
                Some(w) => w.doc(),
                None => TERMINATED,
            };
            let p = self.parts_from(t);
            let d = w.min(p);
            self.doc = d;
            if d == TERMINATED {
                return d;
            }
            if w == d {
                self.in_whole = true;
                return d;
            }
            let n = self.count_phrase();
            if n > 0 {
                self.in_whole = false;
                self.phrase_count = n;
                return d;
            }
            t = d + 1;
        }
    }
}

impl DocSet for IdentifierScorer {
    fn advance(&mut self) -> DocId {
        if self.doc == TERMINATED {
            return TERMINATED;
        }
        self.settle(self.doc + 1)
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc == TERMINATED || target <= self.doc {
            return self.doc;
        }
        self.settle(target)
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        let whole = self.whole.as_ref().map_or(0, DocSet::size_hint);
        let parts = self
            .parts
            .iter()
            .map(|(_, p)| p.size_hint())
            .min()
            .unwrap_or(0);
        whole.saturating_add(parts)
    }
}

impl Scorer for IdentifierScorer {
    fn score(&mut self) -> Score {
        let Some(s) = &self.scoring else {
            return 1.0;
        };
        let norm = s.norms.fieldnorm_id(self.doc);
        if self.in_whole {
            let tf = self.whole.as_ref().map_or(1, Postings::term_freq);
            s.whole.score(norm, tf) + s.phrase.score(norm, tf)
        } else {
            s.phrase.score(norm, self.phrase_count)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::query_parts;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use tantivy::collector::TopDocs;
    use tantivy::query::{BooleanQuery, BoostQuery, Occur, PhraseQuery, TermQuery};
    use tantivy::{DocAddress, doc};

    /// A word whose first part is too long to be indexed (the tokenizer drops parts over 80 bytes).
    fn long_word() -> String {
        format!("{}.b.c", "a".repeat(90))
    }

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(ToString::to_string).collect()
    }

    /// Words the documents are made of: the identifier, its parts alone, in longer words, in another order,
    /// with other separators and case, and a word whose first part is too long to be indexed.
    fn vocabulary() -> Vec<String> {
        let long = long_word();
        strings(&[
            "prod.sales.orders",
            "prod",
            "sales",
            "orders",
            "prod.sales",
            "sales.orders",
            "catalog.prod.sales.orders_v2",
            "orders.sales.prod",
            "prod_sales_orders",
            "Prod.Sales.Orders",
            "df.toPandas().to_csv(p)",
            "to_csv",
            "toCsv",
            "x",
            "spark.read.table(t)",
            "a.b",
            "b.a",
            "b.c",
            long.as_str(),
        ])
    }

    fn queries() -> Vec<String> {
        let long = long_word();
        strings(&[
            "prod.sales.orders",
            "sales.orders",
            "to_csv",
            "toPandas",
            "a.b",
            "b.c",
            "read.table",
            long.as_str(),
        ])
    }

    /// (doc → score) of a query, scored.
    fn scored(searcher: &tantivy::Searcher, q: &dyn Query) -> BTreeMap<DocAddress, Score> {
        searcher
            .search(q, &TopDocs::with_limit(10_000).order_by_score())
            .unwrap()
            .into_iter()
            .map(|(s, a)| (a, s))
            .collect()
    }

    /// The whole word alone (no parts indexed beside it — another tokenizer, or parts dropped) still
    /// matches, and documents with the whole word outrank those with only its parts in a row.
    #[test]
    fn the_whole_word_matches_on_its_own_and_ranks_first() {
        use tantivy::schema::{Schema, TEXT};
        let mut sb = Schema::builder();
        let body = sb.add_text_field("body", TEXT);
        let index = tantivy::Index::create_in_ram(sb.build());
        let mut w = index.writer_with_num_threads(1, 20_000_000).unwrap();
        // The default tokenizer splits at `.`: "a.b" here is the term "a" then "b"; the whole is added raw.
        w.add_document(doc!(body => "c a b d")).unwrap();
        w.add_document(doc!(body => "b a")).unwrap();
        w.commit().unwrap();
        let mut raw = tantivy::TantivyDocument::default();
        raw.add_text(body, "zz");
        w.add_document(raw).unwrap();
        w.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let t = |s: &str| Term::from_field_text(body, s);
        // "zz" plays the whole word: present in one document that has neither part.
        let q = IdentifierQuery::new(t("zz"), vec![t("a"), t("b")], 2.0);
        let got = searcher
            .search(&q, &TopDocs::with_limit(10).order_by_score())
            .unwrap();
        let docs: Vec<DocAddress> = got.iter().map(|(_, a)| *a).collect();
        assert_eq!(docs, vec![DocAddress::new(1, 0), DocAddress::new(0, 0)]);
        assert!(got[0].0 > got[1].0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        /// The identifier query finds exactly the documents `whole OR phrase of parts` (what the query
        /// language built before) finds — alone and inside an intersection (the seek path), over several
        /// segments — and scores the documents without the whole word exactly as the phrase did.
        #[test]
        fn the_identifier_query_matches_exactly_the_whole_word_or_its_parts_in_a_row(
            docs in prop::collection::vec(prop::collection::vec(0usize..19, 0..8), 1..60),
            cuts in prop::collection::vec(1usize..30, 0..3),
        ) {
            let vocab = vocabulary();
            let (schema, f) = crate::schema::Fields::build();
            let index = tantivy::Index::create_in_ram(schema);
            crate::schema::register_tokenizers(&index);
            let mut w = index.writer_with_num_threads(1, 20_000_000).unwrap();
            for (i, words) in docs.iter().enumerate() {
                let text: Vec<&str> = words.iter().map(|&k| vocab[k].as_str()).collect();
                w.add_document(doc!(f.code => text.join(" "))).unwrap();
                if cuts.contains(&i) {
                    w.commit().unwrap();
                }
            }
            w.commit().unwrap();
            let searcher = index.reader().unwrap().searcher();
            for word in queries() {
                let parts: Vec<Term> =
                    query_parts(&word).iter().map(|p| Term::from_field_text(f.code, p)).collect();
                prop_assert!(parts.len() >= 2);
                let whole = Term::from_field_text(f.code, &word.to_lowercase());
                let before = BooleanQuery::new(vec![
                    (Occur::Should, Box::new(PhraseQuery::new(parts.clone())) as Box<dyn Query>),
                    (
                        Occur::Should,
                        Box::new(BoostQuery::new(
                            Box::new(TermQuery::new(whole.clone(), IndexRecordOption::WithFreqs)),
                            2.0,
                        )),
                    ),
                ]);
                let now = IdentifierQuery::new(whole.clone(), parts, 2.0);
                let (want, got) = (scored(&searcher, &before), scored(&searcher, &now));
                prop_assert_eq!(want.keys().collect::<Vec<_>>(), got.keys().collect::<Vec<_>>(), "{}", word);
                let whole_docs = scored(&searcher, &TermQuery::new(whole, IndexRecordOption::WithFreqs));
                for (addr, s) in &want {
                    if !whole_docs.contains_key(addr) {
                        prop_assert!((s - got[addr]).abs() < 1e-4, "{} {:?}: {} vs {}", word, addr, s, got[addr]);
                    }
                }
                let x = || Box::new(TermQuery::new(Term::from_field_text(f.code, "x"), IndexRecordOption::Basic)) as Box<dyn Query>;
                let and_x = |q: Box<dyn Query>| BooleanQuery::intersection(vec![x(), q]);
                prop_assert_eq!(
                    scored(&searcher, &and_x(Box::new(before.clone()))).into_keys().collect::<Vec<_>>(),
                    scored(&searcher, &and_x(Box::new(now.clone()))).into_keys().collect::<Vec<_>>(),
                    "{} and x", word
                );
            }
        }
    }
}
