//! Crash safety through the real binary: SIGKILL at chosen moments, restarts on the same data
//! directory, and a sender that behaves like Egnyte (keeps each batch until it gets a 200).
//!
//! What must hold after any number of kills:
//! * every event acknowledged with a 200 reaches the jsonl sink exactly once, as whole lines
//!   holding exactly the bytes that were sent, and nothing that was never sent, although each
//!   kill lands with records delivered past the last stored checkpoint (the test reports how
//!   many, see [`Kill`], and requires that some kill found delivery ahead of the checkpoint);
//! * an acknowledged event sent again after a restart is answered as a duplicate (the dedup ring
//!   comes back from the key file and the journal tail);
//! * the same with the sink rotating its file by size many times a second.
//!
//! Every loop is bounded in count and time; every server is a [`Server`] guard, killed by PID.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::json;
use support::server::{post_request, Client, ReadError, Response, Server, PATH};

/// Seed of every random choice (batch shapes, kill moments); `EGNYTE_CRASH_SEED` overrides it to
/// replay or vary a schedule.
const SEED: u64 = 0x00C0_FFEE_2024_0042;
/// Concurrent senders, each with its own keep-alive connection.
const SENDERS: usize = 6;
/// SIGKILLs during the sending phase.
const KILLS: usize = 5;
/// Shortest and longest time a receiver runs before it is killed.
const LIFE_MS: (u64, u64) = (300, 1500);
/// Sending goes on this long after the last restart, so the last life takes traffic too.
const TAIL: Duration = Duration::from_secs(1);
/// Most events in one batch (at least one).
const MAX_BATCH: u64 = 10;
/// Domains events come from; the same event id in two domains would be two events.
const DOMAINS: [&str; 3] = ["acme.egnyte.com", "globex.egnyte.com", "initech.egnyte.com"];
/// Paths per domain: few, so many events share a path (and so an order key).
const PATHS: u64 = 5;
/// Longest wait for a connection to the receiver.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest wait for one answer; a receiver that is alive answers far sooner.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Wait before the first retry of a batch; each further retry waits twice as long.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(5);
/// Longest wait between two attempts (Egnyte waits longer; a test cannot).
const MAX_RETRY_DELAY: Duration = Duration::from_millis(250);
/// A batch not acknowledged within this fails the test: the receiver was unavailable far
/// longer than a restart takes.
const BATCH_DEADLINE: Duration = Duration::from_secs(20);

/// (domain, eventId): what the dedup ring and the sink's exactly-once count are keyed by.
type Key = (String, String);

/// SplitMix64 (Steele, Lea and Flood, 2014): a small deterministic stream from one seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

