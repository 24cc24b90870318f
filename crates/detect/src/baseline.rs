//! Baselines: what Sigma cannot say — "more than this user usually does", "an address this user has
//! never logged in from".
//!
//! A detection rule whose custom attributes carry `nbtrail.baseline` is still an ordinary Sigma rule (its
//! selection is matched by the engine and checked by its exemplars, and another Sigma engine would report
//! every match). Here its matches are not reported as they are: they feed a per-group statistic, and only
//! what departs from the group's own history is reported.
//!
//! - `nbtrail.baseline: hourly_count` — matches are counted per group (`nbtrail.baseline.group_by`, a
//!   dotted field path, default `userIdentity.email`) and clock hour (UTC). An hour is reported when its
//!   count reaches `max(nbtrail.baseline.min, ⌊mean + k·σ⌋ + 1)`, where mean and σ are over the group's
//!   earlier *active* hours (hours with at least one match) in the trailing `nbtrail.baseline.days`
//!   (default 30), `k` is `nbtrail.baseline.sigma` (default 3), and at least
//!   `nbtrail.baseline.warmup` (default 5) earlier active hours exist: without a history there is no
//!   baseline (the fixed-threshold rule covers that). One report per group and hour, naming the hour's
//!   matches (up to [`crate::MAX_EVENTS_PER_DETECTION`]).
//! - `nbtrail.baseline: new_value` — a match whose `nbtrail.baseline.field` (e.g. `sourceIPAddress`) the
//!   group has never had before is reported, once the group's first match is at least
//!   `nbtrail.baseline.warmup_hours` (default 24) old (before that every value is new). One report per
//!   group and value.
//!
//! State is per group: a bounded ring of hourly counts, or the set of values seen. Groups and values are
//! capped ([`MAX_GROUPS`], [`MAX_VALUES_PER_GROUP`]); past the cap nothing new is learned and a hostile
//! log cannot grow memory without bound.

use std::collections::{HashMap, HashSet, VecDeque};

/// At most this many groups (users) are tracked per baseline rule.
pub const MAX_GROUPS: usize = 200_000;
/// At most this many distinct values are remembered per group.
pub const MAX_VALUES_PER_GROUP: usize = 4_096;

/// A baseline rule's parameters, from its custom attributes.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub enum Baseline {
    /// Matches per group and hour against the group's usual hourly count.
    HourlyCount {
        /// Dotted field path that groups matches.
        group_by: String,
        /// Never report an hour below this count.
        min: u64,
        /// Standard deviations above the mean.
        sigma: f64,
        /// Earlier active hours needed before anything is reported.
        warmup: usize,
        /// Days of history the baseline covers.
        days: i64,
    },
    /// A value never seen for the group.
    NewValue {
        /// Dotted field path that groups matches.
        group_by: String,
        /// Dotted field path whose values are remembered.
        field: String,
        /// Hours after the group's first match before anything is reported.
        warmup_hours: i64,
    },
}

