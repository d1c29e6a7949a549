//! A borrowed, read-only view of one JSON value on simd-json's tape.
//!
//! [`Json`] is how the crate exposes the open-ended parts of an event (`data`, the unknown
//! envelope fields) without copying them and without tying the public API to simd-json's types.
//!
//! Invariants: a `Json` always wraps a tape slice whose first node is the value itself and which
//! holds at least that value's whole subtree (containers know their node count). Every method is
//! an explicit loop over that slice: nothing recurses, so the depth of the input never translates
//! into stack use. Lookups return the *first* of duplicate keys, as simd-json does.

use simd_json::{Node, StaticNode};
use std::fmt;

/// What kind of JSON value a [`Json`] view holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `null`
    Null,
    /// `true` or `false`
    Bool,
    /// Any number (integer or float).
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// A borrowed view of one JSON value (and its subtree) on the parser's tape.
#[derive(Clone, Copy)]
pub struct Json<'buf> {
    nodes: &'buf [Node<'buf>],
}

/// Number of tape nodes a value occupies, itself included.
pub(crate) fn node_span(node: &Node<'_>) -> usize {
    match *node {
        Node::Object { count, .. } | Node::Array { count, .. } => count + 1,
        Node::String(_) | Node::Static(_) => 1,
    }
}

impl<'buf> Json<'buf> {
    /// Wraps the value that starts at `nodes[0]`; the slice is cut to the value's own subtree.
    pub(crate) fn at(nodes: &'buf [Node<'buf>], start: usize) -> Json<'buf> {
        let end = start + node_span(&nodes[start]);
        Json { nodes: &nodes[start..end] }
    }

    fn head(&self) -> &'buf Node<'buf> {
        &self.nodes[0]
    }

    /// The kind of value this is.
    pub fn kind(&self) -> JsonKind {
        match self.head() {
            Node::String(_) => JsonKind::String,
            Node::Object { .. } => JsonKind::Object,
            Node::Array { .. } => JsonKind::Array,
            Node::Static(StaticNode::Null) => JsonKind::Null,
            Node::Static(StaticNode::Bool(_)) => JsonKind::Bool,
            Node::Static(_) => JsonKind::Number,
        }
    }

    /// The string, when this is a string (already unescaped).
    pub fn as_str(&self) -> Option<&'buf str> {
        match *self.head() {
            Node::String(s) => Some(s),
            _ => None,
        }
    }

    /// The boolean, when this is `true` or `false`.
    pub fn as_bool(&self) -> Option<bool> {
        match *self.head() {
            Node::Static(StaticNode::Bool(b)) => Some(b),
            _ => None,
        }
    }

    /// True when this is `null`.
    pub fn is_null(&self) -> bool {
        matches!(self.head(), Node::Static(StaticNode::Null))
    }

    /// The number as an `i64`, when it is an integer that fits.
    pub fn as_i64(&self) -> Option<i64> {
        match *self.head() {
            Node::Static(StaticNode::I64(n)) => Some(n),
            Node::Static(StaticNode::U64(n)) => i64::try_from(n).ok(),
            _ => None,
        }
    }

    /// The number as a `u64`, when it is a non-negative integer that fits.
    pub fn as_u64(&self) -> Option<u64> {
        match *self.head() {
            Node::Static(StaticNode::U64(n)) => Some(n),
            Node::Static(StaticNode::I64(n)) => u64::try_from(n).ok(),
            _ => None,
        }
    }

    /// Any number as an `f64` (integers are converted, possibly rounding).
    pub fn as_f64(&self) -> Option<f64> {
        match *self.head() {
            Node::Static(StaticNode::F64(n)) => Some(n),
            Node::Static(StaticNode::I64(n)) => Some(n as f64),
            Node::Static(StaticNode::U64(n)) => Some(n as f64),
            _ => None,
        }
    }

    /// Number of entries (object) or items (array); 0 for scalars.
    pub fn len(&self) -> usize {
        match *self.head() {
            Node::Object { len, .. } | Node::Array { len, .. } => len,
            _ => 0,
        }
    }

    /// True for an empty object or array, and for every scalar.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value of the first entry named `key`, when this is an object that has one.
    pub fn get(&self, key: &str) -> Option<Json<'buf>> {
        self.entries().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// Follows a chain of object keys: `path(&["workflow", "id"])`.
    pub fn path(&self, keys: &[&str]) -> Option<Json<'buf>> {
        keys.iter().try_fold(*self, |value, key| value.get(key))
    }

    /// The string at `key`, when this is an object and that entry is a string.
    pub fn get_str(&self, key: &str) -> Option<&'buf str> {
        self.get(key).and_then(|v| v.as_str())
    }

    /// The object's entries in document order (duplicates included); empty for non-objects.
    pub fn entries(&self) -> Entries<'buf> {
        let remaining = match *self.head() {
            Node::Object { len, .. } => len,
            _ => 0,
        };
        Entries { nodes: self.nodes, next: 1, remaining }
    }

    /// The array's items in order; empty for non-arrays.
    pub fn items(&self) -> Items<'buf> {
        let remaining = match *self.head() {
            Node::Array { len, .. } => len,
            _ => 0,
        };
        Items { nodes: self.nodes, next: 1, remaining }
    }
}