fn seed() -> u64 {
    std::env::var("EGNYTE_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(SEED)
}

/// One batch as sent: its body and, per event, its key and its exact JSON (what the jsonl sink
/// must write as the line).
#[derive(Debug, Clone)]
struct Batch {
    body: String,
    events: Vec<(Key, String)>,
}

/// Makes batches of fresh events spread over [`DOMAINS`] and [`PATHS`]: ids unique per (test,
/// maker), except that about one event in three repeats the previous id in another domain
/// (another event: the key is the pair).
struct BatchMaker {
    rng: Rng,
    prefix: String,
    next_id: u64,
    /// The previous event's id and domain, when it may be repeated in another domain.
    previous: Option<(String, usize)>,
    /// Bytes of filler in each event's `data` (0: none).
    pad: usize,
}

impl BatchMaker {
    fn new(prefix: &str, seed: u64) -> BatchMaker {
        BatchMaker { rng: Rng(seed), prefix: prefix.to_owned(), next_id: 0, previous: None, pad: 0 }
    }

    /// Events with `bytes` of filler each.
    fn padded(mut self, bytes: usize) -> BatchMaker {
        self.pad = bytes;
        self
    }

    fn next_batch(&mut self) -> Batch {
        let len = self.rng.between(1, MAX_BATCH);
        let events: Vec<(Key, String)> = (0..len).map(|_| self.next_event()).collect();
        let body =
            format!("[{}]", events.iter().map(|(_, json)| json.as_str()).collect::<Vec<_>>().join(","));
        Batch { body, events }
    }

    fn next_event(&mut self) -> (Key, String) {
        let (id, domain) = match self.previous.take() {
            // Not kept as `previous`: a third use could come back to the first domain.
            Some((id, domain)) if self.rng.between(0, 2) == 0 => (id, (domain + 1) % DOMAINS.len()),
            _ => {
                self.next_id += 1;
                let fresh =
                    (format!("{}-{}", self.prefix, self.next_id), self.rng.next() as usize % DOMAINS.len());
                self.previous = Some(fresh.clone());
                fresh
            }
        };
        let domain = DOMAINS[domain];
        let path = format!("/Shared/Projects/p{}/plan.docx", self.rng.between(0, PATHS - 1));
        let mut event = json!({
            "eventId": id,
            "domain": domain,
            "timestamp": 1_732_780_800_000_u64 + self.next_id,
            "actionSource": "WebUI",
            "eventType": "fs:edit_file",
            "webhookId": "5da697d9-f34e-55ce-a68f-3eece8dc4086",
            "data": {"targetPath": path, "targetGroupId": "g1", "isFolder": false},
        });
        if self.pad > 0 {
            event["data"]["comment"] = json!("x".repeat(self.pad));
        }
        ((domain.to_owned(), id), event.to_string())
    }
}

/// What the senders share with the killer: where the receiver listens now, and when to stop.
#[derive(Debug)]
struct Shared {
    addr: Mutex<SocketAddr>,
    stop: AtomicBool,
}

impl Shared {
    fn addr(&self) -> SocketAddr {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn move_to(&self, addr: SocketAddr) {
        *self.addr.lock().unwrap_or_else(|e| e.into_inner()) = addr;
    }
}

/// Why one attempt at a batch failed (the sender retries every one of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Failure {
    Connect,
    Send,
    /// No answer within [`RESPONSE_TIMEOUT`] from a live connection: a hang, reported.
    Timeout,
    /// The connection ended (end of stream, reset) before a full answer: a kill.
    Dropped,
    Malformed,
    Status(u16),
}

/// One keep-alive connection that follows the receiver to its current address.
struct Link {
    shared: Arc<Shared>,
    connection: Option<(SocketAddr, Client)>,
}

impl Link {
    fn new(shared: Arc<Shared>) -> Link {
        Link { shared, connection: None }
    }

    /// One attempt: a 200 is handed back, anything else is a [`Failure`].
    fn post(&mut self, body: &[u8]) -> Result<Response, Failure> {
        let addr = self.shared.addr();
        if self.connection.as_ref().is_none_or(|(at, _)| *at != addr) {
            let mut client = Client::try_connect(addr, CONNECT_TIMEOUT).map_err(|_| Failure::Connect)?;
            client.set_timeout(RESPONSE_TIMEOUT);
            self.connection = Some((addr, client));
        }
        let (_, client) = self.connection.as_mut().expect("connected above");
        let answer = client.send(&post_request(PATH, body, &[])).map_err(|_| Failure::Send).and_then(|()| {
            client.try_read_response().map_err(|e| match e {
                ReadError::Timeout(_) => Failure::Timeout,
                ReadError::Closed(_) | ReadError::Reset(_) | ReadError::Io(_) => Failure::Dropped,
                ReadError::Malformed(_) => Failure::Malformed,
            })
        });
        match answer {
            Ok(response) if response.status == 200 => {
                if response.closes() {
                    self.connection = None;
                }
                Ok(response)
            }
            Ok(response) => {
                self.connection = None;
                Err(Failure::Status(response.status))
            }
            Err(failure) => {
                self.connection = None;
                Err(failure)
            }
        }
    }

    /// Sends `batch` until it is answered 200, like Egnyte (with shorter waits); returns the
    /// answer's (accepted, duplicates). Panics when [`BATCH_DEADLINE`] passes first, or when a
    /// 200 does not account for every event.
    fn deliver(&mut self, batch: &Batch, failures: &mut HashMap<Failure, usize>) -> (u64, u64) {
        let deadline = Instant::now() + BATCH_DEADLINE;
        let mut delay = FIRST_RETRY_DELAY;
        loop {
            match self.post(batch.body.as_bytes()) {
                Ok(response) => return counts(&response, batch),
                Err(failure) => *failures.entry(failure).or_default() += 1,
            }
            assert!(
                Instant::now() < deadline,
                "a batch was not acknowledged within {BATCH_DEADLINE:?} (failures so far: {failures:?}): {}",
                batch.body
            );
            thread::sleep(delay);
            delay = (delay * 2).min(MAX_RETRY_DELAY);
        }
    }
}

/// (accepted, duplicates) of a 200, checked: every event of the batch is one or the other.
fn counts(response: &Response, batch: &Batch) -> (u64, u64) {
    let answer = response.json();
    let field = |name: &str| answer[name].as_u64().unwrap_or_else(|| panic!("no {name} in {answer}"));
    let (accepted, duplicates, quarantined) = (field("accepted"), field("duplicates"), field("quarantined"));
    assert_eq!(quarantined, 0, "nothing sent is invalid: {answer}");
    assert_eq!(accepted + duplicates, batch.events.len() as u64, "a 200 must count every event: {answer}");
    assert_eq!(answer.as_object().map(|o| o.len()), Some(3), "nothing else in the 200 body: {answer}");
    (accepted, duplicates)
}

/// What one sender did.
#[derive(Debug, Default)]
struct SenderReport {
    /// Every batch it sent, each acknowledged (a sender never gives a batch up).
    acked: Vec<Batch>,
    /// When each of them was acknowledged, and its number of events.
    acked_at: Vec<(Instant, u64)>,
    /// Events answered as duplicates on their way in: an earlier attempt was stored, but its
    /// answer was lost to a kill.
    duplicates_on_retry: u64,
    failures: HashMap<Failure, usize>,
}

/// A sender thread: batches from `maker` until `stop`, each kept until acknowledged.
fn spawn_sender(n: usize, shared: Arc<Shared>, mut maker: BatchMaker) -> JoinHandle<SenderReport> {
    thread::Builder::new()
        .name(format!("sender-{n}"))
        .spawn(move || {
            let mut link = Link::new(Arc::clone(&shared));
            let mut report = SenderReport::default();
            while !shared.stop.load(Ordering::Relaxed) {
                let batch = maker.next_batch();
                let (_, duplicates) = link.deliver(&batch, &mut report.failures);
                report.duplicates_on_retry += duplicates;
                report.acked_at.push((Instant::now(), batch.events.len() as u64));
                report.acked.push(batch);
            }
            report
        })
        .expect("spawn a sender")
}

/// What the receiver reported around one kill. Records delivered after the last stored
/// checkpoint lie in `checkpointed..next_record`: the stored checkpoint can only have grown after
/// the scrape, and no record at or past `next_record` existed at the kill. Without the sink's
/// recovery these are what a restart would write again.
#[derive(Debug, Clone, Copy)]
struct Kill {
    /// The jsonl sink's checkpointed position, scraped from `/metrics` just before the kill.
    checkpointed: u64,
    /// The next journal record after recovery, from the restarted receiver's log.
    next_record: u64,
}

impl Kill {
    fn may_redeliver(&self) -> u64 {
        self.next_record.saturating_sub(self.checkpointed)
    }
}

/// The jsonl sink's `sink_checkpoint_position`.
fn checkpointed(server: &Server) -> u64 {
    let metrics = server.metrics();
    let mut positions = metrics.series("egnyte_receiver_sink_checkpoint_position{sink=\"jsonl:");
    let (_, position) = positions.next().expect("the jsonl sink's checkpoint position");
    position as u64
}

/// The number after `before` in the first stderr line containing `before` (waited for).
fn logged_number(server: &Server, before: &str) -> u64 {
    assert!(
        server.stderr_contains(before, Duration::from_secs(5)),
        "no {before:?} in:\n{}",
        server.stderr_text()
    );
    let text = server.stderr_text();
    let at = text.find(before).expect("waited for") + before.len();
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().unwrap_or_else(|_| panic!("no number after {before:?} in:\n{text}"))
}

/// `journal: … next record X, …` of a started receiver.
fn next_record(server: &Server) -> u64 {
    logged_number(server, "next record ")
}

/// (from the key file, from the journal) of `dedup remembers … restored X keys from the key file
/// and Y from the journal`.
fn restored_keys(server: &Server) -> (u64, u64) {
    (logged_number(server, "restored "), logged_number(server, "keys from the key file and "))
}

/// Kills the receiver (SIGKILL) and starts another on its data directory.
fn restart(server: Server) -> Server {
    restart_with(server, &[])
}

fn restart_with(server: Server, args: &[&str]) -> Server {
    Server::builder().args(args).temp_dir(server.kill_keeping_data()).start()
}

/// `events.jsonl` and the files it was rotated to, rotated ones first.
fn sink_files(server: &Server) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(server.data_file(""))
        .expect("the data directory")
        .map(|entry| entry.expect("an entry").file_name().into_string().expect("a UTF-8 name"))
        .filter(|name| name.starts_with("events.jsonl."))
        .collect();
    names.sort();
    names.push("events.jsonl".to_owned());
    names
}

