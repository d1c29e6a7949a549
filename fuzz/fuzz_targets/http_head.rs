//! Arbitrary bytes, limits and splits into the head phase of the connection loop.
//!
//! `head_phase` below does what `Conn::run` (`src/http/conn.rs`) does with the bytes of a head
//! as reads bring them: skip leading empty lines, look for the end with `head::find_end` resumed
//! where the last scan stopped, refuse an unfinished head at `max_head_bytes` (431) or when
//! `head::early_error` finds it hopeless, read at most up to `max_head_bytes` + 4096 bytes, and
//! `head::parse` the head once it ends. This target holds that phase to:
//!
//! 1. No panic, for any bytes, limits and split.
//! 2. Memory: while the head is unfinished, the bytes buffered never exceed `max_head_bytes` +
//!    4096 (conn.rs's `MIN_READ`, the most one read may add).
//! 3. Split independence: the verdict (a complete head with its `Parsed` and header list, the
//!    error, or still unfinished with the same bytes buffered) is the same for the input in one
//!    piece, in pieces from the seed byte, and one byte per read (inputs up to 4 KiB; a second
//!    seed above). Where an early refusal is involved, see "What is compared by class only".
//! 4. Agreement with an independent reference (`tests/support/head_reference.rs`, from RFC
//!    9112/9110 and head.rs's documented rules, no httparse): the same refusal with the same
//!    `HeadError`, or the same complete head (leading bytes skipped, length, method, target,
//!    version, framing, keep-alive, expect-continue, header list in order), or unfinished.
//! 5. No early refusal of a head that can still become valid: whenever `early_error` refuses,
//!    the bytes it saw are at most `EARLY_CHECK_BYTES` and the reference finds them doomed.
//! 6. The `Head` view agrees with itself: `has_body()` is "framing is not length 0", and
//!    `values(name)` are exactly the `headers()` of that name in any case.
//!
//! What is compared by class only (refused either way, both close the connection):
//! * An early refusal (`early_error`, on a head not yet finished) against a refusal of the whole
//!   head: `early_error` looks at the first KiB only, so a head whose request line or first
//!   field line is already broken gets its 400 there, where the whole head (in one read) would
//!   have got 431 for its size. Every early refusal is held to property 5 instead.
//!
//! Input layout (stable, so that the corpus and `http_head.dict` stay meaningful):
//! * byte 0: `max_headers` from a table of 16 (low nibble), `max_head_bytes` (high nibble);
//! * byte 1: `max_target_bytes` (low nibble), `max_body` (high nibble);
//! * byte 2: the split seed;
//! * the rest: the bytes the client sends.
//!
//! For the next maintainer: `head_phase` mirrors `Conn::run` up to `head::parse`; when the loop
//! changes how it reads or refuses an unfinished head, change it here the same way.

#![no_main]

#[path = "support/pieces.rs"]
mod pieces;

use std::cell::RefCell;

use egnyte_receiver::http::head::{self, Field, Parsed, Scratch, EARLY_CHECK_BYTES};
use egnyte_receiver::http::{Framing, HeadError, Limits};
use libfuzzer_sys::fuzz_target;
use pieces::Pieces;

#[path = "../../tests/support/head_reference.rs"]
mod head_reference;

use head_reference::{Expected, Request};

/// conn.rs's `MIN_READ`: a read of an unfinished head may fill the buffer up to
/// `max_head_bytes` plus this.
const READ_SLACK: usize = 4096;

/// Largest input also fed one byte per read.
const BYTE_BY_BYTE_MAX: usize = 4096;

/// True while `early_error` may name `Version` or `Malformed` from a request line that has not
/// ended yet (see the module docs).
const MAX_HEADERS: [usize; 16] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 16, 20, 32, 100, 1000, 10_000];

/// At least 2: with 1, a lone CR (perhaps the start of a leading empty line) already fills the
/// limit, which only matters below the CLI's minimum of 1024.
const MAX_HEAD_BYTES: [usize; 16] =
    [2, 3, 8, 16, 19, 27, 32, 48, 64, 100, 256, 1023, 1024, 1025, 4096, 32 * 1024];

const MAX_TARGET_BYTES: [usize; 16] =
    [0, 1, 2, 3, 5, 8, 13, 16, 32, 64, 100, 1024, 8191, 8192, 65_535, usize::MAX];

const MAX_BODY: [u64; 16] = [
    0,
    1,
    2,
    5,
    9,
    10,
    99,
    100,
    1000,
    65_535,
    16 << 20,
    u32::MAX as u64,
    9_999_999_999_999_999_999,
    10_000_000_000_000_000_000,
    u64::MAX - 1,
    u64::MAX,
];

