//! # nbtrail-samplegen
//!
//! Writes realistic Databricks audit logs, deterministically from a seed, so nbtrail has something real to
//! show on first run, its tests have ground truth, and its benchmarks have volume. This crate owns:
//!
//! * an activity model ([`Generator`]): several users and notebooks over weeks, a realistic mix of services
//!   (most events are *not* notebook commands), notebook sessions with Python/SQL/Scala/markdown cells and
//!   magics, failed/cancelled/skipped cells, a renamed notebook, a verbose-audit-logging gap, and one planted
//!   incident (see `sample-logs/README.md`);
//! * writers for the three export shapes ([`write_delivered`], [`write_system_table`], [`write_azure`]) and
//!   the damage real deliveries have: re-delivered duplicate files, malformed lines, gzip;
//! * [`write_sample_set`]: the committed `sample-logs/` set plus `MANIFEST.json`, the ground truth tests
//!   compare ingest results with; and [`write_bench`]: millions of events streamed to one file.

use chrono::{DateTime, Duration, NaiveDate, TimeZone, Utc};
use rand::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{self, Write};
use std::path::Path;

/// One audit record, independent of the export shape.
#[derive(Debug, Clone)]
pub struct Rec {
    /// Epoch ms.
    pub time_ms: i64,
    /// Workspace id.
    pub workspace_id: u64,
    /// E-mail (or `System-User`).
    pub user: String,
    /// serviceName.
    pub service: &'static str,
    /// actionName.
    pub action: &'static str,
    /// requestId.
    pub request_id: String,
    /// requestParams (all strings).
    pub params: BTreeMap<String, String>,
    /// response.statusCode.
    pub status_code: i64,
    /// response.errorMessage.
    pub error: Option<String>,
    /// sourceIPAddress.
    pub ip: String,
    /// userAgent.
    pub user_agent: &'static str,
    /// sessionId (web session).
    pub web_session: String,
}

const UA_BROWSER: &str = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";
const UA_CLI: &str = "databricks-cli/0.18.0 python/3.11";
const UA_SDK: &str = "databricks-sdk-py/0.28.0 python/3.11.7 os/linux auth/pat";
const UA_INTERNAL: &str = "Databricks-Service/driver";

/// People in the sample organisation.
pub const USERS: &[&str] = &[
    "alice.nguyen@example.com",
    "bob.martin@example.com",
    "carol.smith@example.com",
    "dave.okafor@example.com",
    "erin.kowalski@example.com",
];

/// The planted incident's user.
pub const INCIDENT_USER: &str = "alice.nguyen@example.com";
/// The planted incident's notebook path.
pub const INCIDENT_NOTEBOOK: &str = "/Users/alice.nguyen@example.com/churn_scratch";
/// The admin who switches verbose audit logging off.
pub const GAP_USER: &str = "dave.okafor@example.com";

struct Notebook {
    id: String,
    path: String,
    owner: usize,
    lang: &'static str,
}

const PY_CELLS: &[&str] = &[
    "df = spark.table(\"prod.sales.orders\")\ndisplay(df.limit(100))",
    "from pyspark.sql import functions as F\nagg = df.groupBy(\"region\").agg(F.sum(\"amount\").alias(\"revenue\"))\ndisplay(agg)",
    "import pandas as pd\npdf = agg.toPandas()\npdf.describe()",
    "features = spark.read.table(\"analytics.ml.churn_features\")\nprint(features.count())",
    "model_df = features.filter(F.col(\"tenure_months\") > 3).select(\"customer_id\", \"tenure_months\", \"monthly_spend\")",
    "train, test = model_df.randomSplit([0.8, 0.2], seed=42)\nprint(train.count(), test.count())",
    "dbutils.widgets.text(\"run_date\", \"2024-05-01\")\nrun_date = dbutils.widgets.get(\"run_date\")",
    "spark.sql(f\"SELECT count(*) FROM prod.sales.orders WHERE order_date = '{run_date}'\").show()",
    "daily = spark.sql(\"SELECT order_date, sum(amount) AS total FROM prod.sales.orders GROUP BY order_date\")\ndaily.write.mode(\"overwrite\").saveAsTable(\"analytics.reporting.daily_revenue\")",
    "import matplotlib.pyplot as plt\npdf.plot(x=\"region\", y=\"revenue\", kind=\"bar\")\nplt.show()",
    "def clean(col):\n    return F.trim(F.lower(F.col(col)))\n\ncustomers = spark.table(\"prod.crm.customers\").withColumn(\"email\", clean(\"email\"))",
    "customers.createOrReplaceTempView(\"cust\")",
    "print(\"rows:\", len(pdf))",
    "%pip install scikit-learn==1.4.2",
    "%run ./helpers/feature_utils",
    "%sh ls -la /dbfs/FileStore/shared_uploads/",
    "dbutils.fs.ls(\"/mnt/raw/events/\")",
    "for c in df.columns:\n    print(c, df.schema[c].dataType)",
    "x = undefined_variable + 1",
];

