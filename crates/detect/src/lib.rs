//! # nbtrail-detect
//!
//! Event detections: questions an investigation starts from that are about *behaviour across events* —
//! who switched verbose audit logging off, who read a secret and then downloaded results, who created a
//! token that never expires, who failed to log in five times in ten minutes — as rules in the
//! [Sigma](https://sigmahq.io) format, evaluated by a maintained Sigma engine
//! ([`rsigma_eval`], detection and correlation rules) rather than a hand-written matcher.
//!
//! ## Rules
//! The shipped pack lives in `crates/detect/rules/*.yml` ([`BUILTIN`]): detection rules and correlation
//! rules (`event_count`, `value_count`, `temporal_ordered`) with stable codes (`NBE001`…, the custom
//! attribute `nbtrail.code`) and each rule's positive and negative fixtures as `rsigma.exemplars`, which
//! the tests replay through the engine ([`RuleSet::exemplars`]). A user's own rules (any `*.yml` /
//! `*.yaml` in a directory, [`RuleSet::load`]) are added to the pack and validated first: a document
//! that does not parse, a rule without a code-able identity, a correlation that names an unknown rule,
//! all fail with the file and the line of the document.
//!
//! ## Baselines
//! Some questions are about a user's own history, which Sigma cannot express: "more downloads in an hour
//! than this user usually makes", "a login from an address this user never used". A detection rule with
//! the custom attribute `nbtrail.baseline` (`hourly_count` or `new_value`, see [`baseline`]) stays a valid
//! Sigma rule (the engine matches its selection, its exemplars check it), but its matches feed a per-user
//! statistic and only departures from it are reported (`NBE046`, `NBE047`).
//!
//! ## Events
//! Rules see each normalized event under Databricks' own audit-log field names ([`event_json`]):
//! `serviceName`, `actionName`, `userIdentity.email`, `sourceIPAddress`, `userAgent`, `workspaceId`,
//! `requestParams.*` (every parameter, `commandText` included), `response.statusCode`,
//! `response.errorMessage`, plus `timestamp` and `event_id`. Rules written against Databricks' audit-log
//! documentation therefore port as they are. Captured Jupyter work arrives in the same shape (its
//! service is `notebook`, `jupyter` or `gateway`).
//!
//! ## Evaluation
//! [`Detector`] is fed events in time order and returns [`Detection`]s: the rule, and the events that
//! make it up (one for a detection rule; the window's events, up to [`MAX_EVENTS_PER_DETECTION`], for a
//! correlation). Memory is bounded by the engine's state limits, not by the number of events.

pub mod baseline;

pub use baseline::Baseline;
use rsigma_eval::correlation_engine::{CorrelationConfig, CorrelationEngine, CorrelationEventMode};
use rsigma_eval::event::JsonEvent;
use rsigma_eval::result::ResultBody;
use rsigma_parser::SigmaCollection;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// The shipped rule pack: (file name, YAML text).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "audit-settings.yml",
        include_str!("../rules/audit-settings.yml"),
    ),
    ("downloads.yml", include_str!("../rules/downloads.yml")),
    ("secrets.yml", include_str!("../rules/secrets.yml")),
    ("tokens.yml", include_str!("../rules/tokens.yml")),
    ("access.yml", include_str!("../rules/access.yml")),
    ("identity.yml", include_str!("../rules/identity.yml")),
    ("compute.yml", include_str!("../rules/compute.yml")),
    ("storage.yml", include_str!("../rules/storage.yml")),
    ("trail.yml", include_str!("../rules/trail.yml")),
    ("code.yml", include_str!("../rules/code.yml")),
];

/// At most this many events are kept as the evidence of one correlation.
pub const MAX_EVENTS_PER_DETECTION: usize = 50;

/// A rules file larger than this is refused (rules are small; this bounds what a hostile directory costs).
pub const MAX_RULE_FILE_BYTES: u64 = 4 << 20;

/// What can go wrong loading rules.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// A rules file that could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A rule that is not valid: file, line of its document, what is wrong.
    #[error("{file}:{line}: {message}")]
    Rule {
        /// The rules file.
        file: String,
        /// 1-based line where the rule's YAML document starts.
        line: u64,
        /// What is wrong.
        message: String,
    },
}

