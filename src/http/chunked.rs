//! The decoder of chunked request bodies (RFC 9112 §7.1): bytes in, chunk data out, strictly.
//!
//! [`ChunkedDecoder`] owns the framing of one `Transfer-Encoding: chunked` body and nothing else:
//! it reads chunk-size lines, skips chunk extensions, copies chunk data into the caller's buffer,
//! and reads and discards the trailer section. The connection loop owns the socket, the buffers
//! and the answer: it feeds whatever bytes it has to [`ChunkedDecoder::decode`] and maps a
//! [`ChunkedError`] to a status with [`ChunkedError::too_large`] (413, else 400).
//!
//! The grammar it accepts, byte by byte (anything else is an error, named in brackets):
//!
//! ```text
//! chunked-body = *chunk last-chunk trailer-section CRLF
//! chunk        = chunk-size [chunk-ext] CRLF chunk-data CRLF    [BadDataEnd if data is not followed by CRLF]
//! chunk-size   = 1*16HEXDIG, either case                         [BadChunkSize; TooLarge if over max_body]
//! last-chunk   = 1*16("0") [chunk-ext] CRLF
//! chunk-ext    = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )   [BadExtension]
//!                BWS = *( SP / HTAB ), allowed only before and after ";" and "=": `5 \r\n` and
//!                `5;a \r\n` are errors. Whitespace right after the size and not followed by ";"
//!                is [BadChunkSize]; every byte after the digits counts toward
//!                max_extension_bytes [ExtensionTooLong].
//! trailer-section = *( field-name ":" *( VCHAR / obs-text / SP / HTAB ) CRLF )   [BadTrailer]
//!                no whitespace before ":", no obs-fold (a line starting with SP or HTAB); name,
//!                colon and value bytes count toward max_trailer_bytes, each line toward
//!                max_trailer_fields [TrailerTooLarge]
//! line ends    = CRLF only: a bare LF anywhere, or a CR followed by anything but LF    [BadLineEnd]
//! ```
//!
//! Where two rules fail on the same byte, the grammar speaks first, then the limits; the size
//! limit is checked on the first byte after the size digits, before that byte is read as part of
//! an extension. A CR that could end its line is never itself an error: the byte after it is.
//!
//! What it never does: allocate (the only growth is `out`, by exactly the chunk-data bytes it
//! appends, which the size check has already bounded); size anything from a number read off the
//! wire; accept a bare LF or a lone CR as a line end; return, store or merge trailer fields (they
//! are validated and dropped, so a trailing `Content-Length` or `Authorization` can never reach
//! the head); touch a byte after the body's final CRLF (it belongs to the next pipelined request);
//! panic.
//!
//! Invariants: the result (data appended, `Ok`/`Err`, error variant, error offset, total bytes
//! consumed) does not depend on how the body is split across calls, down to one byte per call;
//! the state kept between calls is a few counters and a small state tag (no buffer), and each
//! call costs time linear in the bytes it is given. The module `reference` holds a deliberately
//! naive decoder over a whole input; the tests and the `http_chunked` fuzz target hold the two to
//! the same outcome on every input.
//!
//! For the next maintainer: a grammar change has to be made twice, here (the `State` transitions)
//! and in `reference` (its line grammars), then checked by `cargo test --lib http::chunked` and
//! the fuzz target; the table tests name each rule. The status codes are not chosen here: the
//! connection loop maps [`ChunkedError::too_large`] to 413 and every other error to 400, and must
//! close the connection after either (the rest of the stream can no longer be framed).

use std::fmt;

#[doc(hidden)]
#[path = "chunked_reference.rs"]
pub mod reference;

/// Default [`ChunkedLimits::max_extension_bytes`]: 16 KiB of chunk extensions per body, as hyper
/// and Node.js. One byte more is [`ChunkedError::ExtensionTooLong`]; the cap stops a sender from
/// making us read megabytes of extensions around one-byte chunks.
pub const DEFAULT_MAX_EXTENSION_BYTES: usize = 16 * 1024;

/// Default [`ChunkedLimits::max_trailer_bytes`]: 32 KiB of trailer field lines per body, the size
/// of a request head. One byte more is [`ChunkedError::TrailerTooLarge`].
pub const DEFAULT_MAX_TRAILER_BYTES: usize = 32 * 1024;

/// Default [`ChunkedLimits::max_trailer_fields`]: 100 trailer fields per body, as hyper. One more
/// is [`ChunkedError::TrailerTooLarge`].
pub const DEFAULT_MAX_TRAILER_FIELDS: usize = 100;

/// Hex digits in one chunk size, leading zeros included: 16 digits hold any `u64`, so the value
/// can never overflow. A 17th digit is [`ChunkedError::BadChunkSize`], whatever the value.
pub const MAX_CHUNK_SIZE_DIGITS: u8 = 16;

/// The limits of one chunked body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkedLimits {
    /// Decoded (chunk-data) bytes in the whole body. A chunk size that would take the total
    /// over it is [`ChunkedError::TooLarge`] as soon as its size line has been read, before any
    /// of its data.
    pub max_body: usize,
    /// Bytes of chunk extensions in the whole body: everything between a chunk size's last
    /// digit and its line's CR. More is [`ChunkedError::ExtensionTooLong`].
    pub max_extension_bytes: usize,
    /// Bytes of trailer field lines (name, colon, value; not the line ends). More is
    /// [`ChunkedError::TrailerTooLarge`].
    pub max_trailer_bytes: usize,
    /// Trailer field lines. More is [`ChunkedError::TrailerTooLarge`].
    pub max_trailer_fields: usize,
}

impl ChunkedLimits {
    /// `max_body` decoded bytes; the default extension and trailer limits.
    pub const fn new(max_body: usize) -> Self {
        ChunkedLimits {
            max_body,
            max_extension_bytes: DEFAULT_MAX_EXTENSION_BYTES,
            max_trailer_bytes: DEFAULT_MAX_TRAILER_BYTES,
            max_trailer_fields: DEFAULT_MAX_TRAILER_FIELDS,
        }
    }
}

impl Default for ChunkedLimits {
    /// The default body limit ([`DEFAULT_MAX_BODY`](super::DEFAULT_MAX_BODY)) and the defaults
    /// above.
    fn default() -> Self {
        ChunkedLimits::new(super::DEFAULT_MAX_BODY)
    }
}

