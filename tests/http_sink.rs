//! The `http:` sink through the real binary, against a loopback test server that records every
//! request and answers per a script: events POSTed as JSON arrays of at most `--http-batch`,
//! `Idempotency-Key` the same on a retry, Standard Webhooks signatures that verify (HMAC-SHA256
//! with ring, and base64, checked here independently of the sink's code), 500 then 200, a hang
//! past `--http-timeout`, a connection closed without an answer, always 500 (each event of the
//! batch dead-lettered with the reason), https against a test CA given by `SSL_CERT_FILE`, bad
//! specs and secrets refused at start, and a SIGKILL mid-delivery losing no acknowledged event.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use serde_json::{json, Value};
use support::server::{batch, post_request, unique_id, Server, TempDir, BIN, PATH};

/// The secret the tests sign with (24 bytes, base64).
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Longest wait for deliveries to reach the test server.
const WAIT: Duration = Duration::from_secs(20);

/// One request the test server received.
#[derive(Debug, Clone)]
struct Seen {
    line: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// The body as a JSON array of events.
    fn events(&self) -> Vec<Value> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Array(events)) => events,
            other => panic!("not a JSON array: {other:?}: {}", String::from_utf8_lossy(&self.body)),
        }
    }

    fn ids(&self) -> Vec<String> {
        self.events().iter().map(|e| e["eventId"].as_str().unwrap().to_string()).collect()
    }
}

/// What the test server does with the request numbered n (from 0).
#[derive(Debug, Clone, Copy)]
enum Act {
    /// Answer with this status (and a short body).
    Status(u16),
    /// Hold the connection this long without answering, then close it.
    Hang(Duration),
    /// Close the connection without answering.
    Close,
}

/// A loopback HTTP/1.1 server recording requests (Content-Length bodies) and acting per `script`.
struct TestServer {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    fn start(script: impl Fn(usize, &Seen) -> Act + Send + Sync + 'static) -> TestServer {
        TestServer::on(TcpListener::bind("127.0.0.1:0").unwrap(), script)
    }

