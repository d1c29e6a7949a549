//! A fake of Egnyte's webhook management API on loopback (plain HTTP), for `webhook` and
//! `serve --webhook-id`.
//!
//! It speaks the paths and bodies the receiver uses (`/pubapi/v1/webhooks`, `…/{id}`,
//! `…/{id}/status`, `…/{id}/details`), checks `Authorization: Bearer TOKEN`, keeps webhooks in
//! memory, and answers with Egnyte's error shapes: 404 `{"errorMessage"}`, 400 `{"inputErrors"}`,
//! 409 `{"code":"QUOTA_EXCEEDED","message"}`, 401 `{"message"}`, 403 Developer Inactive without a
//! token. [`FakeEgnyte::then`] queues canned answers (rate limits: [`over_qps`], [`over_rate`],
//! [`too_many`]) that the next requests get instead. Every request is recorded with its time.
//! One thread accepts, one per connection answers (`Connection: close`); dropping the fake stops
//! it. Every read is bounded by a timeout.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

/// Most webhooks one API key may register in the fake (then 409).
pub(crate) const QUOTA: usize = 3;

/// The event types and families the fake accepts at registration.
const EVENT_TYPES: [&str; 8] = [
    "fs:*",
    "link:*",
    "meta:*",
    "comment:*",
    "permission:*",
    "fs:add_file",
    "fs:delete_file",
    "fs:move_file",
];

/// A webhook as the fake keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    pub id: String,
    pub url: String,
    pub event_types: Vec<String>,
    pub path: Option<String>,
    pub auth_header: Option<String>,
    pub status: String,
    pub expires: u64,
}

impl Hook {
    /// An enabled webhook expiring in a year.
    pub(crate) fn new(id: &str) -> Hook {
        Hook {
            id: id.into(),
            url: "https://hooks.example.com/egnyte/webhook".into(),
            event_types: vec!["fs:*".into()],
            path: None,
            auth_header: Some("Token receiver-secret-1".into()),
            status: "enabled".into(),
            expires: now() + 365 * 86_400,
        }
    }

    /// The same, with this status.
    pub(crate) fn status(mut self, status: &str) -> Hook {
        self.status = status.into();
        self
    }

    /// The same, expiring at this Unix time.
    pub(crate) fn expires(mut self, expires: u64) -> Hook {
        self.expires = expires;
        self
    }

    fn short(&self) -> Value {
        json!({"webhookId": self.id, "expires": self.expires, "status": self.status})
    }

    fn details(&self) -> Value {
        json!({
            "webhookId": self.id, "expires": self.expires, "status": self.status, "url": self.url,
            "eventType": self.event_types, "path": self.path.clone().unwrap_or_default(),
            "authHeader": self.auth_header.clone().unwrap_or_default(),
        })
    }
}

/// An answer given as is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

/// Egnyte's per-second throttle: 403, `ERR_403_DEVELOPER_OVER_QPS`, `Retry-After`, an HTML body.
pub(crate) fn over_qps(retry_after: u64) -> Canned {
    Canned {
        status: 403,
        headers: vec![
            ("X-Mashery-Error-Code".into(), "ERR_403_DEVELOPER_OVER_QPS".into()),
            ("Retry-After".into(), retry_after.to_string()),
            ("Content-Type".into(), "text/xml".into()),
        ],
        body: "<h1>Developer Over Qps</h1>".into(),
    }
}

/// Egnyte's daily quota: 403, `ERR_403_DEVELOPER_OVER_RATE`, `Retry-After`.
pub(crate) fn over_rate(retry_after: u64) -> Canned {
    Canned {
        status: 403,
        headers: vec![
            ("X-Mashery-Error-Code".into(), "ERR_403_DEVELOPER_OVER_RATE".into()),
            ("Retry-After".into(), retry_after.to_string()),
        ],
        body: "<h1>Developer Over Rate</h1>".into(),
    }
}

/// The throttle as some clients see it: 429 with `Retry-After`.
pub(crate) fn too_many(retry_after: u64) -> Canned {
    Canned {
        status: 429,
        headers: vec![("Retry-After".into(), retry_after.to_string())],
        body: String::new(),
    }
}

