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
//! The crate never panics on untrusted input and never recurses on input-controlled depth: every
//! walk over JSON is an explicit loop over the tape (see `parse` for the stack argument).

#![deny(unsafe_code)]
#![warn(missing_docs, missing_debug_implementations, rust_2018_idioms)]

pub mod event;
pub mod json;
pub mod parse;

pub use event::{Data, Event, EventType, Family, Timestamp};
pub use json::{Json, JsonKind};
pub use parse::{Batch, Element, InvalidElement, Limits, ParseError, Parser, Reason};