    fn on(listener: TcpListener, script: impl Fn(usize, &Seen) -> Act + Send + Sync + 'static) -> TestServer {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let script = Arc::new(script);
        let (seen_, stop_) = (Arc::clone(&seen), Arc::clone(&stop));
        listener.set_nonblocking(true).unwrap();
        thread::spawn(move || {
            while !stop_.load(Ordering::Relaxed) {
                let stream = match listener.accept() {
                    Ok((stream, _)) => stream,
                    Err(_) => {
                        thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                stream.set_nonblocking(false).unwrap();
                let (seen, script, stop) = (Arc::clone(&seen_), Arc::clone(&script), Arc::clone(&stop_));
                thread::spawn(move || serve_connection(stream, &seen, &*script, &stop));
            }
        });
        TestServer { addr, seen, stop }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits (bounded) until `done` holds for the requests seen; returns them.
    fn wait(&self, within: Duration, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
        let deadline = Instant::now() + within;
        loop {
            let seen = self.seen();
            if done(&seen) || Instant::now() >= deadline {
                return seen;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_connection(
    stream: TcpStream,
    seen: &Mutex<Vec<Seen>>,
    script: &(dyn Fn(usize, &Seen) -> Act + Send + Sync),
    stop: &AtomicBool,
) {
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while !stop.load(Ordering::Relaxed) {
        let Some(request) = read_request(&mut reader) else { return };
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(request.clone());
            seen.len() - 1
        };
        match script(n, &request) {
            Act::Status(status) => {
                let body = if status < 300 { "ok" } else { "nope" };
                let answer = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                if writer.write_all(answer.as_bytes()).is_err() {
                    return;
                }
            }
            Act::Hang(duration) => {
                thread::sleep(duration);
                return;
            }
            Act::Close => return,
        }
    }
}

fn read_request(reader: &mut impl BufRead) -> Option<Seen> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 {
            return None;
        }
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let length: usize =
        headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap_or(0));
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Seen { line: line.trim_end().to_string(), headers, body })
}

/// The Idempotency-Key the sink must send for these events (`DOMAIN:EVENT_ID` each, in order).
fn expected_key(ids: &[String]) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for id in ids {
        context.update(format!("acme.egnyte.com:{id}\n").as_bytes());
    }
    context.finish().as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a request's Standard Webhooks headers against `SECRET`.
fn assert_signed(request: &Seen) {
    let id = request.header("webhook-id").expect("webhook-id");
    let timestamp = request.header("webhook-timestamp").expect("webhook-timestamp");
    let signatures = request.header("webhook-signature").expect("webhook-signature");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let sent: u64 = timestamp.parse().unwrap();
    assert!(sent.abs_diff(now) < 300, "timestamp {sent} vs now {now}");
    let key = BASE64.decode(SECRET.strip_prefix("whsec_").unwrap()).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(&request.body);
    let valid = signatures.split(' ').filter_map(|s| s.strip_prefix("v1,")).any(|signature| {
        BASE64.decode(signature).is_ok_and(|tag| ring::hmac::verify(&key, &signed, &tag).is_ok())
    });
    assert!(valid, "no valid v1 signature in {signatures:?}");
    // A tampered body does not verify.
    signed.push(b' ');
    let tag = BASE64.decode(signatures.split(' ').next().unwrap().strip_prefix("v1,").unwrap()).unwrap();
    assert!(ring::hmac::verify(&key, &signed, &tag).is_err());
}

/// The environment every receiver here runs with: no proxy from the machine's environment.
fn no_proxies(builder: support::server::ServerBuilder) -> support::server::ServerBuilder {
    ["HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        .into_iter()
        .fold(builder, |builder, name| builder.env(name, ""))
}

/// A receiver with the `http:` sink to `url` and these extra arguments.
fn receiver(url: &str, args: &[&str], temp: TempDir) -> Server {
    let secret = temp.path().join("secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let mut all = vec!["--sink".to_string(), url.to_string()];
    all.extend(["--http-sign-secret-file".to_string(), secret.display().to_string()]);
    all.extend(args.iter().map(|a| a.to_string()));
    no_proxies(Server::builder()).args(all).temp_dir(temp).start()
}

fn ids(n: usize, prefix: &str) -> Vec<String> {
    (0..n).map(|_| unique_id(prefix)).collect()
}

fn post(server: &Server, ids: &[String]) {
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let response = server.post(batch(&refs).as_bytes(), &[]);
    assert_eq!(response.status, 200, "{response:?}");
}

fn metric(server: &Server, sink: &str, name: &str) -> f64 {
    server.metrics().get(&format!("egnyte_receiver_sink_{name}{{sink=\"{sink}\"}}"))
}

#[test]
fn events_are_posted_as_signed_json_arrays_of_at_most_the_batch_size() {
    let test_server = TestServer::start(|_, _| Act::Status(200));
    let server =
        receiver(&test_server.url(), &["--http-batch", "2", "--workers", "1"], TempDir::new("http-sink"));
    let sent = ids(5, "http");
    post(&server, &sent);
    let seen = test_server.wait(WAIT, |seen| seen.iter().map(|r| r.events().len()).sum::<usize>() >= 5);
    let mut received = Vec::new();
    for request in &seen {
        assert_eq!(request.line, "POST /hook HTTP/1.1");
        assert_eq!(request.header("content-type"), Some("application/json"));
        let ids = request.ids();
        assert!((1..=2).contains(&ids.len()), "{ids:?}");
        assert_eq!(request.header("idempotency-key"), Some(expected_key(&ids).as_str()));
        assert_eq!(request.header("webhook-id"), request.header("idempotency-key"));
        assert_signed(request);
        // Each event exactly as sent (the journaled bytes).
        for (event, id) in request.events().iter().zip(&ids) {
            assert_eq!(event, &serde_json::from_str::<Value>(&support::server::event(id)).unwrap());
        }
        received.extend(ids);
    }
    // One worker, one batch of five accepted at once: in order, in batches of two.
    assert_eq!(received, sent);
    assert!(seen.iter().any(|r| r.events().len() == 2), "batched: {seen:?}");
    server.settle();
    assert_eq!(metric(&server, &test_server.url(), "delivered_total"), 5.0);
    assert!(server.lines("dead-letter.jsonl").is_empty());
}

#[test]
fn a_500_then_200_is_retried_with_the_same_idempotency_key_and_events() {
    let test_server = TestServer::start(|n, _| Act::Status(if n == 0 { 500 } else { 200 }));
    let server = receiver(&test_server.url(), &["--workers", "1"], TempDir::new("http-retry"));
    let sent = ids(3, "retry");
    post(&server, &sent);
    let seen = test_server.wait(WAIT, |seen| seen.len() >= 2);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].body, seen[1].body);
    assert_eq!(seen[0].ids(), sent);
    let key = expected_key(&sent);
    for request in &seen {
        assert_eq!(request.header("idempotency-key"), Some(key.as_str()));
        assert_eq!(request.header("webhook-id"), Some(key.as_str()));
        assert_signed(request);
    }
    server.settle();
    let sink = test_server.url();
    assert_eq!(metric(&server, &sink, "delivered_total"), 3.0);
    assert_eq!(metric(&server, &sink, "retried_total"), 3.0, "one failed attempt of three events");
    assert!(server.lines("dead-letter.jsonl").is_empty());
    thread::sleep(Duration::from_millis(300));
    assert_eq!(test_server.seen().len(), 2, "nothing sent after the 200");
}

#[test]
fn a_hang_past_the_timeout_and_a_closed_connection_are_retried() {
    let test_server = TestServer::start(|n, _| match n {
        0 => Act::Hang(Duration::from_secs(5)),
        1 => Act::Close,
        _ => Act::Status(204),
    });
    let server =
        receiver(&test_server.url(), &["--http-timeout", "1", "--workers", "1"], TempDir::new("http-hang"));
    let sent = ids(2, "hang");
    let started = Instant::now();
    post(&server, &sent);
    let seen = test_server.wait(WAIT, |seen| seen.len() >= 3);
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen.iter().all(|r| r.ids() == sent));
    server.settle();
    // The hang was cut at the 1 s timeout, not waited out.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    assert_eq!(metric(&server, &test_server.url(), "delivered_total"), 2.0);
    assert!(server.lines("dead-letter.jsonl").is_empty());
}

#[test]
fn always_500_dead_letters_each_event_of_the_batch_with_the_reason() {
    let test_server = TestServer::start(|_, _| Act::Status(500));
    let url = format!("http://user:s3cr3t@{}/hook?token=s3cr3t", test_server.addr);
    let server = receiver(&url, &["--delivery-attempts", "2", "--workers", "1"], TempDir::new("http-dead"));
    let sent = ids(3, "dead");
    post(&server, &sent);
    server.settle();
    let seen = test_server.seen();
    assert_eq!(seen.len(), 2, "two attempts of one batch: {seen:?}");
    // The URL's user info is sent as Basic authorization, the query as given.
    assert_eq!(seen[0].line, "POST /hook?token=s3cr3t HTTP/1.1");
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Basic {}", BASE64.encode("user:s3cr3t")).as_str())
    );
    let dead: Vec<Value> =
        server.lines("dead-letter.jsonl").iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(dead.len(), 3, "{dead:?}");
    let sink = test_server.url();
    for (line, id) in dead.iter().zip(&sent) {
        assert_eq!(line["sink"], json!(sink), "named without user info or query");
        assert_eq!(line["reason"], json!(format!("{sink} answered 500: nope")));
        assert_eq!(line["attempts"], json!(2));
        assert_eq!(line["event"]["eventId"], json!(id));
    }
    assert_eq!(metric(&server, &sink, "dead_lettered_total"), 3.0);
    let logs = server.stderr_text();
    let shown: Vec<&str> = logs.lines().filter(|l| l.contains("s3cr3t")).collect();
    assert!(shown.is_empty(), "the log shows the URL's user info or query: {shown:?}");
}

#[test]
fn bad_specs_and_secrets_are_refused_at_start_without_showing_secrets() {
    let temp = TempDir::new("http-refused");
    let secret = temp.path().join("secret");
    std::fs::write(&secret, "not-a-whsec-s3cr3t\n").unwrap();
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(temp.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("EGNYTE_RECEIVER_SINK")
            .output()
            .unwrap();
        assert!(!output.status.success(), "{args:?} started");
        String::from_utf8_lossy(&output.stderr).into_owned()
    };
    let stderr = run(&["--sink", "https://user:s3cr3t@/hook"]);
    assert!(stderr.contains("not a valid URL") && !stderr.contains("s3cr3t"), "{stderr}");
    let stderr =
        run(&["--sink", "http://127.0.0.1:1/x", "--http-sign-secret-file", secret.to_str().unwrap()]);
    assert!(stderr.contains("--http-sign-secret-file") && !stderr.contains("s3cr3t"), "{stderr}");
    let stderr = run(&["--sink", "http://127.0.0.1:1/x", "--http-batch", "1001"]);
    assert!(stderr.contains("--http-batch"), "{stderr}");
}

/// A TLS server (rustls) on loopback that answers every request 200 and records it.
fn tls_server(pki: &egnyte_receiver::test_dir::Pki, seen: Arc<Mutex<Vec<Seen>>>) -> SocketAddr {
    let config = pki.server_config();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let (config, seen) = (Arc::clone(&config), Arc::clone(&seen));
            thread::spawn(move || {
                let Ok(mut connection) = rustls::ServerConnection::new(config) else { return };
                let mut tls = rustls::Stream::new(&mut connection, &mut stream);
                loop {
                    let request = {
                        let mut reader = BufReader::new(&mut tls);
                        let Some(request) = read_request(&mut reader) else { return };
                        request
                    };
                    seen.lock().unwrap().push(request);
                    if tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n").is_err() {
                        return;
                    }
                    let _ = tls.flush();
                }
            });
        }
    });
    addr
}

