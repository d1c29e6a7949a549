//! A slow, obviously right chunked decoder: the oracle for [`ChunkedDecoder`](super::ChunkedDecoder).
//!
//! It sees the whole input at once and works a line at a time: find the line's LF, check the
//! line against its grammar (written as plain recursive descent over a slice, not as the
//! decoder's states), check the limits, take the data by slicing. It shares nothing with the
//! decoder but the public types, so that one mistake cannot hide in both.
//!
//! The promise, checked by the unit tests and the `http_chunked` fuzz target: for every input
//! and limits, [`decode_reference`] equals what the decoder reaches when fed the same bytes in
//! pieces of any size — [`Reference::Done`] with the same data and consumed count,
//! [`Reference::Incomplete`] (the decoder says `NeedMore`) with the same data so far, or
//! [`Reference::Invalid`] with the same error variant at the same offset
//! ([`ChunkedDecoder::position`](super::ChunkedDecoder::position)).
//!
//! To find the same error as a decoder that reads byte by byte, each line's faults are placed:
//! the first byte the grammar cannot extend (`fault`), and the byte at which a limit is
//! exceeded; the earlier wins, the grammar on a tie. Bytes from a fault on are never counted.
//! A CR that could end the line but is not followed by LF is a fault at the byte after it.
//!
//! Not for production: it allocates the body and is quadratic in places. Public only for the
//! fuzz target.

use super::{ChunkedError, ChunkedLimits};

/// The outcome of decoding a whole input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    /// The body is complete.
    Done {
        /// The chunk data.
        body: Vec<u8>,
        /// Input bytes up to and including the final CRLF.
        consumed: usize,
    },
    /// The input ends before the body does; nothing in it is wrong yet.
    Incomplete {
        /// The chunk data so far.
        body: Vec<u8>,
    },
    /// The input is not a valid chunked body (or goes over a limit).
    Invalid {
        /// What is wrong.
        error: ChunkedError,
        /// The offset of the byte at which it is known.
        offset: usize,
    },
}

/// Decodes `input` (a chunked body, maybe followed by other bytes) as a whole.
pub fn decode_reference(input: &[u8], limits: ChunkedLimits) -> Reference {
    match decode(input, limits) {
        Ok((body, consumed)) => Reference::Done { body, consumed },
        Err(Stop::Incomplete(body)) => Reference::Incomplete { body },
        Err(Stop::Invalid(error, offset)) => Reference::Invalid { error, offset },
    }
}

enum Stop {
    Incomplete(Vec<u8>),
    Invalid(ChunkedError, usize),
}

/// One line of the input, from `start`.
struct Line<'a> {
    start: usize,
    /// The line's bytes without its CRLF. For a line cut by a bare LF, up to and including that
    /// LF; for the input's last, unterminated line, up to the end, less a final CR.
    bytes: &'a [u8],
    /// Where the next line starts, if the line ends with CRLF.
    next: Option<usize>,
    /// True if the line ends with CRLF, or with a CR that is the input's last byte: either way
    /// the line's content is all there.
    whole: bool,
}

fn line_at(input: &[u8], start: usize) -> Line<'_> {
    let rest = &input[start..];
    match rest.iter().position(|&b| b == b'\n') {
        Some(lf) if lf > 0 && rest[lf - 1] == b'\r' => {
            Line { start, bytes: &rest[..lf - 1], next: Some(start + lf + 1), whole: true }
        }
        Some(lf) => Line { start, bytes: &rest[..=lf], next: None, whole: false },
        None if rest.last() == Some(&b'\r') => {
            Line { start, bytes: &rest[..rest.len() - 1], next: None, whole: true }
        }
        None => Line { start, bytes: rest, next: None, whole: false },
    }
}

/// A place where a line goes wrong: `error` reported at `offset` (from the line's start);
/// bytes from `uncounted` on do not count toward limits.
struct Fault {
    error: ChunkedError,
    offset: usize,
    uncounted: usize,
}

