//! The receiver behind a REAL nginx (Debian package `nginx`) with a default-style reverse-proxy
//! configuration (every client header forwarded, nginx adding its own), and `curl` (Debian package
//! `curl`) as the client, the way a new user would put them together:
//!
//! * a plain POST with `Content-Length`;
//! * a POST with 30 extra client headers (the receiver then gets about 40 header lines);
//! * a chunked upload (`Transfer-Encoding: chunked`, a batch of about 57 KB), through nginx with
//!   request buffering on (nginx re-frames the body with `Content-Length`) and off (nginx streams
//!   it upstream chunked);
//! * 30 extra headers and a chunked upload together, through the streaming nginx.
//!
//! Each case must be answered 200 and its events (ids unique to the case) must land exactly once in
//! `events.jsonl`. A last test checks the harness itself against a capturing upstream: that nginx
//! really forwards the extra headers and the framing each case claims.
//!
//! Neither nginx nor curl being installed skips anything: the tests fail and say what to install.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::nginx::{Nginx, RequestBuffering};
use support::server::{batch, event, unique_id, Server, TempDir, PATH};

/// The token the receiver requires (sent by curl in `Authorization`, forwarded by nginx).
const TOKEN: &str = "proxy-test-token";

/// Extra client headers in the many-headers cases.
const EXTRA_HEADERS: usize = 30;

/// Events in the batch of a Content-Length case (a small batch, about 850 bytes).
const EVENTS: usize = 3;

/// Events in the batch of a chunked case: about 57 KB, well over nginx's 16 KiB
/// `client_body_buffer_size`. With request buffering off nginx forwards a chunked body chunked
/// only while it is still reading it when it connects upstream; a body that arrived whole with
/// the head goes upstream with `Content-Length` anyway (the harness test below checks the framing).
const CHUNKED_EVENTS: usize = 200;

/// curl's own limit on a whole transfer (`--max-time`).
const CURL_MAX_TIME_SECS: u64 = 20;

/// Longest wait for delivered events to show up in `events.jsonl`.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

// ----- curl ------------------------------------------------------------------------------------

/// What one curl run gave.
#[derive(Debug)]
struct CurlOutput {
    /// curl's exit status (28 = `--max-time` reached, 52 = empty reply, 56 = receive failure).
    exit: ExitStatus,
    /// The HTTP status (`%{http_code}`; 0 when there was no answer).
    status: u16,
    /// The response body.
    body: String,
    /// curl's stderr (`-v`: the request and response heads, and any error).
    stderr: String,
}

/// Panics with an install hint when `curl` cannot be run.
fn require_curl() {
    match Command::new("curl").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status() {
        Ok(status) if status.success() => {}
        Ok(status) => panic!("`curl --version` failed ({status}); reinstall it: `apt-get install curl`"),
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "curl is missing: these tests use it as the client and do not skip. \
             Install it with `apt-get install curl` (Debian package curl)."
        ),
        Err(e) => panic!("cannot run curl: {e}"),
    }
}

/// `curl -sS -v --max-time 20 -H … --data-binary @body URL`, output into files in `dir`; the wait
/// is bounded (curl's `--max-time`, and a kill 10 s after that).
fn curl(url: &str, body: &Path, headers: &[String], dir: &Path) -> CurlOutput {
    require_curl();
    let out = dir.join("curl-response-body");
    let stdout_path = dir.join("curl-stdout");
    let stderr_path = dir.join("curl-stderr");
    let mut command = Command::new("curl");
    command.args(["-sS", "-v", "--max-time", &CURL_MAX_TIME_SECS.to_string(), "-o"]).arg(&out);
    command.args(["-w", "%{http_code}"]);
    for header in headers {
        command.arg("-H").arg(header);
    }
    command.arg("--data-binary").arg(format!("@{}", body.display())).arg(url);
    command
        .stdin(Stdio::null())
        .stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap());
    let mut child = command.spawn().unwrap_or_else(|e| panic!("cannot run curl: {e}"));
    let deadline = Instant::now() + Duration::from_secs(CURL_MAX_TIME_SECS + 10);
    let exit = loop {
        if let Some(status) = child.try_wait().expect("wait for curl") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("curl ran past its own --max-time {CURL_MAX_TIME_SECS}; killed");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let text = |path: &Path| std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned());
    let code = text(&stdout_path).unwrap_or_default();
    CurlOutput {
        exit,
        status: code.trim().parse().unwrap_or(0),
        body: text(&out).unwrap_or_default(),
        stderr: text(&stderr_path).unwrap_or_default(),
    }
}

