//! Deduplication through the real server: repeated batches, repeats inside one batch, the
//! capacity's eviction, and the counters. (The reservation protocol's races and rollbacks are
//! unit-tested in `src/dedup/tests.rs`.)

mod support;

use serde_json::{json, Value};
use support::server;

fn event(id: &str) -> Value {
    json!({"eventId": id, "domain": "acme", "timestamp": 1, "actionSource": "WebUI",
           "eventType": "fs:add_file", "data": {"targetPath": format!("/Shared/{id}.txt")}})
}

fn post(server: &server::Server, ids: &[&str]) -> Value {
    let body = Value::Array(ids.iter().map(|id| event(id)).collect()).to_string();
    let response = server.post(body.as_bytes(), &[]);
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

fn counts(accepted: u64, duplicates: u64) -> Value {
    json!({"accepted": accepted, "duplicates": duplicates, "quarantined": 0})
}

#[test]
fn a_repeated_batch_is_answered_200_and_stored_once() {
    let server = server::start(&[]);
    assert_eq!(post(&server, &["a", "b", "c"]), counts(3, 0));
    assert_eq!(post(&server, &["a", "b", "c"]), counts(0, 3));
    assert_eq!(post(&server, &["c", "d"]), counts(1, 1));
    // Different paths are delivered in parallel: compare as a set.
    let mut ids: Vec<String> =
        server.events().iter().map(|e| e["eventId"].as_str().unwrap().to_owned()).collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    let metrics = server.metrics();
    assert_eq!(metrics.get("egnyte_receiver_events_accepted_total"), 4.0);
    assert_eq!(metrics.get("egnyte_receiver_events_duplicate_total"), 4.0);
}

#[test]
fn a_repeat_inside_one_batch_is_a_duplicate() {
    let server = server::start(&[]);
    assert_eq!(post(&server, &["x", "x", "y", "x"]), counts(2, 2));
    assert_eq!(server.events().len(), 2);
}

#[test]
fn the_same_event_id_in_another_domain_is_another_event() {
    let server = server::start(&[]);
    let mut other = event("same");
    other["domain"] = json!("globex");
    let body = Value::Array(vec![event("same"), other]).to_string();
    assert_eq!(server.post(body.as_bytes(), &[]).json(), counts(2, 0));
}

#[test]
fn the_capacity_bounds_what_is_remembered() {
    let server = server::start(&["--dedup-capacity", "2"]);
    assert_eq!(post(&server, &["1", "2", "3"]), counts(3, 0));
    // The last two are remembered; the first was evicted and is fresh again.
    assert_eq!(post(&server, &["2", "3"]), counts(0, 2));
    assert_eq!(post(&server, &["1"]), counts(1, 0));
}

#[test]
fn the_secret_is_created_in_the_data_dir() {
    let server = server::start(&[]);
    let secret = std::fs::read(server.data_file("dedup.key")).unwrap();
    assert_eq!(secret.len(), 16);
}
