//! The parser: webhook body bytes in, a [`Batch`] of validated borrowed event views out.
//!
//! # How a body is read
//! 1. The body is copied into the parser's padded work buffer and simd-json builds its tape there
//!    ([`simd_json::fill_tape_padded`], run-time CPU detection, depth bounded by
//!    [`Limits::max_depth`]). The tape builder is iterative: stack use does not grow with nesting.
//! 2. The top-level value must be an array (a batch) or an object (a batch of one).
//! 3. Each element is checked against the envelope rules (see `element.rs`); a bad element becomes
//!    an [`InvalidElement`] with its index and [`Reason`] and never affects its siblings.
//! 4. Each element's original byte range is found (see `spans.rs`: from the position of its first
//!    key, O(1) per element, with checked fallbacks).
//!
//! # Why the tape API (measured)
//! `cargo bench --bench parse` runs the candidates side by side on the committed batches: simd-json's
//! tape alone is about 1.8× serde_json deriving borrowed structs, while simd-json's
//! `to_borrowed_value` is slower than serde_json (0.55-0.9×: it allocates a map per object). The
//! tape is also the only API with constant stack use, which matters on a coroutine stack.
//!
//! # Why the body is copied (the original bytes, measured)
//! The journal and sinks must store each event exactly as received, but simd-json unescapes
//! strings in place, destroying the bytes it parses. Three ways to keep them were measured
//! ("raw bytes" group of the same benchmark; current figures in `benches/README.md`):
//! * **copy the body, parse the copy, slice each element out of the untouched original**
//!   (chosen). `simd_json::fill_tape` copies its input into a padded buffer anyway; copying it
//!   ourselves and calling `fill_tape_padded` moves that copy rather than adding one (measured
//!   2-3% faster than `fill_tape`). Finding the spans costs about 1% of a parse.
//! * re-serialise each event from the tape: the whole parse takes about 3.4× as long, and it
//!   loses the original escapes, number spelling and key order;
//! * copy, then scan the raw bytes for element boundaries: about 2.2× as long.
//!
//! So [`Parser::parse`] takes the body as `&[u8]` and never modifies it.
//!
//! # Buffers
//! A [`Parser`] owns all scratch memory (work buffer, simd-json's buffers, the tape, the element
//! table) and reuses it for every call: keep one per connection or worker. A [`Batch`] borrows the
//! parser and the body; dropping it hands the tape back for the next call. An [`Event`] is a
//! handle into the batch (tape, field positions, raw bytes) whose accessors read the tape on call.
//!
//! For the next maintainer: the tape positions stored per element (`element::Located`), the
//! spans' counting rules and [`Json`] all assume simd-json's tape layout (containers carry their
//! subtree's node count; strings stay where they were in the buffer). When upgrading simd-json,
//! run the oracle tests and the fuzz target before anything else.

mod element;
mod error;
mod locate;
mod spans;
#[cfg(test)]
mod tests;

pub use crate::event::Field;
pub use element::Reason;
pub use error::ParseError;

use simd_json::{Buffers, ErrorType, Node, Tape};
use std::fmt;

use crate::event::Event;
use crate::json::Json;
use element::Located;

/// Default nesting limit: arrays and objects nested deeper are refused with
/// [`ParseError::TooDeep`]. Egnyte's deepest documented payload (a workflow event) nests 4 levels;
/// 64 leaves room for unknown `data` and keeps every later stage's worst case small.
pub const MAX_DEPTH: usize = 64;

/// Default event limit: a top-level array with more elements is refused with
/// [`ParseError::TooManyEvents`]. At the default 16 MiB body limit a real event (≥ 200 bytes)
/// cannot reach it, so it only stops bodies of tiny junk elements from costing a table entry each.
pub const MAX_EVENTS: usize = 100_000;

/// Default and largest body size the parser takes; larger ones get [`ParseError::TooLarge`]. Byte
/// offsets are kept as `u32` and simd-json refuses inputs of 4 GiB and more. The HTTP edge
/// enforces its own, much smaller limit before a body is even read.
pub const MAX_BODY_BYTES: usize = (u32::MAX / 2) as usize;

/// The limits a [`Parser`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    max_depth: usize,
    max_events: usize,
    max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits { max_depth: MAX_DEPTH, max_events: MAX_EVENTS, max_bytes: MAX_BODY_BYTES }
    }
}

