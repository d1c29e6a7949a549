//! Writing responses: one [`Reply`] becomes status line, headers and body, appended to the
//! connection's output buffer (pipelined answers share one write).
//!
//! What this module guarantees on every response: `HTTP/1.1` status line (a server answers with
//! the highest version it supports, also to HTTP/1.0 clients), `Server`, `Date` (RFC 9110
//! §6.6.1: an origin server with a clock sends it), `Content-Length` of the body the response
//! would carry, `Connection: close` when the connection ends after it, and no body on an answer to
//! HEAD. It never writes `Transfer-Encoding`.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::time::civil_from_days;

/// One answer, as the service or the protocol layer gives it.
#[derive(Debug, Clone, Copy)]
pub struct Reply<'a> {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Header lines besides those this module writes itself.
    pub headers: &'a [(&'static str, &'a str)],
    /// The body (left out on HEAD, its length still sent).
    pub body: &'a [u8],
}

/// The interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// `Date` values, formatted once a second per connection.
#[derive(Debug, Default)]
pub struct DateCache {
    second: u64,
    text: [u8; 29],
}

impl DateCache {
    /// The IMF-fixdate for now (`Sun, 06 Nov 1994 08:49:37 GMT`).
    fn now(&mut self) -> &[u8; 29] {
        let second = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.second || self.text[0] == 0 {
            self.second = second;
            self.text = imf_fixdate(second);
        }
        &self.text
    }
}

/// RFC 9110 §5.6.7's preferred date format for `second` since the epoch.
fn imf_fixdate(second: u64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] =
        [b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"];
    let days = second / 86_400;
    let (year, month, day) = civil_from_days(days as i64);
    let in_day = second % 86_400;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[..3].copy_from_slice(DAYS[(days % 7) as usize]);
    let two = |out: &mut [u8], at: usize, n: u64| {
        out[at] = b'0' + (n / 10 % 10) as u8;
        out[at + 1] = b'0' + (n % 10) as u8;
    };
    two(&mut out, 5, u64::from(day));
    out[8..11].copy_from_slice(MONTHS[(month as usize).clamp(1, 12) - 1]);
    let year = year.clamp(0, 9999) as u64;
    two(&mut out, 12, year / 100);
    two(&mut out, 14, year % 100);
    two(&mut out, 17, in_day / 3600);
    two(&mut out, 20, in_day / 60 % 60);
    two(&mut out, 23, in_day % 60);
    out
}

/// Appends `reply` to `out`; `head_only` leaves the body out (HEAD), `close` says
/// `Connection: close`.
pub fn encode(reply: &Reply<'_>, head_only: bool, close: bool, date: &mut DateCache, out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_number(out, u64::from(reply.status));
    out.push(b' ');
    out.extend_from_slice(reply.reason.as_bytes());
    out.extend_from_slice(b"\r\nServer: egnyte-receiver\r\nDate: ");
    out.extend_from_slice(date.now());
    out.extend_from_slice(b"\r\nContent-Length: ");
    push_number(out, reply.body.len() as u64);
    out.extend_from_slice(b"\r\n");
    for (name, value) in reply.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if close {
        out.extend_from_slice(b"Connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only {
        out.extend_from_slice(reply.body);
    }
}

fn push_number(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(&imf_fixdate(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&imf_fixdate(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&imf_fixdate(1_796_601_600), b"Mon, 07 Dec 2026 00:00:00 GMT");
        assert_eq!(&imf_fixdate(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn a_reply_is_a_complete_response() {
        let mut out = Vec::new();
        let reply = Reply {
            status: 503,
            reason: "Service Unavailable",
            headers: &[("Retry-After", "5")],
            body: b"busy\n",
        };
        encode(&reply, false, true, &mut DateCache::default(), &mut out);
        let text = String::from_utf8(out).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let lines: Vec<&str> = head.split("\r\n").collect();
        assert_eq!(lines[0], "HTTP/1.1 503 Service Unavailable");
        assert!(lines.contains(&"Content-Length: 5"), "{lines:?}");
        assert!(lines.contains(&"Retry-After: 5"), "{lines:?}");
        assert!(lines.contains(&"Connection: close"), "{lines:?}");
        assert!(lines.iter().any(|l| l.starts_with("Date: ") && l.ends_with(" GMT")), "{lines:?}");
        assert_eq!(body, "busy\n");
        let mut out = Vec::new();
        encode(&reply, true, false, &mut DateCache::default(), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("Retry-After: 5\r\n\r\n") && text.contains("Content-Length: 5\r\n"), "{text}");
    }
}
