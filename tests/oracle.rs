//! The parser against serde_json: on every fixture and on generated random batches, each
//! element's verdict, every extracted field and each element's raw bytes must agree with what
//! serde_json reads from the same bytes (see `support/oracle.rs`).

mod support;

use egnyte_receiver::{Element, ParseError, Parser, Reason};
use serde_json::{json, Map, Value};
use support::fixtures;
use support::oracle::check_batch;

#[test]
fn every_accepted_fixture_agrees_with_serde_json() {
    let mut parser = Parser::default();
    let mut checked = 0;
    for dir in ["types", "batches", "valid", "invalid-elements"] {
        for (path, body) in fixtures::json_files(dir) {
            let batch = parser.parse(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            check_batch(&body, &batch).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            if dir != "invalid-elements" {
                assert_eq!(batch.valid_count(), batch.len(), "{}: every element is valid", path.display());
            }
            checked += 1;
        }
    }
    assert!(checked >= 34 + 4 + 12 + 20, "only {checked} fixtures found");
}

#[test]
fn every_event_type_fixture_has_its_type() {
    let mut parser = Parser::default();
    let files = fixtures::json_files("types");
    assert_eq!(files.len(), 34);
    for (path, body) in files {
        let name = path.file_stem().unwrap().to_str().unwrap().replacen('.', ":", 1);
        let batch = parser.parse(&body).unwrap();
        for event in batch.events() {
            assert_eq!(event.event_type().as_str(), name);
            assert!(
                !matches!(event.event_type(), egnyte_receiver::EventType::Other(_)),
                "{name} is documented"
            );
        }
    }
}

#[test]
fn every_invalid_body_fixture_is_rejected_as_a_whole() {
    let mut parser = Parser::default();
    let mut seen = 0;
    for (path, body) in fixtures::json_files("invalid-body") {
        let error = parser.parse(&body).err().unwrap_or_else(|| panic!("{} parsed", path.display()));
        // Bodies serde_json accepts must be refused for a reason of ours, not as invalid JSON.
        if serde_json::from_slice::<Value>(&body).is_ok() {
            assert!(
                matches!(error, ParseError::TooDeep { .. } | ParseError::NotArrayOrObject { .. }),
                "{}: {error}",
                path.display()
            );
        }
        if let Some(offset) = error.offset() {
            assert!(offset <= body.len(), "{}: {error}", path.display());
        }
        seen += 1;
    }
    assert!(seen >= 16);
}

/// A small deterministic PRNG (xorshift64*): the generated cases are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const STRINGS: &[&str] = &[
    "",
    " ",
    "acme",
    "é",
    "日本語",
    "😀",
    "a\"b",
    "back\\slash",
    "new\nline",
    "tab\t",
    "\u{1}ctl",
    "/Shared/x y/z.txt",
    "\u{2028}",
    "fs:add_file",
];

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 3 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 => json!(rng.next() as i64),
        3 => json!(rng.next()),
        4 => json!((rng.next() as f64) / 7.0 - 1e12),
        5 => Value::String(rng.pick(STRINGS).to_string()),
        6 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => {
            let mut map = Map::new();
            for _ in 0..rng.below(4) {
                map.insert(rng.pick(STRINGS).to_string(), random_value(rng, depth + 1));
            }
            Value::Object(map)
        }
    }
}

/// A fixture event, usually valid, sometimes with one envelope field removed or replaced.
fn random_element(rng: &mut Rng, events: &[Value]) -> Value {
    if rng.chance(5) {
        return random_value(rng, 2);
    }
    let mut event = rng.pick(events).clone();
    let object = event.as_object_mut().unwrap();
    const KEYS: [&str; 7] =
        ["eventId", "domain", "timestamp", "data", "actionSource", "eventType", "webhookId"];
    if rng.chance(30) {
        let key = *rng.pick(&KEYS);
        match rng.below(3) {
            0 => {
                object.remove(key);
            }
            1 => {
                object.insert(key.to_owned(), random_value(rng, 2));
            }
            _ => {
                object.insert(key.to_owned(), Value::String(rng.pick(STRINGS).to_string()));
            }
        }
    }
    if rng.chance(30) {
        object.insert(rng.pick(&["user", "customProperties", "x-new"]).to_string(), random_value(rng, 2));
    }
    if rng.chance(20) {
        let data = object.entry("data").or_insert(json!({}));
        if let Some(data) = data.as_object_mut() {
            data.insert(rng.pick(&["targetPath", "extra", "size"]).to_string(), random_value(rng, 3));
        }
    }
    event
}

#[test]
fn generated_batches_agree_with_serde_json() {
    let events: Vec<Value> = fixtures::json_files("types")
        .into_iter()
        .flat_map(|(_, body)| serde_json::from_slice::<Vec<Value>>(&body).unwrap())
        .collect();
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut parser = Parser::default();
    let (mut valid, mut invalid, mut duplicates) = (0, 0, 0);
    for case in 0..3000 {
        let elements: Vec<Value> =
            (0..1 + rng.below(12)).map(|_| random_element(&mut rng, &events)).collect();
        let mut body = if rng.chance(20) {
            serde_json::to_string_pretty(&elements).unwrap()
        } else {
            serde_json::to_string(&elements).unwrap()
        };
        // Now and then repeat an envelope key inside the first element: serde_json cannot see that.
        let injected = rng.chance(10) && body.starts_with("[{\"");
        if injected {
            body.replace_range(1..2, r#"{"domain":"dup","#);
        }
        let batch = parser.parse(body.as_bytes()).unwrap_or_else(|e| panic!("case {case}: {e}: {body}"));
        check_batch(body.as_bytes(), &batch).unwrap_or_else(|e| panic!("case {case}: {e}: {body}"));
        for element in batch.elements() {
            match element {
                Element::Valid(_) => valid += 1,
                Element::Invalid(i) if matches!(i.reason(), Reason::Duplicate(_)) => duplicates += 1,
                Element::Invalid(_) => invalid += 1,
            }
        }
        if injected && elements[0].get("domain").is_some() {
            let first = batch.elements().next().unwrap();
            assert!(
                matches!(first, Element::Invalid(i) if i.reason() == Reason::Duplicate(egnyte_receiver::parse::Field::Domain)),
                "case {case}"
            );
        }
    }
    // The generator must really exercise all three outcomes.
    assert!(
        valid > 5000 && invalid > 1000 && duplicates > 100,
        "{valid} valid, {invalid} invalid, {duplicates} duplicates"
    );
}

#[test]
fn json_display_reads_back_as_the_same_value() {
    let mut parser = Parser::default();
    for (path, body) in fixtures::json_files("valid") {
        let batch = parser.parse(&body).unwrap();
        for event in batch.events() {
            let shown = event.envelope().to_string();
            let reread: Value =
                serde_json::from_str(&shown).unwrap_or_else(|e| panic!("{}: {e}: {shown}", path.display()));
            let original: Value = serde_json::from_slice(event.raw()).unwrap();
            assert!(support::oracle::same(&reread, &original), "{}: {shown}", path.display());
        }
    }
}