#[test]
fn https_is_verified_against_the_ca_ssl_cert_file_names() {
    let temp = TempDir::new("http-tls");
    let pki = temp.path().join("pki");
    std::fs::create_dir(&pki).unwrap();
    let made = egnyte_receiver::test_dir::Pki::new(&pki);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let addr = tls_server(&made, Arc::clone(&seen));
    let url = format!("https://localhost:{}/hook", addr.port());
    // Without the CA: refused (an unknown issuer), retried, dead-lettered; nothing reached the server.
    let untrusting = receiver(&url, &["--delivery-attempts", "1"], TempDir::new("http-tls-untrusted"));
    post(&untrusting, &ids(1, "untrusted"));
    untrusting.settle();
    let dead = untrusting.lines("dead-letter.jsonl");
    assert_eq!(dead.len(), 1);
    let reason = serde_json::from_str::<Value>(&dead[0]).unwrap()["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("TLS failed") && reason.contains("UnknownIssuer"), "{reason}");
    assert!(seen.lock().unwrap().is_empty());
    drop(untrusting);
    // With SSL_CERT_FILE naming the CA: delivered.
    let ca = pki.join("ca.pem");
    let secret = temp.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let server = no_proxies(Server::builder())
        .args(["--sink", &url, "--http-sign-secret-file", secret.to_str().unwrap()])
        .env("SSL_CERT_FILE", ca.as_os_str())
        .temp_dir(temp)
        .start();
    let mut sent = ids(2, "tls");
    post(&server, &sent);
    sent.sort();
    server.settle();
    let seen = seen.lock().unwrap().clone();
    // Two paths, so maybe two workers: compared as sets.
    let mut received: Vec<String> = seen.iter().flat_map(Seen::ids).collect();
    received.sort();
    assert_eq!(received, sent);
    assert_signed(&seen[0]);
}

#[test]
fn a_sigkill_mid_delivery_loses_no_acknowledged_event() {
    // A slow sink (each answer 30 ms late) so that deliveries are in flight at the kill.
    let test_server = TestServer::start(|_, _| {
        thread::sleep(Duration::from_millis(30));
        Act::Status(200)
    });
    let url = test_server.url();
    let args = ["--http-batch", "5"];
    let server = receiver(&url, &args, TempDir::new("http-crash"));
    let mut acknowledged: Vec<String> = Vec::new();
    let mut client = server.connect();
    for _ in 0..40 {
        let batch_ids = ids(5, "crash");
        let refs: Vec<&str> = batch_ids.iter().map(String::as_str).collect();
        client.send(&post_request(PATH, batch(&refs).as_bytes(), &[])).unwrap();
        if client.try_read_response().is_ok_and(|r| r.status == 200) {
            acknowledged.extend(batch_ids);
        }
    }
    // Kill once some, not all, were delivered.
    test_server.wait(WAIT, |seen| !seen.is_empty());
    let before = test_server.seen().iter().map(|r| r.events().len()).sum::<usize>();
    let temp = server.kill_keeping_data();
    assert!(before < acknowledged.len(), "everything was delivered before the kill: make the sink slower");
    let secret = temp.path().join("secret");
    let restarted = no_proxies(Server::builder())
        .args(["--sink", &url, "--http-sign-secret-file", secret.to_str().unwrap()])
        .args(args)
        .temp_dir(temp)
        .start();
    let wanted: HashSet<&String> = acknowledged.iter().collect();
    let received = |seen: &[Seen]| -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for id in seen.iter().flat_map(Seen::ids) {
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    };
    let seen = test_server.wait(Duration::from_secs(60), |seen| {
        let counts = received(seen);
        wanted.iter().all(|id| counts.contains_key(*id))
    });
    let counts = received(&seen);
    let missing: Vec<&&String> = wanted.iter().filter(|id| !counts.contains_key(**id)).collect();
    assert!(missing.is_empty(), "{} acknowledged events never delivered: {missing:?}", missing.len());
    let repeated = counts.values().filter(|&&n| n > 1).count();
    eprintln!(
        "{} acknowledged, {before} delivered before the kill, {repeated} delivered again after it",
        acknowledged.len()
    );
    restarted.settle();
    assert!(restarted.lines("dead-letter.jsonl").is_empty());
}

/// The `http:` sink's delivery rate to a loopback server next to the `jsonl` sink's, in the same
/// run: N events are journaled first (by a receiver with another sink), then a receiver with both
/// sinks, new to the checkpoint, delivers the whole journal to each (`--sink-start oldest`), and
/// each rate is N over the time until that sink's `delivered_total` reaches N. Run with
/// `cargo test --release --test http_sink -- --ignored --nocapture delivery_rate`.
#[test]
#[ignore = "a measurement: run it by hand"]
fn delivery_rate_http_vs_jsonl() {
    const EVENTS: usize = 50_000;
    const PER_POST: usize = 100;
    let test_server = TestServer::start(|_, _| Act::Status(200));
    let first = no_proxies(Server::builder()).start();
    let mut client = first.connect();
    for _ in 0..EVENTS / PER_POST {
        let batch_ids = ids(PER_POST, "rate");
        let refs: Vec<&str> = batch_ids.iter().map(String::as_str).collect();
        client.send(&post_request(PATH, batch(&refs).as_bytes(), &[])).unwrap();
        assert_eq!(client.try_read_response().unwrap().status, 200);
    }
    first.settle();
    let temp = first.kill_keeping_data();
    let jsonl = format!("jsonl:{}", temp.path().join("rate.jsonl").display());
    let url = test_server.url();
    let jsonl_name =
        format!("jsonl:{}", std::fs::canonicalize(temp.path()).unwrap().join("rate.jsonl").display());
    let started = Instant::now();
    let server =
        no_proxies(Server::builder()).args(["--sink", &jsonl, "--sink", &url]).temp_dir(temp).start();
    let (mut jsonl_done, mut http_done) = (None, None);
    while (jsonl_done.is_none() || http_done.is_none()) && started.elapsed() < Duration::from_secs(300) {
        let metrics = server.metrics();
        let delivered =
            |sink: &str| metrics.get(&format!("egnyte_receiver_sink_delivered_total{{sink=\"{sink}\"}}"));
        if jsonl_done.is_none() && delivered(&jsonl_name) >= EVENTS as f64 {
            jsonl_done = Some(started.elapsed());
        }
        if http_done.is_none() && delivered(&url) >= EVENTS as f64 {
            http_done = Some(started.elapsed());
        }
        thread::sleep(Duration::from_millis(5));
    }
    let rate = |done: Option<Duration>| EVENTS as f64 / done.expect("delivered within 300 s").as_secs_f64();
    let requests = test_server.seen().len();
    eprintln!(
        "{EVENTS} events (receiver start included): jsonl {:.0} events/s, http {:.0} events/s in {requests} POSTs \
         ({:.1} events a POST)",
        rate(jsonl_done),
        rate(http_done),
        EVENTS as f64 / requests as f64
    );
}
