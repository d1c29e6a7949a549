//! One connection's loop: read, parse every complete request already buffered, answer them in
//! order in one write, read again; until the client closes, a request ends the connection, a
//! deadline passes, or the server stops.
//!
//! The connection owns its buffers and reuses them for every request: `input` (bytes read and
//! not yet consumed; a head, and a `Content-Length` body of up to [`INLINE_BODY`] bytes right
//! after it, are handed to the service in place), `body` (a larger body, or a decoded chunked
//! one), `out` (answers not yet written). Buffers that grew past [`RETAINED_BYTES`] for one big
//! request are released after it.
//!
//! Deadlines: a request must arrive whole (head and body) within `read_timeout` of its first
//! byte (bytes already buffered behind the previous request: of that request's answer), and a
//! connection waiting for a request is closed after `read_timeout` without one (from the accept or
//! the last answer). may's socket timeout is per wait, not a deadline, so before each read the
//! remaining time is armed when the armed one would overshoot it by more than [`TIMEOUT_SLACK`]
//! (one `setsockopt` per trickling read, none on the fast path).
//!
//! Invariants: no byte after a request whose framing failed is parsed; a body is either read
//! whole or the connection closes; the service never sees a partial body; an answer is never
//! written out of order.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use may::net::TcpStream;

use super::chunked::{ChunkedDecoder, ChunkedError, ChunkedLimits, Progress};
use super::head::{self, Field, Fields, Framing, HeadError, Parsed, Scratch};
use super::listener::{Registration, State};
use super::response::{self, DateCache, Reply, CONTINUE};
use super::{Admit, Outcome, Service};

/// The input buffer's size when a connection opens.
const INITIAL_INPUT: usize = 8 * 1024;
/// A read gets at least this much room (the buffer grows when less is free).
const MIN_READ: usize = 4 * 1024;
/// `Content-Length` bodies up to this size are read into the input buffer behind their head and
/// handed to the service where they lie; larger ones go into their own buffer, read straight
/// from the socket.
const INLINE_BODY: usize = 64 * 1024;
/// Buffers above this capacity are released after the request that grew them.
const RETAINED_BYTES: usize = 256 * 1024;
/// A read's armed timeout may overshoot the request's deadline by this much before it is re-armed.
const TIMEOUT_SLACK: Duration = Duration::from_millis(50);
/// After the last answer on a connection the server closes, unread input is drained for at most
/// this long, so the client's TCP does not get a reset that could discard the answer.
const LINGER_TIME: Duration = Duration::from_secs(1);
/// ... and at most this many bytes.
const LINGER_BYTES: usize = 256 * 1024;

/// Why the layer answered a request itself (each closes the connection).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Refusal {
    /// The head broke a rule or a limit.
    Head(HeadError),
    /// The chunked body broke a rule or the body limit.
    Chunked(ChunkedError),
    /// The request did not arrive whole within the read timeout.
    Timeout,
    /// The client closed its side before the body was complete.
    ShortBody,
    /// Request bodies in memory would exceed the body budget.
    Busy,
}

impl Refusal {
    /// The status code and reason phrase.
    pub fn status(self) -> (u16, &'static str) {
        match self {
            Refusal::Head(error) => error.status(),
            Refusal::Chunked(error) if error.too_large() => (413, "Content Too Large"),
            Refusal::Chunked(_) | Refusal::ShortBody => (400, "Bad Request"),
            Refusal::Timeout => (408, "Request Timeout"),
            Refusal::Busy => (503, "Service Unavailable"),
        }
    }

    /// The one-line reason answered (and logged).
    pub fn message(self) -> &'static str {
        match self {
            Refusal::Head(error) => error.message(),
            Refusal::Chunked(error) => error.message(),
            Refusal::Timeout => "request not complete within the read timeout",
            Refusal::ShortBody => "connection closed before the body was complete",
            Refusal::Busy => "too many request bodies in memory now; retry shortly",
        }
    }

    /// The answer, its body written into `scratch`.
    pub fn reply(self, scratch: &mut Vec<u8>) -> Reply<'_> {
        let (status, reason) = self.status();
        scratch.clear();
        scratch.extend_from_slice(self.message().as_bytes());
        scratch.push(b'\n');
        let headers: &'static [(&'static str, &'static str)] = match self {
            Refusal::Busy => &[("Content-Type", "text/plain; charset=utf-8"), ("Retry-After", "1")],
            _ => &[("Content-Type", "text/plain; charset=utf-8")],
        };
        Reply { status, reason, headers, body: scratch }
    }
}