/// Every line of the sink's files once delivery settled, as (key, line); panics on a torn or
/// non-JSON line.
fn delivered(server: &Server) -> Vec<(Key, String)> {
    server.settle();
    let lines: Vec<String> = sink_files(server).iter().flat_map(|name| server.lines(name)).collect();
    lines
        .into_iter()
        .map(|line| {
            let event: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            let text =
                |name: &str| event[name].as_str().unwrap_or_else(|| panic!("no {name}: {line}")).to_owned();
            ((text("domain"), text("eventId")), line)
        })
        .collect()
}

/// How often each key was delivered.
fn tally(lines: &[(Key, String)]) -> HashMap<&Key, u64> {
    let mut copies: HashMap<&Key, u64> = HashMap::new();
    for (key, _) in lines {
        *copies.entry(key).or_default() += 1;
    }
    copies
}

/// Delivered copies beyond the first, and how many events had more than one.
fn redelivered(copies: &HashMap<&Key, u64>) -> (u64, usize) {
    let extra = copies.values().map(|&n| n - 1).sum();
    let events = copies.values().filter(|&&n| n > 1).count();
    (extra, events)
}

/// Every line is an event that was sent, byte for byte; every acknowledged event is there.
fn assert_sink_holds(lines: &[(Key, String)], acked: &[Batch]) {
    let sent: HashMap<&Key, &str> =
        acked.iter().flat_map(|b| &b.events).map(|(key, json)| (key, json.as_str())).collect();
    for (n, (key, line)) in lines.iter().enumerate() {
        match sent.get(key) {
            Some(json) => assert_eq!(line, json, "events.jsonl line {} is not the event as sent", n + 1),
            None => panic!("events.jsonl line {} was never sent: {line}", n + 1),
        }
    }
    let there: HashSet<&Key> = lines.iter().map(|(key, _)| key).collect();
    let missing: Vec<&&Key> = sent.keys().filter(|key| !there.contains(**key)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events never reached events.jsonl: {missing:?}",
        missing.len()
    );
}

