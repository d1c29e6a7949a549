//! The one outbound HTTP client: the Egnyte API (`egnyte-receiver webhook …`) and the `http:`
//! sink both send through a [`Client`].
//!
//! It is blocking (ureq 3: no async runtime; callers are plain threads), and:
//! * verifies TLS (rustls, ring) against the system trust store (the files openssl-probe finds:
//!   `/etc/ssl/certs/ca-certificates.crt` on Debian), or, when `SSL_CERT_FILE` (a PEM bundle)
//!   and/or `SSL_CERT_DIR` (colon-separated directories of PEM files) are set, against those
//!   instead, as OpenSSL and curl do: a corporate CA goes into the system store
//!   (`update-ca-certificates`) or into a bundle named by `SSL_CERT_FILE`;
//! * goes through the proxy the environment names: `HTTPS_PROXY` (or `https_proxy`) for `https://`
//!   URLs, `HTTP_PROXY` (or `http_proxy`) for `http://` ones, `ALL_PROXY` for both when the
//!   scheme's own is unset; an HTTP proxy is asked to `CONNECT` (a tunnel) for either scheme. Hosts
//!   matching `NO_PROXY` (comma-separated: `*`, `host` (and its subdomains), `.domain`,
//!   `*.domain`; no CIDR ranges or ports) are reached directly;
//! * bounds the connection (DNS, TCP, proxy, TLS handshake) by
//!   [`OutboundConfig::connect_timeout`] and the whole exchange (response body included) by
//!   [`OutboundConfig::request_timeout`];
//! * follows no redirect (a 3xx is returned as is: a bearer token never follows one elsewhere)
//!   and returns every status, 2xx or not, as a [`Response`];
//! * never puts a request header (a token), a request body or a URL's user info or query into an
//!   [`OutboundError`] ([`redact_url`] is what may be shown of a URL).

use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ureq::http;
use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
use ureq::{Agent, Proxy};

/// Timeouts of a [`Client`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Connection setup: DNS, TCP, the proxy's CONNECT and the TLS handshake.
    pub connect_timeout: Duration,
    /// The whole exchange, from DNS to the last byte of the response body.
    pub request_timeout: Duration,
}

impl Default for OutboundConfig {
    /// 10 s to connect, 30 s for the whole request.
    fn default() -> OutboundConfig {
        OutboundConfig { connect_timeout: Duration::from_secs(10), request_timeout: Duration::from_secs(30) }
    }
}

/// The largest response body [`Client::send`] reads; a larger one is an error.
pub const MAX_RESPONSE_BODY: u64 = 1 << 20;

/// What `User-Agent` requests carry.
pub const USER_AGENT: &str = concat!("egnyte-receiver/", env!("CARGO_PKG_VERSION"));

/// An HTTP(S) client: cheap to share (`&Client` from several threads), keeps idle connections for
/// reuse.
pub struct Client {
    /// For `https://` URLs (through `HTTPS_PROXY` or `ALL_PROXY`).
    https: Agent,
    /// For `http://` URLs (through `HTTP_PROXY` or `ALL_PROXY`).
    http: Agent,
    /// No trusted CA was found: an `https://` request fails at once, saying so.
    no_roots: bool,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").field("no_roots", &self.no_roots).finish_non_exhaustive()
    }
}

/// A response, whatever its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code (200, 404, 500…).
    pub status: u16,
    /// The headers in the order received, names in lower case; a value that is not UTF-8 is
    /// taken lossily.
    pub headers: Vec<(String, String)>,
    /// The body, at most [`MAX_RESPONSE_BODY`] bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True for a 2xx status.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Why no response came. Its `Display` is one line and never contains a request header, a
/// request body or a URL's user info or query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutboundError {
    /// The connect or request timeout passed.
    Timeout,
    /// No connection: the host is unknown, refused it, or the proxy failed.
    Connect(String),
    /// The TLS handshake failed (an untrusted or invalid certificate, no trusted CA…).
    Tls(String),
    /// The connection broke, the answer was not HTTP, or its body was too large.
    Io(String),
    /// The URL (or a request header) is not valid.
    Url(String),
}

