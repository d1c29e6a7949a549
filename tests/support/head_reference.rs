//! A slow, obviously right reading of a request head: the oracle for `src/http/head.rs` and the
//! head phase of the connection loop (`src/http/conn.rs`).
//!
//! Written from RFC 9112/9110 and from the rules `head.rs` documents, without httparse and
//! without `head.rs`'s code: the input is cut into lines, and each line is held to its grammar
//! with plain slice operations. The fuzz target `fuzz/fuzz_targets/http_head.rs` includes this
//! file by path and compares it with the real head phase at every split of the input.
//!
//! [`expected`] reads an input whole, as if every byte had arrived in one read, and says what the
//! server must do: serve a complete head (framed as [`Request`] says), refuse it (with the
//! [`HeadError`] it is answered with), or wait for more ([`Expected::Unfinished`]). [`doomed`]
//! says whether an unfinished head can still become a valid one: the loop may refuse it before
//! it ends only if not.
//!
//! The rules, checked in this order (the order is `head.rs`'s: RFC 9112 fixes none, and every
//! refusal ends the connection):
//! 1. Empty lines (CRLF or LF) before the request line are skipped (RFC 9112 §2.2).
//! 2. Lines end with LF, with or without one CR before it (§2.2: a recipient may accept bare LF,
//!    as httparse does); a CR anywhere else is invalid. The head ends with its first empty line.
//!    A head longer than `max_head_bytes` (leading empty lines not counted) is `TooLarge`; so is
//!    an unfinished one already `max_head_bytes` long, since it can only end longer.
//! 3. The request line is `method SP request-target SP HTTP-version` with single spaces (§3):
//!    method `1*tchar`; target `1*(VCHAR / obs-text)` that is UTF-8 (head.rs hands the target out
//!    as `&str`); version `"HTTP/" DIGIT "." DIGIT`, case-sensitive (§2.3). Anything else is
//!    `Malformed`; a well-formed line naming a version other than 1.0 and 1.1 is `Version`.
//! 4. Each field line, in order, is `field-name ":" OWS field-value OWS` (§5.1) with a `1*tchar`
//!    name (so no whitespace before the colon, no obs-fold, no whitespace before the first field:
//!    §5.1, §5.2, §2.2) and a value of VCHAR, obs-text, SP and HTAB (RFC 9110 §5.5: no CTL, no
//!    DEL); the first line that breaks this is `Malformed`, the first good line past
//!    `max_headers` is `TooManyHeaders`. Values are kept without the surrounding OWS.
//! 5. A target longer than `max_target_bytes` is `TargetTooLong`.
//! 6. Framing (§6.1, §6.3; names are case-insensitive). With `Transfer-Encoding`: more than one
//!    such line, or HTTP/1.0, is `TransferEncoding`; any `Content-Length` beside it is
//!    `LengthAndEncoding`; its value is a comma-separated list of codings, each a token once
//!    trimmed (else `TransferEncoding`: empty, a stray comma, parameters, quotes); `chunked`
//!    alone (any case) is chunked, any other list `UnsupportedEncoding` (head.rs's documented
//!    choice, as nginx and Go; §6.3 item 4 asks 400 for a list not ending in `chunked`).
//!    Without it, every `Content-Length` must be `1*DIGIT` and all must be the same number (else
//!    `ContentLength`: §6.3 item 5, RFC 9110 §8.6); that number above `max_body`, or written
//!    with more than 19 significant digits (head.rs's `MAX_LENGTH_DIGITS`), is `BodyTooLarge`.
//!    No `Content-Length` means length 0: requests are never close-delimited.
//! 7. `Host` (§3.2): more than one line is `Host`, and so is none in HTTP/1.1. Its value is not
//!    checked (head.rs's documented rule).
//! 8. Keep-alive (§9.3): HTTP/1.1 unless a `Connection` token is `close`; HTTP/1.0 only with a
//!    `keep-alive` token and no `close` (tokens case-insensitive, comma-separated, trimmed).
//!    `expect_continue`: HTTP/1.1 with an `Expect` value equal to `100-continue` in any case (RFC
//!    9110 §10.1.1: ignored in HTTP/1.0).

