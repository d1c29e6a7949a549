//! Every rejection is explained in the log: the real binary logs each refused request (at most one
//! line a second per cause) with its cause and its client, the peer address and the
//! `X-Forwarded-For` / `X-Real-IP` values a proxy sent. Each of the four causes of a 401 (no
//! token header, the token in a header `--auth-header` leaves out, another scheme prefix, another
//! value) has its own line, and no line holds the token or any part of the value received. The
//! HTTP layer's own refusals (413, 431, 400 for a broken chunked body) and the receiver's (400 for
//! an invalid batch, 404) name their cause and client too.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use support::server::{post_request, request, Server};

/// The token's secret part, and the token as configured (with its scheme, as the README's
/// install step makes it).
const SECRET: &str = "s3cret-4f9a1c7e2b8d";
const TOKEN: &str = "Token s3cret-4f9a1c7e2b8d";

/// Sends `bytes` on a new connection and reads the answer: its status, and the address the
/// request came from (the peer the server sees).
fn send_from(server: &Server, bytes: &[u8]) -> (u16, SocketAddr) {
    let mut client = server.connect();
    let from = client.stream.local_addr().expect("the client's address");
    client.send(bytes).expect("send the request");
    (client.read_response().status, from)
}

/// The one stderr line that starts with `start` and names `from` as the client, waiting
/// (bounded) for it; panics with the whole log when there is none.
fn line_for(server: &Server, start: &str, from: SocketAddr) -> String {
    let client = format!("; client {from}");
    let find = || {
        let stderr = server.stderr_text();
        let lines: Vec<String> = stderr
            .lines()
            .filter(|line| line.contains(start) && line.contains(&client))
            .map(|line| line[line.find("rejected with").unwrap_or(0)..].to_owned())
            .collect();
        lines
    };
    assert!(
        server.stderr_contains(&client, Duration::from_secs(5)) && find().len() == 1,
        "one line {start:?} for {from}:\n{}",
        server.stderr_text()
    );
    find().remove(0)
}

#[test]
fn each_cause_of_a_401_has_its_own_line_with_the_client_and_never_the_token() {
    let server = Server::builder().auth_token(TOKEN).args(["--auth-header", "Authorization"]).start();
    let unauthorized = "rejected with 401: missing or wrong token: ";
    let body = b"[]";
    let proxied = [("X-Forwarded-For", "203.0.113.7, 10.0.0.2"), ("X-Real-IP", "203.0.113.7")];
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[], "no Authorization header"),
        (
            &[("Authentication", TOKEN)],
            "the token came in Authentication, but only Authorization is accepted (--auth-header)",
        ),
        (
            &[("Authorization", "Bearer s3cret-4f9a1c7e2b8d")],
            "the Authorization value (26 bytes) differs from the token (25 bytes) in its scheme prefix only",
        ),
        (
            &[("Authorization", "Token wr0ng-9e8d7c6b5a")],
            "the Authorization value (22 bytes) is not the token (25 bytes)",
        ),
    ];
    let mut lines = Vec::new();
    for (i, (headers, cause)) in cases.into_iter().enumerate() {
        // Every other request comes through a proxy that names the original client.
        let mut all = headers.to_vec();
        if i % 2 == 1 {
            all.extend(proxied);
        }
        let (status, from) = send_from(&server, &post_request(&server.path, body, &all));
        assert_eq!(status, 401, "{all:?}");
        let line = line_for(&server, &format!("{unauthorized}{cause}"), from);
        let client = if i % 2 == 1 {
            format!("client {from} (X-Forwarded-For \"203.0.113.7, 10.0.0.2\", X-Real-IP \"203.0.113.7\")")
        } else {
            format!("client {from}")
        };
        assert!(line.ends_with(&client), "{line}");
        lines.push(line);
    }
    lines.sort();
    lines.dedup();
    assert_eq!(lines.len(), 4, "four distinct lines: {lines:#?}");
    // The right token in the right header still passes.
    assert_eq!(server.post(body, &[("Authorization", TOKEN)]).status, 200);
    let stderr = server.stderr_text();
    for secret in [SECRET, "s3cret", "4f9a", "wr0ng", "Bearer", "9e8d"] {
        assert!(!stderr.contains(secret), "{secret:?} in the log:\n{stderr}");
    }
}