/// Bytes read and not yet consumed: `data[start..end]`. `data` is always initialized (reads
/// go straight into it), and grows only when a read would get less than [`MIN_READ`].
#[derive(Debug, Default)]
struct Input {
    data: Vec<u8>,
    start: usize,
    end: usize,
}

impl Input {
    fn pending(&self) -> &[u8] {
        &self.data[self.start..self.end]
    }

    fn consume(&mut self, n: usize) {
        self.start += n;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Room for a read of up to `limit` bytes (at least 1): moves pending bytes to the front
    /// or grows the buffer when less than [`MIN_READ`] (or `limit`) is free.
    fn room(&mut self, limit: usize) -> &mut [u8] {
        let want = limit.clamp(1, MIN_READ);
        if self.data.len() - self.end < want && self.start > 0 {
            self.data.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.data.len() - self.end < want {
            let grown = (self.data.len() * 2).max(self.end + want).max(INITIAL_INPUT);
            self.data.resize(grown, 0);
        }
        let end = self.data.len().min(self.end.saturating_add(limit.max(1)));
        &mut self.data[self.end..end]
    }

    /// Removes `range` (relative to `start`) from the pending bytes, keeping what is around it.
    fn cut(&mut self, from: usize, to: usize) {
        self.data.copy_within(self.start + to..self.end, self.start + from);
        self.end -= to - from;
    }

    /// Releases a buffer grown by one big request, once nothing is pending.
    fn shrink(&mut self) {
        if self.start == self.end && self.data.len() > RETAINED_BYTES {
            self.data = Vec::new();
            self.start = 0;
            self.end = 0;
        }
    }
}

/// How a read ended when it did not bring bytes.
#[derive(Debug)]
enum ReadError {
    /// The client closed its sending side (it may still read).
    Closed,
    /// The request's deadline passed.
    TimedOut,
    /// The connection failed.
    Io,
}

/// What the loop does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Go on with the next request.
    Continue,
    /// Flush the answers and close gracefully.
    Close,
    /// The connection is gone: drop it.
    Abort,
}

/// One connection's state.
struct Conn<'s> {
    /// Declared before `stream`, so dropped before it, also when unwinding: the registry entry
    /// goes before the descriptor closes (see `listener.rs`).
    _registration: Registration<'s>,
    stream: TcpStream,
    state: &'s State,
    input: Input,
    body: Vec<u8>,
    out: Vec<u8>,
    fields: Vec<Field>,
    scratch: Scratch,
    date: DateCache,
    refusal_text: Vec<u8>,
    decoder: ChunkedDecoder,
    /// The read timeout currently set on the socket.
    armed: Duration,
    /// When the request being read must be complete, or (no byte of it yet) when the idle
    /// connection is closed.
    deadline: Instant,
}

/// Serves one accepted connection until it ends. `idle` is set while the connection waits for
/// the first byte of a request, so that a stopping server can close it.
pub(super) fn serve<S: Service>(
    registration: Registration<'_>,
    stream: TcpStream,
    service: &mut S,
    idle: &AtomicBool,
) {
    let state = registration.state();
    let timeout = state.config.read_timeout;
    let limits = &state.config.limits;
    let chunked = ChunkedLimits {
        max_body: usize::try_from(limits.max_body).unwrap_or(usize::MAX),
        max_trailer_bytes: limits.max_head_bytes,
        max_trailer_fields: limits.max_headers,
        ..ChunkedLimits::default()
    };
    let mut conn = Conn {
        _registration: registration,
        stream,
        state,
        input: Input::default(),
        body: Vec::new(),
        out: Vec::new(),
        fields: Vec::new(),
        scratch: Scratch::default(),
        date: DateCache::default(),
        refusal_text: Vec::new(),
        decoder: ChunkedDecoder::new(chunked),
        armed: timeout,
        deadline: Instant::now() + timeout,
    };
    let stream = &conn.stream;
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
        || stream.set_nodelay(true).is_err()
    {
        return;
    }
    match conn.run(service, idle) {
        Next::Close => conn.close(),
        Next::Abort | Next::Continue => {}
    }
}

