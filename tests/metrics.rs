//! `/metrics` has what an SRE expects, from the real binary after one batch: every metric family
//! the README names (any `egnyte_receiver_*` or `process_*` name in it), the standard process
//! metrics, `egnyte_receiver_build_info` with its `version` and `revision`, the body bytes
//! received, when an event was last accepted (0 before), and a well-formed request duration
//! histogram by route and status (cumulative buckets in order, `+Inf` equal to `_count`). With
//! `--metrics-listen`, `/metrics` and `/healthz` are served on their own listener, which serves
//! nothing else, and `/metrics` is 404 on the public one while `/healthz` stays. Nothing here
//! measures time: values are checked for their shape and their counts.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use support::server::{batch, free_port, request, unique_id, Client, Metrics, Response, Server};

const README: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");

const HISTOGRAM: &str = "egnyte_receiver_request_duration_seconds";

/// Every `egnyte_receiver_[a-z_]+` and `process_[a-z_]+` name in `text`.
fn names_in(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for prefix in ["egnyte_receiver_", "process_"] {
        let mut rest = text;
        while let Some(at) = rest.find(prefix) {
            let tail = &rest[at + prefix.len()..];
            let end = tail.find(|c: char| !(c.is_ascii_lowercase() || c == '_')).unwrap_or(tail.len());
            if end > 0 {
                names.insert(format!("{prefix}{}", &tail[..end]));
            }
            rest = &tail[end..];
        }
    }
    names
}

/// `GET path` on a fresh connection to `addr`.
fn get(addr: SocketAddr, path: &str) -> Response {
    let mut client = Client::connect(addr);
    client.send(&request("GET", path, &[("Connection", "close")], b"")).expect("send");
    client.read_response()
}

/// The status of `HEAD path` on a fresh connection to `addr`.
fn head(addr: SocketAddr, path: &str) -> u16 {
    let mut client = Client::connect(addr);
    client.send(&request("HEAD", path, &[("Connection", "close")], b"")).expect("send");
    client.read_head_response().status
}

/// Checks the duration histogram of a `/metrics` text; returns `_count` by its labels.
fn histogram(text: &str) -> BTreeMap<String, f64> {
    let metrics = Metrics::parse(text);
    // Bucket lines in the order written, by their labels without `le`.
    let mut buckets: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with(&format!("{HISTOGRAM}_bucket{{"))) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let labels = series.trim_start_matches(&format!("{HISTOGRAM}_bucket{{")).trim_end_matches('}');
        let (labels, le) = labels.rsplit_once(",le=").unwrap_or_else(|| panic!("no le in {line:?}"));
        buckets
            .entry(labels.to_owned())
            .or_default()
            .push((le.trim_matches('"').to_owned(), value.parse().unwrap()));
    }
    assert!(!buckets.is_empty(), "no {HISTOGRAM}_bucket series:\n{text}");
    let mut counts = BTreeMap::new();
    for (labels, series) in &buckets {
        assert!(labels.starts_with("route=\"") && labels.contains(",status=\""), "labels {labels:?}");
        let route = labels.split('"').nth(1).unwrap();
        assert!(["webhook", "healthz", "metrics", "other"].contains(&route), "route {route:?}");
        let (last, bounds) = series.split_last().unwrap();
        assert_eq!(last.0, "+Inf", "{labels}: the last bucket is +Inf");
        let bounds: Vec<f64> = bounds.iter().map(|(le, _)| le.parse().unwrap()).collect();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]), "{labels}: bounds in order: {bounds:?}");
        assert!(series.windows(2).all(|w| w[0].1 <= w[1].1), "{labels}: cumulative: {series:?}");
        let count = metrics.get(&format!("{HISTOGRAM}_count{{{labels}}}"));
        assert_eq!(last.1, count, "{labels}: +Inf equals _count");
        assert!(metrics.get(&format!("{HISTOGRAM}_sum{{{labels}}}")) >= 0.0);
        counts.insert(labels.clone(), count);
    }
    counts
}

fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