/// Where `bytes` first leaves `grammar`, which returns the length of the longest prefix of
/// `bytes` that could start a valid line, and whether all of `bytes` is one. `whole`: the
/// line's content is complete, so not being a valid line is a fault at its end.
fn fault(
    bytes: &[u8],
    whole: bool,
    grammar: fn(&[u8]) -> (usize, bool),
    error_at: impl Fn(usize) -> ChunkedError,
) -> Option<Fault> {
    let (viable, valid) = grammar(bytes);
    let at = |error, offset, uncounted| Some(Fault { error, offset, uncounted });
    match bytes.get(viable) {
        None if whole && !valid => at(error_at(viable), viable, viable),
        None => None,
        Some(b'\n') => at(ChunkedError::BadLineEnd, viable, viable),
        Some(b'\r') if grammar(&bytes[..viable]).1 => at(ChunkedError::BadLineEnd, viable + 1, viable),
        Some(_) => at(error_at(viable), viable, viable),
    }
}

/// Where counting `bytes[from..uncounted]` against `budget` more goes over it.
fn over_budget(from: usize, uncounted: usize, budget: usize) -> Option<usize> {
    (uncounted.saturating_sub(from) > budget).then(|| from + budget)
}

fn decode(input: &[u8], limits: ChunkedLimits) -> Result<(Vec<u8>, usize), Stop> {
    let mut body = Vec::new();
    let mut at = 0;
    let mut extension_bytes = 0;
    loop {
        let line = line_at(input, at);
        let invalid = |error, offset| Stop::Invalid(error, line.start + offset);
        let digits = line.bytes.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits > 16 {
            return Err(invalid(ChunkedError::BadChunkSize, 16));
        }
        let size = u64::from_str_radix(std::str::from_utf8(&line.bytes[..digits]).unwrap_or(""), 16).ok();
        if let Some(size) = size {
            let size_known = digits < line.bytes.len() || line.whole;
            let total = body.len() as u128 + u128::from(size);
            if size_known && total > limits.max_body as u128 {
                return Err(invalid(ChunkedError::TooLarge, digits));
            }
        }
        let error_at = |offset| {
            if line.bytes[..offset].contains(&b';') {
                ChunkedError::BadExtension
            } else {
                ChunkedError::BadChunkSize
            }
        };
        let fault = fault(line.bytes, line.whole, size_line_grammar, error_at);
        let uncounted = fault.as_ref().map_or(line.bytes.len(), |f| f.uncounted);
        let budget = limits.max_extension_bytes - extension_bytes;
        if let Some(offset) = over_budget(digits, uncounted, budget) {
            return Err(invalid(ChunkedError::ExtensionTooLong, offset));
        }
        if let Some(f) = fault {
            return Err(invalid(f.error, f.offset));
        }
        let (Some(size), Some(next)) = (size, line.next) else {
            return Err(Stop::Incomplete(body));
        };
        extension_bytes += line.bytes.len() - digits;
        if size == 0 {
            return trailer_section(input, next, limits, body);
        }
        // Fits: the body limit, a usize, was checked above.
        let size = size as usize;
        let Some(data) = next.checked_add(size).and_then(|end| input.get(next..end)) else {
            body.extend_from_slice(&input[next..]);
            return Err(Stop::Incomplete(body));
        };
        body.extend_from_slice(data);
        let end = next + size;
        match (input.get(end), input.get(end + 1)) {
            (Some(b'\r'), Some(b'\n')) => at = end + 2,
            (None, _) | (Some(b'\r'), None) => return Err(Stop::Incomplete(body)),
            (Some(b'\r'), Some(_)) => return Err(Stop::Invalid(ChunkedError::BadLineEnd, end + 1)),
            (Some(b'\n'), _) => return Err(Stop::Invalid(ChunkedError::BadLineEnd, end)),
            (Some(_), _) => return Err(Stop::Invalid(ChunkedError::BadDataEnd, end)),
        }
    }
}

