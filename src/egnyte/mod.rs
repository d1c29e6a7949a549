//! Egnyte's webhook management API: register, list, read, enable, disable and delete webhooks,
//! over the one outbound HTTP client ([`crate::outbound::Client`]).
//!
//! Egnyte disables a webhook after repeated failed deliveries, and "your app can re-enable it
//! with a request to the webhook status API": this module is how the receiver does that
//! (`serve --webhook-id`, see `serve/watch.rs`) and how the `webhook` command manages
//! registrations.
//!
//! # The API, as far as it is known
//!
//! Egnyte documents the registration body and response and the existence of a status API;
//! the other paths come from third-party SDKs. So answers are read leniently (unknown fields
//! ignored, `expires` as a number or a numeric string, a list as an array or under `webhooks`).
//!
//! | call | request | answer |
//! |---|---|---|
//! | [`Api::register`] | `POST /pubapi/v1/webhooks` `{"url","eventType":[…],"path":"a, b","authHeader"}` | `{"webhookId","expires","status"}` (201) |
//! | [`Api::list`] | `GET /pubapi/v1/webhooks` | `[{"webhookId","expires","status"}, …]` |
//! | [`Api::details`] | `GET /pubapi/v1/webhooks/{id}/details` | adds `url`, `eventType`, `path`, `authHeader` |
//! | [`Api::status`] | `GET /pubapi/v1/webhooks/{id}/status` | `{"webhookId","expires","status"}` |
//! | [`Api::set_status`] | `POST /pubapi/v1/webhooks/{id}/status` `{"status":"enabled"\|"disabled"}` | the same |
//! | [`Api::delete`] | `DELETE /pubapi/v1/webhooks/{id}` | 204 |
//!
//! * Every call carries `Authorization: Bearer TOKEN` ([`ApiToken`]). The token is never in an
//!   error, a log line or `Debug` output; error texts are also scrubbed of it, whatever produced
//!   them.
//! * `status` is `enabled` or `disabled`; `expires` is a Unix time in seconds.
//! * Throttling is 403 with `X-Mashery-Error-Code: ERR_403_DEVELOPER_OVER_QPS` (about 2 calls a
//!   second) or `ERR_403_DEVELOPER_OVER_RATE` (about 1,000 calls a day, per token) and
//!   `Retry-After` seconds, with a non-JSON body; some clients get 429 instead. Both are
//!   [`ApiError::RateLimited`]: a 403 without that header is a refusal.
//! * Any other non-2xx is [`ApiError::Refused`] with Egnyte's error text, whichever of its
//!   error shapes the body has (see `answer.rs`).
//!
//! # Retries
//!
//! [`Retry`] bounds them. A throttled call was not processed, so it is sent again after
//! `Retry-After` (at least 1 s) when that is within [`Retry::max_wait`]; a daily quota that
//! resets in hours is reported at once. No answer, or a 502/503/504, is retried after 1 s,
//! 2 s, 4 s… for calls that are safe to repeat; a registration is repeated only when the
//! request was never sent (connection or TLS refused), so that a lost answer cannot register
//! twice. The watcher uses [`Retry::ONCE`] and schedules its own retries.

mod answer;
mod target;

pub use answer::{ApiError, RateLimit};
pub use target::{api_base_url, check_webhook_id, domain_base_url};

use std::fmt;
use std::path::Path;
use std::time::Duration;

use crate::json::write_json_string;
use crate::outbound::{self, OutboundConfig, OutboundError};
use answer::Verdict;

/// Default `serve --webhook-check-interval`: 288 checks a day, under a third of a token's quota.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(300);
/// Shortest `--webhook-check-interval`: 720 checks a day, leaving 280 of the daily quota for
/// re-enabling, retries and the operator's own calls.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(120);
/// Longest `--webhook-check-interval`: a day.
pub const MAX_CHECK_INTERVAL: Duration = Duration::from_secs(86_400);
/// Calls a day Egnyte allows an API token by default.
pub const DAILY_QUOTA: u64 = 1000;
/// The event types `register` asks for when none is given.
pub const DEFAULT_EVENT_TYPES: [&str; 1] = ["fs:*"];
/// Within this of `expires`, the watcher and the commands warn.
pub const EXPIRY_WARNING: Duration = Duration::from_secs(7 * 86_400);