/// Iterator over an object's `(key, value)` pairs; see [`Json::entries`].
#[derive(Debug, Clone)]
pub struct Entries<'buf> {
    nodes: &'buf [Node<'buf>],
    next: usize,
    remaining: usize,
}

impl<'buf> Iterator for Entries<'buf> {
    type Item = (&'buf str, Json<'buf>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // A key is always a string node on a tape simd-json accepted; anything else ends iteration.
        let Node::String(key) = *self.nodes.get(self.next)? else {
            self.remaining = 0;
            return None;
        };
        let value = Json::at(self.nodes, self.next + 1);
        self.next += 1 + value.nodes.len();
        Some((key, value))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Iterator over an array's items; see [`Json::items`].
#[derive(Debug, Clone)]
pub struct Items<'buf> {
    nodes: &'buf [Node<'buf>],
    next: usize,
    remaining: usize,
}

impl<'buf> Iterator for Items<'buf> {
    type Item = Json<'buf>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 || self.next >= self.nodes.len() {
            return None;
        }
        self.remaining -= 1;
        let value = Json::at(self.nodes, self.next);
        self.next += value.nodes.len();
        Some(value)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining))
    }
}

/// Writes the value back as compact JSON (keys in document order, duplicates kept).
///
/// This is a re-serialisation for humans and tests, not the event's original bytes: use
/// [`crate::Event::raw`] for those. Iterative, like everything here.
impl fmt::Display for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        /// One open container: how many nodes it holds as direct children (keys count in
        /// objects) and how many of them were started.
        struct Open {
            total: usize,
            started: usize,
            is_object: bool,
        }
        let mut open: Vec<Open> = Vec::new();
        for node in self.nodes {
            if let Some(top) = open.last_mut() {
                let separator = match (top.is_object, top.started) {
                    (_, 0) => "",
                    (true, n) if n % 2 == 1 => ":",
                    _ => ",",
                };
                f.write_str(separator)?;
                top.started += 1;
            }
            match *node {
                Node::String(s) => write_json_string(f, s)?,
                Node::Static(StaticNode::Null) => f.write_str("null")?,
                Node::Static(StaticNode::Bool(b)) => write!(f, "{b}")?,
                Node::Static(StaticNode::I64(n)) => write!(f, "{n}")?,
                Node::Static(StaticNode::U64(n)) => write!(f, "{n}")?,
                Node::Static(StaticNode::F64(n)) => write!(f, "{n:?}")?,
                Node::Object { len, .. } => {
                    f.write_str("{")?;
                    open.push(Open { total: 2 * len, started: 0, is_object: true });
                }
                Node::Array { len, .. } => {
                    f.write_str("[")?;
                    open.push(Open { total: len, started: 0, is_object: false });
                }
            }
            // Close every container whose last child has now been written completely.
            while let Some(top) = open.last() {
                if top.started < top.total {
                    break;
                }
                let close = if top.is_object { "}" } else { "]" };
                open.pop();
                f.write_str(close)?;
            }
        }
        Ok(())
    }
}

