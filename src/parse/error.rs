//! Whole-body parse errors: the body as a whole is not an Egnyte batch.
//!
//! One variant per way a body can fail before any element is looked at. Messages are static
//! text plus numbers, so an HTTP layer can answer them without allocating, and they never echo
//! the body's bytes back.

use crate::json::JsonKind;
use std::fmt;

/// Why a whole body was rejected. (A single bad element is not a `ParseError`: it is reported in
/// the batch as an [`InvalidElement`](crate::InvalidElement) and its siblings are kept.)
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The body is empty or only whitespace.
    Empty,
    /// The body is longer than the parser can index (`len` > `limit`).
    TooLarge {
        /// The body's length in bytes.
        len: usize,
        /// The largest body the parser takes.
        limit: usize,
    },
    /// The body is not valid UTF-8; `offset` is the first byte of the first bad sequence.
    InvalidUtf8 {
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// The body is not valid JSON.
    InvalidJson {
        /// Byte offset where the parser noticed the problem.
        offset: usize,
        /// What was wrong there, in a few words.
        detail: &'static str,
    },
    /// Arrays and objects are nested deeper than the parser's depth limit.
    TooDeep {
        /// Byte offset of the bracket that went one level too deep.
        offset: usize,
        /// The depth limit in force.
        limit: usize,
    },
    /// The top-level value is a string, number, boolean or null.
    NotArrayOrObject {
        /// What the top-level value was.
        kind: JsonKind,
    },
    /// The top-level array holds more elements than the parser's event limit.
    TooManyEvents {
        /// Elements in the array.
        count: usize,
        /// The event limit in force.
        limit: usize,
    },
}

impl ParseError {
    /// The byte offset the error points at, where there is one.
    pub fn offset(&self) -> Option<usize> {
        match *self {
            ParseError::InvalidUtf8 { offset }
            | ParseError::InvalidJson { offset, .. }
            | ParseError::TooDeep { offset, .. } => Some(offset),
            _ => None,
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Empty => f.write_str("empty body"),
            ParseError::TooLarge { len, limit } => {
                write!(f, "body of {len} bytes is larger than the parser limit of {limit} bytes")
            }
            ParseError::InvalidUtf8 { offset } => write!(f, "invalid UTF-8 at byte {offset}"),
            ParseError::InvalidJson { offset, detail } => {
                write!(f, "invalid JSON at byte {offset}: {detail}")
            }
            ParseError::TooDeep { offset, limit } => {
                write!(f, "nesting deeper than {limit} levels at byte {offset}")
            }
            ParseError::NotArrayOrObject { kind } => {
                let kind = match kind {
                    JsonKind::Null => "null",
                    JsonKind::Bool => "a boolean",
                    JsonKind::Number => "a number",
                    JsonKind::String => "a string",
                    JsonKind::Array => "an array",
                    JsonKind::Object => "an object",
                };
                write!(f, "top level is {kind}, not an array or object of events")
            }
            ParseError::TooManyEvents { count, limit } => {
                write!(f, "{count} events in one body, more than the limit of {limit}")
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// A few words for each way simd-json can reject a document.
pub(crate) fn describe(kind: &simd_json::ErrorType) -> &'static str {
    use simd_json::ErrorType as E;
    match kind {
        E::Eof => "unexpected end of input",
        E::TrailingData => "unexpected data after the top-level value",
        E::InvalidNumber | E::InvalidExponent | E::Overflow => "invalid number",
        E::InvalidEscape => "invalid escape in a string",
        E::InvalidUnicodeEscape | E::InvalidUnicodeCodepoint => "invalid unicode escape in a string",
        E::ExpectedNull | E::ExpectedTrue | E::ExpectedFalse | E::ExpectedBoolean => "invalid literal",
        E::ExpectedObjectKey | E::ExpectedString | E::KeyMustBeAString => "expected a string key",
        E::ExpectedObjectColon => "expected ':' after an object key",
        E::ExpectedMapComma | E::ExpectedMapEnd | E::ExpectedObjectContent => {
            "expected ',' or '}' in an object"
        }
        E::ExpectedArrayComma | E::ExpectedArrayContent => "expected ',' or ']' in an array",
        E::UnterminatedString => "unterminated string",
        E::NoStructure => "no JSON value",
        _ => "unexpected character",
    }
}
