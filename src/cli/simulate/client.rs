//! A minimal HTTP/1.1 keep-alive client over one `std::net::TcpStream`: just enough to POST a
//! webhook body the way Egnyte does and read the answer.
//!
//! It speaks plain `http://HOST[:PORT]/PATH[?QUERY]` only. **https is not supported**: point the
//! simulator at the receiver itself, or at the plain-HTTP side of the TLS proxy in front of it.
//! A response is read as a status line, headers, and a body framed by `Content-Length`, by
//! `Transfer-Encoding: chunked`, or by the connection's close; 1xx interim responses are
//! skipped. Every read and write is bounded by the request's deadline (`--timeout`) and every
//! size by a named limit, so a broken or hostile peer costs one failed attempt, never a hang.
//!
//! Invariant: after any error the connection is dropped, so the next request starts on a fresh
//! one and never reads the tail of an earlier answer. A connection is kept for the next request
//! only after a complete response that did not say `Connection: close`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Longest status line plus headers accepted; a longer head is a [`ClientError::BadResponse`].
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Longest response body accepted (the receiver's answers are under 100 bytes).
const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Interim (1xx) responses skipped before the real one; more is a broken peer.
const MAX_INTERIM_RESPONSES: usize = 4;
/// Bytes read from the socket per `read` call.
const READ_CHUNK: usize = 8 * 1024;

/// Where requests go, from `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Url {
    /// `HOST:PORT` as given (brackets kept for IPv6), for the `Host` header.
    pub authority: String,
    /// Host and port, resolved when the command line is read.
    pub addr: SocketAddr,
    /// Path and query, as sent in the request line.
    pub target: String,
}

impl Url {
    /// Reads `http://HOST[:PORT][/PATH][?QUERY]` and resolves HOST.
    pub(super) fn parse(url: &str) -> Result<Url, String> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(format!(
                    "{url:?}: https is not supported; point --url at the receiver's plain-HTTP \
                     address (or the TLS proxy's plain-HTTP side), e.g. http://127.0.0.1:8080/egnyte/webhook"
                ))
            }
            _ => return Err(format!("{url:?}: expected http://HOST[:PORT]/PATH")),
        };
        let (authority, target) = match rest.find(['/', '?']) {
            Some(at) if rest.as_bytes()[at] == b'/' => (&rest[..at], rest[at..].to_owned()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_owned()),
        };
        if authority.is_empty() || authority.contains('@') || target.bytes().any(|b| b <= b' ' || b == b'#') {
            return Err(format!(
                "{url:?}: expected http://HOST[:PORT]/PATH (no user info, spaces or fragment)"
            ));
        }
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let with_port = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{url:?}: cannot resolve {authority}: {e}"))?
            .next()
            .ok_or_else(|| format!("{url:?}: {authority} has no address"))?;
        Ok(Url { authority: authority.to_owned(), addr, target })
    }
}

impl fmt::Display for Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}{}", self.authority, self.target)
    }
}

/// Why an attempt got no complete response.
#[derive(Debug)]
#[non_exhaustive]
pub(super) enum ClientError {
    /// The deadline passed before the response was complete.
    Timeout,
    /// Connecting, writing or reading failed, or the peer closed early.
    Network(io::Error),
    /// The peer's bytes are not an HTTP/1.x response this client can read.
    BadResponse(&'static str),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Network(e) => write!(f, "network error: {e}"),
            ClientError::BadResponse(why) => write!(f, "bad response: {why}"),
        }
    }
}

impl std::error::Error for ClientError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ClientError::Network(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> ClientError {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
            _ => ClientError::Network(e),
        }
    }
}

/// One complete response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Response {
    /// The status code.
    pub status: u16,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

/// One keep-alive connection to the URL's address (opened on first use, reopened after errors).
#[derive(Debug)]
pub(super) struct Client {
    url: Url,
    /// `NAME: VALUE\r\n` of the token header, or empty.
    auth_line: String,
    stream: Option<TcpStream>,
    /// Bytes read past the end of the last response (a well-behaved server sends none).
    pending: Vec<u8>,
    head: Vec<u8>,
}