impl Limits {
    /// Nesting depth allowed (the top-level array counts as 1, an event in it as 2).
    pub fn max_depth(self, max_depth: usize) -> Limits {
        Limits { max_depth: max_depth.max(1), ..self }
    }

    /// Elements allowed in the top-level array.
    pub fn max_events(self, max_events: usize) -> Limits {
        Limits { max_events, ..self }
    }

    /// Body size allowed, in bytes (capped at [`MAX_BODY_BYTES`]).
    pub fn max_bytes(self, max_bytes: usize) -> Limits {
        Limits { max_bytes: max_bytes.min(MAX_BODY_BYTES), ..self }
    }

    /// The nesting depth allowed.
    pub fn depth(&self) -> usize {
        self.max_depth
    }

    /// The number of elements allowed.
    pub fn events(&self) -> usize {
        self.max_events
    }

    /// The body size allowed.
    pub fn bytes(&self) -> usize {
        self.max_bytes
    }
}

/// One element's verdict, stored without lifetimes so the table is reused across calls.
#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Tape position of the element's node.
    at: u32,
    /// Byte range of the element in the body.
    span: (u32, u32),
    verdict: Result<Located, Reason>,
}

/// A reusable Egnyte batch parser. See the module docs.
pub struct Parser {
    limits: Limits,
    work: Vec<u8>,
    buffers: Buffers,
    /// Empty between calls; lent to the current [`Batch`] and handed back when it drops.
    tape: Tape<'static>,
    slots: Vec<Slot>,
}

impl fmt::Debug for Parser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Parser").field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Default for Parser {
    fn default() -> Parser {
        Parser::new(Limits::default())
    }
}

impl Parser {
    /// A parser enforcing `limits`; buffers grow on first use and are kept.
    pub fn new(limits: Limits) -> Parser {
        Parser {
            limits,
            work: Vec::new(),
            buffers: Buffers::with_max_depth(0, limits.max_depth),
            tape: Tape(Vec::new()),
            slots: Vec::new(),
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes of scratch memory the parser keeps between calls (its own buffers; simd-json's
    /// internal ones are of the same order as the work buffer).
    pub fn retained_bytes(&self) -> usize {
        self.work.capacity()
            + self.tape.0.capacity() * std::mem::size_of::<Node<'static>>()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
    }

    /// Frees all scratch memory, simd-json's included. A parser that just read a rare, huge body
    /// can call this so that an idle connection does not keep megabytes alive.
    pub fn shrink(&mut self) {
        *self = Parser::new(self.limits);
    }

    /// Parses and validates one webhook body. `body` is not modified: events' raw bytes are
    /// slices of it.
    pub fn parse<'a>(&'a mut self, body: &'a [u8]) -> Result<Batch<'a>, ParseError> {
        let Parser { limits, work, buffers, tape: home, slots } = self;
        if body.len() > limits.max_bytes {
            return Err(ParseError::TooLarge { len: body.len(), limit: limits.max_bytes });
        }
        let (start, end) = spans::trim(body);
        if start == end {
            return Err(ParseError::Empty);
        }
        work.clear();
        work.extend_from_slice(body);
        work.resize(body.len() + simd_json::INPUT_PADDING, b' ');
        // Tape strings point into `work`; their offset from here is their offset in `body`.
        let base = work.as_ptr() as usize;

        let mut tape: Tape<'a> = std::mem::replace(home, Tape(Vec::new())).reset();
        if let Err(error) = simd_json::fill_tape_padded(work, body.len(), buffers, &mut tape) {
            *home = tape.reset();
            return Err(body_error(&error, body, limits));
        }
        if let Err(error) = classify(&tape.0, body, base, limits, buffers.structural_indexes(), slots) {
            *home = tape.reset();
            return Err(error);
        }
        Ok(Batch { tape, home, slots, body })
    }
}

/// Turns simd-json's error into ours, finding the byte offset where simd-json has none.
fn body_error(error: &simd_json::Error, body: &[u8], limits: &Limits) -> ParseError {
    match error.error() {
        ErrorType::InvalidUtf8 => {
            let offset = std::str::from_utf8(body).err().map_or(0, |e| e.valid_up_to());
            ParseError::InvalidUtf8 { offset }
        }
        ErrorType::DepthLimitExceeded => {
            ParseError::TooDeep { offset: error.index(), limit: limits.max_depth }
        }
        ErrorType::InputTooLarge => ParseError::TooLarge { len: body.len(), limit: MAX_BODY_BYTES },
        // These come from stages that report no useful offset: find it (cold path).
        ErrorType::Syntax
        | ErrorType::InvalidEscape
        | ErrorType::InvalidUnicodeEscape
        | ErrorType::InvalidUnicodeCodepoint
        | ErrorType::UnterminatedString => match locate::first_string_problem(body) {
            Some((offset, detail)) => ParseError::InvalidJson { offset, detail },
            None => ParseError::InvalidJson { offset: error.index(), detail: error::describe(error.error()) },
        },
        kind => ParseError::InvalidJson { offset: error.index(), detail: error::describe(kind) },
    }
}

/// Checks the top level and every element, filling `slots` in document order.
fn classify(
    nodes: &[Node<'_>],
    body: &[u8],
    base: usize,
    limits: &Limits,
    structurals: &[u32],
    slots: &mut Vec<Slot>,
) -> Result<(), ParseError> {
    slots.clear();
    match nodes.first() {
        Some(&Node::Array { len, .. }) => {
            if len > limits.max_events {
                return Err(ParseError::TooManyEvents { count: len, limit: limits.max_events });
            }
            slots.reserve(len);
            let mut at = 1;
            for _ in 0..len {
                slots.push(Slot { at: at as u32, span: (0, 0), verdict: element::validate(nodes, at) });
                at += crate::json::node_span(&nodes[at]);
            }
            if !spans::by_keys(body, nodes, base, slots) && !spans::by_count(body, nodes, structurals, slots)
            {
                spans::by_walk(body, structurals, slots);
            }
            Ok(())
        }
        Some(Node::Object { .. }) => {
            let (start, end) = spans::trim(body);
            slots.push(Slot {
                at: 0,
                span: (start as u32, end as u32),
                verdict: element::validate(nodes, 0),
            });
            Ok(())
        }
        Some(node) => {
            Err(ParseError::NotArrayOrObject { kind: Json::at(std::slice::from_ref(node), 0).kind() })
        }
        None => Err(ParseError::Empty),
    }
}

/// The result of parsing one body: every element, in order, valid or not.
pub struct Batch<'a> {
    tape: Tape<'a>,
    home: &'a mut Tape<'static>,
    slots: &'a [Slot],
    body: &'a [u8],
}

impl fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.elements()).finish()
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        *self.home = std::mem::replace(&mut self.tape, Tape(Vec::new())).reset();
    }
}

