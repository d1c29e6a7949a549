//! `egnyte-receiver serve`: every answer of the README's request → answer table and every option, driven through the
//! real binary over loopback sockets (see `support/server.rs`).

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fixtures;
use support::server::{
    self, assert_still_healthy, batch, event, hold_connections, post_request, request, show, sorted,
    unique_id, wait_until_alone, Client, Server, TempDir, BIN, PATH,
};

/// The elements of a body as serde_json reads them: an array's items, or the one object.
fn elements(body: &[u8]) -> Vec<Value> {
    match serde_json::from_slice(body).expect("fixture is JSON") {
        Value::Array(items) => items,
        object => vec![object],
    }
}

fn counts(accepted: usize, quarantined: usize) -> Value {
    json!({"accepted": accepted, "duplicates": 0, "quarantined": quarantined})
}

fn fixture(path: &str) -> Vec<u8> {
    let path = fixtures::root().join(path);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A valid batch of exactly `len` bytes (one event, padded with JSON whitespace).
fn batch_of_len(id: &str, len: usize) -> Vec<u8> {
    let mut body = batch(&[id]).into_bytes();
    assert!(body.len() <= len, "an event is {} bytes", body.len());
    body.resize(len, b' ');
    body
}

/// Asserts a refusal: status, `Connection: close`, text body, and the connection really closing.
fn assert_refused_and_closed(client: &mut Client, status: u16, body: &str) {
    let response = client.read_response();
    assert_eq!(response.status, status, "{response:?}");
    assert_eq!(response.text(), body, "{response:?}");
    assert_eq!(response.media_type(), Some("text/plain"), "{response:?}");
    assert!(response.closes(), "a {status} must say Connection: close: {response:?}");
    let closing = client.wait_closed(Duration::from_secs(5));
    assert!(closing.closed, "the connection must close after the {status}");
    assert!(closing.data.is_empty(), "nothing may follow the {status}: {}", show(&closing.data));
}

/// Runs the binary to completion (bounded: killed after 10 s).
fn run_bounded(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("EGNYTE_RECEIVER_") {
            command.env_remove(name);
        }
    }
    for (name, value) in env {
        command.env(name, value);
    }
    let mut child = command.spawn().expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output().expect("output");
    panic!("{args:?} did not exit within 10 s: {}", String::from_utf8_lossy(&output.stderr));
}

/// The connection over the limit: cut at once, with no answer even to a request.
fn assert_cut_at_once(server: &Server) {
    let mut extra = server.connect();
    let _ = extra.send(&request("GET", "/healthz", &[], b""));
    let closing = extra.wait_closed(Duration::from_secs(5));
    assert!(closing.closed, "the connection over --max-connections must be closed");
    assert!(closing.after < Duration::from_secs(2), "closed only after {:?}", closing.after);
    assert!(closing.data.is_empty(), "no answer on it: {}", show(&closing.data));
}

// ----- POST PATH: 200 and the files -----------------------------------------------------------

#[test]
fn valid_batch_is_answered_200_and_stored_as_sent() {
    let server = server::start(&[]);
    let body = fixture("batches/batch-10.json");
    let mut client = server.connect();
    client.send(&post_request(PATH, &body, &[])).unwrap();
    let response = client.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.media_type(), Some("application/json"));
    assert_eq!(response.text(), r#"{"accepted":10,"duplicates":0,"quarantined":0}"#);
    assert!(!response.closes(), "HTTP/1.1 keeps the connection: {response:?}");
    assert_eq!(sorted(server.events()), sorted(elements(&body)));
    assert!(server.quarantine().is_empty());
    // The connection is still usable.
    client.send(&request("GET", "/healthz", &[], b"")).unwrap();
    assert_eq!(client.read_response().status, 200);
}

#[test]
fn every_valid_fixture_is_stored_event_by_event() {
    let server = server::start(&[]);
    let mut client = server.connect();
    let mut expected = Vec::new();
    let files: Vec<_> =
        fixtures::json_files("types").into_iter().chain(fixtures::json_files("valid")).collect();
    assert!(files.len() > 40, "fixtures missing");
    for (path, body) in files {
        client.send(&post_request(PATH, &body, &[])).unwrap();
        let response = client.read_response();
        let items = elements(&body);
        assert_eq!(response.status, 200, "{}: {response:?}", path.display());
        assert_eq!(response.json(), counts(items.len(), 0), "{}", path.display());
        expected.extend(items);
    }
    assert_eq!(sorted(server.events()), sorted(expected));
    assert!(server.quarantine().is_empty());
    assert!(server.lines("events.jsonl").iter().all(|l| !l.contains('\r')), "one event per line");
}