impl Client {
    /// A client for `url` that sends `auth` (header name, value) with every request.
    pub(super) fn new(url: Url, auth: Option<(&str, &str)>) -> Client {
        let auth_line = auth.map_or_else(String::new, |(name, value)| format!("{name}: {value}\r\n"));
        Client { url, auth_line, stream: None, pending: Vec::new(), head: Vec::with_capacity(1024) }
    }

    /// POSTs `body` as `application/json` and reads the whole response, all within `timeout`.
    pub(super) fn post(&mut self, body: &[u8], timeout: Duration) -> Result<Response, ClientError> {
        let deadline = Instant::now() + timeout;
        let result = self.exchange(body, deadline);
        if result.is_err() {
            self.stream = None;
            self.pending.clear();
        }
        result
    }

    fn exchange(&mut self, body: &[u8], deadline: Instant) -> Result<Response, ClientError> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.url.addr, remaining(deadline)?)?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
        }
        self.write_request(body, deadline)?;
        let (status, framing, close) = self.read_head(deadline)?;
        let body = self.read_body(framing, deadline)?;
        if close || framing == Framing::UntilClose {
            self.stream = None;
            self.pending.clear();
        }
        Ok(Response { status, body })
    }

    fn write_request(&mut self, body: &[u8], deadline: Instant) -> Result<(), ClientError> {
        self.head.clear();
        let _ = write!(
            self.head,
            "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: egnyte-receiver-simulate/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n{}\r\n",
            self.url.target,
            self.url.authority,
            env!("CARGO_PKG_VERSION"),
            body.len(),
            self.auth_line,
        );
        let stream = self.stream.as_mut().expect("connected above");
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        stream.write_all(&self.head)?;
        stream.set_write_timeout(Some(remaining(deadline)?))?;
        stream.write_all(body)?;
        Ok(())
    }

    /// Reads one more chunk into `pending`; end of stream is an error (`UnexpectedEof`).
    fn fill(&mut self, deadline: Instant) -> Result<usize, ClientError> {
        let stream = self.stream.as_mut().expect("connected");
        stream.set_read_timeout(Some(remaining(deadline)?))?;
        let start = self.pending.len();
        self.pending.resize(start + READ_CHUNK, 0);
        let read = stream.read(&mut self.pending[start..]);
        self.pending.truncate(start + *read.as_ref().unwrap_or(&0));
        match read? {
            0 => Err(ClientError::Network(io::ErrorKind::UnexpectedEof.into())),
            n => Ok(n),
        }
    }

    /// Reads the status line and headers of the final (non-1xx) response.
    fn read_head(&mut self, deadline: Instant) -> Result<(u16, Framing, bool), ClientError> {
        for _ in 0..=MAX_INTERIM_RESPONSES {
            let end = loop {
                if let Some(at) = find(&self.pending, b"\r\n\r\n") {
                    break at + 4;
                }
                if self.pending.len() > MAX_HEAD_BYTES {
                    return Err(ClientError::BadResponse("response head too long"));
                }
                self.fill(deadline)?;
            };
            let head = parse_head(&self.pending[..end])?;
            self.pending.drain(..end);
            if !(100..200).contains(&head.0) {
                return Ok(head);
            }
        }
        Err(ClientError::BadResponse("too many interim (1xx) responses"))
    }

    fn read_body(&mut self, framing: Framing, deadline: Instant) -> Result<Vec<u8>, ClientError> {
        match framing {
            Framing::Length(length) => {
                if length > MAX_BODY_BYTES {
                    return Err(ClientError::BadResponse("response body too large"));
                }
                while self.pending.len() < length {
                    self.fill(deadline)?;
                }
                Ok(self.pending.drain(..length).collect())
            }
            Framing::Chunked => self.read_chunked(deadline),
            Framing::UntilClose => loop {
                if self.pending.len() > MAX_BODY_BYTES {
                    return Err(ClientError::BadResponse("response body too large"));
                }
                match self.fill(deadline) {
                    Ok(_) => {}
                    Err(ClientError::Network(e)) if e.kind() == io::ErrorKind::UnexpectedEof => {
                        return Ok(std::mem::take(&mut self.pending));
                    }
                    Err(e) => return Err(e),
                }
            },
        }
    }

    /// Reads `SIZE[;ext]\r\nDATA\r\n` chunks up to the last (`0`) one and its trailers.
    fn read_chunked(&mut self, deadline: Instant) -> Result<Vec<u8>, ClientError> {
        let mut body = Vec::new();
        loop {
            let line_end = self.line_end(deadline)?;
            let line = std::str::from_utf8(&self.pending[..line_end]).unwrap_or("");
            let size_text = line.split(';').next().unwrap_or("").trim();
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| ClientError::BadResponse("bad chunk size"))?;
            self.pending.drain(..line_end + 2);
            if size == 0 {
                // Trailers, if any, end with an empty line.
                loop {
                    let end = self.line_end(deadline)?;
                    self.pending.drain(..end + 2);
                    if end == 0 {
                        return Ok(body);
                    }
                }
            }
            if body.len() + size > MAX_BODY_BYTES {
                return Err(ClientError::BadResponse("response body too large"));
            }
            while self.pending.len() < size + 2 {
                self.fill(deadline)?;
            }
            if &self.pending[size..size + 2] != b"\r\n" {
                return Err(ClientError::BadResponse("chunk not followed by CRLF"));
            }
            body.extend(self.pending.drain(..size + 2).take(size));
        }
    }

    /// The position of the next `\r\n` in `pending`, reading more as needed (bounded).
    fn line_end(&mut self, deadline: Instant) -> Result<usize, ClientError> {
        loop {
            if let Some(at) = find(&self.pending, b"\r\n") {
                return Ok(at);
            }
            if self.pending.len() > MAX_HEAD_BYTES {
                return Err(ClientError::BadResponse("chunk line too long"));
            }
            self.fill(deadline)?;
        }
    }
}

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