// ----- delivery --------------------------------------------------------------------------------

/// The complete lines of `events.jsonl` (a line still being written is left out), as JSON.
fn delivered(server: &Server) -> Vec<Value> {
    let bytes = match std::fs::read(server.data_file("events.jsonl")) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("events.jsonl: {e}"),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(&bytes[..0], |end| &bytes[..=end]);
    String::from_utf8_lossy(complete)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("events.jsonl line {line:?}: {e}")))
        .collect()
}

/// How often each event id occurs in `events`.
fn id_counts(events: &[Value]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for event in events {
        let id = event["eventId"].as_str().unwrap_or("(no eventId)").to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

/// Polls `events.jsonl` (bounded) until every id is there, lets delivery settle, then checks that
/// each id is there exactly once, as sent, and nothing else is.
fn assert_delivered_once(server: &Server, ids: &[String], context: &dyn Fn() -> String) {
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    loop {
        let counts = id_counts(&delivered(server));
        if ids.iter().all(|id| counts.contains_key(id)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events not delivered to events.jsonl within {DELIVERY_TIMEOUT:?}: want {ids:?}, have {counts:?}\n{}",
            context()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    server.settle();
    let events = delivered(server);
    let counts = id_counts(&events);
    for id in ids {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "event {id} must be delivered exactly once: {counts:?}\n{}",
            context()
        );
        let expected: Value = serde_json::from_str(&event(id)).unwrap();
        let got = events.iter().find(|e| e["eventId"] == json!(id)).unwrap();
        assert_eq!(got, &expected, "event {id} must be delivered as sent\n{}", context());
    }
    assert_eq!(events.len(), ids.len(), "only this case's events: {counts:?}\n{}", context());
}

// ----- the cases -------------------------------------------------------------------------------

/// One request through nginx to the receiver.
struct Case {
    /// Event id prefix (ids are unique per process and call).
    name: &'static str,
    buffering: RequestBuffering,
    extra_headers: usize,
    chunked: bool,
}

impl Case {
    /// Events in this case's batch.
    fn events(&self) -> usize {
        if self.chunked {
            CHUNKED_EVENTS
        } else {
            EVENTS
        }
    }
}

/// The client's header lines for a case (curl adds `Host`, `User-Agent`, `Accept`, and
/// `Content-Length` unless chunked).
fn client_headers(extra_headers: usize, chunked: bool) -> Vec<String> {
    let mut headers = vec!["Content-Type: application/json".to_owned(), format!("Authorization: {TOKEN}")];
    if chunked {
        headers.push("Transfer-Encoding: chunked".to_owned());
    }
    headers.extend((1..=extra_headers).map(|n| format!("X-Extra-{n}: value-{n}")));
    headers
}

/// Starts the receiver and nginx in front of it, POSTs a fresh batch with curl, and checks the
/// 200, its counts, and the delivery.
fn run(case: Case) {
    let server = Server::builder().auth_token(TOKEN).start();
    let nginx = Nginx::start(server.addr, case.buffering);
    let ids: Vec<String> = (0..case.events()).map(|_| unique_id(case.name)).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let dir = TempDir::new("proxy");
    let body_path = dir.path().join("batch.json");
    std::fs::write(&body_path, batch(&refs)).unwrap();
    let headers = client_headers(case.extra_headers, case.chunked);
    let output = curl(&nginx.url(PATH), &body_path, &headers, dir.path());
    let context = || {
        format!(
            "--- case: {} (request buffering {:?}, {} extra headers, chunked: {})\n\
             --- curl exit: {}\n--- curl stderr:\n{}\n--- curl body: {:?}\n{}\n--- receiver stderr:\n{}",
            case.name,
            case.buffering,
            case.extra_headers,
            case.chunked,
            output.exit,
            output.stderr,
            output.body,
            nginx.logs(),
            server.stderr_text()
        )
    };
    assert!(output.exit.success(), "curl failed\n{}", context());
    assert_eq!(output.status, 200, "the POST through nginx must be answered 200\n{}", context());
    let answer: Value = serde_json::from_str(&output.body)
        .unwrap_or_else(|e| panic!("the 200's body is not JSON: {e}\n{}", context()));
    assert_eq!(
        answer,
        json!({"accepted": case.events(), "duplicates": 0, "quarantined": 0}),
        "{}",
        context()
    );
    assert_delivered_once(&server, &ids, &context);
}

#[test]
fn plain_post_with_content_length_through_nginx_is_answered_200_and_delivered() {
    run(Case { name: "proxy-plain", buffering: RequestBuffering::On, extra_headers: 0, chunked: false });
}

#[test]
fn post_with_30_extra_headers_through_nginx_is_answered_200_and_delivered() {
    run(Case {
        name: "proxy-headers",
        buffering: RequestBuffering::On,
        extra_headers: EXTRA_HEADERS,
        chunked: false,
    });
}

#[test]
fn chunked_upload_through_buffering_nginx_is_answered_200_and_delivered() {
    run(Case {
        name: "proxy-chunked-buffered",
        buffering: RequestBuffering::On,
        extra_headers: 0,
        chunked: true,
    });
}

#[test]
fn chunked_upload_through_streaming_nginx_is_answered_200_and_delivered() {
    run(Case {
        name: "proxy-chunked-streamed",
        buffering: RequestBuffering::Off,
        extra_headers: 0,
        chunked: true,
    });
}

#[test]
fn chunked_upload_with_30_extra_headers_through_streaming_nginx_is_answered_200_and_delivered() {
    run(Case {
        name: "proxy-headers-chunked-streamed",
        buffering: RequestBuffering::Off,
        extra_headers: EXTRA_HEADERS,
        chunked: true,
    });
}

// ----- the harness itself ----------------------------------------------------------------------

/// One request as an upstream received it.
#[derive(Debug)]
struct Captured {
    /// Header lines (name, value) in order.
    headers: Vec<(String, String)>,
    /// The body as framed on the wire (chunked framing included).
    raw_body: Vec<u8>,
    /// Everything received, for failure messages.
    raw: String,
}

impl Captured {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Accepts one connection on `listener` (bounded wait), reads one request (head, then a body by
/// `Content-Length` or up to the last chunk), answers 200 `ok` and closes.
fn capture_one(listener: TcpListener) -> JoinHandle<Result<Captured, String>> {
    std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(CURL_MAX_TIME_SECS);
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(format!("no connection from nginx: {e}")),
            }
        };
        stream.set_nonblocking(false).map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let captured = loop {
            if let Some(captured) = parse_request(&buf)? {
                break captured;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(format!("incomplete request: {:?}", String::from_utf8_lossy(&buf)));
            }
            stream.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
            let mut chunk = [0u8; 65536];
            match stream.read(&mut chunk) {
                Ok(0) => return Err(format!("closed mid-request: {:?}", String::from_utf8_lossy(&buf))),
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(format!("{e} after {:?}", String::from_utf8_lossy(&buf))),
            }
        };
        let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n");
        Ok(captured)
    })
}

/// One complete request at the start of `buf`, `None` while incomplete.
fn parse_request(buf: &[u8]) -> Result<Option<Captured>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let headers: Vec<(String, String)> = head
        .split("\r\n")
        .skip(1)
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let body = &buf[end + 4..];
    let get = |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let complete = if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body.ends_with(b"0\r\n\r\n")
    } else {
        let length: usize = get("content-length").map_or(Ok(0), |v| v.parse()).map_err(|e| format!("{e}"))?;
        body.len() >= length
    };
    if !complete {
        return Ok(None);
    }
    Ok(Some(Captured { headers, raw_body: body.to_vec(), raw: String::from_utf8_lossy(buf).into_owned() }))
}

