//! The HTTP ceiling: a bare may_minihttp server that answers 200 to every request without work.
//!
//! It does what any service on may_minihttp must do and nothing more: it reads each request's
//! body fully (so the framing is respected and the body's bytes are copied out of the
//! connection buffer once, as the receiver's are) and answers 200 with the same small JSON body
//! and `Content-Type` the receiver sends for a 10-event batch. No routing, no gate, no parsing,
//! no storage. It runs in the benchmark's own process, under the same `may` settings as the
//! receiver (workers = `--io-threads`, the receiver's coroutine stack size), set once for the
//! process by `bare::configure_may` before this or the bare loop starts.

use std::io::{self, Read};
use std::net::SocketAddr;

use may::coroutine::JoinHandle;
use may_minihttp::{HttpService, HttpServiceFactory, Request, Response};

/// The receiver's answer to a batch of 10 valid new events, byte for byte.
pub(crate) const BODY: &str = r#"{"accepted":10,"duplicates":0,"quarantined":0}"#;

/// Per-connection state: the buffer each body is read into (reused, like the receiver's).
struct Ceiling {
    body: Vec<u8>,
}

impl HttpService for Ceiling {
    fn call(&mut self, req: Request<'_, '_, '_>, rsp: &mut Response<'_>) -> io::Result<()> {
        self.body.clear();
        req.body().read_to_end(&mut self.body)?;
        rsp.status_code(200, "OK");
        rsp.header("Content-Type: application/json");
        rsp.body(BODY);
        Ok(())
    }
}

struct Factory;

impl HttpServiceFactory for Factory {
    type Service = Ceiling;

    fn new_service(&self, _fd: usize) -> Ceiling {
        Ceiling { body: Vec::new() }
    }
}

/// Starts the ceiling server on `addr` (`bare::configure_may` must have run). It runs until the
/// process exits.
pub(crate) fn start(addr: SocketAddr) -> io::Result<JoinHandle<()>> {
    Factory.start(addr)
}