/// Sends every batch again (on `threads` connections) and checks each is answered as all
/// duplicates.
fn assert_all_duplicates(server: &Server, batches: &[Batch], threads: usize) {
    let shared = Arc::new(Shared { addr: Mutex::new(server.addr), stop: AtomicBool::new(false) });
    thread::scope(|scope| {
        for part in batches.chunks(batches.len().div_ceil(threads).max(1)) {
            let shared = Arc::clone(&shared);
            scope.spawn(move || {
                let mut link = Link::new(shared);
                let mut failures = HashMap::new();
                for batch in part {
                    let answer = link.deliver(batch, &mut failures);
                    assert_eq!(answer, (0, batch.events.len() as u64), "sent again: {}", batch.body);
                }
                assert!(failures.is_empty(), "a live receiver failed duplicates: {failures:?}");
            });
        }
    });
}

/// Posts each batch once on one connection; each must be fresh.
fn post_all(server: &Server, batches: &[Batch]) {
    let shared = Arc::new(Shared { addr: Mutex::new(server.addr), stop: AtomicBool::new(false) });
    let mut link = Link::new(shared);
    let mut failures = HashMap::new();
    for batch in batches {
        assert_eq!(link.deliver(batch, &mut failures), (batch.events.len() as u64, 0), "{}", batch.body);
    }
    assert!(failures.is_empty(), "a live receiver failed fresh batches: {failures:?}");
}

