//! Arbitrary request heads and gate configurations into `serve::gate::decide`.
//!
//! The gate decides, from a head the HTTP layer has already parsed and framed, whether the
//! receiver reads the body (`Ingest`), answers a page (`Read`) or refuses. Each input is built
//! into the bytes of a head, parsed with `http::head::parse` as the connection loop would (heads
//! it refuses are skipped: they never reach the gate), and decided. The target holds the gate to
//! the properties the service relies on, each checked against an independent, deliberately naive
//! reading of the head as the input built it (no gate internals, no `Head` accessors):
//!
//! 1. `decide` never panics, for any method, target, header names and bytes, and token.
//! 2. `Verdict::Ingest` ⇒ method exactly `POST`; the target before `?` is the webhook path;
//!    with a token, no accepted header name appears twice and one carries exactly the token.
//! 3. `Verdict::Read { page, head }` ⇒ `GET` (`head` false) or `HEAD` (`head` true); the target
//!    before `?` is `/healthz` or `/metrics` (matching `page`, and not the webhook path, which
//!    wins); no body: no `Transfer-Encoding` and every `Content-Length` zero, as `has_body()` says.
//! 4. Refusals are the right ones: `NotFound` exactly when the target before `?` is none of the
//!    three routes; `MethodNotAllowed { webhook: true }` for anything but `POST` on the webhook
//!    path; `MethodNotAllowed { webhook: false }` on a page for another method or with a body;
//!    `Unauthorized` exactly for a `POST` to the webhook path that fails the token rule of 2.
//!    With 2 and 3 this makes the verdict equal to the naive one in every case.
//! 5. `decide` is deterministic: the same head parsed again from a copy of its bytes, with a copy
//!    of the configuration, gets the same verdict.
//!
//! Input layout (stable, so that the corpus and `http_gate.dict` stay meaningful):
//! * byte 0, flags: bits 0-1 token (0 none, 1 and 3 the default `Authorization`/`Authentication`,
//!   2 a custom header), bits 2-3 version and `Host` (HTTP/1.1 with `Host`, HTTP/1.0 without,
//!   HTTP/1.1 with, HTTP/1.0 with), bits 4-5 the custom header name, bits 6-7 the webhook path;
//! * byte 1: `max_body` for the parser, from a table of 16 (low nibble);
//! * the rest, split at `\n`: the method line, the target line, the token line, then up to 24
//!   header lines. The method and target lines are one selector byte (a prefix from a table, one
//!   of them empty) followed by raw bytes appended to it. The token line is the token's raw
//!   bytes. A header line is one selector byte (low 5 bits: a name from a table heavy in the
//!   framing and auth headers, or for the last slots a raw `name:value` line; high 3 bits: the
//!   name's case) followed by the raw value. A value starting with `$T` has the token substituted
//!   for those two bytes, so that matching and near-matching tokens are reachable.

#![no_main]

use egnyte_receiver::http::head::{self, Limits, Scratch};
use egnyte_receiver::serve::gate::{decide, GateConfig, Page, Reject, Verdict};
use egnyte_receiver::serve::Token;
use libfuzzer_sys::fuzz_target;

const MAX_HEADERS: usize = 24;

const WEBHOOK_PATHS: [&str; 4] = ["/egnyte/webhook", "/egnyte/webhook", "/", "/healthz"];

const CUSTOM_AUTH: [&str; 4] = ["X-Egnyte-Auth", "Authorization", "x-token", "Authentication"];

/// Minor version, and whether a `Host` line is added.
const VERSIONS: [(u8, bool); 4] = [(1, true), (0, false), (1, true), (0, true)];

const MAX_BODY: [u64; 16] = [
    0,
    1,
    2,
    3,
    5,
    9,
    10,
    100,
    1000,
    65_535,
    1 << 20,
    16 << 20,
    u32::MAX as u64,
    1 << 40,
    u64::MAX - 1,
    u64::MAX,
];

const METHODS: [&str; 16] = [
    "POST", "GET", "HEAD", "PUT", "DELETE", "OPTIONS", "post", "Post", "PATCH", "", "CONNECT", "POS", "GE",
    "HEADER", "GET", "POST",
];

/// Target prefixes; `None` stands for the configured webhook path.
const PATHS: [Option<&str>; 16] = [
    None,
    Some("/healthz"),
    Some("/metrics"),
    Some(""),
    Some("/egnyte/webhook"),
    Some("/"),
    Some("*"),
    Some("/healthz?"),
    None,
    Some("/HEALTHZ"),
    Some("http://x/healthz"),
    Some("/metrics/"),
    Some("/egnyte/webhook?"),
    Some("/metrics?x=1"),
    None,
    Some("/egnyte/webhook/"),
];