impl fmt::Display for OutboundError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (what, detail) = match self {
            OutboundError::Timeout => return f.write_str("timed out"),
            OutboundError::Connect(detail) => ("cannot connect", detail),
            OutboundError::Tls(detail) => ("TLS failed", detail),
            OutboundError::Io(detail) => ("HTTP exchange failed", detail),
            OutboundError::Url(detail) => ("bad request", detail),
        };
        // One line, whatever a lower layer's message holds.
        write!(f, "{what}: {}", detail.replace(['\r', '\n'], " "))
    }
}

impl std::error::Error for OutboundError {}

impl Client {
    /// A client with the trust store and proxies the process environment names (see the
    /// module's doc). Fails when `SSL_CERT_FILE`/`SSL_CERT_DIR` are set but give no certificate
    /// or cannot be read, or when a proxy variable is not a valid proxy URL (the error names the
    /// variable, not its value, which may hold a password). An empty system store is not an
    /// error here (an `http://` URL needs none): `https://` requests then fail with
    /// [`OutboundError::Tls`] saying so.
    pub fn new(config: &OutboundConfig) -> io::Result<Client> {
        Client::from_env(config, &|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`Client::new`] reading its variables through `env` (tests pass a map, not the process's
    /// environment).
    fn from_env(config: &OutboundConfig, env: &dyn Fn(&str) -> Option<String>) -> io::Result<Client> {
        let roots = trusted_roots(env)?;
        let no_roots = roots.is_empty();
        let no_proxy = no_proxy_entries(env);
        let https_proxy = proxy(env, &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"], &no_proxy)?;
        let http_proxy = proxy(env, &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"], &no_proxy)?;
        let roots = RootCerts::Specific(Arc::new(roots));
        let agent = |proxy: Option<Proxy>| -> Agent {
            let tls = TlsConfig::builder().provider(TlsProvider::Rustls).root_certs(roots.clone()).build();
            Agent::config_builder()
                .timeout_connect(Some(config.connect_timeout))
                .timeout_global(Some(config.request_timeout))
                .http_status_as_error(false)
                .max_redirects(0)
                .user_agent(USER_AGENT)
                .proxy(proxy)
                .tls_config(tls)
                .build()
                .into()
        };
        Ok(Client { https: agent(https_proxy), http: agent(http_proxy), no_roots })
    }

    /// Sends one request and reads its response (body up to [`MAX_RESPONSE_BODY`]). A non-2xx
    /// status is `Ok`; `Err` means no (whole) response came. `headers` are sent as given
    /// (`Host`, `Content-Length` and `User-Agent` are set by the client); `body`, when given, is
    /// sent with a `Content-Length`.
    pub fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<Response, OutboundError> {
        let agent = match url.split_once("://").map(|(scheme, _)| scheme.to_ascii_lowercase()).as_deref() {
            Some("https") if self.no_roots => {
                return Err(OutboundError::Tls(
                    "no trusted CA certificate (install ca-certificates, or set SSL_CERT_FILE)".into(),
                ))
            }
            Some("https") => &self.https,
            Some("http") => &self.http,
            _ => {
                return Err(OutboundError::Url(format!(
                    "not an http:// or https:// URL: {}",
                    redact_url(url)
                )))
            }
        };
        let method = http::Method::from_bytes(method.as_bytes())
            .map_err(|_| OutboundError::Url(format!("bad method {method:?}")))?;
        let uri: http::Uri =
            url.parse().map_err(|_| OutboundError::Url(format!("bad URL {}", redact_url(url))))?;
        let mut builder = http::Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            let name = http::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| OutboundError::Url(format!("bad header name {name:?}")))?;
            // The value may be a token: the error names the header only.
            let value = http::HeaderValue::from_str(value)
                .map_err(|_| OutboundError::Url(format!("bad value for header {name}")))?;
            builder = builder.header(name, value);
        }
        let sent = match body {
            Some(body) => builder.body(body).map(|request| agent.run(request)),
            None => builder.body(()).map(|request| agent.run(request)),
        };
        let mut response =
            sent.map_err(|_| OutboundError::Url("cannot build the request".into()))?.map_err(error)?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (name.as_str().to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned())
            })
            .collect();
        let body = response.body_mut().with_config().limit(MAX_RESPONSE_BODY).read_to_vec().map_err(error)?;
        Ok(Response { status, headers, body })
    }
}

