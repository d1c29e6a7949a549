//! egnyte-receiver: a durable, hardened receiver for Egnyte Connect webhooks.
//!
//! This crate owns the path from the bytes of a webhook body to validated, borrowed event views:
//!
//! ```text
//! body bytes ──► Parser::parse ──► Batch<'buf> ──► Event<'buf> views (+ invalid elements with reasons)
//! ```
//!
//! * [`EventType`] names the 34 event types Egnyte documents and keeps any other name as received.
//! * [`Event`] is a zero-copy view of one envelope: strings borrow from the parser's buffer, `data`
//!   is a [`Json`] view over simd-json's tape, and [`Event::raw`] gives the element's original bytes.
//! * [`Parser`] owns every reusable buffer (simd-json's scratch, the tape, the element table), so a
//!   long-lived parser allocates nothing per request once warmed up.
//!
//! ```
//! use egnyte_receiver::{Element, EventType, Parser};
//!
//! let mut parser = Parser::default(); // one per connection or worker: its buffers are reused
//! let body = br#"[{"eventId":"e1","domain":"acme","timestamp":1732780800123,"actionSource":"WebUI",
//!     "eventType":"fs:add_file","data":{"targetPath":"/Shared/a.txt","targetGroupId":"g1"}},
//!     {"eventId":"","domain":"acme"}]"#;
//! let batch = parser.parse(body)?; // the body is never modified
//! let mut elements = batch.elements();
//! let Some(Element::Valid(event)) = elements.next() else { panic!() };
//! assert_eq!(event.event_type(), EventType::AddFile);
//! assert_eq!(event.primary_path(), Some("/Shared/a.txt"));
//! assert!(event.raw().starts_with(br#"{"eventId":"e1""#)); // the element's bytes as received
//! let Some(Element::Invalid(bad)) = elements.next() else { panic!() };
//! assert_eq!((bad.index(), bad.reason().to_string()), (1, "eventId is empty".to_string()));
//! # Ok::<(), egnyte_receiver::ParseError>(())
//! ```
//!
//! The crate never panics on untrusted input and never recurses on input-controlled depth: every
//! walk over JSON is an explicit loop over the tape (see `parse` for the stack argument).

#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod dedup;
pub mod dispatch;
pub mod event;
pub mod http;
pub mod ingest;
pub mod journal;
pub mod json;
pub mod parse;
pub mod private_files;
pub mod serve;
pub mod sink;
pub mod time;

#[cfg(test)]
mod test_dir;

pub use event::{Data, Event, EventType, Family, Timestamp};
pub use json::{Json, JsonKind};
pub use parse::{Batch, Element, InvalidElement, Limits, ParseError, Parser, Reason};