const SQL_CELLS: &[&str] = &[
    "%sql\nSELECT region, sum(amount) AS revenue\nFROM prod.sales.orders\nWHERE order_date >= '2024-04-01'\nGROUP BY region",
    "%sql\nSELECT * FROM analytics.reporting.daily_revenue ORDER BY order_date DESC LIMIT 30",
    "%sql\nDESCRIBE HISTORY prod.sales.orders",
    "%sql\nCREATE OR REPLACE TABLE analytics.scratch.top_customers AS\nSELECT customer_id, sum(amount) AS spend FROM prod.sales.orders GROUP BY customer_id ORDER BY spend DESC LIMIT 100",
    "%sql\nSELECT count(*) FROM `prod`.`crm`.`customers`",
];

const SCALA_CELLS: &[&str] = &[
    "%scala\nval events = spark.read.format(\"delta\").load(\"/mnt/raw/events\")\nevents.printSchema()",
    "%scala\nevents.groupBy(\"event_type\").count().show()",
];

const MD_CELLS: &[&str] = &[
    "%md\n# Revenue by region\nQuarterly check requested by finance.",
    "%md\n## Notes\n* churn features refreshed nightly\n* ask Bob about the tenure cutoff",
];

const SQL_WAREHOUSE: &[&str] = &[
    "SELECT * FROM prod.sales.orders WHERE order_date = current_date() - 1",
    "SELECT region, count(*) FROM prod.crm.customers GROUP BY region",
    "SELECT * FROM analytics.reporting.daily_revenue LIMIT 1000",
];

/// What the planted story and the damage consist of, for tests and the README.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Truth {
    /// Records written per file (including malformed ones), relative path → count.
    pub records: BTreeMap<String, u64>,
    /// Malformed records per file, relative path → 1-based line numbers.
    pub malformed: BTreeMap<String, Vec<u64>>,
    /// Records written that repeat an earlier one (re-deliveries, cross-shape exports).
    pub duplicates: u64,
    /// Distinct valid events written.
    pub unique_events: u64,
    /// Notebook command events among them.
    pub commands: u64,
    /// Verbose audit logging off → on, RFC 3339.
    pub gap: Option<(String, String)>,
    /// The incident: cells run by the incident user in the incident notebook, in order.
    pub incident_cells: Vec<String>,
    /// The incident's notebook id.
    pub incident_notebook_id: String,
    /// Renamed notebook: (id, old path, new path).
    pub renamed: Option<(String, String, String)>,
    /// SQL warehouse statements (`databrickssql.commandSubmit`), each with a `commandFinish`.
    pub warehouse_statements: u64,
    /// Of those, how many finished with an error.
    pub warehouse_failed: u64,
    /// Warehouse sessions: per (warehouse, user), split by a 2 h idle gap.
    pub warehouse_sessions: u64,
    /// `system.query.history` rows (workspace 2's statements again, with status, duration and rows).
    pub query_history_rows: u64,
    /// `system.access.table_lineage` rows.
    pub lineage_rows: u64,
}

/// Deterministic activity generator.
pub struct Generator {
    rng: ChaCha8Rng,
    req: u64,
    cmd: u64,
    notebooks: Vec<Notebook>,
    /// Vary the cells' code (see [`Generator::varied`]).
    vary: bool,
}

/// Table names the code templates use, and the pools [`vary_code`] draws replacements from.
const TEMPLATE_TABLES: &[&str] = &[
    "prod.sales.orders",
    "prod.crm.customers",
    "analytics.ml.churn_features",
    "analytics.reporting.daily_revenue",
    "analytics.scratch.top_customers",
];
const CATALOGS: &[&str] = &[
    "prod",
    "analytics",
    "finance",
    "hr",
    "marketing",
    "ops",
    "raw",
    "staging",
];
const SCHEMAS: &[&str] = &[
    "sales",
    "crm",
    "ml",
    "reporting",
    "scratch",
    "billing",
    "events",
    "people",
    "web",
    "supply",
];
const TABLES: &[&str] = &[
    "orders",
    "customers",
    "churn_features",
    "daily_revenue",
    "top_customers",
    "invoices",
    "payments",
    "sessions",
    "employees",
    "campaigns",
    "shipments",
    "returns",
    "clicks",
    "accounts",
    "contracts",
    "tickets",
];
const DIMENSIONS: &[&str] = &[
    "region",
    "country",
    "channel",
    "segment",
    "product_line",
    "store_id",
    "team",
];
const MEASURES: &[&str] = &[
    "amount",
    "net_amount",
    "gross_amount",
    "quantity",
    "discount",
    "cost",
];