impl Conn<'_> {
    fn run<S: Service>(&mut self, service: &mut S, idle: &AtomicBool) -> Next {
        let limits = self.state.config.limits;
        let mut scanned = 0;
        loop {
            let skip = head::leading_empty_lines(self.input.pending());
            if skip > 0 {
                self.input.consume(skip);
                scanned = 0;
            }
            let pending = self.input.pending();
            let Some(end) = head::find_end(pending, scanned) else {
                if pending.len() >= limits.max_head_bytes {
                    return self.refuse(service, Refusal::Head(HeadError::TooLarge));
                }
                if let Some(error) = head::early_error(pending) {
                    return self.refuse(service, Refusal::Head(error));
                }
                scanned = pending.len();
                let waiting = pending.is_empty();
                if waiting {
                    // Between requests: a stopping server may close the connection now.
                    idle.store(true, Ordering::SeqCst);
                    if self.state.stopping.load(Ordering::SeqCst) {
                        idle.store(false, Ordering::SeqCst);
                        return Next::Close;
                    }
                }
                let limit = (limits.max_head_bytes + MIN_READ).saturating_sub(pending.len());
                let read = self.read(limit);
                if waiting {
                    idle.store(false, Ordering::SeqCst);
                }
                match read {
                    // The first bytes of a request: its time starts now, however long the
                    // connection sat idle before (a proxy may reuse an upstream connection
                    // idle for almost the whole timeout).
                    Ok(_) if waiting => self.deadline = Instant::now() + self.state.config.read_timeout,
                    Ok(_) => {}
                    // End of stream between requests, or half a head: nothing to answer.
                    Err(ReadError::Closed) => return Next::Close,
                    // Idle too long: closed without a word; a request begun: 408.
                    Err(ReadError::TimedOut) if waiting => return Next::Close,
                    Err(ReadError::TimedOut) => return self.refuse(service, Refusal::Timeout),
                    Err(ReadError::Io) => return Next::Abort,
                }
                continue;
            };
            scanned = 0;
            let parsed = match head::parse(pending, end, &limits, &mut self.scratch, &mut self.fields) {
                Ok(parsed) => parsed,
                // `fields` holds the lines read before the error (none for most errors).
                Err(error) => return self.refuse_read(service, Refusal::Head(error)),
            };
            match self.request(service, &parsed) {
                Next::Continue => {}
                other => return other,
            }
            self.deadline = Instant::now() + self.state.config.read_timeout;
            if self.state.stopping.load(Ordering::SeqCst) {
                return Next::Close;
            }
        }
    }

    /// One request whose head is `parsed` (at the front of the pending input): admit, read the
    /// body, call, answer, consume its bytes.
    fn request<S: Service>(&mut self, service: &mut S, parsed: &Parsed) -> Next {
        let view = parsed.view(self.input.pending(), &self.fields);
        // An answer to HEAD carries the length of the body it would have, and no body.
        let head_only = view.method() == "HEAD";
        match service.admit(&view) {
            Admit::Read => {}
            Admit::Refuse(outcome) => {
                let buffered = self.input.pending().len() - parsed.len;
                let skip = match parsed.framing {
                    Framing::Length(n) if n as usize <= buffered => Some(n as usize),
                    _ => None,
                };
                let close = outcome.close || !parsed.keep_alive || skip.is_none();
                response::encode(&outcome.reply, head_only, close, &mut self.date, &mut self.out);
                if close {
                    return Next::Close;
                }
                self.input.consume(parsed.len + skip.unwrap_or(0));
                return Next::Continue;
            }
        }
        let (taken, used) = match self.read_body(service, parsed) {
            Ok(read) => read,
            Err(next) => return next,
        };
        let body: &[u8] = match used {
            BodyIn::Input(n) => &self.input.pending()[parsed.len..parsed.len + n],
            BodyIn::Buffer(_) => &self.body,
        };
        let view = parsed.view(self.input.pending(), &self.fields);
        let Outcome { reply, close } = service.call(&view, body);
        let close = close || !parsed.keep_alive;
        response::encode(&reply, head_only, close, &mut self.date, &mut self.out);
        self.state.budget.give_back(taken);
        let consumed = match used {
            BodyIn::Input(n) => parsed.len + n,
            BodyIn::Buffer(raw) => raw,
        };
        self.input.consume(consumed);
        if self.body.capacity() > RETAINED_BYTES {
            self.body = Vec::new();
        }
        self.input.shrink();
        if close {
            Next::Close
        } else {
            Next::Continue
        }
    }

    /// Reads the body of an admitted request. Returns the budget taken and where the body is;
    /// on failure, what the loop does next (the refusal already answered).
    fn read_body<S: Service>(&mut self, service: &mut S, parsed: &Parsed) -> Result<(usize, BodyIn), Next> {
        match parsed.framing {
            Framing::Length(0) => Ok((0, BodyIn::Input(0))),
            Framing::Length(n) => {
                let n = n as usize;
                if !self.state.budget.take(n) {
                    return Err(self.refuse_read(service, Refusal::Busy));
                }
                let read =
                    if n <= INLINE_BODY { self.read_inline(parsed, n) } else { self.read_large(parsed, n) };
                match read {
                    Ok(used) => Ok((n, used)),
                    Err(refusal) => {
                        self.state.budget.give_back(n);
                        Err(self.fail(service, refusal))
                    }
                }
            }
            Framing::Chunked => {
                let mut taken = 0;
                let read = self.read_chunked(parsed, &mut taken);
                match read {
                    Ok(used) => Ok((taken, used)),
                    Err(refusal) => {
                        self.state.budget.give_back(taken);
                        Err(self.fail(service, refusal))
                    }
                }
            }
        }
    }

    /// A refusal while reading a body: [`Refusal::ShortBody`] and I/O failures end without more
    /// ado when the client is gone; everything else is answered.
    fn fail<S: Service>(&mut self, service: &mut S, refusal: Option<Refusal>) -> Next {
        match refusal {
            Some(refusal) => self.refuse_read(service, refusal),
            None => Next::Abort,
        }
    }

    /// Sends `100 Continue` if the client waits for it and no body byte has come yet.
    fn continue_if_asked(&mut self, parsed: &Parsed) {
        if parsed.expect_continue && self.input.pending().len() == parsed.len {
            self.out.extend_from_slice(CONTINUE);
        }
    }

    /// Reads until the head and `n` body bytes are all in the input buffer.
    fn read_inline(&mut self, parsed: &Parsed, n: usize) -> Result<BodyIn, Option<Refusal>> {
        self.continue_if_asked(parsed);
        while self.input.pending().len() < parsed.len + n {
            let missing = parsed.len + n - self.input.pending().len();
            self.read(missing).map_err(|e| self.body_error(e))?;
        }
        Ok(BodyIn::Input(n))
    }

    /// Reads a body larger than [`INLINE_BODY`] into `body`: the part already buffered, then the
    /// rest straight from the socket.
    fn read_large(&mut self, parsed: &Parsed, n: usize) -> Result<BodyIn, Option<Refusal>> {
        self.continue_if_asked(parsed);
        let buffered = (self.input.pending().len() - parsed.len).min(n);
        self.body.clear();
        self.body.extend_from_slice(&self.input.pending()[parsed.len..parsed.len + buffered]);
        self.body.resize(n, 0);
        let mut filled = buffered;
        while filled < n {
            self.flush().map_err(|()| None)?;
            let got = read_deadline(
                &mut self.stream,
                &mut self.body[filled..],
                self.deadline,
                &mut self.armed,
                &self.state.counters.timed_out,
            )
            .map_err(|e| self.body_error(e))?;
            filled += got;
        }
        Ok(BodyIn::Buffer(parsed.len + buffered))
    }

    /// Decodes a chunked body into `body`, reading as needed; decoded bytes are charged to the
    /// body budget as they arrive (`taken`).
    fn read_chunked(&mut self, parsed: &Parsed, taken: &mut usize) -> Result<BodyIn, Option<Refusal>> {
        self.continue_if_asked(parsed);
        self.decoder.reset();
        self.body.clear();
        loop {
            let raw = &self.input.pending()[parsed.len..];
            let (used, progress) =
                self.decoder.decode(raw, &mut self.body).map_err(|e| Some(Refusal::Chunked(e)))?;
            let grown = self.body.len() - *taken;
            if grown > 0 {
                if !self.state.budget.take(grown) {
                    return Err(Some(Refusal::Busy));
                }
                *taken += grown;
            }
            // Decoded framing bytes are dropped at once, so that the buffer holds the head and
            // at most one read of undecoded bytes.
            self.input.cut(parsed.len, parsed.len + used);
            if progress == Progress::Done {
                return Ok(BodyIn::Buffer(parsed.len));
            }
            self.read(MIN_READ.max(self.input.data.len() - self.input.end))
                .map_err(|e| self.body_error(e))?;
        }
    }

    /// The refusal for a read that failed inside a body (`None`: the connection is gone).
    fn body_error(&self, error: ReadError) -> Option<Refusal> {
        match error {
            ReadError::Closed => Some(Refusal::ShortBody),
            ReadError::TimedOut => Some(Refusal::Timeout),
            ReadError::Io => None,
        }
    }

    /// Answers a request the layer refuses before any of its header lines were parsed, and ends
    /// the connection.
    fn refuse<S: Service>(&mut self, service: &mut S, refusal: Refusal) -> Next {
        service.refused_with(refusal, Fields::NONE);
        self.answer_refusal(refusal)
    }

    /// Answers a request the layer refuses after `head::parse` filled `fields` from the head at
    /// the front of the input (refused by the parse itself, or while its body was read), and
    /// ends the connection.
    fn refuse_read<S: Service>(&mut self, service: &mut S, refusal: Refusal) -> Next {
        service.refused_with(refusal, Fields::new(self.input.pending(), &self.fields));
        self.answer_refusal(refusal)
    }

    fn answer_refusal(&mut self, refusal: Refusal) -> Next {
        let reply = refusal.reply(&mut self.refusal_text);
        response::encode(&reply, false, true, &mut self.date, &mut self.out);
        Next::Close
    }

    /// Writes the queued answers first, then reads up to `limit` bytes into the input buffer
    /// before the deadline.
    fn read(&mut self, limit: usize) -> Result<usize, ReadError> {
        self.flush().map_err(|()| ReadError::Io)?;
        let room = self.input.room(limit);
        let got = read_deadline(
            &mut self.stream,
            room,
            self.deadline,
            &mut self.armed,
            &self.state.counters.timed_out,
        )?;
        self.input.end += got;
        Ok(got)
    }

    /// Writes every queued answer; `Err` when the connection failed.
    fn flush(&mut self) -> Result<(), ()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written = self.stream.write_all(&self.out);
        self.out.clear();
        if self.out.capacity() > RETAINED_BYTES {
            self.out = Vec::new();
        }
        written.map_err(|_| ())
    }

    /// Ends the connection gracefully: the queued answers out, the write side shut, then the
    /// client's unread bytes drained (bounded) so the close does not turn into a reset.
    fn close(&mut self) {
        if self.flush().is_err() || self.stream.shutdown(Shutdown::Write).is_err() {
            return;
        }
        if self.stream.set_read_timeout(Some(LINGER_TIME)).is_err() {
            return;
        }
        let until = Instant::now() + LINGER_TIME;
        let mut drained = 0;
        let mut sink = [0u8; 4096];
        while drained < LINGER_BYTES && Instant::now() < until {
            match self.stream.read(&mut sink) {
                Ok(0) | Err(_) => return,
                Ok(n) => drained += n,
            }
        }
    }
}