/// One element of a batch: a valid event, or an invalid element to quarantine.
#[derive(Debug, Clone, Copy)]
pub enum Element<'b> {
    /// The element passed the envelope rules.
    Valid(Event<'b>),
    /// The element failed them.
    Invalid(InvalidElement<'b>),
}

/// An element that failed the envelope rules: where it was, why, and its original bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidElement<'b> {
    index: usize,
    reason: Reason,
    raw: &'b [u8],
}

impl<'b> InvalidElement<'b> {
    /// Position in the request's array.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The first rule it broke.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// Its bytes exactly as received.
    pub fn raw(&self) -> &'b [u8] {
        self.raw
    }
}

impl<'a> Batch<'a> {
    /// Number of elements, valid and invalid.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True for an empty array.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Number of valid events.
    pub fn valid_count(&self) -> usize {
        self.slots.iter().filter(|s| s.verdict.is_ok()).count()
    }

    /// The whole body the batch was parsed from.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }

    /// Every element in order.
    pub fn elements(&self) -> impl Iterator<Item = Element<'_>> + '_ {
        self.slots.iter().enumerate().map(move |(index, slot)| self.element(index, slot))
    }

    /// The valid events in order.
    pub fn events(&self) -> impl Iterator<Item = Event<'_>> + '_ {
        self.elements().filter_map(|e| match e {
            Element::Valid(event) => Some(event),
            Element::Invalid(_) => None,
        })
    }

    /// The invalid elements in order.
    pub fn invalid(&self) -> impl Iterator<Item = InvalidElement<'_>> + '_ {
        self.elements().filter_map(|e| match e {
            Element::Invalid(invalid) => Some(invalid),
            Element::Valid(_) => None,
        })
    }

    fn element<'b>(&'b self, index: usize, slot: &'b Slot) -> Element<'b> {
        let raw = &self.body[slot.span.0 as usize..slot.span.1 as usize];
        match &slot.verdict {
            Err(reason) => Element::Invalid(InvalidElement { index, reason: *reason, raw }),
            Ok(fields) => Element::Valid(Event::new(index, &self.tape.0, fields, slot.at as usize, raw)),
        }
    }
}
