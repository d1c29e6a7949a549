//! Every answer the receiver itself gives (the HTTP layer answers protocol errors: see
//! `crate::http`), and the one place that maps an answer to its status code, headers and body.

use std::io::Write as _;

use super::gate::Reject;
use crate::http::Reply;
use crate::ingest::{Refused, Taken};
use crate::ParseError;

/// One answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Answer {
    /// The batch was taken: 200 with the counts as JSON.
    Taken(Taken),
    /// `/healthz`: 200 `ok`, or 503 with what keeps events from being stored; then a line per
    /// stuck sink (which does not make the receiver unhealthy: the journal keeps its records).
    Health {
        /// `None` while events can be stored; else the one-line reason (`unhealthy: …`).
        problem: Option<&'static str>,
        /// One line per stuck sink, each ending in a line break.
        stuck: String,
    },
    /// `/metrics`: 200 with the Prometheus text (rendered by the caller).
    Metrics,
    /// Refused by the gate before the body was read.
    Reject(Reject),
    /// The body is not a batch: 400 with the parser's one-line reason.
    BadBody(ParseError),
    /// The ingest stage cannot take events now: 503 with `Retry-After`.
    Unavailable(Refused),
}

const TEXT: (&str, &str) = ("Content-Type", "text/plain; charset=utf-8");
const JSON: (&str, &str) = ("Content-Type", "application/json");
const PROMETHEUS: (&str, &str) = ("Content-Type", "text/plain; version=0.0.4; charset=utf-8");

impl Answer {
    /// The status code and reason phrase.
    pub(super) fn status(&self) -> (u16, &'static str) {
        match self {
            Answer::Taken(_) | Answer::Metrics | Answer::Health { problem: None, .. } => (200, "OK"),
            Answer::Health { problem: Some(_), .. } | Answer::Unavailable(_) => (503, "Service Unavailable"),
            Answer::BadBody(_) => (400, "Bad Request"),
            Answer::Reject(reject) => match reject {
                Reject::NotFound => (404, "Not Found"),
                Reject::MethodNotAllowed { .. } => (405, "Method Not Allowed"),
                Reject::Unauthorized => (401, "Unauthorized"),
            },
        }
    }

    /// The response: status, headers and a body written into `body` (`metrics` is the rendered
    /// metrics text, used only by [`Answer::Metrics`]).
    pub(super) fn reply<'a>(&self, metrics: &'a str, body: &'a mut Vec<u8>) -> Reply<'a> {
        let (status, reason) = self.status();
        body.clear();
        let _ = match self {
            Answer::Taken(t) => write!(
                body,
                "{{\"accepted\":{},\"duplicates\":{},\"quarantined\":{}}}",
                t.accepted, t.duplicates, t.quarantined
            ),
            Answer::Metrics => Ok(()),
            Answer::BadBody(error) => writeln!(body, "{error}"),
            Answer::Health { stuck, .. } => {
                writeln!(body, "{}", self.message()).and_then(|()| body.write_all(stuck.as_bytes()))
            }
            other => writeln!(body, "{}", other.message()),
        };
        let headers: &'static [(&'static str, &'static str)] = match self {
            Answer::Taken(_) => &[JSON],
            Answer::Metrics => &[PROMETHEUS],
            Answer::Reject(Reject::MethodNotAllowed { webhook: true }) => &[TEXT, ("Allow", "POST")],
            Answer::Reject(Reject::MethodNotAllowed { webhook: false }) => &[TEXT, ("Allow", "GET, HEAD")],
            Answer::Unavailable(refused) => retry_after(refused.retry_after_secs),
            _ => &[TEXT],
        };
        let body: &[u8] = match self {
            Answer::Metrics => metrics.as_bytes(),
            _ => body,
        };
        Reply { status, reason, headers, body }
    }

    /// For a refused request, its reason (a fixed text) to log; `None` for answers that are not
    /// refusals (200s and the pages).
    pub(super) fn rejection(&self) -> Option<&'static str> {
        match self {
            Answer::Taken(_) | Answer::Metrics | Answer::Health { .. } => None,
            Answer::BadBody(_) => Some("invalid body: "),
            other => Some(other.message()),
        }
    }

    /// The one-line body of answers that have no other content.
    fn message(&self) -> &'static str {
        match self {
            Answer::Health { problem, .. } => problem.unwrap_or("ok"),
            Answer::Unavailable(refused) => refused.reason,
            Answer::Reject(reject) => match reject {
                Reject::NotFound => "not found",
                Reject::MethodNotAllowed { .. } => "method not allowed",
                Reject::Unauthorized => "missing or wrong token",
            },
            Answer::Taken(_) | Answer::Metrics | Answer::BadBody(_) => "",
        }
    }
}

/// `Content-Type` and `Retry-After` for a 503, from a fixed set of values.
fn retry_after(secs: u32) -> &'static [(&'static str, &'static str)] {
    match secs {
        0 | 1 => &[TEXT, ("Retry-After", "1")],
        2..=5 => &[TEXT, ("Retry-After", "5")],
        6..=30 => &[TEXT, ("Retry-After", "30")],
        _ => &[TEXT, ("Retry-After", "60")],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_answer_has_its_status() {
        let refused = Refused { retry_after_secs: 5, reason: "x" };
        let cases = [
            (Answer::Taken(Taken::default()), 200),
            (Answer::Health { problem: None, stuck: String::new() }, 200),
            (Answer::Health { problem: None, stuck: "sink stdout stuck: …\n".into() }, 200),
            (Answer::Health { problem: Some("unhealthy: x"), stuck: String::new() }, 503),
            (Answer::Metrics, 200),
            (Answer::Reject(Reject::NotFound), 404),
            (Answer::Reject(Reject::MethodNotAllowed { webhook: true }), 405),
            (Answer::Reject(Reject::Unauthorized), 401),
            (Answer::BadBody(ParseError::Empty), 400),
            (Answer::Unavailable(refused), 503),
        ];
        for (answer, status) in cases {
            assert_eq!(answer.status().0, status, "{answer:?}");
            assert!(super::super::metrics::STATUSES.contains(&status));
        }
    }

    #[test]
    fn replies_carry_their_headers_and_body() {
        let mut body = Vec::new();
        let refused = Refused { retry_after_secs: 3, reason: "later" };
        let reply = Answer::Unavailable(refused).reply("", &mut body);
        assert_eq!((reply.status, reply.body), (503, &b"later\n"[..]));
        assert!(reply.headers.contains(&("Retry-After", "5")), "{:?}", reply.headers);
        let mut body = Vec::new();
        let reply = Answer::Metrics.reply("m 1\n", &mut body);
        assert_eq!((reply.status, reply.body), (200, &b"m 1\n"[..]));
        let mut body = Vec::new();
        let reply = Answer::Taken(Taken { accepted: 2, duplicates: 1, quarantined: 0 }).reply("", &mut body);
        assert_eq!(reply.body, br#"{"accepted":2,"duplicates":1,"quarantined":0}"#);
    }
}