/// A variant of a code template: the tables it names (half the time another of 1,280 names, so popular
/// tables stay popular), its grouping column and measure, dates, limits, seeds and thresholds drawn at
/// random. Real notebooks rarely run the very same text twice in a million commands; a corpus built from
/// a few dozen fixed texts would flatter every benchmark that parses, indexes or analyses code.
fn vary_code(template: &str, rng: &mut ChaCha8Rng) -> String {
    let pick = |rng: &mut ChaCha8Rng, pool: &[&'static str]| pool[rng.random_range(0..pool.len())];
    let mut code = template.to_string();
    for t in TEMPLATE_TABLES {
        if code.contains(t) && rng.random_bool(0.5) {
            let name = format!(
                "{}.{}.{}",
                pick(rng, CATALOGS),
                pick(rng, SCHEMAS),
                pick(rng, TABLES)
            );
            code = code.replace(t, &name);
        }
    }
    if code.contains("`prod`.`crm`.`customers`") && rng.random_bool(0.5) {
        let name = format!(
            "`{}`.`{}`.`{}`",
            pick(rng, CATALOGS),
            pick(rng, SCHEMAS),
            pick(rng, TABLES)
        );
        code = code.replace("`prod`.`crm`.`customers`", &name);
    }
    let dim = pick(rng, DIMENSIONS);
    let measure = pick(rng, MEASURES);
    code = code.replace("region", dim).replace("amount", measure);
    for date in ["2024-04-01", "2024-05-01"] {
        let d = format!(
            "{}-{:02}-{:02}",
            rng.random_range(2020..2026),
            rng.random_range(1..13),
            rng.random_range(1..29)
        );
        code = code.replace(date, &d);
    }
    for (from, to) in [
        (
            "LIMIT 100",
            format!("LIMIT {}", rng.random_range(1..50) * 10),
        ),
        ("LIMIT 30", format!("LIMIT {}", rng.random_range(5..90))),
        (
            "LIMIT 1000",
            format!("LIMIT {}", rng.random_range(1..20) * 500),
        ),
        (
            "limit(100)",
            format!("limit({})", rng.random_range(1..50) * 10),
        ),
        ("seed=42", format!("seed={}", rng.random_range(1..10_000))),
        ("> 3", format!("> {}", rng.random_range(1..37))),
        ("[0.8, 0.2]", {
            let a = rng.random_range(6..10);
            format!("[0.{a}, 0.{}]", 10 - a)
        }),
    ] {
        code = code.replace(from, &to);
    }
    code
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

impl Generator {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let names = [
            "revenue_by_region",
            "churn_features",
            "etl_orders_daily",
            "adhoc_queries",
            "ml_experiments",
            "customer_360",
            "data_quality_checks",
        ];
        let mut notebooks = Vec::new();
        for (u, user) in USERS.iter().enumerate() {
            for k in 0..3 {
                let name = names[(u * 3 + k) % names.len()];
                let lang = if (u + k) % 4 == 3 { "sql" } else { "python" };
                notebooks.push(Notebook {
                    id: format!(
                        "{}",
                        rng.random_range(1_000_000_000_000_000u64..9_999_999_999_999_999)
                    ),
                    path: format!("/Users/{user}/{name}"),
                    owner: u,
                    lang,
                });
            }
        }
        notebooks.push(Notebook {
            id: format!(
                "{}",
                rng.random_range(1_000_000_000_000_000u64..9_999_999_999_999_999)
            ),
            path: "/Shared/team/weekly_kpis".into(),
            owner: 1,
            lang: "python",
        });
        Generator {
            rng,
            req: 0,
            cmd: 0,
            notebooks,
            vary: false,
        }
    }

    /// This generator, with every cell's code varied from its template (tables, columns, dates, limits;
    /// see `vary_code`). The benchmark corpora use it; the committed sample logs do not, so that they
    /// stay small and readable.
    pub fn varied(mut self) -> Self {
        self.vary = true;
        self
    }

    fn rec(
        &mut self,
        t: i64,
        ws: u64,
        user: &str,
        service: &'static str,
        action: &'static str,
        params: &[(&str, String)],
    ) -> Rec {
        self.req += 1;
        let ip_last = (user.len() as u64 * 7 + ws) % 200 + 10;
        let ua = if user == "System-User" {
            UA_INTERNAL
        } else {
            match self.req % 9 {
                0 => UA_CLI,
                1 => UA_SDK,
                _ => UA_BROWSER,
            }
        };
        Rec {
            time_ms: t,
            workspace_id: ws,
            user: user.to_string(),
            service,
            action,
            request_id: format!(
                "ServiceMain-{:012x}",
                self.req.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 16
            ),
            params: params
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            status_code: 200,
            error: None,
            ip: format!("10.20.{}.{}", ws % 50, ip_last),
            user_agent: ua,
            web_session: format!(
                "ses-{:08x}",
                (user.len() as u64) << 20 | (t as u64 / 3_600_000) & 0xfffff
            ),
        }
    }

    /// Background (non-notebook) activity of one user in a time window.
    fn background(&mut self, t0: i64, t1: i64, ws: u64, user: &str, out: &mut dyn FnMut(Rec)) {
        let n = self.rng.random_range(6..18);
        for _ in 0..n {
            let t = self.rng.random_range(t0..t1);
            let pick = self.rng.random_range(0..100);
            let tables = [
                "prod.sales.orders",
                "prod.crm.customers",
                "analytics.ml.churn_features",
                "analytics.reporting.daily_revenue",
            ];
            let table = tables[self.rng.random_range(0..tables.len())].to_string();
            let r = match pick {
                0..=29 => self.rec(
                    t,
                    ws,
                    user,
                    "unityCatalog",
                    "getTable",
                    &[("full_name_arg", table)],
                ),
                30..=39 => self.rec(
                    t,
                    ws,
                    user,
                    "unityCatalog",
                    "generateTemporaryTableCredential",
                    &[("table_full_name", table), ("operation", "READ".into())],
                ),
                40..=49 => self.rec(
                    t,
                    ws,
                    user,
                    "workspace",
                    "getWorkspaceObject",
                    &[("path", format!("/Users/{user}"))],
                ),
                50..=57 => self.rec(
                    t,
                    ws,
                    user,
                    "dbfs",
                    "getStatus",
                    &[("path", "/mnt/raw/events".into())],
                ),
                58..=63 => self.rec(
                    t,
                    ws,
                    user,
                    "clusters",
                    "get",
                    &[("cluster_id", cluster(ws))],
                ),
                64..=69 => self.rec(
                    t,
                    ws,
                    user,
                    "accounts",
                    "tokenLogin",
                    &[("tokenId", format!("{:x}", self.req * 31))],
                ),
                70..=79 => {
                    let q = SQL_WAREHOUSE[self.rng.random_range(0..SQL_WAREHOUSE.len())];
                    let q = if self.vary {
                        vary_code(q, &mut self.rng)
                    } else {
                        q.to_string()
                    };
                    self.rec(
                        t,
                        ws,
                        user,
                        "databrickssql",
                        "commandSubmit",
                        &[
                            ("commandText", q),
                            ("warehouseId", format!("wh{ws:04x}")),
                            ("commandId", format!("{:x}", self.req)),
                        ],
                    )
                }
                80..=84 => self.rec(
                    t,
                    ws,
                    user,
                    "jobs",
                    "getRun",
                    &[("run_id", format!("{}", 9000 + self.req % 500))],
                ),
                85..=89 => self.rec(
                    t,
                    ws,
                    user,
                    "sqlPermissions",
                    "getSecurable",
                    &[("securable", table)],
                ),
                90..=93 => self.rec(t, ws, user, "secrets", "listScopes", &[]),
                94..=96 => self.rec(
                    t,
                    ws,
                    user,
                    "notebook",
                    "downloadPreviewResults",
                    &[
                        ("notebookFullPath", format!("/Users/{user}/adhoc_queries")),
                        ("notebookId", "0".into()),
                    ],
                ),
                _ => self.rec(
                    t,
                    ws,
                    user,
                    "workspace",
                    "mintOAuthToken",
                    &[("client_id", "databricks-cli".into())],
                ),
            };
            let finish = (r.action == "commandSubmit").then(|| statement_finish(&r));
            out(r);
            if let Some(f) = finish {
                out(f);
            }
        }
    }

    /// One notebook session: attach, cells, maybe detach.
    fn session(
        &mut self,
        t0: i64,
        ws: u64,
        user: &str,
        nb: usize,
        out: &mut dyn FnMut(Rec),
    ) -> i64 {
        let (id, path, lang) = {
            let n = &self.notebooks[nb];
            (n.id.clone(), n.path.clone(), n.lang)
        };
        let cl = cluster(ws);
        out(self.rec(
            t0,
            ws,
            user,
            "notebook",
            "attachNotebook",
            &[
                ("notebookId", id.clone()),
                ("clusterId", cl.clone()),
                ("path", path),
            ],
        ));
        let mut t = t0 + self.rng.random_range(5_000..60_000);
        let cells = self.rng.random_range(3..14);
        for _ in 0..cells {
            let code = match (lang, self.rng.random_range(0..10)) {
                ("sql", 0..=6) | (_, 0..=1) => SQL_CELLS[self.rng.random_range(0..SQL_CELLS.len())],
                (_, 2) => MD_CELLS[self.rng.random_range(0..MD_CELLS.len())],
                (_, 3) => SCALA_CELLS[self.rng.random_range(0..SCALA_CELLS.len())],
                _ => PY_CELLS[self.rng.random_range(0..PY_CELLS.len())],
            };
            let code = if self.vary {
                std::borrow::Cow::Owned(vary_code(code, &mut self.rng))
            } else {
                std::borrow::Cow::Borrowed(code)
            };
            // In a SQL notebook a Python cell starts with the `%python` magic, as Databricks requires.
            let code = if lang == "sql" && !code.starts_with('%') {
                std::borrow::Cow::Owned(format!("%python\n{code}"))
            } else {
                code
            };
            let status = match self.rng.random_range(0..40) {
                0..=1 => "failed",
                2 => "cancelled",
                3 => "skipped",
                _ => "finished",
            };
            let status = if code.contains("undefined_variable") {
                "failed"
            } else {
                status
            };
            let exec = self.rng.random_range(0.05f64..45.0);
            t += (exec * 1000.0) as i64;
            self.command(t, ws, user, &id, &cl, &code, lang, exec, status, out);
            t += self.rng.random_range(10_000..600_000);
        }
        if self.rng.random_bool(0.7) {
            out(self.rec(
                t,
                ws,
                user,
                "notebook",
                "detachNotebook",
                &[
                    ("notebookId", id),
                    ("clusterId", cl),
                    ("path", self.notebooks[nb].path.clone()),
                ],
            ));
        }
        t
    }

    #[allow(clippy::too_many_arguments)]
    fn command(
        &mut self,
        t: i64,
        ws: u64,
        user: &str,
        nb_id: &str,
        cl: &str,
        code: &str,
        lang: &str,
        exec: f64,
        status: &str,
        out: &mut dyn FnMut(Rec),
    ) {
        self.cmd += 1;
        let mut r = self.rec(
            t,
            ws,
            user,
            "notebook",
            "runCommand",
            &[
                ("notebookId", nb_id.to_string()),
                ("clusterId", cl.to_string()),
                ("commandId", format!("{}", 7_000_000 + self.cmd)),
                ("commandLanguage", lang.to_string()),
                ("commandText", code.to_string()),
                ("executionTime", format!("{exec:.3}")),
                ("status", status.to_string()),
            ],
        );
        if status == "failed" {
            r.status_code = 400;
            r.error = Some(if code.contains("undefined_variable") {
                "NameError: name 'undefined_variable' is not defined".into()
            } else {
                "AnalysisException: Table or view not found".into()
            });
        }
        out(r);
    }

    /// A day of activity in workspace `ws` for `users` (indexes into [`USERS`]).
    pub fn day(&mut self, date: NaiveDate, ws: u64, users: &[usize], out: &mut dyn FnMut(Rec)) {
        let base = Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight"));
        let weekend = matches!(
            chrono::Datelike::weekday(&date),
            chrono::Weekday::Sat | chrono::Weekday::Sun
        );
        // Automation runs every day.
        for h in [2, 8, 14, 20] {
            let t = ms(base + Duration::hours(h)) + self.rng.random_range(0..600_000);
            out(self.rec(
                t,
                ws,
                "System-User",
                "clusters",
                "resize",
                &[("cluster_id", cluster(ws)), ("target_workers", "4".into())],
            ));
            out(self.rec(
                t + 1000,
                ws,
                "System-User",
                "jobs",
                "runStart",
                &[
                    ("jobId", "381".into()),
                    ("runId", format!("{}", 50_000 + t / 86_400_000)),
                ],
            ));
        }
        if weekend {
            return;
        }
        for &u in users {
            if self.rng.random_bool(0.15) {
                continue; // a day off
            }
            let user = USERS[u];
            let start = ms(base + Duration::hours(8)) + self.rng.random_range(0..5_400_000);
            let end = ms(base + Duration::hours(17)) + self.rng.random_range(0..5_400_000);
            out(self.rec(
                start - 60_000,
                ws,
                user,
                "accounts",
                "login",
                &[("user", user.into())],
            ));
            self.background(start, end, ws, user, out);
            let mine: Vec<usize> = (0..self.notebooks.len())
                .filter(|&i| self.notebooks[i].owner == u || i == self.notebooks.len() - 1)
                .collect();
            let mut t = start;
            for _ in 0..self.rng.random_range(1..3) {
                let nb = mine[self.rng.random_range(0..mine.len())];
                t = self.session(t, ws, user, nb, out) + self.rng.random_range(600_000..3_600_000);
                if t > end {
                    break;
                }
            }
        }
    }
}

/// The `commandFinish` of a SQL warehouse statement: 0.2–30 s after its submit, one in thirteen failing.
/// Derived from the submit alone (no draw from the generator's random stream, so adding finishes left
/// every other record of the sample set as it was).
pub(crate) fn statement_finish(submit: &Rec) -> Rec {
    let h = submit
        .request_id
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    let mut f = submit.clone();
    f.action = "commandFinish";
    f.time_ms = submit.time_ms + 200 + (h % 29_800) as i64;
    f.request_id = format!("{}-finish", submit.request_id);
    f.params.remove("commandText");
    if h % 13 == 0 {
        f.status_code = 400;
        f.error = Some("[TABLE_OR_VIEW_NOT_FOUND] The table or view cannot be found.".into());
    }
    f
}

fn cluster(ws: u64) -> String {
    format!("0501-{:06}-team{:02}", ws % 1_000_000, ws % 97)
}

/// Shape A: one delivered JSON line.
pub fn delivered(r: &Rec) -> String {
    let date = DateTime::from_timestamp_millis(r.time_ms)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    json!({
        "version": "2.0",
        "auditLevel": "WORKSPACE_LEVEL",
        "timestamp": r.time_ms,
        "orgId": r.workspace_id.to_string(),
        "shardName": "prod-eu-west-1",
        "accountId": "a1b2c3d4-0000-4000-8000-00000000acc1",
        "date": date,
        "workspaceId": r.workspace_id,
        "sourceIPAddress": r.ip,
        "userAgent": r.user_agent,
        "sessionId": r.web_session,
        "userIdentity": {"email": r.user, "subjectName": null},
        "serviceName": r.service,
        "actionName": r.action,
        "requestId": r.request_id,
        "requestParams": r.params,
        "response": {"statusCode": r.status_code, "errorMessage": r.error, "result": null},
    })
    .to_string()
}

fn system_table_value(r: &Rec) -> Value {
    let t = DateTime::from_timestamp_millis(r.time_ms).unwrap_or_default();
    json!({
        "account_id": "a1b2c3d4-0000-4000-8000-00000000acc1",
        "workspace_id": r.workspace_id.to_string(),
        "version": "2.0",
        "event_time": t.format("%Y-%m-%dT%H:%M:%S%.3f+00:00").to_string(),
        "event_date": t.format("%Y-%m-%d").to_string(),
        "source_ip_address": r.ip,
        "user_agent": r.user_agent,
        "session_id": r.web_session,
        "user_identity": {"email": r.user, "subjectName": null},
        "service_name": r.service,
        "action_name": r.action,
        "request_id": r.request_id,
        "request_params": r.params,
        "response": {"status_code": r.status_code, "error_message": r.error, "result": null},
        "audit_level": "WORKSPACE_LEVEL",
        "event_id": format!("{:032x}", (r.time_ms as u128) << 40 | (r.request_id.len() as u128)),
        "identity_metadata": {"run_by": r.user, "run_as": r.user, "created_by": null},
    })
}

/// Shape B as JSON lines.
pub fn system_table(r: &Rec) -> String {
    system_table_value(r).to_string()
}

/// CSV columns of the shape B export.
pub const CSV_HEADER: &[&str] = &[
    "account_id",
    "workspace_id",
    "version",
    "event_time",
    "event_date",
    "source_ip_address",
    "user_agent",
    "session_id",
    "user_identity",
    "service_name",
    "action_name",
    "request_id",
    "request_params",
    "response",
    "audit_level",
    "event_id",
    "identity_metadata",
];

pub(crate) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Shape B as one CSV row (struct columns as JSON text, like Spark writes them).
pub fn system_table_csv(r: &Rec) -> String {
    let v = system_table_value(r);
    let t = DateTime::from_timestamp_millis(r.time_ms).unwrap_or_default();
    CSV_HEADER
        .iter()
        .map(|c| {
            let f = &v[*c];
            let s = match (*c, f) {
                ("event_time", _) => t.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                (_, Value::String(s)) => s.clone(),
                (_, Value::Null) => String::new(),
                (_, other) => other.to_string(),
            };
            csv_field(&s)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Shape C (Log Analytics `DatabricksNotebook`-style rows); `params_as_text` decides whether
/// `RequestParams` is JSON text (as Azure usually delivers it) or an object.
pub fn azure_value(r: &Rec, params_as_text: bool) -> Value {
    let t = DateTime::from_timestamp_millis(r.time_ms).unwrap_or_default();
    let params = serde_json::to_value(&r.params).unwrap_or_default();
    json!({
        "TenantId": "7f0c5e2a-0000-4000-8000-0000000000aa",
        "TimeGenerated": t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "Category": r.service,
        "OperationName": format!("Microsoft.Databricks/workspaces/{}/{}", r.service, r.action),
        "OperationVersion": "1.0.0",
        "Identity": json!({"email": r.user, "subjectName": null}).to_string(),
        "SourceIPAddress": r.ip,
        "UserAgent": r.user_agent,
        "ServiceName": r.service,
        "ActionName": r.action,
        "SessionId": r.web_session,
        "RequestId": r.request_id,
        "RequestParams": if params_as_text { Value::String(params.to_string()) } else { params },
        "Response": json!({"statusCode": r.status_code, "errorMessage": r.error}).to_string(),
        "LogId": format!("{:08x}-log", r.time_ms as u64 ^ 0x5a5a),
        "WorkspaceId": r.workspace_id.to_string(),
        "Type": "DatabricksNotebook",
    })
}

/// Shape C as one JSON line.
pub fn azure(r: &Rec, params_as_text: bool) -> String {
    azure_value(r, params_as_text).to_string()
}

/// Shape C as Azure diagnostic settings send it to Event Hubs and storage (a "resource log": `time`,
/// `resourceId`, `category`, `operationName`, `identity` as JSON text, the audit fields under `properties`).
pub fn azure_resource_log(r: &Rec) -> Value {
    let t = DateTime::from_timestamp_millis(r.time_ms).unwrap_or_default();
    json!({
        "resourceId": "/SUBSCRIPTIONS/7F0C5E2A-0000-4000-8000-0000000000AA/RESOURCEGROUPS/ANALYTICS-PROD/PROVIDERS/MICROSOFT.DATABRICKS/WORKSPACES/ANALYTICS-EU",
        "operationVersion": "1.0.0",
        "identity": json!({"email": r.user, "subjectName": null}).to_string(),
        "operationName": format!("Microsoft.Databricks/{}/{}", r.service, r.action),
        "time": t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
        "category": r.service,
        "properties": {
            "sourceIPAddress": r.ip,
            "logId": format!("{:08x}-log", r.time_ms as u64 ^ 0x5a5a),
            "serviceName": r.service,
            "userAgent": r.user_agent,
            "response": json!({"statusCode": r.status_code, "errorMessage": r.error}).to_string(),
            "sessionId": r.web_session,
            "actionName": r.action,
            "requestId": r.request_id,
            "requestParams": serde_json::to_value(&r.params).unwrap_or_default().to_string(),
        },
    })
}

/// The Avro schema Azure Event Hubs Capture writes.
pub const EVENT_HUBS_CAPTURE_SCHEMA: &str = r#"{"type":"record","name":"EventData","namespace":"Microsoft.ServiceBus.Messaging","fields":[{"name":"SequenceNumber","type":"long"},{"name":"Offset","type":"string"},{"name":"EnqueuedTimeUtc","type":"string"},{"name":"SystemProperties","type":{"type":"map","values":["long","double","string","bytes"]}},{"name":"Properties","type":{"type":"map","values":["long","double","string","bytes","null"]}},{"name":"Body","type":["null","bytes"]}]}"#;

/// Writes an Event Hubs Capture file: one event per body, enqueued at `enqueued_ms[i]`, deflate blocks
/// (Capture's default), a fixed sync marker so the output is reproducible.
pub fn write_event_hubs_capture(path: &Path, bodies: &[(i64, Vec<u8>)]) -> io::Result<()> {
    use apache_avro::types::{Record, Value as A};
    let bad = |e: apache_avro::Error| io::Error::other(e.to_string());
    let schema = apache_avro::Schema::parse_str(EVENT_HUBS_CAPTURE_SCHEMA).map_err(bad)?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    // The header is written here, in a fixed key order: the crate's writer keeps its metadata in a
    // HashMap, whose order (and so the file's bytes) varies from run to run.
    const MARKER: [u8; 16] = *b"nbtrail-sample!!";
    fn zigzag(out: &mut Vec<u8>, n: i64) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }
    let mut header = b"Obj\x01".to_vec();
    let schema_json = serde_json::to_string(&schema).map_err(io::Error::other)?;
    zigzag(&mut header, 2);
    for (k, v) in [
        ("avro.codec", "deflate"),
        ("avro.schema", schema_json.as_str()),
    ] {
        zigzag(&mut header, k.len() as i64);
        header.extend_from_slice(k.as_bytes());
        zigzag(&mut header, v.len() as i64);
        header.extend_from_slice(v.as_bytes());
    }
    header.push(0);
    header.extend_from_slice(&MARKER);
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    file.write_all(&header)?;
    let mut w = apache_avro::Writer::builder()
        .schema(&schema)
        .writer(file)
        .codec(apache_avro::Codec::Deflate(
            apache_avro::DeflateSettings::default(),
        ))
        .marker(MARKER)
        .has_header(true)
        .build()
        .map_err(bad)?;
    let mut offset = 0u64;
    for (i, (enqueued, body)) in bodies.iter().enumerate() {
        let mut r = Record::new(&schema).ok_or_else(|| io::Error::other("schema is a record"))?;
        r.put("SequenceNumber", i as i64);
        r.put("Offset", offset.to_string());
        r.put(
            "EnqueuedTimeUtc",
            DateTime::from_timestamp_millis(*enqueued)
                .unwrap_or_default()
                .format("%-m/%-d/%Y %-I:%M:%S %p")
                .to_string(),
        );
        r.put(
            "SystemProperties",
            A::Map(
                [(
                    "x-opt-enqueued-time".to_string(),
                    A::Union(0, Box::new(A::Long(*enqueued))),
                )]
                .into_iter()
                .collect(),
            ),
        );
        r.put("Properties", A::Map(Default::default()));
        r.put("Body", A::Union(1, Box::new(A::Bytes(body.clone()))));
        w.append_value(r).map_err(bad)?;
        offset += body.len() as u64;
    }
    w.flush().map_err(bad)?;
    w.into_inner().map_err(bad)?.flush()
}

/// Writes shape B as `df.write.parquet` of a SQL export does: one row per record, struct columns as JSON
/// text, `event_time` a millisecond timestamp, `rows_per_group` rows per row group, snappy pages.
pub fn write_system_table_parquet(
    path: &Path,
    recs: &[&Rec],
    rows_per_group: usize,
) -> io::Result<()> {
    use parquet::data_type::{ByteArray, ByteArrayType, Int64Type};
    use parquet::file::properties::WriterProperties;
    use parquet::file::writer::SerializedFileWriter;
    let bad = |e: parquet::errors::ParquetError| io::Error::other(e.to_string());
    let mut message = String::from("message spark_schema {\n");
    for c in CSV_HEADER {
        if *c == "event_time" {
            message.push_str("  OPTIONAL INT64 event_time (TIMESTAMP(MILLIS,true));\n");
        } else {
            message.push_str(&format!("  OPTIONAL BINARY {c} (STRING);\n"));
        }
    }
    message.push('}');
    let schema =
        std::sync::Arc::new(parquet::schema::parser::parse_message_type(&message).map_err(bad)?);
    let props = std::sync::Arc::new(
        WriterProperties::builder()
            .set_compression(parquet::basic::Compression::SNAPPY)
            .set_created_by("nbtrail-samplegen".into())
            .build(),
    );
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut w =
        SerializedFileWriter::new(std::fs::File::create(path)?, schema, props).map_err(bad)?;
    for group in recs.chunks(rows_per_group.max(1)) {
        let values: Vec<Value> = group.iter().map(|r| system_table_value(r)).collect();
        let mut rg = w.next_row_group().map_err(bad)?;
        let mut col_no = 0;
        while let Some(mut col) = rg.next_column().map_err(bad)? {
            let name = CSV_HEADER[col_no];
            if name == "event_time" {
                let t: Vec<i64> = group.iter().map(|r| r.time_ms).collect();
                let def = vec![1i16; t.len()];
                col.typed::<Int64Type>()
                    .write_batch(&t, Some(&def), None)
                    .map_err(bad)?;
            } else {
                let mut data = Vec::new();
                let mut def = Vec::new();
                for v in &values {
                    match &v[name] {
                        Value::Null => def.push(0i16),
                        Value::String(s) => {
                            def.push(1);
                            data.push(ByteArray::from(s.as_str()));
                        }
                        other => {
                            def.push(1);
                            data.push(ByteArray::from(other.to_string().as_str()));
                        }
                    }
                }
                col.typed::<ByteArrayType>()
                    .write_batch(&data, Some(&def), None)
                    .map_err(bad)?;
            }
            col.close().map_err(bad)?;
            col_no += 1;
        }
        rg.close().map_err(bad)?;
    }
    w.close().map_err(bad)?;
    Ok(())
}

/// Writes records as shape A JSON lines.
pub fn write_delivered(w: &mut dyn Write, recs: &[Rec]) -> io::Result<()> {
    for r in recs {
        writeln!(w, "{}", delivered(r))?;
    }
    Ok(())
}

/// Writes records as shape B JSON lines.
pub fn write_system_table(w: &mut dyn Write, recs: &[Rec]) -> io::Result<()> {
    for r in recs {
        writeln!(w, "{}", system_table(r))?;
    }
    Ok(())
}

/// Writes records as shape C JSON lines.
pub fn write_azure(w: &mut dyn Write, recs: &[Rec]) -> io::Result<()> {
    for (i, r) in recs.iter().enumerate() {
        writeln!(w, "{}", azure(r, i % 5 != 0))?;
    }
    Ok(())
}

mod sample;
pub use sample::{BenchShape, write_bench, write_sample_set};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varied_code_keeps_the_template_shape_and_differs_between_draws() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let template = SQL_CELLS[0];
        let variants: std::collections::BTreeSet<String> =
            (0..200).map(|_| vary_code(template, &mut rng)).collect();
        assert!(variants.len() > 150, "{} distinct", variants.len());
        for v in &variants {
            assert!(v.starts_with("%sql\nSELECT "), "{v}");
            assert!(v.contains("GROUP BY "), "{v}");
        }
        // Half the time the template's own table stays, so popular tables stay popular.
        let kept = variants
            .iter()
            .filter(|v| v.contains("prod.sales.orders"))
            .count();
        assert!((60..140).contains(&kept), "{kept}");
        // Text without variable parts is left alone.
        assert_eq!(vary_code(MD_CELLS[0], &mut rng), MD_CELLS[0]);
    }

    #[test]
    fn only_the_varied_generator_varies_code() {
        let day = chrono::NaiveDate::from_ymd_opt(2024, 3, 1).unwrap();
        let codes = |g: &mut Generator| {
            let mut out = Vec::new();
            for d in 0..10 {
                g.day(day + chrono::Duration::days(d), 1, &[0, 1, 2], &mut |r| {
                    if let Some(c) = r.params.get("commandText") {
                        out.push(c.clone());
                    }
                });
            }
            out
        };
        let plain = codes(&mut Generator::new(5));
        let templates: std::collections::BTreeSet<&str> = PY_CELLS
            .iter()
            .chain(SQL_CELLS)
            .chain(SCALA_CELLS)
            .chain(MD_CELLS)
            .chain(SQL_WAREHOUSE)
            .copied()
            .collect();
        assert!(!plain.is_empty());
        for c in &plain {
            let c = c.strip_prefix("%python\n").unwrap_or(c);
            assert!(templates.contains(c), "{c}");
        }
        let varied = codes(&mut Generator::new(5).varied());
        let distinct: std::collections::BTreeSet<&String> = varied.iter().collect();
        assert!(
            distinct.len() * 4 > varied.len(),
            "{} of {}",
            distinct.len(),
            varied.len()
        );
    }
}