/// Reads a response head (status line and headers, ending in the blank line): status, body
/// framing, and whether the server closes the connection after it.
fn parse_head(head: &[u8]) -> Result<(u16, Framing, bool), ClientError> {
    let text = std::str::from_utf8(head).map_err(|_| ClientError::BadResponse("head is not UTF-8"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(ClientError::BadResponse("not an HTTP/1.x status line"));
    }
    let status = parts
        .next()
        .filter(|code| code.len() == 3)
        .and_then(|code| code.parse::<u16>().ok())
        .filter(|code| (100..600).contains(code))
        .ok_or(ClientError::BadResponse("bad status code"))?;
    let mut close = version == "HTTP/1.0";
    let mut framing = None;
    for line in lines.take_while(|line| !line.is_empty()) {
        let (name, value) = line.split_once(':').ok_or(ClientError::BadResponse("header without a colon"))?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let length = value.parse().map_err(|_| ClientError::BadResponse("bad Content-Length"))?;
            if framing.is_some_and(|f| f != Framing::Length(length)) {
                return Err(ClientError::BadResponse("conflicting body framing"));
            }
            framing = Some(Framing::Length(length));
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            if !value.eq_ignore_ascii_case("chunked") || framing.is_some() {
                return Err(ClientError::BadResponse("unsupported Transfer-Encoding"));
            }
            framing = Some(Framing::Chunked);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.split(',').any(|token| token.trim().eq_ignore_ascii_case("close"));
        }
    }
    // 1xx, 204 and 304 have no body whatever the headers say.
    let bodiless = (100..200).contains(&status) || status == 204 || status == 304;
    let framing = if bodiless { Framing::Length(0) } else { framing.unwrap_or(Framing::UntilClose) };
    Ok((status, framing, close))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|window| window == needle)
}