/// Why a chunked body was refused. Every variant ends the body: the stream behind it can no
/// longer be framed, so the connection must be closed after the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChunkedError {
    /// A chunk-size line that does not start with 1 to 16 hex digits, or whose digits are
    /// followed by something other than `;`, whitespace then `;`, or CRLF (`0x5`, `+5`, ` 5`,
    /// `5 `, an empty line).
    BadChunkSize,
    /// A chunk extension off the grammar: an empty name, whitespace before the line end, an
    /// unterminated quoted string, a control byte.
    BadExtension,
    /// More than [`ChunkedLimits::max_extension_bytes`] of chunk extensions.
    ExtensionTooLong,
    /// A bare LF, or a CR followed by anything but LF.
    BadLineEnd,
    /// Chunk data not followed by CRLF: the chunk is longer than its size says.
    BadDataEnd,
    /// A trailer line that is not `name:value`: an empty or non-token name, whitespace before
    /// the colon, a line starting with whitespace (obs-fold), a control byte in the value.
    BadTrailer,
    /// More than [`ChunkedLimits::max_trailer_bytes`] of trailer lines, or more than
    /// [`ChunkedLimits::max_trailer_fields`] of them.
    TrailerTooLarge,
    /// The decoded body would exceed [`ChunkedLimits::max_body`].
    TooLarge,
}

impl ChunkedError {
    /// True for [`ChunkedError::TooLarge`], which deserves a 413; every other error is a 400.
    pub fn too_large(self) -> bool {
        self == ChunkedError::TooLarge
    }

    /// A static one-line message, fit for the client.
    pub fn message(self) -> &'static str {
        match self {
            ChunkedError::BadChunkSize => "malformed chunk size",
            ChunkedError::BadExtension => "malformed chunk extension",
            ChunkedError::ExtensionTooLong => "chunk extensions too long",
            ChunkedError::BadLineEnd => "chunked body line not ended by CRLF",
            ChunkedError::BadDataEnd => "chunk data not followed by CRLF",
            ChunkedError::BadTrailer => "malformed trailer field",
            ChunkedError::TrailerTooLarge => "trailer section too large",
            ChunkedError::TooLarge => "body too large",
        }
    }
}

impl fmt::Display for ChunkedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ChunkedError {}

/// What [`ChunkedDecoder::decode`] reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// All the input was consumed and the body goes on: call again with more bytes.
    NeedMore,
    /// The last chunk and the trailer section, final CRLF included, were consumed: the body is
    /// complete.
    Done,
}

/// Where the decoder stands: which byte it expects next. Ext* and Trailer* states are inside a
/// line; *Lf states have read a CR and want its LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Start of a chunk-size line: no digit yet.
    SizeStart,
    /// Reading size digits (`digits` of them so far, value in `size`).
    SizeDigits,
    /// Whitespace after the size digits: only more whitespace or `;` may follow.
    SizeWs,
    /// After `;` (and maybe whitespace): an extension name must follow.
    ExtBeforeName,
    /// Inside an extension name.
    ExtName,
    /// Whitespace after a name: `=` or `;` must follow.
    ExtAfterName,
    /// After `=` (and maybe whitespace): a token or a quoted string must follow.
    ExtBeforeValue,
    /// Inside a token value.
    ExtToken,
    /// Inside a quoted-string value.
    ExtQuoted,
    /// After a backslash inside a quoted string.
    ExtQuotedPair,
    /// Right after a quoted string's closing quote.
    ExtAfterQuote,
    /// Whitespace after a value: only more whitespace or `;` may follow.
    ExtWs,
    /// The CR of a chunk-size line was read.
    SizeLf,
    /// Inside chunk data (`size` bytes still to come).
    Data,
    /// After chunk data: its CR must come.
    DataCr,
    /// After chunk data and its CR.
    DataLf,
    /// Start of a trailer line (a field, or the empty line that ends the body).
    TrailerStart,
    /// Inside a trailer field name.
    TrailerName,
    /// After a trailer field's colon.
    TrailerValue,
    /// The CR of a trailer field line was read.
    TrailerLf,
    /// The CR of the final empty line was read.
    FinalLf,
    /// The body is complete.
    Done,
    /// The body was refused; every later call repeats the error.
    Failed(ChunkedError),
}

