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

    /// A token from the command line or the environment, refused when it can never match a
    /// header value (whitespace at either end, a control character, empty).
    pub fn parse(value: Vec<u8>, header: Option<String>) -> Result<Token, String> {
        check(&value)?;
        Ok(Token { value, header })
    }

    /// True when `other` is the same token in the same header(s) (for the SIGHUP log line; not
    /// constant time, and not for requests).
    pub fn same_as(&self, other: &Token) -> bool {
        self.value == other.value && self.header == other.header
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
        check(&value).map_err(|why| context(io::Error::new(io::ErrorKind::InvalidData, why)))?;
        warn_if_readable(path);
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

/// A token must be able to match a header value: not empty, no whitespace at either end (HTTP
/// strips it from every value, so such a token could never match: every request would be
/// 401), no control characters (a header value cannot carry them).
fn check(value: &[u8]) -> Result<(), String> {
    let blank = |b: &u8| *b == b' ' || *b == b'\t';
    if value.is_empty() {
        return Err("the token is empty".into());
    }
    if value.first().is_some_and(blank) || value.last().is_some_and(blank) {
        return Err("the token starts or ends with whitespace, which no header value can carry".into());
    }
    if value.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err("the token holds a control character, which no header value can carry".into());
    }
    Ok(())
}

/// Logs a warning when users other than the owner may read the token file.
fn warn_if_readable(path: &Path) {
    if let Some(mode) = crate::private_files::shared_mode(path) {
        log::warn!(
            "{} has mode {mode:03o}: other local users may read the token (chmod 600 it)",
            path.display()
        );
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
            (b"a b\n", Some(b"a b")),
            // A token no header value can carry: every request would be 401.
            (b"a b\n\n", None),
            (b"abc \n", None),
            (b" abc", None),
            (b"\tabc", None),
            (b"ab\x01c", None),
            (b"ab\x7fc", None),
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
    fn tokens_from_the_command_line_are_checked_alike() {
        assert!(Token::parse(b"Token XYZ".to_vec(), None).is_ok());
        assert!(Token::parse(b"a\tb".to_vec(), None).is_ok());
        for bad in [&b""[..], b" x", b"x ", b"x\t", b"x\ny"] {
            assert!(Token::parse(bad.to_vec(), None).is_err(), "{bad:?}");
        }
        let a = Token::new(b"one".to_vec(), None);
        assert!(a.same_as(&Token::new(b"one".to_vec(), None)));
        assert!(!a.same_as(&Token::new(b"two".to_vec(), None)));
        assert!(!a.same_as(&Token::new(b"one".to_vec(), Some("X-Auth".into()))));
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
