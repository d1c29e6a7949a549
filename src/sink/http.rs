//! The `http:` sink (`--sink https://HOST/PATH` or `http://…`): POSTs events to a URL as a JSON
//! array, Egnyte's own shape, so a service written for Egnyte's webhooks takes them unchanged.
//!
//! It owns the URL, an outbound [`Client`] (TLS against the system store or `SSL_CERT_FILE`,
//! `HTTPS_PROXY`/`HTTP_PROXY`/`NO_PROXY`, timeouts: see [`crate::outbound`]) and the signing key.
//!
//! * A batch ([`HttpSink::deliver_batch`]; the worker gathers up to `--http-batch` consecutive
//!   records of one worker, so the order per path holds as for the other sinks) is one POST whose
//!   body is `[EVENT,EVENT,…]`, each event's JSON exactly as journaled. It is all or nothing: a
//!   2xx delivers every event of it; any other status, a timeout or a network error fails the
//!   whole batch, which the worker retries (the same events, the same keys) and finally
//!   dead-letters event by event with the reason.
//! * Every request carries `Idempotency-Key`: the hex of the first 16 bytes of SHA-256 over the
//!   batch's `DOMAIN:EVENT_ID` keys, each followed by a line feed. It is the same for every retry
//!   of a batch and for the same events in another process's life (a restart re-sends from the
//!   checkpoint, and forms the same batch whenever it reads the same records in one turn); a
//!   receiving service that must not see an event twice deduplicates on each event's
//!   `domain`/`eventId` as well.
//! * With `--http-sign-secret-file` (a Standard Webhooks secret, `whsec_` and base64), every
//!   request is signed as <https://www.standardwebhooks.com/> says: `webhook-id` (the
//!   idempotency key), `webhook-timestamp` (Unix seconds of this attempt) and `webhook-signature`
//!   (`v1,` and the base64 of HMAC-SHA256 over `ID.TIMESTAMP.BODY`, with ring, the crypto that
//!   rustls already uses).
//! * User info in the URL (`https://user:password@host/…`) is sent as `Authorization: Basic`,
//!   never in the URL; the sink's name, its errors and its logs show the URL without user info
//!   or query ([`redact_url`]).
//!
//! It never follows a redirect (a 3xx fails the batch) and reads at most 1 MiB of an answer;
//! the reason of a failure quotes at most [`REASON_BODY_CHARS`] characters of the answer's body.

use std::fmt;
use std::io;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ring::{digest, hmac};

use super::Failure;
use crate::outbound::{redact_url, Client, OutboundConfig};

/// Default `--http-batch`: events per POST at most.
pub const DEFAULT_HTTP_BATCH: usize = 100;
/// Largest `--http-batch`.
pub const MAX_HTTP_BATCH: usize = 1000;
/// Default `--http-timeout`: the whole request, from connecting to the answer's last byte.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest connection setup (DNS, TCP, proxy, TLS), or the request timeout if shorter.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Characters of a failed answer's body quoted in the failure's reason.
pub const REASON_BODY_CHARS: usize = 200;

/// One event of a batch.
#[derive(Debug, Clone, Copy)]
pub struct Batched<'a> {
    /// The event's JSON exactly as journaled (one line).
    pub payload: &'a [u8],
    /// Its `DOMAIN:EVENT_ID` ([`Delivery::idempotency_key`](super::Delivery::idempotency_key)).
    pub key: &'a str,
}

/// POSTs events to a URL. See the module docs.
pub struct HttpSink {
    name: String,
    /// The URL requests go to, without user info.
    url: String,
    /// The URL as it may be shown.
    shown: String,
    /// `Basic …` from the URL's user info.
    authorization: Option<String>,
    /// The Standard Webhooks signing key.
    signing: Option<hmac::Key>,
    batch: usize,
    client: Client,
}

impl fmt::Debug for HttpSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Neither the credentials nor the key.
        f.debug_struct("HttpSink")
            .field("name", &self.name)
            .field("url", &self.shown)
            .field("signed", &self.signing.is_some())
            .field("batch", &self.batch)
            .finish_non_exhaustive()
    }
}