/// A 503 from the gateway, HTML.
pub(crate) fn unavailable() -> Canned {
    Canned {
        status: 503,
        headers: vec![],
        body: "<html><body><h1>503 Service Unavailable</h1></body></html>".into(),
    }
}

/// One request the fake received.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub at: Instant,
}

impl Recorded {
    /// The first value of a header (any case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub(crate) fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON: {e}: {:?}", self.body))
    }

    /// `METHOD PATH`.
    pub(crate) fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

#[derive(Debug, Default)]
struct State {
    token: String,
    hooks: Vec<Hook>,
    script: VecDeque<Canned>,
    requests: Vec<Recorded>,
    next_id: u32,
}

/// The running fake.
#[derive(Debug)]
pub(crate) struct FakeEgnyte {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Now, Unix seconds.
pub(crate) fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

impl FakeEgnyte {
    /// Starts the fake on a free loopback port; calls must carry `Bearer token`.
    pub(crate) fn start(token: &str) -> FakeEgnyte {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State { token: token.into(), ..State::default() }));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_state, thread_stop) = (Arc::clone(&state), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if thread_stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let state = Arc::clone(&thread_state);
                std::thread::spawn(move || serve(stream, &state));
            }
        });
        FakeEgnyte { addr, state, stop, thread: Some(thread) }
    }

    /// `http://127.0.0.1:PORT`, for `--api-url`.
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a webhook.
    pub(crate) fn add(&self, hook: Hook) {
        self.state().hooks.push(hook);
    }

    /// The webhook with this id, as it is now.
    pub(crate) fn hook(&self, id: &str) -> Option<Hook> {
        self.state().hooks.iter().find(|h| h.id == id).cloned()
    }

    /// The next request, whatever it is, gets `canned` (queued after earlier ones).
    pub(crate) fn then(&self, canned: Canned) {
        self.state().script.push_back(canned);
    }

    /// Every request so far.
    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Waits (bounded) until at least `n` requests arrived; returns them all.
    pub(crate) fn wait_requests(&self, n: usize, within: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + within;
        loop {
            let requests = self.requests();
            if requests.len() >= n || Instant::now() >= deadline {
                return requests;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for FakeEgnyte {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one request from `stream`, records it, answers it and closes.
fn serve(stream: TcpStream, state: &Mutex<State>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    let mut reader = BufReader::new(match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    });
    let Some(request) = read_request(&mut reader) else { return };
    let answer = {
        let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
        state.requests.push(request.clone());
        match state.script.pop_front() {
            Some(canned) => canned,
            None => answer(&mut state, &request),
        }
    };
    let mut out = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    let mut typed = false;
    for (name, value) in &answer.headers {
        typed |= name.eq_ignore_ascii_case("content-type");
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    if !typed && !answer.body.is_empty() {
        out.push_str("Content-Type: application/json\r\n");
    }
    if answer.status != 204 {
        out.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
    }
    out.push_str("Connection: close\r\n\r\n");
    if answer.status != 204 {
        out.push_str(&answer.body);
    }
    let mut stream = stream;
    let _ = stream.write_all(out.as_bytes());
    let _ = stream.flush();
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        503 => "Service Unavailable",
        _ => "Other",
    }
}

/// Request line, headers, and a `Content-Length` or chunked body.
fn read_request(reader: &mut impl BufRead) -> Option<Recorded> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
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
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let find =
        |name: &str| headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if let Some(length) = find("content-length") {
        body.resize(length.parse().ok()?, 0);
        reader.read_exact(&mut body).ok()?;
    } else if find("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    }
    let body = String::from_utf8_lossy(&body).into_owned();
    Some(Recorded { method, path, headers, body, at: Instant::now() })
}

fn json_answer(status: u16, body: Value) -> Canned {
    Canned { status, headers: vec![], body: body.to_string() }
}

/// What the API answers when nothing is queued.
fn answer(state: &mut State, request: &Recorded) -> Canned {
    match request.header("authorization") {
        None => {
            return Canned {
                status: 403,
                headers: vec![("X-Mashery-Error-Code".into(), "ERR_403_DEVELOPER_INACTIVE".into())],
                body: "<h1>Developer Inactive</h1>".into(),
            }
        }
        Some(value) if value != format!("Bearer {}", state.token) => {
            return json_answer(401, json!({"message": "Invalid access token"}))
        }
        Some(_) => {}
    }
    let path = request.path.split('?').next().unwrap_or_default();
    let Some(rest) = path.strip_prefix("/pubapi/v1/webhooks") else {
        return json_answer(404, json!({"message": "Not found"}));
    };
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let not_found = |id: &str| json_answer(404, json!({"errorMessage": format!("Webhook {id} not found")}));
    match (request.method.as_str(), segments.as_slice()) {
        ("POST", []) => register(state, request),
        ("GET", []) => json_answer(200, Value::Array(state.hooks.iter().map(Hook::short).collect())),
        ("GET", [id, "details"]) => match state.hooks.iter().find(|h| h.id == *id) {
            Some(hook) => json_answer(200, hook.details()),
            None => not_found(id),
        },
        ("GET", [id, "status"]) => match state.hooks.iter().find(|h| h.id == *id) {
            Some(hook) => json_answer(200, hook.short()),
            None => not_found(id),
        },
        ("POST", [id, "status"]) => {
            let wanted = serde_json::from_str::<Value>(&request.body)
                .ok()
                .and_then(|v| v["status"].as_str().map(str::to_owned));
            let Some(wanted) = wanted.filter(|w| w == "enabled" || w == "disabled") else {
                return json_answer(400, json!({"message": "status must be enabled or disabled"}));
            };
            match state.hooks.iter_mut().find(|h| h.id == *id) {
                Some(hook) => {
                    hook.status = wanted;
                    json_answer(200, hook.short())
                }
                None => not_found(id),
            }
        }
        ("DELETE", [id]) => match state.hooks.iter().position(|h| h.id == *id) {
            Some(at) => {
                state.hooks.remove(at);
                Canned { status: 204, headers: vec![], body: String::new() }
            }
            None => not_found(id),
        },
        _ => json_answer(405, json!({"message": "Method not allowed"})),
    }
}

/// `POST /pubapi/v1/webhooks`.
fn register(state: &mut State, request: &Recorded) -> Canned {
    let Ok(body) = serde_json::from_str::<Value>(&request.body) else {
        return json_answer(400, json!({"message": "Malformed JSON"}));
    };
    let Some(url) = body["url"].as_str() else {
        return json_answer(
            400,
            json!({"inputErrors": {"url": [{"code": "REQUIRED", "msg": "url is required"}]}}),
        );
    };
    let types: Vec<String> = body["eventType"]
        .as_array()
        .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
        .unwrap_or_default();
    if let Some(bad) = types.iter().find(|t| !EVENT_TYPES.contains(&t.as_str())) {
        return json_answer(
            400,
            json!({"inputErrors": {"eventType": [{"code": "INVALID_VALUE", "msg": format!("Unknown event type: {bad}")}]}}),
        );
    }
    if types.is_empty() {
        return json_answer(
            400,
            json!({"inputErrors": {"eventType": [{"code": "REQUIRED", "msg": "eventType is required"}]}}),
        );
    }
    if state.hooks.len() >= QUOTA {
        return json_answer(409, json!({"code": "QUOTA_EXCEEDED", "message": "Webhook quota exceeded"}));
    }
    state.next_id += 1;
    let hook = Hook {
        id: format!("5da697d9-f34e-45ce-a68f-{:012}", state.next_id),
        url: url.into(),
        event_types: types,
        path: body["path"].as_str().map(str::to_owned),
        auth_header: body["authHeader"].as_str().map(str::to_owned),
        status: "enabled".into(),
        expires: 2_100_000_000,
    };
    let answer = json_answer(201, hook.short());
    state.hooks.push(hook);
    answer
}