/// The lines after the last chunk, from `at`: fields, then an empty line.
fn trailer_section(
    input: &[u8],
    mut at: usize,
    limits: ChunkedLimits,
    body: Vec<u8>,
) -> Result<(Vec<u8>, usize), Stop> {
    let mut fields = 0;
    let mut bytes = 0;
    loop {
        let line = line_at(input, at);
        if line.bytes.is_empty() {
            return match line.next {
                Some(next) => Ok((body, next)),
                None => Err(Stop::Incomplete(body)),
            };
        }
        let fault = fault(line.bytes, line.whole, trailer_line_grammar, |_| ChunkedError::BadTrailer);
        let uncounted = fault.as_ref().map_or(line.bytes.len(), |f| f.uncounted);
        let too_many = (fields == limits.max_trailer_fields && uncounted > 0).then_some(0);
        let too_long = over_budget(0, uncounted, limits.max_trailer_bytes - bytes);
        if let Some(offset) = too_many.or(too_long) {
            return Err(Stop::Invalid(ChunkedError::TrailerTooLarge, line.start + offset));
        }
        if let Some(f) = fault {
            return Err(Stop::Invalid(f.error, line.start + f.offset));
        }
        let Some(next) = line.next else {
            return Err(Stop::Incomplete(body));
        };
        fields += 1;
        bytes += line.bytes.len();
        at = next;
    }
}

/// `chunk-size [chunk-ext]`: how long a prefix of `line` could start one, and whether all of
/// `line` is one.
fn size_line_grammar(line: &[u8]) -> (usize, bool) {
    let mut i = skip(line, 0, is_hex);
    if i == 0 {
        return (0, false);
    }
    // *( BWS ";" BWS name [ BWS "=" BWS value ] ), ending only right after digits, name or value.
    loop {
        if i == line.len() {
            return (i, true);
        }
        let semicolon = skip(line, i, is_ws);
        if line.get(semicolon) != Some(&b';') {
            return (semicolon, false);
        }
        let name = skip(line, semicolon + 1, is_ws);
        let name_end = skip(line, name, is_tchar);
        if name_end == name {
            return (name, false);
        }
        i = name_end;
        if i == line.len() {
            return (i, true);
        }
        let equals = skip(line, i, is_ws);
        if line.get(equals) != Some(&b'=') {
            continue;
        }
        let value = skip(line, equals + 1, is_ws);
        match extension_value(line, value) {
            Ok(end) => i = end,
            Err(viable) => return (viable, false),
        }
    }
}

/// A token or quoted string at `at`: `Ok(end)`, or `Err(how far it could go)`.
fn extension_value(line: &[u8], at: usize) -> Result<usize, usize> {
    if line.get(at) != Some(&b'"') {
        let end = skip(line, at, is_tchar);
        return if end == at { Err(at) } else { Ok(end) };
    }
    let mut i = at + 1;
    loop {
        match line.get(i) {
            None => return Err(i),
            Some(b'"') => return Ok(i + 1),
            Some(b'\\') => match line.get(i + 1) {
                Some(&b) if is_visible_or_ws(b) => i += 2,
                _ => return Err(i + 1),
            },
            Some(&b) if is_visible_or_ws(b) => i += 1,
            Some(_) => return Err(i),
        }
    }
}

/// A trailer field line, `name ":" value`: how long a prefix of `line` could start one, and
/// whether all of `line` is one. The empty line is the end of the trailer section, so it
/// counts as a whole line too.
fn trailer_line_grammar(line: &[u8]) -> (usize, bool) {
    let name_end = skip(line, 0, is_tchar);
    if name_end == 0 {
        return (0, line.is_empty());
    }
    if line.get(name_end) != Some(&b':') {
        return (name_end, false);
    }
    let value_end = skip(line, name_end + 1, is_visible_or_ws);
    (value_end, value_end == line.len())
}

fn skip(line: &[u8], from: usize, class: fn(u8) -> bool) -> usize {
    from + line[from.min(line.len())..].iter().take_while(|&&b| class(b)).count()
}

fn is_hex(b: u8) -> bool {
    b"0123456789abcdefABCDEF".contains(&b)
}

fn is_ws(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_digit() || b.is_ascii_alphabetic() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn is_visible_or_ws(b: u8) -> bool {
    is_ws(b) || (0x21..=0x7e).contains(&b) || b >= 0x80
}
