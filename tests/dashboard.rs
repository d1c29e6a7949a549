//! `deploy/grafana/egnyte-receiver.json` queries only what the receiver really exports: after one
//! valid batch (so every per-sink series exists), every `egnyte_receiver_*` name anywhere in the
//! dashboard (panel queries, the `instance` variable, descriptions) is a metric family of the real
//! binary's `/metrics` (for a histogram or summary also its `_bucket`, `_sum`, `_count`). Every panel
//! has a description and a query, and the panels operators rely on are there. The check is itself
//! checked: a copy of the dashboard with one misspelt metric fails it.

mod support;

use std::collections::BTreeSet;

use serde_json::{json, Value};
use support::server::{batch, unique_id, Server};

const DASHBOARD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/grafana/egnyte-receiver.json");

/// Metric names the dashboard must query (without the `egnyte_receiver_` prefix).
const REQUIRED: &str = "healthy journal_poisoned journal_no_space sink_stuck requests_total \
    events_accepted_total events_duplicate_total events_quarantined_total sink_lag_events sink_lag_seconds \
    sink_stalled_seconds sink_delivered_total sink_retried_total sink_failed_total sink_dead_lettered_total \
    journal_bytes journal_retained_bytes open_connections journal_groups_total journal_syncs_total";

/// Adds every `egnyte_receiver_[a-z0-9_]*` token of `text` to `into`.
fn tokens(text: &str, into: &mut BTreeSet<String>) {
    let mut rest = text;
    while let Some(at) = rest.find("egnyte_receiver_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        into.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
}

/// Walks the whole document: names in `expr` strings go to `queried`, names in any string to `all`.
fn walk(value: &Value, key: &str, queried: &mut BTreeSet<String>, all: &mut BTreeSet<String>) {
    match value {
        Value::String(s) => {
            if key == "expr" {
                tokens(s, queried);
            }
            tokens(s, all);
        }
        Value::Array(items) => items.iter().for_each(|v| walk(v, key, queried, all)),
        Value::Object(map) => map.iter().for_each(|(k, v)| walk(v, k, queried, all)),
        _ => {}
    }
}

/// The names `dashboard` uses that `/metrics` does not export, and the names its queries use.
fn check(dashboard: &Value, exported: &BTreeSet<String>) -> (Vec<String>, BTreeSet<String>) {
    let (mut queried, mut all) = (BTreeSet::new(), BTreeSet::new());
    walk(dashboard, "", &mut queried, &mut all);
    (all.into_iter().filter(|name| !exported.contains(name)).collect(), queried)
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let server = Server::builder().start();
    let response = server.post(batch(&[&unique_id("dashboard")]).as_bytes(), &[]);
    assert_eq!(response.status, 200, "{response:?}");
    server.settle();
    let response = server.get("/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    let exported = support::server::exported_families(&response.text());
    assert!(exported.contains("egnyte_receiver_sink_lag_events"), "no per-sink series: {exported:?}");

    let text = std::fs::read_to_string(DASHBOARD).unwrap_or_else(|e| panic!("{DASHBOARD}: {e}"));
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let (unexported, queried) = check(&dashboard, &exported);
    assert!(unexported.is_empty(), "not in /metrics: {unexported:?}\nexported: {exported:?}");
    let missing: Vec<&str> = REQUIRED
        .split_whitespace()
        .filter(|name| !queried.contains(&format!("egnyte_receiver_{name}")))
        .collect();
    assert!(missing.is_empty(), "no panel queries {missing:?}");

    let rows = dashboard["panels"].as_array().expect("panels");
    let nested = rows.iter().filter_map(|row| row["panels"].as_array()).flatten();
    for panel in rows.iter().chain(nested).filter(|panel| panel["type"] != "row") {
        let title = &panel["title"];
        assert!(panel["description"].as_str().is_some_and(|d| d.len() > 20), "{title}: no description");
        let exprs = panel["targets"].as_array().into_iter().flatten().filter_map(|t| t["expr"].as_str());
        assert!(exprs.count() > 0, "{title}: no query");
    }
    assert!(text.contains("${DS_PROMETHEUS}"), "no datasource variable");
    assert!(text.contains("label_values(egnyte_receiver_healthy, instance)"), "no instance variable");

    // The check catches a misspelt metric (a prefix of a real one) in a copy.
    let mut bogus = dashboard.clone();
    let target = json!({"targets": [{"expr": "max(egnyte_receiver_sink_lag_event)", "refId": "A"}]});
    bogus["panels"].as_array_mut().unwrap().push(target);
    assert_eq!(check(&bogus, &exported).0, ["egnyte_receiver_sink_lag_event"]);
}
