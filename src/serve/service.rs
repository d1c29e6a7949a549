//! One connection's service: gate, body, parse, pipeline, answer.
//!
//! may_minihttp runs one coroutine per connection and calls [`Connection::call`] for every
//! request it finds in the connection's buffer. The service must never return `Err` (that
//! becomes a 500 with the error's text) and never leave a body unread in the buffer (its bytes
//! would be parsed as the next request: request smuggling). So every request ends in one of:
//! * the body read exactly (`Content-Length` bytes) and the request answered;
//! * a refusal with trusted framing: reading is shut down (`SHUT_RD`), the body bytes already
//!   buffered are skipped by dropping may_minihttp's body reader (it cannot block: the socket
//!   reads end-of-stream), and the answer goes out in order before the connection closes;
//! * a refusal with untrusted framing: the answer is written straight to the socket and the
//!   connection is cut (`SHUT_RDWR`), since the rest of the byte stream cannot be parsed safely.
//!
//! After the first two cases end a connection, the "poisoned" flag makes any request still
//! buffered behind it a no-op answered 400: no side effects, whatever it says.

use std::io::Read;
use std::os::fd::RawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use may_minihttp::{HttpService, Request, Response};

use super::gate::{self, GateConfig, Head, Page, Reject, Verdict};
use super::response::Answer;
use super::{socket, Shared};
use crate::dedup::Busy;
use crate::ingest::Refused;
use crate::Parser;

/// Most headers may_minihttp parses; a request with more never reaches the service.
const MAX_HEADERS: usize = 16;

/// Scratch memory a connection keeps between requests; above it, buffers are released after the
/// request, so that one huge body does not pin megabytes on an idle connection.
const RETAINED_BYTES: usize = 1 << 20;

/// The answer to a POST that arrives while the receiver is stopping.
const STOPPING: Refused = Refused { retry_after_secs: 5, reason: "the receiver is stopping; retry shortly" };

/// The interim response to `Expect: 100-continue`.
const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Per-connection state.
pub struct Connection {
    shared: Arc<Shared>,
    fd: RawFd,
    /// This connection's copy of the gate's settings, refreshed when the token changes.
    gate: GateConfig,
    /// The token generation `gate` was copied at.
    generation: u64,
    parser: Parser,
    body: Vec<u8>,
    /// Per element of the current batch: store it (fresh valid event) or not.
    keep: Vec<bool>,
    /// Dedup keys of the current batch's valid events.
    keys: Vec<u64>,
    /// Set once the connection is ending: later requests in its buffer get [`Answer::Closing`].
    poisoned: bool,
    /// True while a request is inside `call` (counted in `Shared::in_flight`).
    in_call: bool,
}

impl Connection {
    /// The service for a newly accepted connection on socket `fd`. Over `--max-connections`, the
    /// socket is cut at once and the service only answers [`Answer::Closing`].
    pub fn open(shared: Arc<Shared>, fd: RawFd) -> Connection {
        let open = shared.metrics.open_connections.fetch_add(1, Ordering::Relaxed) + 1;
        let over = open > shared.max_connections as i64;
        if over {
            shared.metrics.connections_refused.fetch_add(1, Ordering::Relaxed);
            socket::shutdown_both(fd);
        } else {
            shared.deadlines.arm(fd);
        }
        let parser = Parser::new(shared.limits);
        let generation = shared.token_generation.load(Ordering::Acquire);
        let mut gate = shared.gate.clone();
        gate.token = shared.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Connection {
            shared,
            fd,
            gate,
            generation,
            parser,
            body: Vec::new(),
            keep: Vec::new(),
            keys: Vec::new(),
            poisoned: over,
            in_call: false,
        }
    }

    /// Ends the connection after this answer: reading stops, queued answers still go out.
    fn close_after_answer(&mut self) {
        socket::shutdown_read(self.fd);
        self.poisoned = true;
    }

    /// Handles one request; returns the answer and whether the connection closes after it.
    fn handle(&mut self, req: Request<'_, '_, '_>) -> (Answer, bool) {
        let mut pairs: [(&str, &[u8]); MAX_HEADERS] = [("", &[]); MAX_HEADERS];
        let count = req.headers().len().min(MAX_HEADERS);
        for (pair, header) in pairs.iter_mut().zip(req.headers()) {
            *pair = (header.name, header.value);
        }
        let head =
            Head { method: req.method(), path: req.path(), version: req.version(), headers: &pairs[..count] };
        let generation = self.shared.token_generation.load(Ordering::Acquire);
        if generation != self.generation {
            // The token was replaced (SIGHUP re-read its file): take the new one.
            self.gate.token =
                self.shared.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            self.generation = generation;
        }
        let decision = gate::decide(&head, &self.gate);
        if self.poisoned {
            return (self.skip(req, decision.verdict), true);
        }
        match decision.verdict {
            Verdict::Read { page, .. } => {
                let answer = match page {
                    Page::Health => Answer::Health {
                        healthy: self.shared.pipeline.healthy()
                            && !self.shared.draining.load(Ordering::Relaxed),
                    },
                    Page::Metrics => Answer::Metrics,
                };
                (answer, !decision.keep_alive)
            }
            Verdict::Reject(reject) => (self.refuse(req, reject), true),
            // Stopping: nothing new is taken. The framing is trusted here, so shutting reading
            // first lets the body's buffered bytes be skipped safely.
            Verdict::Ingest { .. } if self.shared.draining.load(Ordering::SeqCst) => {
                self.close_after_answer();
                drop(req.body());
                (Answer::Unavailable(STOPPING), true)
            }
            Verdict::Ingest { length, expect_continue } => {
                let answer = self.ingest(req, length, expect_continue);
                let close = !decision.keep_alive || matches!(answer, Answer::ShortBody | Answer::Busy);
                (answer, close)
            }
        }
    }

