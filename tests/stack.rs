//! The coroutine stack size, measured: the server runs with an odd stack size, which makes may
//! report each coroutine's real stack use when it exits, and the deepest body the parser accepts
//! (plus a large batch and the classic `[[[[…` body) must use under half of the configured stack.
//!
//! Where the numbers come from (may 0.3.51, generator 0.8.12):
//! * `generator::stack::Stack::new(size)` fills the whole stack with a sentinel word when `size`
//!   (in 8-byte words) is odd; `get_used_size()` counts the words from the bottom that no longer
//!   hold it (a high-water mark, in words, including may's own frames).
//! * `may::coroutine_impl::Done::drop_coroutine`, run when a coroutine finishes, prints with
//!   `println!` (the server's **stdout**), when the coroutine's configured size is odd:
//!   `coroutine name = None, stack size = 8704,  used size = 1234` (sizes in words; the stack
//!   size is the allocated one, the request rounded up to whole pages; connection coroutines
//!   have no name). A stack that is all used prints `stack overflow detected, size=…` on stderr
//!   and exits the process.
//! * The HTTP layer (`src/http/`) runs one coroutine per connection; it ends when the connection ends.

mod support;

use std::time::Duration;

use egnyte_receiver::parse::MAX_DEPTH;
use egnyte_receiver::serve::STACK_WORDS;
use serde_json::Value;
use support::fixtures;
use support::server::{post_request, request, Server, PATH};

/// One `coroutine name = …, stack size = S,  used size = U` line: (S, U) in words.
fn usage(line: &str) -> Option<(usize, usize)> {
    let number = |key: &str| -> Option<usize> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    };
    Some((number("stack size = ")?, number("used size = ")?))
}

fn usage_lines(stdout: &str) -> Vec<(usize, usize)> {
    stdout.lines().filter(|l| l.starts_with("coroutine name = ")).filter_map(usage).collect()
}

