//! Arbitrary request heads and gate configurations into `serve::gate::decide`.
//!
//! The gate decides, from the head alone, whether the service may touch the body; may_minihttp's
//! `Request::body()` unwraps its own parse of the first `Content-Length` and panics on anything
//! but a `usize`. This target holds the gate to the properties the service relies on, each
//! checked here by an independent, deliberately naive re-implementation (no gate internals):
//!
//! 1. `decide` never panics, for any method, path, version and header bytes (non-UTF-8 too).
//! 2. `Verdict::Ingest { length, .. }` ⇒ method exactly `POST`; path before `?` is the webhook
//!    path; no `Transfer-Encoding`; every `Content-Length` is non-empty ASCII digits and all are
//!    equal as numbers; `length` is that number (0 without one) and `<= max_body`;
//!    may_minihttp's parse of the first `Content-Length` succeeds and equals `length` (so `body()`
//!    cannot panic); with a token, an accepted header carries exactly the token and no accepted
//!    header name appears twice; `expect_continue` only with an `Expect: 100-continue`.
//! 3. `Verdict::Reject(r)` with `r.framing_trusted()` (the service then calls `body()` to skip the
//!    buffered body) ⇒ no `Transfer-Encoding`, and may_minihttp's `content_length()` would not
//!    panic (no `Content-Length`, or the first one parses as `usize`).
//! 4. `Verdict::Read { page, head }` ⇒ `GET` or `HEAD` (matching `head`), path before `?` is
//!    `/healthz` or `/metrics` (matching `page`), no `Transfer-Encoding`, `Content-Length` absent
//!    or all digit strings of value 0.
//! 5. `keep_alive` ⇒ no `Connection` token equals `close` (any case), and HTTP/1.1 or a
//!    `keep-alive` token.
//! 6. `decide` is deterministic: a second call, on copies of the head and the configuration,
//!    gives the same `Decision`.
//!
//! Input layout (stable, so that the corpus and `http_gate.dict` stay meaningful):
//! * byte 0, flags: bits 0-1 token (0 none, 1 and 3 the default `Authorization`/`Authentication`,
//!   2 a custom header), bits 2-3 HTTP minor version (1, 0, 1, 2), bits 4-5 the custom header
//!   name, bits 6-7 the webhook path;
//! * byte 1: `max_body`, from a table of 16 (low nibble);
//! * the rest, split at `\n`: the method line, the path line, the token line, then up to 20
//!   header lines. The method and path lines are one selector byte (a prefix from a table, some
//!   of them odd, one empty) followed by raw bytes appended to it (lossy UTF-8). The token line is
//!   the token's raw bytes. A header line is one selector byte (low 5 bits: a name from a table
//!   heavy in the framing and auth headers, or for the last slots a raw `name:value` line; high 3
//!   bits: the name's case) followed by the raw value. A value starting with `$T` has the token
//!   substituted for those two bytes, so that matching and near-matching tokens are reachable.

#![no_main]

use egnyte_receiver::serve::gate::{decide, Decision, GateConfig, Head, Page, Verdict};
use egnyte_receiver::serve::Token;
use libfuzzer_sys::fuzz_target;

const MAX_HEADERS: usize = 20;

const WEBHOOK_PATHS: [&str; 4] = ["/egnyte/webhook", "/egnyte/webhook", "/", "/healthz"];

const CUSTOM_AUTH: [&str; 4] = ["X-Egnyte-Auth", "Authorization", "x-token", "Authentication"];

const VERSIONS: [u8; 4] = [1, 0, 1, 2];

const MAX_BODY: [usize; 16] = [
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
    u32::MAX as usize,
    (u32::MAX as usize) + 1,
    usize::MAX / 10,
    usize::MAX - 1,
    usize::MAX,
];

const METHODS: [&str; 16] = [
    "POST",
    "GET",
    "HEAD",
    "PUT",
    "DELETE",
    "OPTIONS",
    "post",
    "Post",
    "POST ",
    "",
    "CONNECT",
    "PATCH",
    "GET\0",
    "P\u{d3}ST",
    "HEAD ",
    "POST",
];

