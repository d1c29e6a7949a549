//! One connection's webhook service: gate, parse, ingest, answer.
//!
//! The HTTP layer (`crate::http`) owns the socket and the framing. It hands this service a head
//! to admit or refuse before any body byte is read ([`Service::admit`]: the gate, and the
//! receiver stopping), then the whole body of an admitted request ([`Service::call`]). So
//! nothing here can see a partial body or leave one unread; every answer is a value of
//! [`Answer`], mapped to its status in `response.rs`.
//!
//! Graceful stop: a POST is counted in [`Shared::in_flight`](super::Shared) from its admission,
//! before `draining` is read, until its answer (or until the connection drops it), so a stop
//! that sets `draining` and then sees no request in flight cannot miss one that was admitted.
//!
//! Every refusal, the receiver's own and the HTTP layer's, is counted and logged (rate-limited,
//! `reject_log.rs`) with its cause and the client: the peer address the layer reported at the
//! accept, and the proxy's forwarding headers when the head was read that far. Every request
//! whose head was admitted or refused here is timed from then to its answer (`metrics.rs`).

use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use super::gate::{self, GateConfig, Listener, Page, Reject, Route, Verdict};
use super::reject_log::Client;
use super::response::Answer;
use super::Shared;
use crate::http::{Admit, Fields, Head, Outcome, Refusal, Service};
use crate::ingest::{Refused, Scratch};
use crate::Parser;

/// Scratch memory a connection keeps between requests; above it, the parser's buffers are
/// released after the request, so that one huge body does not pin megabytes on an idle
/// connection.
const RETAINED_BYTES: usize = 1 << 20;

/// The answer to a POST that arrives while the receiver is stopping.
const STOPPING: Refused = Refused { retry_after_secs: 5, reason: "the receiver is stopping; retry shortly" };

/// Per-connection state.
pub(super) struct Connection {
    shared: Arc<Shared>,
    /// This connection's copy of the gate's settings, refreshed when the token changes.
    gate: GateConfig,
    /// The token generation `gate` was copied at.
    generation: u64,
    parser: Parser,
    /// The ingest stage's scratch space.
    scratch: Scratch,
    /// The current answer's body.
    body: Vec<u8>,
    /// The rendered metrics, for a `/metrics` answer.
    metrics_text: String,
    /// True from a POST's admission to its answer (counted in `Shared::in_flight`).
    in_flight: bool,
    /// The gate's verdict on the request admitted last, for `call`.
    admitted: Verdict,
    /// The routes this connection's listener serves.
    listener: Listener,
    /// The peer, once the HTTP layer said it.
    peer: Option<SocketAddr>,
    /// The route of the request admitted last.
    route: Route,
    /// When that request's head was admitted.
    started: Instant,
    /// True from a head's admission until its answer is counted (for a refusal of its body).
    timing: bool,
}

impl Connection {
    /// The service for a newly accepted connection on a listener that serves `listener`'s
    /// routes.
    pub(super) fn new(shared: Arc<Shared>, listener: Listener) -> Connection {
        let parser = Parser::new(shared.limits);
        let generation = shared.token_generation.load(Ordering::Acquire);
        let mut gate = shared.gate.clone();
        gate.token = shared.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
        Connection {
            shared,
            gate,
            generation,
            parser,
            scratch: Scratch::default(),
            body: Vec::new(),
            metrics_text: String::new(),
            in_flight: false,
            admitted: Verdict::Reject(Reject::NotFound),
            listener,
            peer: None,
            route: Route::Other,
            started: Instant::now(),
            timing: false,
        }
    }

    /// Takes the new token if SIGHUP replaced it since this connection last looked.
    fn refresh_token(&mut self) {
        let generation = self.shared.token_generation.load(Ordering::Acquire);
        if generation != self.generation {
            self.gate.token =
                self.shared.token.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
            self.generation = generation;
        }
    }

    /// Parses the batch and hands it to the ingest stage.
    fn ingest(&mut self, body: &[u8]) -> Answer {
        let answer = match self.parser.parse(body) {
            Err(error) => Answer::BadBody(error),
            Ok(batch) => match self.shared.ingest.take(&batch, &mut self.scratch) {
                Ok(taken) => {
                    if taken.accepted > 0 {
                        self.shared.metrics.event_accepted();
                    }
                    Answer::Taken(taken)
                }
                Err(refused) => Answer::Unavailable(refused),
            },
        };
        if self.parser.retained_bytes() > RETAINED_BYTES {
            self.parser.shrink();
        }
        answer
    }

