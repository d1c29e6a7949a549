//! The built-in load generator (the fallback when `wrk` is missing, or `BENCH_GENERATOR=builtin`),
//! and the small blocking HTTP/1.1 client it shares with the benchmark's health and metrics
//! checks.
//!
//! One std thread per connection, each with a blocking keep-alive `TcpStream`: write one request,
//! read its whole response, record the latency, repeat until the run's deadline (no pipelining).
//! A request in flight at the deadline is completed and counted, so every request the receiver
//! took was also answered and counted. Latencies go into a log-linear histogram (≤ 1/64 relative
//! error), merged over the threads for p50/p99. Requests are built exactly like
//! `post.lua` builds them (same eventId scheme, same headers), only the counter bytes change.
//!
//! [`PacedBuiltin`] is the same client on a fixed schedule instead of a closed loop (the
//! fixed-rate section of the report: Debian's `wrk` has no `-R`, and wrk2 is not packaged).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use super::Outcome;

/// Time a generator thread waits for a response before counting a socket error.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What goes into every request, before the eventIds are made unique.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    /// The fixture: a compact JSON array of events.
    pub template: Vec<u8>,
    /// The webhook path.
    pub path: String,
    /// Sent as the whole `Authorization` value; `None` sends no such header.
    pub token: Option<String>,
    /// Distinguishes this benchmark run's eventIds from any other's.
    pub nonce: u32,
}

/// One connection's request: the bytes, and where the 12 hex digits of the counter go.
pub(crate) struct RequestBytes {
    pub bytes: Vec<u8>,
    slots: Vec<usize>,
    body_len: usize,
}

impl RequestBytes {
    /// The request for `thread` of generator run `invocation`, counter 0. Each `"eventId"` value
    /// of the template becomes `NONCE-INVOCATION-THREAD-8INDEX-COUNTER` (UUID-shaped), as in
    /// `post.lua`.
    pub(crate) fn new(batch: &Batch, host: SocketAddr, invocation: u16, thread: u16) -> RequestBytes {
        const MARKER: &[u8] = br#""eventId":""#;
        let template = batch.template.trim_ascii_end();
        let mut body = Vec::with_capacity(template.len() + 400);
        let mut slots = Vec::new();
        let mut position = 0;
        let mut index = 0u32;
        while let Some(found) = find(&template[position..], MARKER) {
            let value = position + found + MARKER.len();
            let close = value + find(&template[value..], b"\"").expect("unterminated eventId");
            body.extend_from_slice(&template[position..value]);
            let prefix = format!("{:08x}-{invocation:04x}-{thread:04x}-8{index:03x}-", batch.nonce);
            body.extend_from_slice(prefix.as_bytes());
            slots.push(body.len());
            body.extend_from_slice(b"000000000000");
            position = close;
            index += 1;
        }
        assert!(index > 0, "no eventId in the fixture");
        body.extend_from_slice(&template[position..]);
        let mut head = format!("POST {} HTTP/1.1\r\nHost: {host}\r\n", batch.path);
        if let Some(token) = &batch.token {
            head.push_str(&format!("Authorization: {token}\r\n"));
        }
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n\r\n", body.len()));
        let body_len = body.len();
        let mut bytes = head.into_bytes();
        let offset = bytes.len();
        bytes.extend_from_slice(&body);
        RequestBytes { bytes, slots: slots.into_iter().map(|s| s + offset).collect(), body_len }
    }

    /// Writes `counter` as 12 lower-case hex digits into every eventId.
    pub(crate) fn set_counter(&mut self, counter: u64) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for &slot in &self.slots {
            for (i, byte) in self.bytes[slot..slot + 12].iter_mut().enumerate() {
                *byte = HEX[((counter >> (4 * (11 - i))) & 0xf) as usize];
            }
        }
    }

    /// The body's length in bytes.
    pub(crate) fn body_len(&self) -> usize {
        self.body_len
    }

    /// Events in the body (one eventId slot per event).
    pub(crate) fn events(&self) -> usize {
        self.slots.len()
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A parsed response: the status code, the body, and whether the server closes after it.
pub(crate) struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    pub close: bool,
}