/// Decodes one chunked body, fed in pieces of any size. Small (counters and a state tag, no
/// buffer), and reusable for the next body after [`ChunkedDecoder::reset`].
///
/// ```
/// use egnyte_receiver::http::chunked::{ChunkedDecoder, ChunkedLimits, Progress};
///
/// let mut decoder = ChunkedDecoder::new(ChunkedLimits::new(1024));
/// let mut body = Vec::new();
/// assert_eq!(decoder.decode(b"5;a=b\r\nhel", &mut body)?, (10, Progress::NeedMore));
/// let rest = b"lo\r\n0\r\nX-Sum: 1\r\n\r\nGET / HTTP/1.1\r\n";
/// assert_eq!(decoder.decode(rest, &mut body)?, (19, Progress::Done)); // stops before "GET"
/// assert_eq!((body.as_slice(), decoder.decoded()), (&b"hello"[..], 5));
/// # Ok::<(), egnyte_receiver::http::chunked::ChunkedError>(())
/// ```
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    limits: ChunkedLimits,
    state: State,
    /// The current chunk's size while its line is read; the data bytes still to come in `Data`.
    size: u64,
    /// Size digits read on the current line.
    digits: u8,
    /// Chunk-data bytes appended so far.
    decoded: u64,
    /// Body bytes consumed so far; after an error, the offset of the byte that failed.
    position: u64,
    extension_bytes: usize,
    trailer_bytes: usize,
    trailer_fields: usize,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        ChunkedDecoder::new(ChunkedLimits::default())
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new(limits: ChunkedLimits) -> Self {
        ChunkedDecoder {
            limits,
            state: State::SizeStart,
            size: 0,
            digits: 0,
            decoded: 0,
            position: 0,
            extension_bytes: 0,
            trailer_bytes: 0,
            trailer_fields: 0,
        }
    }

    /// Back to the start of a body, with the same limits.
    pub fn reset(&mut self) {
        *self = ChunkedDecoder::new(self.limits);
    }

    /// The limits in force.
    pub fn limits(&self) -> ChunkedLimits {
        self.limits
    }

    /// Chunk-data bytes appended to `out` so far, over all calls.
    pub fn decoded(&self) -> u64 {
        self.decoded
    }

    /// Body bytes consumed so far, over all calls. After an error, the offset in the body of the
    /// byte that failed (that byte is not consumed).
    pub fn position(&self) -> u64 {
        self.position
    }

    /// True once the body is complete.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending chunk data to `out`, and returns how many bytes of `input`
    /// it consumed and whether the body is complete.
    ///
    /// [`Progress::NeedMore`] consumes all of `input`. [`Progress::Done`] stops just after the
    /// final CRLF of the trailer section: the bytes after it are the next request's, untouched.
    /// `out` grows by exactly the chunk-data bytes, never by a size read off the wire. After
    /// `Done`, further calls consume nothing and return `Done`; after an error, they return the
    /// same error.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<(usize, Progress), ChunkedError> {
        let mut at = 0;
        loop {
            match self.state {
                State::Done => return Ok((at, Progress::Done)),
                State::Failed(error) => return Err(error),
                _ if at == input.len() => return Ok((at, Progress::NeedMore)),
                State::Data => at += self.data(&input[at..], out),
                state => match self.step(state, input[at]) {
                    Ok(next) => {
                        self.state = next;
                        self.position += 1;
                        at += 1;
                    }
                    Err(error) => self.state = State::Failed(error),
                },
            }
        }
    }

    /// Copies as much of the current chunk's data as `input` holds; returns the bytes taken.
    fn data(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let take = usize::try_from(self.size).map_or(input.len(), |size| size.min(input.len()));
        out.extend_from_slice(&input[..take]);
        let taken = take as u64;
        self.size -= taken;
        self.decoded += taken;
        self.position += taken;
        if self.size == 0 {
            self.state = State::DataCr;
        }
        take
    }

    /// The state after `byte`, read in `state` (any state but `Data`, `Done` and `Failed`).
    fn step(&mut self, state: State, byte: u8) -> Result<State, ChunkedError> {
        match state {
            State::SizeStart => size_start(byte).map(|digit| self.first_digit(digit)),
            State::SizeDigits => self.size_digit(byte),
            State::SizeWs
            | State::ExtBeforeName
            | State::ExtName
            | State::ExtAfterName
            | State::ExtBeforeValue
            | State::ExtToken
            | State::ExtQuoted
            | State::ExtQuotedPair
            | State::ExtAfterQuote
            | State::ExtWs => self.extension(state, byte),
            State::SizeLf => line_feed(byte).map(|()| self.chunk_start()),
            State::DataCr => data_cr(byte),
            State::DataLf => line_feed(byte).map(|()| State::SizeStart),
            State::TrailerStart => self.trailer_start(byte),
            State::TrailerName | State::TrailerValue => self.trailer_field(state, byte),
            State::TrailerLf => line_feed(byte).map(|()| State::TrailerStart),
            State::FinalLf => line_feed(byte).map(|()| State::Done),
            // Handled by `decode` before a byte is read.
            State::Data | State::Done | State::Failed(_) => Ok(state),
        }
    }

    fn first_digit(&mut self, digit: u8) -> State {
        self.size = u64::from(digit);
        self.digits = 1;
        State::SizeDigits
    }

    /// A byte after at least one size digit: another digit, or the end of the size, at which
    /// the body limit is checked before the byte is read as the start of an extension or the CR.
    fn size_digit(&mut self, byte: u8) -> Result<State, ChunkedError> {
        let Some(digit) = hex_value(byte) else {
            self.check_body_limit()?;
            return self.extension(State::SizeDigits, byte);
        };
        if self.digits == MAX_CHUNK_SIZE_DIGITS {
            return Err(ChunkedError::BadChunkSize);
        }
        self.size = self
            .size
            .checked_mul(16)
            .and_then(|size| size.checked_add(u64::from(digit)))
            .ok_or(ChunkedError::BadChunkSize)?;
        self.digits += 1;
        Ok(State::SizeDigits)
    }

    fn check_body_limit(&self) -> Result<(), ChunkedError> {
        let max_body = u64::try_from(self.limits.max_body).unwrap_or(u64::MAX);
        match self.decoded.checked_add(self.size) {
            Some(total) if total <= max_body => Ok(()),
            _ => Err(ChunkedError::TooLarge),
        }
    }

    /// A byte of a chunk-size line after its digits: the grammar first, then the extension
    /// limit (line ends do not count).
    fn extension(&mut self, state: State, byte: u8) -> Result<State, ChunkedError> {
        let error = if state == State::SizeDigits || state == State::SizeWs {
            ChunkedError::BadChunkSize
        } else {
            ChunkedError::BadExtension
        };
        match byte {
            b'\n' => return Err(ChunkedError::BadLineEnd),
            b'\r' if extension_may_end(state) => return Ok(State::SizeLf),
            _ => {}
        }
        let next = extension_next(state, byte).ok_or(error)?;
        count(&mut self.extension_bytes, self.limits.max_extension_bytes, ChunkedError::ExtensionTooLong)?;
        Ok(next)
    }

    /// After a size line's LF: data, or the trailer section after the last chunk.
    fn chunk_start(&mut self) -> State {
        if self.size == 0 {
            State::TrailerStart
        } else {
            State::Data
        }
    }

    /// The first byte of a trailer line: the CR of the final empty line, or a field name's.
    fn trailer_start(&mut self, byte: u8) -> Result<State, ChunkedError> {
        match byte {
            b'\r' => Ok(State::FinalLf),
            b'\n' => Err(ChunkedError::BadLineEnd),
            _ if is_tchar(byte) => {
                count(
                    &mut self.trailer_fields,
                    self.limits.max_trailer_fields,
                    ChunkedError::TrailerTooLarge,
                )?;
                count(&mut self.trailer_bytes, self.limits.max_trailer_bytes, ChunkedError::TrailerTooLarge)?;
                Ok(State::TrailerName)
            }
            // SP or HTAB here is obs-fold.
            _ => Err(ChunkedError::BadTrailer),
        }
    }

    /// A byte of a trailer field line after its first: the grammar first, then the byte limit.
    fn trailer_field(&mut self, state: State, byte: u8) -> Result<State, ChunkedError> {
        let next = match (state, byte) {
            (_, b'\n') => return Err(ChunkedError::BadLineEnd),
            (State::TrailerValue, b'\r') => return Ok(State::TrailerLf),
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerName, _) if is_tchar(byte) => State::TrailerName,
            (State::TrailerValue, _) if is_field_value_byte(byte) => State::TrailerValue,
            _ => return Err(ChunkedError::BadTrailer),
        };
        count(&mut self.trailer_bytes, self.limits.max_trailer_bytes, ChunkedError::TrailerTooLarge)?;
        Ok(next)
    }
}