/// Writes `s` as a JSON string: quotes, backslashes and control characters escaped, every other
/// character (non-ASCII included) as UTF-8. The one string writer of the crate and the binary.
pub fn write_json_string(f: &mut impl fmt::Write, s: &str) -> fmt::Result {
    f.write_str("\"")?;
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        f.write_str(&s[from..i])?;
        if escape.is_empty() {
            write!(f, "\\u{b:04x}")?;
        } else {
            f.write_str(escape)?;
        }
        from = i + 1;
    }
    f.write_str(&s[from..])?;
    f.write_str("\"")
}

impl fmt::Debug for Json<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Element, Parser};

    /// Runs `check` on the `data` view of a one-event batch whose data is `data`.
    fn with_data(data: &str, check: impl FnOnce(Json<'_>)) {
        let body = format!(
            r#"[{{"eventId":"e","domain":"d","timestamp":1,"actionSource":"a","eventType":"t","data":{data}}}]"#
        );
        let mut parser = Parser::default();
        let batch = parser.parse(body.as_bytes()).unwrap();
        let Some(Element::Valid(event)) = batch.elements().next() else { panic!("{body}") };
        check(event.data().json());
    }

    #[test]
    fn lookups_iterate_and_follow_paths() {
        with_data(r#"{"a":1,"b":[true,null,"s",{"c":-2.5}],"a":2,"e":{},"f":[]}"#, |j| {
            assert_eq!((j.kind(), j.len(), j.is_empty()), (JsonKind::Object, 5, false));
            assert_eq!(j.get("a").and_then(|v| v.as_u64()), Some(1), "first of duplicate keys");
            assert_eq!(j.get("zzz").map(|v| v.kind()), None);
            let keys: Vec<&str> = j.entries().map(|(k, _)| k).collect();
            assert_eq!(keys, ["a", "b", "a", "e", "f"]);
            let b = j.get("b").unwrap();
            let kinds: Vec<JsonKind> = b.items().map(|v| v.kind()).collect();
            assert_eq!(kinds, [JsonKind::Bool, JsonKind::Null, JsonKind::String, JsonKind::Object]);
            assert_eq!(b.items().nth(3).unwrap().get("c").and_then(|v| v.as_f64()), Some(-2.5));
            assert_eq!(j.get("e").map(|v| (v.len(), v.is_empty())), Some((0, true)));
            assert_eq!(j.get("f").unwrap().items().count(), 0);
            // Scalars have no entries or items, and lookups on them find nothing.
            let one = j.get("a").unwrap();
            assert_eq!((one.entries().count(), one.items().count(), one.get("a").is_none()), (0, 0, true));
            assert!(b.entries().next().is_none() && j.items().next().is_none());
        });
        with_data(r#"{"w":{"x":{"y":"deep"}}}"#, |j| {
            assert_eq!(j.path(&["w", "x", "y"]).and_then(|v| v.as_str()), Some("deep"));
            assert!(j.path(&["w", "nope", "y"]).is_none());
            assert_eq!(j.path(&[]).map(|v| v.kind()), Some(JsonKind::Object));
        });
    }

    #[test]
    fn numbers_convert_only_when_they_fit() {
        with_data(r#"{"neg":-3,"big":18446744073709551615,"f":1.5,"s":"7"}"#, |j| {
            let n = |k: &str| j.get(k).unwrap();
            assert_eq!(
                (n("neg").as_i64(), n("neg").as_u64(), n("neg").as_f64()),
                (Some(-3), None, Some(-3.0))
            );
            assert_eq!((n("big").as_i64(), n("big").as_u64()), (None, Some(u64::MAX)));
            assert_eq!((n("f").as_i64(), n("f").as_f64()), (None, Some(1.5)));
            assert_eq!((n("s").as_u64(), n("s").as_str(), n("s").as_bool()), (None, Some("7"), None));
        });
    }

    #[test]
    fn display_is_compact_json_with_escapes() {
        with_data(
            r#"{"q":"a\"b\\c\nd\u0001é","e":[],"o":{},"n":[[1,[]],{"k":null}],"t":true,"x":-0.5}"#,
            |j| {
                assert_eq!(
                    j.to_string(),
                    r#"{"q":"a\"b\\c\nd\u0001é","e":[],"o":{},"n":[[1,[]],{"k":null}],"t":true,"x":-0.5}"#
                );
            },
        );
    }
}