/// The webhook endpoints under the base URL.
const WEBHOOKS: &str = "/pubapi/v1/webhooks";
/// First wait before retrying a call that got no answer; doubled each time.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

/// An OAuth bearer token for Egnyte's API. `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl ApiToken {
    /// A token as given (surrounding whitespace and a `Bearer ` prefix dropped); refused when
    /// empty or holding a space or control character, which no bearer token has.
    pub fn new(value: &str) -> Result<ApiToken, String> {
        let value = value.trim();
        let value = match value.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("bearer") && value[6..].starts_with([' ', '\t']) => {
                value[6..].trim_start()
            }
            Some(prefix) if prefix.eq_ignore_ascii_case("bearer") && value.len() == 6 => "",
            _ => value,
        };
        if value.is_empty() {
            return Err("the API token is empty".into());
        }
        if value.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(
                "the API token has a space, line break or control character (one token, on one line)".into(),
            );
        }
        Ok(ApiToken(value.to_owned()))
    }

    /// Reads a token file: the token on one line (a trailing line break is fine).
    pub fn read_file(path: &Path) -> Result<ApiToken, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        ApiToken::new(&text).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Its length in characters (for logs).
    pub fn chars(&self) -> usize {
        self.0.chars().count()
    }

    fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiToken(<{} chars>)", self.chars())
    }
}

/// Where the API is and who calls it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// `https://acme.egnyte.com` (see [`domain_base_url`], [`api_base_url`]), no trailing `/`.
    pub base_url: String,
    /// The bearer token.
    pub token: ApiToken,
}

/// What `serve --webhook-id` watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchConfig {
    /// The API.
    pub api: ApiConfig,
    /// The webhook kept enabled.
    pub webhook_id: String,
    /// Time between two checks ([`MIN_CHECK_INTERVAL`] to [`MAX_CHECK_INTERVAL`]).
    pub interval: Duration,
}

/// How hard one call tries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Sends at most (1: no retry).
    pub attempts: u32,
    /// Longest single wait before a retry; a `Retry-After` beyond it ends the call.
    pub max_wait: Duration,
}

impl Retry {
    /// One attempt, no wait (the watcher schedules its own retries).
    pub const ONCE: Retry = Retry { attempts: 1, max_wait: Duration::ZERO };
    /// The `webhook` command's: up to 4 sends, waits of at most a minute.
    pub const COMMAND: Retry = Retry { attempts: 4, max_wait: Duration::from_secs(60) };
}

/// A registration request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The receiver's public `https://` URL.
    pub url: String,
    /// Event types or families (`fs:*`); at least one.
    pub event_types: Vec<String>,
    /// Folders to limit the events to (none: the whole domain); no commas in them.
    pub paths: Vec<String>,
    /// What Egnyte sends verbatim in the token header of every call; a secret.
    pub auth_header: Option<String>,
}

impl Registration {
    /// The JSON body of `POST /pubapi/v1/webhooks`.
    fn body(&self) -> String {
        let mut body = String::from("{\"url\":");
        let _ = write_json_string(&mut body, &self.url);
        body.push_str(",\"eventType\":[");
        for (i, event_type) in self.event_types.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            let _ = write_json_string(&mut body, event_type);
        }
        body.push(']');
        if !self.paths.is_empty() {
            body.push_str(",\"path\":");
            let _ = write_json_string(&mut body, &self.paths.join(", "));
        }
        if let Some(header) = &self.auth_header {
            body.push_str(",\"authHeader\":");
            let _ = write_json_string(&mut body, header);
        }
        body.push('}');
        body
    }
}

