//! A request's head: finding where it ends, parsing it, and deciding how its body is framed.
//!
//! This module owns everything RFC 9112 says about the bytes before a body: the request line,
//! the header section, and the framing headers (`Content-Length`, `Transfer-Encoding`, `Host`,
//! `Connection`, `Expect`). It works on bytes the connection loop has buffered and never reads a
//! socket. `httparse` parses the lines; the rules it does not check are checked here, and every
//! failure is a [`HeadError`] whose status lives in one `match` ([`HeadError::status`]).
//!
//! Invariants:
//! * The loop looks for the end of a head only in bytes it has not scanned before
//!   ([`find_end`] takes where the last scan stopped), so a head trickled byte by byte costs
//!   linear time, and a head still incomplete after [`Limits::max_head_bytes`] is refused (431):
//!   memory for an unfinished head is bounded before anything is authenticated.
//! * A head is accepted only with exactly one way to find its body's end: no body, one valid
//!   `Content-Length` (identical repeats allowed), or `Transfer-Encoding: chunked` alone. Anything
//!   else is refused, and since the rest of the byte stream can then not be trusted, the loop
//!   closes the connection after answering.
//! * Parsed heads are kept as byte ranges into the buffer ([`Parsed`], [`Field`]), so the loop
//!   can go on reading into another buffer while the head stays where it is, with no copy.
//!
//! For the next maintainer: a new limit needs its `HeadError` variant, its line in
//! [`HeadError::status`] and [`HeadError::message`], a table test at limit and limit + 1, and a
//! word in the README's limits table.

use std::mem::MaybeUninit;
use std::ops::Range;

/// Default `--max-headers`: header lines in one head; one more is answered 431.
pub const DEFAULT_MAX_HEADERS: usize = 100;
/// Default `--max-header-bytes`: request line, headers and the empty line together (and, for
/// chunked bodies, the trailer section); more is answered 431 and the connection closed.
pub const DEFAULT_MAX_HEAD_BYTES: usize = 32 * 1024;
/// Longest request target; a longer one is answered 414 (RFC 9112 §3 asks servers to support
/// at least 8000 octets).
pub const MAX_TARGET_BYTES: usize = 8 * 1024;
/// An unfinished head is checked for bytes that can never become a request (a TLS handshake,
/// binary junk) while it is at most this long, so such a client gets its 400 at once instead of
/// at the read timeout; past it, the head completes or hits its size limit soon enough.
pub const EARLY_CHECK_BYTES: usize = 1024;
/// Most decimal digits read from a `Content-Length` before it is taken as too large (413): 19
/// digits always fit in a `u64`.
const MAX_LENGTH_DIGITS: usize = 19;

/// The limits on one head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Header lines at most ([`DEFAULT_MAX_HEADERS`]).
    pub max_headers: usize,
    /// Bytes of a head at most ([`DEFAULT_MAX_HEAD_BYTES`]).
    pub max_head_bytes: usize,
    /// Bytes of the request target at most ([`MAX_TARGET_BYTES`]).
    pub max_target_bytes: usize,
    /// Largest body, as declared by `Content-Length` or decoded from chunks.
    pub max_body: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_headers: DEFAULT_MAX_HEADERS,
            max_head_bytes: DEFAULT_MAX_HEAD_BYTES,
            max_target_bytes: MAX_TARGET_BYTES,
            max_body: 16 << 20,
        }
    }
}