/// Time left before `deadline`, or [`ClientError::Timeout`] (a zero timeout would mean "none").
fn remaining(deadline: Instant) -> Result<Duration, ClientError> {
    match deadline.checked_duration_since(Instant::now()) {
        Some(left) if !left.is_zero() => Ok(left),
        _ => Err(ClientError::Timeout),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str, authority: &str, target: &str, port: u16) {
        let parsed = Url::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert_eq!(
            (parsed.authority.as_str(), parsed.target.as_str(), parsed.addr.port()),
            (authority, target, port)
        );
    }

    fn err(url: &str, contains: &str) {
        let error = Url::parse(url).expect_err(url);
        assert!(error.contains(contains), "{url}: {error}");
    }

    #[test]
    fn urls() {
        ok("http://127.0.0.1:8080/egnyte/webhook", "127.0.0.1:8080", "/egnyte/webhook", 8080);
        ok("http://127.0.0.1", "127.0.0.1", "/", 80);
        ok("HTTP://127.0.0.1:9/hook?x=1", "127.0.0.1:9", "/hook?x=1", 9);
        ok("http://127.0.0.1:9?x=1", "127.0.0.1:9", "/?x=1", 9);
        ok("http://[::1]:8080/h", "[::1]:8080", "/h", 8080);
        ok("http://[::1]/h", "[::1]", "/h", 80);
        err("https://127.0.0.1/h", "https is not supported");
        err("ftp://127.0.0.1/h", "expected http://");
        err("127.0.0.1:8080/h", "expected http://");
        err("http:///h", "expected http://");
        err("http://user@127.0.0.1/h", "no user info");
        err("http://127.0.0.1/a b", "no user info");
    }

    #[test]
    fn heads() {
        let head = |text: &str| parse_head(text.as_bytes());
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n").unwrap(),
            (200, Framing::Length(5), false)
        );
        assert_eq!(
            head("HTTP/1.1 503 Busy\r\nconnection: close\r\ncontent-length: 0\r\n\r\n").unwrap(),
            (503, Framing::Length(0), true)
        );
        assert_eq!(
            head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap().1,
            Framing::Chunked
        );
        assert_eq!(head("HTTP/1.0 200 OK\r\n\r\n").unwrap(), (200, Framing::UntilClose, true));
        assert_eq!(
            head("HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n").unwrap().1,
            Framing::Length(0)
        );
        for bad in [
            "HTTP/2 200 OK\r\n\r\n",
            "HTTP/1.1 20 OK\r\n\r\n",
            "HTTP/1.1 999 OK\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            "HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
        ] {
            assert!(matches!(head(bad), Err(ClientError::BadResponse(_))), "{bad:?}");
        }
    }

    /// A one-shot server thread that answers each request on one connection with the next
    /// canned response, then closes.
    fn serve(responses: Vec<&'static str>) -> (Url, std::thread::JoinHandle<usize>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut seen = Vec::new();
            let mut answered = 0;
            let mut buf = [0u8; 4096];
            while answered < responses.len() {
                let n = stream.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
                // Each request here is a head plus a 2-byte body ("[]").
                while let Some(end) = find(&seen, b"\r\n\r\n") {
                    if seen.len() < end + 6 {
                        break;
                    }
                    seen.drain(..end + 6);
                    stream.write_all(responses[answered].as_bytes()).unwrap();
                    answered += 1;
                }
            }
            answered
        });
        (Url::parse(&format!("http://{addr}/hook")).unwrap(), handle)
    }

    #[test]
    fn keeps_the_connection_across_framings() {
        let (url, server) = serve(vec![
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Unavailable\r\nContent-Length: 4\r\n\r\nbusy",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\n{\"a\r\n2\r\n\":\r\n1\r\n1\r\n0\r\nT: 1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        ]);
        let mut client = Client::new(url, Some(("Authorization", "t")));
        let timeout = Duration::from_secs(5);
        assert_eq!(client.post(b"[]", timeout).unwrap(), Response { status: 503, body: b"busy".to_vec() });
        assert_eq!(
            client.post(b"[]", timeout).unwrap(),
            Response { status: 200, body: b"{\"a\":1".to_vec() }
        );
        assert_eq!(client.post(b"[]", timeout).unwrap(), Response { status: 200, body: b"ok".to_vec() });
        assert!(client.stream.is_none(), "Connection: close drops the connection");
        assert_eq!(server.join().unwrap(), 3, "all three on one connection");
    }

    #[test]
    fn a_silent_server_times_out_and_a_closing_one_is_a_network_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = Url::parse(&format!("http://{}/h", listener.local_addr().unwrap())).unwrap();
        let mut client = Client::new(url, None);
        let started = Instant::now();
        let error = client.post(b"[]", Duration::from_millis(200)).unwrap_err();
        assert!(matches!(error, ClientError::Timeout), "{error}");
        assert!(started.elapsed() < Duration::from_secs(3));
        let (stream, _) = listener.accept().unwrap();
        drop(stream);
        // The next connection is accepted and closed without an answer.
        let closer = std::thread::spawn(move || drop(listener.accept().unwrap()));
        let error = client.post(b"[]", Duration::from_secs(2)).unwrap_err();
        closer.join().unwrap();
        assert!(matches!(error, ClientError::Network(_)), "{error}");
    }
}