#![allow(dead_code)]

use egnyte_receiver::http::{Framing, HeadError, Limits};

/// Most significant digits of a `Content-Length` before it is taken as too large (head.rs's
/// `MAX_LENGTH_DIGITS`: any 19-digit number fits in a `u64`).
pub const MAX_LENGTH_DIGITS: usize = 19;

/// What the server must do with an input read whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expected {
    /// A complete, valid head.
    Complete(Request),
    /// A head refused with this error.
    Refused(HeadError),
    /// No complete head yet. `doomed`: no bytes that may follow can make it a valid one.
    Unfinished {
        /// See [`doomed`].
        doomed: bool,
    },
}

/// A valid head, read the slow way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Bytes of empty lines before the request line.
    pub skipped: usize,
    /// Bytes of the head after them, its empty line included.
    pub len: usize,
    pub method: Vec<u8>,
    pub target: Vec<u8>,
    /// Minor version.
    pub version: u8,
    pub framing: Framing,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// Every field line in order: name as sent, value without the surrounding OWS.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// Reads `input` whole under `limits`.
pub fn expected(input: &[u8], limits: &Limits) -> Expected {
    let skipped = empty_lines_before(input);
    let rest = &input[skipped..];
    let (lines, _unfinished) = split_lines(rest);
    let Some(blank) = lines.iter().position(|line| line.text.is_empty()) else {
        if !rest.is_empty() && rest.len() >= limits.max_head_bytes {
            return Expected::Refused(HeadError::TooLarge);
        }
        return Expected::Unfinished { doomed: doomed(rest) };
    };
    let len = lines[blank].end;
    if len > limits.max_head_bytes {
        return Expected::Refused(HeadError::TooLarge);
    }
    let texts: Vec<&[u8]> = lines[..blank].iter().map(|line| line.text).collect();
    match request(&texts, limits) {
        Ok(mut request) => {
            request.skipped = skipped;
            request.len = len;
            Expected::Complete(request)
        }
        Err(error) => Expected::Refused(error),
    }
}

/// True when `unfinished` (the bytes after any leading empty lines, with no empty line that
/// would end a head) breaks the grammar of rules 2-4 already, whatever may follow: a request
/// line or field line that is wrong as far as it goes, or a request line for another version.
pub fn doomed(unfinished: &[u8]) -> bool {
    let (lines, partial) = split_lines(unfinished);
    for (index, line) in lines.iter().enumerate() {
        let valid = match index {
            0 => request_line(line.text).is_ok(),
            // An empty line here would have ended the head.
            _ => line.text.is_empty() || field_line(line.text).is_some(),
        };
        if !valid {
            return true;
        }
    }
    // A CR at the very end can only be followed by LF: the line before it must be whole.
    if let Some(text) = partial.strip_suffix(b"\r") {
        // Nothing before the CR: a leading empty line (first line) or the head's end.
        return !text.is_empty()
            && match lines.len() {
                0 => request_line(text).is_err(),
                _ => field_line(text).is_none(),
            };
    }
    !match lines.len() {
        0 => request_line_prefix(partial),
        _ => field_line_prefix(partial),
    }
}

/// The values of every field line of the complete head at the start of `input` named `name`
/// (case-insensitive), as rule 4 reads them; empty when the head is not complete or a line
/// before the empty line is not a field line.
pub fn field_values(input: &[u8], name: &str) -> Vec<Vec<u8>> {
    let rest = &input[empty_lines_before(input)..];
    let (lines, _) = split_lines(rest);
    let Some(blank) = lines.iter().position(|line| line.text.is_empty()) else { return Vec::new() };
    let lines = lines.get(1..blank).unwrap_or_default();
    let fields: Option<Vec<(Vec<u8>, Vec<u8>)>> = lines.iter().map(|line| field_line(line.text)).collect();
    let fields = fields.unwrap_or_default();
    values(&fields, name).into_iter().map(<[u8]>::to_vec).collect()
}