/// Why a head is refused. Every one of them ends the connection after its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeadError {
    /// The request line or a header line breaks the grammar (bad method or target, a header
    /// without a colon, whitespace before a colon, obs-fold, a control character, bare CR).
    Malformed,
    /// More header lines than [`Limits::max_headers`].
    TooManyHeaders,
    /// The head is longer than [`Limits::max_head_bytes`].
    TooLarge,
    /// The request target is longer than [`Limits::max_target_bytes`].
    TargetTooLong,
    /// A well-formed request line for an HTTP version other than 1.0 and 1.1.
    Version,
    /// HTTP/1.1 without `Host`, or several `Host` lines.
    Host,
    /// A `Content-Length` that is not plain digits, or several that differ.
    ContentLength,
    /// A `Content-Length` above [`Limits::max_body`].
    BodyTooLarge,
    /// Both `Transfer-Encoding` and `Content-Length`.
    LengthAndEncoding,
    /// A malformed `Transfer-Encoding` (empty, several lines, parameters, a stray comma), or one
    /// in an HTTP/1.0 request.
    TransferEncoding,
    /// A well-formed `Transfer-Encoding` other than `chunked` alone (`gzip, chunked`, `identity`).
    UnsupportedEncoding,
}

impl HeadError {
    /// The status code and reason phrase this error is answered with.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            HeadError::Malformed
            | HeadError::Host
            | HeadError::ContentLength
            | HeadError::LengthAndEncoding
            | HeadError::TransferEncoding => (400, "Bad Request"),
            HeadError::TooManyHeaders | HeadError::TooLarge => (431, "Request Header Fields Too Large"),
            HeadError::TargetTooLong => (414, "URI Too Long"),
            HeadError::BodyTooLarge => (413, "Content Too Large"),
            HeadError::UnsupportedEncoding => (501, "Not Implemented"),
            HeadError::Version => (505, "HTTP Version Not Supported"),
        }
    }

    /// The one-line text answered to the client.
    pub fn message(self) -> &'static str {
        match self {
            HeadError::Malformed => "malformed request line or header field",
            HeadError::TooManyHeaders => "too many header fields",
            HeadError::TooLarge => "request header section too large",
            HeadError::TargetTooLong => "request target too long",
            HeadError::Version => "only HTTP/1.0 and HTTP/1.1 are supported",
            HeadError::Host => "HTTP/1.1 needs exactly one Host header",
            HeadError::ContentLength => "malformed Content-Length",
            HeadError::BodyTooLarge => "body larger than the limit",
            HeadError::LengthAndEncoding => "Content-Length and Transfer-Encoding together",
            HeadError::TransferEncoding => "malformed Transfer-Encoding",
            HeadError::UnsupportedEncoding => "only the chunked transfer coding is supported",
        }
    }
}

/// How a request's body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `Content-Length` bytes (0 without the header: requests are never close-delimited).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// One header line, as byte ranges into the head's buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    name: Range<usize>,
    value: Range<usize>,
}

/// A parsed head, as byte ranges into the buffer it was parsed from; [`Parsed::view`] gives the
/// borrowed [`Head`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes of the head, the empty line included: the body starts here.
    pub len: usize,
    method: Range<usize>,
    target: Range<usize>,
    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub version: u8,
    /// How the body ends.
    pub framing: Framing,
    /// The connection may carry another request after this one.
    pub keep_alive: bool,
    /// HTTP/1.1 with `Expect: 100-continue`: the client waits for `100 Continue`.
    pub expect_continue: bool,
}

/// A borrowed view of one request's head.
#[derive(Debug, Clone, Copy)]
pub struct Head<'b> {
    buf: &'b [u8],
    parsed: &'b Parsed,
    fields: &'b [Field],
}

impl<'b> Parsed {
    /// The head as a view over `buf` (the buffer it was parsed from) and `fields` (filled by the
    /// same [`parse`]).
    pub fn view(&'b self, buf: &'b [u8], fields: &'b [Field]) -> Head<'b> {
        Head { buf, parsed: self, fields }
    }
}