impl HttpSink {
    /// A sink POSTing to `url` (`http://` or `https://`), at most `batch` events a request, each
    /// request done within `timeout`, signed with the secret in `secret_file` if given. Fails when
    /// the secret file cannot be read or is not `whsec_` and base64, or when the environment's
    /// TLS or proxy settings are invalid ([`Client::new`]).
    pub fn open(
        name: String,
        url: &str,
        batch: usize,
        timeout: Duration,
        secret_file: Option<&Path>,
    ) -> io::Result<HttpSink> {
        let (url, authorization) = split_user_info(url);
        let signing =
            secret_file.map(read_secret).transpose()?.map(|key| hmac::Key::new(hmac::HMAC_SHA256, &key));
        let config =
            OutboundConfig { connect_timeout: HTTP_CONNECT_TIMEOUT.min(timeout), request_timeout: timeout };
        let client = Client::new(&config)?;
        Ok(HttpSink {
            name,
            shown: redact_url(&url),
            url,
            authorization,
            signing,
            batch: batch.clamp(1, MAX_HTTP_BATCH),
            client,
        })
    }

    /// The spec's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Events per POST at most.
    pub fn batch(&self) -> usize {
        self.batch
    }

    /// POSTs `events` as one JSON array; `Ok` on a 2xx answer. Every failure is the batch's
    /// ([`Failure::event`]: retried, then dead-lettered).
    pub fn deliver_batch(&self, events: &[Batched<'_>]) -> Result<(), Failure> {
        let body = json_array(events);
        let key = idempotency_key(events.iter().map(|e| e.key));
        let timestamp =
            SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs().to_string();
        let signature = self.signing.as_ref().map(|signing| sign(signing, &key, &timestamp, &body));
        let mut headers: Vec<(&str, &str)> =
            vec![("content-type", "application/json"), ("idempotency-key", &key)];
        if let Some(signature) = &signature {
            headers.extend([("webhook-id", key.as_str()), ("webhook-timestamp", &timestamp)]);
            headers.push(("webhook-signature", signature));
        }
        if let Some(authorization) = &self.authorization {
            headers.push(("authorization", authorization));
        }
        match self.client.send("POST", &self.url, &headers, Some(&body)) {
            Ok(response) if response.is_success() => Ok(()),
            Ok(response) => Err(Failure::event(format!(
                "{} answered {}{}",
                self.shown,
                response.status,
                quote(&response.body)
            ))),
            Err(e) => Err(Failure::event(format!("{}: {e}", self.shown))),
        }
    }
}

/// `[A,B,…]` from the events' JSON.
pub fn json_array(events: &[Batched<'_>]) -> Vec<u8> {
    let mut body = Vec::with_capacity(events.iter().map(|e| e.payload.len() + 1).sum::<usize>() + 2);
    body.push(b'[');
    for (n, event) in events.iter().enumerate() {
        if n > 0 {
            body.push(b',');
        }
        body.extend_from_slice(event.payload);
    }
    body.push(b']');
    body
}

/// The hex of the first 16 bytes of SHA-256 over each key and a line feed.
pub fn idempotency_key<'a>(keys: impl IntoIterator<Item = &'a str>) -> String {
    let mut context = digest::Context::new(&digest::SHA256);
    for key in keys {
        context.update(key.as_bytes());
        context.update(b"\n");
    }
    context.finish().as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// `v1,` and the base64 of HMAC-SHA256(`id.timestamp.body`) (Standard Webhooks).
pub fn sign(key: &hmac::Key, id: &str, timestamp: &str, body: &[u8]) -> String {
    let mut context = hmac::Context::with_key(key);
    for part in [id.as_bytes(), b".", timestamp.as_bytes(), b".", body] {
        context.update(part);
    }
    format!("v1,{}", BASE64.encode(context.sign().as_ref()))
}

/// The key bytes of a Standard Webhooks secret: `whsec_` and base64 (surrounding whitespace
/// ignored). The error names the file, never its content.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = text.trim().strip_prefix("whsec_").ok_or("not a Standard Webhooks secret (whsec_…)")?;
    let key = BASE64.decode(encoded).map_err(|_| "whsec_ is not followed by base64")?;
    if key.len() < 16 {
        return Err("the secret is shorter than 16 bytes");
    }
    Ok(key)
}

/// Reads and parses a secret file.
fn read_secret(path: &Path) -> io::Result<Vec<u8>> {
    let what = |e: &dyn fmt::Display| format!("--http-sign-secret-file {}: {e}", path.display());
    let text = std::fs::read_to_string(path).map_err(|e| io::Error::new(e.kind(), what(&e)))?;
    parse_secret(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, what(&e)))
}