fn event_count(batches: &[Batch]) -> u64 {
    batches.iter().map(|b| b.events.len() as u64).sum()
}

/// Starts a receiver, runs [`SENDERS`] senders against it, kills and restarts it [`KILLS`] times
/// at seeded moments, lets the last life take traffic for [`TAIL`], and stops the senders.
fn send_through_kills(seed: u64, args: &[&str]) -> (Server, Vec<SenderReport>, Vec<Kill>) {
    let mut server = Server::builder().args(args).start();
    let shared = Arc::new(Shared { addr: Mutex::new(server.addr), stop: AtomicBool::new(false) });
    let senders: Vec<_> = (0..SENDERS)
        .map(|n| {
            let maker = BatchMaker::new(&format!("crash-{seed:x}-s{n}"), seed ^ (n as u64 + 1));
            spawn_sender(n, Arc::clone(&shared), maker)
        })
        .collect();
    let mut rng = Rng(seed);
    let mut kills = Vec::new();
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(rng.between(LIFE_MS.0, LIFE_MS.1)));
        let checkpointed = checkpointed(&server);
        server = restart_with(server, args);
        shared.move_to(server.addr);
        kills.push(Kill { checkpointed, next_record: next_record(&server) });
    }
    thread::sleep(TAIL);
    shared.stop.store(true, Ordering::Relaxed);
    let reports =
        senders.into_iter().map(|s| s.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect();
    (server, reports, kills)
}

#[test]
fn sigkill_under_a_retrying_sender_loses_no_acknowledged_event() {
    sigkill_under_a_retrying_sender(&[]);
}

/// Small enough for many rotations between two checkpoints, so that kills land between a
/// rotation and the checkpoint that follows it.
const ROTATE_BYTES: &str = "65536";

#[test]
fn sigkill_under_a_retrying_sender_with_size_rotation_writes_every_event_once() {
    sigkill_under_a_retrying_sender(&["--jsonl-max-bytes", ROTATE_BYTES]);
}