/// One line ended by LF: its text without the LF and one CR before it, and where it ends
/// (just after the LF) in the bytes it was cut from.
struct Line<'a> {
    text: &'a [u8],
    end: usize,
}

/// The lines of `bytes` that have their LF, and what follows the last LF.
fn split_lines(bytes: &[u8]) -> (Vec<Line<'_>>, &[u8]) {
    let mut lines = Vec::new();
    let mut start = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if byte == b'\n' {
            let raw = &bytes[start..at];
            lines.push(Line { text: raw.strip_suffix(b"\r").unwrap_or(raw), end: at + 1 });
            start = at + 1;
        }
    }
    (lines, &bytes[start..])
}

/// Bytes of the empty lines (CRLF or LF) that open `input`.
fn empty_lines_before(input: &[u8]) -> usize {
    let mut at = 0;
    loop {
        if input[at..].starts_with(b"\r\n") {
            at += 2;
        } else if input[at..].starts_with(b"\n") {
            at += 1;
        } else {
            return at;
        }
    }
}

/// Rules 3-8 on the lines of a complete head (without its empty line).
fn request(lines: &[&[u8]], limits: &Limits) -> Result<Request, HeadError> {
    let (method, target, version) = request_line(lines[0])?;
    let mut headers = Vec::new();
    for (index, line) in lines[1..].iter().enumerate() {
        let field = field_line(line).ok_or(HeadError::Malformed)?;
        if index + 1 > limits.max_headers {
            return Err(HeadError::TooManyHeaders);
        }
        headers.push(field);
    }
    if target.len() > limits.max_target_bytes {
        return Err(HeadError::TargetTooLong);
    }
    let framing = framing(&headers, version, limits.max_body)?;
    let hosts = values(&headers, "host").len();
    if hosts > 1 || (hosts == 0 && version == 1) {
        return Err(HeadError::Host);
    }
    let connection: Vec<&[u8]> =
        values(&headers, "connection").into_iter().flat_map(|v| v.split(|&b| b == b',')).map(trim).collect();
    let has = |token: &[u8]| connection.iter().any(|t| t.eq_ignore_ascii_case(token));
    let keep_alive = match version {
        1 => !has(b"close"),
        _ => has(b"keep-alive") && !has(b"close"),
    };
    let expect_continue =
        version == 1 && values(&headers, "expect").iter().any(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Ok(Request {
        skipped: 0,
        len: 0,
        method: method.to_vec(),
        target: target.to_vec(),
        version,
        framing,
        keep_alive,
        expect_continue,
        headers,
    })
}

/// Rule 3: method, target and minor version of a whole request line.
fn request_line(text: &[u8]) -> Result<(&[u8], &[u8], u8), HeadError> {
    let parts: Vec<&[u8]> = text.split(|&b| b == b' ').collect();
    let [method, target, version] = parts[..] else { return Err(HeadError::Malformed) };
    if !is_method(method) || !is_target(target) {
        return Err(HeadError::Malformed);
    }
    match version {
        b"HTTP/1.0" => Ok((method, target, 0)),
        b"HTTP/1.1" => Ok((method, target, 1)),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HeadError::Version)
        }
        _ => Err(HeadError::Malformed),
    }
}

