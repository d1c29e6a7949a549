//! Arbitrary bytes into `Parser::parse`.
//!
//! Properties held on every input:
//! * `parse` never panics (with either parser below);
//! * an accepted body agrees with the shared test oracle (`tests/support/oracle.rs`: serde_json's
//!   reading of the same bytes and a naive re-implementation of the envelope rules);
//! * every accessor of an accepted batch runs without panicking, element indices and raw spans are
//!   consistent, and `Json`'s `Display` re-reads (serde_json) to the same value;
//! * a rejected body gives an error whose `to_string()` is non-empty and whose `offset()`, when
//!   there is one, is within the input;
//! * limits only ever turn an accepted body into a rejected one: when the small-limits parser
//!   accepts, the default parser accepts too, with the same elements and the same verdicts; when
//!   the small parser rejects for a reason that does not depend on limits, the default one
//!   rejects as well.
//!
//! Both parsers live for the whole fuzzing session (thread-local), so the reuse of their buffers
//! (work buffer, simd-json scratch, tape, element table) across inputs is fuzzed too.

#![no_main]

use std::cell::RefCell;

use egnyte_receiver::{Batch, Element, Limits, ParseError, Parser, Reason};
use libfuzzer_sys::fuzz_target;

#[path = "../../tests/support/oracle.rs"]
mod oracle;

struct Parsers {
    default: Parser,
    small: Parser,
}

thread_local! {
    static PARSERS: RefCell<Parsers> = RefCell::new(Parsers {
        default: Parser::default(),
        small: Parser::new(Limits::default().max_depth(4).max_events(3)),
    });
}

/// Per element, in order: `None` for a valid event, `Some(reason)` for an invalid element.
type Verdicts = Vec<Option<Reason>>;

fuzz_target!(|data: &[u8]| {
    PARSERS.with(|cell| {
        let mut parsers = cell.borrow_mut();
        let Parsers { default, small } = &mut *parsers;
        let full = run(default, data, "default");
        let limited = run(small, data, "small-limits");
        compare(&full, &limited);
    });
});

/// Parses `data`, holds the result to the oracle and the API invariants, and returns the
/// verdicts (or the error) for the cross-parser comparison.
fn run(parser: &mut Parser, data: &[u8], name: &str) -> Result<Verdicts, ParseError> {
    let limits = parser.limits();
    match parser.parse(data) {
        Ok(batch) => {
            if let Err(message) = oracle::check_batch(data, &batch) {
                panic!("{name} parser ({limits:?}): oracle disagrees: {message}");
            }
            exercise(&batch, data, name);
            Ok(batch
                .elements()
                .map(|element| match element {
                    Element::Valid(_) => None,
                    Element::Invalid(invalid) => Some(invalid.reason()),
                })
                .collect())
        }
        Err(error) => {
            let message = error.to_string();
            assert!(!message.is_empty(), "{name} parser: empty message for {error:?}");
            if let Some(offset) = error.offset() {
                assert!(
                    offset <= data.len(),
                    "{name} parser: error offset {offset} beyond the input ({} bytes): {message}",
                    data.len()
                );
            }
            let _ = format!("{error:?}");
            Err(error)
        }
    }
}

/// Runs every read accessor of an accepted batch and checks the cheap structural invariants.
fn exercise(batch: &Batch<'_>, data: &[u8], name: &str) {
    assert!(std::ptr::eq(batch.body(), data), "{name} parser: batch.body() is not the input");
    let body = data.as_ptr_range();
    let mut valid = 0;
    for (position, element) in batch.elements().enumerate() {
        let (index, raw) = match element {
            Element::Valid(event) => (event.index(), event.raw()),
            Element::Invalid(invalid) => (invalid.index(), invalid.raw()),
        };
        assert_eq!(index, position, "{name} parser: element index out of order");
        let span = raw.as_ptr_range();
        assert!(
            raw.is_empty() || (body.start <= span.start && span.end <= body.end),
            "{name} parser: raw bytes of element {index} are not a slice of the body"
        );
        let event = match element {
            Element::Valid(event) => event,
            Element::Invalid(invalid) => {
                assert!(!invalid.reason().to_string().is_empty());
                continue;
            }
        };
        valid += 1;
        let _ = (event.event_id(), event.domain(), event.action_source(), event.webhook_id());
        let _ = event.timestamp().as_f64();
        let _ = event.timestamp().to_string();
        let event_type = event.event_type();
        let _ = (event_type.as_str(), event_type.family().as_str(), event_type.to_string());
        let data = event.data();
        let _ = (event.primary_path(), event.subject_id(), data.primary_path(), data.subject_id());
        let _ = (data.file(), data.link(), data.metadata(), data.project());
        let _ = (data.permission(), data.workflow(), data.group());
        let workflow = data.workflow();
        let _ = (workflow.id(), workflow.name(), workflow.file_path(), workflow.definition_json());
        let _ = (data.permission().assignee_id(), data.group().members());
        for (key, value) in event.extras() {
            assert!(
                !oracle::ENVELOPE.contains(&key),
                "{name} parser: envelope key {key:?} listed as an extra"
            );
            let _ = (value.kind(), value.len(), value.items().count());
        }
        // `Json`'s Display is compact JSON: it must read back to the same value.
        let envelope = event.envelope();
        let text = envelope.to_string();
        match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(reread) => assert!(
                oracle::same(&reread, &oracle::to_value(envelope)),
                "{name} parser: Json Display of element {} reads back differently: {text}",
                event.index()
            ),
            Err(e) => {
                panic!("{name} parser: Json Display of element {} is not JSON ({e}): {text}", event.index())
            }
        }
        let _ = format!("{event:?}");
    }
    assert_eq!(valid, batch.valid_count(), "{name} parser: valid_count");
    assert_eq!(valid, batch.events().count(), "{name} parser: events()");
    assert_eq!(batch.len() - valid, batch.invalid().count(), "{name} parser: invalid()");
    assert_eq!(batch.is_empty(), batch.len() == 0);
}

/// Limits may only turn acceptance into rejection, never change what is accepted.
fn compare(full: &Result<Verdicts, ParseError>, limited: &Result<Verdicts, ParseError>) {
    match (full, limited) {
        (Ok(full), Ok(limited)) => {
            assert_eq!(full.len(), limited.len(), "both parsers accept, with different element counts");
            assert_eq!(full, limited, "both parsers accept, with different verdicts");
        }
        (Err(error), Ok(limited)) => panic!(
            "the small-limits parser accepts ({} elements) but the default parser rejects: {error}",
            limited.len()
        ),
        // Errors that depend on the input alone must not depend on the limits.
        (
            full,
            Err(
                error @ (ParseError::Empty
                | ParseError::InvalidUtf8 { .. }
                | ParseError::NotArrayOrObject { .. }),
            ),
        ) => {
            assert_eq!(
                full.as_ref().err(),
                Some(error),
                "the small-limits parser rejects with `{error}`, the default parser does not agree"
            );
        }
        (Ok(full), Err(error @ ParseError::InvalidJson { .. })) => panic!(
            "the small-limits parser says `{error}`, the default parser accepts ({} elements)",
            full.len()
        ),
        _ => {}
    }
}
