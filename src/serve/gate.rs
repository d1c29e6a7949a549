//! The request gate: what to do with a request, decided from its head alone, before a single
//! body byte is read.
//!
//! The HTTP layer (`crate::http`) has already checked everything about framing: a head reaches
//! the gate only with one trusted way to find its body's end, within the body limit. The gate
//! decides what the receiver does with it: the route and method, a body where none belongs, then
//! the token.
//!
//! Invariants: the gate is a pure function of the head, the [`GateConfig`] and the
//! [`Listener`] (a route another listener serves is 404 here); it never panics;
//! it lets a request through to the body ([`Verdict::Ingest`]) only as a `POST` to the webhook
//! path carrying the token (when one is configured), and to a page ([`Verdict::Read`]) only as a
//! bodiless `GET` or `HEAD`.
//!
//! For the next maintainer: the fuzz target `http_gate` holds [`decide`] to those invariants
//! ([`decide_on`] differs from it only by the 404s of [`Listener`], unit-tested here); the
//! status codes live in `response.rs`, not here.

use super::auth::Token;
use crate::http::Head;

/// The route a request's target names (for the answer, and the metrics' `route` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The webhook path (`--path`).
    Webhook,
    /// A read-only page.
    Page(Page),
    /// None of them.
    Other,
}

/// Which routes a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listener {
    /// Every route: the only listener (no `--metrics-listen`).
    All,
    /// `--listen` beside a metrics listener: the webhook and `/healthz`.
    Public,
    /// `--metrics-listen`: `/metrics` and `/healthz`.
    Metrics,
}

impl Listener {
    /// True when this listener answers `route` (else it is 404 here).
    fn serves(self, route: Route) -> bool {
        !matches!(
            (self, route),
            (_, Route::Other)
                | (Listener::Public, Route::Page(Page::Metrics))
                | (Listener::Metrics, Route::Webhook)
        )
    }
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
    /// The route exists but not for this method (or, on a page, not with a body); `webhook`
    /// tells which `Allow` to send.
    MethodNotAllowed {
        /// True on the webhook route (`Allow: POST`), false on health/metrics (`Allow: GET, HEAD`).
        webhook: bool,
    },
    /// The token is missing or wrong.
    Unauthorized,
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
    /// Read the whole body, then hand the batch to the ingest stage.
    Ingest,
    /// Refuse the request without reading its body.
    Reject(Reject),
}

/// What the gate needs to know of the server's configuration.
#[derive(Debug, Clone)]
pub struct GateConfig {
    /// The webhook path, without query string.
    pub path: String,
    /// The token and the headers it may come in; `None` accepts every request.
    pub token: Option<Token>,
}

/// Decides what to do with a request on the only listener; see the module docs for the order
/// of the checks.
pub fn decide(head: &Head<'_>, config: &GateConfig) -> Verdict {
    decide_on(head, config, Listener::All).1
}

/// The route a request names, and what to do with it on `listener`: a route the listener does
/// not serve is [`Reject::NotFound`], then as [`decide`].
pub fn decide_on(head: &Head<'_>, config: &GateConfig, listener: Listener) -> (Route, Verdict) {
    let target = head.target();
    let path = target.split_once('?').map_or(target, |(path, _)| path);
    let route = match path {
        p if p == config.path => Route::Webhook,
        "/healthz" => Route::Page(Page::Health),
        "/metrics" => Route::Page(Page::Metrics),
        _ => Route::Other,
    };
    if !listener.serves(route) {
        return (route, Verdict::Reject(Reject::NotFound));
    }
    (route, verdict(head, config, route))
}