/// Counts one more against `limit`; `error` when that goes over it.
fn count(counter: &mut usize, limit: usize, error: ChunkedError) -> Result<(), ChunkedError> {
    if *counter >= limit {
        return Err(error);
    }
    *counter += 1;
    Ok(())
}

/// The first byte of a chunk-size line: a hex digit, or the line is malformed.
fn size_start(byte: u8) -> Result<u8, ChunkedError> {
    match byte {
        b'\n' => Err(ChunkedError::BadLineEnd),
        _ => hex_value(byte).ok_or(ChunkedError::BadChunkSize),
    }
}

/// The byte after a CR: only LF.
fn line_feed(byte: u8) -> Result<(), ChunkedError> {
    match byte {
        b'\n' => Ok(()),
        _ => Err(ChunkedError::BadLineEnd),
    }
}

/// The byte after chunk data: only the CR of CRLF.
fn data_cr(byte: u8) -> Result<State, ChunkedError> {
    match byte {
        b'\r' => Ok(State::DataLf),
        b'\n' => Err(ChunkedError::BadLineEnd),
        _ => Err(ChunkedError::BadDataEnd),
    }
}

/// Whether a chunk-size line may end (CRLF) in `state`: after the digits, a name or a value,
/// never after whitespace, `;` or `=`.
fn extension_may_end(state: State) -> bool {
    matches!(state, State::SizeDigits | State::ExtName | State::ExtToken | State::ExtAfterQuote)
}

/// The extension grammar: the state after `byte` in `state`, or `None` if `byte` cannot come
/// there. CR and LF are handled by the caller.
fn extension_next(state: State, byte: u8) -> Option<State> {
    let ws = byte == b' ' || byte == b'\t';
    let next = match state {
        State::SizeDigits | State::SizeWs if ws => State::SizeWs,
        State::ExtToken | State::ExtAfterQuote | State::ExtWs if ws => State::ExtWs,
        State::ExtName | State::ExtAfterName if ws => State::ExtAfterName,
        State::ExtBeforeName | State::ExtBeforeValue if ws => state,
        State::SizeDigits
        | State::SizeWs
        | State::ExtName
        | State::ExtAfterName
        | State::ExtToken
        | State::ExtAfterQuote
        | State::ExtWs
            if byte == b';' =>
        {
            State::ExtBeforeName
        }
        State::ExtName | State::ExtAfterName if byte == b'=' => State::ExtBeforeValue,
        State::ExtBeforeName | State::ExtName if is_tchar(byte) => State::ExtName,
        State::ExtBeforeValue if byte == b'"' => State::ExtQuoted,
        State::ExtBeforeValue | State::ExtToken if is_tchar(byte) => State::ExtToken,
        State::ExtQuoted if byte == b'"' => State::ExtAfterQuote,
        State::ExtQuoted if byte == b'\\' => State::ExtQuotedPair,
        State::ExtQuoted if is_qdtext(byte) => State::ExtQuoted,
        State::ExtQuotedPair if is_field_value_byte(byte) => State::ExtQuoted,
        _ => return None,
    };
    Some(next)
}

fn hex_value(byte: u8) -> Option<u8> {
    match byte {
        b'0'..=b'9' => Some(byte - b'0'),
        b'a'..=b'f' => Some(byte - b'a' + 10),
        b'A'..=b'F' => Some(byte - b'A' + 10),
        _ => None,
    }
}

/// RFC 9110 §5.6.2 `tchar`: the bytes of a token (a field or extension name, a token value).
fn is_tchar(byte: u8) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(
            byte,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// RFC 9110 §5.5 field-value bytes: VCHAR, obs-text, SP, HTAB (also what may follow a backslash
/// in a quoted string, §5.6.4).
fn is_field_value_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
}

/// RFC 9110 §5.6.4 `qdtext`: a field-value byte but `"` and `\`.
fn is_qdtext(byte: u8) -> bool {
    is_field_value_byte(byte) && byte != b'"' && byte != b'\\'
}

#[cfg(test)]
mod tests {
    use super::reference::{decode_reference, Reference};
    use super::*;
    use ChunkedError::*;

    /// Generous limits, so that only the grammar speaks.
    const WIDE: ChunkedLimits = ChunkedLimits::new(1 << 20);

    /// Feeds `input` to a fresh decoder in pieces ending at `cuts` (ascending), then at the end;
    /// the outcome in the reference's terms.
    fn run(input: &[u8], limits: ChunkedLimits, cuts: &[usize]) -> Reference {
        let mut decoder = ChunkedDecoder::new(limits);
        let mut body = Vec::new();
        let mut start = 0;
        let mut consumed = 0;
        for end in cuts.iter().copied().chain([input.len()]) {
            let piece = &input[start..end];
            start = end;
            match decoder.decode(piece, &mut body) {
                Ok((n, Progress::Done)) => {
                    consumed += n;
                    assert!(decoder.is_done());
                    assert_eq!(decoder.decode(b"more", &mut body), Ok((0, Progress::Done)));
                    assert_eq!((body.len() as u64, consumed as u64), (decoder.decoded(), decoder.position()));
                    return Reference::Done { body, consumed };
                }
                Ok((n, Progress::NeedMore)) => {
                    assert_eq!(n, piece.len(), "NeedMore consumes everything");
                    consumed += n;
                }
                Err(error) => {
                    assert_eq!(decoder.decode(b"\r\n", &mut body), Err(error), "errors repeat");
                    return Reference::Invalid { error, offset: decoder.position() as usize };
                }
            }
        }
        assert_eq!(body.len() as u64, decoder.decoded());
        Reference::Incomplete { body }
    }

