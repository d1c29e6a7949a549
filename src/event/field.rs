//! The envelope fields every event has: their JSON keys, and the order in which the parser
//! checks them and keeps their tape positions (which [`Event`](super::Event) reads).
//!
//! They belong to the event, not to the parser: an [`Event`](super::Event) finds its fields by
//! them, and the parser's rules name them.

use std::fmt;

/// One envelope field the parser checks, in the order the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `eventId`: a non-empty string.
    EventId,
    /// `domain`: a non-empty string.
    Domain,
    /// `timestamp`: a number.
    Timestamp,
    /// `data`: an object.
    Data,
    /// `actionSource`: a string.
    ActionSource,
    /// `eventType`: a string.
    EventType,
    /// `webhookId`: optional; a string or `null` when present.
    WebhookId,
}

impl Field {
    /// Every field, in check order (the parser keeps field positions in this order too).
    pub const ALL: [Field; 7] = [
        Field::EventId,
        Field::Domain,
        Field::Timestamp,
        Field::Data,
        Field::ActionSource,
        Field::EventType,
        Field::WebhookId,
    ];

    /// The key as it appears in the JSON.
    pub fn key(self) -> &'static str {
        match self {
            Field::EventId => "eventId",
            Field::Domain => "domain",
            Field::Timestamp => "timestamp",
            Field::Data => "data",
            Field::ActionSource => "actionSource",
            Field::EventType => "eventType",
            Field::WebhookId => "webhookId",
        }
    }

    /// The field named `key`, if any. Keys are told apart by length first (one compare for most
    /// extra keys), then confirmed in full: this runs for every key of every envelope.
    pub(crate) fn from_key(key: &str) -> Option<Field> {
        let key = key.as_bytes();
        let (field, matches) = match key.len() {
            4 => (Field::Data, is(key, b"data")),
            6 => (Field::Domain, is(key, b"domain")),
            7 => (Field::EventId, is(key, b"eventId")),
            9 => match key[0] {
                b't' => (Field::Timestamp, is(key, b"timestamp")),
                b'e' => (Field::EventType, is(key, b"eventType")),
                b'w' => (Field::WebhookId, is(key, b"webhookId")),
                _ => return None,
            },
            12 => (Field::ActionSource, is(key, b"actionSource")),
            _ => return None,
        };
        matches.then_some(field)
    }

    /// What the field must be, as the reason text says it (`"a string"`, …).
    pub(crate) fn expected(self) -> &'static str {
        match self {
            Field::Timestamp => "a number",
            Field::Data => "an object",
            _ => "a string",
        }
    }
}

/// `key == name` as a fixed-size compare: a load and a compare inline, no `memcmp` call.
fn is<const N: usize>(key: &[u8], name: &[u8; N]) -> bool {
    <&[u8; N]>::try_from(key).is_ok_and(|key| key == name)
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}