/// The verdict on a request for a route the listener serves.
fn verdict(head: &Head<'_>, config: &GateConfig, route: Route) -> Verdict {
    let page = |page, head_only| match head.has_body() {
        // A body on a page request is refused rather than read for nothing.
        false => Verdict::Read { page, head: head_only },
        true => Verdict::Reject(Reject::MethodNotAllowed { webhook: false }),
    };
    match (route, head.method()) {
        (Route::Webhook, "POST") => {}
        (Route::Webhook, _) => return Verdict::Reject(Reject::MethodNotAllowed { webhook: true }),
        (Route::Page(p), "GET") => return page(p, false),
        (Route::Page(p), "HEAD") => return page(p, true),
        (Route::Page(_), _) => return Verdict::Reject(Reject::MethodNotAllowed { webhook: false }),
        (Route::Other, _) => return Verdict::Reject(Reject::NotFound),
    }
    if let Some(token) = &config.token {
        if !authorized(head, token) {
            return Verdict::Reject(Reject::Unauthorized);
        }
    }
    Verdict::Ingest
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{self, Limits, Scratch};

    const PATH: &str = "/egnyte/webhook";

    /// Header name/value pairs of one test request.
    type Headers<'a> = &'a [(&'a str, &'a str)];

    fn config(token: Option<Token>) -> GateConfig {
        GateConfig { path: PATH.into(), token }
    }

    /// Parses a request with these headers (and `Host`) as the HTTP layer would, then decides.
    fn decide_with(method: &str, target: &str, headers: Headers<'_>, config: &GateConfig) -> Verdict {
        let mut text = format!("{method} {target} HTTP/1.1\r\nHost: a\r\n");
        for (name, value) in headers {
            text.push_str(&format!("{name}: {value}\r\n"));
        }
        text.push_str("\r\n");
        let buf = text.as_bytes();
        let mut fields = Vec::new();
        let parsed = head::parse(buf, buf.len(), &Limits::default(), &mut Scratch::default(), &mut fields)
            .unwrap_or_else(|e| panic!("{text:?}: {e:?}"));
        decide(&parsed.view(buf, &fields), config)
    }

    /// As `decide_with`, on `listener`.
    fn decide_on_with(
        method: &str,
        target: &str,
        config: &GateConfig,
        listener: Listener,
    ) -> (Route, Verdict) {
        let text = format!("{method} {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let buf = text.as_bytes();
        let mut fields = Vec::new();
        let parsed =
            head::parse(buf, buf.len(), &Limits::default(), &mut Scratch::default(), &mut fields).unwrap();
        decide_on(&parsed.view(buf, &fields), config, listener)
    }

    fn verdict_of(method: &str, target: &str, headers: Headers<'_>) -> Verdict {
        decide_with(method, target, headers, &config(None))
    }

    #[test]
    fn routes_and_methods() {
        use Reject::*;
        let cases: &[(&str, &str, Verdict)] = &[
            ("POST", PATH, Verdict::Ingest),
            ("POST", "/egnyte/webhook?x=1&y", Verdict::Ingest),
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
        for &(method, target, expected) in cases {
            assert_eq!(verdict_of(method, target, &[]), expected, "{method} {target}");
        }
    }

    #[test]
    fn each_listener_serves_its_routes_and_names_the_route_of_the_others() {
        use Listener::*;
        let gate = config(Some(Token::new(b"Token XYZ".to_vec(), None)));
        let health = Route::Page(Page::Health);
        let metrics = Route::Page(Page::Metrics);
        let not_found = Verdict::Reject(Reject::NotFound);
        let read = |page| Verdict::Read { page, head: false };
        let cases: &[(Listener, &str, &str, Route, Verdict)] = &[
            (All, "GET", "/metrics", metrics, read(Page::Metrics)),
            (All, "GET", "/healthz?x", health, read(Page::Health)),
            (All, "POST", PATH, Route::Webhook, Verdict::Reject(Reject::Unauthorized)),
            (All, "GET", "/nope", Route::Other, not_found),
            (Public, "GET", "/metrics", metrics, not_found),
            (Public, "HEAD", "/metrics?x", metrics, not_found),
            (Public, "POST", "/metrics", metrics, not_found),
            (Public, "GET", "/healthz", health, read(Page::Health)),
            (Public, "POST", PATH, Route::Webhook, Verdict::Reject(Reject::Unauthorized)),
            (
                Public,
                "GET",
                PATH,
                Route::Webhook,
                Verdict::Reject(Reject::MethodNotAllowed { webhook: true }),
            ),
            (Metrics, "GET", "/metrics", metrics, read(Page::Metrics)),
            (Metrics, "GET", "/healthz", health, read(Page::Health)),
            (
                Metrics,
                "DELETE",
                "/healthz",
                health,
                Verdict::Reject(Reject::MethodNotAllowed { webhook: false }),
            ),
            (Metrics, "POST", PATH, Route::Webhook, not_found),
            (Metrics, "GET", "/", Route::Other, not_found),
        ];
        for &(listener, method, target, route, verdict) in cases {
            let decided = decide_on_with(method, target, &gate, listener);
            assert_eq!(decided, (route, verdict), "{listener:?} {method} {target}");
            if listener == All {
                assert_eq!(decide_with(method, target, &[], &gate), verdict, "decide is decide_on(All)");
            }
        }
    }

    #[test]
    fn bodies_on_reads_are_refused() {
        let health = Verdict::Read { page: Page::Health, head: false };
        let refused = Verdict::Reject(Reject::MethodNotAllowed { webhook: false });
        assert_eq!(verdict_of("GET", "/healthz", &[("Content-Length", "0")]), health);
        assert_eq!(verdict_of("GET", "/healthz", &[("Content-Length", "3")]), refused);
        assert_eq!(verdict_of("GET", "/metrics", &[("Transfer-Encoding", "chunked")]), refused);
        assert_eq!(verdict_of("POST", PATH, &[("Transfer-Encoding", "chunked")]), Verdict::Ingest);
    }

    #[test]
    fn authentication() {
        let both = config(Some(Token::new(b"Token XYZ".to_vec(), None)));
        let only = config(Some(Token::new(b"Token XYZ".to_vec(), Some("X-Egnyte-Auth".into()))));
        let ok = Verdict::Ingest;
        let no = Verdict::Reject(Reject::Unauthorized);
        let cases: &[(&GateConfig, Headers<'_>, Verdict)] = &[
            (&both, &[("Authorization", "Token XYZ")], ok),
            (&both, &[("Authentication", "Token XYZ")], ok),
            (&both, &[("authentication", "Token XYZ")], ok),
            (&both, &[], no),
            (&both, &[("Authorization", "Token XY")], no),
            (&both, &[("Authorization", "Token XYZ_")], no),
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
            assert_eq!(decide_with("POST", PATH, headers, gate), expected, "case {i}: {headers:?}");
        }
        // Health and metrics need no token; the route is checked before it.
        assert_eq!(
            decide_with("GET", "/healthz", &[], &both),
            Verdict::Read { page: Page::Health, head: false }
        );
        assert_eq!(decide_with("POST", "/nope", &[], &both), Verdict::Reject(Reject::NotFound));
    }
}