    /// A request buffered behind one that ended the connection: no side effects, but its body is
    /// skipped when its framing allows, so that its bytes are not parsed as yet another request
    /// (which would make may_minihttp drop the connection before writing the answers queued
    /// before it).
    fn skip(&mut self, req: Request<'_, '_, '_>, verdict: Verdict) -> Answer {
        let framed = match verdict {
            Verdict::Reject(reject) => reject.framing_trusted(),
            Verdict::Read { .. } | Verdict::Ingest { .. } => true,
        };
        if framed {
            // Reading is already shut down: this consumes only what is buffered.
            drop(req.body());
        }
        Answer::Closing
    }

    /// Refuses a request without reading its body (see the module docs for the two ways).
    fn refuse(&mut self, req: Request<'_, '_, '_>, reject: Reject) -> Answer {
        let answer = Answer::Reject(reject);
        if reject.framing_trusted() {
            // Shut reading first, so that skipping the body only consumes what is buffered.
            self.close_after_answer();
            drop(req.body());
        } else {
            socket::send_now(self.fd, &answer.raw_bytes());
            socket::shutdown_both(self.fd);
            self.poisoned = true;
        }
        answer
    }

    /// Reads exactly `length` body bytes, parses them and hands the batch to the pipeline.
    fn ingest(&mut self, req: Request<'_, '_, '_>, length: usize, expect_continue: bool) -> Answer {
        let Some(_reservation) = self.shared.reserve_body(length) else {
            self.close_after_answer();
            drop(req.body());
            return Answer::Busy;
        };
        if expect_continue {
            socket::send_now(self.fd, CONTINUE);
        }
        self.body.clear();
        let read = req.body().take(length as u64).read_to_end(&mut self.body);
        if read.is_err() || self.body.len() != length {
            // The client stopped early, or the deadline cut the socket: the stream is unusable.
            // (Fields, not `close_after_answer`: the reservation still borrows `self.shared`.)
            socket::shutdown_read(self.fd);
            self.poisoned = true;
            return Answer::ShortBody;
        }
        let answer = match self.parser.parse(&self.body) {
            Err(error) => Answer::BadBody(error),
            Ok(batch) => match self.shared.dedup.reserve(&batch, &mut self.keep, &mut self.keys) {
                Err(Busy) => Answer::Unavailable(Refused {
                    retry_after_secs: 1,
                    reason: "an event of this batch is being stored by another request; retry shortly",
                }),
                Ok(reservation) => match self.shared.pipeline.take(&batch, &self.keep, &self.keys) {
                    Ok(taken) => {
                        let metrics = &self.shared.metrics;
                        metrics
                            .events_unremembered
                            .fetch_add(reservation.unremembered as u64, Ordering::Relaxed);
                        reservation.commit();
                        metrics.events_accepted.fetch_add(taken.accepted as u64, Ordering::Relaxed);
                        metrics.events_duplicate.fetch_add(taken.duplicates as u64, Ordering::Relaxed);
                        metrics.events_quarantined.fetch_add(taken.quarantined as u64, Ordering::Relaxed);
                        Answer::Taken(taken)
                    }
                    // Dropping the reservation rolls it back: the retry is fresh again.
                    Err(refused) => Answer::Unavailable(refused),
                },
            },
        };
        if self.body.capacity() > RETAINED_BYTES {
            self.body = Vec::new();
        }
        if self.parser.retained_bytes() > RETAINED_BYTES {
            self.parser.shrink();
        }
        answer
    }
}

impl HttpService for Connection {
    fn call(&mut self, req: Request<'_, '_, '_>, rsp: &mut Response<'_>) -> std::io::Result<()> {
        // A HEAD request never gets a body, whatever the answer.
        let head_only = req.method() == "HEAD";
        // Counted before `draining` is read (both SeqCst): a stop that sets `draining` and then
        // sees no request in flight cannot miss one that read `draining` as false.
        self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        self.in_call = true;
        let (answer, close) = self.handle(req);
        let close = close || self.shared.draining.load(Ordering::SeqCst);
        if close && !self.poisoned {
            self.close_after_answer();
        }
        let metrics_text = match answer {
            Answer::Metrics => self.shared.render_metrics(),
            _ => String::new(),
        };
        answer.write(rsp, &metrics_text, head_only, close);
        let status = answer.status().0;
        self.shared.metrics.count_request(status);
        if let Some(reason) = answer.rejection() {
            match &answer {
                Answer::BadBody(error) => self.shared.reject_log.note(status, reason, error),
                _ => self.shared.reject_log.note(status, reason, &""),
            }
        }
        if !self.poisoned {
            // The next request gets a full timeout from now; idle keep-alive too.
            self.shared.deadlines.arm(self.fd);
        }
        self.in_call = false;
        self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        Ok(())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A request that unwound (may catches a panic per coroutine) is uncounted here, so a
        // graceful stop never waits for a request that is gone.
        if self.in_call {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
        // Runs before may_minihttp closes the fd: see the fd-reuse invariant in `deadline.rs`.
        self.shared.deadlines.clear(self.fd);
        self.shared.metrics.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}