fn sigkill_under_a_retrying_sender(args: &[&str]) {
    let seed = seed();
    let started = Instant::now();
    let (server, reports, kills) = send_through_kills(seed, args);
    let sending = started.elapsed();

    let acked: Vec<Batch> = reports.iter().flat_map(|r| r.acked.iter().cloned()).collect();
    let lines = delivered(&server);
    assert_sink_holds(&lines, &acked);
    let (extra, twice) = redelivered(&tally(&lines));
    let unchecked: Vec<u64> = kills.iter().map(Kill::may_redeliver).collect();
    let mut failures: HashMap<Failure, usize> = HashMap::new();
    for (failure, n) in reports.iter().flat_map(|r| &r.failures) {
        *failures.entry(*failure).or_default() += n;
    }
    let duplicates_on_retry: u64 = reports.iter().map(|r| r.duplicates_on_retry).sum();
    eprintln!(
        "crash test {args:?} (seed {seed:#x}): {} batches, {} files, {} events acknowledged, {} kills, {twice} events delivered \
         twice ({extra} extra copies); records past the checkpoint at each kill {unchecked:?}; \
         {duplicates_on_retry} events \
         answered as duplicates on a retry; failed attempts {failures:?}; sending took {sending:.1?}",
        acked.len(),
        sink_files(&server).len(),
        event_count(&acked),
        kills.len(),
    );
    assert_eq!(extra, 0, "{twice} events written twice");
    assert!(unchecked.iter().any(|&n| n > 0), "no kill found delivery ahead of the checkpoint: {kills:?}");
    assert!(
        !failures.contains_key(&Failure::Timeout),
        "a live receiver left a request unanswered for {RESPONSE_TIMEOUT:?}: {failures:?}"
    );

    assert_all_duplicates(&server, &acked, SENDERS);
    assert_eq!(delivered(&server).len(), lines.len(), "duplicates sent again must not be stored");
}

#[test]
fn a_kill_after_a_checkpoint_redelivers_nothing_and_the_keys_come_back() {
    let mut maker = BatchMaker::new(&format!("between-{}", std::process::id()), seed() ^ 0xB);
    let before: Vec<Batch> = (0..10).map(|_| maker.next_batch()).collect();
    let after: Vec<Batch> = (0..10).map(|_| maker.next_batch()).collect();
    let server = Server::builder().start();
    post_all(&server, &before);
    assert_eq!(delivered(&server).len() as u64, event_count(&before), "settled: the checkpoint covers all");

    let server = restart(server);
    assert_eq!(restored_keys(&server), (event_count(&before), 0), "every key is in the key file");
    assert!(
        server.stderr_text().contains(&format!(
            "restored {} keys from the key file and 0 from the journal",
            event_count(&before)
        )),
        "{}",
        server.stderr_text()
    );
    assert_eq!(next_record(&server), event_count(&before) + 1, "one journal record per event");
    let lines = delivered(&server);
    assert_eq!(lines.len() as u64, event_count(&before), "nothing delivered again after the restart");
    post_all(&server, &after);

    let lines = delivered(&server);
    let all: Vec<Batch> = before.iter().chain(&after).cloned().collect();
    assert_sink_holds(&lines, &all);
    assert_eq!(lines.len() as u64, event_count(&all), "each event exactly once");
    assert!(tally(&lines).values().all(|&n| n == 1));
    assert_all_duplicates(&server, &all, 2);
}

/// The jsonl sink's position in `DATA_DIR/checkpoint` (`sink POSITION jsonl:PATH`).
fn stored_position(server: &Server) -> u64 {
    checkpoint_text_position(&std::fs::read_to_string(server.data_file("checkpoint")).expect("a checkpoint"))
}

/// Rounds of (post, kill at once) tried until one kill finds delivery behind the journal.
const BEHIND_ROUNDS: usize = 5;