#[test]
fn invalid_elements_are_quarantined_with_index_and_reason() {
    let server = server::start(&[]);
    let dir = fixtures::root().join("invalid-elements");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 20, "fixtures missing");
    let (mut events, mut quarantined) = (Vec::new(), Vec::new());
    let mut client = server.connect();
    for path in files {
        let body = std::fs::read(&path).unwrap();
        let verdicts = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let items = elements(&body);
        let (mut ok, mut bad) = (0, 0);
        for (line, item) in verdicts.lines().zip(&items) {
            if line.starts_with("ok ") {
                events.push(item.clone());
                ok += 1;
            } else {
                let (index, reason) = line
                    .strip_prefix("invalid #")
                    .and_then(|rest| rest.split_once(": "))
                    .unwrap_or_else(|| panic!("{}: {line:?}", path.display()));
                let index: usize = index.parse().unwrap();
                quarantined.push(json!({"index": index, "reason": reason, "element": items[index]}));
                bad += 1;
            }
        }
        client.send(&post_request(PATH, &body, &[])).unwrap();
        let response = client.read_response();
        assert_eq!(response.status, 200, "{}: {response:?}", path.display());
        assert_eq!(response.json(), counts(ok, bad), "{}", path.display());
    }
    assert_eq!(sorted(server.events()), sorted(events), "events.jsonl holds exactly the valid elements");
    assert_eq!(server.quarantine(), quarantined, "quarantine.jsonl: index, reason, original element");
    // The record's keys, in the documented order.
    let first = &server.lines("quarantine.jsonl")[0];
    assert!(first.starts_with(r#"{"index":"#) && first.contains(r#","reason":""#), "{first}");
}

// ----- authentication ---------------------------------------------------------------------------

#[test]
fn missing_or_wrong_token_is_401_without_reading_the_body_and_closes() {
    let token = "Token s3cret-XYZ";
    let server = Server::builder().auth_token(token).start();
    let body = batch(&["auth-1"]);
    let refused: &[&[(&str, &str)]] = &[
        &[],
        &[("Authorization", "Token s3cret-XY")],
        &[("Authorization", "token s3cret-xyz")],
        &[("Authorization", "")],
        &[("X-Auth", token)],
        &[("Authorization", token), ("Authorization", token)],
    ];
    for headers in refused {
        let mut client = server.connect();
        client.send(&post_request(PATH, body.as_bytes(), headers)).unwrap();
        assert_refused_and_closed(&mut client, 401, "missing or wrong token\n");
    }
    // The body is not read: the answer comes while the client has sent only the head.
    let mut client = server.connect();
    client.send(&request("POST", PATH, &[("Content-Length", "100000")], b"")).unwrap();
    client.set_timeout(Duration::from_secs(5));
    assert_refused_and_closed(&mut client, 401, "missing or wrong token\n");
    assert!(server.events().is_empty(), "nothing stored from a refused request");

    for header in ["Authorization", "Authentication", "authentication"] {
        let id = unique_id(header);
        let response = server.post(batch(&[&id]).as_bytes(), &[(header, token)]);
        assert_eq!((response.status, response.json()), (200, counts(1, 0)), "token in {header}");
    }
    assert_eq!(server.events().len(), 3);
    assert_eq!(server.metrics().requests(401), refused.len() as f64 + 1.0);
}

#[test]
fn auth_token_file_drops_one_trailing_line_break() {
    for (content, token) in
        [("file-token\n", "file-token"), ("crlf token\r\n", "crlf token"), ("bare", "bare")]
    {
        for via_env in [false, true] {
            let temp = server::TempDir::new("serve");
            let file = temp.path().join("token");
            std::fs::write(&file, content).unwrap();
            let builder = Server::builder().temp_dir(temp);
            let builder = if via_env {
                builder.env("EGNYTE_RECEIVER_AUTH_TOKEN_FILE", &file)
            } else {
                builder.args([Path::new("--auth-token-file"), file.as_path()])
            };
            let server = builder.credentials("Authorization", token).start();
            let id = unique_id("file");
            let ok = server.post(batch(&[&id]).as_bytes(), &[("Authorization", token)]);
            assert_eq!(ok.status, 200, "{content:?} (env: {via_env}): {ok:?}");
            let longer = format!("{token}x");
            let wrong = server.post(batch(&[&id]).as_bytes(), &[("Authorization", &longer)]);
            assert_eq!(wrong.status, 401, "{wrong:?}");
            let none = server.post(batch(&[&id]).as_bytes(), &[]);
            assert_eq!(none.status, 401, "{none:?}");
        }
    }
}

#[test]
fn auth_header_accepts_the_token_only_there() {
    let server = Server::builder()
        .args(["--auth-token", "hdr-token", "--auth-header", "X-Egnyte-Token"])
        .credentials("X-Egnyte-Token", "hdr-token")
        .start();
    for header in ["X-Egnyte-Token", "x-egnyte-token"] {
        let response = server.post(batch(&[&unique_id("hdr")]).as_bytes(), &[(header, "hdr-token")]);
        assert_eq!(response.status, 200, "{header}: {response:?}");
    }
    for header in ["Authorization", "Authentication"] {
        let mut client = server.connect();
        client.send(&post_request(PATH, batch(&["no"]).as_bytes(), &[(header, "hdr-token")])).unwrap();
        assert_refused_and_closed(&mut client, 401, "missing or wrong token\n");
    }
    assert_eq!(server.events().len(), 2);
    assert_still_healthy(&server);
}

// ----- framing: 400, 411, 413 -------------------------------------------------------------------

#[test]
fn malformed_content_length_is_400_and_closes() {
    let server = server::start(&[]);
    let body = batch(&["cl-1"]);
    for lengths in [&["abc"][..], &["-1"], &[""], &["12", "13"]] {
        let headers: Vec<(&str, &str)> = lengths.iter().map(|v| ("Content-Length", *v)).collect();
        let mut client = server.connect();
        client.send(&request("POST", PATH, &headers, body.as_bytes())).unwrap();
        assert_refused_and_closed(&mut client, 400, "malformed Content-Length\n");
    }
    assert!(server.events().is_empty());
    assert_still_healthy(&server);
}

#[test]
fn a_chunked_body_is_decoded_and_other_transfer_codings_refused() {
    let server = server::start(&[]);
    let id = unique_id("te-chunked");
    let body = batch(&[&id]);
    let chunked = format!("{:x}\r\n{body}\r\n0\r\n\r\n", body.len());
    let response =
        server.send(&request("POST", PATH, &[("Transfer-Encoding", "chunked")], chunked.as_bytes()));
    assert_eq!((response.status, response.json()), (200, counts(1, 0)), "{response:?}");
    let length = body.len().to_string();
    /// Headers, status, answer.
    type Case<'a> = (&'a [(&'a str, &'a str)], u16, &'a str);
    let cases: [Case<'_>; 3] = [
        (
            &[("Transfer-Encoding", "identity"), ("Content-Length", &length)],
            400,
            "Content-Length and Transfer-Encoding together\n",
        ),
        (
            &[("Content-Length", &length), ("transfer-encoding", "gzip, chunked")],
            400,
            "Content-Length and Transfer-Encoding together\n",
        ),
        (&[("Transfer-Encoding", "gzip, chunked")], 501, "only the chunked transfer coding is supported\n"),
    ];
    for (headers, status, text) in cases {
        let mut client = server.connect();
        client.send(&request("POST", PATH, headers, body.as_bytes())).unwrap();
        assert_refused_and_closed(&mut client, status, text);
    }
    assert_eq!(server.events().len(), 1, "only the chunked batch is stored");
    assert_still_healthy(&server);
}

#[test]
fn content_length_over_max_body_is_413_and_closes() {
    let server = server::start(&["--max-body", "1000"]);
    // The head alone gets the answer: the client never sends the body.
    let mut client = server.connect();
    client.send(&request("POST", PATH, &[("Content-Length", "1001")], b"")).unwrap();
    client.set_timeout(Duration::from_secs(5));
    assert_refused_and_closed(&mut client, 413, "body larger than the limit\n");
    // Exactly the limit is fine.
    let body = batch_of_len("max-body-1", 1000);
    let response = server.post(&body, &[]);
    assert_eq!((response.status, response.json()), (200, counts(1, 0)));
    assert_eq!(server.events().len(), 1);
}

// ----- 400: bodies that are not a batch ---------------------------------------------------------

#[test]
fn invalid_bodies_are_400_with_a_one_line_reason() {
    let server = server::start(&[]);
    let mut client = server.connect();
    let mut seen = 0;
    for (path, body) in fixtures::json_files("invalid-body") {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let expected = match name.as_str() {
            "invalid-utf8.json" => "invalid UTF-8 at byte ",
            "deep-2k.json" | "deep-100.json" => "nesting deeper than 64 levels at byte 64",
            "top-level-string.json" => "top level is a string, not an array or object of events",
            "top-level-number.json" => "top level is a number, not an array or object of events",
            "top-level-null.json" => "top level is null, not an array or object of events",
            "empty.json" | "whitespace-only.json" => "empty body",
            "lone-surrogate.json" => "",
            _ => "invalid JSON at byte ",
        };
        client.send(&post_request(PATH, &body, &[])).unwrap();
        let response = client.read_response();
        assert_eq!(response.status, 400, "{name}: {response:?}");
        assert_eq!(response.media_type(), Some("text/plain"), "{name}");
        let text = response.text();
        assert!(text.ends_with('\n') && text.matches('\n').count() == 1, "{name}: one line: {text:?}");
        assert!(text.len() > 5 && text.starts_with(expected), "{name}: {text:?}");
        // A bad body does not end the connection: its framing was fine.
        assert!(!response.closes(), "{name}: {response:?}");
        seen += 1;
    }
    assert!(seen >= 16);
    assert!(server.events().is_empty() && server.quarantine().is_empty());
    assert_eq!(server.metrics().requests(400), seen as f64);
}

// ----- 503 ----------------------------------------------------------------------------------------

/// Events that cannot be stored: the server runs with a small `RLIMIT_FSIZE` (its files are
/// opened at start, so this is the loopback-only way to make the append fail with `EFBIG`).
#[test]
fn a_failed_journal_write_is_503_and_poisons_until_a_restart_that_loses_nothing_acknowledged() {
    // A small dedup capacity keeps the key file under the 4 KiB file-size limit.
    let args = ["--dedup-capacity", "64"];
    let server = Server::builder().args(args).file_size_limit(4096).start();
    let small = fixture("batches/batch-1.json");
    let ok = server.post(&small, &[]);
    assert_eq!((ok.status, ok.json()), (200, counts(1, 0)));

    let big = fixture("batches/batch-100.json");
    let refused = server.post(&big, &[]);
    assert_eq!(refused.status, 503, "{refused:?}");
    let retry: u32 = refused.header("Retry-After").expect("Retry-After").parse().expect("seconds");
    assert!(retry >= 1, "{refused:?}");
    assert_eq!(refused.text(), "events cannot be stored: the journal failed (see the receiver's log)\n");
    assert_eq!(refused.media_type(), Some("text/plain"));
    assert!(server.stderr_contains("JOURNAL POISONED", Duration::from_secs(5)), "{}", server.stderr_text());

    let health = server.get("/healthz");
    assert_eq!(health.status, 503, "/healthz once the journal is poisoned: {health:?}");
    let metrics = server.metrics();
    assert_eq!(metrics.get("egnyte_receiver_healthy"), 0.0);
    assert_eq!(metrics.get("egnyte_receiver_journal_poisoned"), 1.0);
    assert_eq!(metrics.requests(503), 2.0, "the POST and /healthz");
    assert_eq!(metrics.get("egnyte_receiver_events_accepted_total"), 1.0);

    // The disk recovers, but a failed fsync may have lost pages silently: no 200 until restart.
    server.lift_file_size_limit();
    let id = unique_id("after-poison");
    assert_eq!(server.post(batch(&[&id]).as_bytes(), &[]).status, 503);
    assert_eq!(server.get("/healthz").status, 503);

    let server = Server::builder().args(args).temp_dir(server.kill_keeping_data()).start();
    assert_eq!(server.get("/healthz").status, 200, "a restart recovers");
    let ok = server.post(batch(&[&id]).as_bytes(), &[]);
    assert_eq!((ok.status, ok.json()), (200, counts(1, 0)));
    // The acknowledged event is there once; nothing of the refused batch ever is.
    let events = server.events();
    assert_eq!(events.iter().filter(|e| **e == elements(&small)[0]).count(), 1);
    let refused = elements(&big);
    assert_eq!(events.iter().filter(|e| refused.contains(e)).count(), 0, "events of the batch answered 503");
    assert!(events.contains(&serde_json::from_str(&event(&id)).unwrap()));
    assert_eq!(events.len(), 2);
}

#[test]
fn body_budget_exhausted_is_503_with_retry_after() {
    // Budget: 4 × --max-body = 4000 bytes of bodies being read at once.
    let server = server::start(&["--max-body", "1000"]);
    let bodies: Vec<Vec<u8>> = (0..4).map(|i| batch_of_len(&format!("budget-{i}"), 1000)).collect();
    let mut slow: Vec<Client> = bodies
        .iter()
        .map(|body| {
            let mut client = server.connect();
            let head = request("POST", PATH, &[("Content-Length", "1000"), ("Expect", "100-continue")], b"");
            client.send(&head).unwrap();
            // The interim answer comes once the server holds this body's share of the budget.
            let interim = client.read_response();
            assert_eq!(interim.status, 100, "{interim:?}");
            client.send(&body[..10]).unwrap();
            client
        })
        .collect();
    for length in ["1000", "1"] {
        let mut client = server.connect();
        client.send(&request("POST", PATH, &[("Content-Length", length)], b"")).unwrap();
        let response = client.read_response();
        assert_eq!(response.status, 503, "Content-Length {length} over the budget: {response:?}");
        assert_eq!(response.header("Retry-After"), Some("1"), "{response:?}");
        assert_eq!(response.text(), "too many request bodies in memory now; retry shortly\n");
        assert!(response.closes(), "{response:?}");
        assert!(client.wait_closed(Duration::from_secs(5)).closed);
    }
    // The slow bodies finish, in a few pieces each, and are taken.
    for (client, body) in slow.iter_mut().zip(&bodies) {
        for piece in body[10..].chunks(330) {
            client.send(piece).unwrap();
            std::thread::sleep(Duration::from_millis(20));
        }
        let response = client.read_response();
        assert_eq!((response.status, response.json()), (200, counts(1, 0)), "{response:?}");
    }
    assert_eq!(server.events().len(), 4);
    assert_still_healthy(&server);
}

// ----- the read pages ---------------------------------------------------------------------------

#[test]
fn healthz_answers_ok_and_head_gets_no_body() {
    let server = server::start(&[]);
    let health = server.get("/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    assert_eq!(health.media_type(), Some("text/plain"));
    // HEAD then GET on one connection: the HEAD answer must carry no body bytes at all, or
    // they would be read as the start of the next answer.
    let mut client = server.connect();
    client.send(&request("HEAD", "/healthz", &[], b"")).unwrap();
    client.send(&request("HEAD", "/metrics", &[], b"")).unwrap();
    client.send(&request("GET", "/healthz?probe=1", &[], b"")).unwrap();
    for _ in 0..2 {
        let head = client.read_head_response();
        assert_eq!(head.status, 200, "{head:?}");
        assert!(client.pending().is_empty() || client.pending().starts_with(b"HTTP/1.1 "), "HEAD got a body");
    }
    let get = client.read_response();
    assert_eq!((get.status, get.text().as_str()), (200, "ok\n"));
    // Other methods on the pages.
    for method in ["POST", "DELETE", "PUT"] {
        let mut client = server.connect();
        client.send(&request(method, "/healthz", &[("Content-Length", "0")], b"")).unwrap();
        let response = client.read_response();
        assert_eq!(response.status, 405, "{method} /healthz: {response:?}");
        assert_eq!(response.header("Allow"), Some("GET, HEAD"));
    }
}

#[test]
fn metrics_are_prometheus_text_and_move() {
    let server = Server::builder().auth_token("m-token").start();
    let before = server.get("/metrics");
    assert_eq!(before.status, 200);
    assert_eq!(before.header("Content-Type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let text = before.text();
    for line in text.lines() {
        assert!(
            line.starts_with("# HELP ")
                || line.starts_with("# TYPE ")
                || line.starts_with("egnyte_receiver_")
                || line.starts_with("process_"),
            "{line}"
        );
    }
    let before = server::Metrics::parse(&text);
    for status in [200, 400, 401, 404, 405, 408, 413, 414, 431, 501, 503, 505] {
        assert!(before.requests(status) >= 0.0);
    }
    for name in [
        "egnyte_receiver_events_accepted_total",
        "egnyte_receiver_events_duplicate_total",
        "egnyte_receiver_events_quarantined_total",
        "egnyte_receiver_open_connections",
    ] {
        assert!(before.0.contains_key(name), "{name} missing:\n{text}");
    }

    let mixed = fixture("invalid-elements/not-objects.json"); // 2 valid, 5 not objects
    assert_eq!(server.post_authorized(&mixed, &[]).status, 200);
    assert_eq!(server.post_authorized(&fixture("batches/batch-10.json"), &[]).status, 200);
    assert_eq!(server.post_authorized(b"[", &[]).status, 400);
    assert_eq!(server.post(&mixed, &[]).status, 401);
    assert_eq!(server.get("/nowhere").status, 404);
    assert_eq!(server.get(PATH).status, 405);
    let after = server.metrics();
    let delta = |name: &str| after.get(name) - before.get(name);
    assert_eq!(delta("egnyte_receiver_events_accepted_total"), 12.0);
    assert_eq!(delta("egnyte_receiver_events_quarantined_total"), 5.0);
    assert_eq!(delta("egnyte_receiver_events_duplicate_total"), 0.0);
    // 2 POSTs + the first scrape (counted once answered).
    assert_eq!(after.requests(200) - before.requests(200), 3.0);
    for status in [400, 401, 404, 405] {
        assert_eq!(after.requests(status) - before.requests(status), 1.0, "status {status}");
    }
    assert!(after.get("egnyte_receiver_open_connections") >= 1.0, "the scrape's own connection");
    // A held connection shows in the gauge.
    let held = hold_connections(&server, 3);
    let metrics =
        server.wait_metrics(Duration::from_secs(5), |m| m.get("egnyte_receiver_open_connections") >= 4.0);
    assert!(metrics.get("egnyte_receiver_open_connections") >= 4.0, "{metrics:?}");
    drop(held);
}

// ----- methods and paths --------------------------------------------------------------------------

#[test]
fn other_methods_on_the_path_are_405_with_allow_post() {
    let server = server::start(&[]);
    for method in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "post"] {
        let mut client = server.connect();
        client.send(&request(method, PATH, &[], b"")).unwrap();
        let response = client.read_response();
        assert_eq!(response.status, 405, "{method}: {response:?}");
        assert_eq!(response.header("Allow"), Some("POST"), "{method}");
        assert_eq!(response.text(), "method not allowed\n");
    }
    assert!(server.events().is_empty());
}

/// "HEAD never gets a body": not on the pages, and not on refusals either.
#[test]
fn head_never_gets_a_body() {
    let server = server::start(&[]);
    for (path, status) in [("/healthz", 200), ("/metrics", 200), (PATH, 405), ("/nowhere", 404)] {
        let mut client = server.connect();
        client.send(&request("HEAD", path, &[("Connection", "close")], b"")).unwrap();
        let head = client.read_head_response();
        assert_eq!(head.status, status, "HEAD {path}: {head:?}");
        if status == 405 {
            assert_eq!(head.header("Allow"), Some("POST"));
        }
        let rest = client.wait_closed(Duration::from_secs(5));
        assert!(rest.closed, "HEAD {path} with Connection: close");
        assert!(rest.data.is_empty(), "HEAD {path} ({status}) got body bytes: {}", show(&rest.data));
    }
}

#[test]
fn other_paths_are_404() {
    let server = server::start(&[]);
    for path in ["/", "/egnyte/webhook/", "/EGNYTE/webhook", "/egnyte", "/healthz/x", "/favicon.ico", "*"] {
        for method in ["GET", "POST"] {
            let mut client = server.connect();
            client.send(&request(method, path, &[("Content-Length", "2")], b"[]")).unwrap();
            let response = client.read_response();
            assert_eq!(response.status, 404, "{method} {path}: {response:?}");
            assert_eq!(response.text(), "not found\n");
        }
    }
    // A query string does not change the route.
    let response =
        server.send(&post_request("/egnyte/webhook?source=egnyte&x", batch(&["q-1"]).as_bytes(), &[]));
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(server.events().len(), 1);
}

// ----- connections ------------------------------------------------------------------------------------

#[test]
fn http10_and_connection_close_are_honoured() {
    let server = server::start(&[]);
    let body = batch(&["h10-1"]);
    let length = body.len().to_string();
    let cases: [(&str, Vec<u8>); 3] = [
        ("HTTP/1.0 GET", b"GET /healthz HTTP/1.0\r\n\r\n".to_vec()),
        (
            "HTTP/1.0 POST",
            format!("POST {PATH} HTTP/1.0\r\nContent-Length: {length}\r\n\r\n{body}").into_bytes(),
        ),
        ("Connection: close", post_request(PATH, body.as_bytes(), &[("Connection", "close")])),
    ];
    for (name, bytes) in cases {
        let mut client = server.connect();
        client.send(&bytes).unwrap();
        let response = client.read_response();
        assert_eq!(response.status, 200, "{name}: {response:?}");
        assert!(response.closes(), "{name}: the answer says Connection: close: {response:?}");
        let closing = client.wait_closed(Duration::from_secs(5));
        assert!(closing.closed, "{name}: the server closes after the answer");
    }
    // HTTP/1.0 asking for keep-alive keeps the connection.
    let mut client = server.connect();
    for _ in 0..2 {
        client.send(b"GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").unwrap();
        let response = client.read_response();
        assert_eq!(response.status, 200);
        assert!(!response.closes(), "{response:?}");
    }
    // Both cases posted the same event: the second time it is a duplicate, stored once.
    assert_eq!(server.events().len(), 1);
}

#[test]
fn a_keep_alive_connection_serves_several_requests() {
    let server = server::start(&["--io-threads", "1"]);
    assert!(server.stderr_contains("1 io threads", Duration::from_secs(5)), "{}", server.stderr_text());
    let mut client = server.connect();
    let ids = [unique_id("ka"), unique_id("ka"), unique_id("ka")];
    let steps: Vec<(Vec<u8>, u16, bool)> = vec![
        (post_request(PATH, batch(&[&ids[0]]).as_bytes(), &[]), 200, false),
        (request("GET", "/healthz", &[], b""), 200, false),
        (request("GET", "/metrics", &[], b""), 200, false),
        (post_request(PATH, batch(&[&ids[1]]).as_bytes(), &[]), 200, false),
        (request("HEAD", "/healthz", &[], b""), 200, true),
        (post_request(PATH, b"{not json", &[]), 400, false),
        (post_request(PATH, batch(&[&ids[2]]).as_bytes(), &[]), 200, false),
    ];
    for (i, (bytes, status, head)) in steps.iter().enumerate() {
        client.send(bytes).unwrap();
        let response = if *head { client.read_head_response() } else { client.read_response() };
        assert_eq!(response.status, *status, "step {i}: {response:?}");
        assert!(!response.closes(), "step {i}: {response:?}");
    }
    assert!(client.still_open_after(Duration::from_millis(300)));
    let expected: Vec<Value> = ids.iter().map(|id| serde_json::from_str(&event(id)).unwrap()).collect();
    assert_eq!(sorted(server.events()), sorted(expected));
}

#[test]
fn max_connections_closes_the_extra_one_at_once() {
    let server = server::start(&["--max-connections", "4"]);
    wait_until_alone(&server);
    let mut held = hold_connections(&server, 4);
    assert_cut_at_once(&server);
    // A slot frees when one closes.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    let served = loop {
        let mut client = server.connect();
        let _ = client.send(&request("GET", "/healthz", &[("Connection", "close")], b""));
        client.set_timeout(Duration::from_secs(2));
        match client.try_read_response() {
            Ok(response) => break Some(response),
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Err(_) => break None,
        }
    };
    assert_eq!(served.map(|r| r.status), Some(200), "a freed slot serves again");
    // The held connections were not disturbed.
    for client in &mut held {
        client.send(&request("GET", "/healthz", &[], b"")).unwrap();
        assert_eq!(client.read_response().status, 200);
    }
    drop(held);
    let metrics =
        server.wait_metrics(Duration::from_secs(5), |m| m.get("egnyte_receiver_open_connections") == 1.0);
    assert!(metrics.get("egnyte_receiver_connections_refused_total") >= 1.0, "{metrics:?}");
}

#[test]
fn read_timeout_closes_incomplete_and_idle_connections() {
    let server = server::start(&["--read-timeout", "1"]);
    let mut idle = server.connect();
    idle.send(&request("GET", "/healthz", &[], b"")).unwrap();
    assert_eq!(idle.read_response().status, 200);
    let mut partial = server.connect();
    partial.send(b"POST /egnyte/webhook HTTP/1.1\r\nContent-Le").unwrap();
    // Idle: closed without a word. A request begun but not finished: 408, then closed.
    for (name, client, answer) in
        [("idle keep-alive", &mut idle, None), ("incomplete head", &mut partial, Some(408))]
    {
        let closing = client.wait_closed(Duration::from_secs(5));
        assert!(closing.closed, "{name}: still open after 5 s with --read-timeout 1");
        assert!(closing.after < Duration::from_secs(4), "{name}: closed after {:?}", closing.after);
        let (responses, rest) = server::parse_all(&closing.data);
        assert_eq!(responses.iter().map(|r| r.status).collect::<Vec<_>>(), Vec::from_iter(answer), "{name}");
        assert!(rest.is_empty(), "{name}: {}", show(&rest));
    }
    assert!(server.metrics().get("egnyte_receiver_connections_timed_out_total") >= 2.0);
    assert_still_healthy(&server);
}

// ----- configuration ------------------------------------------------------------------------------------

#[test]
fn listens_on_the_ipv6_loopback() {
    if server::free_port_v6().is_none() {
        println!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let server = Server::builder().ipv6().start();
    assert!(server.addr.is_ipv6());
    let response = server.post(batch(&[&unique_id("v6")]).as_bytes(), &[]);
    assert_eq!((response.status, response.json()), (200, counts(1, 0)));
    assert_still_healthy(&server);
}

#[test]
fn every_option_can_come_from_the_environment() {
    let server = Server::builder()
        .listen_via_env()
        .data_dir_via_env()
        .env("EGNYTE_RECEIVER_PATH", "/hooks/egnyte")
        .env("EGNYTE_RECEIVER_AUTH_TOKEN", "env-token")
        .env("EGNYTE_RECEIVER_AUTH_HEADER", "X-Hook-Token")
        .env("EGNYTE_RECEIVER_MAX_BODY", "2000")
        .env("EGNYTE_RECEIVER_READ_TIMEOUT", "1")
        .env("EGNYTE_RECEIVER_MAX_CONNECTIONS", "3")
        .env("EGNYTE_RECEIVER_IO_THREADS", "1")
        .path("/hooks/egnyte")
        .credentials("X-Hook-Token", "env-token")
        .start();
    assert!(
        server.stderr_contains("for POST /hooks/egnyte", Duration::from_secs(5)),
        "{}",
        server.stderr_text()
    );
    assert!(server.stderr_contains("1 io threads", Duration::from_secs(5)), "{}", server.stderr_text());
    let id = unique_id("env");
    let ok = server.post(batch(&[&id]).as_bytes(), &[("X-Hook-Token", "env-token")]);
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(server.events().len(), 1, "stored in EGNYTE_RECEIVER_DATA_DIR");
    let default_path =
        server.send(&post_request(PATH, batch(&[&id]).as_bytes(), &[("X-Hook-Token", "env-token")]));
    assert_eq!(default_path.status, 404);
    let other_header = server.post(batch(&[&id]).as_bytes(), &[("Authorization", "env-token")]);
    assert_eq!(other_header.status, 401);
    let too_big = server.post(&batch_of_len(&id, 2001), &[("X-Hook-Token", "env-token")]);
    assert_eq!(too_big.status, 413);
    // --read-timeout 1: an idle connection is cut.
    let mut idle = server.connect();
    let closing = idle.wait_closed(Duration::from_secs(5));
    assert!(
        closing.closed && closing.after < Duration::from_secs(4),
        "idle connection with EGNYTE_RECEIVER_READ_TIMEOUT=1: {closing:?}"
    );
    // --max-connections 3.
    wait_until_alone(&server);
    let held = hold_connections(&server, 3);
    assert_cut_at_once(&server);
    drop(held);
}

#[test]
fn a_flag_beats_the_environment() {
    let temp = server::TempDir::new("serve");
    let env_data = temp.path().join("env-data");
    let server = Server::builder()
        .temp_dir(temp)
        .env("EGNYTE_RECEIVER_LISTEN", "nowhere")
        .env("EGNYTE_RECEIVER_DATA_DIR", &env_data)
        .env("EGNYTE_RECEIVER_PATH", "/from-env")
        .env("EGNYTE_RECEIVER_AUTH_TOKEN", "env-token")
        .env("EGNYTE_RECEIVER_MAX_BODY", "10")
        .env("EGNYTE_RECEIVER_READ_TIMEOUT", "1")
        .args(["--path", "/from-flag", "--auth-token", "flag-token", "--max-body", "5000"])
        .args(["--read-timeout", "30"])
        .path("/from-flag")
        .credentials("Authorization", "flag-token")
        .start();
    let body = batch(&["flag-1"]);
    let ok = server.post(body.as_bytes(), &[("Authorization", "flag-token")]);
    assert_eq!(ok.status, 200, "flag path, flag token, flag max-body: {ok:?}");
    let env_path =
        server.send(&post_request("/from-env", body.as_bytes(), &[("Authorization", "flag-token")]));
    assert_eq!(env_path.status, 404);
    assert_eq!(server.post(body.as_bytes(), &[("Authorization", "env-token")]).status, 401);
    assert_eq!(server.events().len(), 1, "stored in the --data-dir");
    assert!(!env_data.exists(), "EGNYTE_RECEIVER_DATA_DIR must not be used");
    // --read-timeout 30 beats 1: an idle connection survives 2 s.
    let mut idle = server.connect();
    assert!(idle.still_open_after(Duration::from_secs(2)));
}

#[test]
fn help_lists_every_option() {
    let output = run_bounded(&["serve", "--help"], &[]);
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    for option in [
        "--listen ADDR",
        "--path PATH",
        "--auth-token TOKEN",
        "--auth-token-file FILE",
        "--auth-header NAME",
        "--data-dir DIR",
        "--max-body BYTES",
        "--read-timeout SECS",
        "--max-connections N",
        "--io-threads N",
    ] {
        assert!(help.contains(option), "{option} missing from serve --help:\n{help}");
    }
    for default in ["127.0.0.1:8080", "/egnyte/webhook", "16777216", "30", "10000", "EGNYTE_RECEIVER_"] {
        assert!(help.contains(default), "{default} missing from serve --help:\n{help}");
    }
    let top = run_bounded(&["--help"], &[]);
    assert!(String::from_utf8_lossy(&top.stdout).contains("serve"), "{top:?}");
}

#[test]
fn an_empty_variable_means_the_default() {
    // An uncommented `#EGNYTE_RECEIVER_IO_THREADS=` line of the shipped env file.
    let server =
        Server::builder().env("EGNYTE_RECEIVER_IO_THREADS", "").env("EGNYTE_RECEIVER_MAX_BODY", "").start();
    assert_still_healthy(&server);
}

#[test]
fn bad_options_fail_at_start_with_a_message() {
    /// Arguments, environment, a word the message must contain.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 12] = [
        (&["serve", "--auth-token", "abc "], &[], "--auth-token: the token starts or ends with whitespace"),
        (&["serve", "--auth-header", "X-Auth"], &[], "--auth-header is set but there is no token"),
        (&["serve", "--max-body", "0"], &[], "--max-body"),
        // A typo in the environment is refused with the name meant; a bad value names its variable.
        (
            &["serve"],
            &[("EGNYTE_RECEIVER_MAXBODY", "100")],
            "EGNYTE_RECEIVER_MAXBODY is not a setting (did you mean EGNYTE_RECEIVER_MAX_BODY?)",
        ),
        (
            &["serve"],
            &[("EGNYTE_RECEIVER_MAX_BODY", "abc")],
            "EGNYTE_RECEIVER_MAX_BODY: \"abc\" is not a whole number",
        ),
        (&["serve", "--max-body", "abc"], &[("EGNYTE_RECEIVER_MAX_BODY", "5")], "--max-body: \"abc\""),
        (&["serve", "--path", "/healthz"], &[], "--path"),
        (&["serve", "--listen", "nowhere"], &[], "--listen"),
        (&["serve", "--read-timeout", "soon"], &[], "--read-timeout"),
        (&["serve", "--bogus", "1"], &[], "bogus"),
        (&["serve", "--auth-token", "a", "--auth-token-file", "/dev/null"], &[], "not both"),
        (&["serve"], &[("EGNYTE_RECEIVER_MAX_CONNECTIONS", "many")], "EGNYTE_RECEIVER_MAX_CONNECTIONS"),
    ];
    for (args, env, message) in cases {
        let output = run_bounded(args, env);
        assert_eq!(output.status.code(), Some(2), "{args:?} {env:?}: {output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

/// The data directory removed under a running receiver (a wrong cleanup job): nothing more is
/// acknowledged into files that no longer exist.
#[test]
fn a_data_dir_removed_while_running_is_503_not_200() {
    let server = Server::builder().start();
    let ok = server.post(batch(&[&unique_id("before-rm")]).as_bytes(), &[]);
    assert_eq!(ok.status, 200);
    std::fs::remove_dir_all(&server.data_dir).unwrap();
    let refused = server.post(batch(&[&unique_id("after-rm")]).as_bytes(), &[]);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(refused.header("Retry-After").is_some());
    let health = server.get("/healthz");
    assert_eq!(health.status, 503);
    assert!(health.text().starts_with("unhealthy: the journal failed"), "{}", health.text());
    assert!(
        server.stderr_contains("the data directory deleted or replaced", Duration::from_secs(5)),
        "{}",
        server.stderr_text()
    );
    assert_eq!(server.metrics().get("egnyte_receiver_journal_poisoned"), 1.0);
}

/// The data directory moved away and another put in its place: its files still exist, but not
/// where the receiver (and the next start) looks; caught within the writer's once-a-second look.
#[test]
fn a_data_dir_replaced_while_running_is_503_within_a_second() {
    let server = Server::builder().start();
    assert_eq!(server.post(batch(&[&unique_id("before-mv")]).as_bytes(), &[]).status, 200);
    let moved = server.data_dir.with_file_name("data.moved");
    std::fs::rename(&server.data_dir, &moved).unwrap();
    std::fs::create_dir_all(server.data_dir.join("journal")).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    let refused = server.post(batch(&[&unique_id("after-mv")]).as_bytes(), &[]);
    assert_eq!(refused.status, 503, "{refused:?}");
    assert!(server.stderr_contains("the journal directory is gone or another one", Duration::from_secs(5)));
}

#[test]
fn serve_check_lists_every_problem_and_starts_nothing() {
    let temp = TempDir::new("serve-check");
    let dir = temp.path();
    let data = dir.join("data");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = taken.local_addr().unwrap().to_string();
    std::fs::create_dir_all(data.join("events.jsonl")).unwrap();
    let ok = run_bounded(
        &["serve", "--check", "--listen", "127.0.0.1:0", "--data-dir", &dir.join("fresh").to_string_lossy()],
        &[],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(String::from_utf8_lossy(&ok.stdout).starts_with("configuration OK"));
    assert!(!dir.join("fresh").exists(), "a check creates nothing");
    let bad = run_bounded(
        &[
            "serve",
            "--check",
            "--listen",
            &listen,
            "--data-dir",
            &data.to_string_lossy(),
            "--sink",
            "exec:/nonexistent",
        ],
        &[("EGNYTE_RECEIVER_AUTH_TOKEN", "t0ken")],
    );
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("problem: sink exec:/nonexistent: "), "{stdout}");
    assert!(stdout.contains(&format!("problem: listen {listen}: ")), "{stdout}");
    assert!(stdout.ends_with("2 problem(s): the receiver would not start\n"), "{stdout}");
    // A bad option is still a usage error (exit 2), as at start.
    let usage = run_bounded(&["serve", "--check", "--read-timeout", "0"], &[]);
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--read-timeout: from 1 to 3600"));
}

#[test]
fn the_start_logs_every_effective_option_and_where_it_came_from() {
    let server = Server::builder().auth_token("s3cret-t0ken").args(["--max-body", "65536"]).start();
    assert!(server.stderr_contains("configuration: ", Duration::from_secs(5)));
    let log = server.stderr_text();
    let line = log.lines().find(|l| l.contains("configuration: ")).unwrap();
    assert!(line.contains("max-body=65536 (flag)"), "{line}");
    assert!(line.contains("read-timeout=30 (default)"), "{line}");
    assert!(line.contains("auth-token=<set, 12 chars>"), "{line}");
    assert!(!log.contains("s3cret"), "the token is never logged");
}
