//! The HTTP layer (`src/http/`) driven through the real `egnyte-receiver serve`, limit by limit:
//! header count and size, target length, endless and dribbled heads (with the server's memory
//! measured), chunked bodies good and bad, transfer codings, pipelining, half-close,
//! `Expect: 100-continue`, idle connections, the connection cap and descriptor exhaustion.
//!
//! Every refusal is checked the same way ([`refused`]): exactly one answer with its status and
//! one-line reason, `Connection: close`, the connection really ending, and neither the refused
//! request's own events nor a POST smuggled behind it ever stored. Every request expected to be
//! served is followed by [`CLOSE_PROBE`] on the same connection ([`served`]), whose answer proves
//! the bytes before it were framed exactly. Every answer seen anywhere carries `Date`, `Server`
//! and `Content-Length` ([`assert_standard_headers`]). Cases are tables, one per line; every
//! loop and wait is bounded in count and time; everything runs on 127.0.0.1.

mod support;

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::server::{
    self, assert_still_healthy, batch, dribble, event, hold_connections, parse_all, post_request, request,
    show, unique_id, wait_until_alone, Client, Response, Server, PATH,
};

/// Sent last on a connection expected to serve everything before it: its answer (200 `ok`,
/// `Connection: close`) proves the bytes before it were framed exactly, and ends the connection.
const CLOSE_PROBE: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Longest wait for the server to end a connection it should end.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

// ----- helpers -----------------------------------------------------------------------------------

/// What a case expects: `None` to be served (and stored), or a refusal's status and one-line
/// reason.
type Expected = Option<(u16, &'static str)>;

fn counts(accepted: usize) -> Value {
    json!({"accepted": accepted, "duplicates": 0, "quarantined": 0})
}

/// `Server`, an IMF-fixdate `Date` and exactly one `Content-Length` (never `Transfer-Encoding`)
/// on every final answer.
fn assert_standard_headers(case: &str, response: &Response) {
    if (100..200).contains(&response.status) {
        return;
    }
    assert_eq!(response.header("server"), Some("egnyte-receiver"), "{case}: {response:?}");
    let date = response.header("date").unwrap_or_else(|| panic!("{case}: no Date: {response:?}"));
    let imf = date.len() == 29 && date.as_bytes()[3] == b',' && date.ends_with(" GMT");
    assert!(imf, "{case}: Date {date:?} is not an IMF-fixdate");
    let lengths = response.headers_named("content-length");
    assert_eq!(lengths.len(), 1, "{case}: one Content-Length: {response:?}");
    assert!(lengths[0].parse::<usize>().is_ok(), "{case}: {response:?}");
    assert!(response.header("transfer-encoding").is_none(), "{case}: {response:?}");
}

/// What one connection brought back: the complete answers, the bytes after them, whether the
/// server ended the connection (end of stream or reset), and when.
#[derive(Debug)]
struct Exchange {
    responses: Vec<Response>,
    rest: Vec<u8>,
    closed: bool,
    after: Duration,
}

/// Sends `bytes` on a fresh connection and collects everything until the server ends it.
fn exchange(server: &Server, bytes: &[u8]) -> Exchange {
    let mut client = server.connect();
    let _ = client.send(bytes);
    finish(&mut client)
}

/// Collects what arrives until the server ends the connection (bounded by [`CLOSE_WAIT`]).
fn finish(client: &mut Client) -> Exchange {
    let closing = client.wait_closed(CLOSE_WAIT);
    let (responses, rest) = parse_all(&closing.data);
    Exchange { responses, rest, closed: closing.closed, after: closing.after }
}

fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

/// `bytes` then [`CLOSE_PROBE`] on one connection: the requests in `bytes` answered `expected`,
/// in order, none saying close; then the probe's 200 and the end of the connection. Returns
/// the answers before the probe's.
fn served(server: &Server, case: &str, bytes: &[u8], expected: &[u16]) -> Vec<Response> {
    let mut all = bytes.to_vec();
    all.extend_from_slice(CLOSE_PROBE);
    check_served(case, exchange(server, &all), expected)
}

/// The checks of [`served`] on an exchange that ended with [`CLOSE_PROBE`].
fn check_served(case: &str, outcome: Exchange, expected: &[u16]) -> Vec<Response> {
    let Exchange { mut responses, rest, closed, .. } = outcome;
    let mut want = expected.to_vec();
    want.push(200);
    assert_eq!(statuses(&responses), want, "{case}: {responses:?} then {}", show(&rest));
    for response in &responses {
        assert_standard_headers(case, response);
    }
    let probe = responses.pop().expect("the probe's answer");
    assert!(probe.closes() && probe.text() == "ok\n", "{case}: probe {probe:?}");
    assert!(responses.iter().all(|r| !r.closes()), "{case}: {responses:?}");
    assert!(rest.is_empty(), "{case}: bytes after the answers: {}", show(&rest));
    assert!(closed, "{case}: the probe's Connection: close must end the connection");
    responses
}

/// A POST of one event that, if it were ever parsed and served, would be stored.
fn smuggled_post(id: &str) -> Vec<u8> {
    post_request(PATH, batch(&[id]).as_bytes(), &[])
}

/// `bytes` then a smuggled POST and [`CLOSE_PROBE`]: exactly one answer, `status` with the
/// one-line `message`, saying close; the connection ends; neither the smuggled POST nor any of
/// `ids` (the refused request's own events) is stored.
/// A one-event request that must be served and stored (`None`), or refused as `refusal` says.
fn expect(server: &Server, case: &str, bytes: &[u8], id: &str, refusal: Expected) {
    match refusal {
        None => {
            let answers = served(server, case, bytes, &[200]);
            assert_eq!(answers[0].json(), counts(1), "{case}");
            assert_stored(server, case, &[id]);
        }
        Some((status, message)) => refused(server, case, bytes, &[id], status, message),
    }
}

fn refused(server: &Server, case: &str, bytes: &[u8], ids: &[&str], status: u16, message: &str) {
    let behind = unique_id("smuggled");
    let mut all = bytes.to_vec();
    all.extend(smuggled_post(&behind));
    all.extend_from_slice(CLOSE_PROBE);
    check_refused(case, &exchange(server, &all), status, message);
    let mut never: Vec<&str> = ids.to_vec();
    never.push(&behind);
    assert_not_stored(server, case, &never);
}

/// Exactly one answer, `status` with `message`, `Connection: close`, then the end.
fn check_refused(case: &str, outcome: &Exchange, status: u16, message: &str) {
    let Exchange { responses, rest, closed, .. } = outcome;
    assert_eq!(statuses(responses), [status], "{case}: {responses:?} then {}", show(rest));
    let answer = &responses[0];
    assert_standard_headers(case, answer);
    assert_eq!(answer.text(), format!("{message}\n"), "{case}: {answer:?}");
    assert!(answer.closes(), "{case}: a refusal says Connection: close: {answer:?}");
    assert!(rest.is_empty(), "{case}: bytes after the answer: {}", show(rest));
    assert!(closed, "{case}: the connection must end after the {status}");
}

/// The event ids in `events.jsonl` (once delivery settled), and the events as JSON text.
fn stored(server: &Server) -> (HashSet<String>, HashSet<String>) {
    let events = server.events();
    let ids = events.iter().filter_map(|e| e["eventId"].as_str().map(str::to_owned)).collect();
    (ids, events.iter().map(Value::to_string).collect())
}

/// Every event with these ids is stored, exactly as [`event`] makes it.
fn assert_stored<S: AsRef<str>>(server: &Server, case: &str, ids: &[S]) {
    let (_, exact) = stored(server);
    for id in ids {
        let want: Value = serde_json::from_str(&event(id.as_ref())).unwrap();
        assert!(exact.contains(&want.to_string()), "{case}: event {} not stored as sent", id.as_ref());
    }
}

/// No event with any of these ids is stored.
fn assert_not_stored<S: AsRef<str>>(server: &Server, case: &str, ids: &[S]) {
    let (present, _) = stored(server);
    for id in ids {
        assert!(
            !present.contains(id.as_ref()),
            "{case}: {} was stored; it must never be served",
            id.as_ref()
        );
    }
}

/// A request from raw head lines (no `Host` added), then `body`.
fn raw(request_line: &str, lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = format!("{request_line}\r\n");
    for line in lines {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// Bytes of the head at the start of `bytes`, the empty line included.
fn head_len(bytes: &[u8]) -> usize {
    bytes.windows(4).position(|w| w == b"\r\n\r\n").expect("a complete head") + 4
}

/// A batch of fresh events at least `min_bytes` long, and their ids.
fn batch_at_least(prefix: &str, min_bytes: usize) -> (Vec<String>, Vec<u8>) {
    let mut ids = Vec::new();
    let mut events = Vec::new();
    let mut len = 2;
    while len < min_bytes || ids.is_empty() {
        let id = unique_id(prefix);
        let event = event(&id);
        len += event.len() + 1;
        ids.push(id);
        events.push(event);
    }
    (ids, format!("[{}]", events.join(",")).into_bytes())
}

/// A one-event batch padded with JSON whitespace to exactly `len` bytes.
fn batch_of_len(id: &str, len: usize) -> Vec<u8> {
    let mut body = batch(&[id]).into_bytes();
    assert!(body.len() <= len, "an event is {} bytes", body.len());
    body.resize(len, b' ');
    body
}

/// `body` in chunks whose sizes cycle through `sizes` (the last one cut to what is left), each
/// size line with `extension`, then the last chunk and `trailers` (whole lines with CRLF).
fn encode_chunked(body: &[u8], sizes: &[usize], extension: &str, trailers: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut at = 0;
    for &size in sizes.iter().cycle() {
        if at == body.len() {
            break;
        }
        let size = size.min(body.len() - at);
        out.extend(format!("{size:x}{extension}\r\n").into_bytes());
        out.extend_from_slice(&body[at..at + size]);
        out.extend_from_slice(b"\r\n");
        at += size;
    }
    out.extend(format!("0{extension}\r\n{trailers}\r\n").into_bytes());
    out
}

/// A chunked POST of `encoded` (already chunked) to the webhook path.
fn chunked_post(encoded: &[u8]) -> Vec<u8> {
    request("POST", PATH, &[("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")], encoded)
}

/// Raises this process's soft descriptor limit to its hard limit when it is below `needed`;
/// returns the soft limit now in force.
fn raise_open_files_limit(needed: libc::rlim_t) -> libc::rlim_t {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the live `limit`; setrlimit reads it.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0, "{}", io::Error::last_os_error());
        if limit.rlim_cur < needed && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0, "{}", io::Error::last_os_error());
        }
    }
    limit.rlim_cur
}

