//! The handler sink: events are handed to a [`Handler`] supplied by a program embedding the
//! receiver.
//!
//! It owns the handler (shared, `Arc`) and its name. The handler runs on the calling worker
//! thread, several workers at once, and decides delivery by its `Result`.
//!
//! Invariant: a panic in the handler never unwinds into the worker: it is caught and becomes
//! `Err("handler panicked: …")`, so the event is retried and eventually dead-lettered like any
//! other failure. (The panic hook still reports the panic on stderr, with its location.) The
//! handler's state after a panic is its own business: it is `Sync` and must keep itself
//! consistent, which is why catching with `AssertUnwindSafe` is acceptable here.
//!
//! It must never hold a lock of the sink's own while calling the handler (there is none), so a
//! slow handler slows only the worker it runs on.

use std::any::Any;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use super::{Delivery, Failure, Handler};
use crate::Event;

/// Hands events to a [`Handler`]. See the module docs.
pub struct HandlerSink {
    name: String,
    handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for HandlerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A `dyn Handler` has no Debug; the name identifies it.
        f.debug_struct("HandlerSink").field("name", &self.name).finish_non_exhaustive()
    }
}

impl HandlerSink {
    /// A sink handing events to `handler`.
    pub fn new(name: String, handler: Arc<dyn Handler>) -> HandlerSink {
        HandlerSink { name, handler }
    }

    /// `handler:NAME`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls the handler; its `Err` is passed through, its panic becomes an `Err`.
    pub fn deliver(&self, event: &Event<'_>, delivery: &Delivery) -> Result<(), Failure> {
        panic::catch_unwind(AssertUnwindSafe(|| self.handler.handle(event, delivery))).unwrap_or_else(
            |panic| Err(Failure::event(format!("handler panicked: {}", panic_message(panic.as_ref())))),
        )
    }
}

/// A panic's message when it is text (`panic!("...")` gives a `&str` or a `String`).
fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(text) = panic.downcast_ref::<&str>() {
        text
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text
    } else {
        "(not a string)"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::testing::{with_event, EVENT};
    use std::sync::Mutex;

    /// Records the event ids it is handed and answers as told.
    struct Scripted {
        seen: Mutex<Vec<String>>,
        answer: fn(&Event<'_>) -> Result<(), Failure>,
    }

    impl Handler for Scripted {
        fn handle(&self, event: &Event<'_>, _: &Delivery) -> Result<(), Failure> {
            self.seen.lock().unwrap().push(event.event_id().to_string());
            (self.answer)(event)
        }
    }

    fn deliver(answer: fn(&Event<'_>) -> Result<(), Failure>) -> (Result<(), Failure>, Vec<String>) {
        let handler = Arc::new(Scripted { seen: Mutex::new(Vec::new()), answer });
        let sink = HandlerSink::new("handler:test".to_string(), Arc::clone(&handler) as Arc<dyn Handler>);
        let result = with_event(EVENT, |event| sink.deliver(event, &Delivery { position: 1, attempt: 1 }));
        let seen = handler.seen.lock().unwrap().clone();
        (result, seen)
    }

    #[test]
    fn ok_is_delivered() {
        assert_eq!(deliver(|_| Ok(())), (Ok(()), vec!["e1".to_string()]));
    }

    #[test]
    fn err_is_passed_through() {
        let (result, seen) = deliver(|event| Err(format!("cannot store {}", event.domain()).into()));
        assert_eq!((result, seen), (Err(Failure::event("cannot store acme")), vec!["e1".to_string()]));
        let (result, _) = deliver(|_| Err(Failure::medium("database down")));
        assert_eq!(result, Err(Failure::medium("database down")), "the medium flag passes through");
    }

    #[test]
    fn panics_are_caught() {
        assert_eq!(deliver(|_| panic!("boom")).0, Err(Failure::event("handler panicked: boom")));
        let id = "e1";
        assert_eq!(
            deliver(|event| panic!("bad {}", event.event_id())).0,
            Err(Failure::event(format!("handler panicked: bad {id}")))
        );
        assert_eq!(
            deliver(|_| std::panic::panic_any(42_u32)).0,
            Err(Failure::event("handler panicked: (not a string)"))
        );
    }

    #[test]
    fn debug_shows_the_name() {
        let sink = HandlerSink::new(
            "handler:x".to_string(),
            Arc::new(Scripted { seen: Mutex::default(), answer: |_| Ok(()) }),
        );
        assert_eq!(format!("{sink:?}"), r#"HandlerSink { name: "handler:x", .. }"#);
    }
}