/// Where an admitted request's body ended up.
#[derive(Debug, Clone, Copy)]
enum BodyIn {
    /// `n` bytes in the input buffer right after the head.
    Input(usize),
    /// In `Conn::body`; the request took this many bytes of the input buffer (its head and
    /// whatever part of the body was buffered there).
    Buffer(usize),
}

/// One read into `room` that must end before `deadline`, re-arming the socket's timeout when
/// the armed one would overshoot it; a deadline that passes is counted in `timed_out`.
fn read_deadline(
    stream: &mut TcpStream,
    room: &mut [u8],
    deadline: Instant,
    armed: &mut Duration,
    timed_out: &AtomicU64,
) -> Result<usize, ReadError> {
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            timed_out.fetch_add(1, Ordering::Relaxed);
            return Err(ReadError::TimedOut);
        }
        if *armed > remaining + TIMEOUT_SLACK {
            stream.set_read_timeout(Some(remaining)).map_err(|_| ReadError::Io)?;
            *armed = remaining;
        }
        match stream.read(room) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            // The armed timeout may be shorter than what is left (set for an earlier request):
            // arm the rest and wait again.
            Err(e) if matches!(e.kind(), io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock) => {
                *armed = Duration::MAX;
            }
            Err(_) => return Err(ReadError::Io),
        }
    }
}
