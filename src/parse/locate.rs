//! Cold path: find where a string-level error is, when simd-json does not say.
//!
//! simd-json reports unterminated strings, raw control characters and bad escapes from stages
//! where it has no byte offset (it says 0). An operator reading "invalid JSON at byte 0" learns
//! nothing, so on those errors only, this slow, obviously right scanner walks the body once and
//! names the first string problem and its offset. It never runs on a body that parsed.

enum Scan {
    Closed(usize),
    Problem(usize, &'static str),
}

fn scan_string(body: &[u8], open: usize) -> Scan {
    let mut i = open + 1;
    while i < body.len() {
        match body[i] {
            b'"' => return Scan::Closed(i),
            0x00..=0x1f => return Scan::Problem(i, "unescaped control character in a string"),
            b'\\' => match body.get(i + 1) {
                Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => i += 2,
                Some(b'u') => match unicode_escape(body, i) {
                    Ok(next) => i = next,
                    Err(problem) => return Scan::Problem(i, problem),
                },
                _ => return Scan::Problem(i, "invalid escape in a string"),
            },
            _ => i += 1,
        }
    }
    Scan::Problem(open, "unterminated string")
}

/// Checks `\uXXXX` at `at` (and its low surrogate when it is a high one); returns the index after.
fn unicode_escape(body: &[u8], at: usize) -> Result<usize, &'static str> {
    let unit = hex4(body, at + 2).ok_or("invalid unicode escape in a string")?;
    match unit {
        0xD800..=0xDBFF => {
            let low = (body.get(at + 6) == Some(&b'\\') && body.get(at + 7) == Some(&b'u'))
                .then(|| hex4(body, at + 8))
                .flatten();
            match low {
                Some(0xDC00..=0xDFFF) => Ok(at + 12),
                _ => Err("unpaired surrogate in a string"),
            }
        }
        0xDC00..=0xDFFF => Err("unpaired surrogate in a string"),
        _ => Ok(at + 6),
    }
}

fn hex4(body: &[u8], at: usize) -> Option<u32> {
    let digits = body.get(at..at + 4)?;
    digits.iter().try_fold(0u32, |acc, &d| Some(acc * 16 + (d as char).to_digit(16)?))
}

/// The first string-level problem in `body`: (byte offset, what is wrong).
pub(crate) fn first_string_problem(body: &[u8]) -> Option<(usize, &'static str)> {
    let mut i = 0;
    while i < body.len() {
        if body[i] == b'"' {
            match scan_string(body, i) {
                Scan::Closed(close) => i = close,
                Scan::Problem(at, what) => return Some((at, what)),
            }
        }
        i += 1;
    }
    None
}
