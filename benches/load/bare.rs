//! The bare loop: our own HTTP layer (`egnyte_receiver::http`) with a service that does nothing,
//! the counterpart of the may_minihttp ceiling (`ceiling.rs`) on the receiver's side.
//!
//! Every request is admitted from its head, its body is read whole by the layer (as for the
//! receiver: framing checked, a `Content-Length` body of this size handed over where it lies in
//! the connection's input buffer), and the answer is 200 with the ceiling's body and
//! `Content-Type`. No routing, no gate, no parsing, no journal. The layer's settings are the
//! receiver's defaults (head and body limits, read timeout, connection cap, body budget), so
//! this is exactly the loop the receiver runs, with the service taken out. It runs in the
//! benchmark's own process, beside the ceiling and under the same `may` settings (one scheduler
//! for both: see [`configure_may`]); only one of the two is ever loaded at a time.

use std::io;
use std::net::SocketAddr;

use egnyte_receiver::http::{self, Admit, Head, Outcome, Refusal, Reply, Server, Service};
use egnyte_receiver::serve;

use super::ceiling::BODY;

/// The headers the ceiling sends besides those every response carries.
const HEADERS: &[(&str, &str)] = &[("Content-Type", "application/json")];

/// Sets `may`'s process-wide settings as the receiver does (`serve::start`): `io_threads`
/// workers, the receiver's coroutine stack, may's default worker pinning. Must run before
/// anything in this process touches `may` (the first coroutine, or a socket handed to may,
/// starts its scheduler, which reads the worker count once); both in-process servers then share
/// that one scheduler. Returns the settings may reports afterwards, (workers, stack words).
pub(crate) fn configure_may(io_threads: usize) -> (usize, usize) {
    let config = may::config();
    config.set_workers(io_threads.max(1)).set_stack_size(serve::STACK_WORDS);
    (config.get_workers(), config.get_stack_size())
}

/// The receiver's protocol settings at their defaults (as `serve` builds them from its options).
pub(crate) fn receiver_config() -> http::Config {
    http::Config {
        limits: http::Limits {
            max_headers: http::head::DEFAULT_MAX_HEADERS,
            max_head_bytes: http::head::DEFAULT_MAX_HEAD_BYTES,
            max_target_bytes: http::head::MAX_TARGET_BYTES,
            max_body: serve::DEFAULT_MAX_BODY as u64,
        },
        read_timeout: serve::DEFAULT_READ_TIMEOUT,
        max_connections: serve::DEFAULT_MAX_CONNECTIONS,
        body_budget: serve::DEFAULT_MAX_BODY.saturating_mul(serve::BODY_BUDGET_FACTOR),
    }
}

/// One connection's service: admits everything, answers 200.
struct Bare;

impl Service for Bare {
    fn admit(&mut self, _head: &Head<'_>) -> Admit<'_> {
        Admit::Read
    }

    fn call(&mut self, _head: &Head<'_>, body: &[u8]) -> Outcome<'_> {
        // The body is whole here; keep the compiler from treating it as unused.
        std::hint::black_box(body);
        Outcome {
            reply: Reply { status: 200, reason: "OK", headers: HEADERS, body: BODY.as_bytes() },
            close: false,
        }
    }

    fn refused(&mut self, _refusal: Refusal) {}
}

/// Starts the bare loop on a port of loopback the system picks (bound before it returns, so it
/// cannot collide with the ceiling's or the receivers' ports). [`configure_may`] must have run.
/// It serves until the process exits (the server is kept by the caller).
pub(crate) fn start() -> io::Result<Server> {
    let mut server = Server::bind(SocketAddr::from(([127, 0, 0, 1], 0)), receiver_config())?;
    server.start(|| Bare)?;
    Ok(server)
}