/// A webhook as Egnyte describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    /// Its id.
    pub id: String,
    /// `enabled`, `disabled` (empty when the answer had none).
    pub status: String,
    /// When it expires, Unix seconds.
    pub expires: Option<u64>,
    /// Where Egnyte sends (details only).
    pub url: Option<String>,
    /// Its event types (details only).
    pub event_types: Vec<String>,
    /// Its folders, comma-separated (details only; none: the whole domain).
    pub path: Option<String>,
    /// The length of the `authHeader` Egnyte holds (details only); its value is never kept.
    pub auth_header_chars: Option<usize>,
}

impl Webhook {
    /// `Some(true)` enabled, `Some(false)` disabled, `None` a status this client does not know.
    pub fn enabled(&self) -> Option<bool> {
        match self.status.to_ascii_lowercase().as_str() {
            "enabled" | "active" => Some(true),
            "disabled" | "paused" | "inactive" => Some(false),
            _ => None,
        }
    }
}

/// Sends one request; [`outbound::Client`] in production, a script in unit tests.
pub(crate) trait Transport: Send + Sync {
    /// One request, one answer (any status) or why there is none.
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<outbound::Response, OutboundError>;
}

impl Transport for outbound::Client {
    fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<outbound::Response, OutboundError> {
        outbound::Client::send(self, method, url, headers, body)
    }
}

/// A callback told about each wait before a retry (the reason and the wait).
type Notice = Box<dyn Fn(&ApiError, Duration) + Send + Sync>;

/// The webhook management API of one domain, with one token.
pub struct Api {
    base: String,
    token: ApiToken,
    transport: Box<dyn Transport>,
    retry: Retry,
    notice: Option<Notice>,
    sleep: fn(Duration),
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api").field("base", &self.base).field("retry", &self.retry).finish_non_exhaustive()
    }
}

/// Whether a call may be sent again after a lost answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Repeat {
    /// Doing it twice is doing it once (reads, status changes, delete).
    Safe,
    /// Only when it was certainly never sent (a registration).
    UnsentOnly,
}

impl Api {
    /// The API at `config` through a new outbound client (default timeouts: 10 s to connect, 30 s
    /// for the whole call).
    pub fn new(config: &ApiConfig, retry: Retry) -> std::io::Result<Api> {
        let client = outbound::Client::new(&OutboundConfig::default())?;
        Ok(Api::with_transport(config, retry, Box::new(client)))
    }

    pub(crate) fn with_transport(config: &ApiConfig, retry: Retry, transport: Box<dyn Transport>) -> Api {
        Api {
            base: config.base_url.trim_end_matches('/').to_owned(),
            token: config.token.clone(),
            transport,
            retry,
            notice: None,
            sleep: std::thread::sleep,
        }
    }

    /// Calls `notice` before each wait for a retry (for a line on stderr).
    pub fn on_retry(mut self, notice: impl Fn(&ApiError, Duration) + Send + Sync + 'static) -> Api {
        self.notice = Some(Box::new(notice));
        self
    }

    /// The base URL calls go to.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// Registers a webhook; returns it with its new id.
    pub fn register(&self, registration: &Registration) -> Result<Webhook, ApiError> {
        let body = registration.body();
        let response = self.call("POST", WEBHOOKS, Some(&body), Repeat::UnsentOnly)?;
        let hook = answer::with_json(&response.body, |json| answer::read_webhook(json, None));
        hook.ok_or_else(|| unreadable(&response, "no webhookId"))
    }

    /// The webhooks this token's app registered in the domain.
    pub fn list(&self) -> Result<Vec<Webhook>, ApiError> {
        let response = self.call("GET", WEBHOOKS, None, Repeat::Safe)?;
        answer::read_webhooks(&response.body).ok_or_else(|| unreadable(&response, "not a list of webhooks"))
    }