impl<'b> Head<'b> {
    /// The method, case-sensitive as HTTP says.
    pub fn method(&self) -> &'b str {
        text(&self.buf[self.parsed.method.clone()])
    }

    /// The request target as sent (origin form, maybe with a query string).
    pub fn target(&self) -> &'b str {
        text(&self.buf[self.parsed.target.clone()])
    }

    /// Minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn version(&self) -> u8 {
        self.parsed.version
    }

    /// How the body ends.
    pub fn framing(&self) -> Framing {
        self.parsed.framing
    }

    /// True unless the request has no body at all (`Content-Length: 0` or none).
    pub fn has_body(&self) -> bool {
        self.parsed.framing != Framing::Length(0)
    }

    /// Every header line, in order: name as sent, raw value with surrounding whitespace removed.
    pub fn headers(&self) -> impl Iterator<Item = (&'b str, &'b [u8])> + 'b {
        let buf = self.buf;
        self.fields.iter().map(move |f| (text(&buf[f.name.clone()]), &buf[f.value.clone()]))
    }

    /// The values of every header line called `name` (case-insensitive), in order.
    pub fn values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'b [u8]> + 'n
    where
        'b: 'n,
    {
        self.fields().values(name)
    }

    /// The header lines alone.
    pub fn fields(&self) -> Fields<'b> {
        Fields { buf: self.buf, fields: self.fields }
    }
}

/// The header lines of a head, without the request line: also those of a head refused after
/// its lines were read (a `Content-Length` over the limit), for the service's log.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'b> {
    buf: &'b [u8],
    fields: &'b [Field],
}

impl<'b> Fields<'b> {
    /// No header lines (a head refused before its lines were read).
    pub const NONE: Fields<'static> = Fields { buf: &[], fields: &[] };

    /// `fields` as filled by [`parse`] from `buf`, also when it refused the head.
    pub fn new(buf: &'b [u8], fields: &'b [Field]) -> Fields<'b> {
        Fields { buf, fields }
    }

    /// The values of every header line called `name` (case-insensitive), in order.
    pub fn values<'n>(&self, name: &'n str) -> impl Iterator<Item = &'b [u8]> + 'n
    where
        'b: 'n,
    {
        let buf = self.buf;
        self.fields
            .iter()
            .filter(move |f| buf.get(f.name.clone()).is_some_and(|n| text(n).eq_ignore_ascii_case(name)))
            .filter_map(move |f| buf.get(f.value.clone()))
    }
}

/// Bytes httparse has already checked to be ASCII tokens or visible characters; anything else
/// (a target with bytes ≥ 0x80 that are not UTF-8) was refused by [`parse`].
fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

/// How many empty lines (CRLF or LF) open `buf`: RFC 9112 §2.2 asks a server to ignore them
/// before a request line. A lone CR at the very end is not counted yet (its LF may follow).
pub fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut at = 0;
    loop {
        match &buf[at..] {
            [b'\r', b'\n', ..] => at += 2,
            [b'\n', ..] => at += 1,
            _ => return at,
        }
    }
}

/// Where the head at the start of `buf` ends (the index just after its empty line), if it is
/// complete. `scanned` is how far an earlier call looked without finding it: only the bytes
/// after that (and the 2 before, for a line end split across reads) are looked at again.
///
/// httparse accepts bare LF line ends, so the end is a line feed followed by `\n` or `\r\n`.
pub fn find_end(buf: &[u8], scanned: usize) -> Option<usize> {
    let mut at = scanned.saturating_sub(2);
    loop {
        let lf = at + buf.get(at..)?.iter().position(|&b| b == b'\n')?;
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) => return Some(lf + 3),
            _ => at = lf + 1,
        }
    }
}

/// For an unfinished head of at most [`EARLY_CHECK_BYTES`]: the error it is bound to get, if
/// its bytes so far already break the request line's grammar.
pub fn early_error(buf: &[u8]) -> Option<HeadError> {
    if buf.is_empty() || buf.len() > EARLY_CHECK_BYTES {
        return None;
    }
    // No room for headers: a complete header line is TooManyHeaders, which says nothing here.
    match httparse::Request::new(&mut []).parse(buf) {
        Ok(_) | Err(httparse::Error::TooManyHeaders) => None,
        // 505 or 400 depends on the whole request line (`HTTP/2.0` vs `HTTP/2.0x`): wait for its
        // end, so that the answer does not depend on how the bytes were split.
        Err(httparse::Error::Version) if !buf.contains(&b'\n') && may_become_versioned(buf) => None,
        Err(httparse::Error::Version) if !buf.contains(&b'\n') => Some(HeadError::Malformed),
        Err(httparse::Error::Version) => Some(version_error(buf)),
        Err(_) => Some(HeadError::Malformed),
    }
}

