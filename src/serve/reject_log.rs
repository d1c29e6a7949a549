//! Logging rejected requests without letting a flood of them flood the log: at most one line per
//! cause per second, carrying the count of the ones not logged in between.
//!
//! A line says the status, the reason answered, the cause when the reason has several (a 401's
//! [`Mismatch`](super::auth::Mismatch)), and the client: the peer address and the
//! `X-Forwarded-For` and `X-Real-IP` values a proxy sent, escaped and cut short:
//!
//! ```text
//! rejected with 401: missing or wrong token: no Authorization or Authentication header; client 127.0.0.1:50312 (X-Forwarded-For "203.0.113.7")
//! rejected with 413: body larger than the limit; client 127.0.0.1:50314
//! ```
//!
//! A cause is a fixed text (the reasons of `response.rs` and of the HTTP layer, the kinds of
//! token mismatch), so the table stays tiny; the lock is taken only for rejected requests, and a
//! line is formatted only when it is written. Tokens never reach it: reasons and causes are
//! fixed texts that name headers and lengths, and a parse error's detail names a byte offset,
//! not content.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::http::Fields;

/// Shortest time between two log lines for the same cause.
pub(super) const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// Bytes of one forwarding header's values shown at most.
const SHOWN_BYTES: usize = 128;

/// The headers a proxy names the original client in.
const FORWARDING: [&str; 2] = ["X-Forwarded-For", "X-Real-IP"];

#[derive(Debug)]
struct Entry {
    reason: &'static str,
    cause: &'static str,
    last: Instant,
    suppressed: u64,
}

/// The per-cause state.
#[derive(Debug, Default)]
pub(super) struct RejectLog {
    entries: Mutex<Vec<Entry>>,
}

/// Who sent a rejected request: the peer, and the forwarding headers among `fields`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Client<'a> {
    /// The connection's peer (`None` if the HTTP layer did not say).
    pub(super) peer: Option<SocketAddr>,
    /// The request's header lines, as far as they were read.
    pub(super) fields: Fields<'a>,
}

impl RejectLog {
    /// Notes one rejected request; logs it unless its cause (`reason` and `cause`, fixed texts)
    /// was logged within the interval. `detail` (a parse error, a token mismatch) follows the
    /// reason in the line.
    pub(super) fn note(
        &self,
        status: u16,
        reason: &'static str,
        cause: &'static str,
        detail: &dyn fmt::Display,
        client: &Client<'_>,
    ) {
        if let Some(suppressed) = self.due(reason, cause, Instant::now()) {
            log::warn!("{}", Line { status, reason, detail, client, suppressed });
        }
    }

    /// `Some(count not logged since the last line)` when a line is due for this cause at `now`.
    fn due(&self, reason: &'static str, cause: &'static str, now: Instant) -> Option<u64> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.iter_mut().find(|e| e.reason == reason && e.cause == cause) {
            None => {
                entries.push(Entry { reason, cause, last: now, suppressed: 0 });
                Some(0)
            }
            Some(entry) if now.duration_since(entry.last) >= REJECT_LOG_INTERVAL => {
                entry.last = now;
                Some(std::mem::take(&mut entry.suppressed))
            }
            Some(entry) => {
                entry.suppressed += 1;
                None
            }
        }
    }
}

/// One log line.
struct Line<'a> {
    status: u16,
    reason: &'static str,
    detail: &'a dyn fmt::Display,
    client: &'a Client<'a>,
    suppressed: u64,
}

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rejected with {}: {}{}; {}", self.status, self.reason, self.detail, self.client)?;
        if self.suppressed > 0 {
            write!(f, " (and {} more since the last line)", self.suppressed)?;
        }
        Ok(())
    }
}

