//! egnyte-receiver: a durable, hardened receiver for Egnyte Connect webhooks.
//!
//! This page is the map of the system. The README is for the people who run the receiver; the
//! binary (`src/main.rs`, `src/cli/`) is a thin layer over this crate: `egnyte-receiver serve` is
//! [`serve::start`] plus signal handling and sd_notify, which live in `src/cli/`.
//!
//! # The path of an event
//!
//! ```text
//! socket ─► http ─► gate ─► parse ─► dedup ─► journal ─► 200 ─► dispatcher ─► workers ─► sinks
//! ```
//!
//! * **socket, http**: [`http::Server`] binds the listener without `SO_REUSEPORT`, caps the
//!   connections, and runs one `may` coroutine per connection, which checks framing, limits and
//!   timeouts and answers every protocol error itself. The service sees whole, well-framed requests.
//! * **gate**: `serve::gate::decide` routes a request from its head alone (path, method, token),
//!   before any body byte is read.
//! * **parse**: [`Parser::parse`] reads the body with simd-json's tape and holds each element to the
//!   envelope rules; an invalid element is reported with its index and reason, its siblings kept.
//! * **dedup**: [`dedup::Dedup`] reserves each (domain, eventId) key in a lock-free ring, and
//!   commits the reservation only once the batch is stored (a failed store forgets nothing).
//! * **journal**: [`ingest`] renders the batch as records, and [`journal::Journal`] appends them:
//!   one writer thread, one write and one `fdatasync` for every batch waiting (group commit). A
//!   request waits for its group without blocking a `may` thread.
//! * **200**: sent only once the ingest stage says the batch is stored (synced, or queued with
//!   `--durability none`); otherwise 503 with `Retry-After`, and the dedup reservation is undone.
//! * **dispatcher, workers**: [`dispatch::Dispatcher`] reads committed records and hands each sink's
//!   share to that sink's own worker threads, in order per (domain, path); every 200 ms it syncs the
//!   sinks and stores the checkpoint and the dedup keys, so a restart resumes where it stopped.
//! * **sinks**: [`sink::Sink`]: a JSON-lines file, a program per event, stdout, or a
//!   [`sink::Handler`] supplied by an embedding program.
//!
//! # Modules
//!
//! * [`event`]: the event model: [`Event`] (a zero-copy view of one envelope), [`EventType`] (the 34
//!   documented names, any other kept as received), typed views of `data`.
//! * [`json`]: [`Json`], a borrowed view of any JSON value on simd-json's tape.
//! * [`parse`]: [`Parser`] and [`Batch`]: body bytes in, validated event views out.
//! * [`http`]: the HTTP/1.1 server layer on `may` coroutines.
//! * [`serve`]: the webhook service: configuration, start and graceful stop, gate, answers, metrics.
//! * [`dedup`]: the lock-free ring of recent event keys, and SipHash-2-4 keys under a per-install
//!   secret.
//! * [`ingest`]: what happens to a parsed batch between the HTTP layer and its answer.
//! * [`journal`]: the durable, append-only journal: format, group commit, recovery, reading.
//! * [`dispatch`]: delivery from the journal to every sink: workers, retries, dead letters,
//!   checkpoints.
//! * [`sink`]: the sinks, and the [`sink::Handler`] trait for embedding.
//! * [`time`]: UTC calendar times without a date crate (RFC 3339, `--since` ages).
//! * [`outbound`]: the one outbound HTTP client (TLS against the system store, proxies, timeouts).
//! * [`egnyte`]: Egnyte's webhook management API (register, status, re-enable) on that client.
//! * [`private_files`]: files 0600 and directories 0700, whatever the umask.
//!
//! # What is public, and for whom
//!
//! For a program that embeds the receiver: the parser and the event model, re-exported at the root
//! ([`Parser`], [`Batch`], [`Element`], [`Event`], [`EventType`], [`Json`], …), and
//! [`serve::ServeConfig`], [`serve::start`], [`serve::Running`], [`sink::Handler`],
//! [`sink::Delivery`], [`sink::Failure`] and [`sink::SinkSpec`]. The other modules are public because the binary, the
//! benchmarks, the fuzz targets and the integration tests use them; the crate is not published, and
//! they change with the receiver. Modules public only for the fuzz targets and benches (`http::head`,
//! `http::chunked`, `http::response`, `serve::gate`, `journal::memory`) and `test_dir` (helpers for the
//! tests and benches) are hidden from these docs.
//!
//! # Parsing a body
//!
//! ```
//! use egnyte_receiver::{Element, EventType, Parser};
//!
//! let mut parser = Parser::default(); // one per connection or worker: its buffers are reused
//! let body = br#"[{"eventId":"e1","domain":"acme","timestamp":1732780800123,"actionSource":"WebUI",
//!     "eventType":"fs:add_file","data":{"targetPath":"/Shared/a.txt","targetGroupId":"g1"}},
//!     {"eventId":"","domain":"acme"}]"#;
//! let batch = parser.parse(body)?; // the body is never modified
//! for element in batch.elements() {
//!     match element {
//!         Element::Valid(event) => {
//!             assert_eq!(event.event_type(), EventType::AddFile); // 34 variants + Other(&str)
//!             assert_eq!(event.primary_path(), Some("/Shared/a.txt")); // targetPath, sourcePath, …
//!             assert!(event.raw().starts_with(br#"{"eventId":"e1""#)); // the bytes as received
//!         }
//!         Element::Invalid(bad) => {
//!             assert_eq!((bad.index(), bad.reason().to_string()), (1, "eventId is empty".into()));
//!         }
//!     }
//! }
//! # Ok::<(), egnyte_receiver::ParseError>(())
//! ```
//!
//! [`Event`] gives `event_id`, `domain`, `timestamp`, `action_source`, `webhook_id`, `event_type`,
//! `data()` (with `primary_path`, `subject_id` and family views: `file()`, `link()`, `metadata()`,
//! `project()`, `permission()`, `workflow()`, `group()`), `extras()` for unknown envelope fields,
//! and `raw()`. Strings are already unescaped and borrow from the parser: nothing is allocated per
//! field. To keep the original bytes despite simd-json's in-place unescaping, the parser copies the
//! body into its own padded buffer (the copy simd-json would otherwise make inside), parses the
//! copy, and finds each element's byte range in the original from the structural index simd-json
//! already built.
//!
//! # Running the receiver inside a program
//!
//! Implement [`sink::Handler`], give it as a [`sink::SinkSpec::Handler`] sink, and [`serve::start`]:
//! it returns once the data directory is recovered and the socket listens. Every event answered 200
//! is handed to the handler on a worker thread. A [`sink::Failure::event`] is retried with backoff,
//! then written to `dead-letter.jsonl`; a [`sink::Failure::medium`] (what the handler writes to is
//! down) is retried until it works. [`serve::Running::shutdown`] stops gracefully: it delivers what
//! is journaled and checkpoints. Delivery is at least once; [`sink::Delivery`] says how to be
//! exactly once.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::sync::{Arc, Mutex};
//! use egnyte_receiver::serve::{self, ServeConfig};
//! use egnyte_receiver::sink::{Delivery, Failure, Handler, SinkSpec};
//! use egnyte_receiver::Event;
//!
//! /// Keeps (journal position, event id) of what it is handed.
//! #[derive(Default)]
//! struct Collect(Mutex<Vec<(u64, String)>>);
//!
//! impl Handler for Collect {
//!     fn handle(&self, event: &Event<'_>, delivery: &Delivery) -> Result<(), Failure> {
//!         // delivery.position: the journal record, increasing; delivery.attempt: 1, 2, …
//!         self.0.lock().unwrap().push((delivery.position, event.event_id().to_owned()));
//!         Ok(()) // Err("reason".into()): retried with backoff, then dead-lettered
//!     }
//! }
//!
//! let data_dir = std::env::temp_dir().join(format!("egnyte-receiver-doc-{}", std::process::id()));
//! let collect = Arc::new(Collect::default());
//! let mut config = ServeConfig::new("127.0.0.1:0".parse()?, data_dir.clone()); // any free port
//! config.sinks = vec![SinkSpec::Handler { name: "collect".into(), handler: collect.clone() }];
//! let running = serve::start(config)?; // recovered and listening
//!
//! // What Egnyte does: POST a batch to /egnyte/webhook.
//! let body = br#"[{"eventId":"e1","domain":"acme","timestamp":1,"actionSource":"WebUI",
//!     "eventType":"fs:add_file","data":{"targetPath":"/Shared/a.txt"}}]"#;
//! let mut http = std::net::TcpStream::connect(running.local_addr())?;
//! let head = format!(
//!     "POST /egnyte/webhook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
//!     body.len()
//! );
//! http.write_all(head.as_bytes())?;
//! http.write_all(body)?;
//! let mut answer = String::new();
//! http.read_to_string(&mut answer)?;
//! assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
//! assert!(answer.ends_with(r#"{"accepted":1,"duplicates":0,"quarantined":0}"#), "{answer}");
//!
//! let stopped = running.shutdown(); // delivers what is journaled, then checkpoints
//! assert_eq!(stopped.undelivered, 0);
//! assert_eq!(*collect.0.lock().unwrap(), [(1, "e1".to_string())]);
//! std::fs::remove_dir_all(&data_dir)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//!
//! ```text
//! src/lib.rs            this map; lints; re-exports
//! src/event/            Event and Timestamp (mod.rs), EventType and Family (event_type.rs),
//!                       the envelope fields (field.rs), typed data views (data.rs)
//! src/json.rs           Json: a borrowed view of one value on simd-json's tape
//! src/parse/            Parser and Batch (mod.rs), envelope rules (element.rs), whole-body errors
//!                       (error.rs), element byte ranges (spans.rs), error offsets (locate.rs)
//! src/http/             Server and settings (mod.rs); exclusive bind, connection cap and accept
//!                       back-off (listener.rs); the connection loop (conn.rs); heads and framing
//!                       (head.rs); chunked bodies (chunked.rs, with a naive reference decoder in
//!                       chunked_reference.rs); responses (response.rs); the layer's only unsafe
//!                       code: spawning, adopting the socket, shutdown(2) (socket.rs)
//! src/serve/            ServeConfig (mod.rs); start and graceful stop (start.rs); the gate
//!                       (gate.rs); one connection's service (service.rs); statuses (response.rs);
//!                       token (auth.rs); metrics (metrics.rs); the data directory's lock (lock.rs);
//!                       damaged state files set aside (damaged.rs); the open-file limit
//!                       (limits.rs); rate-limited reject logging (reject_log.rs); the webhook
//!                       watcher (watch.rs)
//! src/dedup/            Dedup, the request stage that reserves and commits (stage.rs); the ring
//!                       (ring.rs), its per-thread FIFO lanes (lanes.rs) and huge pages and
//!                       prefetching (pages.rs); SipHash-2-4 (siphash.rs; secret in DATA_DIR/dedup.key)
//! src/ingest/           the stage sequence: reserve, render, append, commit (mod.rs); batches
//!                       rendered as records (render.rs); appending and its refusals (journal.rs)
//! src/journal/          format (format.rs); segment files and an in-memory disk with injected
//!                       faults (storage.rs, memory.rs); recovery (recover.rs); settings
//!                       (config.rs); the Journal handle (facade.rs); the append queue, waiting and
//!                       poisoning (append.rs); the writer thread's group commit and rotation
//!                       (writer.rs); waking a group's waiters (wake.rs); reading (cursor.rs);
//!                       stats and checks for the tools (inspect.rs); taking locks (lock.rs)
//! src/dispatch/         the dispatcher loop (run.rs); each sink's window, workers and catch-up
//!                       reader (lane.rs, progress.rs); delivery with retries (worker.rs);
//!                       checkpoint, dedup key file, dead letters, where each sink resumes
//!                       (checkpoint.rs, keys.rs, dead_letter.rs, resume.rs)
//! src/sink/             the Sink enum, Handler and Delivery (mod.rs); jsonl.rs, exec.rs,
//!                       stdout.rs, handler.rs, http.rs
//! src/outbound.rs       the outbound HTTP client (ureq, rustls, the system trust store)
//! src/egnyte/           Egnyte's webhook management API
//! src/time.rs           UTC calendar times
//! src/private_files.rs  files 0600 and directories 0700
//! src/test_dir.rs       temporary directories for tests and benches (removed on drop; hidden)
//! src/main.rs, src/cli/ the binary: serve's options (serve.rs), signals (signals.rs), sd_notify
//!                       (notify.rs), serve --check (preflight.rs), check, journal stats/dump,
//!                       journal verify (verify.rs), replay, the tools' data directory
//!                       (data_dir.rs), webhook, simulate/
//! tests/                integration tests against the real binary (tests/README.md); fixtures/
//! benches/              parse, load, e2e, journal, dedup (benches/README.md)
//! fuzz/                 cargo-fuzz targets and run.sh
//! deploy/               systemd unit, env file, nginx and Caddy proxies, Prometheus rules, a Grafana
//!                       dashboard, logrotate
//! ```
//!
//! # Invariants
//!
//! * Unsafe code is denied crate-wide; the few files that need it (`http/socket.rs`,
//!   `journal/wake.rs`, `dedup/pages.rs`, `serve/limits.rs`, `sink/exec.rs`) allow it for that file
//!   or item only, with a `SAFETY` comment on each unsafe block (a lint checks that).
//! * The crate never panics on untrusted input and never recurses on input-controlled depth: every
//!   walk over JSON is an explicit loop over the tape (see [`parse`] for the stack argument).

#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod dedup;
pub mod dispatch;
pub mod egnyte;
pub mod event;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod json;
pub mod outbound;
pub mod parse;
pub mod private_files;
pub mod serve;
pub mod sink;
pub mod time;

#[doc(hidden)]
pub mod test_dir;

pub use event::{Data, Event, EventType, Family, Timestamp};
pub use json::{Json, JsonKind};
pub use parse::{Batch, Element, InvalidElement, Limits, ParseError, Parser, Reason};