/// Result alias of this crate.
pub type Result<T, E = DetectError> = std::result::Result<T, E>;

/// What one rule is, for lists, SARIF and findings.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RuleInfo {
    /// Stable code (`NBE001`; a user rule without `nbtrail.code` gets `NBEU-` and 8 hex digits of its
    /// identity).
    pub code: String,
    /// The rule's `name` (what correlations refer to), else its id, else its title.
    pub name: String,
    /// The rule's Sigma `id`, when it has one.
    pub id: Option<String>,
    /// Title.
    pub title: String,
    /// `high`, `medium` or `low` (Sigma's `critical` is high, `informational` low).
    pub severity: String,
    /// Description.
    pub description: String,
    /// Sigma tags (ATT&CK techniques and tactics).
    pub tags: Vec<String>,
    /// `detection`, `correlation` or `baseline` (a detection whose matches feed a [`Baseline`]).
    pub kind: &'static str,
    /// The file it came from and the line its document starts on.
    pub source: String,
    /// Only a building block of correlations (`nbtrail.base_only: true`): its own matches are not
    /// reported (every login, every attach).
    pub base_only: bool,
    /// For a `baseline` rule: what its matches are measured against ([`baseline`]).
    pub baseline: Option<Baseline>,
}

/// A parsed, validated set of rules: the shipped pack plus any user rules.
pub struct RuleSet {
    collection: SigmaCollection,
    rules: Vec<RuleInfo>,
    /// SHA-256 over every rules text, in load order (recorded with each analysis run).
    sha256: String,
}

impl RuleSet {
    /// The shipped pack alone.
    pub fn builtin() -> Result<RuleSet> {
        RuleSet::from_texts(
            BUILTIN
                .iter()
                .map(|(n, t)| ((*n).to_string(), (*t).to_string()))
                .collect(),
        )
    }

