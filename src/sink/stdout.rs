//! The `stdout` sink: each event becomes one line on the process's standard output.
//!
//! It owns nothing but its name: the line is written under std's stdout lock and flushed at
//! once, so a consumer reading the pipe sees each event as soon as it is delivered, and lines
//! from concurrent workers never interleave.
//!
//! Invariant: a line is payload then `\n`, written and flushed while the lock is held. A pipe
//! cannot take bytes back, so if a write fails half-way (the reader went away, `EPIPE`), the
//! reader may have seen part of a line; the retried event then follows as a whole line. That is
//! the only sink where this can happen.
//!
//! It must never be combined with something else writing to stdout (the exec sink's children
//! write theirs to `/dev/null` for that reason); the service logs to stderr.

use std::io::{self, Write};

use super::Failure;

/// Writes events as lines to standard output. See the module docs.
#[derive(Debug)]
pub struct StdoutSink {
    name: String,
}

impl StdoutSink {
    /// A sink on the process's stdout.
    pub fn new(name: String) -> StdoutSink {
        StdoutSink { name }
    }

    /// `stdout`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Writes `payload` and `\n`, and flushes. A payload containing `\n` is refused.
    pub fn deliver(&self, payload: &[u8]) -> Result<(), Failure> {
        super::one_line(payload)?;
        write_line(&mut io::stdout().lock(), payload)
            .map_err(|e| Failure::event(format!("write failed: {e}")))
    }

    /// Nothing to do: each delivery flushed its line.
    ///
    /// It takes no lock and touches no pipe: the dispatcher calls it at every checkpoint, and a
    /// reader that stopped reading must stall only the worker writing to it, never the
    /// dispatcher (nor, through it, every other sink and a stop's deadline).
    pub fn sync(&self) -> io::Result<()> {
        Ok(())
    }
}

/// One event's line, flushed.
fn write_line(out: &mut impl Write, payload: &[u8]) -> io::Result<()> {
    out.write_all(payload)?;
    out.write_all(b"\n")?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records what reached it and whether it was flushed after.
    #[derive(Default)]
    struct Recorder {
        bytes: Vec<u8>,
        unflushed: usize,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.bytes.extend_from_slice(buf);
            self.unflushed += buf.len();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            self.unflushed = 0;
            Ok(())
        }
    }

    #[test]
    fn each_event_is_one_flushed_line() {
        let mut out = Recorder::default();
        write_line(&mut out, br#"{"a":1}"#).unwrap();
        assert_eq!((out.bytes.as_slice(), out.unflushed), (&b"{\"a\":1}\n"[..], 0));
        write_line(&mut out, b"{}").unwrap();
        assert_eq!((out.bytes.as_slice(), out.unflushed), (&b"{\"a\":1}\n{}\n"[..], 0));
    }

    #[test]
    fn delivers_to_the_real_stdout() {
        // The test harness captures stdout only for print!; this checks the call succeeds.
        let sink = StdoutSink::new("stdout".to_string());
        sink.deliver(b"{\"sink\":\"stdout test line\"}").unwrap();
        sink.sync().unwrap();
        assert_eq!(sink.name(), "stdout");
        assert_eq!(sink.deliver(b"{\n}"), Err(Failure::event("payload contains a line break")));
    }
}