/// A ureq error as an [`OutboundError`]. ureq's messages name no header or body; `BadUri`'s, which
/// may hold the URL, is not passed on.
fn error(e: ureq::Error) -> OutboundError {
    use ureq::Error as E;
    match e {
        E::Timeout(_) => OutboundError::Timeout,
        E::HostNotFound => OutboundError::Connect("host not found".into()),
        E::ConnectionFailed => OutboundError::Connect("connection failed".into()),
        E::ConnectProxyFailed(detail) => OutboundError::Connect(format!("proxy: {detail}")),
        E::Io(e) if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) => {
            OutboundError::Tls(e.to_string())
        }
        E::Io(e) => match e.kind() {
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => OutboundError::Timeout,
            io::ErrorKind::ConnectionRefused
            | io::ErrorKind::AddrNotAvailable
            | io::ErrorKind::HostUnreachable
            | io::ErrorKind::NetworkUnreachable => OutboundError::Connect(e.to_string()),
            _ => OutboundError::Io(e.to_string()),
        },
        E::Tls(detail) => OutboundError::Tls(detail.to_string()),
        E::Rustls(e) => OutboundError::Tls(e.to_string()),
        E::Pem(_) | E::TlsRequired | E::RequireHttpsOnly(_) => OutboundError::Tls("TLS setup failed".into()),
        E::BadUri(_) | E::Http(_) => OutboundError::Url("bad URL or header".into()),
        E::BodyExceedsLimit(_) => OutboundError::Io(format!("response body over {MAX_RESPONSE_BODY} bytes")),
        E::InvalidProxyUrl => OutboundError::Connect("invalid proxy URL".into()),
        other => OutboundError::Io(other.to_string()),
    }
}

/// What of `url` may be shown (in logs, errors, a sink's name): scheme, host, port and path,
/// without user info, query or fragment.
pub fn redact_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or_default();
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    format!("{scheme}://{host}{path}")
}

/// The trust anchors: from `SSL_CERT_FILE`/`SSL_CERT_DIR` when either is set (an error if they
/// give none or cannot be read), else the system store (possibly empty).
fn trusted_roots(env: &dyn Fn(&str) -> Option<String>) -> io::Result<Vec<Certificate<'static>>> {
    let file = env("SSL_CERT_FILE");
    let dirs = env("SSL_CERT_DIR");
    let loaded = if file.is_none() && dirs.is_none() {
        let loaded = rustls_native_certs::load_native_certs();
        if !loaded.errors.is_empty() {
            log::debug!("system trust store: {:?}", loaded.errors);
        }
        if loaded.certs.is_empty() {
            log::warn!("no trusted CA certificate in the system store: https:// requests will fail");
        }
        loaded.certs
    } else {
        let mut certs = Vec::new();
        let mut load = |file: Option<&Path>, dir: Option<&Path>, what: &str| -> io::Result<()> {
            let loaded = rustls_native_certs::load_certs_from_paths(file, dir);
            if let Some(e) = loaded.errors.first() {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {e}")));
            }
            certs.extend(loaded.certs);
            Ok(())
        };
        if let Some(file) = &file {
            load(Some(Path::new(file)), None, &format!("SSL_CERT_FILE {file}"))?;
        }
        for dir in dirs.iter().flat_map(|dirs| dirs.split(':')).filter(|d| !d.is_empty()) {
            load(None, Some(Path::new(dir)), &format!("SSL_CERT_DIR {dir}"))?;
        }
        if certs.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "SSL_CERT_FILE/SSL_CERT_DIR hold no PEM certificate",
            ));
        }
        certs
    };
    Ok(loaded.into_iter().map(|der| Certificate::from_der(der.as_ref()).to_owned()).collect())
}