/// Reads one response (status line, headers, `Content-Length` body) from `stream`. `buffer`
/// keeps bytes between calls; with no pipelining there are none left over.
pub(crate) fn read_reply(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<Reply> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let head_end = loop {
        if let Some(at) = find(buffer, b"\r\n\r\n") {
            break at + 4;
        }
        read_more(stream, buffer)?;
    };
    let head = std::str::from_utf8(&buffer[..head_end]).map_err(|_| invalid("response head not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("bad status line"))?;
    let (mut length, mut close) = (0usize, false);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().map_err(|_| invalid("bad Content-Length"))?;
            } else if name.eq_ignore_ascii_case("connection") && value.trim().eq_ignore_ascii_case("close") {
                close = true;
            }
        }
    }
    while buffer.len() < head_end + length {
        read_more(stream, buffer)?;
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Ok(Reply { status, body, close })
}

fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> io::Result<()> {
    let mut chunk = [0u8; 4096];
    match stream.read(&mut chunk)? {
        0 => Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed mid-response")),
        n => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

/// One GET on a fresh connection (health and metrics checks).
pub(crate) fn get(addr: SocketAddr, path: &str) -> io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    read_reply(&mut stream, &mut Vec::new())
}

/// One request of raw bytes (a complete HTTP/1.1 request) on a fresh connection.
pub(crate) fn send(addr: SocketAddr, request: &[u8]) -> io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(request)?;
    read_reply(&mut stream, &mut Vec::new())
}

/// Latency histogram in microseconds: exact below 128 µs, then 64 buckets per power of two.
#[derive(Clone)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

const SUB_BITS: u32 = 6;
const SUB: u64 = 1 << SUB_BITS;

impl Histogram {
    pub(crate) fn new() -> Histogram {
        Histogram { counts: vec![0; (SUB as usize) * (65 - SUB_BITS as usize)], total: 0 }
    }

    fn index(micros: u64) -> usize {
        if micros < 2 * SUB {
            return micros as usize;
        }
        let shift = 63 - micros.leading_zeros() - SUB_BITS;
        ((u64::from(shift) + 1) * SUB + ((micros >> shift) - SUB)) as usize
    }

    /// The middle of bucket `index`, in microseconds.
    fn value(index: usize) -> f64 {
        let index = index as u64;
        if index < 2 * SUB {
            return index as f64;
        }
        let shift = index / SUB - 1;
        let low = (index % SUB + SUB) << shift;
        low as f64 + ((1u64 << shift) as f64 - 1.0) / 2.0
    }

    pub(crate) fn record(&mut self, micros: u64) {
        self.counts[Self::index(micros)] += 1;
        self.total += 1;
    }

    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.total += other.total;
    }

    /// The `q`-quantile (0 < q ≤ 1), nearest rank; 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        let rank = ((q * self.total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::value(index);
            }
        }
        0.0
    }
}

/// CPU time of the calling thread, in seconds.
fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec; the clock id is a constant the kernel knows.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// What one generator thread saw.
struct ThreadResult {
    histogram: Histogram,
    ok: u64,
    non_ok: u64,
    socket_errors: u64,
    cpu: f64,
    end: Instant,
}

impl ThreadResult {
    /// Counts one request's outcome, its latency in the histogram; false when the connection
    /// must be dropped (a socket error, or the server said `Connection: close`).
    fn count(&mut self, reply: io::Result<Reply>, latency: Duration) -> bool {
        match reply {
            Ok(reply) => {
                self.histogram.record(latency.as_micros() as u64);
                if reply.status == 200 {
                    self.ok += 1;
                } else {
                    self.non_ok += 1;
                }
                !reply.close
            }
            Err(_) => {
                self.socket_errors += 1;
                false
            }
        }
    }
}