    /// The shipped pack and the rules in `dirs` (each `*.yml` / `*.yaml`, sorted by path, not recursive).
    pub fn load(dirs: &[PathBuf]) -> Result<RuleSet> {
        let mut texts: Vec<(String, String)> = BUILTIN
            .iter()
            .map(|(n, t)| ((*n).to_string(), (*t).to_string()))
            .collect();
        for dir in dirs {
            let io = |source| DetectError::Io {
                path: dir.clone(),
                source,
            };
            let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
                .map_err(io)?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.is_file()
                        && p.extension().is_some_and(|e| {
                            e.eq_ignore_ascii_case("yml") || e.eq_ignore_ascii_case("yaml")
                        })
                })
                .collect();
            files.sort();
            for f in files {
                texts.push((f.display().to_string(), read_rules_file(&f)?));
            }
        }
        RuleSet::from_texts(texts)
    }

    /// Parses and validates `(file name, text)` pairs as one collection (correlations may refer to rules
    /// of any file).
    // The YAML value type of the parser's custom attributes is not re-exported, so it cannot be named.
    #[allow(clippy::redundant_closure_for_method_calls)]
    pub fn from_texts(texts: Vec<(String, String)>) -> Result<RuleSet> {
        let mut collection = SigmaCollection::new();
        let mut rules = Vec::new();
        let mut h = Sha256::new();
        let mut codes: HashMap<String, String> = HashMap::new();
        for (file, text) in &texts {
            h.update((file.len() as u64).to_le_bytes());
            h.update(file.as_bytes());
            h.update((text.len() as u64).to_le_bytes());
            h.update(text.as_bytes());
            for (line, doc) in documents(text) {
                let err = |message: String| DetectError::Rule {
                    file: file.clone(),
                    line,
                    message,
                };
                let c = rsigma_parser::parse_sigma_yaml(doc).map_err(|e| err(e.to_string()))?;
                if let Some(e) = c.errors.first() {
                    return Err(err(e.clone()));
                }
                if !c.filters.is_empty() {
                    return Err(err("filter rules are not supported; write the exclusion into the rule's condition".into()));
                }
                let source = format!("{file}:{line}");
                // Detection and correlation rules are different types with the same metadata fields.
                macro_rules! info {
                    ($kind:expr, $r:expr) => {
                        info_of(
                            $kind,
                            &$r.title,
                            $r.name.as_deref(),
                            $r.id.as_deref(),
                            $r.level,
                            $r.description.as_deref(),
                            &$r.tags,
                            (
                                $r.custom_attributes
                                    .get("nbtrail.code")
                                    .and_then(|v| v.as_str()),
                                $r.custom_attributes
                                    .get("nbtrail.base_only")
                                    .and_then(|v| v.as_bool())
                                    .unwrap_or(false),
                            ),
                            &source,
                        )
                    };
                }
                // A custom attribute as text (strings, numbers and booleans alike).
                macro_rules! attr {
                    ($r:expr) => {
                        |k: &str| {
                            $r.custom_attributes.get(k).and_then(|v| {
                                v.as_str()
                                    .map(str::to_string)
                                    .or_else(|| v.as_u64().map(|n| n.to_string()))
                                    .or_else(|| v.as_i64().map(|n| n.to_string()))
                                    .or_else(|| v.as_f64().map(|n| n.to_string()))
                                    .or_else(|| v.as_bool().map(|b| b.to_string()))
                            })
                        }
                    };
                }
                let mut infos: Vec<RuleInfo> = Vec::new();
                for r in &c.rules {
                    let mut info = info!("detection", r);
                    info.baseline = Baseline::from_attributes(attr!(r)).map_err(&err)?;
                    if info.baseline.is_some() {
                        info.kind = "baseline";
                    }
                    infos.push(info);
                }
                for r in &c.correlations {
                    if r.custom_attributes.contains_key("nbtrail.baseline") {
                        return Err(err(
                            "nbtrail.baseline belongs on a detection rule, not a correlation"
                                .into(),
                        ));
                    }
                    infos.push(info!("correlation", r));
                }
                for info in infos {
                    if let Some(first) = codes.insert(info.code.clone(), source.clone()) {
                        return Err(err(format!(
                            "code {} is already used by the rule at {first}",
                            info.code
                        )));
                    }
                    rules.push(info);
                }
                collection.rules.extend(c.rules);
                collection.correlations.extend(c.correlations);
            }
        }
        // Every rule a correlation names must exist (by name, id or title).
        let known: std::collections::HashSet<&str> = collection
            .rules
            .iter()
            .flat_map(|r| [r.name.as_deref(), r.id.as_deref(), Some(r.title.as_str())])
            .flatten()
            .collect();
        for (c, info) in collection
            .correlations
            .iter()
            .zip(rules.iter().filter(|r| r.kind == "correlation"))
        {
            for r in &c.rules {
                if !known.contains(r.as_str()) {
                    let (file, line) = split_source(&info.source);
                    return Err(DetectError::Rule {
                        file,
                        line,
                        message: format!(
                            "correlation {:?} names rule {r:?}, which no loaded rule is",
                            c.title
                        ),
                    });
                }
            }
        }
        let set = RuleSet {
            collection,
            rules,
            sha256: hex::encode(h.finalize()),
        };
        // The engine compiles every rule now, so a rule it cannot compile fails here, not mid-case.
        set.engine().map_err(|e| DetectError::Rule {
            file: "rules".into(),
            line: 0,
            message: e,
        })?;
        Ok(set)
    }

    /// The rules, detections first then correlations, in load order.
    pub fn rules(&self) -> &[RuleInfo] {
        &self.rules
    }

    /// SHA-256 over the rule texts.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// Replays every rule's `rsigma.exemplars` (positive and negative fixtures) through the engine.
    pub fn exemplars(&self) -> std::result::Result<rsigma_eval::ExemplarReport, String> {
        rsigma_eval::run_exemplars(&self.collection, &[]).map_err(|e| e.to_string())
    }

    fn engine(&self) -> std::result::Result<CorrelationEngine, String> {
        let config = CorrelationConfig {
            // Every match comes back; which are reported is this crate's choice (`base_only`), not the
            // `generate` flag of whichever correlation happens to name a rule.
            emit_detections: true,
            correlation_event_mode: CorrelationEventMode::Refs,
            max_correlation_events: MAX_EVENTS_PER_DETECTION,
            ..CorrelationConfig::default()
        };
        let mut engine = CorrelationEngine::new(config);
        engine
            .add_collection(&self.collection)
            .map_err(|e| e.to_string())?;
        Ok(engine)
    }

    /// A detector over this rule set.
    pub fn detector(&self) -> Detector<'_> {
        let by_name = self
            .rules
            .iter()
            .enumerate()
            .flat_map(|(i, r)| {
                [r.id.clone(), Some(r.name.clone()), Some(r.title.clone())]
                    .into_iter()
                    .flatten()
                    .map(move |k| (k, i))
            })
            .collect();
        let baselines = self
            .rules
            .iter()
            .enumerate()
            .filter_map(|(i, r)| Some((i, baseline::State::new(r.baseline.clone()?))))
            .collect();
        Detector {
            set: self,
            engine: self.engine().expect("compiled when the set was loaded"),
            by_name,
            baselines,
        }
    }
}