/// `NO_PROXY` (or `no_proxy`) as ureq entries: each name trimmed; a plain `host` also matches
/// its subdomains and `.domain` the domain itself, as in curl.
fn no_proxy_entries(env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let Some(list) = env("NO_PROXY").or_else(|| env("no_proxy")) else { return Vec::new() };
    let mut entries = Vec::new();
    for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let host = entry.trim_start_matches("*.").trim_start_matches('.');
        if entry == "*" || host.is_empty() {
            entries.push("*".to_string());
            continue;
        }
        entries.push(host.to_string());
        entries.push(format!(".{host}"));
    }
    entries
}

/// The proxy the first set variable of `names` names, with the `NO_PROXY` entries.
fn proxy(
    env: &dyn Fn(&str) -> Option<String>,
    names: &[&str],
    no_proxy: &[String],
) -> io::Result<Option<Proxy>> {
    let Some((name, value)) = names.iter().find_map(|name| env(name).map(|value| (*name, value))) else {
        return Ok(None);
    };
    // The value may hold a password: the error names the variable only.
    let invalid = || io::Error::new(io::ErrorKind::InvalidInput, format!("{name} is not a valid proxy URL"));
    let parsed = Proxy::new(&value).map_err(|_| invalid())?;
    let mut builder = Proxy::builder(parsed.protocol()).host(parsed.host()).port(parsed.port());
    if let Some(user) = parsed.username() {
        builder = builder.username(user);
    }
    if let Some(password) = parsed.password() {
        builder = builder.password(password);
    }
    for entry in no_proxy {
        builder = builder.no_proxy(entry);
    }
    builder.build().map(Some).map_err(|_| invalid())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc;
    use std::thread;

    /// A client whose environment is `vars` only.
    fn client_with(vars: &[(&str, &str)], config: OutboundConfig) -> io::Result<Client> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Client::from_env(&config, &move |name| vars.get(name).cloned())
    }

    fn client(vars: &[(&str, &str)]) -> Client {
        client_with(vars, OutboundConfig::default()).unwrap()
    }

    /// One request as a test server saw it.
    #[derive(Debug)]
    struct Seen {
        /// The request line.
        line: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    /// Reads one request (Content-Length bodies only) from `reader`.
    fn read_request(reader: &mut impl BufRead) -> Option<Seen> {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).ok()?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let (name, value) = header.split_once(':')?;
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
        let length =
            headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        Some(Seen { line: line.trim_end().to_string(), headers, body })
    }

    /// A loopback HTTP server answering each connection's requests with `answer`, reporting
    /// each request on the channel.
    fn serve(answer: &'static [u8]) -> (String, mpsc::Receiver<Seen>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (seen, requests) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let seen = seen.clone();
                thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    while let Some(request) = read_request(&mut reader) {
                        if seen.send(request).is_err() {
                            return;
                        }
                        if stream.write_all(answer).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (address, requests)
    }

    #[test]
    fn posts_and_reads_the_response() {
        let (address, requests) =
            serve(b"HTTP/1.1 201 Created\r\nX-Thing: yes\r\nContent-Length: 5\r\n\r\nhello");
        let client = client(&[]);
        let url = format!("http://{address}/hook?x=1");
        let response = client
            .send("POST", &url, &[("content-type", "application/json"), ("X-Custom", "v")], Some(b"[1,2]"))
            .unwrap();
        assert_eq!((response.status, response.body.as_slice()), (201, &b"hello"[..]));
        assert_eq!(response.header("x-THING"), Some("yes"));
        assert!(response.is_success());
        let seen = requests.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(seen.line, "POST /hook?x=1 HTTP/1.1");
        assert_eq!(seen.body, b"[1,2]");
        let header = |name: &str| seen.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.clone());
        assert_eq!(header("x-custom").as_deref(), Some("v"));
        assert_eq!(header("content-type").as_deref(), Some("application/json"));
        assert_eq!(header("user-agent").as_deref(), Some(USER_AGENT));
        assert_eq!(header("content-length").as_deref(), Some("5"));
        // A GET without a body; the connection is reused.
        let response = client.send("GET", &format!("http://{address}/"), &[], None).unwrap();
        assert_eq!(response.status, 201);
        assert_eq!(requests.recv_timeout(Duration::from_secs(5)).unwrap().line, "GET / HTTP/1.1");
    }

    #[test]
    fn a_non_2xx_status_is_a_response_and_redirects_are_not_followed() {
        let (address, _requests) = serve(b"HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad");
        let response = client(&[]).send("POST", &format!("http://{address}/"), &[], Some(b"{}")).unwrap();
        assert_eq!(
            (response.status, response.body.as_slice(), response.is_success()),
            (500, &b"bad"[..], false)
        );
        let (address, _requests) =
            serve(b"HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/\r\nContent-Length: 0\r\n\r\n");
        let response = client(&[]).send("GET", &format!("http://{address}/"), &[], None).unwrap();
        assert_eq!(response.status, 302);
    }

    #[test]
    fn a_response_body_over_the_limit_is_an_error() {
        let mut answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n".to_vec();
        answer.resize(answer.len() + 2_000_000, b'x');
        let (address, _requests) = serve(answer.leak());
        let error = client(&[]).send("GET", &format!("http://{address}/"), &[], None).unwrap_err();
        assert!(matches!(&error, OutboundError::Io(m) if m.contains("over 1048576 bytes")), "{error}");
    }

    #[test]
    fn the_request_timeout_bounds_a_server_that_never_answers() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let hold = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            thread::sleep(Duration::from_secs(3));
            drop(stream);
        });
        let config = OutboundConfig {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_millis(500),
        };
        let started = std::time::Instant::now();
        let error =
            client_with(&[], config).unwrap().send("POST", &format!("http://{address}/"), &[], Some(b"x"));
        assert_eq!(error.unwrap_err(), OutboundError::Timeout);
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
        hold.join().unwrap();
    }

    #[test]
    fn connection_refused_is_a_connect_error() {
        // A port just freed: nothing listens there.
        let address = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let error = client(&[]).send("GET", &format!("http://{address}/"), &[], None).unwrap_err();
        assert!(matches!(error, OutboundError::Connect(_)), "{error:?}");
        assert!(error.to_string().starts_with("cannot connect: "), "{error}");
    }

    #[test]
    fn errors_never_show_tokens_user_info_or_queries() {
        let client = client(&[]);
        let secret = "s3cr3t";
        for (url, headers) in [
            (format!("ftp://user:{secret}@host/p?token={secret}"), vec![]),
            (format!("http://user:{secret}@exa mple/p?token={secret}"), vec![]),
            ("http://127.0.0.1:1/".to_string(), vec![("Authorization", "Bearer s3cr3t\r\n")]),
            ("http://127.0.0.1:1/".to_string(), vec![("Bad Name", secret)]),
        ] {
            let error = client.send("GET", &url, &headers, None).unwrap_err();
            let shown = format!("{error} {error:?}");
            assert!(!shown.contains(secret) && !shown.contains('\n'), "{shown}");
        }
        assert_eq!(redact_url("https://u:p@h.example:8443/a/b?token=x#f"), "https://h.example:8443/a/b");
        assert_eq!(redact_url("http://h"), "http://h");
        assert_eq!(redact_url("nonsense"), "nonsense");
    }

    /// A loopback HTTP CONNECT proxy: reports each CONNECT target, then tunnels.
    fn connect_proxy() -> (String, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let (seen, targets) = mpsc::channel();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(client) = stream else { return };
                let seen = seen.clone();
                thread::spawn(move || {
                    let mut reader = BufReader::new(client.try_clone().unwrap());
                    let request = read_request(&mut reader).unwrap();
                    let target = request.line.split(' ').nth(1).unwrap().to_string();
                    let _ = seen.send(request.line.clone());
                    let upstream = TcpStream::connect(&target).unwrap();
                    let mut client_out = client;
                    client_out.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n").unwrap();
                    let mut upstream_in = upstream.try_clone().unwrap();
                    let mut client_in = client_out.try_clone().unwrap();
                    let mut upstream_out = upstream;
                    // Bytes the reader buffered past the CONNECT head belong upstream.
                    let buffered = reader.buffer().to_vec();
                    upstream_out.write_all(&buffered).unwrap();
                    thread::spawn(move || {
                        let _ = io::copy(&mut reader, &mut upstream_out);
                    });
                    let _ = io::copy(&mut upstream_in, &mut client_in);
                    let _ = &mut client_out;
                });
            }
        });
        (address, targets)
    }

    #[test]
    fn http_proxy_routes_http_requests_and_no_proxy_bypasses_it() {
        let (server, requests) = serve(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        let (proxy, connects) = connect_proxy();
        let proxy_url = format!("http://{proxy}");
        let via_proxy = client(&[("HTTP_PROXY", &proxy_url)]);
        let response = via_proxy.send("GET", &format!("http://{server}/x"), &[], None).unwrap();
        assert_eq!(response.body, b"ok");
        assert_eq!(
            connects.recv_timeout(Duration::from_secs(5)).unwrap(),
            format!("CONNECT {server} HTTP/1.1")
        );
        assert_eq!(requests.recv_timeout(Duration::from_secs(5)).unwrap().line, "GET /x HTTP/1.1");
        // HTTPS_PROXY is for https:// URLs only.
        let https_only = client(&[("HTTPS_PROXY", &proxy_url)]);
        https_only.send("GET", &format!("http://{server}/y"), &[], None).unwrap();
        assert_eq!(requests.recv_timeout(Duration::from_secs(5)).unwrap().line, "GET /y HTTP/1.1");
        // NO_PROXY (spaces allowed) sends 127.0.0.1 directly.
        let bypass = client(&[("HTTP_PROXY", &proxy_url), ("NO_PROXY", "example.com, 127.0.0.1")]);
        bypass.send("GET", &format!("http://{server}/z"), &[], None).unwrap();
        assert_eq!(requests.recv_timeout(Duration::from_secs(5)).unwrap().line, "GET /z HTTP/1.1");
        assert!(connects.recv_timeout(Duration::from_millis(200)).is_err(), "no CONNECT for /y or /z");
        // ALL_PROXY serves both schemes.
        let all = client(&[("ALL_PROXY", &proxy_url)]);
        all.send("GET", &format!("http://{server}/w"), &[], None).unwrap();
        assert!(connects.recv_timeout(Duration::from_secs(5)).is_ok());
    }

    #[test]
    fn a_bad_proxy_variable_is_named_without_its_value() {
        let error = client_with(&[("HTTPS_PROXY", "ftp://user:s3cr3t@proxy:1")], OutboundConfig::default())
            .unwrap_err()
            .to_string();
        assert_eq!(error, "HTTPS_PROXY is not a valid proxy URL");
    }

    #[test]
    fn no_proxy_entries_follow_curl() {
        let vars = |list: &'static str| move |name: &str| (name == "no_proxy").then(|| list.to_string());
        assert_eq!(
            no_proxy_entries(&vars(" a.example , .b.example,*.c.example,,*")),
            ["a.example", ".a.example", "b.example", ".b.example", "c.example", ".c.example", "*"]
        );
        assert!(no_proxy_entries(&|_| None).is_empty());
    }

    #[test]
    fn ssl_cert_file_replaces_the_system_store_and_must_hold_certificates() {
        let temp = crate::test_dir::TempDir::new("outbound-roots");
        let pki = testing::Pki::new(temp.path());
        let roots =
            trusted_roots(&|name| (name == "SSL_CERT_FILE").then(|| pki.ca.display().to_string())).unwrap();
        assert_eq!(roots.len(), 1);
        let empty = temp.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        let error = trusted_roots(&|name| (name == "SSL_CERT_FILE").then(|| empty.display().to_string()));
        assert!(error.unwrap_err().to_string().contains("no PEM certificate"));
        let missing = |name: &str| (name == "SSL_CERT_FILE").then(|| "/no/such/ca.pem".to_string());
        assert!(trusted_roots(&missing)
            .unwrap_err()
            .to_string()
            .starts_with("SSL_CERT_FILE /no/such/ca.pem: "));
        let dir =
            |name: &str| (name == "SSL_CERT_DIR").then(|| format!("/no/such/dir:{}", pki.dir.display()));
        assert!(trusted_roots(&dir).is_err(), "a missing directory is an error");
    }

    #[test]
    fn https_is_verified_against_ssl_cert_file() {
        let temp = crate::test_dir::TempDir::new("outbound-tls");
        let pki = testing::Pki::new(temp.path());
        let address = testing::tls_server(&pki, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nsecure");
        let ca = pki.ca.display().to_string();
        let trusting = client(&[("SSL_CERT_FILE", &ca)]);
        let response =
            trusting.send("GET", &format!("https://localhost:{}/", address.port()), &[], None).unwrap();
        assert_eq!(response.body, b"secure");
        // The system store does not know the test CA.
        let error = client(&[]).send("GET", &format!("https://localhost:{}/", address.port()), &[], None);
        assert!(matches!(&error, Err(OutboundError::Tls(m)) if m.contains("UnknownIssuer")), "{error:?}");
        // Nor does a store of another CA; and the name must match the certificate.
        let other = testing::Pki::new(&temp.path().join("other"));
        let other_ca = other.ca.display().to_string();
        let error = client(&[("SSL_CERT_FILE", &other_ca)]).send(
            "GET",
            &format!("https://localhost:{}/", address.port()),
            &[],
            None,
        );
        assert!(matches!(error, Err(OutboundError::Tls(_))), "{error:?}");
        let error = trusting.send("GET", &format!("https://127.0.0.1:{}/", address.port()), &[], None);
        assert!(
            matches!(&error, Err(OutboundError::Tls(m)) if m.contains("not valid for name")),
            "{error:?}"
        );
        // Through an HTTPS_PROXY: a CONNECT tunnel, verified end to end.
        let (proxy, connects) = connect_proxy();
        let proxied = client(&[("SSL_CERT_FILE", &ca), ("HTTPS_PROXY", &format!("http://{proxy}"))]);
        let response =
            proxied.send("GET", &format!("https://localhost:{}/", address.port()), &[], None).unwrap();
        assert_eq!(response.body, b"secure");
        let connect = connects.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(connect, format!("CONNECT localhost:{} HTTP/1.1", address.port()));
    }
}

/// Test helpers shared with the `http:` sink's tests: a CA and a `localhost` certificate made
/// with the `openssl` command, and a TLS server (rustls) answering with fixed bytes.
#[cfg(test)]
pub(crate) mod testing {
    use std::io::{BufRead, BufReader, Write};
    use std::net::{SocketAddr, TcpListener};
    use std::sync::Arc;
    use std::thread;

    pub(crate) use crate::test_dir::Pki;

    /// A loopback TLS server with `pki`'s certificate: reads each request's head (and a
    /// Content-Length body) and answers `answer`.
    pub(crate) fn tls_server(pki: &Pki, answer: &'static [u8]) -> SocketAddr {
        let config = pki.server_config();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { return };
                let config = Arc::clone(&config);
                thread::spawn(move || {
                    let Ok(mut connection) = rustls::ServerConnection::new(config) else { return };
                    let mut tls = rustls::Stream::new(&mut connection, &mut stream);
                    let mut reader = BufReader::new(&mut tls);
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        match reader.read_line(&mut line) {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0; length];
                    if std::io::Read::read_exact(&mut reader, &mut body).is_err() {
                        return;
                    }
                    drop(reader);
                    let _ = tls.write_all(answer);
                    let _ = tls.flush();
                });
            }
        });
        address
    }
}
