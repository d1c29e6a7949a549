//! The event model: one Egnyte event envelope as a borrowed, validated view.
//!
//! An [`Event`] is produced only by the parser, after the envelope rules held (non-empty
//! `eventId` and `domain`, numeric `timestamp`, object `data`, string `actionSource` and
//! `eventType`, optional string `webhookId`). Everything in it borrows from the parser's buffers
//! under the `'buf` lifetime; nothing is copied to owned form. The open-ended parts (`data`, the
//! unknown envelope fields) are [`Json`] views, with typed optional accessors in [`Data`].

mod data;
mod event_type;
mod field;

pub use data::{
    Data, FileData, GroupData, LinkData, MetadataData, PermissionData, ProjectData, WorkflowData,
};
pub use event_type::{EventType, Family};
pub use field::Field;

use crate::json::Json;
use simd_json::{Node, StaticNode};
use std::fmt;

/// When the event happened, exactly as Egnyte sent it. Egnyte documents neither the unit (seconds
/// or milliseconds) nor the type (integer or float), so the receiver keeps what it got.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timestamp {
    /// An integer that fits in an `i64`.
    Int(i64),
    /// An integer above `i64::MAX` (up to `u64::MAX`).
    UInt(u64),
    /// A number with a fraction or exponent, or an integer too large for 64 bits.
    Float(f64),
}

impl Timestamp {
    /// The value as an `f64`, whatever form it came in.
    pub fn as_f64(self) -> f64 {
        match self {
            Timestamp::Int(n) => n as f64,
            Timestamp::UInt(n) => n as f64,
            Timestamp::Float(n) => n,
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Timestamp::Int(n) => write!(f, "{n}"),
            Timestamp::UInt(n) => write!(f, "{n}"),
            Timestamp::Float(n) => write!(f, "{n:?}"),
        }
    }
}

/// One valid Egnyte event, borrowed from the parser's buffers.
///
/// A small handle (tape, field positions, raw bytes): making one costs nothing, and each accessor
/// reads its field from the tape when called, at positions the parser already checked.
#[derive(Clone, Copy)]
pub struct Event<'buf> {
    index: usize,
    nodes: &'buf [Node<'buf>],
    /// Tape positions of the envelope fields, indexed like [`Field::ALL`]; 0 means absent.
    fields: &'buf [u32; 7],
    /// Tape position of the envelope object.
    at: usize,
    raw: &'buf [u8],
}

impl<'buf> Event<'buf> {
    /// Only the parser makes events, from an element that passed `element::validate`.
    pub(crate) fn new(
        index: usize,
        nodes: &'buf [Node<'buf>],
        fields: &'buf [u32; 7],
        at: usize,
        raw: &'buf [u8],
    ) -> Event<'buf> {
        Event { index, nodes, fields, at, raw }
    }

    /// The node of a field the parser found (position 0, the tape's root, when absent).
    fn node(&self, field: Field) -> Node<'buf> {
        self.nodes[self.fields[field as usize] as usize]
    }

    /// The string of a field validated as a string ("" for a field validated as absent).
    fn string(&self, field: Field) -> &'buf str {
        match self.node(field) {
            Node::String(s) => s,
            _ => "",
        }
    }

    /// Position of this event in the request's array (0 for a top-level object).
    pub fn index(&self) -> usize {
        self.index
    }

    /// `eventId`: unique within the domain; with `domain`, the deduplication key.
    pub fn event_id(&self) -> &'buf str {
        self.string(Field::EventId)
    }

    /// `domain`: the Egnyte domain the event happened in.
    pub fn domain(&self) -> &'buf str {
        self.string(Field::Domain)
    }

    /// `timestamp`, as received.
    pub fn timestamp(&self) -> Timestamp {
        match self.node(Field::Timestamp) {
            Node::Static(StaticNode::I64(n)) => Timestamp::Int(n),
            Node::Static(StaticNode::U64(n)) => i64::try_from(n).map_or(Timestamp::UInt(n), Timestamp::Int),
            Node::Static(StaticNode::F64(n)) => Timestamp::Float(n),
            // Unreachable: the parser only makes events whose timestamp is a number.
            _ => Timestamp::Float(f64::NAN),
        }
    }

    /// `actionSource`: the API or client that performed the action (an open set).
    pub fn action_source(&self) -> &'buf str {
        self.string(Field::ActionSource)
    }

    /// `webhookId`, when present and not `null`.
    pub fn webhook_id(&self) -> Option<&'buf str> {
        match self.node(Field::WebhookId) {
            Node::String(s) if self.fields[Field::WebhookId as usize] != 0 => Some(s),
            _ => None,
        }
    }

    /// `eventType`, parsed without allocation.
    pub fn event_type(&self) -> EventType<'buf> {
        EventType::parse(self.string(Field::EventType))
    }

    /// `data`, with typed optional accessors; [`Data::json`] gives the raw view.
    pub fn data(&self) -> Data<'buf> {
        Data::new(Json::at(self.nodes, self.fields[Field::Data as usize] as usize), self.event_type())
    }

    /// The envelope fields other than the seven above (`user`, `customProperties`, anything
    /// new), in document order.
    pub fn extras(&self) -> impl Iterator<Item = (&'buf str, Json<'buf>)> + 'buf {
        // The parser's own list of envelope fields decides what is an extra.
        self.envelope().entries().filter(|(key, _)| !Field::ALL.iter().any(|field| field.key() == *key))
    }

    /// The whole envelope object as a view.
    pub fn envelope(&self) -> Json<'buf> {
        Json::at(self.nodes, self.at)
    }

    /// The element's bytes exactly as received (escapes, key order and whitespace inside it
    /// untouched): what the journal stores and the sinks deliver.
    pub fn raw(&self) -> &'buf [u8] {
        self.raw
    }

    /// The target, source or folder path, when the event has one: see [`Data::primary_path`].
    pub fn primary_path(&self) -> Option<&'buf str> {
        self.data().primary_path()
    }

    /// The id of the thing the event is about, when it has one: see [`Data::subject_id`].
    pub fn subject_id(&self) -> Option<&'buf str> {
        self.data().subject_id()
    }
}

impl fmt::Debug for Event<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("index", &self.index)
            .field("event_id", &self.event_id())
            .field("domain", &self.domain())
            .field("timestamp", &self.timestamp())
            .field("action_source", &self.action_source())
            .field("webhook_id", &self.webhook_id())
            .field("event_type", &self.event_type())
            .field("data", &self.data().json())
            .finish_non_exhaustive()
    }
}