#[test]
fn every_family_the_readme_names_is_exported_with_a_well_formed_histogram() {
    let server = Server::builder().start();
    let before = server.metrics();
    assert_eq!(
        before.get("egnyte_receiver_last_event_accepted_timestamp_seconds"),
        0.0,
        "0 before the first"
    );
    assert_eq!(before.get("egnyte_receiver_received_bytes_total"), 0.0);

    let posted_at = unix_now().floor();
    let body = batch(&[&unique_id("metrics"), &unique_id("metrics"), &unique_id("metrics")]);
    let response = server.post(body.as_bytes(), &[]);
    assert_eq!((response.status, response.json()["accepted"].as_u64()), (200, Some(3)), "{response:?}");
    assert_eq!(server.get("/nope").status, 404);
    server.settle();

    let response = server.get("/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    let text = response.text();
    let exported = support::server::exported_families(&text);
    let readme = std::fs::read_to_string(README).unwrap_or_else(|e| panic!("{README}: {e}"));
    let named = names_in(&readme);
    assert!(named.contains("egnyte_receiver_requests_total"), "the README names metrics: {named:?}");
    let missing: Vec<&String> = named.iter().filter(|name| !exported.contains(*name)).collect();
    assert!(missing.is_empty(), "the README names {missing:?}, not in /metrics:\n{text}");
    for family in [
        "egnyte_receiver_build_info",
        "egnyte_receiver_request_duration_seconds_bucket",
        "egnyte_receiver_received_bytes_total",
        "egnyte_receiver_last_event_accepted_timestamp_seconds",
        "egnyte_receiver_dedup_unremembered_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_cpu_seconds_total",
    ] {
        assert!(exported.contains(family), "no {family} in\n{text}");
    }

    let metrics = Metrics::parse(&text);
    let counts = histogram(&text);
    assert_eq!(counts.get("route=\"webhook\",status=\"200\""), Some(&1.0), "{counts:?}");
    assert_eq!(counts.get("route=\"other\",status=\"404\""), Some(&1.0), "{counts:?}");
    assert!(counts.get("route=\"healthz\",status=\"200\"").is_some_and(|&n| n >= 1.0), "{counts:?}");
    // This scrape is counted before it is rendered.
    assert!(counts.get("route=\"metrics\",status=\"200\"").is_some_and(|&n| n >= 1.0), "{counts:?}");

    let build: Vec<(&str, f64)> = metrics.series("egnyte_receiver_build_info{").collect();
    assert_eq!(build.len(), 1, "{build:?}");
    let (series, value) = build[0];
    assert_eq!(value, 1.0);
    let version = format!("version=\"{}\"", env!("CARGO_PKG_VERSION"));
    assert!(series.contains(&version), "{series}");
    let revision = series.split("revision=\"").nth(1).and_then(|r| r.split('"').next());
    assert!(revision.is_some_and(|r| !r.is_empty()), "{series}");

    assert_eq!(
        metrics.get("egnyte_receiver_received_bytes_total"),
        body.len() as f64,
        "only the batch had a body"
    );
    let accepted = metrics.get("egnyte_receiver_last_event_accepted_timestamp_seconds");
    assert!(accepted >= posted_at && accepted <= unix_now() + 1.0, "{accepted} vs {posted_at}");
    assert!(metrics.get("process_resident_memory_bytes") > 1_000_000.0);
    assert!(metrics.get("process_open_fds") >= 3.0);
    assert!(metrics.get("process_max_fds") >= metrics.get("process_open_fds"));
    assert!(metrics.get("process_cpu_seconds_total") >= 0.0);
    let started = metrics.get("process_start_time_seconds");
    assert!(started <= unix_now() + 1.0 && started > posted_at - 600.0, "{started}");
}

#[test]
fn metrics_listen_serves_metrics_and_health_on_their_own_listener() {
    let metrics_addr = free_port();
    let server = Server::builder().args(["--metrics-listen", &metrics_addr.to_string()]).start();
    assert!(
        server.stderr_contains(
            &format!("serving /metrics and /healthz on {metrics_addr}"),
            std::time::Duration::from_secs(5)
        ),
        "{}",
        server.stderr_text()
    );
    // The public listener: the webhook and health, no metrics.
    let public = server.addr();
    let response = get(public, "/metrics");
    assert_eq!((response.status, response.text().as_str()), (404, "not found\n"), "{response:?}");
    assert_eq!(head(public, "/metrics"), 404);
    assert_eq!(get(public, "/healthz").status, 200);
    let response = server.post(batch(&[&unique_id("metrics-listen")]).as_bytes(), &[]);
    assert_eq!(response.status, 200, "{response:?}");

    // The metrics listener: metrics and health, nothing else.
    let response = get(metrics_addr, "/healthz");
    assert_eq!((response.status, response.text().as_str()), (200, "ok\n"));
    let mut client = Client::connect(metrics_addr);
    let post = support::server::post_request(&server.path, b"[]", &[]);
    client.send(&post).unwrap();
    assert_eq!(client.read_response().status, 404, "no webhook on the metrics listener");
    assert_eq!(get(metrics_addr, "/nope").status, 404);
    let response = get(metrics_addr, "/metrics");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.media_type(), Some("text/plain"));
    let text = response.text();
    let counts = histogram(&text);
    let metrics = Metrics::parse(&text);
    // Both listeners count into the same metrics.
    assert_eq!(counts.get("route=\"metrics\",status=\"404\""), Some(&2.0), "{counts:?}");
    assert_eq!(counts.get("route=\"webhook\",status=\"200\""), Some(&1.0), "{counts:?}");
    assert_eq!(counts.get("route=\"webhook\",status=\"404\""), Some(&1.0), "{counts:?}");
    assert_eq!(metrics.get("egnyte_receiver_events_accepted_total"), 1.0);
    assert!(metrics.requests(404) >= 4.0);
}

#[test]
fn without_metrics_listen_the_public_listener_serves_metrics() {
    let server = Server::builder().start();
    let response = server.get("/metrics");
    assert_eq!(response.status, 200);
    assert!(response.text().contains("# TYPE egnyte_receiver_request_duration_seconds histogram\n"));
    assert_eq!(head(server.addr(), "/metrics"), 200);
    assert!(!server.stderr_text().contains("serving /metrics"), "{}", server.stderr_text());
}