/// An event whose `data` nests `levels` objects (`data` itself is the first).
fn event_with_data_depth(levels: usize) -> String {
    let data = format!("{}1{}", r#"{"x":"#.repeat(levels), "}".repeat(levels));
    format!(
        r#"{{"eventId":"deep-{levels}","domain":"acme.egnyte.com","timestamp":1732780800123,"actionSource":"WebUI","eventType":"fs:add_file","data":{data}}}"#
    )
}

/// An event whose `data` holds arrays down to depth `MAX_DEPTH` of the whole body.
fn event_with_deep_arrays() -> String {
    // array = 1, event = 2, data = 3, then MAX_DEPTH - 3 arrays.
    let n = MAX_DEPTH - 3;
    let arrays = format!("{}0{}", "[".repeat(n), "]".repeat(n));
    format!(
        r#"{{"eventId":"deep-arrays","domain":"acme.egnyte.com","timestamp":1,"actionSource":"WebUI","eventType":"fs:add_file","data":{{"a":{arrays}}}}}"#
    )
}

#[test]
fn the_deepest_accepted_body_uses_under_half_of_the_coroutine_stack() {
    let odd = STACK_WORDS + 1;
    let server = Server::builder().env("EGNYTE_RECEIVER_STACK_WORDS", odd.to_string()).start();
    // The readiness probe's connection ends first: its line is the baseline.
    assert!(
        server.wait_stdout(Duration::from_secs(5), |out| !usage_lines(out).is_empty()),
        "may printed no stack usage with an odd stack size; stdout: {:?}",
        server.stdout_text()
    );

    let deepest = format!("[{}]", event_with_data_depth(MAX_DEPTH - 2));
    let too_deep = format!("[{}]", event_with_data_depth(MAX_DEPTH - 1));
    let deep_element = format!("[{}{}]", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1));
    let batch_1000 = std::fs::read(fixtures::root().join("batches/batch-1000.json")).unwrap();
    let check_order = std::fs::read(fixtures::root().join("invalid-elements/check-order.json")).unwrap();
    let cases: Vec<(&str, Vec<u8>, u16, Option<Value>)> = vec![
        ("GET /healthz", request("GET", "/healthz", &[("Connection", "close")], b""), 200, None),
        (
            "deepest valid batch (depth 64, objects)",
            close(post_request(PATH, deepest.as_bytes(), &[])),
            200,
            Some(serde_json::json!({"accepted": 1, "duplicates": 0, "quarantined": 0})),
        ),
        (
            "deepest valid batch (depth 64, arrays in data)",
            close(post_request(PATH, format!("[{}]", event_with_deep_arrays()).as_bytes(), &[])),
            200,
            Some(serde_json::json!({"accepted": 1, "duplicates": 0, "quarantined": 0})),
        ),
        (
            "deepest quarantined element (depth 64)",
            close(post_request(PATH, deep_element.as_bytes(), &[])),
            200,
            Some(serde_json::json!({"accepted": 0, "duplicates": 0, "quarantined": 1})),
        ),
        ("one level too deep (65)", close(post_request(PATH, too_deep.as_bytes(), &[])), 400, None),
        (
            "batch-1000.json (440 KB)",
            close(post_request(PATH, &batch_1000, &[])),
            200,
            Some(serde_json::json!({"accepted": 1000, "duplicates": 0, "quarantined": 0})),
        ),
        ("2 KB of [", close(post_request(PATH, &[b'['; 2048], &[])), 400, None),
        ("check-order.json (quarantine)", close(post_request(PATH, &check_order, &[])), 200, None),
        ("GET /metrics", request("GET", "/metrics", &[("Connection", "close")], b""), 200, None),
    ];

    let mut measured = Vec::new();
    for (name, bytes, status, body) in cases {
        let before = usage_lines(&server.stdout_text()).len();
        let mut client = server.connect();
        client.send(&bytes).unwrap();
        let response = client.read_response();
        assert_eq!(response.status, status, "{name}: {response:?}");
        if let Some(body) = body {
            assert_eq!(response.json(), body, "{name}");
        }
        assert!(
            client.wait_closed(Duration::from_secs(5)).closed,
            "{name}: the server closes after the answer"
        );
        drop(client);
        assert!(
            server.wait_stdout(Duration::from_secs(5), |out| usage_lines(out).len() > before),
            "{name}: no stack report after the connection ended; stdout: {:?}",
            server.stdout_text()
        );
        let lines = usage_lines(&server.stdout_text());
        let (size, used) = *lines[before..].iter().max_by_key(|(_, used)| *used).unwrap();
        measured.push((name, size, used));
    }
    let stderr = server.stderr_text();
    assert!(!stderr.contains("stack overflow"), "{stderr}");

    println!("coroutine stack use, EGNYTE_RECEIVER_STACK_WORDS={odd} (configured default {STACK_WORDS} words = {} KiB):", STACK_WORDS * 8 / 1024);
    for (name, size, used) in &measured {
        println!(
            "  {name:<48} used {used:>5} words = {:>6} bytes of {size} words allocated ({:.1}% of {STACK_WORDS})",
            used * 8,
            *used as f64 * 100.0 / STACK_WORDS as f64
        );
    }
    let (worst, _, max) = measured.iter().max_by_key(|(_, _, used)| *used).copied().unwrap();
    println!("  max: {max} words = {} bytes ({worst}); limit asserted: < {} words", max * 8, STACK_WORDS / 2);
    assert!(
        max < STACK_WORDS / 2,
        "{worst} used {max} words, not under half of the configured {STACK_WORDS}-word stack"
    );
}

/// Adds `Connection: close` to a request built by the helpers (after the request line).
fn close(request: Vec<u8>) -> Vec<u8> {
    let at = request.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
    let mut out = request[..at].to_vec();
    out.extend_from_slice(b"Connection: close\r\n");
    out.extend_from_slice(&request[at..]);
    out
}