impl Baseline {
    /// Reads `nbtrail.baseline*` attributes through `get` (the attribute's value as text); `Ok(None)`
    /// when the rule has none.
    pub fn from_attributes(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Baseline>, String> {
        let Some(kind) = get("nbtrail.baseline") else {
            return Ok(None);
        };
        let group_by =
            get("nbtrail.baseline.group_by").unwrap_or_else(|| "userIdentity.email".into());
        fn num<T: std::str::FromStr>(
            get: &impl Fn(&str) -> Option<String>,
            key: &str,
            default: T,
        ) -> Result<T, String> {
            match get(key) {
                None => Ok(default),
                Some(s) => s
                    .parse()
                    .map_err(|_| format!("{key}: {s:?} is not a number")),
            }
        }
        match kind.as_str() {
            "hourly_count" => {
                let sigma: f64 = num(&get, "nbtrail.baseline.sigma", 3.0)?;
                let days: i64 = num(&get, "nbtrail.baseline.days", 30)?;
                if !sigma.is_finite() || sigma < 0.0 || !(1..=366).contains(&days) {
                    return Err("nbtrail.baseline: sigma must be ≥ 0 and days 1–366".into());
                }
                let b = Baseline::HourlyCount {
                    group_by,
                    min: num(&get, "nbtrail.baseline.min", 1)?,
                    sigma,
                    warmup: num(&get, "nbtrail.baseline.warmup", 5)?,
                    days,
                };
                Ok(Some(b))
            }
            "new_value" => {
                let field = get("nbtrail.baseline.field")
                    .ok_or("nbtrail.baseline: new_value needs nbtrail.baseline.field")?;
                Ok(Some(Baseline::NewValue {
                    group_by,
                    field,
                    warmup_hours: num(&get, "nbtrail.baseline.warmup_hours", 24)?,
                }))
            }
            other => Err(format!(
                "nbtrail.baseline: {other:?} is not a baseline (hourly_count, new_value)"
            )),
        }
    }
}

/// The value at a dotted path of an event, as text.
pub fn field_text(event: &serde_json::Value, path: &str) -> Option<String> {
    let mut v = event;
    for part in path.split('.') {
        v = v.get(part)?;
    }
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// What a baseline reports: the events and a sentence on why.
#[derive(Debug, Clone, PartialEq)]
pub struct Departure {
    /// Events making up the report, oldest first.
    pub event_ids: Vec<i64>,
    /// Group, value or count, and the baseline it departs from.
    pub detail: String,
}

#[derive(Default)]
struct HourlyGroup {
    /// Closed active hours: (hour number, count), oldest first.
    history: VecDeque<(i64, u64)>,
    /// The open hour, its count and its events.
    hour: i64,
    count: u64,
    events: Vec<i64>,
    reported: bool,
}

struct NewValueGroup {
    first_ms: i64,
    seen: HashSet<String>,
}

/// One baseline rule's running state.
pub(crate) struct State {
    baseline: Baseline,
    hourly: HashMap<String, HourlyGroup>,
    values: HashMap<String, NewValueGroup>,
}

impl State {
    pub(crate) fn new(baseline: Baseline) -> State {
        State {
            baseline,
            hourly: HashMap::new(),
            values: HashMap::new(),
        }
    }

    /// One match of the rule (events arrive in time order).
    pub(crate) fn feed(
        &mut self,
        event: &serde_json::Value,
        id: i64,
        time_ms: i64,
    ) -> Option<Departure> {
        match &self.baseline {
            Baseline::HourlyCount {
                group_by,
                min,
                sigma,
                warmup,
                days,
            } => {
                let group = field_text(event, group_by)?;
                let full = self.hourly.len() >= MAX_GROUPS;
                if full && !self.hourly.contains_key(&group) {
                    return None;
                }
                let g = self.hourly.entry(group.clone()).or_default();
                let hour = time_ms.div_euclid(3_600_000);
                if g.count > 0 && hour != g.hour {
                    g.history.push_back((g.hour, g.count));
                    g.count = 0;
                    g.events.clear();
                    g.reported = false;
                }
                g.hour = hour;
                while g
                    .history
                    .front()
                    .is_some_and(|(h, _)| *h < hour - days * 24)
                {
                    g.history.pop_front();
                }
                g.count += 1;
                if g.events.len() < crate::MAX_EVENTS_PER_DETECTION {
                    g.events.push(id);
                }
                if g.reported || g.history.len() < *warmup {
                    return None;
                }
                let n = g.history.len() as f64;
                let mean = g.history.iter().map(|(_, c)| *c as f64).sum::<f64>() / n;
                let var = g
                    .history
                    .iter()
                    .map(|(_, c)| (*c as f64 - mean).powi(2))
                    .sum::<f64>()
                    / n;
                // Strictly above mean + kσ: with k = 3 and a steady history, one more than usual.
                let threshold = ((mean + sigma * var.sqrt()).floor() as u64 + 1).max(*min);
                if g.count < threshold {
                    return None;
                }
                g.reported = true;
                Some(Departure {
                    event_ids: g.events.clone(),
                    detail: format!(
                        "{group_by}={group}: {} this hour; usual {mean:.1} (σ {:.1}) over {} active hours, \
                         threshold {threshold}",
                        g.count,
                        var.sqrt(),
                        g.history.len()
                    ),
                })
            }
            Baseline::NewValue {
                group_by,
                field,
                warmup_hours,
            } => {
                let group = field_text(event, group_by)?;
                let value = field_text(event, field)?;
                if value.is_empty() {
                    return None;
                }
                let full = self.values.len() >= MAX_GROUPS;
                if full && !self.values.contains_key(&group) {
                    return None;
                }
                let g = self
                    .values
                    .entry(group.clone())
                    .or_insert_with(|| NewValueGroup {
                        first_ms: time_ms,
                        seen: HashSet::new(),
                    });
                if g.seen.contains(&value) {
                    return None;
                }
                let known = g.seen.len();
                if known < MAX_VALUES_PER_GROUP {
                    g.seen.insert(value.clone());
                }
                let warm = time_ms - g.first_ms >= warmup_hours * 3_600_000;
                if !warm || known == 0 {
                    return None;
                }
                let since = nbtrail_model::time_from_ms(g.first_ms)
                    .map(nbtrail_model::format_time)
                    .unwrap_or_default();
                Some(Departure {
                    event_ids: vec![id],
                    detail: format!(
                        "{group_by}={group}: {field}={value} never seen before ({known} known since {since})"
                    ),
                })
            }
        }
    }
}