    /// One webhook's details (its `authHeader` only as a length).
    pub fn details(&self, id: &str) -> Result<Webhook, ApiError> {
        self.webhook("GET", &format!("{WEBHOOKS}/{}/details", path_id(id)?), None, id)
    }

    /// Whether a webhook is enabled, and when it expires.
    pub fn status(&self, id: &str) -> Result<Webhook, ApiError> {
        self.webhook("GET", &format!("{WEBHOOKS}/{}/status", path_id(id)?), None, id)
    }

    /// Enables (`true`) or disables a webhook; returns its status afterwards (when the answer
    /// has none, the one asked for).
    pub fn set_status(&self, id: &str, enabled: bool) -> Result<Webhook, ApiError> {
        let wanted = if enabled { "enabled" } else { "disabled" };
        let path = format!("{WEBHOOKS}/{}/status", path_id(id)?);
        let response =
            self.call("POST", &path, Some(&format!("{{\"status\":\"{wanted}\"}}")), Repeat::Safe)?;
        let mut hook = answer::with_json(&response.body, |json| answer::read_webhook(json, Some(id)))
            .unwrap_or_else(|| Webhook {
                id: id.to_owned(),
                status: String::new(),
                expires: None,
                url: None,
                event_types: Vec::new(),
                path: None,
                auth_header_chars: None,
            });
        if hook.status.is_empty() {
            hook.status = wanted.to_owned();
        }
        Ok(hook)
    }

    /// Deletes a webhook.
    pub fn delete(&self, id: &str) -> Result<(), ApiError> {
        self.call("DELETE", &format!("{WEBHOOKS}/{}", path_id(id)?), None, Repeat::Safe).map(drop)
    }

    fn webhook(&self, method: &str, path: &str, body: Option<&str>, id: &str) -> Result<Webhook, ApiError> {
        let response = self.call(method, path, body, Repeat::Safe)?;
        answer::with_json(&response.body, |json| answer::read_webhook(json, Some(id)))
            .ok_or_else(|| unreadable(&response, "not a webhook object"))
    }

    /// One call with its retries (see the module documentation).
    fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&str>,
        repeat: Repeat,
    ) -> Result<outbound::Response, ApiError> {
        let url = format!("{}{path}", self.base);
        let authorization = format!("Bearer {}", self.token.secret());
        let mut headers = vec![("Authorization", authorization.as_str()), ("Accept", "application/json")];
        if body.is_some() {
            headers.push(("Content-Type", "application/json"));
        }
        let mut attempt = 1;
        loop {
            let sent = self.transport.send(method, &url, &headers, body.map(str::as_bytes));
            let backoff = FIRST_BACKOFF * 2u32.saturating_pow(attempt - 1);
            let (error, wait, again) = match sent {
                Ok(response) => match answer::classify(&response) {
                    Verdict::Success => return Ok(response),
                    Verdict::Throttled(limit, retry_after) => {
                        let wait = retry_after.unwrap_or(backoff).max(Duration::from_secs(1));
                        (ApiError::RateLimited { limit, retry_after }, wait, true)
                    }
                    Verdict::Refused(status, message) => {
                        let message = self.scrub(&message);
                        let again = matches!(status, 502..=504) && repeat == Repeat::Safe;
                        (ApiError::Refused { status, message }, backoff, again)
                    }
                },
                Err(error) => {
                    let unsent = matches!(error, OutboundError::Connect(_) | OutboundError::Tls(_));
                    let again = !matches!(error, OutboundError::Url(_)) && (unsent || repeat == Repeat::Safe);
                    (ApiError::Unreachable(self.scrub(&error.to_string())), backoff, again)
                }
            };
            if !again || attempt >= self.retry.attempts || wait > self.retry.max_wait {
                return Err(error);
            }
            if let Some(notice) = &self.notice {
                notice(&error, wait);
            }
            (self.sleep)(wait);
            attempt += 1;
        }
    }

    /// `text` with the token replaced, should anything below have put it there.
    fn scrub(&self, text: &str) -> String {
        text.replace(self.token.secret(), "<API token>")
    }
}