#[test]
fn a_kill_right_after_acknowledging_redelivers_the_journal_tail() {
    let mut maker = BatchMaker::new(&format!("behind-{}", std::process::id()), seed() ^ 0xC);
    let mut server = Server::builder().start();
    let mut acked = Vec::new();
    let mut behind = None;
    for _ in 0..BEHIND_ROUNDS {
        let batches: Vec<Batch> = (0..30).map(|_| maker.next_batch()).collect();
        post_all(&server, &batches);
        acked.extend(batches);
        let temp = server.kill_keeping_data();
        // The checkpoint as the kill left it (the restart stores a new one).
        let text = std::fs::read_to_string(temp.path().join("data/checkpoint")).unwrap_or_default();
        server = Server::builder().temp_dir(temp).start();
        let checkpointed = checkpoint_text_position(&text);
        let kill = Kill { checkpointed, next_record: next_record(&server) };
        assert_eq!(kill.next_record, event_count(&acked) + 1, "every acknowledged event is journaled");
        let (from_file, from_journal) = restored_keys(&server);
        assert_eq!(from_file + from_journal, event_count(&acked), "every key comes back");
        if kill.may_redeliver() > 0 {
            behind = Some(kill);
            break;
        }
    }
    let kill =
        behind.unwrap_or_else(|| panic!("delivery was never behind at a kill in {BEHIND_ROUNDS} rounds"));

    let lines = delivered(&server);
    assert_sink_holds(&lines, &acked);
    let (extra, twice) = redelivered(&tally(&lines));
    eprintln!(
        "kill after acknowledging: {} events acknowledged, {} records past the checkpoint at the kill, \
         {twice} events delivered twice ({extra} extra copies)",
        event_count(&acked),
        kill.may_redeliver()
    );
    assert_eq!(extra, 0, "{twice} events written twice; {kill:?}");
    assert!(stored_position(&server) > kill.checkpointed);
    assert_all_duplicates(&server, &acked, 2);
}

/// The jsonl sink's position in a checkpoint file's text; 0 when there is none yet.
fn checkpoint_text_position(text: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with("sink ") && l.contains(" jsonl:"))
        .and_then(|line| line.split(' ').nth(1)?.parse().ok())
        .unwrap_or(0)
}

/// Filler per event in the torn-write test: each line is written by a `write` of its own (it is
/// larger than the sink's buffer) long enough for a kill to land inside it.
const LARGE_EVENT_PAD: usize = 1 << 20;
/// Kills in the torn-write test (it stops at the first that leaves a torn tail).
const TORN_ROUNDS: usize = 6;

/// True when the file ends in the middle of a line.
fn ends_torn(path: &std::path::Path) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.last().is_some_and(|&b| b != b'\n'))
}

#[test]
fn a_kill_during_a_large_write_leaves_no_torn_line() {
    let seed = seed() ^ 0xD;
    let mut server = Server::builder().start();
    let shared = Arc::new(Shared { addr: Mutex::new(server.addr), stop: AtomicBool::new(false) });
    let senders: Vec<_> = (0..3)
        .map(|n| {
            let maker = BatchMaker::new(&format!("large-{seed:x}-s{n}"), seed ^ (n as u64 + 1));
            spawn_sender(n, Arc::clone(&shared), maker.padded(LARGE_EVENT_PAD))
        })
        .collect();
    let mut rng = Rng(seed);
    let mut torn = 0;
    let mut kills = 0;
    while kills < TORN_ROUNDS && torn == 0 {
        thread::sleep(Duration::from_millis(rng.between(150, 400)));
        let temp = server.kill_keeping_data();
        kills += 1;
        // A kill inside a `write` can leave part of a line (the kernel stops at a page boundary).
        torn += usize::from(ends_torn(&temp.path().join("data/events.jsonl")));
        server = Server::builder().temp_dir(temp).start();
        shared.move_to(server.addr);
    }
    shared.stop.store(true, Ordering::Relaxed);
    let reports: Vec<SenderReport> =
        senders.into_iter().map(|s| s.join().unwrap_or_else(|e| std::panic::resume_unwind(e))).collect();
    let acked: Vec<Batch> = reports.into_iter().flat_map(|r| r.acked).collect();
    // Every line parses (a torn part left in the file would not) and holds an event as sent.
    let lines = delivered(&server);
    assert_sink_holds(&lines, &acked);
    eprintln!(
        "large writes: {} events of {} KiB acknowledged, {kills} kills, {torn} left a torn tail",
        event_count(&acked),
        LARGE_EVENT_PAD >> 10
    );
    if torn > 0 {
        assert!(server.stderr_text().contains("ends in the middle of a line"), "{}", server.stderr_text());
    }
}
