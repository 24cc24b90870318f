//! The rules file: sources, literal sources, sinks, propagators, sanitizers, taint rules and call patterns.
//! See `rules/default.toml` for the format. Loading validates everything up front — unknown kinds, bad
//! regexes, duplicate or missing codes — and names the file and the rule, so a renamed kind can never turn
//! a rule into one that silently finds nothing.

use regex::Regex;
use serde::Deserialize;

/// The rules shipped with nbtrail.
pub const DEFAULT_RULES: &str = include_str!("../rules/default.toml");

/// Errors in a rules file.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// Not valid TOML for the format.
    #[error("{file}: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
    /// Valid TOML, inconsistent rules.
    #[error("{file}: {message}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<u32>,
    #[serde(default)]
    sources: Vec<SourceSpec>,
    #[serde(default)]
    literal_sources: Vec<LiteralSpecFile>,
    #[serde(default)]
    sinks: Vec<SinkSpec>,
    #[serde(default)]
    propagators: Vec<String>,
    #[serde(default)]
    sanitizers: Vec<String>,
    #[serde(default)]
    rules: Vec<Rule>,
    #[serde(default)]
    patterns: Vec<PatternRule>,
}

/// Calls whose result is a source of `kind`. A call pattern may end in `:credential`: then it counts only
/// when its first argument is a constant naming a credential (`os.getenv("DB_PASSWORD")`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Source kind.
    pub kind: String,
    /// Call patterns.
    pub calls: Vec<String>,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct LiteralSpecFile {
    kind: String,
    name: String,
    pattern: String,
    #[serde(default)]
    min_entropy: Option<f64>,
    #[serde(default)]
    credential_name: Option<String>,
    #[serde(default)]
    not_pattern: Option<String>,
}

/// String literals that are themselves sources.
#[derive(Debug, Clone)]
pub struct LiteralSpec {
    /// Source kind.
    pub kind: String,
    /// What it is, for messages.
    pub name: String,
    /// Matched against the literal (after constant folding of `+`).
    pub pattern: Regex,
    /// Shannon entropy (bits per char) the literal must reach.
    pub min_entropy: Option<f64>,
    /// When set, the literal counts only when assigned to (or passed as) a name matching this.
    pub credential_name: Option<Regex>,
    /// Values matching this are not the source (placeholders such as `changeme`).
    pub not_pattern: Option<Regex>,
}

/// Calls whose arguments (or receiver) are a sink of `kind`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkSpec {
    /// Sink kind.
    pub kind: String,
    /// Call patterns.
    pub calls: Vec<String>,
    /// Positional arguments that are sinks (all when both `args` and `keywords` are empty).
    #[serde(default)]
    pub args: Vec<usize>,
    /// Keyword arguments that are sinks.
    #[serde(default)]
    pub keywords: Vec<String>,
    /// The receiver (`x` in `x.to_csv(…)`) is the sink.
    #[serde(default)]
    pub receiver: bool,
    /// Only when the destination (first argument or `path`) is not a constant, or a constant matching this.
    #[serde(default)]
    pub path_arg_matches: Option<String>,
    /// Calls matching `calls` that are nevertheless not this sink (`spark.read.csv` is a read).
    #[serde(default)]
    pub except_calls: Vec<String>,
    /// Keyword arguments that never reach this sink as data (`auth=`: credentials authenticate the
    /// request, they are not sent as its content).
    #[serde(default)]
    pub except_keywords: Vec<String>,
    /// The call's result is not tainted by what was sent (an HTTP response is not the secret that
    /// authenticated the request).
    #[serde(default)]
    pub clean_result: bool,
    /// Free text.
    #[serde(default)]
    pub comment: Option<String>,
}

/// A taint rule: flows from any of `sources` to any of `sinks`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable code, e.g. `NBT001`.
    pub code: String,
    /// Stable short name.
    pub name: String,
    /// The Pysa rule this corresponds to.
    #[serde(default)]
    pub pysa_code: Option<u32>,
    /// `high`, `medium`, `low`.
    pub severity: String,
    /// Source kinds.
    pub sources: Vec<String>,
    /// Sink kinds.
    #[serde(default)]
    pub sinks: Vec<String>,
    /// Report where the source appears instead of at a sink (hardcoded literals).
    #[serde(default)]
    pub at_source: bool,
    /// Message; `{source}` and `{sink}` are filled in.
    pub message: String,
}

