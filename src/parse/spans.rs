//! Where each top-level array element starts and ends in the original body.
//!
//! The parser needs every element's original bytes, and simd-json's tape has no byte offsets.
//! Three ways to find them, tried in order, each checked against the body so that a wrong answer
//! is never used (the tests compare all three on every fixture):
//!
//! 1. **By key position** ([`by_keys`], O(1) per element). simd-json leaves every string in place
//!    in the buffer it parsed (unescaped where it had escapes, never moved), so the address of an
//!    object's first key, minus the buffer's base, is the byte after that key's opening quote.
//!    The element's `{` is the last byte before that quote (whitespace aside), and the `,` or `]`
//!    that ends it is the last byte before the next element's `{`. Works when every element is a
//!    non-empty object, which is every Egnyte batch.
//! 2. **By counting structurals** ([`by_count`]). simd-json's first stage left the byte offset of
//!    every structural character (`[ ] { } : ,`, each string's opening quote, each scalar's first
//!    byte). Every tape node is one structural, and every node but a value's root also owns one
//!    separator or closing bracket of its parent (`k` object entries bring `k` colons, `k - 1`
//!    commas and the `}`; `n` array items bring `n - 1` commas and the `]`); an empty container
//!    adds its closing bracket. So a value of `n` nodes, `e` of them empty containers, occupies
//!    `2n - 1 + e` structurals, and element `i` ends just before the structural that follows.
//! 3. **By walking brackets** ([`walk`]): the slow, obviously right version, following brackets
//!    and commas through the structural index. The fallback, and the tests' oracle.
//!
//! Only ever run on a body simd-json accepted. On anything else the code still cannot panic
//! (every index is checked), it just yields meaningless spans.

use simd_json::Node;

use super::Slot;

/// The byte range of one element in the body.
pub(crate) type Span = (u32, u32);

/// Structurals a value occupies in simd-json's index, from its tape nodes (`nodes` is exactly the
/// value's subtree): `2n - 1` plus one per empty container.
pub(crate) fn structural_count(nodes: &[Node<'_>]) -> usize {
    let empty =
        nodes.iter().filter(|n| matches!(n, Node::Object { len: 0, .. } | Node::Array { len: 0, .. }));
    2 * nodes.len() - 1 + empty.count()
}

/// Way 1: spans from the position of each element's first key. `base` is the address of the
/// buffer simd-json parsed (a copy of `body`, byte for byte). Returns false, leaving the spans
/// half written, when some element is not a non-empty object or the body disagrees.
pub(crate) fn by_keys(body: &[u8], nodes: &[Node<'_>], base: usize, slots: &mut [Slot]) -> bool {
    for slot in slots.iter_mut() {
        match object_start(body, nodes, slot.at as usize, base) {
            Some(start) => slot.span.0 = start as u32,
            None => return false,
        }
    }
    let (_, body_end) = trim(body);
    let Some(closing) = body_end.checked_sub(1).filter(|&i| body[i] == b']') else {
        return false;
    };
    for i in 0..slots.len() {
        let start = slots[i].span.0 as usize;
        let end = match slots.get(i + 1) {
            Some(next) => match last_byte_before(body, next.span.0 as usize) {
                Some(comma) if body[comma] == b',' => comma,
                _ => return false,
            },
            None => closing,
        };
        let end = trim_end(body, start, end);
        if end <= start {
            return false;
        }
        slots[i].span.1 = end as u32;
    }
    true
}

/// The offset of the `{` of the object element at tape position `at`, found from its first key.
fn object_start(body: &[u8], nodes: &[Node<'_>], at: usize, base: usize) -> Option<usize> {
    let (Node::Object { len: 1.., .. }, Some(&Node::String(key))) = (nodes[at], nodes.get(at + 1)) else {
        return None;
    };
    let quote = (key.as_ptr() as usize).checked_sub(base)?.checked_sub(1)?;
    if body.get(quote) != Some(&b'"') {
        return None;
    }
    last_byte_before(body, quote).filter(|&open| body[open] == b'{')
}

/// The offset of the last non-whitespace byte before `offset`.
fn last_byte_before(body: &[u8], offset: usize) -> Option<usize> {
    body.get(..offset)?.iter().rposition(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

/// Way 2: spans from the number of structurals each element occupies. Returns false when a
/// count and the body disagree.
pub(crate) fn by_count(body: &[u8], nodes: &[Node<'_>], structurals: &[u32], slots: &mut [Slot]) -> bool {
    // With no empty container anywhere (the document's count is exactly 2N - 1), every value of
    // n nodes occupies 2n - 1 structurals and no element needs scanning.
    let flat = !nodes.is_empty() && structurals.len() == 2 * nodes.len() - 1;
    let mut cursor = Spans::new(body, structurals);
    for slot in slots.iter_mut() {
        let at = slot.at as usize;
        let subtree = &nodes[at..at + crate::json::node_span(&nodes[at])];
        let count = if flat { 2 * subtree.len() - 1 } else { structural_count(subtree) };
        match cursor.next(count) {
            Some(span) => slot.span = span,
            None => return false,
        }
    }
    true
}

/// Way 3 applied to the element table: the walk's spans, or empty ones if even it disagrees.
pub(crate) fn by_walk(body: &[u8], structurals: &[u32], slots: &mut [Slot]) {
    let mut walked = Vec::with_capacity(slots.len());
    walk(body, structurals, &mut walked);
    for (i, slot) in slots.iter_mut().enumerate() {
        slot.span = walked.get(i).copied().unwrap_or((0, 0));
    }
}

/// Cursor over a top-level array's elements in the structural index.
#[derive(Debug)]
pub(crate) struct Spans<'a> {
    body: &'a [u8],
    structurals: &'a [u32],
    /// Index in `structurals` of the next element's first structural.
    next: usize,
}

impl<'a> Spans<'a> {
    /// `structurals` must be simd-json's index for `body`, whose top-level value is an array.
    pub(crate) fn new(body: &'a [u8], structurals: &'a [u32]) -> Spans<'a> {
        Spans { body, structurals, next: 1 }
    }

    /// The span of the next element, which occupies `count` structurals; `None` if that count
    /// and the body disagree.
    pub(crate) fn next(&mut self, count: usize) -> Option<Span> {
        let first = self.next;
        let after = first + count;
        let start = *self.structurals.get(first)? as usize;
        let end = *self.structurals.get(after)? as usize;
        if !matches!(self.body.get(end), Some(b',' | b']')) || start >= end {
            return None;
        }
        self.next = after + 1;
        Some((start as u32, trim_end(self.body, start, end) as u32))
    }
}

/// The slow, obviously right way: follow brackets and commas through the structural index.
/// Appends one span per top-level array element to `out`.
pub(crate) fn walk(body: &[u8], structurals: &[u32], out: &mut Vec<Span>) {
    let mut start = None;
    let mut depth = 1usize;
    for &offset in structurals.iter().skip(1) {
        let offset = offset as usize;
        let Some(&byte) = body.get(offset) else { return };
        match byte {
            b']' | b'}' if depth > 1 => depth -= 1,
            b',' | b']' if depth == 1 => {
                if let Some(start) = start.take() {
                    out.push((start as u32, trim_end(body, start, offset) as u32));
                }
                if byte == b']' {
                    return;
                }
            }
            _ => {
                if depth == 1 && start.is_none() {
                    start = Some(offset);
                }
                if matches!(byte, b'[' | b'{') {
                    depth += 1;
                }
            }
        }
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