/// Reads a user's rules file, bounded in size.
fn read_rules_file(path: &Path) -> Result<String> {
    let io = |source| DetectError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > MAX_RULE_FILE_BYTES {
        return Err(DetectError::Rule {
            file: path.display().to_string(),
            line: 1,
            message: format!("{len} bytes: a rules file may hold at most {MAX_RULE_FILE_BYTES}"),
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    String::from_utf8(bytes).map_err(|e| DetectError::Rule {
        file: path.display().to_string(),
        line: 1 + e.as_bytes()[..e.utf8_error().valid_up_to()]
            .iter()
            .filter(|b| **b == b'\n')
            .count() as u64,
        message: "not UTF-8".into(),
    })
}

fn split_source(s: &str) -> (String, u64) {
    match s.rsplit_once(':') {
        Some((f, l)) => (f.to_string(), l.parse().unwrap_or(0)),
        None => (s.to_string(), 0),
    }
}

/// The YAML documents of a multi-document text with the 1-based line each starts on. A document is
/// separated by a line `---` (optionally followed by a comment); comment-only documents are skipped.
fn documents(text: &str) -> Vec<(u64, &str)> {
    let mut out = Vec::new();
    let mut start = 0usize;
    let mut start_line = 1u64;
    let mut offset = 0usize;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let t = line.trim_end();
        if t == "---" || t.starts_with("--- ") || t.starts_with("---\t") {
            out.push((start_line, &text[start..offset]));
            start = offset + line.len();
            start_line = i as u64 + 2;
        }
        offset += line.len();
    }
    out.push((start_line, &text[start..]));
    out.into_iter()
        .filter(|(_, d)| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .map(|(line, d)| {
            // Point at the first line with content, not at the separator's blank lines or comments.
            let skip = d
                .lines()
                .take_while(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
                .count() as u64;
            (line + skip, d)
        })
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn info_of(
    kind: &'static str,
    title: &str,
    name: Option<&str>,
    id: Option<&str>,
    level: Option<rsigma_parser::Level>,
    description: Option<&str>,
    tags: &[String],
    (code, base_only): (Option<&str>, bool),
    source: &str,
) -> RuleInfo {
    let code = code.map_or_else(
        || {
            let ident = id.or(name).unwrap_or(title);
            let h = Sha256::digest(ident.as_bytes());
            format!("NBEU-{}", &hex::encode(h)[..8])
        },
        str::to_string,
    );
    let severity = match level {
        Some(rsigma_parser::Level::High | rsigma_parser::Level::Critical) => "high",
        Some(rsigma_parser::Level::Medium) => "medium",
        _ => "low",
    };
    RuleInfo {
        code,
        name: name.or(id).unwrap_or(title).to_string(),
        id: id.map(str::to_string),
        title: title.to_string(),
        severity: severity.to_string(),
        description: description.unwrap_or_default().to_string(),
        tags: tags.to_vec(),
        kind,
        source: source.to_string(),
        base_only,
        baseline: None,
    }
}

/// One event as rules see it (see the crate docs): Databricks' audit-log field names.
#[allow(clippy::too_many_arguments)]
pub fn event_json(
    event_id: i64,
    fields: &nbtrail_model::EventFields,
    params: &BTreeMap<String, String>,
) -> serde_json::Value {
    let mut request = serde_json::Map::new();
    for (k, v) in params {
        request.insert(k.clone(), serde_json::Value::String(v.clone()));
    }
    if let Some(code) = &fields.command_text {
        request
            .entry("commandText")
            .or_insert_with(|| serde_json::Value::String(code.clone()));
    }
    let mut response = serde_json::Map::new();
    if let Some(s) = fields.response_status {
        response.insert("statusCode".into(), s.into());
    }
    if let Some(e) = &fields.response_error {
        response.insert("errorMessage".into(), e.clone().into());
    }
    let mut o = serde_json::Map::new();
    o.insert("event_id".into(), event_id.into());
    o.insert(
        "timestamp".into(),
        nbtrail_model::format_time(fields.time).into(),
    );
    o.insert("serviceName".into(), fields.service.clone().into());
    o.insert("actionName".into(), fields.action.clone().into());
    if let Some(u) = &fields.user {
        o.insert("userIdentity".into(), serde_json::json!({ "email": u }));
    }
    let mut put = |k: &str, v: &Option<String>| {
        if let Some(v) = v {
            o.insert(k.into(), v.clone().into());
        }
    };
    put("sourceIPAddress", &fields.source_ip);
    put("userAgent", &fields.user_agent);
    put("workspaceId", &fields.workspace_id);
    put("requestId", &fields.request_id);
    o.insert("requestParams".into(), request.into());
    o.insert("response".into(), response.into());
    serde_json::Value::Object(o)
}

/// A rule that fired.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The rule.
    pub rule: RuleInfo,
    /// The events that make it up, oldest first; the last one completed it.
    pub event_ids: Vec<i64>,
    /// For correlations: the group (e.g. `userIdentity.email=alice@example.com`) and the aggregate.
    pub detail: String,
}

impl Detection {
    /// Identity across re-runs: rule code and the events that make it up.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.rule.code.as_bytes());
        for id in &self.event_ids {
            h.update(id.to_le_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Evaluates a [`RuleSet`] over events fed in time order.
pub struct Detector<'a> {
    set: &'a RuleSet,
    engine: CorrelationEngine,
    by_name: HashMap<String, usize>,
    baselines: HashMap<usize, baseline::State>,
}

impl Detector<'_> {
    /// Feeds one event (as [`event_json`] built it) at its time; returns what fired.
    pub fn process(&mut self, event: &serde_json::Value, time_ms: i64) -> Vec<Detection> {
        let id = event
            .get("event_id")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or_default();
        let results = self
            .engine
            .process_event_at(&JsonEvent::borrow(event), time_ms.div_euclid(1000));
        let mut out = Vec::new();
        for r in results {
            let key = r
                .header
                .rule_id
                .clone()
                .unwrap_or_else(|| r.header.rule_title.clone());
            let Some(&i) = self
                .by_name
                .get(&key)
                .or_else(|| self.by_name.get(&r.header.rule_title))
            else {
                continue;
            };
            let rule = self.set.rules[i].clone();
            if rule.base_only {
                continue;
            }
            if let Some(state) = self.baselines.get_mut(&i) {
                // Matches of a baseline rule are measured, not reported as they are.
                if let ResultBody::Detection(_) = &r.body
                    && let Some(d) = state.feed(event, id, time_ms)
                {
                    out.push(Detection {
                        rule,
                        event_ids: d.event_ids,
                        detail: d.detail,
                    });
                }
                continue;
            }
            match &r.body {
                ResultBody::Detection(_) => out.push(Detection {
                    rule,
                    event_ids: vec![id],
                    detail: String::new(),
                }),
                ResultBody::Correlation(c) => {
                    let mut ids: Vec<i64> = c
                        .event_refs
                        .iter()
                        .flatten()
                        .filter_map(|e| e.id.as_deref().and_then(|s| s.parse().ok()))
                        .collect();
                    if !ids.contains(&id) {
                        ids.push(id);
                    }
                    let group = c
                        .group_key
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect::<Vec<_>>()
                        .join(", ");
                    out.push(Detection {
                        rule,
                        event_ids: ids,
                        detail: format!(
                            "{group} ({} in {} s)",
                            c.aggregated_value, c.timespan_secs
                        ),
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests;
