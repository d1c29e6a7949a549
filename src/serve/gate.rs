//! The request gate: what to do with a request, decided from its head alone.
//!
//! Runs before a single body byte is touched, in this order: the framing (`Transfer-Encoding`,
//! then a strict `Content-Length`), then method and path, then the body size and the token.
//! A request that fails any step is rejected, and the [`Reject`] says whether its framing can
//! still be trusted (so that the buffered part of its body can be skipped) or not (so the
//! connection must be cut).
//!
//! Why framing comes before the route: every refusal with trusted framing ends with
//! may_minihttp's `body()` skipping the body, and `body()` panics on a `Content-Length` it cannot
//! parse. Checking the route first let a `GET /webhook` or `POST /nope` with `Content-Length: abc`
//! reach `body()` (found by the `http_gate` fuzz target). So a request whose framing is broken
//! gets 400/411/413 whatever its path.
//!
//! Invariants: the gate is a pure function of the head and the [`GateConfig`]; it never panics;
//! it never lets through a request whose body length is ambiguous (any `Transfer-Encoding`,
//! a `Content-Length` that is not plain digits, several that differ); and every verdict that
//! leads to `body()` ([`Verdict::Ingest`], a [`Reject`] with trusted framing) carries a
//! `Content-Length` that may_minihttp parses to the same number.
//!
//! For the next maintainer: the fuzz target `http_gate` holds this file to those invariants;
//! the status codes live in `response.rs`, not here.

use super::auth::Token;

/// The routes the receiver serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// The webhook path (`--path`).
    Webhook,
    /// A read-only page.
    Page(Page),
}

/// The read-only pages (GET or HEAD, no body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// `/healthz`.
    Health,
    /// `/metrics`.
    Metrics,
}

/// Why a request is refused before its body is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reject {
    /// No such route.
    NotFound,
    /// The route exists but not for this method; `webhook` tells which `Allow` to send.
    MethodNotAllowed {
        /// True on the webhook route (`Allow: POST`), false on health/metrics (`Allow: GET, HEAD`).
        webhook: bool,
    },
    /// Any `Transfer-Encoding` header: chunked bodies are not supported, and the body length
    /// would be ambiguous.
    TransferEncoding,
    /// A `Content-Length` that is not plain digits, or several that differ.
    BadContentLength,
    /// A `Content-Length` above the configured maximum body size.
    TooLarge,
    /// A `Content-Length` of plain digits too large to represent: answered like [`Reject::TooLarge`],
    /// but may_minihttp could not parse it, so its body cannot be skipped.
    Overflow,
    /// The token is missing or wrong.
    Unauthorized,
}

impl Reject {
    /// True when the request's body length is known exactly, so the bytes of it already
    /// received can be skipped and the answer sent in order; false when the connection's byte
    /// stream can no longer be parsed safely and must be cut right after the answer.
    pub fn framing_trusted(self) -> bool {
        !matches!(self, Reject::TransferEncoding | Reject::BadContentLength | Reject::Overflow)
    }
}

/// What to do with a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Answer a bodiless read of health or metrics (`head`: HEAD, so no body in the answer).
    Read {
        /// Which page.
        page: Page,
        /// HEAD rather than GET.
        head: bool,
    },
    /// Read exactly `length` body bytes, then hand the batch to the pipeline.
    Ingest {
        /// The body length, from the one valid `Content-Length` (0 when there is none).
        length: usize,
        /// The client sent `Expect: 100-continue` and waits for an interim answer.
        expect_continue: bool,
    },
    /// Refuse the request without reading its body.
    Reject(Reject),
}

/// The gate's decision: the verdict, and whether the connection may stay open afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// What to do with the request.
    pub verdict: Verdict,
    /// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
    pub keep_alive: bool,
}

/// What the gate needs to know of the server's configuration.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The webhook path, without query string.
    pub path: String,
    /// Largest body accepted, in bytes.
    pub max_body: usize,
    /// The token and the headers it may come in; `None` accepts every request.
    pub token: Option<Token>,
}

/// The head of one request, as may_minihttp parsed it.
#[derive(Debug, Clone, Copy)]
pub struct Head<'a> {
    /// Request method, case-sensitive as HTTP says.
    pub method: &'a str,
    /// Request target (origin form, possibly with a query string).
    pub path: &'a str,
    /// Minor HTTP version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// Header names and raw values, in order.
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl Head<'_> {
    fn values<'h>(&'h self, name: &'h str) -> impl Iterator<Item = &'h [u8]> + 'h {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| *v)
    }
}