/// Path prefixes; `None` stands for the configured webhook path.
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
    "HTTP2-Settings",
    "Content-Length",
    "Transfer-Encoding",
    "Authorization",
    "Authentication",
    "Connection",
    "Content-Lengt",
    "Content-Length ",
    "TE",
    "",
];

/// One decoded input: the configuration and the owned parts of the head.
struct Case {
    config: GateConfig,
    token: Option<Vec<u8>>,
    custom: Option<&'static str>,
    method: String,
    path: String,
    version: u8,
    headers: Vec<(String, Vec<u8>)>,
}

fuzz_target!(|data: &[u8]| {
    let case = decode(data);
    let headers: Vec<(&str, &[u8])> = case.headers.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let head = Head { method: &case.method, path: &case.path, version: case.version, headers: &headers };
    let decision = decide(&head, &case.config);

    // 6. Determinism, on copies that share no memory with the first call's arguments.
    let config_copy = case.config.clone();
    let owned: Vec<(String, Vec<u8>)> = case.headers.clone();
    let copies: Vec<(&str, &[u8])> = owned.iter().map(|(n, v)| (n.as_str(), v.as_slice())).collect();
    let (method_copy, path_copy) = (case.method.clone(), case.path.clone());
    let head_copy = Head { method: &method_copy, path: &path_copy, version: case.version, headers: &copies };
    let again = decide(&head_copy, &config_copy);
    if again != decision {
        fail(&case, &decision, &format!("not deterministic: second call gave {again:?}"));
    }

    if let Err(message) = check(&case, &decision) {
        fail(&case, &decision, &message);
    }
});

fn decode(data: &[u8]) -> Case {
    let flags = data.first().copied().unwrap_or(0);
    let max_body = MAX_BODY[usize::from(data.get(1).copied().unwrap_or(0) & 15)];
    let rest = data.get(2..).unwrap_or(&[]);
    let mut lines = rest.split(|&b| b == b'\n');

    let webhook = WEBHOOK_PATHS[usize::from(flags >> 6)];
    let custom = CUSTOM_AUTH[usize::from((flags >> 4) & 3)];
    let version = VERSIONS[usize::from((flags >> 2) & 3)];

    let method_line = lines.next().unwrap_or(&[]);
    let path_line = lines.next().unwrap_or(&[]);
    let token_line = lines.next().unwrap_or(&[]);

    let method = prefixed(METHODS[selector(method_line) % METHODS.len()], method_line);
    let path = prefixed(PATHS[selector(path_line) % PATHS.len()].unwrap_or(webhook), path_line);

    let (token, custom) = match flags & 3 {
        0 => (None, None),
        2 => (Some(token_line.to_vec()), Some(custom)),
        _ => (Some(token_line.to_vec()), None),
    };

    let mut headers = Vec::new();
    for line in lines.take(MAX_HEADERS) {
        let Some((&select, value)) = line.split_first() else {
            continue;
        };
        let slot = usize::from(select & 31);
        let (name, value) = match NAMES.get(slot) {
            Some(name) => (change_case(name, select >> 5, value.len()), value),
            None => match value.iter().position(|&b| b == b':') {
                Some(colon) => (String::from_utf8_lossy(&value[..colon]).into_owned(), &value[colon + 1..]),
                None => (String::from_utf8_lossy(value).into_owned(), &[][..]),
            },
        };
        let value = match (value.strip_prefix(b"$T"), &token) {
            (Some(tail), Some(token)) => [token.as_slice(), tail].concat(),
            _ => value.to_vec(),
        };
        headers.push((name, value));
    }

    let config = GateConfig {
        path: webhook.to_string(),
        max_body,
        token: token.clone().map(|t| Token::new(t, custom.map(str::to_string))),
    };
    Case { config, token, custom, method, path, version, headers }
}