/// Whether an unfinished request line (no line feed yet) can still become `method SP target SP
/// HTTP/d.d`, whatever the version's digits.
fn may_become_versioned(line: &[u8]) -> bool {
    let line = &line[leading_empty_lines(line)..];
    // A CR at the end may be the start of the line's CRLF.
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let token = |part: Option<&[u8]>| part.is_none_or(|p| p.iter().all(|&b| is_token(b)));
    let visible =
        |part: Option<&[u8]>| part.is_none_or(|p| p.iter().all(|&b| b.is_ascii_graphic() || b >= 0x80));
    let versioned = |part: Option<&[u8]>| {
        part.is_none_or(|p| {
            p.len() <= 8
                && p.iter().zip(b"HTTP/0.0").all(|(&b, &pattern)| match pattern {
                    b'0' => b.is_ascii_digit(),
                    other => b == other,
                })
        })
    };
    parts.next().is_none() && token(method) && visible(target) && versioned(version)
}

/// httparse's header array, kept across requests so that parsing a head allocates nothing.
#[derive(Debug, Default)]
pub struct Scratch {
    headers: Vec<httparse::Header<'static>>,
}

/// An empty vector of headers borrowing from any buffer, reusing `headers`' allocation (an
/// empty `Vec` mapped in place keeps its buffer: element size and alignment are unchanged).
fn recycle<'a, 'b>(mut headers: Vec<httparse::Header<'a>>) -> Vec<httparse::Header<'b>> {
    headers.clear();
    headers.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

/// Parses the complete head `buf[..end]` (`end` from [`find_end`]); fills `fields` with its
/// header lines. `buf` may hold more (a body, pipelined requests): it is not looked at.
pub fn parse(
    buf: &[u8],
    end: usize,
    limits: &Limits,
    scratch: &mut Scratch,
    fields: &mut Vec<Field>,
) -> Result<Parsed, HeadError> {
    let head = &buf[..end];
    // Cleared on every path, so that a refused head's `fields` never describe an earlier one
    // (the connection hands them to the service with the refusal).
    fields.clear();
    if end > limits.max_head_bytes {
        return Err(HeadError::TooLarge);
    }
    let mut headers = recycle(std::mem::take(&mut scratch.headers));
    headers.reserve(limits.max_headers);
    let spare: &mut [MaybeUninit<httparse::Header<'_>>] =
        &mut headers.spare_capacity_mut()[..limits.max_headers];
    let mut request = httparse::Request::new(&mut []);
    let parsed = match request.parse_with_uninit_headers(head, spare) {
        Ok(httparse::Status::Complete(len)) if len == end => Ok(()),
        // The end was found by a line feed httparse does not take as one (after a bare CR).
        Ok(_) => Err(HeadError::Malformed),
        Err(httparse::Error::TooManyHeaders) => Err(HeadError::TooManyHeaders),
        Err(httparse::Error::Version) => Err(version_error(head)),
        Err(_) => Err(HeadError::Malformed),
    };
    let result = parsed.and_then(|()| {
        // httparse's slices all point into `head`; an empty one may not, and needs no place.
        let range = |s: &[u8]| match (s.as_ptr() as usize).wrapping_sub(head.as_ptr() as usize) {
            start if !s.is_empty() && start + s.len() <= head.len() => start..start + s.len(),
            _ => 0..0,
        };
        let (Some(method), Some(target), Some(version)) = (request.method, request.path, request.version)
        else {
            return Err(HeadError::Malformed);
        };
        if target.len() > limits.max_target_bytes {
            return Err(HeadError::TargetTooLong);
        }
        fields.extend(
            request.headers.iter().map(|h| Field { name: range(h.name.as_bytes()), value: range(h.value) }),
        );
        let mut parsed = Parsed {
            len: end,
            method: range(method.as_bytes()),
            target: range(target.as_bytes()),
            version,
            framing: Framing::Length(0),
            keep_alive: false,
            expect_continue: false,
        };
        let view = parsed.view(head, fields);
        let framing = framing(&view, limits)?;
        host(&view)?;
        let keep_alive = keep_alive(&view);
        let expect_continue =
            version == 1 && view.values("expect").any(|v| v.eq_ignore_ascii_case(b"100-continue"));
        parsed.framing = framing;
        parsed.keep_alive = keep_alive;
        parsed.expect_continue = expect_continue;
        Ok(parsed)
    });
    scratch.headers = recycle(headers);
    result
}

/// httparse's `Version` error also covers a broken request line (`GET /a b HTTP/1.1`); only a
/// well-formed line naming another version (`HTTP/2.0`, `HTTP/1.2`) is a 505.
fn version_error(head: &[u8]) -> HeadError {
    let skip = leading_empty_lines(head);
    let line = head[skip..].split(|&b| b == b'\n').next().unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return HeadError::Malformed;
    };
    let well_formed = !method.is_empty()
        && method.iter().all(|&b| is_token(b))
        && !target.is_empty()
        && target.iter().all(|&b| b.is_ascii_graphic() || b >= 0x80)
        && matches!(version, [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit());
    if well_formed {
        HeadError::Version
    } else {
        HeadError::Malformed
    }
}

/// RFC 9110 token characters.
fn is_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// The body's framing, from `Transfer-Encoding` and `Content-Length` (RFC 9112 §6.3).
fn framing(head: &Head<'_>, limits: &Limits) -> Result<Framing, HeadError> {
    let mut encodings = head.values("transfer-encoding");
    if let Some(encoding) = encodings.next() {
        if encodings.next().is_some() || head.version() == 0 {
            return Err(HeadError::TransferEncoding);
        }
        if head.values("content-length").next().is_some() {
            return Err(HeadError::LengthAndEncoding);
        }
        return transfer_coding(encoding);
    }
    // Every line's syntax and their agreement first (400), then the size (413).
    let mut length: Option<&[u8]> = None;
    for value in head.values("content-length") {
        let digits = content_length(value)?;
        if length.is_some_and(|seen| seen != digits) {
            return Err(HeadError::ContentLength);
        }
        length = Some(digits);
    }
    let digits = length.unwrap_or_default();
    if digits.len() > MAX_LENGTH_DIGITS {
        return Err(HeadError::BodyTooLarge);
    }
    match digits.iter().fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')) {
        n if n > limits.max_body => Err(HeadError::BodyTooLarge),
        n => Ok(Framing::Length(n)),
    }
}

/// `chunked` alone (any case) is the one coding taken; a well-formed list of other codings is
/// [`HeadError::UnsupportedEncoding`] (501), anything else [`HeadError::TransferEncoding`] (400).
fn transfer_coding(value: &[u8]) -> Result<Framing, HeadError> {
    let mut codings = 0;
    let mut chunked_alone = true;
    for coding in value.split(|&b| b == b',') {
        let coding = trim(coding);
        if coding.is_empty() || !coding.iter().all(|&b| is_token(b)) {
            return Err(HeadError::TransferEncoding);
        }
        codings += 1;
        chunked_alone &= coding.eq_ignore_ascii_case(b"chunked");
    }
    if codings == 1 && chunked_alone {
        Ok(Framing::Chunked)
    } else {
        Err(HeadError::UnsupportedEncoding)
    }
}

/// Plain ASCII digits, not empty, no sign or space: the significant digits (leading zeros
/// dropped, so `007` and `7` are one length), not yet checked against any size.
fn content_length(value: &[u8]) -> Result<&[u8], HeadError> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(HeadError::ContentLength);
    }
    Ok(&value[value.iter().position(|&d| d != b'0').unwrap_or(value.len())..])
}