/// Header names; selector slots at and past the end of the table read a raw `name:value` line.
const NAMES: [&str; 24] = [
    "Content-Length",
    "Content-Length",
    "content-length",
    "Transfer-Encoding",
    "transfer-encoding",
    "Authorization",
    "Authentication",
    "Connection",
    "Expect",
    "X-Egnyte-Auth",
    "X-Token",
    "Host",
    "Content-Type",
    "Upgrade",
    "authorization",
    "AUTHENTICATION",
    "x-egnyte-auth",
    "Authorization",
    "Authentication",
    "Connection",
    "Content-Lengt",
    "Authorizatio",
    "TE",
    "X-Egnyte-Auth",
];

/// One decoded input: the configuration and the parts of the head, as written on the wire.
struct Case {
    config: GateConfig,
    token: Option<Vec<u8>>,
    custom: Option<&'static str>,
    method: Vec<u8>,
    target: Vec<u8>,
    version: u8,
    /// Every header line, the added `Host` included: name and value as the naive reader sees
    /// them (value without surrounding spaces and tabs).
    headers: Vec<(Vec<u8>, Vec<u8>)>,
    /// The head's bytes.
    bytes: Vec<u8>,
}

fuzz_target!(|data: &[u8]| {
    let (case, limits) = decode(data);
    let buf = case.bytes.as_slice();
    // The head must end where the input built it to end, with nothing skipped before it.
    if head::leading_empty_lines(buf) != 0 || head::find_end(buf, 0) != Some(buf.len()) {
        return;
    }
    let mut fields = Vec::new();
    let Ok(parsed) = head::parse(buf, buf.len(), &limits, &mut Scratch::default(), &mut fields) else {
        return;
    };
    let view = parsed.view(buf, &fields);
    let verdict = decide(&view, &case.config);

    // 5. Determinism, on copies that share no memory with the first call's arguments.
    let copy = case.bytes.clone();
    let mut copy_fields = Vec::new();
    let again = head::parse(&copy, copy.len(), &limits, &mut Scratch::default(), &mut copy_fields)
        .map(|p| decide(&p.view(&copy, &copy_fields), &case.config.clone()));
    if again != Ok(verdict) {
        fail(&case, verdict, &format!("not deterministic: a second parse and call gave {again:?}"));
    }

    let body = naive_has_body(&case);
    if view.has_body() != body {
        fail(&case, verdict, &format!("has_body() is {}, the naive reading says {body}", view.has_body()));
    }
    if let Err(message) = check(&case, verdict, body) {
        fail(&case, verdict, &message);
    }
});

fn decode(data: &[u8]) -> (Case, Limits) {
    let flags = data.first().copied().unwrap_or(0);
    let max_body = MAX_BODY[usize::from(data.get(1).copied().unwrap_or(0) & 15)];
    let rest = data.get(2..).unwrap_or(&[]);
    let mut lines = rest.split(|&b| b == b'\n');

    let webhook = WEBHOOK_PATHS[usize::from(flags >> 6)];
    let custom = CUSTOM_AUTH[usize::from((flags >> 4) & 3)];
    let (version, host) = VERSIONS[usize::from((flags >> 2) & 3)];

    let method_line = lines.next().unwrap_or(&[]);
    let target_line = lines.next().unwrap_or(&[]);
    let token_line = lines.next().unwrap_or(&[]);

    let method = prefixed(METHODS[selector(method_line) % METHODS.len()], method_line);
    let target = prefixed(PATHS[selector(target_line) % PATHS.len()].unwrap_or(webhook), target_line);

    let (token, custom) = match flags & 3 {
        0 => (None, None),
        2 => (Some(token_line.to_vec()), Some(custom)),
        _ => (Some(token_line.to_vec()), None),
    };

    let mut bytes = Vec::new();
    bytes.extend_from_slice(&method);
    bytes.push(b' ');
    bytes.extend_from_slice(&target);
    bytes.extend_from_slice(if version == 1 { b" HTTP/1.1\r\n" } else { b" HTTP/1.0\r\n" });
    let mut headers = Vec::new();
    if host {
        bytes.extend_from_slice(b"Host: receiver.example\r\n");
        headers.push((b"Host".to_vec(), b"receiver.example".to_vec()));
    }
    for line in lines.take(MAX_HEADERS) {
        let Some((&select, value)) = line.split_first() else {
            continue;
        };
        let value = match (value.strip_prefix(b"$T"), &token) {
            (Some(tail), Some(token)) => [token.as_slice(), tail].concat(),
            _ => value.to_vec(),
        };
        let (name, value) = match NAMES.get(usize::from(select & 31)) {
            Some(name) => {
                let name = change_case(name, select >> 5, value.len());
                bytes.extend_from_slice(&name);
                bytes.extend_from_slice(b": ");
                bytes.extend_from_slice(&value);
                (name, value)
            }
            None => {
                bytes.extend_from_slice(&value);
                match value.iter().position(|&b| b == b':') {
                    Some(colon) => (value[..colon].to_vec(), value[colon + 1..].to_vec()),
                    None => (value, Vec::new()),
                }
            }
        };
        bytes.extend_from_slice(b"\r\n");
        headers.push((name, trim(&value).to_vec()));
    }
    bytes.extend_from_slice(b"\r\n");

    let config = GateConfig {
        path: webhook.to_string(),
        token: token.clone().map(|t| Token::new(t, custom.map(str::to_string))),
    };
    let limits = Limits { max_headers: MAX_HEADERS + 1, max_body, ..Limits::default() };
    (Case { config, token, custom, method, target, version, headers, bytes }, limits)
}