fn selector(line: &[u8]) -> usize {
    usize::from(line.first().copied().unwrap_or(0))
}

fn prefixed(prefix: &str, line: &[u8]) -> String {
    let tail = line.get(1..).unwrap_or(&[]);
    let mut text = prefix.to_string();
    text.push_str(&String::from_utf8_lossy(tail));
    text
}

fn change_case(name: &str, mode: u8, seed: usize) -> String {
    match mode {
        4 => name.to_ascii_lowercase(),
        5 => name.to_ascii_uppercase(),
        6 | 7 => name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                let upper = if mode == 6 { i % 2 == 0 } else { (seed >> (i % 16)) & 1 == 1 };
                if upper {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
        _ => name.to_string(),
    }
}

// --- the independent model -------------------------------------------------------------------

/// Values of every header whose name is `name`, ASCII case-insensitively, in order.
fn values<'c>(case: &'c Case, name: &str) -> Vec<&'c [u8]> {
    case.headers
        .iter()
        .filter(|(n, _)| {
            n.len() == name.len() && n.bytes().zip(name.bytes()).all(|(a, b)| lower(a) == lower(b))
        })
        .map(|(_, v)| v.as_slice())
        .collect()
}

fn lower(b: u8) -> u8 {
    if b.is_ascii_uppercase() {
        b + 32
    } else {
        b
    }
}

/// The path without its query string.
fn route(path: &str) -> &str {
    match path.find('?') {
        Some(q) => &path[..q],
        None => path,
    }
}

/// A non-empty all-ASCII-digit string, with its leading zeros removed ("0" for all zeros).
fn plain_number(value: &[u8]) -> Option<String> {
    if value.is_empty() || value.iter().any(|b| !(b'0'..=b'9').contains(b)) {
        return None;
    }
    let first = value.iter().position(|&b| b != b'0');
    Some(match first {
        Some(i) => String::from_utf8(value[i..].to_vec()).unwrap(),
        None => "0".to_string(),
    })
}

/// What may_minihttp 0.1.11's `Request::content_length()` does: the first header named
/// content-length, `from_utf8(value).unwrap().parse::<usize>().unwrap()`. `None` when there is no
/// such header (length 0), `Some(None)` where may_minihttp would panic.
fn minihttp_content_length(case: &Case) -> Option<Option<usize>> {
    let first = values(case, "content-length").into_iter().next()?;
    Some(std::str::from_utf8(first).ok().and_then(|text| text.parse::<usize>().ok()))
}

