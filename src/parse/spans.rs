//! Where each top-level array element starts and ends in the original body.
//!
//! simd-json's first stage already found every structural character (`[ ] { } : ,`, the opening
//! quote of each string, the first byte of each scalar) and leaves their byte offsets in its
//! `Buffers`. The tape tells how many of those each element occupies without looking at a byte:
//! every node is one structural, and every node but the element's root also owns one separator
//! or closing bracket of its parent (`k` object entries bring `k` colons, `k - 1` commas and the
//! `}`; `n` array items bring `n - 1` commas and the `]`). An empty container adds its closing
//! bracket. So a value of `n` nodes, `e` of them empty containers, occupies `2n - 1 + e`
//! structurals ([`structural_count`]).
//!
//! That gives an O(1) fast path: when the whole document has `2N - 1` structurals for its `N`
//! nodes, it has no empty container at all, and every element of `n` nodes occupies exactly
//! `2n - 1`. Otherwise each element's nodes are scanned for empty containers. Element `i` then
//! starts at structural `s`, and the structural at `s + count` is the `,` or `]` that ends it.
//!
//! Trust but verify: each span is checked against the body (the structural after its end must be
//! `,` or `]`). Should a simd-json upgrade ever break the counting rule, the parser falls back to
//! [`walk`], the slow, obviously right version that follows brackets and commas through the
//! structural index, and the tests compare the two on every fixture.
//!
//! Only ever run on a body simd-json accepted. On anything else the code still cannot panic
//! (every index is checked), it just yields meaningless spans.

use simd_json::Node;

/// The byte range of one element in the body.
pub(crate) type Span = (u32, u32);

/// Structurals a value occupies in simd-json's index, from its tape nodes (`nodes` is exactly the
/// value's subtree): `2n - 1` plus one per empty container.
pub(crate) fn structural_count(nodes: &[Node<'_>]) -> usize {
    let empty =
        nodes.iter().filter(|n| matches!(n, Node::Object { len: 0, .. } | Node::Array { len: 0, .. }));
    2 * nodes.len() - 1 + empty.count()
}

/// True when a document of `nodes` tape nodes and `structurals` structurals holds no empty
/// container, so that every value of `n` nodes occupies exactly `2n - 1` structurals.
pub(crate) fn no_empty_containers(nodes: usize, structurals: usize) -> bool {
    nodes > 0 && structurals == 2 * nodes - 1
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