/// The built-in generator's settings.
pub(crate) struct Builtin {
    pub batch: Batch,
    pub connections: usize,
}

impl Builtin {
    /// Runs `connections` closed-loop connections against `addr` for `duration`.
    pub(crate) fn run(&self, addr: SocketAddr, duration: Duration, invocation: u16) -> io::Result<Outcome> {
        let barrier = Barrier::new(self.connections + 1);
        let (start, results) = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..self.connections)
                .map(|thread| {
                    let barrier = &barrier;
                    std::thread::Builder::new().stack_size(256 << 10).spawn_scoped(scope, move || {
                        self.connection(addr, duration, invocation, thread, barrier)
                    })
                })
                .collect::<io::Result<_>>()?;
            barrier.wait();
            let start = Instant::now();
            let results: Vec<ThreadResult> =
                handles.into_iter().map(|h| h.join().expect("generator thread panicked")).collect();
            Ok::<_, io::Error>((start, results))
        })?;
        let mut histogram = Histogram::new();
        let mut outcome = Outcome::default();
        let mut end = start;
        for result in &results {
            histogram.merge(&result.histogram);
            outcome.ok += result.ok;
            outcome.non_ok += result.non_ok;
            outcome.socket_errors += result.socket_errors;
            outcome.generator_cpu += result.cpu;
            end = end.max(result.end);
        }
        outcome.seconds = (end - start).as_secs_f64();
        outcome.p50_us = histogram.quantile(0.50);
        outcome.p99_us = histogram.quantile(0.99);
        Ok(outcome)
    }

    /// One connection's loop; connects before the start barrier, reconnects after an error.
    fn connection(
        &self,
        addr: SocketAddr,
        duration: Duration,
        invocation: u16,
        thread: usize,
        barrier: &Barrier,
    ) -> ThreadResult {
        let connect = || -> io::Result<TcpStream> {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
            Ok(stream)
        };
        let mut request = RequestBytes::new(&self.batch, addr, invocation, thread as u16);
        let mut result = ThreadResult {
            histogram: Histogram::new(),
            ok: 0,
            non_ok: 0,
            socket_errors: 0,
            cpu: 0.0,
            end: Instant::now(),
        };
        let mut stream = connect().ok();
        let mut buffer = Vec::with_capacity(4096);
        barrier.wait();
        let cpu_start = thread_cpu_seconds();
        let deadline = Instant::now() + duration;
        let mut counter = 0u64;
        while Instant::now() < deadline {
            let Some(live) = stream.as_mut() else {
                match connect() {
                    Ok(fresh) => stream = Some(fresh),
                    Err(_) => {
                        result.socket_errors += 1;
                        std::thread::sleep(Duration::from_millis(10));
                    }
                }
                continue;
            };
            request.set_counter(counter);
            counter += 1;
            buffer.clear();
            let sent = Instant::now();
            let reply = live.write_all(&request.bytes).and_then(|()| read_reply(live, &mut buffer));
            if !result.count(reply, sent.elapsed()) {
                stream = None;
            }
        }
        result.end = Instant::now();
        result.cpu = thread_cpu_seconds() - cpu_start;
        result
    }
}

/// What a fixed-rate run measured beyond [`Outcome`]: the whole latency histogram, and how many
/// sends a connection's own previous answer held past their due time.
pub(crate) struct PacedResult {
    pub outcome: Outcome,
    pub histogram: Histogram,
    pub held: u64,
}

/// The fixed-rate (open-loop) generator: `connections` keep-alive connections, one std thread
/// each, that together send `rate` requests a second on a fixed schedule (request k of
/// connection i is due at start + (k·connections + i) / rate), whatever the answers take.
///
/// Latency is measured like wrk2's `-R`: from the due time when the connection was still waiting
/// for its previous answer then (the server held the send back, so the wait counts: no
/// coordinated omission), else from the actual send (so the generator's own sleep overshoot is not
/// charged to the server). A request in flight at the end is completed and counted.
pub(crate) struct PacedBuiltin {
    pub batch: Batch,
    pub connections: usize,
    pub rate: f64,
}

