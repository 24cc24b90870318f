use super::*;
use nbtrail_model::{EventFields, time_from_ms};

fn event(
    id: i64,
    ms: i64,
    service: &str,
    action: &str,
    user: &str,
    params: &[(&str, &str)],
) -> (serde_json::Value, i64) {
    let fields = EventFields {
        user: Some(user.into()),
        ..EventFields::new(time_from_ms(ms).unwrap(), service, action)
    };
    let params: BTreeMap<String, String> = params
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    (event_json(id, &fields, &params), ms)
}

fn run(set: &RuleSet, events: &[(serde_json::Value, i64)]) -> Vec<Detection> {
    let mut d = set.detector();
    events.iter().flat_map(|(e, t)| d.process(e, *t)).collect()
}

#[test]
fn the_shipped_pack_has_at_least_30_rules_with_unique_codes_and_both_kinds_of_fixture() {
    let set = RuleSet::builtin().unwrap();
    let reported: Vec<&RuleInfo> = set.rules().iter().filter(|r| !r.base_only).collect();
    assert!(reported.len() >= 30, "{} reported rules", reported.len());
    assert!(
        set.rules()
            .iter()
            .filter(|r| r.kind == "correlation")
            .count()
            >= 8
    );
    let mut codes: Vec<&str> = set.rules().iter().map(|r| r.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    assert_eq!(codes.len(), set.rules().len());
    assert!(
        set.rules()
            .iter()
            .all(|r| r.code.starts_with("NBE") && !r.title.is_empty())
    );
    // Every rule carries a positive and a negative fixture, and the engine agrees with every one.
    let report = set.exemplars().unwrap();
    assert!(
        report.missing.is_empty(),
        "rules without fixtures: {:?}",
        report.missing
    );
    let failures: Vec<_> = report.failures().collect();
    assert!(failures.is_empty(), "{failures:#?}");
    for r in set.rules() {
        let of_rule: Vec<_> = report
            .results
            .iter()
            .filter(|x| x.rule_title == r.title)
            .collect();
        let expects: std::collections::HashSet<&str> =
            of_rule.iter().map(|x| x.expect.as_str()).collect();
        assert_eq!(
            expects.len(),
            2,
            "{} needs a match and a no-match fixture",
            r.code
        );
    }
}

#[test]
fn events_built_from_normalized_fields_fire_the_rules_their_fixtures_describe() {
    let set = RuleSet::builtin().unwrap();
    let got = run(
        &set,
        &[event(
            1,
            0,
            "workspace",
            "workspaceConfEdit",
            "admin@example.com",
            &[
                ("workspaceConfKeys", "enableVerboseAuditLogs"),
                ("workspaceConfValues", "false"),
            ],
        )],
    );
    assert_eq!(
        got.iter().map(|d| d.rule.code.as_str()).collect::<Vec<_>>(),
        ["NBE001"]
    );
    assert_eq!(got[0].event_ids, [1]);
    // A response status as the store keeps it (a number) satisfies a numeric condition.
    let mut failed = Vec::new();
    for i in 0..5 {
        let (mut e, t) = event(
            10 + i,
            i * 60_000,
            "accounts",
            "login",
            "bob@example.com",
            &[],
        );
        e["response"]["statusCode"] = 401.into();
        failed.push((e, t));
    }
    let got = run(&set, &failed);
    let burst: Vec<_> = got.iter().filter(|d| d.rule.code == "NBE028").collect();
    assert_eq!(burst.len(), 1, "{got:#?}");
    assert_eq!(burst[0].event_ids, [10, 11, 12, 13, 14]);
    assert!(
        burst[0].detail.contains("bob@example.com"),
        "{}",
        burst[0].detail
    );
}

#[test]
fn secret_read_then_download_is_one_detection_naming_both_events_for_the_same_user_only() {
    let set = RuleSet::builtin().unwrap();
    let secret = event(
        1,
        0,
        "secrets",
        "getSecret",
        "alice@example.com",
        &[("scope", "prod"), ("key", "k")],
    );
    let own = event(
        2,
        600_000,
        "notebook",
        "downloadLargeResults",
        "alice@example.com",
        &[("notebookId", "42")],
    );
    let other = event(
        3,
        600_000,
        "notebook",
        "downloadLargeResults",
        "bob@example.com",
        &[("notebookId", "42")],
    );
    let seq = |d: &[Detection]| {
        d.iter()
            .filter(|d| d.rule.code == "NBE016")
            .map(|d| d.event_ids.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seq(&run(&set, &[secret.clone(), own.clone()])),
        [vec![1, 2]]
    );
    assert!(seq(&run(&set, &[secret.clone(), other])).is_empty());
    // Too late: outside the 30-minute window.
    let late = event(
        4,
        3_600_000,
        "notebook",
        "downloadLargeResults",
        "alice@example.com",
        &[],
    );
    assert!(seq(&run(&set, &[secret, late])).is_empty());
    // Base-only rules (every attach) are never reported on their own.
    let attach = event(
        5,
        0,
        "notebook",
        "attachNotebook",
        "alice@example.com",
        &[("notebookId", "42")],
    );
    assert!(run(&set, &[attach]).is_empty());
}

#[test]
fn user_rules_are_loaded_and_validated_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = "title: Scratch table written\nname: scratch_write\nlogsource: {product: databricks}\n\
                detection:\n  s:\n    requestParams.commandText|contains: scratch.\n  condition: s\nlevel: medium\n";
    std::fs::write(dir.path().join("mine.yml"), good).unwrap();
    let set = RuleSet::load(&[dir.path().to_path_buf()]).unwrap();
    let mine = set
        .rules()
        .iter()
        .find(|r| r.name == "scratch_write")
        .unwrap();
    assert!(mine.code.starts_with("NBEU-"), "{}", mine.code);
    assert!(mine.source.ends_with("mine.yml:1"), "{}", mine.source);
    let (e, t) = event(
        7,
        0,
        "notebook",
        "runCommand",
        "a@example.com",
        &[("commandText", "df.write.saveAsTable('scratch.x')")],
    );
    assert!(
        run(&set, &[(e, t)])
            .iter()
            .any(|d| d.rule.name == "scratch_write")
    );

    // The second document of a file is broken: the error names the file and the document's line.
    let bad = format!(
        "{good}---\n# second rule\ntitle: Broken\nlogsource: {{product: databricks}}\nlevel: high\n"
    );
    std::fs::write(dir.path().join("mine.yml"), bad).unwrap();
    let e = RuleSet::load(&[dir.path().to_path_buf()])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("mine.yml:11:"), "{e}");
    // A correlation naming a rule that does not exist.
    let corr = "title: Dangling\ncorrelation:\n  type: event_count\n  rules: [no_such_rule]\n  group-by: [userIdentity.email]\n  timespan: 1h\n  condition: {gte: 2}\n";
    std::fs::write(dir.path().join("mine.yml"), corr).unwrap();
    let e = RuleSet::load(&[dir.path().to_path_buf()])
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("mine.yml:1:") && e.contains("no_such_rule"),
        "{e}"
    );
    // Reusing a shipped code.
    let dup = good.replace(
        "level: medium",
        "level: medium\ncustom_attributes: {nbtrail.code: NBE001}",
    );
    std::fs::write(dir.path().join("mine.yml"), dup).unwrap();
    let e = RuleSet::load(&[dir.path().to_path_buf()])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("NBE001") && e.contains("mine.yml:1"), "{e}");
    // Not YAML at all.
    std::fs::write(dir.path().join("mine.yml"), "title: [unclosed\n").unwrap();
    let e = RuleSet::load(&[dir.path().to_path_buf()])
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("mine.yml:1:"), "{e}");
}

#[test]
fn documents_are_split_at_separators_with_their_first_content_line() {
    let docs = documents("# head\n---\ntitle: a\n---\n\n# c\ntitle: b\n");
    assert_eq!(docs.iter().map(|d| d.0).collect::<Vec<_>>(), [3, 7]);
}
