//! The shared token Egnyte sends verbatim in one request header, and its comparison.
//!
//! Egnyte's webhook registration carries an optional `authHeader` string, sent as the whole value
//! of one header, named `Authentication` in Egnyte's help pages and `Authorization` in practice.
//! So by default either name is accepted; `--auth-header` narrows it to one. The comparison takes
//! the same time wherever the first difference is. The token is never logged: [`Token`]'s `Debug`
//! prints its length only.
//!
//! Rotation without a window of 401s: up to two tokens are accepted at once (two
//! lines in the token file, or `--auth-token` twice): add the new one, restart, change the
//! webhook's `authHeader` at Egnyte, then remove the old one and restart again.

use std::fmt;
use std::io;
use std::path::Path;

/// The header names a token is looked for in by default.
const DEFAULT_HEADERS: [&str; 2] = ["Authorization", "Authentication"];

/// Most tokens accepted at once: the one in use and the next (see the module docs).
const MAX_TOKENS: usize = 2;

/// The configured token(s) and the header(s) they may arrive in.
#[derive(Clone)]
pub struct Token {
    /// The accepted values: one, or (while rotating) two; the first is the one named
    /// in logs by its length.
    values: Vec<Vec<u8>>,
    header: Option<String>,
}

impl Token {
    /// A token expected in `header`, or in `Authorization` or `Authentication` when `None`.
    pub fn new(value: Vec<u8>, header: Option<String>) -> Token {
        Token { values: vec![value], header }
    }

    /// A token from the command line or the environment, refused when it can never match a
    /// header value (whitespace at either end, a control character, empty).
    pub fn parse(value: Vec<u8>, header: Option<String>) -> Result<Token, String> {
        check(&value)?;
        Ok(Token { values: vec![value], header })
    }

    /// This token and `next` accepted together (a rotation); refused beyond two.
    pub fn and(mut self, next: Token) -> Result<Token, String> {
        self.values.extend(next.values);
        if self.values.len() > MAX_TOKENS {
            return Err(format!("at most {MAX_TOKENS} tokens (the one in use and the next)"));
        }
        Ok(self)
    }

    /// How many tokens are accepted.
    pub fn count(&self) -> usize {
        self.values.len()
    }

    /// True when `other` is the same token in the same header(s) (for the SIGHUP log line; not
    /// constant time, and not for requests).
    pub fn same_as(&self, other: &Token) -> bool {
        self.values == other.values && self.header == other.header
    }

    /// Reads a token file (for example systemd's `$CREDENTIALS_DIRECTORY/token`): one token per
    /// line, at most two (the second while rotating), each line break (`\n` or `\r\n`)
    /// removed; an empty token, or one no header value can carry, is refused.
    pub fn read_file(path: &Path, header: Option<String>) -> io::Result<Token> {
        let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let invalid = |why: String| context(io::Error::new(io::ErrorKind::InvalidData, why));
        let mut text = std::fs::read(path).map_err(context)?;
        if text.ends_with(b"\n") {
            text.pop();
        }
        let mut values = Vec::new();
        for line in text.split(|&b| b == b'\n') {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            check(line).map_err(|why| match values.len() {
                0 => invalid(why),
                n => invalid(format!("line {}: {why}", n + 1)),
            })?;
            values.push(line.to_vec());
        }
        if values.len() > MAX_TOKENS {
            return Err(invalid(format!(
                "{} lines: at most {MAX_TOKENS} tokens (the one in use and the next)",
                values.len()
            )));
        }
        warn_if_readable(path);
        Ok(Token { values, header })
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

    /// True when `candidate` is exactly one of the tokens. Takes time independent of where they
    /// differ and of which one matched (every token is compared; only lengths are not hidden).
    pub fn matches(&self, candidate: &[u8]) -> bool {
        self.values.iter().fold(false, |matched, value| matched | constant_time_eq(value, candidate))
    }
}

/// Why a request's credentials were refused, for the log ([`Token::mismatch`]). It names
/// headers and lengths, never the token nor any part of the value received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Mismatch<'t> {
    /// What was wrong.
    pub(super) cause: Cause<'t>,
    /// The header(s) the token is accepted in, as the log names them.
    accepted: &'t str,
    /// The token's length (not hidden by the comparison either).
    token_len: usize,
}

