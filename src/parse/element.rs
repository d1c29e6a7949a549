//! The envelope rules for one array element, checked on the tape.
//!
//! An element is valid when it is an object in which `eventId` and `domain` are non-empty
//! strings, `timestamp` is a number, `data` is an object, `actionSource` and `eventType` are
//! strings, and `webhookId` is absent, `null` or a string. Any other key is kept, whatever it is.
//! An envelope key that appears twice makes the element invalid: different JSON readers pick
//! different copies (simd-json the first, serde_json and most others the last), so the dedup key
//! and the event a sink sees could disagree.
//!
//! Only the first failing rule is reported, in this order: duplicate keys (document order), then
//! the fields in [`Field`] order, each as missing, wrong type, empty.
//!
//! If a rule changes here, change the `check` fixtures' `.expected` files and the README's rule
//! list with it.

use simd_json::{Node, StaticNode};
use std::fmt;

use crate::json::node_span;

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
    fn from_key(key: &str) -> Option<Field> {
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
    fn expected(self) -> &'static str {
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

/// Why one array element is not a valid event. It is quarantined; its siblings are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The element is a string, number, boolean, null or array.
    NotAnObject,
    /// An envelope key appears more than once.
    Duplicate(Field),
    /// A required field is absent.
    Missing(Field),
    /// A field has the wrong JSON type (`null` included, except for `webhookId`).
    WrongType(Field),
    /// `eventId` or `domain` is the empty string.
    Empty(Field),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Reason::NotAnObject => f.write_str("element is not an object"),
            Reason::Duplicate(field) => write!(f, "duplicate {field}"),
            Reason::Missing(field) => write!(f, "missing {field}"),
            Reason::WrongType(field) => write!(f, "{field} is not {}", field.expected()),
            Reason::Empty(field) => write!(f, "{field} is empty"),
        }
    }
}

/// Tape positions of the envelope fields' values, indexed like [`Field::ALL`]. Position 0 is
/// the tape's root, never a field value, so it marks "absent" (and, for `webhookId`, `null`).
pub(crate) type Located = [u32; 7];

/// Checks the element whose node is `nodes[at]`; on success, where each field's value is.
pub(crate) fn validate(nodes: &[Node<'_>], at: usize) -> Result<Located, Reason> {
    let Node::Object { count, .. } = nodes[at] else {
        return Err(Reason::NotAnObject);
    };
    // The object's own nodes: keys at the even steps, each followed by its value's subtree.
    let object = &nodes[at..=at + count];
    let mut located: Located = [0; 7];
    let mut duplicate = None;
    let mut key_at = 1;
    while key_at < object.len() {
        let value_at = key_at + 1;
        if let (Node::String(key), Some(value)) = (object[key_at], object.get(value_at)) {
            if let Some(field) = Field::from_key(key) {
                let slot = &mut located[field as usize];
                if *slot == 0 {
                    // The first copy is the one a tape lookup would read; keep it.
                    *slot = (at + value_at) as u32;
                } else {
                    duplicate = duplicate.or(Some(field));
                }
            }
            key_at = value_at + node_span(value);
        } else {
            break;
        }
    }
    if let Some(field) = duplicate {
        return Err(Reason::Duplicate(field));
    }
    for field in Field::ALL {
        check(field, nodes, located[field as usize] as usize)?;
    }
    if matches!(nodes[located[Field::WebhookId as usize] as usize], Node::Static(StaticNode::Null)) {
        located[Field::WebhookId as usize] = 0;
    }
    Ok(located)
}

fn check(field: Field, nodes: &[Node<'_>], at: usize) -> Result<(), Reason> {
    if at == 0 {
        return if field == Field::WebhookId { Ok(()) } else { Err(Reason::Missing(field)) };
    }
    let ok = match (field, nodes[at]) {
        (Field::EventId | Field::Domain, Node::String("")) => return Err(Reason::Empty(field)),
        (Field::Timestamp, Node::Static(s)) => !matches!(s, StaticNode::Null | StaticNode::Bool(_)),
        (Field::Data, Node::Object { .. }) => true,
        (Field::WebhookId, Node::Static(StaticNode::Null)) => true,
        (Field::Timestamp | Field::Data, _) => false,
        (_, Node::String(_)) => true,
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(Reason::WrongType(field))
    }
}