#[test]
fn the_default_headers_are_named_when_neither_came() {
    let server = Server::builder().auth_token(TOKEN).start();
    let (status, from) = send_from(&server, &post_request(&server.path, b"[]", &[("X-Token", TOKEN)]));
    assert_eq!(status, 401);
    let line = line_for(&server, "rejected with 401: missing or wrong token: ", from);
    assert_eq!(line, format!("rejected with 401: missing or wrong token: no Authorization or Authentication header; client {from}"));
    let (status, from) = send_from(
        &server,
        &post_request(&server.path, b"[]", &[("Authorization", "x"), ("Authorization", "y")]),
    );
    assert_eq!(status, 401);
    let line = line_for(&server, "rejected with 401: missing or wrong token: ", from);
    assert!(line.contains("Authorization sent more than once"), "{line}");
    // The scheme prefix missing is a scheme prefix too.
    let (status, from) =
        send_from(&server, &post_request(&server.path, b"[]", &[("Authentication", SECRET)]));
    assert_eq!(status, 401);
    let line = line_for(&server, "rejected with 401: missing or wrong token: ", from);
    assert!(
        line.contains(
            "the Authentication value (19 bytes) differs from the token (25 bytes) in its scheme prefix only"
        ),
        "{line}"
    );
    assert!(!server.stderr_text().contains("s3cret"));
}

#[test]
fn refusals_of_the_http_layer_and_of_the_receiver_name_their_cause_and_client() {
    let server = Server::builder().args(["--max-body", "1000", "--max-headers", "20"]).start();
    let proxy = ("X-Forwarded-For", "198.51.100.23");
    let via = "(X-Forwarded-For \"198.51.100.23\")";

    // 413: a Content-Length over --max-body, refused with the head (whose lines were read).
    let big = request("POST", &server.path, &[proxy, ("Content-Length", "2000")], b"");
    let (status, from) = send_from(&server, &big);
    assert_eq!(status, 413);
    let line = line_for(&server, "rejected with 413: body larger than the limit", from);
    assert_eq!(line, format!("rejected with 413: body larger than the limit; client {from} {via}"));

    // 431: too many header lines; the head was never parsed, so only the peer is known.
    let many: Vec<(String, String)> = (0..21).map(|i| (format!("X-H{i}"), "v".to_owned())).collect();
    let many: Vec<(&str, &str)> = many.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    let (status, from) = send_from(&server, &request("GET", "/healthz", &many, b""));
    assert_eq!(status, 431);
    let line = line_for(&server, "rejected with 431: too many header fields", from);
    assert_eq!(line, format!("rejected with 431: too many header fields; client {from}"));

    // 400: a broken chunked body, refused while the body is read.
    let chunked = request(
        "POST",
        &server.path,
        &[("Transfer-Encoding", "chunked"), ("X-Real-IP", "198.51.100.24")],
        b"zz\r\n[]\r\n0\r\n\r\n",
    );
    let (status, from) = send_from(&server, &chunked);
    assert_eq!(status, 400);
    let line = line_for(&server, "rejected with 400: malformed chunk size", from);
    assert_eq!(
        line,
        format!("rejected with 400: malformed chunk size; client {from} (X-Real-IP \"198.51.100.24\")")
    );

    // 400: a body that is not a batch, refused by the receiver.
    let (status, from) = send_from(&server, &post_request(&server.path, b"[1,", &[proxy]));
    assert_eq!(status, 400);
    let line = line_for(&server, "rejected with 400: invalid body: ", from);
    assert!(line.ends_with(&format!("; client {from} {via}")), "{line}");

    // 404.
    let (status, from) =
        send_from(&server, &request("GET", "/nope?token=s3cret", &[("Connection", "close")], b""));
    assert_eq!(status, 404);
    let line = line_for(&server, "rejected with 404: not found", from);
    assert_eq!(line, format!("rejected with 404: not found; client {from}"));
    assert!(!server.stderr_text().contains("s3cret"), "no target in the log");
}