/// What was wrong with a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cause<'t> {
    /// No header the token may come in, nor `Authorization` or `Authentication`.
    NoHeader,
    /// No accepted header, but `header` (`Authorization`, `Authentication` or the configured
    /// one), which `--auth-header` leaves out; `value` compares what it carried.
    OtherHeader {
        /// The header that was sent.
        header: &'t str,
        /// How its value compares with the token.
        value: Value,
    },
    /// An accepted header was sent more than once (one request, one guess).
    Repeated {
        /// The header.
        header: &'t str,
    },
    /// An accepted header's value is not the token.
    Differs {
        /// The header.
        header: &'t str,
        /// [`Value::Scheme`] or [`Value::Other`].
        value: Value,
    },
}

/// How a header value compares with the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Value {
    /// Exactly the token.
    Token,
    /// The same credentials behind another scheme prefix (`Bearer X` for `Token X`), or with
    /// the prefix missing (`X` for `Token X`) or extra (`Token X` for `X`).
    Scheme {
        /// Bytes received.
        len: usize,
    },
    /// Anything else.
    Other {
        /// Bytes received.
        len: usize,
    },
}

/// How the log names the default headers.
const DEFAULT_HEADERS_TEXT: &str = "Authorization or Authentication";

impl Token {
    /// Why a request failed the token rule (asked only once it failed): `headers()` yields the
    /// request's header lines, name and value. A pure function of them and the configuration,
    /// in the order the rule applies: an accepted header sent twice, an accepted header's value,
    /// then a header `--auth-header` leaves out, then none. Each comparison takes the same time
    /// wherever the bytes differ.
    pub(super) fn mismatch<'t, 'h, I>(&'t self, headers: impl Fn() -> I) -> Mismatch<'t>
    where
        I: Iterator<Item = (&'h str, &'h [u8])>,
    {
        let mismatch = |cause| Mismatch {
            cause,
            accepted: self.header.as_deref().unwrap_or(DEFAULT_HEADERS_TEXT),
            token_len: self.values[0].len(),
        };
        let values = |name: &'t str| {
            headers().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, value)| value)
        };
        let mut sent = None;
        for name in self.header_names() {
            let mut found = values(name);
            match (found.next(), found.next()) {
                (Some(_), Some(_)) => return mismatch(Cause::Repeated { header: name }),
                (Some(value), None) if sent.is_none() => sent = Some((name, value)),
                _ => {}
            }
        }
        if let Some((header, value)) = sent {
            return mismatch(Cause::Differs { header, value: self.compare(value) });
        }
        let accepted = |name: &str| self.header_names().any(|n| n.eq_ignore_ascii_case(name));
        for header in DEFAULT_HEADERS.iter().copied().filter(|name| !accepted(name)) {
            if let Some(value) = values(header).next() {
                return mismatch(Cause::OtherHeader { header, value: self.compare(value) });
            }
        }
        mismatch(Cause::NoHeader)
    }

    /// How `value` compares with the token.
    fn compare(&self, value: &[u8]) -> Value {
        let any =
            |same: &dyn Fn(&[u8]) -> bool| self.values.iter().fold(false, |hit, token| hit | same(token));
        if any(&|token| constant_time_eq(token, value)) {
            Value::Token
        } else if any(&|token| constant_time_eq(credentials(token), credentials(value))) {
            Value::Scheme { len: value.len() }
        } else {
            Value::Other { len: value.len() }
        }
    }
}

/// What follows an authentication scheme (a word of token characters, then spaces), or the
/// whole value when it starts with none.
fn credentials(value: &[u8]) -> &[u8] {
    let Some(end) = value.iter().position(|&b| b == b' ') else { return value };
    let scheme = &value[..end];
    if scheme.is_empty()
        || !scheme.iter().all(|&b| b.is_ascii_alphanumeric() || b"-._~+/!#$%&'*^`|".contains(&b))
    {
        return value;
    }
    let rest = &value[end..];
    &rest[rest.iter().position(|&b| b != b' ').unwrap_or(rest.len())..]
}

impl Mismatch<'_> {
    /// The cause as a fixed text, one per cause (and per kind of differing value): the
    /// rejection log's key, so that each cause gets its own line each second.
    pub(super) fn kind(&self) -> &'static str {
        match self.cause {
            Cause::NoHeader => "no header",
            Cause::OtherHeader { .. } => "another header",
            Cause::Repeated { .. } => "repeated header",
            Cause::Differs { value: Value::Scheme { .. }, .. } => "scheme prefix",
            Cause::Differs { .. } => "value",
        }
    }
}

