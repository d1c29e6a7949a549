//! Parser benchmark: our tape parser against the obvious alternatives, on the committed batch
//! fixtures (`tests/fixtures/batches/`). Run with `cargo bench --bench parse [-- FILTER]`;
//! `BENCH_QUICK=1` for a smoke run. The harness (interleaved rounds, medians) is in `support/`.
//!
//! Two groups:
//! * **parse+validate**: body in, every element validated, `eventId`, `domain`, `eventType` and
//!   `timestamp` of each valid event read. Baseline: serde_json deriving a borrowed struct for the
//!   whole array, the shape most favourable to serde_json (one bad element fails the whole body,
//!   where ours quarantines just that element). The project's target is ours ≥ 1.5× it at 10
//!   and 100 events.
//! * **raw bytes**: the ways of keeping each event's original bytes that `src/parse/mod.rs`
//!   weighs, and whether our padded copy replaces simd-json's internal one (its claim).
//!
//! Every contender must report the body's event count (checked before timing), and the byte
//! scanner's spans are checked against ours, so a contender cannot win by skipping work.
//!
//! When the parser's public API changes, only the `ours*` closures here need to follow.

#[allow(dead_code)]
mod support;

use std::borrow::Cow;
use std::fmt::Write as _;
use std::hint::black_box;

use egnyte_receiver::{Element, Parser};
use serde::Deserialize;
use serde_json::value::RawValue;
use simd_json::{BorrowedValue, Buffers, StaticNode, Tape};

use support::{Contender, Settings, Workload};

/// The fixtures, by name; each is a compact JSON array of valid events.
const BATCHES: [&str; 4] = ["batch-1", "batch-10", "batch-100", "batch-1000"];
/// The fixtures of the raw-bytes group (large enough for per-byte costs to dominate).
const RAW_BATCHES: [&str; 2] = ["batch-100", "batch-1000"];

const PARSE_BASELINE: &str = "serde_json derive, borrowed";
/// Not a way to do the job: simd-json's tape alone, the floor under ours (no validation, no
/// spans, no field reads), so the table shows how much of ours is simd-json itself.
const TAPE_FLOOR: &str = "floor: padded copy + fill_tape_padded only";
const RAW_BASELINE: &str = "copy + fill_tape_padded + spans (ours)";

fn main() {
    let settings = Settings::from_env();
    let implementation = simd_json::Deserializer::algorithm().to_string();
    println!("{}", support::machine(&format!("simd-json implementation: {implementation}")));
    println!(
        "rounds: {}, slot: {} ms{}\n",
        settings.rounds,
        settings.slot.as_millis(),
        if settings.quick { " (quick mode)" } else { "" }
    );

    let bodies: Vec<(&str, Vec<u8>)> = BATCHES.iter().map(|&name| (name, load(name))).collect();

    let mut rows = Vec::new();
    for (name, body) in &bodies {
        let workload = format!("parse+validate/{name}");
        if settings.wants(&workload) {
            rows.extend(support::run(&settings, parse_validate(workload, body)));
        }
    }
    if !rows.is_empty() {
        println!("### parse+validate\n\n{}", support::table(PARSE_BASELINE, &rows));
    }

    let mut rows = Vec::new();
    for (name, body) in bodies.iter().filter(|(name, _)| RAW_BATCHES.contains(name)) {
        let workload = format!("raw bytes/{name}");
        if settings.wants(&workload) {
            rows.extend(support::run(&settings, raw_bytes(workload, body)));
        }
    }
    if !rows.is_empty() {
        println!("### raw bytes\n\n{}", support::table(RAW_BASELINE, &rows));
    }
    println!("load average at the end: {}", support::load_average());
}