fn selector(line: &[u8]) -> usize {
    usize::from(line.first().copied().unwrap_or(0))
}

fn prefixed(prefix: &str, line: &[u8]) -> Vec<u8> {
    [prefix.as_bytes(), line.get(1..).unwrap_or(&[])].concat()
}

fn change_case(name: &str, mode: u8, seed: usize) -> Vec<u8> {
    name.bytes()
        .enumerate()
        .map(|(i, c)| {
            let upper = match mode {
                4 => false,
                5 => true,
                6 => i % 2 == 0,
                7 => (seed >> (i % 16)) & 1 == 1,
                _ => return c,
            };
            if upper {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

// --- the independent model -------------------------------------------------------------------

/// Values of every header whose name is `name`, ASCII case-insensitively, in order.
fn values<'c>(case: &'c Case, name: &str) -> Vec<&'c [u8]> {
    case.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
        .collect()
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(value.len());
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &value[start..end]
}

/// The target without its query string.
fn route(target: &[u8]) -> &[u8] {
    target.split(|&b| b == b'?').next().unwrap_or_default()
}

/// A body follows: a `Transfer-Encoding`, or a `Content-Length` with a digit other than 0 (the
/// parser has accepted the head, so every `Content-Length` is digits and they agree).
fn naive_has_body(case: &Case) -> bool {
    !values(case, "transfer-encoding").is_empty()
        || values(case, "content-length").iter().any(|v| v.iter().any(|&d| d != b'0'))
}

/// The token rule: no accepted header name twice, and one of them carrying exactly the token.
fn naive_authorized(case: &Case, token: &[u8]) -> bool {
    let names: &[&str] = match case.custom {
        Some(custom) => &[custom],
        None => &["Authorization", "Authentication"],
    };
    let found: Vec<Vec<&[u8]>> = names.iter().map(|name| values(case, name)).collect();
    found.iter().all(|v| v.len() <= 1) && found.iter().flatten().any(|v| *v == token)
}

fn check(case: &Case, verdict: Verdict, body: bool) -> Result<(), String> {
    let path = route(&case.target);
    let webhook = path == case.config.path.as_bytes();
    let page = match path {
        _ if webhook => None,
        b"/healthz" => Some(Page::Health),
        b"/metrics" => Some(Page::Metrics),
        _ => None,
    };
    let method = case.method.as_slice();
    let authorized = case.token.as_deref().is_none_or(|token| naive_authorized(case, token));

    // 2 and 3, stated as implications so that a failure names the broken one.
    match verdict {
        Verdict::Ingest => {
            if method != b"POST" {
                return Err("Ingest for a method other than POST".into());
            }
            if !webhook {
                return Err("Ingest for a path other than the webhook path".into());
            }
            if !authorized {
                return Err("Ingest without the token exactly once in an accepted header".into());
            }
        }
        Verdict::Read { page: got, head } => {
            let wanted_head = match method {
                b"GET" => false,
                b"HEAD" => true,
                _ => return Err("Read for a method other than GET or HEAD".into()),
            };
            if head != wanted_head {
                return Err(format!("Read {{ head: {head} }} for this method"));
            }
            if page != Some(got) {
                return Err(format!("Read of {got:?} for a target routed to {page:?}"));
            }
            if body {
                return Err("Read of a request with a body".into());
            }
        }
        Verdict::Reject(_) => {}
    }

    // 4: the whole decision, the naive way.
    let expected = match (webhook, page) {
        (true, _) if method != b"POST" => Verdict::Reject(Reject::MethodNotAllowed { webhook: true }),
        (true, _) if !authorized => Verdict::Reject(Reject::Unauthorized),
        (true, _) => Verdict::Ingest,
        (false, Some(page)) if !body && matches!(method, b"GET" | b"HEAD") => {
            Verdict::Read { page, head: method == b"HEAD" }
        }
        (false, Some(_)) => Verdict::Reject(Reject::MethodNotAllowed { webhook: false }),
        (false, None) => Verdict::Reject(Reject::NotFound),
    };
    if verdict != expected {
        return Err(format!("the naive reading decides {expected:?}"));
    }
    Ok(())
}

// --- reporting -------------------------------------------------------------------------------

fn fail(case: &Case, verdict: Verdict, message: &str) -> ! {
    let token = match &case.token {
        None => "none".to_string(),
        Some(token) => {
            format!("\"{}\" in {:?}", token.escape_ascii(), case.custom.unwrap_or("default names"))
        }
    };
    panic!(
        "http_gate: {message}\n  verdict: {verdict:?}\n  config: path {:?}, token {token}\n  HTTP/1.{} head: \"{}\"",
        case.config.path,
        case.version,
        case.bytes.escape_ascii()
    );
}