/// HTTP/1.1 needs exactly one `Host`; HTTP/1.0 at most one.
fn host(head: &Head<'_>) -> Result<(), HeadError> {
    let mut hosts = head.values("host");
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(HeadError::Host),
        (None, None) if head.version() == 1 => Err(HeadError::Host),
        _ => Ok(()),
    }
}

/// HTTP/1.1 without `Connection: close`, or HTTP/1.0 with `Connection: keep-alive`.
fn keep_alive(head: &Head<'_>) -> bool {
    let tokens = || head.values("connection").flat_map(|v| v.split(|&b| b == b',')).map(trim);
    let has = |token: &[u8]| tokens().any(|t| t.eq_ignore_ascii_case(token));
    match head.version() {
        1 => !has(b"close"),
        _ => has(b"keep-alive") && !has(b"close"),
    }
}

fn trim(value: &[u8]) -> &[u8] {
    let start = value.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(value.len());
    let end = value.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |e| e + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_headers: 4, max_head_bytes: 256, max_target_bytes: 32, max_body: 1000 }
    }

    /// Parses `input` whole (it must hold a complete head).
    fn run(input: &str) -> Result<(Parsed, Vec<(String, String)>), HeadError> {
        let buf = input.as_bytes();
        let skip = leading_empty_lines(buf);
        let end = find_end(&buf[skip..], 0).expect("a complete head");
        let mut fields = Vec::new();
        let parsed = parse(&buf[skip..], end, &limits(), &mut Scratch::default(), &mut fields)?;
        let view = parsed.view(&buf[skip..], &fields);
        let pairs =
            view.headers().map(|(n, v)| (n.to_owned(), String::from_utf8_lossy(v).into_owned())).collect();
        Ok((parsed, pairs))
    }

    fn ok(input: &str) -> Parsed {
        run(input).unwrap_or_else(|e| panic!("{input:?}: {e:?}")).0
    }

    fn err(input: &str, expected: HeadError) {
        assert_eq!(run(input).map(|(p, _)| p), Err(expected), "{input:?}");
    }

    #[test]
    fn a_refused_head_leaves_only_its_own_lines_in_fields() {
        let mut fields = Vec::new();
        let mut scratch = Scratch::default();
        let good = b"GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 1.2.3.4\r\n\r\n";
        parse(good, good.len(), &limits(), &mut scratch, &mut fields).unwrap();
        assert_eq!(fields.len(), 2);
        // Refused for its size before its lines are read: none, not the last head's.
        let long = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "y".repeat(300));
        assert_eq!(
            parse(long.as_bytes(), long.len(), &limits(), &mut scratch, &mut fields),
            Err(HeadError::TooLarge)
        );
        assert!(fields.is_empty());
        // Refused for its body's size after its lines were read: they are there.
        let big = b"POST / HTTP/1.1\r\nHost: a\r\nX-Real-IP: 5.6.7.8\r\nContent-Length: 1001\r\n\r\n";
        assert_eq!(parse(big, big.len(), &limits(), &mut scratch, &mut fields), Err(HeadError::BodyTooLarge));
        let real_ip: Vec<&[u8]> = Fields::new(big, &fields).values("x-real-ip").collect();
        assert_eq!(real_ip, [&b"5.6.7.8"[..]]);
        assert_eq!(Fields::NONE.values("x-real-ip").count(), 0);
        // A broken line: none.
        let broken = b"GET / HTTP/1.1\r\nHost: a\r\nX-Real-IP 1\r\n\r\n";
        assert_eq!(
            parse(broken, broken.len(), &limits(), &mut scratch, &mut fields),
            Err(HeadError::Malformed)
        );
        assert!(fields.is_empty());
    }

    #[test]
    fn the_end_of_a_head_is_found_in_new_bytes_only() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY";
        assert_eq!(find_end(head, 0), Some(27));
        // Whatever the split, resuming where the last scan stopped finds the same end.
        for split in 0..head.len() {
            let first = find_end(&head[..split], 0);
            let end = first.or_else(|| find_end(head, split));
            assert_eq!(end, Some(27), "split at {split}");
        }
        assert_eq!(find_end(b"GET / HTTP/1.1\nHost: a\n\nX", 0), Some(24));
        assert_eq!(find_end(b"GET / HTTP/1.1\nHost: a\n\r\nX", 0), Some(25));
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nHost: a\r\n", 0), None);
        assert_eq!(find_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", 0), None);
        assert_eq!(leading_empty_lines(b"\r\n\nGET"), 3);
        assert_eq!(leading_empty_lines(b"\r"), 0);
    }

    #[test]
    fn hopeless_heads_are_refused_before_they_end() {
        assert_eq!(early_error(b"\x16\x03\x01\x02\x00\x01"), Some(HeadError::Malformed));
        assert_eq!(early_error(b"GET / HTTP/9.9\r\n"), Some(HeadError::Version));
        // Before the request line ends, a version httparse refuses is not judged yet: the rest
        // of the line decides between 505 and 400 (found by fuzz/http_head).
        assert_eq!(early_error(b"GET / HTTP/9"), None);
        assert_eq!(early_error(b"GET / HTTP/2.0"), None);
        assert_eq!(early_error(b"GET / HTTP/2.0\r"), None);
        assert_eq!(early_error(b"GET / HTTP/2.0x\r\n"), Some(HeadError::Malformed));
        assert_eq!(early_error(b"GE T /"), Some(HeadError::Malformed));
        for fine in [&b"GET"[..], b"POST /egnyte/webhook HT", b"GET / HTTP/1.1\r\nHost: a\r\nX-Y: 1\r\n"] {
            assert_eq!(early_error(fine), None, "{fine:?}");
        }
        assert_eq!(early_error(&[0u8; EARLY_CHECK_BYTES + 1]), None, "only the first KiB is checked");
    }

    #[test]
    fn heads_that_parse() {
        let p = ok("POST /hook?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(
            (p.version, p.framing, p.keep_alive, p.expect_continue),
            (1, Framing::Length(5), true, false)
        );
        let (p, headers) = run("GET / HTTP/1.0\r\nX:  spaced value \t\r\n\r\n").unwrap();
        assert_eq!((p.version, p.framing, p.keep_alive), (0, Framing::Length(0), false));
        assert_eq!(headers, [("X".to_owned(), "spaced value".to_owned())]);
        assert_eq!(ok("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n").framing, Framing::Length(0));
        assert_eq!(ok("GET / HTTP/1.1\nHost: a\n\n").version, 1);
        let p =
            ok("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\tCHUNKED\r\nExpect: 100-continue\r\n\r\n");
        assert_eq!((p.framing, p.expect_continue), (Framing::Chunked, true));
        assert!(!ok("POST / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n").expect_continue);
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\ncontent-length: 007\r\n\r\n").framing,
            Framing::Length(7)
        );
    }

    #[test]
    fn limits_at_and_over() {
        let headers = |n: usize| (0..n).map(|i| format!("H{i}: v\r\n")).collect::<String>();
        ok(&format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", headers(3)));
        err(&format!("GET / HTTP/1.1\r\nHost: a\r\n{}\r\n", headers(4)), HeadError::TooManyHeaders);
        let target = |n: usize| format!("/{}", "a".repeat(n - 1));
        ok(&format!("GET {} HTTP/1.1\r\nHost: a\r\n\r\n", target(32)));
        err(&format!("GET {} HTTP/1.1\r\nHost: a\r\n\r\n", target(33)), HeadError::TargetTooLong);
        // 256 bytes exactly, then 257.
        let fill = |n: usize| format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(n));
        let at = 256 - fill(0).len();
        assert_eq!(fill(at).len(), 256);
        ok(&fill(at));
        err(&fill(at + 1), HeadError::TooLarge);
        ok("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1000\r\n\r\n");
        err("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n", HeadError::BodyTooLarge);
        err(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
            HeadError::BodyTooLarge,
        );
    }

    #[test]
    fn grammar_errors() {
        use HeadError::*;
        let cases: &[(&str, HeadError)] = &[
            ("GE T / HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            ("GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", Malformed),
            ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", Version),
            ("GET / HTTP/2.0\r\n\r\n", Version),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Version),
            ("GET / http/1.1\r\nHost: a\r\n\r\n", Malformed),
            ("GET /\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\nContent-Length : 5\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\n Host: a\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\nHost: a\r\n: v\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", Malformed),
            ("\x16\x03\x01\x02\x00\r\n\r\n", Malformed),
            ("GET / HTTP/1.1\r\n\r\n", Host),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", Host),
            ("GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", Host),
        ];
        for &(input, expected) in cases {
            err(input, expected);
        }
    }

    #[test]
    fn framing_rules() {
        use HeadError::*;
        let te = |value: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: {value}\r\n\r\n");
        for bad in ["", ",chunked", "chunked,", "chunked;a=b", "chunked ,, gzip", "\"chunked\""] {
            err(&te(bad), TransferEncoding);
        }
        for unsupported in
            ["xchunked", "identity", "gzip", "gzip, chunked", "chunked, identity", "chunked, chunked"]
        {
            err(&te(unsupported), UnsupportedEncoding);
        }
        assert_eq!(ok(&te("Chunked")).framing, Framing::Chunked);
        err(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
            TransferEncoding,
        );
        err("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", TransferEncoding);
        err(
            "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
            LengthAndEncoding,
        );
        err(
            "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: gzip\r\n\r\n",
            LengthAndEncoding,
        );
        let cl = |value: &str| format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\n");
        for bad in ["abc", "-1", "+5", "0x10", "1e3", "5 5", "5, 5", "5,5", "٣"] {
            err(&cl(bad), ContentLength);
        }
        // An empty value: httparse gives "", which is not a number.
        err("POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", ContentLength);
        err("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", ContentLength);
        // Differing or broken lines are 400 even when one of them is also too large (found by
        // fuzz/http_head): the framing is wrong before the size is.
        let huge = "99999999999999999999";
        err(
            &format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: {huge}\r\n\r\n"),
            ContentLength,
        );
        err(
            &format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {huge}\r\nContent-Length: abc\r\n\r\n"),
            ContentLength,
        );
        err(
            &format!(
                "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {huge}\r\nContent-Length: 0{huge}\r\n\r\n"
            ),
            BodyTooLarge,
        );
        assert_eq!(ok(&cl("00000000000000000000000000012")).framing, Framing::Length(12));
    }

    #[test]
    fn connection_semantics() {
        let cases: &[(&str, bool)] = &[
            ("GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
            ("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: a\r\nconnection: Keep-Alive, CLOSE\r\n\r\n", false),
            ("GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n", true),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection:  Keep-Alive \r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", false),
        ];
        for &(input, keep_alive) in cases {
            assert_eq!(ok(input).keep_alive, keep_alive, "{input:?}");
        }
    }

    #[test]
    fn the_scratch_allocation_is_reused() {
        let mut scratch = Scratch::default();
        let mut fields = Vec::new();
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        parse(head, head.len(), &limits(), &mut scratch, &mut fields).unwrap();
        let pointer = scratch.headers.as_ptr();
        assert!(scratch.headers.capacity() >= limits().max_headers);
        parse(head, head.len(), &limits(), &mut scratch, &mut fields).unwrap();
        assert_eq!(scratch.headers.as_ptr(), pointer);
    }
}