impl Rule {
    /// A finding of this rule: its message with `{source}` and `{sink}` filled in.
    pub(crate) fn finding(
        &self,
        source: &str,
        sink: &str,
        location: crate::Loc,
        source_kind: &str,
        sink_kind: Option<&str>,
        trace: Vec<crate::Step>,
    ) -> crate::Finding {
        crate::Finding {
            code: self.code.clone(),
            rule: self.name.clone(),
            pysa_code: self.pysa_code,
            severity: self.severity.clone(),
            message: self
                .message
                .replace("{source}", source)
                .replace("{sink}", sink),
            location,
            source_kind: source_kind.to_string(),
            sink_kind: sink_kind.map(str::to_string),
            trace,
        }
    }
}

/// `unless_keyword_in`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordIn {
    /// Keyword name.
    pub keyword: String,
    /// The same argument's position when passed positionally (`yaml.load(s, SafeLoader)`).
    #[serde(default)]
    pub position: Option<usize>,
    /// Accepted values (names or dotted names).
    pub values: Vec<String>,
}

/// A call pattern rule (no data flow): the call itself is the problem, maybe depending on a keyword.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternRule {
    /// Stable code.
    pub code: String,
    /// Stable short name.
    pub name: String,
    /// Severity.
    pub severity: String,
    /// Message; `{call}` is filled in.
    pub message: String,
    /// Call patterns.
    #[serde(default)]
    pub calls: Vec<String>,
    /// Dotted names whose mere use is the problem (`ssl.PROTOCOL_TLSv1`), after import aliases.
    #[serde(default)]
    pub names: Vec<String>,
    /// Only when this keyword is literally `False`.
    #[serde(default)]
    pub keyword_false: Option<String>,
    /// Not when this keyword has one of these values.
    #[serde(default)]
    pub unless_keyword_in: Option<KeywordIn>,
    /// Not when this keyword is literally `True`.
    #[serde(default)]
    pub unless_keyword_true: Option<String>,
}

/// A loaded, validated rule set.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Sources by call.
    pub sources: Vec<SourceSpec>,
    /// Literal sources.
    pub literal_sources: Vec<LiteralSpec>,
    /// Sinks.
    pub sinks: Vec<SinkSpec>,
    /// Path conditions of sinks, compiled (same order as `sinks`).
    pub sink_paths: Vec<Option<Regex>>,
    /// Propagating calls.
    pub propagators: Vec<String>,
    /// Sanitizing calls.
    pub sanitizers: Vec<String>,
    /// Taint rules.
    pub rules: Vec<Rule>,
    /// Pattern rules.
    pub patterns: Vec<PatternRule>,
}

impl Rules {
    /// The default rules.
    pub fn default_rules() -> Rules {
        Rules::load(&[("default.toml", DEFAULT_RULES)]).expect("the shipped rules are valid")
    }

    /// Loads and merges rule files in order (later files add to earlier ones), then validates the whole.
    pub fn load(files: &[(&str, &str)]) -> Result<Rules, RulesError> {
        let mut out = Rules {
            sources: vec![],
            literal_sources: vec![],
            sinks: vec![],
            sink_paths: vec![],
            propagators: vec![],
            sanitizers: vec![],
            rules: vec![],
            patterns: vec![],
        };
        let mut last = "rules";
        for (name, text) in files {
            last = name;
            let f: RuleFile = toml::from_str(text).map_err(|e| RulesError::Syntax {
                file: name.to_string(),
                message: e.to_string(),
            })?;
            let invalid = |message: String| RulesError::Invalid {
                file: name.to_string(),
                message,
            };
            for l in f.literal_sources {
                let pattern = Regex::new(&l.pattern).map_err(|e| {
                    invalid(format!("literal source {:?}: bad pattern: {e}", l.name))
                })?;
                let credential_name = match &l.credential_name {
                    Some(p) => Some(Regex::new(p).map_err(|e| {
                        invalid(format!(
                            "literal source {:?}: bad credential_name: {e}",
                            l.name
                        ))
                    })?),
                    None => None,
                };
                let not_pattern = match &l.not_pattern {
                    Some(p) => Some(Regex::new(p).map_err(|e| {
                        invalid(format!("literal source {:?}: bad not_pattern: {e}", l.name))
                    })?),
                    None => None,
                };
                out.literal_sources.push(LiteralSpec {
                    kind: l.kind,
                    name: l.name,
                    not_pattern,
                    pattern,
                    min_entropy: l.min_entropy,
                    credential_name,
                });
            }
            for s in f.sinks {
                let re = match &s.path_arg_matches {
                    Some(p) => Some(Regex::new(p).map_err(|e| {
                        invalid(format!("sink {}: bad path_arg_matches: {e}", s.kind))
                    })?),
                    None => None,
                };
                out.sink_paths.push(re);
                out.sinks.push(s);
            }
            out.sources.extend(f.sources);
            out.propagators.extend(f.propagators);
            out.sanitizers.extend(f.sanitizers);
            out.rules.extend(f.rules);
            out.patterns.extend(f.patterns);
        }
        out.validate(last)?;
        Ok(out)
    }