    /// The outcome of `input`, after checking that one call, one byte per call, every two-way
    /// split and the reference all agree on it.
    fn outcome(input: &[u8], limits: ChunkedLimits) -> Reference {
        let whole = run(input, limits, &[]);
        assert_eq!(decode_reference(input, limits), whole, "reference vs one call on {input:?}");
        let bytes: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run(input, limits, &bytes), whole, "byte by byte on {input:?}");
        for cut in 0..=input.len() {
            assert_eq!(run(input, limits, &[cut]), whole, "split at {cut} of {input:?}");
        }
        whole
    }

    fn ok_with(limits: ChunkedLimits, input: &[u8], body: &[u8], consumed: usize) {
        let expected = Reference::Done { body: body.to_vec(), consumed };
        assert_eq!(outcome(input, limits), expected, "on {:?}", String::from_utf8_lossy(input));
        // Every prefix of a valid body is merely incomplete.
        for end in 0..consumed {
            let prefix = &input[..end];
            let outcome = run(prefix, limits, &[]);
            assert!(matches!(outcome, Reference::Incomplete { .. }), "prefix {prefix:?}: {outcome:?}");
            assert_eq!(decode_reference(prefix, limits), outcome, "reference on prefix {prefix:?}");
        }
    }

    fn ok(input: &[u8], body: &[u8], consumed: usize) {
        ok_with(WIDE, input, body, consumed);
    }

    fn err_with(limits: ChunkedLimits, input: &[u8], expected: ChunkedError) {
        match outcome(input, limits) {
            Reference::Invalid { error, .. } => {
                assert_eq!(error, expected, "on {:?}", String::from_utf8_lossy(input))
            }
            other => panic!("{:?}: expected {expected:?}, got {other:?}", String::from_utf8_lossy(input)),
        }
    }

    fn err(input: &[u8], expected: ChunkedError) {
        err_with(WIDE, input, expected);
    }

    /// The error and the offset of the byte that failed.
    fn err_at(limits: ChunkedLimits, input: &[u8], expected: ChunkedError, offset: usize) {
        assert_eq!(outcome(input, limits), Reference::Invalid { error: expected, offset }, "on {input:?}");
    }

    fn incomplete_with(limits: ChunkedLimits, input: &[u8], body: &[u8]) {
        assert_eq!(outcome(input, limits), Reference::Incomplete { body: body.to_vec() }, "on {input:?}");
    }

    fn limits(
        max_body: usize,
        extension: usize,
        trailer_bytes: usize,
        trailer_fields: usize,
    ) -> ChunkedLimits {
        ChunkedLimits {
            max_body,
            max_extension_bytes: extension,
            max_trailer_bytes: trailer_bytes,
            max_trailer_fields: trailer_fields,
        }
    }

    #[test]
    fn valid_bodies() {
        ok(b"0\r\n\r\n", b"", 5);
        ok(b"5\r\nhello\r\n0\r\n\r\n", b"hello", 15);
        ok(b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n", b"ab", 17);
        ok(b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 20);
        ok(b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789", 20);
        ok(b"0005\r\nhello\r\n000\r\n\r\n", b"hello", 20);
        ok(b"0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", b"hello", 45);
        ok(b"5\r\n\r\n0\r\n\r\n0\r\n\r\n", b"\r\n0\r\n", 15);
        ok(b"3\r\n\0\xff\n\r\n0\r\n\r\n", b"\0\xff\n", 13);
    }

    #[test]
    fn extensions_are_skipped() {
        ok(b"5;a\r\nhello\r\n0\r\n\r\n", b"hello", 17);
        ok(b"5;a=b\r\nhello\r\n0\r\n\r\n", b"hello", 19);
        ok(b"5 ;a=b\r\nhello\r\n0\r\n\r\n", b"hello", 20);
        ok(b"5\t; a = b ;c\t;d=e\r\nhello\r\n0\r\n\r\n", b"hello", 31);
        ok(b"5;a=\"q s\\\"x\"\r\nhello\r\n0\r\n\r\n", b"hello", 26);
        ok(b"5;a=\"\t\xff\\\xfe\";b\r\nhello\r\n0\r\n\r\n", b"hello", 26);
        ok(b"5;a=\"\" ;!#$%&'*+-.^_`|~09AZaz=x\r\nhello\r\n0\r\n\r\n", b"hello", 45);
        ok(b"0;last=1\r\n\r\n", b"", 12);
    }

    #[test]
    fn trailers_are_read_and_dropped() {
        ok(b"0\r\nX-Sum: 1\r\n\r\n", b"", 15);
        ok(b"0\r\nA:\r\nB:  v \t\r\n\r\n", b"", 18);
        ok(b"0\r\nContent-Length: 99\r\nHost: x\r\n\r\n", b"", 34);
        ok(b"0\r\nA: \xff\x80 v\r\n\r\n", b"", 14);
        // Three chunks, an extension and a trailer (checklist item 18).
        ok(
            b"4;x=y\r\nWiki\r\n5\r\npedia\r\ne\r\n in\r\n\r\nchunks.\r\n0\r\nExpires: never\r\n\r\n",
            b"Wikipedia in\r\n\r\nchunks.",
            63,
        );
    }

    #[test]
    fn stops_before_pipelined_bytes() {
        ok(b"0\r\n\r\nGET / HTTP/1.1\r\n\r\n", b"", 5);
        ok(b"5\r\nhello\r\n0\r\n\r\n0\r\n\r\n", b"hello", 15);
        ok(b"0\r\nA: 1\r\n\r\n\r\n\n garbage", b"", 11);
    }

    #[test]
    fn chunk_size_must_be_hex_digits() {
        err(b"\r\n", BadChunkSize);
        err(b"\r\n5\r\nhello\r\n0\r\n\r\n", BadChunkSize);
        err(b";a=b\r\n0\r\n\r\n", BadChunkSize);
        err(b";\r\n", BadChunkSize);
        err(b"0x5\r\nhello\r\n0\r\n\r\n", BadChunkSize);
        err(b"x5\r\n", BadChunkSize);
        err(b"+5\r\nhello\r\n0\r\n\r\n", BadChunkSize);
        err(b"-5\r\nhello\r\n0\r\n\r\n", BadChunkSize);
        err(b"5_0\r\n", BadChunkSize);
        err(b" 5\r\nhello\r\n0\r\n\r\n", BadChunkSize);
        err(b"\t5\r\n", BadChunkSize);
        err(b"5 \r\nhello\r\n0\r\n\r\n", BadChunkSize);
        err(b"5\t\r\n", BadChunkSize);
        err(b"5 5\r\n", BadChunkSize);
        err(b"g\r\n", BadChunkSize);
        err(b"5\r\nhello\r\n\r\n", BadChunkSize);
        err(b"\xff\r\n", BadChunkSize);
    }

    #[test]
    fn at_most_16_digits() {
        ok(b"000000000000000F\r\n0123456789abcde\r\n0\r\n\r\n", b"0123456789abcde", 40);
        err_at(WIDE, b"00000000000000005\r\nhello\r\n0\r\n\r\n", BadChunkSize, 16);
        err_at(WIDE, b"10000000000000000\r\n", BadChunkSize, 16);
        err_at(WIDE, b"00000000000000000\r\n\r\n", BadChunkSize, 16);
        err_at(limits(usize::MAX, 16, 16, 1), b"FFFFFFFFFFFFFFFFF", BadChunkSize, 16);
    }

    #[test]
    fn u64_max_size() {
        err_at(WIDE, b"FFFFFFFFFFFFFFFF\r\n", TooLarge, 16);
        err_at(WIDE, b"ffffffffffffffff;a\r\n", TooLarge, 16);
        let unlimited = limits(usize::MAX, 16, 16, 1);
        incomplete_with(unlimited, b"FFFFFFFFFFFFFFFF\r\nabc", b"abc");
        // decoded + size would overflow u64.
        err_at(unlimited, b"1\r\na\r\nFFFFFFFFFFFFFFFF\r\n", TooLarge, 22);
    }

    #[test]
    fn max_body() {
        let five = limits(5, 16, 16, 1);
        ok_with(five, b"5\r\nhello\r\n0\r\n\r\n", b"hello", 15);
        ok_with(five, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", b"abcde", 20);
        err_at(five, b"6\r\nhello!\r\n0\r\n\r\n", TooLarge, 1);
        err_at(five, b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n", TooLarge, 9);
        // Known as soon as the size ends, before its line does and before any data.
        err_at(five, b"6;", TooLarge, 1);
        err_at(five, b"6\n", TooLarge, 1);
        incomplete_with(five, b"6", b"");
        let zero = limits(0, 16, 16, 1);
        ok_with(zero, b"0\r\n\r\n", b"", 5);
        ok_with(zero, b"0000\r\n\r\n", b"", 8);
        err_at(zero, b"1\r\n", TooLarge, 1);
    }

    #[test]
    fn max_extension_bytes() {
        let four = limits(100, 4, 16, 1);
        ok_with(four, b"1;abc\r\nx\r\n0\r\n\r\n", b"x", 15);
        err_at(four, b"1;abcd\r\nx\r\n0\r\n\r\n", ExtensionTooLong, 5);
        ok_with(four, b"1 ;ab\r\nx\r\n0\r\n\r\n", b"x", 15);
        err_at(four, b"1  ;ab\r\nx\r\n0\r\n\r\n", ExtensionTooLong, 5);
        // Counted over the whole body.
        ok_with(four, b"1;a\r\nx\r\n0;b\r\n\r\n", b"x", 15);
        err_at(four, b"1;a\r\nx\r\n0;bc\r\n\r\n", ExtensionTooLong, 11);
        // The grammar speaks first on the same byte; a limit before it.
        err_at(four, b"1;abc\"", BadExtension, 5);
        err_at(four, b"1;abcd\"", ExtensionTooLong, 5);
        let none = limits(100, 0, 16, 1);
        ok_with(none, b"1\r\nx\r\n0\r\n\r\n", b"x", 11);
        err_at(none, b"1;\r\n", ExtensionTooLong, 1);
        err_at(none, b"1 \r\n", ExtensionTooLong, 1);
        // Checklist item 27: 1-byte chunks with 1 KiB of extension each hit the default cap.
        let mut many = Vec::new();
        for _ in 0..17 {
            many.extend_from_slice(b"1;");
            many.extend_from_slice(&[b'e'; 1023]);
            many.extend_from_slice(b"\r\nx\r\n");
        }
        let mut decoder = ChunkedDecoder::new(WIDE);
        assert_eq!(decoder.decode(&many, &mut Vec::new()), Err(ExtensionTooLong));
        assert_eq!(decoder.position(), 16 * 1030 + 1);
        assert_eq!(
            decode_reference(&many, WIDE),
            Reference::Invalid { error: ExtensionTooLong, offset: 16 * 1030 + 1 }
        );
    }

    #[test]
    fn extension_grammar() {
        err(b"5;\r\nhello\r\n0\r\n\r\n", BadExtension);
        err(b"5; \r\n", BadExtension);
        err(b"5;=b\r\n", BadExtension);
        err(b"5;a=\r\n", BadExtension);
        err(b"5;a= \r\n", BadExtension);
        err(b"5;a \r\n", BadExtension);
        err(b"5;a=b \r\n", BadExtension);
        err(b"5;a=\"b\" \r\n", BadExtension);
        err(b"5;a=b=c\r\n", BadExtension);
        err(b"5;a b\r\n", BadExtension);
        err(b"5;a=b c\r\n", BadExtension);
        err(b"5;a=\"b\"c\r\n", BadExtension);
        err(b"5;a==b\r\n", BadExtension);
        err(b"5;a\"b\"\r\n", BadExtension);
        err(b"5;;a\r\n", BadExtension);
        err(b"5;a\0\r\n", BadExtension);
        err(b"5;a\x7f\r\n", BadExtension);
        err(b"5;a=\xff\r\n", BadExtension);
        err(b"5;a=\"b\0\"\r\n", BadExtension);
        err(b"5;a=\"b\x7f\"\r\n", BadExtension);
        err(b"5;a=\"b\\\x01\"\r\n", BadExtension);
        // A CR inside a quoted string does not end the line (Jetty CVE-2026-2332).
        err(b"5;a=\"b\r\n\"\r\nhello\r\n0\r\n\r\n", BadExtension);
        err(b"5;a=\"b\r\n", BadExtension);
        err(b"5;a=\"b\\\r\n", BadExtension);
    }

    #[test]
    fn crlf_only() {
        err_at(WIDE, b"5\nhello\r\n0\r\n\r\n", BadLineEnd, 1);
        err_at(WIDE, b"5;a\nb\r\nhello\r\n0\r\n\r\n", BadLineEnd, 3);
        err_at(WIDE, b"5;a=\"\n\"\r\n", BadLineEnd, 5);
        err_at(WIDE, b"\n", BadLineEnd, 0);
        err_at(WIDE, b"5\rX", BadLineEnd, 2);
        err_at(WIDE, b"5;a=\"b\"\r\r\n", BadLineEnd, 8);
        err_at(WIDE, b"5\r\nhello\n0\r\n\r\n", BadLineEnd, 8);
        err_at(WIDE, b"5\r\nhello\rX", BadLineEnd, 9);
        err_at(WIDE, b"5\r\nhello\r\r\n", BadLineEnd, 9);
        err_at(WIDE, b"0\r\n\n", BadLineEnd, 3);
        err_at(WIDE, b"0\r\n\r\r", BadLineEnd, 4);
        err_at(WIDE, b"0\r\n\rX", BadLineEnd, 4);
        err_at(WIDE, b"0\r\nA: b\n\r\n", BadLineEnd, 7);
        err_at(WIDE, b"0\r\nA: b\rc\r\n\r\n", BadLineEnd, 8);
        err_at(WIDE, b"0\n\r\n", BadLineEnd, 1);
    }

    #[test]
    fn data_is_exactly_its_size() {
        err_at(WIDE, b"5\r\nhello!!\r\n0\r\n\r\n", BadDataEnd, 8);
        err_at(WIDE, b"5\r\nhell\r\n0\r\n\r\n", BadLineEnd, 8);
        err_at(WIDE, b"5\r\nhelloX", BadDataEnd, 8);
        err_at(WIDE, b"3\r\nabc0\r\n\r\n", BadDataEnd, 6);
    }

    #[test]
    fn trailer_grammar() {
        err(b"0\r\n X: y\r\n\r\n", BadTrailer);
        err(b"0\r\n\tX: y\r\n\r\n", BadTrailer);
        err(b"0\r\nA: 1\r\n\tcont\r\n\r\n", BadTrailer);
        err(b"0\r\nA : 1\r\n\r\n", BadTrailer);
        err(b"0\r\nA\t: 1\r\n\r\n", BadTrailer);
        err(b"0\r\n:v\r\n\r\n", BadTrailer);
        err(b"0\r\nA\r\n\r\n", BadTrailer);
        err(b"0\r\nA\rB: 1\r\n\r\n", BadTrailer);
        err(b"0\r\nA(b): 1\r\n\r\n", BadTrailer);
        err(b"0\r\nA: \0\r\n\r\n", BadTrailer);
        err(b"0\r\nA: \x7f\r\n\r\n", BadTrailer);
        err(b"0\r\nA: \x1b\r\n\r\n", BadTrailer);
        err(b"0\r\n\xff: 1\r\n\r\n", BadTrailer);
    }

    #[test]
    fn trailer_limits() {
        let six = limits(100, 16, 6, 100);
        ok_with(six, b"0\r\nA: 123\r\n\r\n", b"", 13);
        err_at(six, b"0\r\nA: 1234\r\n\r\n", TrailerTooLarge, 9);
        ok_with(six, b"0\r\nA:1\r\nB:2\r\n\r\n", b"", 15);
        err_at(six, b"0\r\nA:1\r\nB:23\r\n\r\n", TrailerTooLarge, 11);
        // The grammar speaks first on the same byte.
        err_at(six, b"0\r\nA: 123\0", BadTrailer, 9);
        let two = limits(100, 16, 1000, 2);
        ok_with(two, b"0\r\nA: 1\r\nB: 2\r\n\r\n", b"", 17);
        err_at(two, b"0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", TrailerTooLarge, 15);
        err_at(two, b"0\r\nA: 1\r\nB: 2\r\n C: 3\r\n\r\n", BadTrailer, 15);
        let none = limits(100, 16, 0, 0);
        ok_with(none, b"0\r\n\r\n", b"", 5);
        err_at(none, b"0\r\nA:1\r\n\r\n", TrailerTooLarge, 3);
    }

    #[test]
    fn incomplete_inputs() {
        incomplete_with(WIDE, b"", b"");
        incomplete_with(WIDE, b"5", b"");
        incomplete_with(WIDE, b"5;a=\"b", b"");
        incomplete_with(WIDE, b"5\r\nhel", b"hel");
        incomplete_with(WIDE, b"5\r\nhello\r", b"hello");
        incomplete_with(WIDE, b"5\r\nhello\r\n0\r\nA: 1\r\n", b"hello");
        incomplete_with(WIDE, b"5\r\nhello\r\n0\r\n\r", b"hello");
        // A body that simply stops is never complete (checklist item 28).
        incomplete_with(WIDE, b"5\r\nhello\r\n", b"hello");
    }

    #[test]
    fn odd_chunk_sizes() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for sizes in [&[1usize][..], &[7, 1, 2], &[4095, 4097], &[4096, 3, 8191]] {
            let mut input = Vec::new();
            let mut body = Vec::new();
            for &size in sizes {
                let chunk = &data[body.len()..body.len() + size];
                input.extend_from_slice(format!("{size:x}\r\n").as_bytes());
                input.extend_from_slice(chunk);
                input.extend_from_slice(b"\r\n");
                body.extend_from_slice(chunk);
            }
            input.extend_from_slice(b"0\r\n\r\n");
            let expected = Reference::Done { body, consumed: input.len() };
            assert_eq!(outcome(&input, WIDE), expected, "sizes {sizes:?}");
        }
    }

    #[test]
    fn reset_and_repeat() {
        let mut decoder = ChunkedDecoder::new(limits(5, 16, 16, 1));
        let mut out = Vec::new();
        assert_eq!(decoder.decode(b"9\r\n", &mut out), Err(TooLarge));
        assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Err(TooLarge));
        decoder.reset();
        assert_eq!(decoder.decode(b"2\r\nab\r\n0\r\n\r\nX", &mut out), Ok((12, Progress::Done)));
        assert_eq!((out.as_slice(), decoder.decoded(), decoder.position()), (&b"ab"[..], 2, 12));
        assert_eq!(decoder.decode(b"X", &mut out), Ok((0, Progress::Done)));
        decoder.reset();
        assert_eq!((decoder.decoded(), decoder.position(), decoder.is_done()), (0, 0, false));
        assert_eq!(decoder.limits(), limits(5, 16, 16, 1));
    }

    #[test]
    fn errors_map_to_statuses() {
        let all = [
            BadChunkSize,
            BadExtension,
            ExtensionTooLong,
            BadLineEnd,
            BadDataEnd,
            BadTrailer,
            TrailerTooLarge,
            TooLarge,
        ];
        for error in all {
            assert_eq!(error.too_large(), error == TooLarge);
            assert!(!error.to_string().is_empty() && !error.to_string().contains('\n'));
        }
        assert_eq!(TooLarge.to_string(), "body too large");
        assert!(std::mem::size_of::<ChunkedDecoder>() <= 96, "{}", std::mem::size_of::<ChunkedDecoder>());
    }

    /// splitmix64: a small deterministic generator, so that a failure replays.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }

        /// A number in `0..n` (`n` > 0).
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    const EXTENSIONS: [&[u8]; 7] =
        [b";a", b" ;b=c", b";n=\"q \\\" s\"", b"\t; x = y", b";e=\"\"", b";t=!#$", b";long=0123456789abcdef"];

    const TRAILERS: [&[u8]; 5] =
        [b"X-A: 1", b"Content-Length: 5", b"e:", b"T:\t v \xff", b"Authorization: Bearer x"];

    /// Bytes that mutations insert: the ones every rule is about.
    const SPICE: &[u8] = b"\r\n \t;=\"\\0aF:xg\0\x7f\xff";

    fn size_line(rng: &mut Rng, size: usize, out: &mut Vec<u8>) {
        out.extend(std::iter::repeat_n(b'0', rng.below(3)));
        let hex = if rng.below(2) == 0 { format!("{size:x}") } else { format!("{size:X}") };
        out.extend_from_slice(hex.as_bytes());
        for _ in 0..rng.below(3) {
            out.extend_from_slice(rng.pick::<&[u8]>(&EXTENSIONS));
        }
        out.extend_from_slice(b"\r\n");
    }

    /// A valid encoding of `body`, with random chunk sizes, extensions and trailers.
    fn encode(rng: &mut Rng, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = body;
        let largest = *rng.pick(&[1, 3, 8, 64, 300]);
        while !rest.is_empty() {
            let size = 1 + rng.below(rest.len().min(largest));
            size_line(rng, size, &mut out);
            out.extend_from_slice(&rest[..size]);
            out.extend_from_slice(b"\r\n");
            rest = &rest[size..];
        }
        size_line(rng, 0, &mut out);
        for _ in 0..rng.below(4) {
            out.extend_from_slice(rng.pick::<&[u8]>(&TRAILERS));
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn mutate(rng: &mut Rng, input: &mut Vec<u8>) {
        for _ in 0..1 + rng.below(3) {
            let at = rng.below(input.len() + 1);
            let byte = if rng.below(4) == 0 { rng.next() as u8 } else { *rng.pick(SPICE) };
            match rng.below(5) {
                0 if at < input.len() => input[at] = byte,
                1 => input.insert(at, byte),
                2 if at < input.len() => {
                    input.remove(at);
                }
                3 => input.truncate(at),
                _ => {
                    let end = (at + rng.below(8)).min(input.len());
                    let copy = input[at..end].to_vec();
                    input.splice(at..at, copy);
                }
            }
        }
    }

    /// Ascending cut points in `0..=len`.
    fn random_cuts(rng: &mut Rng, len: usize) -> Vec<usize> {
        let mut cuts: Vec<usize> = (0..rng.below(6)).map(|_| rng.below(len + 1)).collect();
        cuts.sort_unstable();
        cuts
    }

    #[test]
    fn random_bodies_agree_with_the_reference() {
        let mut rng = Rng(0x5eed_c0de);
        let table = [
            WIDE,
            limits(0, 0, 0, 0),
            limits(7, 5, 9, 1),
            limits(40, 12, 30, 2),
            limits(300, 64, 64, 3),
            limits(usize::MAX, usize::MAX, usize::MAX, usize::MAX),
        ];
        let (mut done, mut invalid) = (0, 0);
        for round in 0..4000 {
            let body: Vec<u8> = (0..rng.below(200)).map(|_| *rng.pick(b"ab\r\n0;\x00\xff")).collect();
            let mut input = encode(&mut rng, &body);
            let valid_len = input.len();
            let mutated = rng.below(3) != 0;
            if mutated {
                mutate(&mut rng, &mut input);
            } else if rng.below(2) == 0 {
                input.extend_from_slice(b"POST / HTTP/1.1\r\n");
            }
            let limits = *rng.pick(&table);
            let expected = decode_reference(&input, limits);
            if !mutated && limits == WIDE {
                assert_eq!(
                    expected,
                    Reference::Done { body: body.clone(), consumed: valid_len },
                    "round {round}"
                );
            }
            assert_eq!(run(&input, limits, &[]), expected, "round {round}: one call on {input:?}");
            let cuts = random_cuts(&mut rng, input.len());
            assert_eq!(run(&input, limits, &cuts), expected, "round {round}: cuts {cuts:?} on {input:?}");
            if round % 16 == 0 {
                let bytes: Vec<usize> = (1..input.len()).collect();
                assert_eq!(run(&input, limits, &bytes), expected, "round {round}: byte by byte");
            }
            match expected {
                Reference::Done { .. } => done += 1,
                Reference::Invalid { .. } => invalid += 1,
                Reference::Incomplete { .. } => {}
            }
        }
        // The generator reaches both ends.
        assert!(done > 400 && invalid > 1000, "done {done}, invalid {invalid}");
    }
}
