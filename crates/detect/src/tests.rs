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

fn codes_of<'a>(got: &'a [Detection], code: &str) -> Vec<&'a Detection> {
    got.iter().filter(|d| d.rule.code == code).collect()
}

fn downloads(user: &str, first_id: i64, hour: i64, n: i64) -> Vec<(serde_json::Value, i64)> {
    (0..n)
        .map(|i| {
            event(
                first_id + i,
                hour * 3_600_000 + i * 60_000,
                "notebook",
                "downloadLargeResults",
                user,
                &[("notebookId", "42")],
            )
        })
        .collect()
}

#[test]
fn downloads_above_a_users_own_baseline_are_reported_once_per_hour_and_usual_volume_is_not() {
    let set = RuleSet::builtin().unwrap();
    let rule = set.rules().iter().find(|r| r.code == "NBE046").unwrap();
    assert_eq!(rule.kind, "baseline");
    // Alice usually downloads twice in an active hour (six earlier hours, a day apart).
    let mut alice = Vec::new();
    for day in 0..6 {
        alice.extend(downloads("alice@example.com", 100 + day * 10, day * 24, 2));
    }
    // Positive: seven in one hour. Reported once, at the fifth (threshold max(5, 2 + 3·0 + 1)).
    let mut burst = alice.clone();
    burst.extend(downloads("alice@example.com", 1000, 6 * 24, 7));
    let got = run(&set, &burst);
    let hits = codes_of(&got, "NBE046");
    assert_eq!(hits.len(), 1, "{got:#?}");
    assert_eq!(hits[0].event_ids, [1000, 1001, 1002, 1003, 1004]);
    assert!(
        hits[0].detail.contains("alice@example.com") && hits[0].detail.contains("6 active hours"),
        "{}",
        hits[0].detail
    );
    // Negative: four in an hour is above her usual but under the floor of five.
    let mut modest = alice.clone();
    modest.extend(downloads("alice@example.com", 1000, 6 * 24, 4));
    assert!(codes_of(&run(&set, &modest), "NBE046").is_empty());

    // Negative: a heavy user at their usual volume. The fixed ≥10/h rule fires, the baseline does not.
    let mut carol = Vec::new();
    for (day, n) in [18, 22, 20, 19, 21, 20].into_iter().enumerate() {
        carol.extend(downloads(
            "carol@example.com",
            5000 + day as i64 * 100,
            day as i64 * 24,
            n,
        ));
    }
    carol.extend(downloads("carol@example.com", 9000, 6 * 24, 22));
    let got = run(&set, &carol);
    assert!(codes_of(&got, "NBE046").is_empty(), "{got:#?}");
    assert!(!codes_of(&got, "NBE009").is_empty());
    // ... and far above it, she is reported.
    carol.extend(downloads("carol@example.com", 9500, 7 * 24, 40));
    assert_eq!(codes_of(&run(&set, &carol), "NBE046").len(), 1);

    // Negative: without five earlier active hours there is no baseline to depart from.
    let mut dave = downloads("dave@example.com", 1, 0, 1);
    dave.extend(downloads("dave@example.com", 10, 24, 30));
    assert!(codes_of(&run(&set, &dave), "NBE046").is_empty());
}

fn login(id: i64, hours: i64, user: &str, ip: &str) -> (serde_json::Value, i64) {
    let (mut e, t) = event(id, hours * 3_600_000, "accounts", "login", user, &[]);
    e["sourceIPAddress"] = ip.into();
    e["response"]["statusCode"] = 200.into();
    (e, t)
}

#[test]
fn a_login_from_an_address_new_for_the_user_is_reported_once_after_the_first_day() {
    let set = RuleSet::builtin().unwrap();
    let seq = [
        login(1, 0, "erin@example.com", "10.0.0.1"),
        login(2, 25, "erin@example.com", "10.0.0.1"),
        // Positive: a second address, two days in.
        login(3, 49, "erin@example.com", "203.0.113.9"),
        // Known now: not again.
        login(4, 50, "erin@example.com", "203.0.113.9"),
        // Negative: Frank's second address within his first day (no history yet).
        login(5, 49, "frank@example.com", "10.0.0.2"),
        login(6, 50, "frank@example.com", "198.51.100.4"),
        // Positive: the address is Erin's, but addresses are per user, and Frank's first day is over.
        login(7, 80, "frank@example.com", "10.0.0.1"),
    ];
    let got = run(&set, &seq);
    let hits: Vec<(Vec<i64>, bool)> = codes_of(&got, "NBE047")
        .iter()
        .map(|d| (d.event_ids.clone(), d.detail.contains("never seen before")))
        .collect();
    assert_eq!(hits, [(vec![3], true), (vec![7], true)], "{got:#?}");
    // A refused login teaches nothing and reports nothing.
    let (mut refused, t) = login(8, 90, "erin@example.com", "192.0.2.50");
    refused["response"]["statusCode"] = 401.into();
    let mut with_refused = seq.to_vec();
    with_refused.push((refused, t));
    assert_eq!(codes_of(&run(&set, &with_refused), "NBE047").len(), 2);
}

#[test]
fn a_baseline_rule_with_bad_parameters_fails_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |extra: &str| {
        format!(
            "title: Mine\nname: mine\nlogsource: {{product: databricks}}\ndetection:\n  s:\n    actionName: login\n  \
             condition: s\nlevel: low\ncustom_attributes:\n  nbtrail.baseline: {extra}\n"
        )
    };
    for (extra, want) in [
        ("weekly", "not a baseline"),
        ("new_value", "needs nbtrail.baseline.field"),
        (
            "hourly_count\n  nbtrail.baseline.sigma: lots",
            "not a number",
        ),
    ] {
        std::fs::write(dir.path().join("r.yml"), rule(extra)).unwrap();
        let e = RuleSet::load(&[dir.path().to_path_buf()])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("r.yml:1:") && e.contains(want), "{e}");
    }
    std::fs::write(
        dir.path().join("r.yml"),
        rule("new_value\n  nbtrail.baseline.field: sourceIPAddress"),
    )
    .unwrap();
    let set = RuleSet::load(&[dir.path().to_path_buf()]).unwrap();
    let mine = set.rules().iter().find(|r| r.name == "mine").unwrap();
    assert_eq!(mine.kind, "baseline");
}

#[test]
fn baseline_state_is_bounded_per_group_and_in_groups() {
    let mut s = baseline::State::new(Baseline::NewValue {
        group_by: "u".into(),
        field: "ip".into(),
        warmup_hours: 0,
    });
    for i in 0..(baseline::MAX_VALUES_PER_GROUP as i64 + 100) {
        let e = serde_json::json!({"u": "x", "ip": format!("10.{i}")});
        s.feed(&e, i, i);
    }
    // Past the cap new values are still reported (never silently "known"), but not remembered.
    let e = serde_json::json!({"u": "x", "ip": "10.0"});
    assert!(s.feed(&e, 1, 1).is_none());
    let e = serde_json::json!({"u": "x", "ip": "fresh"});
    assert!(s.feed(&e, 2, 2).is_some());
    assert!(s.feed(&e, 3, 3).is_some());
}