impl fmt::Display for Client<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.peer {
            Some(peer) => write!(f, "client {peer}")?,
            None => write!(f, "client unknown")?,
        }
        let mut first = true;
        for name in FORWARDING {
            let mut values = self.fields.values(name).peekable();
            if values.peek().is_none() {
                continue;
            }
            f.write_str(if first { " (" } else { ", " })?;
            first = false;
            write!(f, "{name} \"")?;
            let mut shown = 0;
            for (i, value) in values.enumerate() {
                if i > 0 {
                    f.write_str(", ")?;
                }
                shown += escaped(f, value, SHOWN_BYTES.saturating_sub(shown))?;
                if shown >= SHOWN_BYTES {
                    f.write_str("…")?;
                    break;
                }
            }
            f.write_str("\"")?;
        }
        if !first {
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// Writes at most `room` bytes of `value`, printable ASCII as it is (but `"` and `\`), anything
/// else as `\xNN`; returns the bytes of `value` written, or `room` when it was cut.
fn escaped(f: &mut fmt::Formatter<'_>, value: &[u8], room: usize) -> Result<usize, fmt::Error> {
    for &b in value.iter().take(room) {
        match b {
            b'"' | b'\\' => write!(f, "\\{}", b as char)?,
            0x20..=0x7e => write!(f, "{}", b as char)?,
            _ => write!(f, "\\x{b:02x}")?,
        }
    }
    Ok(if value.len() > room { room } else { value.len() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::head::{self, Limits, Scratch};

    #[test]
    fn one_line_per_cause_per_second_with_the_count_in_between() {
        let log = RejectLog::default();
        let start = Instant::now();
        let token = "missing or wrong token";
        assert_eq!(log.due(token, "value", start), Some(0));
        for _ in 0..5 {
            assert_eq!(log.due(token, "value", start + Duration::from_millis(500)), None);
        }
        assert_eq!(
            log.due("not found", "", start + Duration::from_millis(500)),
            Some(0),
            "reasons are separate"
        );
        assert_eq!(log.due(token, "no header", start + Duration::from_millis(500)), Some(0), "and causes");
        assert_eq!(log.due(token, "no header", start + Duration::from_millis(600)), None);
        assert_eq!(log.due(token, "value", start + Duration::from_millis(999)), None);
        assert_eq!(log.due(token, "value", start + REJECT_LOG_INTERVAL), Some(6));
        assert_eq!(log.due(token, "value", start + Duration::from_millis(1500)), None);
        assert_eq!(log.due(token, "value", start + Duration::from_secs(3)), Some(1));
    }

    /// The line for a request with these header lines from `peer`.
    fn line(headers: &str, peer: Option<SocketAddr>, suppressed: u64) -> String {
        let text = format!("POST /x HTTP/1.1\r\nHost: a\r\n{headers}\r\n");
        let buf = text.as_bytes();
        let mut fields = Vec::new();
        let parsed =
            head::parse(buf, buf.len(), &Limits::default(), &mut Scratch::default(), &mut fields).unwrap();
        let client = Client { peer, fields: parsed.view(buf, &fields).fields() };
        let line = Line {
            status: 401,
            reason: "missing or wrong token",
            detail: &": why",
            client: &client,
            suppressed,
        };
        line.to_string()
    }

    #[test]
    fn a_line_names_the_client_and_what_the_proxy_said_of_it() {
        let peer = Some("127.0.0.1:5000".parse().unwrap());
        assert_eq!(
            line("", peer, 0),
            "rejected with 401: missing or wrong token: why; client 127.0.0.1:5000"
        );
        assert_eq!(
            line("", None, 3),
            "rejected with 401: missing or wrong token: why; client unknown (and 3 more since the last line)"
        );
        assert_eq!(
            line("X-Real-IP: 203.0.113.7\r\nx-forwarded-for: 203.0.113.7, 10.0.0.1\r\nX-Forwarded-For: 10.0.0.2\r\n", peer, 0),
            "rejected with 401: missing or wrong token: why; client 127.0.0.1:5000 \
             (X-Forwarded-For \"203.0.113.7, 10.0.0.1, 10.0.0.2\", X-Real-IP \"203.0.113.7\")"
        );
        let ipv6 = Some("[::1]:80".parse().unwrap());
        assert_eq!(
            line("X-Real-IP: a\"b\\c\t\u{e9}\r\n", ipv6, 0),
            "rejected with 401: missing or wrong token: why; client [::1]:80 (X-Real-IP \"a\\\"b\\\\c\\x09\\xc3\\xa9\")"
        );
        let long = line(&format!("X-Forwarded-For: {}\r\nX-Forwarded-For: b\r\n", "a".repeat(500)), peer, 0);
        assert!(long.ends_with(&format!("(X-Forwarded-For \"{}…\")", "a".repeat(SHOWN_BYTES))), "{long}");
    }
}