/// Decides what to do with a request; see the module docs for the order of the checks.
pub fn decide(head: &Head<'_>, config: &GateConfig) -> Decision {
    let keep_alive = keep_alive(head);
    Decision { verdict: verdict(head, config), keep_alive }
}

fn verdict(head: &Head<'_>, config: &GateConfig) -> Verdict {
    if head.values("transfer-encoding").next().is_some() {
        return Verdict::Reject(Reject::TransferEncoding);
    }
    let length = match content_length(head) {
        Ok(length) => length.unwrap_or(0),
        Err(reject) => return Verdict::Reject(reject),
    };
    let path = head.path.split_once('?').map_or(head.path, |(path, _)| path);
    let route = match path {
        p if p == config.path => Route::Webhook,
        "/healthz" => Route::Page(Page::Health),
        "/metrics" => Route::Page(Page::Metrics),
        _ => return Verdict::Reject(Reject::NotFound),
    };
    let page = |page, head_only| match length {
        // A body on a page request is refused rather than left unread in the buffer.
        0 => Verdict::Read { page, head: head_only },
        _ => Verdict::Reject(Reject::MethodNotAllowed { webhook: false }),
    };
    match (route, head.method) {
        (Route::Webhook, "POST") => {}
        (Route::Webhook, _) => return Verdict::Reject(Reject::MethodNotAllowed { webhook: true }),
        (Route::Page(p), "GET") => return page(p, false),
        (Route::Page(p), "HEAD") => return page(p, true),
        (Route::Page(_), _) => return Verdict::Reject(Reject::MethodNotAllowed { webhook: false }),
    }
    if length > config.max_body {
        return Verdict::Reject(Reject::TooLarge);
    }
    if let Some(token) = &config.token {
        if !authorized(head, token) {
            return Verdict::Reject(Reject::Unauthorized);
        }
    }
    let expect_continue = head.values("expect").any(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Verdict::Ingest { length, expect_continue }
}

/// The one `Content-Length`: digits only, no sign, no space, not empty, fits in `usize`; several
/// headers must all say the same. `Ok(None)` when there is none.
fn content_length(head: &Head<'_>) -> Result<Option<usize>, Reject> {
    let mut length = None;
    for value in head.values("content-length") {
        let parsed = digits(value)?;
        if length.is_some_and(|seen| seen != parsed) {
            return Err(Reject::BadContentLength);
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// Plain ASCII digits as a `usize`; a number too large for `usize` is [`Reject::Overflow`]
/// (well formed, just too big), anything else [`Reject::BadContentLength`].
fn digits(value: &[u8]) -> Result<usize, Reject> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Reject::BadContentLength);
    }
    value.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10).and_then(|n| n.checked_add(usize::from(d - b'0'))).ok_or(Reject::Overflow)
    })
}

/// The token must be the exact value of one accepted header; an accepted header that appears
/// twice refuses the request (one request, one guess).
fn authorized(head: &Head<'_>, token: &Token) -> bool {
    let mut matched = false;
    for name in token.header_names() {
        let mut values = head.values(name);
        let (Some(value), None) = (values.next(), values.next()) else {
            if head.values(name).next().is_some() {
                return false;
            }
            continue;
        };
        matched |= token.matches(value);
    }
    matched
}