/// Rule 3, on a request line still arriving: can bytes still to come make it whole and valid?
fn request_line_prefix(text: &[u8]) -> bool {
    let mut parts = text.splitn(3, |&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let Some(target) = parts.next() else { return method.iter().all(|&b| is_tchar(b)) };
    if !is_method(method) {
        return false;
    }
    let Some(version) = parts.next() else {
        return target.iter().all(|&b| is_target_byte(b)) && utf8_so_far(target);
    };
    is_target(target) && (b"HTTP/1.0".starts_with(version) || b"HTTP/1.1".starts_with(version))
}

/// Rule 4: a whole field line's name and trimmed value, if it is one.
fn field_line(text: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let colon = text.iter().position(|&b| b == b':')?;
    let (name, value) = (&text[..colon], &text[colon + 1..]);
    let valid =
        !name.is_empty() && name.iter().all(|&b| is_tchar(b)) && value.iter().all(|&b| is_value_byte(b));
    valid.then(|| (name.to_vec(), trim(value).to_vec()))
}

/// Rule 4, on a field line still arriving.
fn field_line_prefix(text: &[u8]) -> bool {
    match text.iter().position(|&b| b == b':') {
        None => text.iter().all(|&b| is_tchar(b)),
        Some(colon) => {
            colon > 0
                && text[..colon].iter().all(|&b| is_tchar(b))
                && text[colon + 1..].iter().all(|&b| is_value_byte(b))
        }
    }
}

/// Rule 6.
fn framing(headers: &[(Vec<u8>, Vec<u8>)], version: u8, max_body: u64) -> Result<Framing, HeadError> {
    let encodings = values(headers, "transfer-encoding");
    let lengths = values(headers, "content-length");
    if let Some(encoding) = encodings.first() {
        if encodings.len() > 1 || version == 0 {
            return Err(HeadError::TransferEncoding);
        }
        if !lengths.is_empty() {
            return Err(HeadError::LengthAndEncoding);
        }
        let codings: Vec<&[u8]> = encoding.split(|&b| b == b',').map(trim).collect();
        if codings.iter().any(|c| c.is_empty() || !c.iter().all(|&b| is_tchar(b))) {
            return Err(HeadError::TransferEncoding);
        }
        return match codings[..] {
            [only] if only.eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
            _ => Err(HeadError::UnsupportedEncoding),
        };
    }
    if lengths.iter().any(|v| v.is_empty() || !v.iter().all(u8::is_ascii_digit)) {
        return Err(HeadError::ContentLength);
    }
    let numbers: Vec<&[u8]> = lengths.iter().map(|v| without_leading_zeros(v)).collect();
    if numbers.windows(2).any(|pair| pair[0] != pair[1]) {
        return Err(HeadError::ContentLength);
    }
    let Some(digits) = numbers.first() else { return Ok(Framing::Length(0)) };
    if digits.len() > MAX_LENGTH_DIGITS {
        return Err(HeadError::BodyTooLarge);
    }
    let length = digits.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
    if length > max_body {
        return Err(HeadError::BodyTooLarge);
    }
    Ok(Framing::Length(length))
}

/// The values of every field named `name`, case-insensitively, in order.
fn values<'h>(headers: &'h [(Vec<u8>, Vec<u8>)], name: &str) -> Vec<&'h [u8]> {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
        .map(|(_, v)| v.as_slice())
        .collect()
}

fn without_leading_zeros(digits: &[u8]) -> &[u8] {
    let first = digits.iter().position(|&d| d != b'0').unwrap_or(digits.len());
    &digits[first..]
}

/// Without SP and HTAB at both ends (OWS).
fn trim(bytes: &[u8]) -> &[u8] {
    let mut bytes = bytes;
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// RFC 9110 §5.6.2 tchar.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_method(method: &[u8]) -> bool {
    !method.is_empty() && method.iter().all(|&b| is_tchar(b))
}

/// VCHAR or obs-text.
fn is_target_byte(b: u8) -> bool {
    (0x21..=0x7e).contains(&b) || b >= 0x80
}

fn is_target(target: &[u8]) -> bool {
    !target.is_empty() && target.iter().all(|&b| is_target_byte(b)) && std::str::from_utf8(target).is_ok()
}

/// VCHAR, obs-text, SP or HTAB.
fn is_value_byte(b: u8) -> bool {
    is_target_byte(b) || b == b' ' || b == b'\t'
}

/// UTF-8 as far as it goes: valid, or cut inside its last character.
fn utf8_so_far(bytes: &[u8]) -> bool {
    match std::str::from_utf8(bytes) {
        Ok(_) => true,
        Err(error) => error.error_len().is_none(),
    }
}
