//! Embedding: a Rust program runs the receiver as a library and is handed each event as an
//! `&Event` view on a worker thread, through the `Handler` trait.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use egnyte_receiver::serve::{self, ServeConfig};
use egnyte_receiver::sink::{Delivery, Failure, Handler, SinkSpec};
use egnyte_receiver::test_dir::{free_port, TempDir};
use egnyte_receiver::{Event, EventType};

/// What the handler saw of one event: id, type, primary path, raw length.
/// Event id, type, path, raw length, and the delivery (position, attempt) it came with.
type Seen = (String, String, Option<String>, usize, (u64, u32));

/// Collects what it is handed; fails the first attempt at every event of type `fs:delete_file`.
#[derive(Default)]
struct Collect {
    seen: Mutex<Vec<Seen>>,
    failures: AtomicUsize,
}

impl Handler for Collect {
    fn handle(&self, event: &Event<'_>, delivery: &Delivery) -> Result<(), Failure> {
        if event.event_type() == EventType::DeleteFile && self.failures.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err("downstream not ready".into());
        }
        let thread = std::thread::current().name().unwrap_or("").to_owned();
        assert!(thread.starts_with("worker-"), "handed on a worker thread, not {thread}");
        self.seen.lock().unwrap().push((
            event.event_id().to_owned(),
            event.event_type().to_string(),
            event.primary_path().map(str::to_owned),
            event.raw().len(),
            (delivery.position, delivery.attempt),
        ));
        Ok(())
    }
}

fn post(addr: SocketAddr, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!(
        "POST /egnyte/webhook HTTP/1.1\r\nHost: t\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

#[test]
fn a_handler_is_handed_every_event_on_worker_threads_and_retried_on_error() {
    let temp = TempDir::new("embed");
    let data_dir = temp.path().join("data");
    let handler = Arc::new(Collect::default());
    let addr = free_port();
    let mut config = ServeConfig::new(addr, data_dir.clone());
    config.sinks = vec![SinkSpec::Handler { name: "collect".into(), handler: handler.clone() }];
    config.io_threads = 1;
    let running = serve::start(config).expect("the receiver starts");
    let first = r#"{"eventId":"e1","domain":"acme","timestamp":1,"actionSource":"WebUI","eventType":"fs:add_file","data":{"targetPath":"/Shared/a.txt"}}"#;
    let second = r#"{"eventId":"e2","domain":"acme","timestamp":2,"actionSource":"WebUI","eventType":"fs:delete_file","data":{"targetPath":"/Shared/b.txt"}}"#;
    let body = format!("[{first},\n {second}]");
    let answer = post(addr, &body);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"accepted":2,"duplicates":0,"quarantined":0}"#), "{answer}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while handler.seen.lock().unwrap().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let stopped = running.shutdown();
    assert_eq!((stopped.requests_cut, stopped.undelivered), (0, 0));
    let mut seen = handler.seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(
        seen,
        [
            // Journal positions in acceptance order; e2's delivery is its second attempt.
            ("e1".into(), "fs:add_file".into(), Some("/Shared/a.txt".into()), first.len(), (1, 1)),
            ("e2".into(), "fs:delete_file".into(), Some("/Shared/b.txt".into()), second.len(), (2, 2)),
        ]
    );
    assert_eq!(handler.failures.load(Ordering::SeqCst), 2, "two attempts at e2: one failure, then the retry");
    let checkpoint = std::fs::read_to_string(data_dir.join("checkpoint")).unwrap();
    assert!(checkpoint.contains("sink 3 handler:collect"), "{checkpoint}");
}
