//! The alert rules in `deploy/prometheus/` are valid and tested: `promtool check rules` accepts
//! `egnyte-receiver.rules.yml`, `promtool test rules` passes `egnyte-receiver.rules.test.yml`
//! (each alert firing with its labels and annotations, and quiet where it must be, on series
//! labelled `job` and `instance` as a scrape labels them), every alert has cases there and every
//! case names an alert that exists (checked itself on a copy with one alert added), and every
//! `egnyte_receiver_*` name in either file is a metric the real binary exports.
//!
//! promtool comes with Debian's `prometheus` package (`.ci/run` installs it). Without it the
//! promtool test says it was skipped, unless `CI` is set, where it fails instead.

mod support;

use std::collections::BTreeSet;
use std::process::{Command, Output};

use support::server::Server;

const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/egnyte-receiver.rules.yml");
const TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/prometheus/egnyte-receiver.rules.test.yml");

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `promtool ARGS`, asserting success; `false` when promtool is not installed (outside CI).
fn promtool(args: &[&str]) -> bool {
    let output: Output = match Command::new("promtool").args(args).output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is not installed: apt-get install prometheus (the Debian package has it)"
            );
            eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
            return false;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    assert!(
        output.status.success(),
        "promtool {}: {}\n{}{}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    true
}

#[test]
fn promtool_checks_and_tests_the_rules() {
    if promtool(&["check", "rules", RULES]) {
        promtool(&["test", "rules", TESTS]);
    }
}

/// `NAME` of every line `KEY: NAME` (after an optional `- `).
fn names(text: &str, key: &str) -> BTreeSet<String> {
    let name = |line: &str| {
        let line = line.trim_start();
        let value = line.strip_prefix("- ").unwrap_or(line).strip_prefix(key)?.strip_prefix(':')?;
        Some(value.trim().trim_matches(['"', '\'']).to_owned())
    };
    text.lines().filter_map(name).collect()
}

/// Alerts of `rules` without a case in `tests`, and cases in `tests` of no alert in `rules`.
fn mismatched(rules: &str, tests: &str) -> Vec<String> {
    let (alerts, tested) = (names(rules, "alert"), names(tests, "alertname"));
    alerts.symmetric_difference(&tested).cloned().collect()
}

#[test]
fn every_alert_has_test_cases() {
    let (rules, tests) = (read(RULES), read(TESTS));
    assert!(names(&rules, "alert").len() >= 10, "alerts not found in {RULES}");
    assert_eq!(mismatched(&rules, &tests), Vec::<String>::new(), "alerts and test cases differ");
    let added = format!("{rules}\n      - alert: EgnyteReceiverUntested\n        expr: vector(1)\n");
    assert_eq!(mismatched(&added, &tests), ["EgnyteReceiverUntested"]);
}

#[test]
fn the_rules_and_their_tests_use_only_exported_metrics() {
    let server = Server::builder().start();
    let response = server.get("/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    let text = response.text();
    let exported: BTreeSet<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        .map(|(name, _)| name)
        .collect();
    assert!(exported.contains("egnyte_receiver_sink_lag_seconds"), "no per-sink series: {exported:?}");
    for path in [RULES, TESTS] {
        let file = read(path);
        let used: BTreeSet<&str> = file
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|token| token.starts_with("egnyte_receiver_"))
            .collect();
        assert!(used.len() >= 5, "{path}: metrics not found");
        let unknown: Vec<&&str> = used.difference(&exported).collect();
        assert!(unknown.is_empty(), "{path} uses {unknown:?}, not in /metrics: {exported:?}");
    }
}