fn load(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/batches/{name}.json", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// Events in `body`, as our parser counts them (all fixtures' elements are valid).
fn event_count(body: &[u8]) -> usize {
    let mut parser = Parser::default();
    let batch = parser.parse(body).expect("fixture parses");
    assert_eq!(batch.valid_count(), batch.len(), "fixtures hold only valid events");
    batch.len()
}

/// The fields every contender reads from each valid event, folded so none is optimised away.
#[derive(Default)]
struct Touched {
    lengths: usize,
    timestamps: f64,
}

impl Touched {
    fn event(&mut self, event_id: &str, domain: &str, event_type: &str, timestamp: f64) {
        self.lengths += event_id.len() + domain.len() + event_type.len();
        self.timestamps += timestamp;
    }

    fn finish(self) {
        black_box((self.lengths, self.timestamps));
    }
}

// ---------------------------------------------------------------------------------------------
// Group 1: parse + validate

/// serde_json's best shape for an event: every string borrowed when it has no escapes, `data`
/// kept as raw text, unknown envelope fields skipped.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EventRef<'a> {
    #[serde(borrow)]
    event_id: Cow<'a, str>,
    #[serde(borrow)]
    domain: Cow<'a, str>,
    timestamp: serde_json::Number,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow)]
    action_source: Cow<'a, str>,
    #[serde(borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    webhook_id: Option<Cow<'a, str>>,
}

impl EventRef<'_> {
    /// The rules serde's types do not express: `eventId` and `domain` must be non-empty.
    fn is_valid(&self) -> bool {
        !self.event_id.is_empty() && !self.domain.is_empty()
    }

    fn touch(&self, touched: &mut Touched) {
        touched.event(
            &self.event_id,
            &self.domain,
            &self.event_type,
            self.timestamp.as_f64().unwrap_or(f64::NAN),
        );
        touched.lengths += self.data.get().len();
        black_box((&self.action_source, &self.webhook_id));
    }
}

/// Group 1. Each contender parses the body, applies the envelope rules to every element and
/// reads the four fields of every valid event; the floor row does only the tape.
fn parse_validate<'a>(name: String, body: &'a [u8]) -> Workload<'a> {
    let events = event_count(body);

    let mut parser = Parser::default();
    let ours = move || {
        let batch = parser.parse(black_box(body)).expect("fixture parses");
        let mut touched = Touched::default();
        let (mut valid, mut invalid) = (0, 0);
        for element in batch.elements() {
            match element {
                Element::Valid(event) => {
                    valid += 1;
                    touched.event(
                        event.event_id(),
                        event.domain(),
                        event.event_type().as_str(),
                        event.timestamp().as_f64(),
                    );
                    touched.lengths += event.raw().len();
                }
                Element::Invalid(_) => invalid += 1,
            }
        }
        touched.finish();
        black_box(invalid);
        valid
    };

    let serde_whole = move || {
        let batch: Vec<EventRef<'_>> = serde_json::from_slice(black_box(body)).expect("fixture parses");
        let mut touched = Touched::default();
        let (mut valid, mut invalid) = (0, 0);
        for event in &batch {
            if event.is_valid() {
                valid += 1;
                event.touch(&mut touched);
            } else {
                invalid += 1;
            }
        }
        touched.finish();
        black_box(invalid);
        valid
    };

    let serde_per_element = move || {
        let elements: Vec<&RawValue> = serde_json::from_slice(black_box(body)).expect("fixture parses");
        let mut touched = Touched::default();
        let (mut valid, mut invalid) = (0, 0);
        for element in elements {
            match serde_json::from_str::<EventRef<'_>>(element.get()) {
                Ok(event) if event.is_valid() => {
                    valid += 1;
                    event.touch(&mut touched);
                }
                _ => invalid += 1,
            }
        }
        touched.finish();
        black_box(invalid);
        valid
    };

    let mut copy = Vec::new();
    let simd_value = move || {
        copy.clear();
        copy.extend_from_slice(black_box(body));
        let value = simd_json::to_borrowed_value(&mut copy).expect("fixture parses");
        let mut touched = Touched::default();
        let (mut valid, mut invalid) = (0, 0);
        if let BorrowedValue::Array(items) = &value {
            for item in items.iter() {
                if validate_value(item, &mut touched) {
                    valid += 1;
                } else {
                    invalid += 1;
                }
            }
        }
        touched.finish();
        black_box(invalid);
        valid
    };

    Workload {
        name,
        bytes: body.len(),
        events,
        baseline: PARSE_BASELINE,
        contenders: vec![
            Contender::new("ours (Parser::parse)", ours),
            Contender::new(PARSE_BASELINE, serde_whole),
            Contender::new("serde_json derive, per element", serde_per_element),
            Contender::new("simd-json to_borrowed_value", simd_value),
            Contender::new(TAPE_FLOOR, tape_only(body)),
        ],
    }
}