/// Time from the call to the first due request: the connections are opened meanwhile.
const PACED_LEAD: Duration = Duration::from_millis(200);

impl PacedBuiltin {
    /// Runs the schedule against `addr` for `duration`.
    pub(crate) fn run(
        &self,
        addr: SocketAddr,
        duration: Duration,
        invocation: u16,
    ) -> io::Result<PacedResult> {
        let connections = self.connections.max(1);
        let start = Instant::now() + PACED_LEAD;
        let results = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..connections)
                .map(|thread| {
                    std::thread::Builder::new().stack_size(256 << 10).spawn_scoped(scope, move || {
                        self.connection(addr, start, duration, invocation, thread)
                    })
                })
                .collect::<io::Result<_>>()?;
            Ok::<_, io::Error>(
                handles.into_iter().map(|h| h.join().expect("generator thread panicked")).collect::<Vec<_>>(),
            )
        })?;
        let mut histogram = Histogram::new();
        let mut outcome = Outcome::default();
        let mut held = 0;
        let mut end = start;
        for (result, thread_held) in &results {
            histogram.merge(&result.histogram);
            outcome.ok += result.ok;
            outcome.non_ok += result.non_ok;
            outcome.socket_errors += result.socket_errors;
            outcome.generator_cpu += result.cpu;
            end = end.max(result.end);
            held += thread_held;
        }
        outcome.seconds = end.saturating_duration_since(start).as_secs_f64();
        outcome.p50_us = histogram.quantile(0.50);
        outcome.p99_us = histogram.quantile(0.99);
        Ok(PacedResult { outcome, histogram, held })
    }

    /// One connection's schedule; reconnects after an error (the request is then counted as a
    /// socket error and its slot skipped).
    fn connection(
        &self,
        addr: SocketAddr,
        start: Instant,
        duration: Duration,
        invocation: u16,
        thread: usize,
    ) -> (ThreadResult, u64) {
        let connect = || -> io::Result<TcpStream> {
            let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
            Ok(stream)
        };
        let connections = self.connections.max(1) as f64;
        let due =
            |k: u64| start + Duration::from_secs_f64((k as f64 * connections + thread as f64) / self.rate);
        let mut request = RequestBytes::new(&self.batch, addr, invocation, thread as u16);
        let mut result = ThreadResult {
            histogram: Histogram::new(),
            ok: 0,
            non_ok: 0,
            socket_errors: 0,
            cpu: 0.0,
            end: Instant::now(),
        };
        let mut held = 0;
        let mut stream = connect().ok();
        let mut buffer = Vec::with_capacity(4096);
        let cpu_start = thread_cpu_seconds();
        let deadline = start + duration;
        let mut previous_answer = start;
        let mut k = 0u64;
        loop {
            let due_at = due(k);
            if due_at >= deadline {
                break;
            }
            k += 1;
            let now = Instant::now();
            if due_at > now {
                std::thread::sleep(due_at - now);
            }
            if stream.is_none() {
                stream = connect().ok();
            }
            let Some(live) = stream.as_mut() else {
                result.socket_errors += 1;
                continue;
            };
            request.set_counter(k);
            buffer.clear();
            let sent = Instant::now();
            let from = if previous_answer > due_at {
                held += 1;
                due_at
            } else {
                sent
            };
            let reply = live.write_all(&request.bytes).and_then(|()| read_reply(live, &mut buffer));
            previous_answer = Instant::now();
            if !result.count(reply, previous_answer.duration_since(from)) {
                stream = None;
            }
        }
        result.end = Instant::now();
        result.cpu = thread_cpu_seconds() - cpu_start;
        (result, held)
    }
}