    fn validate(&self, file: &str) -> Result<(), RulesError> {
        let invalid = |message: String| RulesError::Invalid {
            file: file.to_string(),
            message,
        };
        let source_kinds: Vec<&str> = self
            .sources
            .iter()
            .map(|s| s.kind.as_str())
            .chain(self.literal_sources.iter().map(|s| s.kind.as_str()))
            .collect();
        let sink_kinds: Vec<&str> = self.sinks.iter().map(|s| s.kind.as_str()).collect();
        let mut names = std::collections::HashMap::new();
        for r in &self.rules {
            if !r.code.starts_with(|c: char| c.is_ascii_uppercase()) {
                return Err(invalid(format!(
                    "rule {:?}: code {:?} must start with a letter",
                    r.name, r.code
                )));
            }
            if let Some(other) = names.insert(r.code.clone(), r.name.clone())
                && other != r.name
            {
                return Err(invalid(format!(
                    "code {} is used by two rules: {other} and {}",
                    r.code, r.name
                )));
            }
            for k in &r.sources {
                if !source_kinds.contains(&k.as_str()) {
                    return Err(invalid(format!(
                        "rule {} names source kind {k:?}, which no source defines",
                        r.code
                    )));
                }
            }
            for k in &r.sinks {
                if !sink_kinds.contains(&k.as_str()) {
                    return Err(invalid(format!(
                        "rule {} names sink kind {k:?}, which no sink defines",
                        r.code
                    )));
                }
            }
            if r.sinks.is_empty() && !r.at_source {
                return Err(invalid(format!(
                    "rule {} has no sinks (and is not at_source)",
                    r.code
                )));
            }
            if !["high", "medium", "low"].contains(&r.severity.as_str()) {
                return Err(invalid(format!(
                    "rule {}: severity must be high, medium or low",
                    r.code
                )));
            }
        }
        for p in &self.patterns {
            if let Some(other) = names.insert(p.code.clone(), p.name.clone())
                && other != p.name
            {
                return Err(invalid(format!(
                    "code {} is used by two rules: {other} and {}",
                    p.code, p.name
                )));
            }
        }
        Ok(())
    }
}

/// Glob match where `*` matches any run of characters (dots included).
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti, mut star, mut mark) = (0, 0, None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            pi += 1;
            mark = ti;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_rules_load() {
        let r = Rules::default_rules();
        assert!(
            r.rules
                .iter()
                .any(|r| r.code == "NBT001" && r.pysa_code == Some(1138))
        );
    }

    #[test]
    fn unknown_kinds_are_errors_not_silence() {
        let extra = r#"
[[rules]]
code = "X001"
name = "renamed-sink"
severity = "low"
sources = ["UserSecrets"]
sinks = ["ReturnedToUserRenamed"]
message = "m"
"#;
        let err =
            Rules::load(&[("default.toml", DEFAULT_RULES), ("mine.toml", extra)]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "mine.toml: rule X001 names sink kind \"ReturnedToUserRenamed\", which no sink defines"
        );
        let err = Rules::load(&[("bad.toml", "[[rules]]\ncode = 1")])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("bad.toml: "), "{err}");
    }

    #[test]
    fn globs() {
        assert!(glob("*.to_csv", "df.toPandas().to_csv"));
        assert!(glob("requests.*", "requests.post"));
        assert!(!glob("requests.*", "myrequests.post"));
        assert!(glob("*log*.info", "logger.info"));
        assert!(!glob("print", "pprint"));
        assert!(glob("print", "print"));
    }
}