/// The envelope rules (those `src/parse/element.rs` checks, duplicates aside: a map has already
/// merged them) on a simd-json DOM value; reads the fields into `touched` when they hold.
fn validate_value(item: &BorrowedValue<'_>, touched: &mut Touched) -> bool {
    let BorrowedValue::Object(object) = item else {
        return false;
    };
    let string = |key: &str| match object.get(key) {
        Some(BorrowedValue::String(s)) => Some(s.as_ref()),
        _ => None,
    };
    let (Some(event_id), Some(domain)) = (string("eventId"), string("domain")) else {
        return false;
    };
    let timestamp = match object.get("timestamp") {
        Some(BorrowedValue::Static(StaticNode::I64(n))) => *n as f64,
        Some(BorrowedValue::Static(StaticNode::U64(n))) => *n as f64,
        Some(BorrowedValue::Static(StaticNode::F64(n))) => *n,
        _ => return false,
    };
    let data_ok = matches!(object.get("data"), Some(BorrowedValue::Object(_)));
    let webhook_ok = matches!(
        object.get("webhookId"),
        None | Some(BorrowedValue::Static(StaticNode::Null) | BorrowedValue::String(_))
    );
    let (Some(action_source), Some(event_type)) = (string("actionSource"), string("eventType")) else {
        return false;
    };
    if event_id.is_empty() || domain.is_empty() || !data_ok || !webhook_ok {
        return false;
    }
    touched.event(event_id, domain, event_type, timestamp);
    black_box(action_source);
    true
}

// ---------------------------------------------------------------------------------------------
// Group 2: keeping the raw bytes

/// Group 2. The re-serialising contender parses with ours because simd-json without its serde
/// feature has no tape writer: `Json`'s `Display` is the re-serialiser it would use. The byte
/// scan contender pays for `to_tape_with_buffers`' fresh tape, which measured no slower than a
/// reused one on these bodies. The last two rows do no spans and no validation: they show what
/// simd-json's internal copy costs next to ours.
fn raw_bytes<'a>(name: String, body: &'a [u8]) -> Workload<'a> {
    let events = event_count(body);
    check_scanner_against_ours(body);
    let max_depth = egnyte_receiver::parse::MAX_DEPTH;

    let mut parser = Parser::default();
    let ours = move || {
        let batch = parser.parse(black_box(body)).expect("fixture parses");
        let mut raw_bytes = 0;
        let mut count = 0;
        for event in batch.events() {
            raw_bytes += event.raw().len();
            count += 1;
        }
        black_box(raw_bytes);
        count
    };

    let mut parser = Parser::default();
    let mut out = String::new();
    let reserialise = move || {
        let batch = parser.parse(black_box(body)).expect("fixture parses");
        out.clear();
        let mut count = 0;
        for event in batch.events() {
            write!(out, "{}", event.envelope()).expect("writing to a String");
            count += 1;
        }
        black_box(out.as_str());
        count
    };

    let (mut copy, mut spans, mut buffers) = (Vec::new(), Vec::new(), Buffers::default());
    let byte_scan = move || {
        copy.clear();
        copy.extend_from_slice(black_box(body));
        scan_elements(&copy, &mut spans);
        let tape = simd_json::to_tape_with_buffers(&mut copy, &mut buffers).expect("parses");
        let mut raw_bytes = 0;
        for &(start, end) in &spans {
            raw_bytes += body[start..end].len();
        }
        black_box((raw_bytes, tape.0.len()));
        spans.len()
    };

    let mut copy = Vec::new();
    let mut buffers = Buffers::with_max_depth(0, max_depth);
    let mut home: Tape<'static> = Tape(Vec::new());
    let simd_copy = move || {
        copy.clear();
        copy.extend_from_slice(black_box(body));
        let mut tape = std::mem::replace(&mut home, Tape(Vec::new())).reset();
        simd_json::fill_tape(&mut copy, &mut buffers, &mut tape).expect("parses");
        let count = root_len(&tape);
        home = tape.reset();
        count
    };

    Workload {
        name,
        bytes: body.len(),
        events,
        baseline: RAW_BASELINE,
        contenders: vec![
            Contender::new(RAW_BASELINE, ours),
            Contender::new("ours + re-serialise each envelope", reserialise),
            Contender::new("copy + byte scan + to_tape_with_buffers", byte_scan),
            Contender::new("copy + fill_tape (no spans, no validation)", simd_copy),
            Contender::new("padded copy + fill_tape_padded (no spans, no validation)", tape_only(body)),
        ],
    }
}