/// What the head phase made of one input under one split.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// `head::parse` accepted the head.
    Complete(Summary),
    /// Refused at the size cap or by `head::parse`.
    Refused(HeadError),
    /// Refused by `head::early_error`, which looked at `pending`.
    Early { error: HeadError, pending: Vec<u8> },
    /// Every byte read, no verdict; `buffered` bytes wait (leading empty lines skipped).
    Unfinished { buffered: usize },
}

/// A complete head, as the loop would hand it on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Summary {
    skipped: usize,
    parsed: Parsed,
    method: Vec<u8>,
    target: Vec<u8>,
    headers: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The parser's scratch and field list live for the whole session, as they live for a whole
/// connection, so that their reuse across heads is fuzzed too.
struct Buffers {
    scratch: Scratch,
    fields: Vec<Field>,
}

thread_local! {
    static BUFFERS: RefCell<Buffers> =
        RefCell::new(Buffers { scratch: Scratch::default(), fields: Vec::new() });
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let limits = Limits {
        max_headers: MAX_HEADERS[usize::from(data[0] & 15)],
        max_head_bytes: MAX_HEAD_BYTES[usize::from(data[0] >> 4)],
        max_target_bytes: MAX_TARGET_BYTES[usize::from(data[1] & 15)],
        max_body: MAX_BODY[usize::from(data[1] >> 4)],
    };
    let seed = data[2];
    let input = &data[3..];
    let expected = head_reference::expected(input, &limits);

    BUFFERS.with(|cell| {
        let buffers = &mut *cell.borrow_mut();
        let whole = head_phase(input, &limits, &mut std::iter::repeat(usize::MAX), buffers);
        let pieces = head_phase(input, &limits, &mut Pieces::new(u64::from(seed), 1), buffers);
        let second = if input.len() <= BYTE_BY_BYTE_MAX {
            head_phase(input, &limits, &mut std::iter::repeat(1), buffers)
        } else {
            head_phase(input, &limits, &mut Pieces::new(u64::from(seed) ^ 0x5a5a_0000_0000_0003, 1), buffers)
        };
        for (name, outcome) in [("one piece", &whole), ("seeded pieces", &pieces), ("second split", &second)]
        {
            // 4 and 5.
            if let Err(message) = agrees(outcome, &expected) {
                fail(
                    input,
                    &limits,
                    seed,
                    &format!("{name}: {message}\n  got: {outcome:?}\n  reference: {expected:?}"),
                );
            }
            // 3.
            if !same_verdict(&whole, outcome) {
                fail(
                    input,
                    &limits,
                    seed,
                    &format!("{name} differs from one piece:\n  {outcome:?}\n  {whole:?}"),
                );
            }
        }
    });
});