impl fmt::Display for Mismatch<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Mismatch { cause, accepted, token_len } = *self;
        match cause {
            Cause::NoHeader => write!(f, "no {accepted} header"),
            Cause::OtherHeader { header, value: Value::Token } => {
                write!(f, "the token came in {header}, but only {accepted} is accepted (--auth-header)")
            }
            Cause::OtherHeader { header, value: Value::Scheme { len } } => write!(
                f,
                "a value came in {header} ({len} bytes, the token but for its scheme prefix), but only \
                 {accepted} is accepted (--auth-header)"
            ),
            Cause::OtherHeader { header, value: Value::Other { len } } => write!(
                f,
                "a value came in {header} ({len} bytes, not the token), but only {accepted} is accepted \
                 (--auth-header)"
            ),
            Cause::Repeated { header } => write!(f, "{header} sent more than once"),
            Cause::Differs { header, value: Value::Scheme { len } } => write!(
                f,
                "the {header} value ({len} bytes) differs from the token ({token_len} bytes) in its scheme \
                 prefix only (another scheme, or one missing or extra)"
            ),
            Cause::Differs { header, value: Value::Other { len } } => {
                write!(f, "the {header} value ({len} bytes) is not the token ({token_len} bytes)")
            }
            // Not a refusal the gate makes; said as it is rather than hidden.
            Cause::Differs { header, value: Value::Token } => write!(f, "the {header} value is the token"),
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let lengths: Vec<String> = self.values.iter().map(|v| v.len().to_string()).collect();
        write!(f, "Token({} bytes, in {:?})", lengths.join(" and "), self.header_names().collect::<Vec<_>>())
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
            assert_eq!(read.as_ref().ok().map(|t| t.values[0].as_slice()), expected, "{content:?}");
        }
        assert!(Token::read_file(&dir.join("missing"), None).unwrap_err().to_string().contains("missing"));
    }

    #[test]
    fn two_tokens_are_accepted_while_rotating_and_no_more() {
        let temp = crate::test_dir::TempDir::new("token-rotation");
        let path = temp.path().join("token");
        std::fs::write(&path, "Token old\r\nToken new\n").unwrap();
        let token = Token::read_file(&path, None).unwrap();
        assert_eq!(token.count(), 2);
        assert!(token.matches(b"Token old") && token.matches(b"Token new"));
        assert!(!token.matches(b"Token ol") && !token.matches(b"Token oldToken new"));
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        let error = Token::read_file(&path, None).unwrap_err().to_string();
        assert!(error.contains("3 lines: at most 2 tokens"), "{error}");
        std::fs::write(&path, "a\n b\n").unwrap();
        let error = Token::read_file(&path, None).unwrap_err().to_string();
        assert!(error.contains("line 2: the token starts or ends with whitespace"), "{error}");
        let both = Token::parse(b"x".to_vec(), None)
            .unwrap()
            .and(Token::parse(b"y".to_vec(), None).unwrap())
            .unwrap();
        assert!(both.matches(b"x") && both.matches(b"y"));
        assert!(both.and(Token::new(b"z".to_vec(), None)).is_err());
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

    /// Header lines of a test request.
    type Headers<'a> = &'a [(&'a str, &'a str)];

    /// The mismatch `token` finds in these header lines.
    fn mismatch<'t>(token: &'t Token, headers: &[(&str, &str)]) -> Mismatch<'t> {
        token.mismatch(|| headers.iter().map(|&(name, value)| (name, value.as_bytes())))
    }

    #[test]
    fn a_mismatch_is_classified_by_its_cause() {
        let both = Token::new(b"Token s3cret".to_vec(), None);
        let only = Token::new(b"Token s3cret".to_vec(), Some("Authorization".into()));
        let custom = Token::new(b"s3cret".to_vec(), Some("X-Egnyte-Auth".into()));
        let differs = |header, value| Cause::Differs { header, value };
        let other = |header, value| Cause::OtherHeader { header, value };
        let cases: &[(&Token, Headers<'_>, Cause<'_>)] = &[
            (&both, &[], Cause::NoHeader),
            (&both, &[("Host", "a"), ("X-Token", "Token s3cret")], Cause::NoHeader),
            (&custom, &[("Cookie", "s3cret")], Cause::NoHeader),
            // The token in a header --auth-header leaves out.
            (&only, &[("Authentication", "Token s3cret")], other("Authentication", Value::Token)),
            (
                &only,
                &[("authentication", "Bearer s3cret")],
                other("Authentication", Value::Scheme { len: 13 }),
            ),
            (&only, &[("Authentication", "nope")], other("Authentication", Value::Other { len: 4 })),
            (&custom, &[("Authorization", "s3cret")], other("Authorization", Value::Token)),
            // Scheme prefixes: another one, one missing, one extra.
            (
                &both,
                &[("Authorization", "Bearer s3cret")],
                differs("Authorization", Value::Scheme { len: 13 }),
            ),
            (&both, &[("Authentication", "s3cret")], differs("Authentication", Value::Scheme { len: 6 })),
            (
                &custom,
                &[("X-Egnyte-Auth", "Token s3cret")],
                differs("X-Egnyte-Auth", Value::Scheme { len: 12 }),
            ),
            (
                &custom,
                &[("X-Egnyte-Auth", "Token  s3cret")],
                differs("X-Egnyte-Auth", Value::Scheme { len: 13 }),
            ),
            // Values that differ otherwise.
            (&both, &[("Authorization", "Token s3cre")], differs("Authorization", Value::Other { len: 11 })),
            (&both, &[("Authorization", "Token S3CRET")], differs("Authorization", Value::Other { len: 12 })),
            (&both, &[("Authorization", "token-s3cret")], differs("Authorization", Value::Other { len: 12 })),
            (&both, &[("Authorization", "")], differs("Authorization", Value::Other { len: 0 })),
            (&custom, &[("X-Egnyte-Auth", "s3cret x")], differs("X-Egnyte-Auth", Value::Other { len: 8 })),
            // Sent twice: refused whatever the values, before they are looked at.
            (
                &both,
                &[("Authorization", "Token s3cret"), ("authorization", "Token s3cret")],
                Cause::Repeated { header: "Authorization" },
            ),
            (
                &custom,
                &[("X-Egnyte-Auth", "a"), ("X-Egnyte-Auth", "b")],
                Cause::Repeated { header: "X-Egnyte-Auth" },
            ),
        ];
        for (i, &(token, headers, expected)) in cases.iter().enumerate() {
            assert_eq!(mismatch(token, headers).cause, expected, "case {i}: {headers:?}");
        }
        // The header that is there is the one described.
        assert_eq!(
            mismatch(&both, &[("Authentication", "x")]).cause,
            differs("Authentication", Value::Other { len: 1 })
        );
    }

    #[test]
    fn every_cause_has_its_own_key_and_line_without_the_token_or_the_value() {
        let both = Token::new(b"Token s3cret".to_vec(), None);
        let only = Token::new(b"Token s3cret".to_vec(), Some("Authorization".into()));
        let cases: [(&Token, Headers<'_>, &str, &str); 5] = [
            (&both, &[], "no header", "no Authorization or Authentication header"),
            (
                &only,
                &[("Authentication", "Token s3cret")],
                "another header",
                "the token came in Authentication, but only Authorization is accepted (--auth-header)",
            ),
            (
                &both,
                &[("Authorization", "Bearer s3cret")],
                "scheme prefix",
                "the Authorization value (13 bytes) differs from the token (12 bytes) in its scheme prefix \
                 only (another scheme, or one missing or extra)",
            ),
            (
                &both,
                &[("Authorization", "wr0ng")],
                "value",
                "the Authorization value (5 bytes) is not the token (12 bytes)",
            ),
            (
                &both,
                &[("Authorization", "a"), ("Authorization", "b")],
                "repeated header",
                "Authorization sent more than once",
            ),
        ];
        let mut keys = Vec::new();
        for (token, headers, kind, line) in cases {
            let found = mismatch(token, headers);
            assert_eq!((found.kind(), found.to_string().as_str()), (kind, line));
            assert!(!line.contains("s3cret") && !line.contains("Bearer") && !line.contains("wr0ng"));
            keys.push(kind);
        }
        keys.dedup();
        assert_eq!(keys.len(), 5, "one key per cause");
        let other = mismatch(&only, &[("Authentication", "Bearer s3cret")]).to_string();
        assert!(other.contains("13 bytes") && !other.contains("s3cret"), "{other}");
    }

    #[test]
    fn credentials_follow_the_scheme() {
        assert_eq!(credentials(b"Token abc"), b"abc");
        assert_eq!(credentials(b"Bearer   abc def"), b"abc def");
        assert_eq!(credentials(b"abc"), b"abc");
        assert_eq!(credentials(b" abc"), b" abc");
        assert_eq!(credentials(b"a=b c"), b"a=b c");
        assert_eq!(credentials(b"Token "), b"");
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
