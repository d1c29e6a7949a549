//! The shared token Egnyte sends verbatim in one request header, and its comparison.
//!
//! Egnyte's webhook registration carries an optional `authHeader` string, sent as the whole value
//! of one header, named `Authentication` in Egnyte's help pages and `Authorization` in practice.
//! So by default either name is accepted; `--auth-header` narrows it to one. The comparison takes
//! the same time wherever the first difference is. The token is never logged: [`Token`]'s `Debug`
//! prints its length only.

use std::fmt;
use std::io;
use std::path::Path;

/// The header names a token is looked for in by default.
const DEFAULT_HEADERS: [&str; 2] = ["Authorization", "Authentication"];

/// A configured token and the header(s) it may arrive in.
#[derive(Clone)]
pub struct Token {
    value: Vec<u8>,
    header: Option<String>,
}

impl Token {
    /// A token expected in `header`, or in `Authorization` or `Authentication` when `None`.
    pub fn new(value: Vec<u8>, header: Option<String>) -> Token {
        Token { value, header }
    }

    /// Reads a token file (for example systemd's `$CREDENTIALS_DIRECTORY/token`): one trailing
    /// line break is removed, anything else is the token; an empty token is refused.
    pub fn read_file(path: &Path, header: Option<String>) -> io::Result<Token> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let mut value = std::fs::read(path).map_err(context)?;
        if value.ends_with(b"\n") {
            value.pop();
            if value.ends_with(b"\r") {
                value.pop();
            }
        }
        if value.is_empty() {
            return Err(context(io::Error::new(io::ErrorKind::InvalidData, "the token is empty")));
        }
        Ok(Token { value, header })
    }

    /// The one header it is accepted in, when `--auth-header` named one.
    pub fn header(&self) -> Option<&str> {
        self.header.as_deref()
    }

    /// The header names to look in.
    pub fn header_names(&self) -> impl Iterator<Item = &str> {
        let custom = self.header.as_deref();
        let defaults = if custom.is_some() { &DEFAULT_HEADERS[..0] } else { &DEFAULT_HEADERS[..] };
        custom.into_iter().chain(defaults.iter().copied())
    }

    /// True when `candidate` is exactly the token. Takes time independent of where they differ
    /// (only the length is not hidden).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        constant_time_eq(&self.value, candidate)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({} bytes, in {:?})", self.value.len(), self.header_names().collect::<Vec<_>>())
    }
}

/// Equality that looks at every byte whatever the first difference: the accumulator stops the
/// compiler from returning early, `black_box` from proving it could.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_exactly() {
        let token = Token::new(b"Token XYZ".to_vec(), None);
        assert!(token.matches(b"Token XYZ"));
        for wrong in [&b""[..], b"Token XY", b"Token XYZ ", b"token XYZ", b"Token XYz", b"\0oken XYZ"] {
            assert!(!token.matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn token_files_lose_one_trailing_line_break_and_must_not_be_empty() {
        let temp = crate::test_dir::TempDir::new("token");
        let dir = temp.path().to_path_buf();
        let path = dir.join("token");
        for (content, expected) in [
            (&b"abc\n"[..], Some(&b"abc"[..])),
            (b"abc\r\n", Some(b"abc")),
            (b"a b\n\n", Some(b"a b\n")),
            (b"\n", None),
            (b"", None),
        ] {
            std::fs::write(&path, content).unwrap();
            let read = Token::read_file(&path, None);
            assert_eq!(read.as_ref().ok().map(|t| t.value.as_slice()), expected, "{content:?}");
        }
        assert!(Token::read_file(&dir.join("missing"), None).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn header_names_and_debug_never_show_the_token() {
        let both = Token::new(b"s3cret".to_vec(), None);
        assert_eq!(both.header_names().collect::<Vec<_>>(), ["Authorization", "Authentication"]);
        let one = Token::new(b"s3cret".to_vec(), Some("X-Auth".into()));
        assert_eq!(one.header_names().collect::<Vec<_>>(), ["X-Auth"]);
        let shown = format!("{both:?} {one:?}");
        assert!(!shown.contains("s3cret") && shown.contains("6 bytes"), "{shown}");
    }
}