fn unreadable(response: &outbound::Response, what: &str) -> ApiError {
    let body = answer::error_text(&response.body);
    ApiError::Unreadable { status: response.status, detail: format!("{what} in {body:?}") }
}

/// The id as a path segment, refused when it is not one (see [`check_webhook_id`]).
fn path_id(id: &str) -> Result<&str, ApiError> {
    check_webhook_id(id).map_err(ApiError::NotSent)?;
    Ok(id)
}

/// A duration for people: `45 s`, `12 min`, `3 h 5 min`, `6 days 4 h`.
pub fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match secs {
        0..=119 => format!("{secs} s"),
        120..=7199 => format!("{} min", secs / 60),
        7200..=172_799 => match secs % 3600 / 60 {
            0 => format!("{} h", secs / 3600),
            min => format!("{} h {min} min", secs / 3600),
        },
        _ => match secs % 86_400 / 3600 {
            0 => format!("{} days", secs / 86_400),
            h => format!("{} days {h} h", secs / 86_400),
        },
    }
}

/// `2036-07-18T06:40:00Z` for a Unix time in seconds.
pub fn utc(seconds: u64) -> String {
    let text = crate::time::rfc3339_ms(seconds.saturating_mul(1000));
    text.replace(".000Z", "Z")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What a script was sent: method, URL, headers, body.
    type Sent = Arc<Mutex<Vec<(String, String, Vec<(String, String)>, Option<String>)>>>;

    /// Answers from a script, in order; records what was sent.
    #[derive(Default)]
    struct Script {
        answers: Mutex<Vec<Result<outbound::Response, OutboundError>>>,
        sent: Sent,
    }

    impl Transport for Script {
        fn send(
            &self,
            method: &str,
            url: &str,
            headers: &[(&str, &str)],
            body: Option<&[u8]>,
        ) -> Result<outbound::Response, OutboundError> {
            self.sent.lock().unwrap().push((
                method.into(),
                url.into(),
                headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
                body.map(|b| String::from_utf8_lossy(b).into_owned()),
            ));
            self.answers.lock().unwrap().remove(0)
        }
    }

    fn ok(status: u16, headers: &[(&str, &str)], body: &str) -> Result<outbound::Response, OutboundError> {
        Ok(outbound::Response {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        })
    }

    fn scripted(
        retry: Retry,
        answers: Vec<Result<outbound::Response, OutboundError>>,
    ) -> (Api, Sent, Arc<Mutex<Vec<Duration>>>) {
        let script = Script { answers: Mutex::new(answers), sent: Arc::default() };
        let sent = Arc::clone(&script.sent);
        let config = ApiConfig {
            base_url: "https://acme.egnyte.com/".into(),
            token: ApiToken::new("s3cret-T0KEN").unwrap(),
        };
        let waits = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&waits);
        let mut api = Api::with_transport(&config, retry, Box::new(script))
            .on_retry(move |_, wait| seen.lock().unwrap().push(wait));
        api.sleep = |_| {};
        (api, sent, waits)
    }

    #[test]
    fn tokens_are_one_word_and_never_shown() {
        assert_eq!(ApiToken::new(" Bearer abc.DEF-1\n").unwrap(), ApiToken::new("abc.DEF-1").unwrap());
        for bad in ["", "  \n", "two words", "a\nb", "Bearer "] {
            assert!(ApiToken::new(bad).is_err(), "{bad:?}");
        }
        let token = ApiToken::new("s3cret").unwrap();
        assert_eq!(format!("{token:?}"), "ApiToken(<6 chars>)");
        let config = WatchConfig {
            api: ApiConfig { base_url: "https://a.egnyte.com".into(), token },
            webhook_id: "w".into(),
            interval: DEFAULT_CHECK_INTERVAL,
        };
        assert!(!format!("{config:?}").contains("s3cret"));
    }

    #[test]
    fn a_registration_is_the_documented_body() {
        let registration = Registration {
            url: "https://hooks.example.com/egnyte/webhook".into(),
            event_types: vec!["fs:*".into(), "link:create_upload_link".into()],
            paths: vec!["/Shared/A".into(), "/Shared/\"B\"".into()],
            auth_header: Some("Token xyz".into()),
        };
        assert_eq!(
            registration.body(),
            r#"{"url":"https://hooks.example.com/egnyte/webhook","eventType":["fs:*","link:create_upload_link"],"path":"/Shared/A, /Shared/\"B\"","authHeader":"Token xyz"}"#
        );
        let (api, sent, _) = scripted(
            Retry::COMMAND,
            vec![ok(201, &[], r#"{"webhookId":"w1","expires":2100000000,"status":"enabled"}"#)],
        );
        let hook = api.register(&Registration { paths: vec![], auth_header: None, ..registration }).unwrap();
        assert_eq!((hook.id.as_str(), hook.expires, hook.enabled()), ("w1", Some(2_100_000_000), Some(true)));
        let sent = sent.lock().unwrap();
        let (method, url, headers, body) = &sent[0];
        assert_eq!((method.as_str(), url.as_str()), ("POST", "https://acme.egnyte.com/pubapi/v1/webhooks"));
        assert!(headers.contains(&("Authorization".into(), "Bearer s3cret-T0KEN".into())));
        assert!(headers.contains(&("Content-Type".into(), "application/json".into())));
        assert!(
            !body.as_deref().unwrap().contains("path") && !body.as_deref().unwrap().contains("authHeader")
        );
    }

    #[test]
    fn throttling_waits_for_retry_after_then_succeeds() {
        let qps = || {
            ok(
                403,
                &[("X-Mashery-Error-Code", "ERR_403_DEVELOPER_OVER_QPS"), ("Retry-After", "2")],
                "<h1>Developer Over Qps</h1>",
            )
        };
        let (api, sent, waits) = scripted(
            Retry::COMMAND,
            vec![qps(), ok(429, &[], ""), ok(200, &[], r#"{"webhookId":"w","status":"disabled"}"#)],
        );
        let hook = api.status("w").unwrap();
        assert_eq!(hook.enabled(), Some(false));
        assert_eq!(
            *waits.lock().unwrap(),
            [Duration::from_secs(2), Duration::from_secs(2)],
            "Retry-After, then the backoff"
        );
        assert_eq!(sent.lock().unwrap().len(), 3);
        assert_eq!(sent.lock().unwrap()[0].1, "https://acme.egnyte.com/pubapi/v1/webhooks/w/status");
    }

    #[test]
    fn a_daily_quota_beyond_the_longest_wait_ends_the_call_at_once() {
        let daily = ok(
            403,
            &[("X-Mashery-Error-Code", "ERR_403_DEVELOPER_OVER_RATE"), ("Retry-After", "7200")],
            "<h1>Developer Over Rate</h1>",
        );
        let (api, sent, waits) = scripted(Retry::COMMAND, vec![daily]);
        let error = api.list().unwrap_err();
        assert_eq!(
            error,
            ApiError::RateLimited { limit: RateLimit::Daily, retry_after: Some(Duration::from_secs(7200)) }
        );
        assert!(waits.lock().unwrap().is_empty());
        assert_eq!(sent.lock().unwrap().len(), 1);
    }

    #[test]
    fn lost_answers_are_retried_only_when_safe() {
        let timeout = || Err(OutboundError::Timeout);
        let (api, sent, waits) =
            scripted(Retry::COMMAND, vec![timeout(), ok(503, &[], ""), ok(204, &[], "")]);
        api.delete("w").unwrap();
        assert_eq!(*waits.lock().unwrap(), [Duration::from_secs(1), Duration::from_secs(2)]);
        assert_eq!(sent.lock().unwrap()[2].0, "DELETE");
        let registration = Registration {
            url: "https://h/e".into(),
            event_types: vec!["fs:*".into()],
            paths: vec![],
            auth_header: None,
        };
        let (api, sent, _) = scripted(Retry::COMMAND, vec![timeout()]);
        assert_eq!(
            api.register(&registration).unwrap_err(),
            ApiError::Unreachable(OutboundError::Timeout.to_string())
        );
        assert_eq!(sent.lock().unwrap().len(), 1, "a registration whose answer was lost is not sent again");
        let refused = || Err(OutboundError::Connect("connection refused".into()));
        let (api, sent, _) = scripted(Retry::COMMAND, vec![refused(), ok(201, &[], r#"{"webhookId":"w2"}"#)]);
        assert_eq!(api.register(&registration).unwrap().id, "w2", "never sent: safe to send again");
        assert_eq!(sent.lock().unwrap().len(), 2);
        let (api, sent, _) = scripted(Retry::COMMAND, vec![refused(), refused(), refused(), refused()]);
        assert!(matches!(api.list(), Err(ApiError::Unreachable(_))));
        assert_eq!(sent.lock().unwrap().len(), 4, "Retry::COMMAND's attempts");
        let (api, sent, _) = scripted(Retry::ONCE, vec![refused()]);
        assert!(api.list().is_err());
        assert_eq!(sent.lock().unwrap().len(), 1);
    }

    #[test]
    fn refusals_carry_egnytes_text_and_never_the_token() {
        let (api, _, _) =
            scripted(Retry::COMMAND, vec![ok(404, &[], r#"{"errorMessage":"Webhook w not found"}"#)]);
        let error = api.details("w").unwrap_err();
        assert_eq!(error.to_string(), "Egnyte answered 404 Not Found: Webhook w not found");
        let (api, _, _) =
            scripted(Retry::COMMAND, vec![ok(401, &[], r#"{"message":"token s3cret-T0KEN revoked"}"#)]);
        let error = api.status("w").unwrap_err().to_string();
        assert!(!error.contains("s3cret-T0KEN") && error.contains("token <API token> revoked"), "{error}");
        let (api, _, _) =
            scripted(Retry::ONCE, vec![Err(OutboundError::Io("reset talking to s3cret-T0KEN".into()))]);
        assert!(!api.list().unwrap_err().to_string().contains("s3cret-T0KEN"));
        assert!(
            matches!(api.details("a/b"), Err(ApiError::NotSent(_))),
            "an id that is not a path segment is never sent"
        );
    }

    #[test]
    fn set_status_posts_the_wanted_status() {
        let (api, sent, _) = scripted(
            Retry::ONCE,
            vec![ok(200, &[], "{}"), ok(200, &[], r#"{"webhookId":"w","status":"enabled","expires":5}"#)],
        );
        assert_eq!(
            api.set_status("w", false).unwrap().status,
            "disabled",
            "an empty answer: the status asked for"
        );
        let hook = api.set_status("w", true).unwrap();
        assert_eq!((hook.enabled(), hook.expires), (Some(true), Some(5)));
        let sent = sent.lock().unwrap();
        assert_eq!(sent[0].3.as_deref(), Some(r#"{"status":"disabled"}"#));
        assert_eq!(sent[1].3.as_deref(), Some(r#"{"status":"enabled"}"#));
        assert_eq!(sent[1].0, "POST");
    }

    #[test]
    fn durations_and_times_read_well() {
        assert_eq!(human_duration(Duration::from_secs(45)), "45 s");
        assert_eq!(human_duration(Duration::from_secs(600)), "10 min");
        assert_eq!(human_duration(Duration::from_secs(3 * 3600 + 300)), "3 h 5 min");
        assert_eq!(human_duration(Duration::from_secs(6 * 86_400 + 4 * 3600)), "6 days 4 h");
        assert_eq!(human_duration(Duration::from_secs(2 * 86_400)), "2 days");
        assert_eq!(utc(2_100_000_000), "2036-07-18T13:20:00Z");
    }
}
