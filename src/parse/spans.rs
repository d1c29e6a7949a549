//! Where each top-level array element starts and ends in the original body.
//!
//! simd-json's first stage already found every structural character (`[ ] { } : ,`, the opening
//! quote of each string, the first byte of each scalar) and leaves their byte offsets in its
//! `Buffers`. Walking that index, not the bytes, finds the element boundaries: a `,` or the
//! closing `]` at depth 1 ends an element. That costs one step per structural (about one per
//! 8 bytes of event JSON) instead of one per byte, and it reads only the untouched body, never
//! the buffer simd-json unescaped in place.
//!
//! Only ever run on a body simd-json accepted: the walk trusts the brackets to balance. On
//! anything else it still stops without panicking (indices are bounds-checked), it just yields
//! meaningless spans.

/// Iterator over the byte ranges of a top-level array's elements, in order.
#[derive(Debug)]
pub(crate) struct ElementSpans<'a> {
    body: &'a [u8],
    structurals: &'a [u32],
    next: usize,
    done: bool,
}

impl<'a> ElementSpans<'a> {
    /// `structurals` must be simd-json's index for `body`, whose first structural is the `[`.
    pub(crate) fn new(body: &'a [u8], structurals: &'a [u32]) -> ElementSpans<'a> {
        ElementSpans { body, structurals, next: 1, done: false }
    }

    fn byte_at(&self, i: usize) -> Option<(usize, u8)> {
        let offset = *self.structurals.get(i)? as usize;
        Some((offset, *self.body.get(offset)?))
    }
}

impl Iterator for ElementSpans<'_> {
    type Item = (u32, u32);

    fn next(&mut self) -> Option<(u32, u32)> {
        if self.done {
            return None;
        }
        let (start, first) = self.byte_at(self.next)?;
        if first == b']' {
            self.done = true;
            return None;
        }
        let mut depth = 1usize;
        let mut i = self.next;
        let end = loop {
            let Some((offset, byte)) = self.byte_at(i) else {
                self.done = true;
                break self.body.len();
            };
            i += 1;
            match byte {
                b'[' | b'{' => depth += 1,
                b']' | b'}' if depth == 1 => {
                    self.done = true;
                    break offset;
                }
                b']' | b'}' => depth -= 1,
                b',' if depth == 1 => break offset,
                _ => {}
            }
        };
        self.next = i;
        Some((start as u32, trim_end(self.body, start, end) as u32))
    }
}

/// The end of `body[start..end]` without trailing JSON whitespace.
pub(crate) fn trim_end(body: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(body[end - 1], b' ' | b'\t' | b'\n' | b'\r') {
        end -= 1;
    }
    end
}

/// The range of `body` without leading and trailing JSON whitespace.
pub(crate) fn trim(body: &[u8]) -> (usize, usize) {
    let start = body.iter().position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r')).unwrap_or(body.len());
    (start, trim_end(body, start, body.len()))
}