/// The URL without user info, and `Basic …` from the user info (percent-decoded) if any.
fn split_user_info(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else { return (url.to_string(), None) };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let Some((user_info, host)) = rest[..authority_end].rsplit_once('@') else {
        return (url.to_string(), None);
    };
    let credentials = percent_decode(user_info);
    let authorization = format!("Basic {}", BASE64.encode(credentials));
    (format!("{scheme}://{host}{}", &rest[authority_end..]), Some(authorization))
}

/// `%XX` decoded (an invalid escape is kept as it is).
fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(high), Some(low)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((high * 16 + low) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// `: BODY` with at most [`REASON_BODY_CHARS`] characters of an answer's body on one line, or
/// nothing for an empty body.
fn quote(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String =
        text.trim().chars().take(REASON_BODY_CHARS).map(|c| if c.is_control() { ' ' } else { c }).collect();
    if text.is_empty() {
        String::new()
    } else {
        format!(": {text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_is_a_json_array_of_the_events_as_journaled() {
        let events =
            [Batched { payload: br#"{"a":1}"#, key: "d:1" }, Batched { payload: br#"{"b":2}"#, key: "d:2" }];
        assert_eq!(json_array(&events), br#"[{"a":1},{"b":2}]"#);
        assert_eq!(json_array(&events[..1]), br#"[{"a":1}]"#);
    }

    #[test]
    fn the_idempotency_key_depends_on_the_events_and_their_order_only() {
        let key = idempotency_key(["acme:1", "acme:2"]);
        assert_eq!(key.len(), 32);
        assert!(key.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_eq!(key, idempotency_key(["acme:1", "acme:2"]));
        assert_ne!(key, idempotency_key(["acme:2", "acme:1"]));
        assert_ne!(key, idempotency_key(["acme:1acme:2"]));
        // SHA-256("acme:1\n") begins so (as `printf 'acme:1\n' | sha256sum`).
        let expected = digest::digest(&digest::SHA256, b"acme:1\n");
        let hex: String = expected.as_ref()[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(idempotency_key(["acme:1"]), hex);
    }

    #[test]
    fn signatures_match_the_standard_webhooks_example() {
        // The example of the Standard Webhooks libraries' tests.
        let key = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n").unwrap();
        let key = hmac::Key::new(hmac::HMAC_SHA256, &key);
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            sign(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn bad_secrets_are_refused_without_showing_them() {
        assert!(parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(parse_secret("whsec_!!!").is_err());
        assert!(parse_secret("whsec_c2hvcnQ=").is_err(), "5 bytes");
        let temp = crate::test_dir::TempDir::new("http-secret");
        let file = temp.path().join("secret");
        std::fs::write(&file, "whsec_not base64 s3cr3t").unwrap();
        let error = read_secret(&file).unwrap_err().to_string();
        assert!(error.starts_with("--http-sign-secret-file ") && !error.contains("s3cr3t"), "{error}");
        assert!(read_secret(&temp.path().join("missing")).is_err());
    }

    #[test]
    fn user_info_becomes_basic_authorization() {
        let (url, authorization) = split_user_info("https://svc:p%40ss@hooks.internal:8443/in?x=1");
        assert_eq!(url, "https://hooks.internal:8443/in?x=1");
        assert_eq!(authorization.as_deref(), Some(format!("Basic {}", BASE64.encode("svc:p@ss")).as_str()));
        assert_eq!(split_user_info("http://h/p?mail=a@b"), ("http://h/p?mail=a@b".to_string(), None));
        assert_eq!(percent_decode("a%2"), b"a%2");
        assert_eq!(percent_decode("%41%zz%"), b"A%zz%");
    }

    #[test]
    fn a_failure_quotes_a_short_line_of_the_answer() {
        assert_eq!(quote(b""), "");
        assert_eq!(quote(b" busy\r\ntry later \n"), ": busy  try later");
        assert_eq!(quote(&[b'x'; 500]).len(), 2 + REASON_BODY_CHARS);
    }
}