/// Whether the connection may serve another request after this one.
fn keep_alive(head: &Head<'_>) -> bool {
    let tokens = || head.values("connection").flat_map(|v| v.split(|&b| b == b',')).map(trim);
    let has = |token: &[u8]| tokens().any(|t| t.eq_ignore_ascii_case(token));
    match head.version {
        1 => !has(b"close"),
        _ => has(b"keep-alive") && !has(b"close"),
    }
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(start, |e| e + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    const PATH: &str = "/egnyte/webhook";

    /// Header name/value pairs of one test request.
    type Headers<'a> = &'a [(&'a str, &'a str)];

    fn config(token: Option<Token>) -> GateConfig {
        GateConfig { path: PATH.into(), max_body: 1000, token }
    }

    fn decide_with(
        method: &str,
        path: &str,
        version: u8,
        headers: &[(&str, &str)],
        config: &GateConfig,
    ) -> Decision {
        let headers: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
        decide(&Head { method, path, version, headers: &headers }, config)
    }

    fn verdict_of(method: &str, path: &str, headers: &[(&str, &str)]) -> Verdict {
        decide_with(method, path, 1, headers, &config(None)).verdict
    }

    fn ingest(length: usize) -> Verdict {
        Verdict::Ingest { length, expect_continue: false }
    }

    #[test]
    fn routes_and_methods() {
        use Reject::*;
        let cases: &[(&str, &str, Verdict)] = &[
            ("POST", PATH, ingest(0)),
            ("POST", "/egnyte/webhook?x=1&y", ingest(0)),
            ("POST", "/egnyte/webhook/", Verdict::Reject(NotFound)),
            ("POST", "/EGNYTE/webhook", Verdict::Reject(NotFound)),
            ("post", PATH, Verdict::Reject(MethodNotAllowed { webhook: true })),
            ("GET", PATH, Verdict::Reject(MethodNotAllowed { webhook: true })),
            ("HEAD", PATH, Verdict::Reject(MethodNotAllowed { webhook: true })),
            ("PUT", PATH, Verdict::Reject(MethodNotAllowed { webhook: true })),
            ("GET", "/healthz", Verdict::Read { page: Page::Health, head: false }),
            ("HEAD", "/healthz", Verdict::Read { page: Page::Health, head: true }),
            ("GET", "/metrics", Verdict::Read { page: Page::Metrics, head: false }),
            ("GET", "/metrics?x", Verdict::Read { page: Page::Metrics, head: false }),
            ("POST", "/metrics", Verdict::Reject(MethodNotAllowed { webhook: false })),
            ("DELETE", "/healthz", Verdict::Reject(MethodNotAllowed { webhook: false })),
            ("GET", "/", Verdict::Reject(NotFound)),
            ("GET", "*", Verdict::Reject(NotFound)),
            ("GET", "http://x/healthz", Verdict::Reject(NotFound)),
        ];
        for &(method, path, expected) in cases {
            assert_eq!(verdict_of(method, path, &[]), expected, "{method} {path}");
        }
    }

    #[test]
    fn content_length_is_strict() {
        use Reject::*;
        let cases: &[(&[&str], Verdict)] = &[
            (&["0"], ingest(0)),
            (&["1000"], ingest(1000)),
            (&["0001000"], ingest(1000)),
            (&["1001"], Verdict::Reject(TooLarge)),
            (&["99999999999999999999999"], Verdict::Reject(Overflow)),
            (&["18446744073709551615"], Verdict::Reject(TooLarge)),
            (&["18446744073709551616"], Verdict::Reject(Overflow)),
            (&[""], Verdict::Reject(BadContentLength)),
            (&["abc"], Verdict::Reject(BadContentLength)),
            (&["-1"], Verdict::Reject(BadContentLength)),
            (&["+5"], Verdict::Reject(BadContentLength)),
            (&[" 5"], Verdict::Reject(BadContentLength)),
            (&["5 "], Verdict::Reject(BadContentLength)),
            (&["1e3"], Verdict::Reject(BadContentLength)),
            (&["5, 5"], Verdict::Reject(BadContentLength)),
            (&["0x10"], Verdict::Reject(BadContentLength)),
            (&["٣"], Verdict::Reject(BadContentLength)),
            (&["5", "5"], ingest(5)),
            (&["5", "6"], Verdict::Reject(BadContentLength)),
            (&["5", "x"], Verdict::Reject(BadContentLength)),
        ];
        for &(values, expected) in cases {
            let headers: Vec<(&str, &str)> = values.iter().map(|v| ("Content-Length", *v)).collect();
            assert_eq!(verdict_of("POST", PATH, &headers), expected, "{values:?}");
        }
        // Header names are case-insensitive.
        assert_eq!(verdict_of("POST", PATH, &[("content-LENGTH", "7")]), ingest(7));
    }

    #[test]
    fn any_transfer_encoding_is_refused_first() {
        for te in ["chunked", "identity", "gzip, chunked", ""] {
            let v = verdict_of("POST", PATH, &[("Transfer-Encoding", te), ("Content-Length", "5")]);
            assert_eq!(v, Verdict::Reject(Reject::TransferEncoding), "{te}");
            let v = verdict_of("GET", "/healthz", &[("transfer-encoding", te)]);
            assert_eq!(v, Verdict::Reject(Reject::TransferEncoding), "{te}");
        }
        // Transfer-Encoding beats a malformed length, which beats the route and the token.
        let gate = config(Some(Token::new(b"s3cret".to_vec(), None)));
        let v =
            decide_with("POST", PATH, 1, &[("Content-Length", "x"), ("Transfer-Encoding", "chunked")], &gate);
        assert_eq!(v.verdict, Verdict::Reject(Reject::TransferEncoding));
        let v = decide_with("POST", PATH, 1, &[("Content-Length", "x")], &gate);
        assert_eq!(v.verdict, Verdict::Reject(Reject::BadContentLength));
        // Broken framing wins over a wrong route or method: those refusals skip the body through
        // may_minihttp's body(), which would panic on it (found by fuzz/http_gate).
        for (method, path, cl) in [("GET", PATH, "abc"), ("POST", "/nope", "-1"), ("POST", "/healthz", "x")] {
            let v = decide_with(method, path, 1, &[("Content-Length", cl)], &gate);
            assert_eq!(v.verdict, Verdict::Reject(Reject::BadContentLength), "{method} {path}");
        }
        let v = decide_with("GET", "/nope", 1, &[("Content-Length", "99999999999999999999999")], &gate);
        assert_eq!(v.verdict, Verdict::Reject(Reject::Overflow));
        let v = decide_with("POST", "/nope", 1, &[("Transfer-Encoding", "chunked")], &gate);
        assert_eq!(v.verdict, Verdict::Reject(Reject::TransferEncoding));
    }

    #[test]
    fn bodies_on_reads_are_refused() {
        assert_eq!(
            verdict_of("GET", "/healthz", &[("Content-Length", "0")]),
            Verdict::Read { page: Page::Health, head: false }
        );
        assert_eq!(
            verdict_of("GET", "/healthz", &[("Content-Length", "3")]),
            Verdict::Reject(Reject::MethodNotAllowed { webhook: false })
        );
        assert_eq!(
            verdict_of("GET", "/metrics", &[("Content-Length", "-3")]),
            Verdict::Reject(Reject::BadContentLength)
        );
    }

    #[test]
    fn authentication() {
        let both = config(Some(Token::new(b"Token XYZ".to_vec(), None)));
        let only = config(Some(Token::new(b"Token XYZ".to_vec(), Some("X-Egnyte-Auth".into()))));
        let ok = ingest(0);
        let no = Verdict::Reject(Reject::Unauthorized);
        let cases: &[(&GateConfig, Headers<'_>, Verdict)] = &[
            (&both, &[("Authorization", "Token XYZ")], ok),
            (&both, &[("Authentication", "Token XYZ")], ok),
            (&both, &[("authentication", "Token XYZ")], ok),
            (&both, &[], no),
            (&both, &[("Authorization", "Token XY")], no),
            (&both, &[("Authorization", "Token XYZ ")], no),
            (&both, &[("Authorization", "token xyz")], no),
            (&both, &[("Authorization", "")], no),
            (&both, &[("X-Egnyte-Auth", "Token XYZ")], no),
            (&both, &[("Authorization", "wrong"), ("Authentication", "Token XYZ")], ok),
            (&both, &[("Authorization", "wrong"), ("Authorization", "Token XYZ")], no),
            (&both, &[("Authorization", "Token XYZ"), ("Authorization", "Token XYZ")], no),
            (&only, &[("x-egnyte-auth", "Token XYZ")], ok),
            (&only, &[("Authorization", "Token XYZ")], no),
        ];
        for (i, &(gate, headers, expected)) in cases.iter().enumerate() {
            assert_eq!(
                decide_with("POST", PATH, 1, headers, gate).verdict,
                expected,
                "case {i}: {headers:?}"
            );
        }
        // Health and metrics need no token.
        assert_eq!(
            decide_with("GET", "/healthz", 1, &[], &both).verdict,
            Verdict::Read { page: Page::Health, head: false }
        );
    }

    #[test]
    fn keep_alive_follows_version_and_connection() {
        let cases: &[(u8, Headers<'_>, bool)] = &[
            (1, &[], true),
            (1, &[("Connection", "close")], false),
            (1, &[("connection", "Keep-Alive, CLOSE")], false),
            (1, &[("Connection", "Upgrade, HTTP2-Settings")], true),
            (0, &[], false),
            (0, &[("Connection", "keep-alive")], true),
            (0, &[("Connection", " Keep-Alive ")], true),
            (0, &[("Connection", "keep-alive"), ("Connection", "close")], false),
        ];
        for &(version, headers, expected) in cases {
            assert_eq!(
                decide_with("GET", "/healthz", version, headers, &config(None)).keep_alive,
                expected,
                "{version} {headers:?}"
            );
        }
    }

    #[test]
    fn expect_continue_is_noticed() {
        let v = verdict_of("POST", PATH, &[("Expect", "100-Continue"), ("Content-Length", "3")]);
        assert_eq!(v, Verdict::Ingest { length: 3, expect_continue: true });
    }

    #[test]
    fn framing_trust() {
        use Reject::*;
        for (reject, trusted) in [
            (NotFound, true),
            (MethodNotAllowed { webhook: true }, true),
            (TooLarge, true),
            (Unauthorized, true),
            (TransferEncoding, false),
            (BadContentLength, false),
            (Overflow, false),
        ] {
            assert_eq!(reject.framing_trusted(), trusted, "{reject:?}");
        }
    }
}