/// The head phase of `Conn::run`, reads cut by `pieces` (each at least 1 byte: a read of 0 is
/// the end of the stream); checks properties 2 and 6 on the way.
fn head_phase(
    input: &[u8],
    limits: &Limits,
    pieces: &mut dyn Iterator<Item = usize>,
    buffers: &mut Buffers,
) -> Outcome {
    let mut pending: Vec<u8> = Vec::new();
    let mut skipped = 0;
    let mut read = 0;
    let mut piece_end = 0;
    let mut scanned = 0;
    loop {
        let skip = head::leading_empty_lines(&pending);
        if skip > 0 {
            pending.drain(..skip);
            skipped += skip;
            scanned = 0;
        }
        let Some(end) = head::find_end(&pending, scanned) else {
            if pending.len() >= limits.max_head_bytes {
                return Outcome::Refused(HeadError::TooLarge);
            }
            if let Some(error) = head::early_error(&pending) {
                return Outcome::Early { error, pending };
            }
            scanned = pending.len();
            if read == input.len() {
                return Outcome::Unfinished { buffered: pending.len() };
            }
            // conn.rs: `self.read((limits.max_head_bytes + MIN_READ).saturating_sub(pending.len()))`,
            // and a read gets at least 1 byte of room.
            let limit = (limits.max_head_bytes + READ_SLACK).saturating_sub(pending.len()).max(1);
            if read == piece_end {
                piece_end = read + pieces.next().unwrap_or(usize::MAX).clamp(1, input.len() - read);
            }
            let got = limit.min(piece_end - read);
            pending.extend_from_slice(&input[read..read + got]);
            read += got;
            // 2.
            assert!(
                pending.len() <= limits.max_head_bytes + READ_SLACK,
                "{} bytes buffered for an unfinished head, limit {}",
                pending.len(),
                limits.max_head_bytes
            );
            continue;
        };
        let Buffers { scratch, fields } = buffers;
        return match head::parse(&pending, end, limits, scratch, fields) {
            Ok(parsed) => {
                assert_eq!(parsed.len, end, "Parsed::len is not the end find_end gave");
                let view = parsed.view(&pending, fields);
                // 6.
                assert_eq!(view.has_body(), view.framing() != Framing::Length(0), "has_body");
                let headers: Vec<(Vec<u8>, Vec<u8>)> =
                    view.headers().map(|(n, v)| (n.as_bytes().to_vec(), v.to_vec())).collect();
                for (name, _) in &headers {
                    let name = std::str::from_utf8(name).expect("header names are ASCII");
                    let by_name: Vec<&[u8]> = view.values(name).collect();
                    let by_hand: Vec<&[u8]> = headers
                        .iter()
                        .filter(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
                        .map(|(_, v)| v.as_slice())
                        .collect();
                    assert_eq!(by_name, by_hand, "values({name:?})");
                }
                let summary = Summary {
                    skipped,
                    method: view.method().as_bytes().to_vec(),
                    target: view.target().as_bytes().to_vec(),
                    headers,
                    parsed,
                };
                Outcome::Complete(summary)
            }
            Err(error) => Outcome::Refused(error),
        };
    }
}

/// Properties 4 and 5 for one outcome.
fn agrees(outcome: &Outcome, expected: &Expected) -> Result<(), String> {
    match (outcome, expected) {
        (Outcome::Early { error, pending }, _) => {
            if pending.len() > EARLY_CHECK_BYTES {
                return Err(format!("early refusal after {} bytes", pending.len()));
            }
            if !matches!(error, HeadError::Malformed | HeadError::Version) {
                return Err(format!("early refusal with {error:?}"));
            }
            if !head_reference::doomed(pending) {
                return Err(format!(
                    "early refusal of a head that can still become valid: {:?}",
                    show(pending)
                ));
            }
            match expected {
                Expected::Unfinished { doomed: true } => Ok(()),
                Expected::Refused(HeadError::TooLarge) => Ok(()),
                Expected::Refused(whole) if whole == error => Ok(()),
                _ => Err("early refusal, but the reference reads the whole input otherwise".into()),
            }
        }
        (Outcome::Refused(error), Expected::Refused(want)) if error == want => Ok(()),
        (Outcome::Complete(got), Expected::Complete(want)) => same_request(got, want),
        (Outcome::Unfinished { .. }, Expected::Unfinished { .. }) => Ok(()),
        _ => Err("head.rs and the reference disagree".into()),
    }
}

fn same_request(got: &Summary, want: &Request) -> Result<(), String> {
    let parsed = &got.parsed;
    let fields = [
        ("skipped", got.skipped == want.skipped),
        ("len", parsed.len == want.len),
        ("method", got.method == want.method),
        ("target", got.target == want.target),
        ("version", parsed.version == want.version),
        ("framing", parsed.framing == want.framing),
        ("keep_alive", parsed.keep_alive == want.keep_alive),
        ("expect_continue", parsed.expect_continue == want.expect_continue),
        ("headers", got.headers == want.headers),
    ];
    match fields.iter().find(|(_, same)| !same) {
        Some((name, _)) => Err(format!("complete heads differ in {name}")),
        None => Ok(()),
    }
}

/// Property 3: the same verdict, but for early refusals (compared by class, see the module docs).
fn same_verdict(a: &Outcome, b: &Outcome) -> bool {
    use HeadError::TooLarge;
    match (a, b) {
        (Outcome::Early { error: x, .. }, Outcome::Early { error: y, .. }) => x == y,
        (Outcome::Early { error, .. }, Outcome::Refused(whole))
        | (Outcome::Refused(whole), Outcome::Early { error, .. }) => *whole == TooLarge || whole == error,
        // One split refused a prefix; the other reached a length early_error does not look at.
        (Outcome::Early { .. }, Outcome::Unfinished { buffered })
        | (Outcome::Unfinished { buffered }, Outcome::Early { .. }) => *buffered > EARLY_CHECK_BYTES,
        (a, b) => a == b,
    }
}

fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

fn fail(input: &[u8], limits: &Limits, seed: u8, message: &str) -> ! {
    panic!("http_head: {message}\n  limits: {limits:?}, seed {seed}\n  input: \"{}\"", show(input));
}