    /// Logs `answer` (rate-limited) if it refuses the request whose head is `head`.
    fn log_rejection(&self, answer: &Answer, head: &Head<'_>) {
        let Some(reason) = answer.rejection() else { return };
        let status = answer.status().0;
        let client = Client { peer: self.peer, fields: head.fields() };
        let log = &self.shared.reject_log;
        match (answer, &self.gate.token) {
            (Answer::Reject(Reject::Unauthorized), Some(token)) => {
                let mismatch = token.mismatch(|| head.headers());
                log.note(status, reason, mismatch.kind(), &Cause(&mismatch), &client);
            }
            (Answer::BadBody(error), _) => log.note(status, reason, "", error, &client),
            _ => log.note(status, reason, "", &"", &client),
        }
    }

    /// Counts `status` as the answer to the request being timed, if there is one.
    fn observe(&mut self, status: u16) {
        if std::mem::take(&mut self.timing) {
            self.shared.metrics.observe(self.route, status, self.started.elapsed());
        }
    }

    /// Counts `answer`, and makes it the response (closing after it when the receiver is
    /// stopping).
    fn respond(&mut self, answer: Answer, close: bool) -> Outcome<'_> {
        let status = answer.status().0;
        self.shared.metrics.count_request(status);
        self.observe(status);
        if matches!(answer, Answer::Metrics) {
            self.metrics_text = self.shared.render_metrics();
        }
        let close = close || self.shared.draining.load(Ordering::SeqCst);
        Outcome { reply: answer.reply(&self.metrics_text, &mut self.body), close }
    }

    /// Ends this connection's count in `Shared::in_flight`, if it holds one.
    fn leave(&mut self) {
        if std::mem::take(&mut self.in_flight) {
            self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Service for Connection {
    fn admit(&mut self, head: &Head<'_>) -> Admit<'_> {
        self.refresh_token();
        (self.route, self.admitted) = gate::decide_on(head, &self.gate, self.listener);
        self.started = Instant::now();
        self.timing = true;
        let answer = match self.admitted {
            Verdict::Read { .. } => return Admit::Read,
            Verdict::Reject(reject) => Answer::Reject(reject),
            Verdict::Ingest => {
                // Counted before `draining` is read (both SeqCst): see the module docs.
                self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
                self.in_flight = true;
                if !self.shared.draining.load(Ordering::SeqCst) {
                    return Admit::Read;
                }
                self.leave();
                Answer::Unavailable(STOPPING)
            }
        };
        self.log_rejection(&answer, head);
        Admit::Refuse(self.respond(answer, true))
    }

    fn call(&mut self, head: &Head<'_>, body: &[u8]) -> Outcome<'_> {
        self.shared.metrics.count_body(body.len());
        let answer = match self.admitted {
            Verdict::Read { page: Page::Health, .. } => Answer::Health {
                problem: if self.shared.draining.load(Ordering::Relaxed) {
                    Some("unhealthy: stopping")
                } else {
                    self.shared.ingest.problem()
                },
                stuck: self.shared.stuck_sinks(),
            },
            Verdict::Read { page: Page::Metrics, .. } => Answer::Metrics,
            Verdict::Ingest => {
                let answer = self.ingest(body);
                self.leave();
                answer
            }
            // `admit` refused these; the layer never calls for them.
            Verdict::Reject(reject) => Answer::Reject(reject),
        };
        self.log_rejection(&answer, head);
        self.respond(answer, false)
    }

    fn refused(&mut self, refusal: Refusal) {
        self.refused_with(refusal, Fields::NONE);
    }

    fn connected(&mut self, peer: SocketAddr) {
        self.peer = Some(peer);
    }

    fn refused_with(&mut self, refusal: Refusal, fields: Fields<'_>) {
        self.leave();
        let (status, _) = refusal.status();
        self.shared.metrics.count_request(status);
        // Timed when the refusal is of an admitted request's body.
        self.observe(status);
        let client = Client { peer: self.peer, fields };
        self.shared.reject_log.note(status, refusal.message(), "", &"", &client);
    }
}

/// A token mismatch after the reason it explains (`missing or wrong token: no … header`).
struct Cause<'a>(&'a dyn fmt::Display);

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, ": {}", self.0)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A request whose connection died (or whose coroutine unwound) mid-body is uncounted
        // here, so a graceful stop never waits for a request that is gone.
        self.leave();
    }
}