/// `GET /healthz` on fresh connections until one is answered (bounded by `within`).
fn healthz_within(server: &Server, within: Duration) -> Option<Response> {
    let deadline = Instant::now() + within;
    loop {
        if let Ok(mut client) = Client::try_connect(server.addr(), Duration::from_secs(1)) {
            let _ = client.send(&request("GET", "/healthz", &[("Connection", "close")], b""));
            client.set_timeout(Duration::from_secs(1));
            if let Ok(response) = client.try_read_response() {
                return Some(response);
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ----- header count ------------------------------------------------------------------------------

/// A one-event POST with exactly `lines` header lines (Host, Content-Type and Content-Length
/// are three of them; the others are short, so 2,000 lines stay under 32 KiB).
fn post_with_header_lines(id: &str, lines: usize) -> Vec<u8> {
    let names: Vec<String> = (0..lines - 3).map(|i| format!("X{i}")).collect();
    let extra: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "v")).collect();
    post_request(PATH, batch(&[id]).as_bytes(), &extra)
}

#[test]
fn header_lines_at_and_over_the_limit() {
    let default = server::start(&[]);
    let twenty = server::start(&["--max-headers", "20"]);
    const TOO_MANY: Expected = Some((431, "too many header fields"));
    let cases: [(&Server, &str, usize, Expected); 9] = [
        (&default, "default", 17, None),
        (&default, "default", 30, None),
        (&default, "default", 60, None),
        (&default, "default", 90, None),
        (&default, "default", 100, None),
        (&default, "default", 101, TOO_MANY),
        (&default, "default", 2000, TOO_MANY),
        (&twenty, "--max-headers 20", 20, None),
        (&twenty, "--max-headers 20", 21, TOO_MANY),
    ];
    for (server, name, lines, refusal) in cases {
        let case = format!("{lines} header lines ({name})");
        let id = unique_id("lines");
        let bytes = post_with_header_lines(&id, lines);
        let head = &bytes[..head_len(&bytes)];
        assert_eq!(head.split(|&b| b == b'\n').count() - 3, lines, "{case}: the request itself");
        assert!(head.len() < 32 * 1024, "{case}: the head must stay under the size limit");
        expect(server, &case, &bytes, &id, refusal);
    }
    assert_still_healthy(&default);
    assert_still_healthy(&twenty);
}

// ----- head size ---------------------------------------------------------------------------------

/// A one-event POST whose head (request line, headers, empty line) is exactly `len` bytes,
/// padded by one `X-Pad` header line.
fn post_with_head_len(id: &str, len: usize) -> Vec<u8> {
    let body = batch(&[id]);
    let build = |pad: &str| post_request(PATH, body.as_bytes(), &[("X-Pad", pad)]);
    let base = head_len(&build("p"));
    assert!(len >= base, "a head of {len} bytes is too short for the request");
    let bytes = build(&"p".repeat(len - base + 1));
    assert_eq!(head_len(&bytes), len);
    bytes
}

#[test]
fn head_bytes_at_and_over_the_limit() {
    let small = server::start(&["--max-header-bytes", "2048"]);
    let default = server::start(&[]);
    const TOO_LARGE: Expected = Some((431, "request header section too large"));
    let cases: [(&Server, &str, usize, Expected); 6] = [
        (&small, "--max-header-bytes 2048", 2048, None),
        (&small, "--max-header-bytes 2048", 2049, TOO_LARGE),
        (&small, "--max-header-bytes 2048, a 64 KiB header line", 64 * 1024, TOO_LARGE),
        (&default, "default 32 KiB", 32 * 1024, None),
        (&default, "default 32 KiB", 32 * 1024 + 1, TOO_LARGE),
        (&default, "default 32 KiB, a 64 KiB header line", 64 * 1024, TOO_LARGE),
    ];
    for (server, name, len, refusal) in cases {
        let case = format!("a head of {len} bytes ({name})");
        let id = unique_id("head-bytes");
        let bytes = post_with_head_len(&id, len);
        expect(server, &case, &bytes, &id, refusal);
    }
    assert_still_healthy(&small);
    assert_still_healthy(&default);
}

// ----- target length -----------------------------------------------------------------------------

#[test]
fn request_target_at_and_over_8_kib() {
    let server = server::start(&[]);
    let target = |path: &str, len: usize| format!("{path}{}", "b".repeat(len - path.len()));
    let webhook = |len: usize| target(&format!("{PATH}?pad="), len);
    // (case, method, target, expected: None = served and stored, else status and message)
    let cases: [(&str, &str, String, Expected); 4] = [
        ("GET of an 8192-byte target: routed, not found", "GET", target("/", 8192), Some((404, "not found"))),
        ("POST to the webhook with an 8192-byte target", "POST", webhook(8192), None),
        ("GET of an 8193-byte target", "GET", target("/", 8193), Some((414, "request target too long"))),
        (
            "POST to the webhook with an 8193-byte target",
            "POST",
            webhook(8193),
            Some((414, "request target too long")),
        ),
    ];
    for (case, method, target, expected) in cases {
        let id = unique_id("target");
        let body = batch(&[&id]);
        let length = body.len().to_string();
        let headers = [("Content-Type", "application/json"), ("Content-Length", length.as_str())];
        let bytes = match method {
            "GET" => request(method, &target, &[], b""),
            _ => request(method, &target, &headers, body.as_bytes()),
        };
        expect(&server, case, &bytes, &id, expected);
    }
    assert_still_healthy(&server);
}

// ----- endless and dribbled heads ----------------------------------------------------------------

/// What one endless header stream saw.
#[derive(Debug)]
struct Endless {
    received: Vec<u8>,
    closed: bool,
    sent: usize,
    elapsed: Duration,
}

/// Streams a header line that never ends (`X: aaaa…`) in 64 KiB writes, for at most `within`
/// or until the server answers or ends the connection; a reader thread collects the answer.
fn endless_header_line(addr: SocketAddr, within: Duration) -> Endless {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_nodelay(true).unwrap();
    stream.set_write_timeout(Some(Duration::from_millis(100))).unwrap();
    let mut reader = stream.try_clone().expect("clone the socket");
    reader.set_read_timeout(Some(Duration::from_millis(100))).unwrap();
    let answered = AtomicBool::new(false);
    let started = Instant::now();
    std::thread::scope(|scope| {
        let collector = scope.spawn(|| {
            let mut received = Vec::new();
            let mut buf = [0u8; 4096];
            let deadline = started + within + CLOSE_WAIT;
            let closed = loop {
                match reader.read(&mut buf) {
                    Ok(0) => break true,
                    Ok(n) => {
                        received.extend_from_slice(&buf[..n]);
                        answered.store(true, Ordering::SeqCst);
                    }
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                        if Instant::now() >= deadline {
                            break false;
                        }
                    }
                    Err(_) => break true,
                }
            };
            answered.store(true, Ordering::SeqCst);
            (received, closed)
        });
        let mut writer = &stream;
        let mut sent = 0;
        let prefix = b"POST /egnyte/webhook HTTP/1.1\r\nHost: x\r\nX: ";
        if writer.write_all(prefix).is_ok() {
            sent += prefix.len();
            let line = vec![b'a'; 64 * 1024];
            while !answered.load(Ordering::SeqCst) && started.elapsed() < within {
                match writer.write(&line) {
                    Ok(n) => sent += n,
                    Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                    Err(_) => break,
                }
            }
        }
        // Nothing more comes: the server's drain of unread bytes ends at once.
        let _ = stream.shutdown(Shutdown::Write);
        let (received, closed) = collector.join().expect("the reader thread");
        Endless { received, closed, sent, elapsed: started.elapsed() }
    })
}

#[test]
fn endless_header_lines_are_431_at_the_cap_with_bounded_memory() {
    const STREAMS: usize = 8;
    let server = server::start(&[]);
    // Warm up the paths a request takes once, so the baseline is not the first connection's.
    for _ in 0..4 {
        assert_eq!(server.get("/healthz").status, 200);
    }
    let before = server.rss_kib();
    let peak = AtomicU64::new(before);
    let done = AtomicBool::new(false);
    let outcomes: Vec<Endless> = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                peak.fetch_max(server.rss_kib(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        let streams: Vec<_> = (0..STREAMS)
            .map(|_| scope.spawn(|| endless_header_line(server.addr(), Duration::from_secs(2))))
            .collect();
        let outcomes = streams.into_iter().map(|s| s.join().expect("a stream thread")).collect();
        peak.fetch_max(server.rss_kib(), Ordering::SeqCst);
        done.store(true, Ordering::SeqCst);
        sampler.join().expect("the sampler");
        outcomes
    });
    let peak = peak.load(Ordering::SeqCst);
    let growth = peak.saturating_sub(before);
    println!(
        "{STREAMS} endless header lines: server RSS {before} KiB before, peak {peak} KiB, growth {growth} KiB; \
         bytes sent per stream {:?}",
        outcomes.iter().map(|o| o.sent).collect::<Vec<_>>()
    );
    for (i, outcome) in outcomes.iter().enumerate() {
        let case = format!("endless header line {i} ({} bytes sent in {:?})", outcome.sent, outcome.elapsed);
        let (responses, rest) = parse_all(&outcome.received);
        let seen = Exchange { responses, rest, closed: outcome.closed, after: outcome.elapsed };
        check_refused(&case, &seen, 431, "request header section too large");
    }
    assert!(growth <= 32 * 1024, "the server's RSS grew by {growth} KiB (at most 32 MiB)");
    assert_still_healthy(&server);
}

#[test]
fn a_dribbled_head_is_408_at_the_read_timeout_not_reset_by_each_byte() {
    let server = server::start(&["--read-timeout", "1"]);
    let id = unique_id("dribbled");
    let bytes = smuggled_post(&id);
    // 50 ms a byte: the head alone would take several seconds.
    let head = &bytes[..head_len(&bytes)];
    assert!(head.len() > 60, "the head must outlast the timeout");
    let mut client = server.connect();
    let started = Instant::now();
    let (cut, received) = dribble(&mut client, head, Duration::from_millis(50), started);
    let cut = cut.expect("a dribbled head must be cut");
    println!("a head dribbled at 1 byte / 50 ms cut after {cut:?} (--read-timeout 1)");
    let (responses, rest) = parse_all(&received);
    let outcome = Exchange { responses, rest, closed: true, after: cut };
    check_refused("dribbled head", &outcome, 408, "request not complete within the read timeout");
    assert!(cut >= Duration::from_millis(900) && cut < Duration::from_secs(3), "cut after {cut:?}");
    assert_not_stored(&server, "dribbled head", &[&id]);
    assert_still_healthy(&server);
}

// ----- chunked bodies ----------------------------------------------------------------------------

#[test]
fn chunked_bodies_are_stored_as_their_content_length_twins() {
    let server = server::start(&[]);
    // (case, body at least this long, chunk sizes (cycled), extension, trailers)
    let cases: [(&str, usize, &[usize], &str, &str); 7] = [
        ("1-byte chunks", 600, &[1], "", ""),
        ("7-byte chunks with an extension", 3000, &[7], ";a=b", ""),
        ("4095 then 4097", 20_000, &[4095, 4097], "", "X-Checksum: 1\r\n"),
        ("4097, 1, 4095 with a quoted extension", 20_000, &[4097, 1, 4095], ";n=\"q v\"", ""),
        ("one chunk of 100 KB", 100_000, &[usize::MAX], "", "Expires: never\r\n"),
        ("extensions with whitespace", 2000, &[300], " ; a = b ;c", "A:\r\nB:  v \t\r\n"),
        (
            "trailers that would matter in a head",
            1000,
            &[100],
            "",
            "Content-Length: 5\r\nHost: evil\r\nAuthorization: x\r\nTransfer-Encoding: gzip\r\n",
        ),
    ];
    for (case, min_bytes, sizes, extension, trailers) in cases {
        let (ids, body) = batch_at_least("chunked", min_bytes);
        let encoded = encode_chunked(&body, sizes, extension, trailers);
        let answers = served(&server, case, &chunked_post(&encoded), &[200]);
        assert_eq!(answers[0].json(), counts(ids.len()), "{case}");
        assert_stored(&server, case, &ids);
    }
    // The same, trickled byte by byte in separate writes (a small body: bounded time).
    let (ids, body) = batch_at_least("trickled", 300);
    let bytes = chunked_post(&encode_chunked(&body, &[7], ";x=1", "X-T: 1\r\n"));
    let mut client = server.connect();
    let started = Instant::now();
    for (i, byte) in bytes.iter().enumerate() {
        client.send(std::slice::from_ref(byte)).unwrap();
        if i % 8 == 7 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let response = client.read_response();
    println!("{} bytes trickled one per write in {:?}", bytes.len(), started.elapsed());
    assert_standard_headers("trickled", &response);
    assert_eq!((response.status, response.json()), (200, counts(ids.len())), "trickled: {response:?}");
    client.send(CLOSE_PROBE).unwrap();
    check_served("trickled, then the probe", finish(&mut client), &[]);
    assert_stored(&server, "trickled", &ids);
    // A chunked request with requests pipelined behind it, in one write.
    let (first, body) = batch_at_least("chunked-first", 500);
    let next = unique_id("chunked-next");
    let mut bytes = chunked_post(&encode_chunked(&body, &[64], "", ""));
    bytes.extend(smuggled_post(&next));
    bytes.extend(request("GET", "/healthz", &[], b""));
    let answers = served(&server, "chunked then pipelined", &bytes, &[200, 200, 200]);
    assert_eq!(answers[0].json(), counts(first.len()));
    assert_eq!(answers[1].json(), counts(1));
    assert_eq!(answers[2].text(), "ok\n");
    assert_stored(&server, "chunked then pipelined", &first);
    assert_stored(&server, "pipelined behind a chunked request", &[&next]);
    assert_still_healthy(&server);
}

#[test]
fn a_chunked_body_at_and_over_max_body() {
    let server = server::start(&["--max-body", "2000"]);
    // (case, decoded size, chunk sizes, expected: None = served)
    let too_large = Some((413, "body too large"));
    let cases: [(&str, usize, &[usize], Expected); 5] = [
        ("2000 bytes in chunks of 1000", 2000, &[1000], None),
        ("2000 bytes in one chunk", 2000, &[2000], None),
        ("2001 bytes in chunks of 1000", 2001, &[1000], too_large),
        ("2001 bytes in one chunk", 2001, &[2001], too_large),
        ("2001 bytes in 1-byte chunks", 2001, &[1], too_large),
    ];
    for (case, len, sizes, expected) in cases {
        let id = unique_id("max-chunked");
        let bytes = chunked_post(&encode_chunked(&batch_of_len(&id, len), sizes, "", ""));
        expect(&server, case, &bytes, &id, expected);
    }
    // The Content-Length twins.
    let id = unique_id("max-length");
    let answers =
        served(&server, "Content-Length 2000", &post_request(PATH, &batch_of_len(&id, 2000), &[]), &[200]);
    assert_eq!(answers[0].json(), counts(1));
    assert_stored(&server, "Content-Length 2000", &[&id]);
    let id = unique_id("max-length");
    let bytes = post_request(PATH, &batch_of_len(&id, 2001), &[]);
    refused(&server, "Content-Length 2001", &bytes, &[&id], 413, "body larger than the limit");
    assert_still_healthy(&server);
}

// ----- malformed chunked framing -----------------------------------------------------------------

#[test]
fn malformed_chunked_framing_is_refused_and_closes() {
    let server = server::start(&["--max-body", "2000"]);
    let size = "malformed chunk size";
    let line_end = "chunked body line not ended by CRLF";
    let data_end = "chunk data not followed by CRLF";
    let extensions = "chunk extensions too long";
    let trailer_size = "trailer section too large";
    let long_extension = format!("1;{}\r\nx\r\n0\r\n\r\n", "e".repeat(64 * 1024));
    let many_extensions = format!("1;{}\r\nx\r\n", "e".repeat(1023)).repeat(17) + "0\r\n\r\n";
    let long_trailer = format!("0\r\nX: {}\r\n\r\n", "t".repeat(33 * 1024));
    let many_trailers = format!("0\r\n{}\r\n", "T: 1\r\n".repeat(101));
    // Each case follows a first, valid chunk holding a batch: the handler must never see it.
    // (case, the rest of the body, status, message)
    let cases: [(&str, &[u8], u16, &str); 24] = [
        ("0x5", b"0x5\r\nhello\r\n0\r\n\r\n", 400, size),
        ("+5", b"+5\r\nhello\r\n0\r\n\r\n", 400, size),
        ("-5", b"-5\r\nhello\r\n0\r\n\r\n", 400, size),
        ("5_0", b"5_0\r\nhello\r\n0\r\n\r\n", 400, size),
        ("leading space", b" 5\r\nhello\r\n0\r\n\r\n", 400, size),
        ("trailing space", b"5 \r\nhello\r\n0\r\n\r\n", 400, size),
        ("empty size line", b"\r\n5\r\nhello\r\n0\r\n\r\n", 400, size),
        (";x alone", b";x\r\nhello\r\n0\r\n\r\n", 400, size),
        ("17 hex digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n", 400, size),
        ("17 hex digits of value", b"10000000000000000\r\nhello\r\n0\r\n\r\n", 400, size),
        ("a size over --max-body", b"800\r\nhello\r\n0\r\n\r\n", 413, "body too large"),
        ("u64::MAX", b"FFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", 413, "body too large"),
        ("bare LF after the size", b"5\nhello\r\n0\r\n\r\n", 400, line_end),
        ("bare LF in an extension", b"5;a\nb\r\nhello\r\n0\r\n\r\n", 400, line_end),
        ("bare LF after the data", b"5\r\nhello\n0\r\n\r\n", 400, line_end),
        ("data longer than its size", b"5\r\nhello!!\r\n0\r\n\r\n", 400, data_end),
        ("data not followed by CRLF", b"5\r\nhello0\r\n\r\n", 400, data_end),
        ("an empty extension", b"5;\r\nhello\r\n0\r\n\r\n", 400, "malformed chunk extension"),
        ("a 64 KiB extension", long_extension.as_bytes(), 400, extensions),
        ("17 1-byte chunks with 1 KiB of extension each", many_extensions.as_bytes(), 400, extensions),
        ("a trailer line over 32 KiB", long_trailer.as_bytes(), 400, trailer_size),
        ("101 trailer lines", many_trailers.as_bytes(), 400, trailer_size),
        ("an obs-folded trailer", b"0\r\nA: 1\r\n folded\r\n\r\n", 400, "malformed trailer field"),
        ("a trailer with a space before the colon", b"0\r\nA : 1\r\n\r\n", 400, "malformed trailer field"),
    ];
    for (case, rest, status, message) in cases {
        let id = unique_id("bad-chunked");
        let first = batch(&[&id]);
        let mut body = format!("{:x}\r\n{first}\r\n", first.len()).into_bytes();
        body.extend_from_slice(rest);
        refused(&server, case, &chunked_post(&body), &[&id], status, message);
    }
    // The stream ends (the client half-closes) before `0\r\n\r\n`; in one case inside a chunk
    // announced a little longer than the request it holds.
    let short = "connection closed before the body was complete";
    let inside = unique_id("inside");
    let request = smuggled_post(&inside);
    let holding = [format!("{:x}\r\n", request.len() + 10).into_bytes(), request].concat();
    let half_closed: [(&str, &[u8]); 3] = [
        ("after a whole chunk", b""),
        ("inside chunk data that holds a request", &holding),
        ("inside a size line", b"1"),
    ];
    for (case, rest) in half_closed {
        let case = format!("half-closed {case}");
        let id = unique_id("half-chunked");
        let first = batch(&[&id]);
        let mut body = format!("{:x}\r\n{first}\r\n", first.len()).into_bytes();
        body.extend_from_slice(rest);
        let mut client = server.connect();
        client.send(&chunked_post(&body)).unwrap();
        client.half_close();
        check_refused(&case, &finish(&mut client), 400, short);
        assert_not_stored(&server, &case, &[&id, &inside]);
    }
    assert_still_healthy(&server);
}

// ----- transfer codings --------------------------------------------------------------------------

#[test]
fn transfer_encoding_other_than_chunked_alone_is_refused() {
    let server = server::start(&[]);
    let both = Some((400, "Content-Length and Transfer-Encoding together"));
    let unsupported = Some((501, "only the chunked transfer coding is supported"));
    let malformed = Some((400, "malformed Transfer-Encoding"));
    // (case, request line, header lines ({len}: the chunked body's length), expected: None = served)
    let cases: [(&str, &str, &[&str], Expected); 15] = [
        ("TE then CL", "1.1", &["Transfer-Encoding: chunked", "Content-Length: {len}"], both),
        ("CL then TE", "1.1", &["Content-Length: {len}", "Transfer-Encoding: chunked"], both),
        ("gzip, chunked", "1.1", &["Transfer-Encoding: gzip, chunked"], unsupported),
        ("chunked, identity", "1.1", &["Transfer-Encoding: chunked, identity"], unsupported),
        ("xchunked", "1.1", &["Transfer-Encoding: xchunked"], unsupported),
        ("identity", "1.1", &["Transfer-Encoding: identity"], unsupported),
        ("chunked, chunked", "1.1", &["Transfer-Encoding: chunked, chunked"], unsupported),
        ("TE on HTTP/1.0", "1.0", &["Transfer-Encoding: chunked"], malformed),
        ("two TE lines", "1.1", &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"], malformed),
        ("an empty TE", "1.1", &["Transfer-Encoding:"], malformed),
        (",chunked", "1.1", &["Transfer-Encoding: ,chunked"], malformed),
        ("chunked;a=b", "1.1", &["Transfer-Encoding: chunked;a=b"], malformed),
        ("chunked", "1.1", &["Transfer-Encoding: chunked"], None),
        ("tab, then CHUNKED", "1.1", &["Transfer-Encoding:\tCHUNKED"], None),
        ("Chunked in spaces, lower-case name", "1.1", &["transfer-encoding:   Chunked  "], None),
    ];
    for (case, version, lines, expected) in cases {
        let id = unique_id("te");
        let encoded = encode_chunked(batch(&[&id]).as_bytes(), &[100], "", "");
        let len = encoded.len().to_string();
        let mut head: Vec<String> = vec!["Host: x".into(), "Content-Type: application/json".into()];
        head.extend(lines.iter().map(|l| l.replace("{len}", &len)));
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        let bytes = raw(&format!("POST {PATH} HTTP/{version}"), &head, &encoded);
        match expected {
            None => {
                // A request pipelined behind it is served too: the body ended where it should.
                let next = unique_id("te-next");
                let mut bytes = bytes;
                bytes.extend(smuggled_post(&next));
                let answers = served(&server, case, &bytes, &[200, 200]);
                assert_eq!(answers[0].json(), counts(1), "{case}");
                assert_stored(&server, case, &[&id, &next]);
            }
            Some((status, message)) => refused(&server, case, &bytes, &[&id], status, message),
        }
    }
    assert_still_healthy(&server);
}

// ----- pipelining, half-close, Connection: close -------------------------------------------------

#[test]
fn a_half_closed_client_gets_every_answer() {
    let server = server::start(&[]);
    // (case, number of POSTs, chunked, then a GET)
    let cases: [(&str, usize, bool, bool); 5] = [
        ("one POST", 1, false, false),
        ("a pipelined pair of POSTs", 2, false, false),
        ("a chunked POST", 1, true, false),
        ("a pipelined pair of chunked POSTs", 2, true, false),
        ("a POST and a GET", 1, false, true),
    ];
    for (case, posts, chunked, get) in cases {
        for round in 0..3 {
            let case = format!("{case}, then half-close (round {round})");
            let ids: Vec<String> = (0..posts).map(|_| unique_id("half")).collect();
            let mut bytes = Vec::new();
            for id in &ids {
                let body = batch(&[id]);
                bytes.extend(match chunked {
                    true => chunked_post(&encode_chunked(body.as_bytes(), &[50], "", "")),
                    false => post_request(PATH, body.as_bytes(), &[]),
                });
            }
            if get {
                bytes.extend(request("GET", "/healthz", &[], b""));
            }
            let mut client = server.connect();
            client.send(&bytes).unwrap();
            client.half_close();
            let Exchange { responses, rest, closed, .. } = finish(&mut client);
            let want = vec![200; posts + usize::from(get)];
            assert_eq!(statuses(&responses), want, "{case}: {}", show(&rest));
            for response in &responses {
                assert_standard_headers(&case, response);
            }
            assert!(rest.is_empty() && closed, "{case}: {} closed: {closed}", show(&rest));
            assert_stored(&server, &case, &ids);
        }
    }
    assert_still_healthy(&server);
}

#[test]
fn connection_close_and_http10_end_the_connection_after_the_answer() {
    let server = server::start(&[]);
    // (case, request line version, extra header lines, the connection stays open)
    let cases: [(&str, &str, &[&str], bool); 5] = [
        ("Connection: close", "1.1", &["Host: x", "Connection: close"], false),
        ("Connection: keep-alive, close", "1.1", &["Host: x", "Connection: keep-alive, close"], false),
        ("HTTP/1.0", "1.0", &[], false),
        ("HTTP/1.0 with Connection: keep-alive", "1.0", &["Connection: keep-alive"], true),
        ("HTTP/1.1", "1.1", &["Host: x"], true),
    ];
    for (case, version, lines, keep_alive) in cases {
        let id = unique_id("conn");
        let body = batch(&[&id]);
        let length = format!("Content-Length: {}", body.len());
        let mut head = lines.to_vec();
        head.push(&length);
        let bytes = raw(&format!("POST {PATH} HTTP/{version}"), &head, body.as_bytes());
        let behind = unique_id("behind");
        let mut all = bytes.clone();
        all.extend(smuggled_post(&behind));
        if keep_alive {
            served(&server, case, &all, &[200, 200]);
            assert_stored(&server, case, &[&id, &behind]);
        } else {
            let all = [all, CLOSE_PROBE.to_vec()].concat();
            let outcome = exchange(&server, &all);
            assert_eq!(statuses(&outcome.responses), [200], "{case}: {}", show(&outcome.rest));
            assert_standard_headers(case, &outcome.responses[0]);
            assert_eq!(outcome.responses[0].json(), counts(1), "{case}");
            assert!(outcome.responses[0].closes(), "{case}: {:?}", outcome.responses[0]);
            assert!(outcome.rest.is_empty() && outcome.closed, "{case}: {outcome:?}");
            assert_stored(&server, case, &[&id]);
            assert_not_stored(&server, case, &[&behind]);
        }
    }
    assert_still_healthy(&server);
}

// ----- Expect: 100-continue ----------------------------------------------------------------------

#[test]
fn expect_100_continue_before_the_body_only_when_the_gate_passes() {
    const TOKEN: &str = "expect-token";
    let server = Server::builder().auth_token(TOKEN).args(["--max-body", "5000"]).start();
    let continue_line = "HTTP/1.1 100 Continue\r\n\r\n";
    // Passing: the 100 first (the body not yet sent), then the 200.
    let id = unique_id("expect");
    let body = batch(&[&id]);
    let length = body.len().to_string();
    let mut client = server.connect();
    let head = [("Authorization", TOKEN), ("Content-Length", length.as_str()), ("Expect", "100-continue")];
    client.send(&request("POST", PATH, &head, b"")).unwrap();
    client.set_timeout(Duration::from_secs(3));
    let interim = client.read_response();
    assert_eq!((interim.status, interim.reason.as_str()), (100, "Continue"), "{interim:?}");
    client.send(body.as_bytes()).unwrap();
    let response = client.read_response();
    assert_standard_headers("expect, passing", &response);
    assert_eq!((response.status, response.json()), (200, counts(1)));
    client.send(CLOSE_PROBE).unwrap();
    check_served("expect, passing, then the probe", finish(&mut client), &[]);
    assert_stored(&server, "expect, passing", &[&id]);
    // Refused by the gate: the final answer, no 100, then the end; a body sent after the
    // answer (holding a request that would be stored) is never read as a request.
    // (case, target, Authorization, status, message)
    let cases: [(&str, &str, Option<&str>, u16, &str); 4] = [
        ("no token", PATH, None, 401, "missing or wrong token"),
        ("a wrong token", PATH, Some("nope"), 401, "missing or wrong token"),
        ("an unknown path", "/nowhere", Some(TOKEN), 404, "not found"),
        ("a body over --max-body", PATH, Some(TOKEN), 413, "body larger than the limit"),
    ];
    for (case, target, token, status, message) in cases {
        let case = format!("expect, refused: {case}");
        let hidden = unique_id("expect-hidden");
        let body = post_request(PATH, batch(&[&hidden]).as_bytes(), &[("Authorization", TOKEN)]);
        let length = if status == 413 { "5001".to_owned() } else { body.len().to_string() };
        let mut headers: Vec<(&str, &str)> = token.map(|t| ("Authorization", t)).into_iter().collect();
        headers.push(("Content-Length", &length));
        headers.push(("Expect", "100-continue"));
        let mut client = server.connect();
        client.send(&request("POST", target, &headers, b"")).unwrap();
        client.set_timeout(Duration::from_secs(3));
        let response = client.read_response();
        assert!(!String::from_utf8_lossy(client.pending()).contains(continue_line), "{case}");
        let _ = client.send(&body);
        let mut outcome = finish(&mut client);
        outcome.responses.insert(0, response);
        check_refused(&case, &outcome, status, message);
        assert_not_stored(&server, &case, &[&hidden]);
    }
    // HTTP/1.0 has no 100-continue: nothing comes until the body does.
    let id = unique_id("expect-10");
    let body = batch(&[&id]);
    let lines = [
        &format!("Authorization: {TOKEN}")[..],
        &format!("Content-Length: {}", body.len()),
        "Expect: 100-continue",
    ];
    let mut client = server.connect();
    client.send(&raw(&format!("POST {PATH} HTTP/1.0"), &lines, b"")).unwrap();
    assert!(client.still_open_after(Duration::from_millis(300)), "HTTP/1.0 + Expect: nothing may come yet");
    client.send(body.as_bytes()).unwrap();
    let outcome = finish(&mut client);
    assert_eq!(statuses(&outcome.responses), [200], "HTTP/1.0 + Expect: {}", show(&outcome.rest));
    assert!(outcome.responses[0].closes() && outcome.closed, "HTTP/1.0 + Expect: {outcome:?}");
    assert_stored(&server, "HTTP/1.0 + Expect", &[&id]);
    // Expect with the body sent at once, and a request pipelined behind: both answered in order
    // (a 100 may come first if the server read the head alone).
    let id = unique_id("expect-at-once");
    let body = batch(&[&id]);
    let length = body.len().to_string();
    let head = [("Authorization", TOKEN), ("Content-Length", length.as_str()), ("Expect", "100-continue")];
    let mut bytes = request("POST", PATH, &head, body.as_bytes());
    bytes.extend(request("GET", "/healthz", &[], b""));
    bytes.extend_from_slice(CLOSE_PROBE);
    let mut outcome = exchange(&server, &bytes);
    outcome.responses.retain(|r| r.status != 100);
    let answers = check_served("expect with the body at once", outcome, &[200, 200]);
    assert_eq!(answers[0].json(), counts(1));
    assert_stored(&server, "expect with the body at once", &[&id]);
    assert_still_healthy(&server);
}

// ----- idle keep-alive connections ---------------------------------------------------------------

#[test]
fn two_thousand_idle_keep_alive_connections_cost_little_and_stay_usable() {
    const IDLE: usize = 2000;
    let limit = raise_open_files_limit(IDLE as libc::rlim_t + 500);
    assert!(limit >= IDLE as libc::rlim_t + 200, "this process may open only {limit} descriptors");
    let server = server::start(&[]);
    // Warm up, so the baseline is not the first connection's.
    drop(hold_connections(&server, 20));
    wait_until_alone(&server);
    let before = server.rss_kib();
    let started = Instant::now();
    let mut held = hold_connections(&server, IDLE);
    let opened = started.elapsed();
    let after = server.rss_kib();
    let growth = after.saturating_sub(before);
    println!(
        "{IDLE} idle keep-alive connections (opened in {opened:?}): server RSS {before} KiB -> {after} KiB, \
         {growth} KiB in all, {:.1} KiB per connection",
        growth as f64 / IDLE as f64
    );
    assert!(growth <= 64 * 1024, "{IDLE} idle connections grew the server by {growth} KiB (at most 64 MiB)");
    // Still usable: a few of them, first, middle and last, serve another request each.
    for i in [0, 1, IDLE / 2, IDLE - 2, IDLE - 1] {
        let client = &mut held[i];
        client.send(&request("GET", "/healthz", &[], b"")).unwrap();
        let response = client.read_response();
        assert_standard_headers("idle connection", &response);
        assert_eq!((response.status, response.text().as_str()), (200, "ok\n"), "connection {i}");
    }
    let id = unique_id("idle-post");
    held[IDLE / 3].send(&smuggled_post(&id)).unwrap();
    assert_eq!(held[IDLE / 3].read_response().json(), counts(1));
    assert_stored(&server, "a POST on an idle connection", &[&id]);
    let metrics = server.metrics();
    assert!(metrics.get("egnyte_receiver_open_connections") >= IDLE as f64, "{metrics:?}");
    drop(held);
    assert_still_healthy(&server);
}

// ----- --max-connections -------------------------------------------------------------------------

#[test]
fn the_connection_over_max_connections_is_closed_at_once_and_a_freed_slot_serves() {
    let server = server::start(&["--max-connections", "5"]);
    wait_until_alone(&server);
    let mut held = hold_connections(&server, 5);
    // The sixth: closed at once, no answer even to a complete request.
    for attempt in 0..2 {
        let outcome = exchange(&server, &request("GET", "/healthz", &[], b""));
        assert!(outcome.closed, "attempt {attempt}: the 6th connection must be closed");
        assert!(
            outcome.after < Duration::from_secs(2),
            "attempt {attempt}: closed only after {:?}",
            outcome.after
        );
        assert!(outcome.responses.is_empty() && outcome.rest.is_empty(), "attempt {attempt}: {outcome:?}");
    }
    drop(held.pop());
    let served = healthz_within(&server, CLOSE_WAIT);
    assert_eq!(served.map(|r| r.status), Some(200), "a freed slot serves again");
    for (i, client) in held.iter_mut().enumerate() {
        client.send(&request("GET", "/healthz", &[], b"")).unwrap();
        assert_eq!(client.read_response().status, 200, "held connection {i}");
    }
    drop(held);
    let metrics = server.wait_metrics(CLOSE_WAIT, |m| m.get("egnyte_receiver_open_connections") == 1.0);
    assert!(metrics.get("egnyte_receiver_connections_refused_total") >= 2.0, "{metrics:?}");
    assert_still_healthy(&server);
}

// ----- descriptor exhaustion ---------------------------------------------------------------------

/// The server's open descriptors numbered below `limit` (descriptors it inherited, such as a
/// test runner's jobserver pipe, may be numbered higher).
fn descriptors_below(server: &Server, limit: u32) -> usize {
    let entries = std::fs::read_dir(format!("/proc/{}/fd", server.pid())).expect("/proc/PID/fd");
    entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok()).filter(|&fd| fd < limit).count()
}

#[test]
fn a_low_open_file_limit_caps_connections_and_keeps_descriptors_for_the_files() {
    const LIMIT: u64 = 200;
    const CONNECTIONS: usize = 120;
    // 200 descriptors leave 72 connections beside the receiver's reserve of 128.
    let server = Server::builder()
        .open_files_limit(LIMIT)
        .args(["--max-connections", "1000", "--journal-segment-bytes", "4096"])
        .start();
    assert!(
        server.stderr_contains("--max-connections 1000 needs more descriptors", Duration::from_secs(2)),
        "{}",
        server.stderr_text()
    );
    assert!(server.stderr_text().contains("capped at 72"), "{}", server.stderr_text());
    let mut held: Vec<Client> = (0..CONNECTIONS).map(|_| server.connect()).collect();
    let cpu_before = server.cpu_time();
    std::thread::sleep(Duration::from_secs(2));
    let cpu = server.cpu_time().saturating_sub(cpu_before);
    let open = descriptors_below(&server, LIMIT as u32);
    println!(
        "RLIMIT_NOFILE {LIMIT}, {CONNECTIONS} connections: {open} descriptors open; CPU over 2 s: {cpu:?}"
    );
    assert!(open < LIMIT as usize - 32, "connections must leave descriptors free: {open} open");
    assert!(cpu < Duration::from_millis(500), "the accept loop spins: {cpu:?} of CPU in 2 s");
    // With every connection slot taken, the journal still rolls segments (4 KiB each) and
    // stores: free one slot for the posts.
    held.truncate(60);
    for n in 0..40 {
        let posted = server.post(batch(&[&unique_id(&format!("fds-{n}"))]).as_bytes(), &[]);
        assert_eq!(posted.status, 200, "post {n}: {posted:?}");
    }
    assert!(server.metrics().get("egnyte_receiver_connections_refused_total") > 0.0);
    drop(held);
    assert_eq!(server.events().len(), 40);
    assert_still_healthy(&server);
}

// ----- Date, Server, Content-Length; HEAD --------------------------------------------------------

#[test]
fn every_answer_has_date_server_and_content_length() {
    let server = server::start(&["--max-body", "2000"]);
    let close = [("Connection", "close")];
    let post = post_request(PATH, batch(&[&unique_id("std")]).as_bytes(), &close);
    // (case, request, status)
    let cases: [(&str, Vec<u8>, u16); 14] = [
        ("GET /healthz", request("GET", "/healthz", &close, b""), 200),
        ("GET /metrics", request("GET", "/metrics", &close, b""), 200),
        ("POST", post, 200),
        ("POST of a bad body", post_request(PATH, b"[", &close), 400),
        ("GET of an unknown path", request("GET", "/nowhere", &[], b""), 404),
        ("PUT on the webhook", request("PUT", PATH, &[], b""), 405),
        ("Content-Length over --max-body", request("POST", PATH, &[("Content-Length", "2001")], b""), 413),
        ("a chunk over --max-body", chunked_post(b"7d1\r\n"), 413),
        ("a malformed chunk", chunked_post(b"0x5\r\n"), 400),
        ("a long target", request("GET", &format!("/{}", "a".repeat(8192)), &[], b""), 414),
        ("too many headers", post_with_header_lines(&unique_id("std"), 101), 431),
        ("gzip", request("POST", PATH, &[("Transfer-Encoding", "gzip")], b""), 501),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: x\r\n\r\n".to_vec(), 505),
        ("no Host", b"GET /healthz HTTP/1.1\r\n\r\n".to_vec(), 400),
    ];
    for (case, bytes, status) in cases {
        let outcome = exchange(&server, &bytes);
        assert_eq!(statuses(&outcome.responses), [status], "{case}: {}", show(&outcome.rest));
        assert_standard_headers(case, &outcome.responses[0]);
        assert!(outcome.responses[0].closes() && outcome.closed, "{case}: {outcome:?}");
    }
    // HEAD: the length of the body GET would get, and no body (the next answer follows at once).
    for path in ["/healthz", "/metrics"] {
        let mut client = server.connect();
        client.send(&request("HEAD", path, &[], b"")).unwrap();
        client.send(CLOSE_PROBE).unwrap();
        let head = client.read_head_response();
        assert_standard_headers("HEAD", &head);
        assert_eq!(head.status, 200, "HEAD {path}: {head:?}");
        let length: usize = head.header("content-length").unwrap().parse().unwrap();
        assert!(length > 0, "HEAD {path}: {head:?}");
        if path == "/healthz" {
            assert_eq!(length, "ok\n".len(), "HEAD {path}: {head:?}");
        }
        assert!(
            client.pending().is_empty() || client.pending().starts_with(b"HTTP/1.1 200"),
            "HEAD {path} got body bytes: {}",
            show(client.pending())
        );
        check_served(&format!("HEAD {path}, then the probe"), finish(&mut client), &[]);
    }
    assert_still_healthy(&server);
}

// ----- heads that are not HTTP/1.1 ---------------------------------------------------------------

#[test]
fn malformed_heads_are_400_and_close() {
    let server = server::start(&[]);
    let malformed = "malformed request line or header field";
    let host = "HTTP/1.1 needs exactly one Host header";
    // (case, head, status, message)
    let cases: [(&str, &[u8], u16, &str); 14] = [
        ("no Host", b"POST /egnyte/webhook HTTP/1.1\r\n\r\n", 400, host),
        ("two Host lines", b"POST /egnyte/webhook HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, host),
        ("a line without a colon", b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400, malformed),
        (
            "a space before the colon",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n",
            400,
            malformed,
        ),
        ("obs-fold", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400, malformed),
        ("NUL in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 400, malformed),
        ("CR in a value", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400, malformed),
        ("a first header line starting with a space", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, malformed),
        ("an empty header name", b"GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", 400, malformed),
        ("a space in the method", b"GE T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, malformed),
        ("lower-case http", b"GET / http/1.1\r\nHost: a\r\n\r\n", 400, malformed),
        ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "only HTTP/1.0 and HTTP/1.1 are supported"),
        (
            "the h2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            505,
            "only HTTP/1.0 and HTTP/1.1 are supported",
        ),
        (
            "a bad Content-Length",
            b"POST /egnyte/webhook HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n",
            400,
            "malformed Content-Length",
        ),
    ];
    for (case, head, status, message) in cases {
        refused(&server, case, head, &[], status, message);
    }
    // A TLS handshake or binary junk, head never ended: 400 at once, not at the read timeout.
    let junk: [(&str, &[u8]); 2] = [
        ("a TLS ClientHello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        ("binary", b"\x00\x01\x02\xff\xfe"),
    ];
    for (case, bytes) in junk {
        let outcome = exchange(&server, bytes);
        check_refused(case, &outcome, 400, malformed);
        assert!(outcome.after < Duration::from_secs(2), "{case}: answered only after {:?}", outcome.after);
    }
    assert_still_healthy(&server);
}

/// A graceful stop (SIGTERM): new connections are refused, a connection waiting for a request is
/// closed at once, a request whose body is still arriving is finished and answered (with
/// `Connection: close`), and the process exits 0.
#[test]
fn a_graceful_stop_finishes_requests_in_flight_and_closes_idle_connections() {
    let mut server = server::start(&["--shutdown-timeout", "10"]);
    let mut idle = server.connect();
    idle.send(&request("GET", "/healthz", &[], b"")).unwrap();
    assert_eq!(idle.read_response().status, 200);
    let id = unique_id("in-flight");
    let body = batch(&[&id]);
    let bytes = post_request(PATH, body.as_bytes(), &[]);
    let (first, rest) = bytes.split_at(bytes.len() - 10);
    let mut busy = server.connect();
    busy.send(first).unwrap();
    // The head (and most of the body) is in before the stop.
    std::thread::sleep(Duration::from_millis(300));
    server.signal(libc::SIGTERM);
    let closing = idle.wait_closed(Duration::from_secs(3));
    assert!(closing.closed && closing.data.is_empty(), "the idle connection: {closing:?}");
    assert!(closing.after < Duration::from_secs(2), "closed only after {:?}", closing.after);
    busy.send(rest).unwrap();
    let response = busy.read_response();
    assert_eq!(response.status, 200, "the request in flight is finished: {response:?}");
    assert!(response.closes(), "{response:?}");
    let status = server.wait_exit(Duration::from_secs(10)).expect("the receiver exits");
    assert!(status.success(), "{status:?}\n{}", server.stderr_text());
    assert!(std::net::TcpStream::connect(server.addr).is_err(), "nothing listens after the stop");
    let events = std::fs::read_to_string(server.data_dir.join("events.jsonl")).unwrap();
    assert!(events.contains(&id), "the batch finished during the stop is delivered");
}