/// Our padded copy of the body and simd-json's tape over it, nothing else: what `Parser::parse`
/// does before its own work (spans, validation). Returns the root array's length.
fn tape_only(body: &[u8]) -> impl FnMut() -> usize + '_ {
    let mut work = Vec::new();
    let mut buffers = Buffers::with_max_depth(0, egnyte_receiver::parse::MAX_DEPTH);
    let mut home: Tape<'static> = Tape(Vec::new());
    move || {
        let body = black_box(body);
        work.clear();
        work.extend_from_slice(body);
        work.resize(body.len() + simd_json::INPUT_PADDING, b' ');
        let mut tape = std::mem::replace(&mut home, Tape(Vec::new())).reset();
        simd_json::fill_tape_padded(&mut work, body.len(), &mut buffers, &mut tape).expect("parses");
        let count = root_len(&tape);
        home = tape.reset();
        count
    }
}

/// Number of items of the tape's root array.
fn root_len(tape: &Tape<'_>) -> usize {
    match tape.0.first() {
        Some(simd_json::Node::Array { len, .. }) => *len,
        _ => 0,
    }
}

/// The straightforward byte-level way to find a top-level array's elements: one pass, tracking
/// nesting depth and string/escape state; a `,` or the closing `]` at depth 1 ends an element.
/// Spans exclude surrounding whitespace. Assumes valid JSON (it runs before simd-json checks it,
/// so a real receiver would discard the spans when the parse fails).
fn scan_elements(body: &[u8], spans: &mut Vec<(usize, usize)>) {
    spans.clear();
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let (mut start, mut end) = (None, 0);
    for (i, &byte) in body.iter().enumerate() {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
                end = i + 1;
            }
            continue;
        }
        match byte {
            b' ' | b'\t' | b'\n' | b'\r' => {}
            b',' if depth == 1 => spans.extend(start.take().map(|s| (s, end))),
            b'[' | b'{' => {
                if depth == 1 && start.is_none() {
                    start = Some(i);
                }
                depth += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    spans.extend(start.take().map(|s| (s, end)));
                    break;
                }
                end = i + 1;
            }
            _ => {
                if depth == 1 && start.is_none() {
                    start = Some(i);
                }
                in_string = byte == b'"';
                end = i + 1;
            }
        }
    }
}

/// The scanner must find exactly the bytes our parser hands out as `Event::raw`.
fn check_scanner_against_ours(body: &[u8]) {
    let mut spans = Vec::new();
    scan_elements(body, &mut spans);
    let mut parser = Parser::default();
    let batch = parser.parse(body).expect("fixture parses");
    let ours: Vec<&[u8]> = batch.events().map(|e| e.raw()).collect();
    let scanned: Vec<&[u8]> = spans.iter().map(|&(s, e)| &body[s..e]).collect();
    assert!(ours == scanned, "byte scanner and parser disagree on element bytes");
}
