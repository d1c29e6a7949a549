//! Arbitrary bytes and limits into `http::chunked::ChunkedDecoder`, fed in random pieces.
//!
//! The decoder reads chunked request bodies straight off the socket, in whatever pieces the
//! kernel hands over, before anything else looks at them. This target holds it to:
//!
//! 1. `decode` never panics, for any bytes, limits and split.
//! 2. It agrees with the crate's naive whole-input decoder (`chunked::reference`): the same
//!    data and consumed count when the body is complete, the same data so far when it is not,
//!    the same error variant at the same offset (`ChunkedDecoder::position`) when it is refused.
//! 3. Split independence: a second, different split of the same input (one byte per call for
//!    inputs up to 4 KiB) gives the same outcome.
//! 4. Bookkeeping: `NeedMore` consumes its whole piece; the total consumed never exceeds the
//!    input; `out` only ever grows, by exactly `decoded()`; `decoded()` never exceeds `max_body`;
//!    after `Done` a call consumes nothing and says `Done` again; after an error a call repeats it.
//! 5. Round trip: the data of a complete body, re-encoded as one chunk, decodes to itself.
//!
//! Input layout (stable, so that the corpus and `http_chunked.dict` stay meaningful):
//! * byte 0: `max_body` from a table of 16 (low nibble), `max_extension_bytes` from a table of
//!   16 (high nibble);
//! * byte 1: `max_trailer_bytes` (low nibble) and `max_trailer_fields` (high nibble), likewise;
//! * byte 2: the split seed (piece lengths come from a small generator seeded with it);
//! * the rest: the body bytes, fed to the decoder.

#![no_main]

#[path = "support/pieces.rs"]
mod pieces;

use egnyte_receiver::http::chunked::reference::{decode_reference, Reference};
use egnyte_receiver::http::chunked::{ChunkedDecoder, ChunkedLimits, Progress};
use libfuzzer_sys::fuzz_target;
use pieces::Pieces;

const MAX_BODY: [usize; 16] = [
    0,
    1,
    2,
    5,
    7,
    16,
    100,
    255,
    1000,
    4096,
    65_535,
    1 << 20,
    16 << 20,
    usize::MAX / 2,
    usize::MAX - 1,
    usize::MAX,
];

const MAX_EXTENSION: [usize; 16] =
    [0, 1, 2, 3, 5, 8, 16, 31, 64, 100, 1024, 4096, 16 * 1024, 1 << 20, usize::MAX - 1, usize::MAX];

const MAX_TRAILER_BYTES: [usize; 16] = [
    0,
    1,
    2,
    4,
    6,
    9,
    16,
    32,
    100,
    1024,
    8192,
    32 * 1024,
    1 << 20,
    usize::MAX / 2,
    usize::MAX - 1,
    usize::MAX,
];

const MAX_TRAILER_FIELDS: [usize; 16] =
    [0, 1, 2, 3, 4, 5, 8, 10, 16, 50, 100, 1000, 1 << 20, usize::MAX / 2, usize::MAX - 1, usize::MAX];

/// Largest input fed one byte per call as the second split.
const BYTE_BY_BYTE_MAX: usize = 4096;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let limits = ChunkedLimits {
        max_body: MAX_BODY[usize::from(data[0] & 15)],
        max_extension_bytes: MAX_EXTENSION[usize::from(data[0] >> 4)],
        max_trailer_bytes: MAX_TRAILER_BYTES[usize::from(data[1] & 15)],
        max_trailer_fields: MAX_TRAILER_FIELDS[usize::from(data[1] >> 4)],
    };
    let seed = data[2];
    let input = &data[3..];

    // 2. The oracle.
    let expected = decode_reference(input, limits);
    let first = run(input, limits, &mut Pieces::new(u64::from(seed), 0));
    if first != expected {
        fail(input, limits, &format!("seed {seed}: decoder {first:?}, reference {expected:?}"));
    }

    // 3. A second split.
    let second = if input.len() <= BYTE_BY_BYTE_MAX {
        run(input, limits, &mut std::iter::repeat(1))
    } else {
        run(input, limits, &mut Pieces::new(u64::from(seed) ^ 0xa5a5_a5a5_0000_0001, 0))
    };
    if second != first {
        fail(input, limits, &format!("seed {seed}: first split {first:?}, second split {second:?}"));
    }

    // 5. Round trip of a complete body through one chunk.
    if let Reference::Done { body, .. } = &first {
        let mut encoded = Vec::with_capacity(body.len() + 32);
        if !body.is_empty() {
            encoded.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
            encoded.extend_from_slice(body);
            encoded.extend_from_slice(b"\r\n");
        }
        encoded.extend_from_slice(b"0\r\n\r\n");
        let again = run(&encoded, limits, &mut Pieces::new(u64::from(seed).wrapping_add(1), 0));
        let want = Reference::Done { body: body.clone(), consumed: encoded.len() };
        if again != want {
            fail(input, limits, &format!("round trip through {encoded:?} gave {again:?}"));
        }
    }
});

/// Feeds `input` to a fresh decoder in pieces of the lengths `pieces` gives; the outcome in the
/// reference's terms, after checking the bookkeeping (property 4).
fn run(input: &[u8], limits: ChunkedLimits, pieces: &mut dyn Iterator<Item = usize>) -> Reference {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let len = pieces.next().unwrap_or(usize::MAX).min(input.len() - at);
        let piece = &input[at..at + len];
        let before = out.len();
        let result = decoder.decode(piece, &mut out);
        assert!(out.len() >= before, "out shrank");
        assert_eq!(out.len() as u64, decoder.decoded(), "out grew by other than the data");
        assert!(decoder.decoded() <= limits.max_body as u64, "decoded past max_body");
        match result {
            Ok((consumed, Progress::Done)) => {
                assert!(consumed <= piece.len(), "consumed {consumed} of a {len}-byte piece");
                at += consumed;
                assert_eq!(at as u64, decoder.position());
                assert!(decoder.is_done());
                assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Ok((0, Progress::Done)));
                assert_eq!(out.len() as u64, decoder.decoded());
                return Reference::Done { body: out, consumed: at };
            }
            Ok((consumed, Progress::NeedMore)) => {
                assert_eq!(consumed, piece.len(), "NeedMore left bytes unconsumed");
                at += consumed;
                assert_eq!(at as u64, decoder.position());
                if at == input.len() && len == 0 {
                    return Reference::Incomplete { body: out };
                }
            }
            Err(error) => {
                let offset = decoder.position();
                assert!(offset < (at + len) as u64, "error offset {offset} past the bytes given");
                assert_eq!(decoder.decode(b"\r\n", &mut out), Err(error), "error not repeated");
                return Reference::Invalid { error, offset: offset as usize };
            }
        }
    }
}

fn fail(input: &[u8], limits: ChunkedLimits, message: &str) -> ! {
    panic!("{message}\n  limits: {limits:?}\n  input: {:?}", String::from_utf8_lossy(input));
}
