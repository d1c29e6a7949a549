//! The test oracle: what serde_json reads from the same bytes, and the envelope rules written
//! the slow, obvious way on top of it.
//!
//! Shared by `tests/oracle.rs` and the fuzz target (`fuzz/fuzz_targets/parse_batch.rs` includes
//! this file by path), so both hold the parser to one definition of "right".

#![allow(dead_code)]

use egnyte_receiver::{Batch, Element, Event, Json, JsonKind, Reason, Timestamp};
use serde_json::{Map, Value};

/// The envelope keys the parser reads; everything else is an extra.
pub(crate) const ENVELOPE: [&str; 7] =
    ["eventId", "domain", "timestamp", "data", "actionSource", "eventType", "webhookId"];

/// Converts a tape view to a serde_json value; duplicate keys: the last one wins, as in serde_json.
pub(crate) fn to_value(json: Json<'_>) -> Value {
    match json.kind() {
        JsonKind::Null => Value::Null,
        JsonKind::Bool => Value::Bool(json.as_bool().unwrap()),
        JsonKind::String => Value::String(json.as_str().unwrap().to_owned()),
        JsonKind::Number => {
            if let Some(n) = json.as_u64() {
                Value::from(n)
            } else if let Some(n) = json.as_i64() {
                Value::from(n)
            } else {
                Value::from(json.as_f64().unwrap())
            }
        }
        JsonKind::Array => Value::Array(json.items().map(to_value).collect()),
        JsonKind::Object => {
            let mut map = Map::new();
            for (k, v) in json.entries() {
                map.insert(k.to_owned(), to_value(v));
            }
            Value::Object(map)
        }
    }
}

/// JSON equality where numbers compare by value (integers exactly, others as f64, -0 == 0).
pub(crate) fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let int = |n: &serde_json::Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
            match (int(x), int(y)) {
                (Some(i), Some(j)) => i == j,
                _ => x.as_f64() == y.as_f64(),
            }
        }
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

/// The envelope rules, naively, on serde_json's reading (which cannot see duplicate keys).
pub(crate) fn naive_verdict(element: &Value) -> Result<(), String> {
    let Some(object) = element.as_object() else {
        return Err("element is not an object".into());
    };
    for key in ["eventId", "domain", "timestamp", "data", "actionSource", "eventType"] {
        let Some(value) = object.get(key) else {
            return Err(format!("missing {key}"));
        };
        let (ok, expected) = match key {
            "timestamp" => (value.is_number(), "a number"),
            "data" => (value.is_object(), "an object"),
            _ => (value.is_string(), "a string"),
        };
        if !ok {
            return Err(format!("{key} is not {expected}"));
        }
        if (key == "eventId" || key == "domain") && value.as_str() == Some("") {
            return Err(format!("{key} is empty"));
        }
    }
    match object.get("webhookId") {
        None | Some(Value::Null) | Some(Value::String(_)) => Ok(()),
        Some(_) => Err("webhookId is not a string".into()),
    }
}

/// Timestamps compare by value: `-0` is the integer 0 to simd-json and the float -0.0 to
/// serde_json, and both are right.
fn timestamp_matches(ts: Timestamp, value: &Value) -> bool {
    let ours = match ts {
        Timestamp::Int(n) => Value::from(n),
        Timestamp::UInt(n) => Value::from(n),
        Timestamp::Float(f) => Value::from(f),
    };
    same(&ours, value)
}

/// Checks one accepted event field by field against serde_json's reading of the element.
pub(crate) fn check_event(event: &Event<'_>, element: &Value) -> Result<(), String> {
    naive_verdict(element).map_err(|r| format!("parser accepted an element the rules reject: {r}"))?;
    let o = element.as_object().unwrap();
    let field = |k: &str| o.get(k).and_then(Value::as_str);
    let checks = [
        ("eventId", Some(event.event_id()) == field("eventId")),
        ("domain", Some(event.domain()) == field("domain")),
        ("actionSource", Some(event.action_source()) == field("actionSource")),
        ("eventType", Some(event.event_type().as_str()) == field("eventType")),
        ("webhookId", event.webhook_id() == field("webhookId")),
        ("timestamp", timestamp_matches(event.timestamp(), &o["timestamp"])),
        ("data", same(&to_value(event.data().json()), &o["data"])),
    ];
    if let Some((name, _)) = checks.iter().find(|(_, ok)| !ok) {
        return Err(format!("field {name} differs: parser {event:?}, serde_json {element}"));
    }
    let mut extras = Map::new();
    for (k, v) in event.extras() {
        extras.insert(k.to_owned(), to_value(v));
    }
    let mut expected = o.clone();
    expected.retain(|k, _| !ENVELOPE.contains(&k.as_str()));
    if !same(&Value::Object(extras), &Value::Object(expected)) {
        return Err(format!("extra envelope fields differ for {event:?}"));
    }
    Ok(())
}

/// Holds a whole accepted batch against serde_json: same elements, same verdicts, same fields,
/// and each element's raw bytes read back to the same value.
pub(crate) fn check_batch(body: &[u8], batch: &Batch<'_>) -> Result<(), String> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| format!("parser accepted a body serde_json rejects: {e}"))?;
    let elements: Vec<&Value> = match &value {
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![&value],
        other => return Err(format!("parser accepted a top level of {other}")),
    };
    if elements.len() != batch.len() {
        return Err(format!("{} elements, serde_json reads {}", batch.len(), elements.len()));
    }
    for (element, expected) in batch.elements().zip(elements) {
        let (index, raw) = match element {
            Element::Valid(e) => (e.index(), e.raw()),
            Element::Invalid(i) => (i.index(), i.raw()),
        };
        let reread: Value = serde_json::from_slice(raw).map_err(|e| {
            format!("raw bytes of element {index} do not parse: {e}: {:?}", String::from_utf8_lossy(raw))
        })?;
        if !same(&reread, expected) {
            return Err(format!("raw bytes of element {index} read back differently"));
        }
        match element {
            Element::Valid(event) => check_event(&event, expected)?,
            Element::Invalid(invalid) => match invalid.reason() {
                // serde_json keeps only the last of duplicate keys: it cannot judge this one.
                Reason::Duplicate(_) => {}
                reason => {
                    let naive = naive_verdict(expected);
                    if naive != Err(reason.to_string()) {
                        return Err(format!(
                            "element {index}: parser says {reason}, the rules say {naive:?}"
                        ));
                    }
                }
            },
        }
    }
    Ok(())
}
