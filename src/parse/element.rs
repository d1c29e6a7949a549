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
//! If a rule changes here, change the `check` fixtures' `.expected` files and the README's
//! sentence on what an event is (under "What a sender sees") with it.

use simd_json::{Node, StaticNode};
use std::fmt;

use crate::event::Field;
use crate::json::node_span;

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
