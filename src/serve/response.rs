//! Every answer the receiver gives, and the one place that maps an answer to its status code,
//! headers and body.

use std::fmt::Write as _;

use may_minihttp::Response;

use super::gate::Reject;
use crate::ingest::{Refused, Taken};
use crate::ParseError;

/// One answer to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The batch was taken: 200 with the counts as JSON.
    Taken(Taken),
    /// `/healthz`: 200 `ok`, or 503 while events cannot be stored.
    Health {
        /// Whether events can be stored.
        healthy: bool,
    },
    /// `/metrics`: 200 with the Prometheus text (rendered by the caller).
    Metrics,
    /// Refused by the gate before the body was read.
    Reject(Reject),
    /// The body is not a batch: 400 with the parser's one-line reason.
    BadBody(ParseError),
    /// The client sent fewer body bytes than its `Content-Length` and stopped (or timed out).
    ShortBody,
    /// The pipeline cannot take events now: 503 with `Retry-After`.
    Unavailable(Refused),
    /// Too many request bodies are in memory right now: 503 with `Retry-After`.
    Busy,
    /// A request that came after the connection was marked for closing: 400, no side effects.
    Closing,
}

/// Seconds to wait when too many bodies are in flight.
const BUSY_RETRY_AFTER: &str = "Retry-After: 1";

impl Answer {
    /// The status code and reason phrase.
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Answer::Taken(_) | Answer::Metrics | Answer::Health { healthy: true } => (200, "OK"),
            Answer::Health { healthy: false } | Answer::Unavailable(_) | Answer::Busy => {
                (503, "Service Unavailable")
            }
            Answer::BadBody(_) | Answer::ShortBody | Answer::Closing => (400, "Bad Request"),
            Answer::Reject(reject) => match reject {
                Reject::NotFound => (404, "Not Found"),
                Reject::MethodNotAllowed { .. } => (405, "Method Not Allowed"),
                Reject::TransferEncoding => (411, "Length Required"),
                Reject::BadContentLength => (400, "Bad Request"),
                Reject::TooLarge | Reject::Overflow => (413, "Payload Too Large"),
                Reject::Unauthorized => (401, "Unauthorized"),
            },
        }
    }

    /// Writes status, headers and body into may_minihttp's response. `metrics` is the rendered
    /// metrics text, used only by [`Answer::Metrics`]; `head` drops the body (HEAD requests);
    /// `close` adds `Connection: close`.
    pub fn write(&self, rsp: &mut Response<'_>, metrics: &str, head: bool, close: bool) {
        let (code, phrase) = self.status();
        rsp.status_code(usize::from(code), phrase);
        if close {
            rsp.header("Connection: close");
        }
        match self {
            Answer::Taken(_) => rsp.header("Content-Type: application/json"),
            Answer::Metrics => rsp.header("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
            _ => rsp.header("Content-Type: text/plain; charset=utf-8"),
        };
        match self {
            Answer::Reject(Reject::MethodNotAllowed { webhook: true }) => {
                rsp.header("Allow: POST");
            }
            Answer::Reject(Reject::MethodNotAllowed { webhook: false }) => {
                rsp.header("Allow: GET, HEAD");
            }
            Answer::Unavailable(refused) => {
                rsp.header(retry_after(refused.retry_after_secs));
            }
            Answer::Busy => {
                rsp.header(BUSY_RETRY_AFTER);
            }
            _ => {}
        }
        if head {
            return;
        }
        let body = rsp.body_mut();
        let _ = match self {
            Answer::Taken(t) => write!(
                body,
                "{{\"accepted\":{},\"duplicates\":{},\"quarantined\":{}}}",
                t.accepted, t.duplicates, t.quarantined
            ),
            Answer::Metrics => body.write_str(metrics),
            Answer::BadBody(error) => writeln!(body, "{error}"),
            other => writeln!(body, "{}", other.message()),
        };
    }

    /// For a refused request, its reason (a fixed text) to log; `None` for answers that are not
    /// refusals (200s and the pages).
    pub fn rejection(&self) -> Option<&'static str> {
        match self {
            Answer::Taken(_) | Answer::Metrics | Answer::Health { .. } => None,
            Answer::BadBody(_) => Some("invalid body: "),
            other => Some(other.message()),
        }
    }

    /// The one-line body of answers that have no other content.
    fn message(&self) -> &'static str {
        match self {
            Answer::Health { healthy: true } => "ok",
            Answer::Health { healthy: false } => "unhealthy: events cannot be stored now",
            Answer::Unavailable(refused) => refused.reason,
            Answer::Busy => "too many request bodies in memory now; retry shortly",
            Answer::ShortBody => "body shorter than Content-Length",
            Answer::Closing => "connection is closing; no further requests on it",
            Answer::Reject(reject) => match reject {
                Reject::NotFound => "not found",
                Reject::MethodNotAllowed { .. } => "method not allowed",
                Reject::TransferEncoding => "Transfer-Encoding is not supported; send a Content-Length",
                Reject::BadContentLength => "malformed Content-Length",
                Reject::TooLarge | Reject::Overflow => "body larger than the limit",
                Reject::Unauthorized => "missing or wrong token",
            },
            Answer::Taken(_) | Answer::Metrics | Answer::BadBody(_) => "",
        }
    }

    /// The whole response as bytes, for answers written straight to the socket (ahead of
    /// may_minihttp, when the connection must be cut right after).
    pub fn raw_bytes(&self) -> Vec<u8> {
        let (code, phrase) = self.status();
        let message = self.message();
        format!(
            "HTTP/1.1 {code} {phrase}\r\nServer: egnyte-receiver\r\nConnection: close\r\n\
             Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{message}\n",
            message.len() + 1
        )
        .into_bytes()
    }
}

/// `Retry-After` values as static header lines (may_minihttp takes only `&'static str`).
fn retry_after(secs: u32) -> &'static str {
    match secs {
        0 | 1 => "Retry-After: 1",
        2..=5 => "Retry-After: 5",
        6..=30 => "Retry-After: 30",
        _ => "Retry-After: 60",
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
            (Answer::Health { healthy: true }, 200),
            (Answer::Health { healthy: false }, 503),
            (Answer::Metrics, 200),
            (Answer::Reject(Reject::NotFound), 404),
            (Answer::Reject(Reject::MethodNotAllowed { webhook: true }), 405),
            (Answer::Reject(Reject::TransferEncoding), 411),
            (Answer::Reject(Reject::BadContentLength), 400),
            (Answer::Reject(Reject::TooLarge), 413),
            (Answer::Reject(Reject::Overflow), 413),
            (Answer::Reject(Reject::Unauthorized), 401),
            (Answer::BadBody(ParseError::Empty), 400),
            (Answer::ShortBody, 400),
            (Answer::Unavailable(refused), 503),
            (Answer::Busy, 503),
            (Answer::Closing, 400),
        ];
        for (answer, status) in cases {
            assert_eq!(answer.status().0, status, "{answer:?}");
            assert!(super::super::metrics::STATUSES.contains(&status));
        }
    }

    #[test]
    fn raw_answers_are_complete_responses() {
        let text = String::from_utf8(Answer::Reject(Reject::TransferEncoding).raw_bytes()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 411 Length Required\r\n"));
        assert!(head.contains("Connection: close"));
        assert!(head.contains(&format!("Content-Length: {}", body.len())));
        assert_eq!(retry_after(3), "Retry-After: 5");
    }
}