/// The data of a chunked body (no trailers, no chunk extensions expected from nginx).
fn dechunk(mut raw: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for _ in 0..raw.len() + 1 {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").ok_or("no chunk size line")?;
        let size_text = String::from_utf8_lossy(&raw[..line_end]).into_owned();
        let size = usize::from_str_radix(size_text.trim(), 16).map_err(|e| format!("{size_text:?}: {e}"))?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Ok(out);
        }
        if raw.len() < size + 2 {
            return Err("short chunk".into());
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
    Err("too many chunks".into())
}

/// What the receiver cases assume nginx does, checked on a capturing upstream: all 30 extra
/// client headers are forwarded (with nginx's own added); with request buffering on a chunked
/// upload arrives with `Content-Length`, with it off it arrives chunked. So when a receiver case
/// fails, it is the receiver's answer to that request, not the harness.
#[test]
fn the_harness_nginx_forwards_extra_headers_and_the_framing_the_cases_claim() {
    for buffering in [RequestBuffering::On, RequestBuffering::Off] {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let upstream = listener.local_addr().unwrap();
        let capture = capture_one(listener);
        let nginx = Nginx::start(upstream, buffering);
        let ids: Vec<String> = (0..CHUNKED_EVENTS).map(|_| unique_id("proxy-harness")).collect();
        let body = batch(&ids.iter().map(String::as_str).collect::<Vec<_>>());
        let dir = TempDir::new("proxy");
        let body_path: PathBuf = dir.path().join("batch.json");
        std::fs::write(&body_path, &body).unwrap();
        let headers = client_headers(EXTRA_HEADERS, true);
        let output = curl(&nginx.url(PATH), &body_path, &headers, dir.path());
        let captured = capture.join().expect("capture thread").unwrap_or_else(|e| {
            panic!(
                "{buffering:?}: upstream capture failed: {e}\n--- curl:\n{}\n{}",
                output.stderr,
                nginx.logs()
            )
        });
        let context = format!(
            "{buffering:?}\n--- upstream received:\n{}\n--- curl stderr:\n{}\n{}",
            captured.raw,
            output.stderr,
            nginx.logs()
        );
        assert_eq!((output.exit.success(), output.status), (true, 200), "{context}");
        for n in 1..=EXTRA_HEADERS {
            let value = format!("value-{n}");
            assert_eq!(captured.header(&format!("X-Extra-{n}")), Some(value.as_str()), "{context}");
        }
        assert!(captured.headers.len() > EXTRA_HEADERS + 4, "nginx adds its own headers: {context}");
        assert_eq!(captured.header("Authorization"), Some(TOKEN), "{context}");
        assert!(captured.header("X-Forwarded-For").is_some(), "{context}");
        match buffering {
            RequestBuffering::On => {
                assert_eq!(captured.header("Transfer-Encoding"), None, "{context}");
                assert_eq!(
                    captured.header("Content-Length"),
                    Some(body.len().to_string().as_str()),
                    "{context}"
                );
                assert_eq!(captured.raw_body, body.as_bytes(), "{context}");
            }
            RequestBuffering::Off => {
                assert_eq!(captured.header("Transfer-Encoding"), Some("chunked"), "{context}");
                assert_eq!(captured.header("Content-Length"), None, "{context}");
                let data = dechunk(&captured.raw_body).unwrap_or_else(|e| panic!("{e}: {context}"));
                assert_eq!(data, body.as_bytes(), "{context}");
            }
        }
    }
}
