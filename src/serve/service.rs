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

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::gate::{self, GateConfig, Page, Verdict};
use super::response::Answer;
use super::Shared;
use crate::http::{Admit, Head, Outcome, Refusal, Service};
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
}

impl Connection {
    /// The service for a newly accepted connection.
    pub(super) fn new(shared: Arc<Shared>) -> Connection {
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
            admitted: Verdict::Reject(gate::Reject::NotFound),
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
                Ok(taken) => Answer::Taken(taken),
                Err(refused) => Answer::Unavailable(refused),
            },
        };
        if self.parser.retained_bytes() > RETAINED_BYTES {
            self.parser.shrink();
        }
        answer
    }

    /// Counts and logs `answer`, and makes it the response (closing after it when the
    /// receiver is stopping).
    fn respond(&mut self, answer: Answer, close: bool) -> Outcome<'_> {
        let status = answer.status().0;
        self.shared.metrics.count_request(status);
        if let Some(reason) = answer.rejection() {
            match &answer {
                Answer::BadBody(error) => self.shared.reject_log.note(status, reason, error),
                _ => self.shared.reject_log.note(status, reason, &""),
            }
        }
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
        self.admitted = gate::decide(head, &self.gate);
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
        Admit::Refuse(self.respond(answer, true))
    }

    fn call(&mut self, _head: &Head<'_>, body: &[u8]) -> Outcome<'_> {
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
        self.respond(answer, false)
    }

    fn refused(&mut self, refusal: Refusal) {
        self.leave();
        let (status, _) = refusal.status();
        self.shared.metrics.count_request(status);
        self.shared.reject_log.note(status, refusal.message(), &"");
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // A request whose connection died (or whose coroutine unwound) mid-body is uncounted
        // here, so a graceful stop never waits for a request that is gone.
        self.leave();
    }
}