fn check(case: &Case, decision: &Decision) -> Result<(), String> {
    let te = values(case, "transfer-encoding");
    let lengths = values(case, "content-length");
    let minihttp = minihttp_content_length(case);

    match decision.verdict {
        Verdict::Ingest { length, expect_continue } => {
            if case.method != "POST" {
                return Err("Ingest for a method other than POST".into());
            }
            if route(&case.path) != case.config.path {
                return Err("Ingest for a path other than the webhook path".into());
            }
            if !te.is_empty() {
                return Err("Ingest with a Transfer-Encoding header".into());
            }
            let mut number: Option<String> = None;
            for value in &lengths {
                let Some(n) = plain_number(value) else {
                    return Err(format!("Ingest with Content-Length {}, not plain digits", show(value)));
                };
                if number.as_ref().is_some_and(|seen| *seen != n) {
                    return Err("Ingest with Content-Length headers that differ".into());
                }
                number = Some(n);
            }
            let expected = number.unwrap_or_else(|| "0".to_string());
            if length.to_string() != expected {
                return Err(format!("Ingest length {length}, but Content-Length says {expected}"));
            }
            if length > case.config.max_body {
                return Err(format!("Ingest length {length} above max_body {}", case.config.max_body));
            }
            match minihttp {
                None if length == 0 => {}
                None => return Err(format!("Ingest length {length} without a Content-Length")),
                Some(None) => return Err("Ingest, but may_minihttp's body() would panic".into()),
                Some(Some(n)) if n != length => {
                    return Err(format!("Ingest length {length}, but may_minihttp reads {n}"))
                }
                Some(Some(_)) => {}
            }
            if let Some(token) = &case.token {
                let names: &[&str] = match case.custom {
                    Some(custom) => &[custom],
                    None => &["Authorization", "Authentication"],
                };
                let mut carried = 0;
                for name in names {
                    let found = values(case, name);
                    if found.len() > 1 {
                        return Err(format!("Ingest with {} {name} headers", found.len()));
                    }
                    carried += found.iter().filter(|v| **v == token.as_slice()).count();
                }
                if carried == 0 {
                    return Err("Ingest, but no accepted header carries exactly the token".into());
                }
            }
            if expect_continue {
                let asked = values(case, "expect").iter().any(|v| {
                    std::str::from_utf8(v).is_ok_and(|s| s.trim().eq_ignore_ascii_case("100-continue"))
                });
                if !asked {
                    return Err("expect_continue without Expect: 100-continue".into());
                }
            }
        }
        Verdict::Reject(reject) => {
            if reject.framing_trusted() {
                if !te.is_empty() {
                    return Err(format!(
                        "Reject({reject:?}) trusts the framing (the service calls body()), but there is \
                         a Transfer-Encoding header"
                    ));
                }
                if minihttp == Some(None) {
                    return Err(format!(
                        "Reject({reject:?}) trusts the framing (the service calls body()), but \
                         may_minihttp's content_length() would panic on Content-Length {}",
                        show(lengths[0])
                    ));
                }
            }
        }
        Verdict::Read { page, head } => {
            let expected_head = match case.method.as_str() {
                "GET" => false,
                "HEAD" => true,
                _ => return Err("Read for a method other than GET or HEAD".into()),
            };
            if head != expected_head {
                return Err(format!("Read {{ head: {head} }} for method {}", case.method));
            }
            let expected_page = match route(&case.path) {
                "/healthz" => Page::Health,
                "/metrics" => Page::Metrics,
                _ => return Err("Read for a path other than /healthz and /metrics".into()),
            };
            if page != expected_page {
                return Err(format!("Read of {page:?} for path {}", case.path));
            }
            if !te.is_empty() {
                return Err("Read with a Transfer-Encoding header".into());
            }
            for value in &lengths {
                if plain_number(value).as_deref() != Some("0") {
                    return Err(format!("Read with Content-Length {}", show(value)));
                }
            }
        }
    }

    if decision.keep_alive {
        let tokens: Vec<&[u8]> = values(case, "connection")
            .into_iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(|t| t.trim_ascii())
            .collect();
        if tokens.iter().any(|t| t.eq_ignore_ascii_case(b"close")) {
            return Err("keep_alive with Connection: close".into());
        }
        if case.version != 1 && !tokens.iter().any(|t| t.eq_ignore_ascii_case(b"keep-alive")) {
            return Err(format!("keep_alive on HTTP/1.{} without Connection: keep-alive", case.version));
        }
    }
    Ok(())
}

// --- reporting -------------------------------------------------------------------------------

/// A header value for a message: quoted, non-printable and non-ASCII bytes escaped.
fn show(value: &[u8]) -> String {
    format!("\"{}\"", value.escape_ascii())
}

fn fail(case: &Case, decision: &Decision, message: &str) -> ! {
    let mut head = format!("{:?} {:?} HTTP/1.{}\n", case.method, case.path, case.version);
    for (name, value) in &case.headers {
        head.push_str(&format!("  {name:?}: \"{}\"\n", value.escape_ascii()));
    }
    let token = match &case.token {
        None => "none".to_string(),
        Some(token) => {
            format!("\"{}\" in {:?}", token.escape_ascii(), case.custom.unwrap_or("default names"))
        }
    };
    panic!(
        "http_gate: {message}\n  decision: {decision:?}\n  config: path {:?}, max_body {}, token {token}\n  \
         head: {head}",
        case.config.path, case.config.max_body
    );
}
