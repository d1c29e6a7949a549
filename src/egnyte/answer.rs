//! Reading Egnyte's answers: success, throttling, refusal with its error text, and the webhook
//! objects in a body.
//!
//! Egnyte has no single error shape. Observed bodies: `{"message"}`, `{"errorMessage"}`,
//! `{"Errors":[{"description","code"}]}`, `{"errors":[{"msg","code"}]}`,
//! `{"formErrors":[{"code","msg"}]}`, `{"inputErrors":{"<field>":[{"msg","code"}]}}`, an object
//! with only a `code`, and for throttling an HTML-ish `<h1>Developer Over Qps</h1>`. Every one of
//! them is read into one line of text ([`error_text`]); anything else is shown as received, cut
//! short.

use std::fmt;
use std::time::Duration;

use crate::json::{Json, JsonKind};
use crate::outbound::Response;

use super::Webhook;

/// Most characters of Egnyte's error text kept in a message.
const MAX_TEXT_CHARS: usize = 300;

/// Why a call did not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// Egnyte answered, and refused (any status but 2xx that is not throttling): the status and
    /// Egnyte's own error text.
    Refused {
        /// The HTTP status.
        status: u16,
        /// Egnyte's error text, one line (empty when the body had none).
        message: String,
    },
    /// Egnyte's rate limit (per second) or daily quota.
    RateLimited {
        /// Which limit.
        limit: RateLimit,
        /// `Retry-After`: when the limit resets.
        retry_after: Option<Duration>,
    },
    /// No answer: DNS, connection, TLS, timeout (the text says which).
    Unreachable(String),
    /// Not sent: the request itself is wrong (a webhook id that is not one).
    NotSent(String),
    /// A 2xx answer whose body is not what the call returns.
    Unreadable {
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        detail: String,
    },
}

/// Which of Egnyte's limits answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateLimit {
    /// 403 with `X-Mashery-Error-Code: ERR_403_DEVELOPER_OVER_QPS`: calls per second.
    PerSecond,
    /// 403 with `X-Mashery-Error-Code: ERR_403_DEVELOPER_OVER_RATE`: the daily quota.
    Daily,
    /// 429 Too Many Requests (what some clients see instead).
    TooManyRequests,
}

impl ApiError {
    /// `Retry-After` of a rate-limit answer.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True for an error a later call may not meet: throttling, no answer, or a 5xx.
    pub fn transient(&self) -> bool {
        match self {
            ApiError::RateLimited { .. } | ApiError::Unreachable(_) => true,
            ApiError::Refused { status, .. } => *status >= 500 || *status == 408,
            ApiError::Unreadable { .. } | ApiError::NotSent(_) => false,
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Refused { status, message } => {
                write!(f, "Egnyte answered {status}{}", reason(*status))?;
                if message.is_empty() {
                    write!(f, " (no error text)")?;
                } else {
                    write!(f, ": {message}")?;
                }
                let inactive = message.to_ascii_lowercase().contains("developer inactive");
                match status {
                    401 => write!(f, " (the API token is invalid, revoked or expired: get a new one)"),
                    403 if inactive => {
                        write!(
                            f,
                            " (the API token is wrong or missing, or a key of another Egnyte environment)"
                        )
                    }
                    403 => write!(
                        f,
                        " (the token's user may not manage webhooks: use a domain admin's token with the \
                         Egnyte.webhooks scope)"
                    ),
                    _ => Ok(()),
                }
            }
            ApiError::RateLimited { limit, retry_after } => {
                match limit {
                    RateLimit::PerSecond => write!(
                        f,
                        "Egnyte's rate limit: too many calls per second for this API token \
                         (ERR_403_DEVELOPER_OVER_QPS)"
                    )?,
                    RateLimit::Daily => write!(
                        f,
                        "Egnyte's daily quota for this API token is used up (ERR_403_DEVELOPER_OVER_RATE; \
                         about 1,000 calls a day)"
                    )?,
                    RateLimit::TooManyRequests => write!(f, "Egnyte's rate limit: 429 Too Many Requests")?,
                }
                match retry_after {
                    Some(after) => write!(f, "; Retry-After {} s", after.as_secs()),
                    None => write!(f, "; no Retry-After"),
                }
            }
            ApiError::Unreachable(why) => write!(f, "cannot reach Egnyte's API: {why}"),
            ApiError::NotSent(why) => write!(f, "not sent: {why}"),
            ApiError::Unreadable { status, detail } => {
                write!(
                    f,
                    "Egnyte answered {status}{} with a body this receiver cannot read: {detail}",
                    reason(*status)
                )
            }
        }
    }
}

impl std::error::Error for ApiError {}

/// ` Not Found` for 404, … (empty for a status without a common name).
fn reason(status: u16) -> &'static str {
    match status {
        200 => " OK",
        201 => " Created",
        204 => " No Content",
        400 => " Bad Request",
        401 => " Unauthorized",
        403 => " Forbidden",
        404 => " Not Found",
        405 => " Method Not Allowed",
        408 => " Request Timeout",
        409 => " Conflict",
        413 => " Payload Too Large",
        429 => " Too Many Requests",
        500 => " Internal Server Error",
        502 => " Bad Gateway",
        503 => " Service Unavailable",
        504 => " Gateway Timeout",
        _ => "",
    }
}

/// What an answer means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// 2xx.
    Success,
    /// Throttled: not processed, safe to send again after the wait.
    Throttled(RateLimit, Option<Duration>),
    /// Anything else: refused, with Egnyte's text.
    Refused(u16, String),
}

/// Classifies an answer. A 403 is read as throttling only from `X-Mashery-Error-Code` (or,
/// without that header, from the `Developer Over Qps|Rate` body Egnyte's own SDK recognises).
pub(crate) fn classify(response: &Response) -> Verdict {
    let status = response.status;
    if (200..300).contains(&status) {
        return Verdict::Success;
    }
    let retry_after =
        response.header("retry-after").and_then(|v| v.trim().parse::<u64>().ok()).map(Duration::from_secs);
    if status == 429 {
        return Verdict::Throttled(RateLimit::TooManyRequests, retry_after);
    }
    let text = error_text(&response.body);
    if status == 403 {
        let code = response.header("x-mashery-error-code").unwrap_or("").to_ascii_uppercase();
        let lower = text.to_ascii_lowercase();
        if code.ends_with("_OVER_QPS") || (code.is_empty() && lower.starts_with("developer over qps")) {
            return Verdict::Throttled(RateLimit::PerSecond, retry_after);
        }
        if code.ends_with("_OVER_RATE") || (code.is_empty() && lower.starts_with("developer over rate")) {
            return Verdict::Throttled(RateLimit::Daily, retry_after);
        }
        if code.contains("DEVELOPER_INACTIVE") && !lower.contains("developer inactive") {
            let text = if text.is_empty() {
                "Developer Inactive".into()
            } else {
                format!("Developer Inactive: {text}")
            };
            return Verdict::Refused(status, text);
        }
    }
    Verdict::Refused(status, text)
}

/// Egnyte's error text in a body, as one line of at most [`MAX_TEXT_CHARS`] characters: the
/// messages of whichever error shape it has, else the body with markup and line breaks removed.
pub(crate) fn error_text(body: &[u8]) -> String {
    let from_json = with_json(body, |json| {
        let mut parts = Vec::new();
        json_messages(json, &mut parts);
        if parts.is_empty() && json.kind() != JsonKind::Object {
            None
        } else if parts.is_empty() {
            Some(json.to_string())
        } else {
            Some(parts.join("; "))
        }
    });
    let text = match from_json {
        Some(text) => text,
        None => strip_markup(&String::from_utf8_lossy(body)),
    };
    one_line(&text)
}

/// The messages of every error shape Egnyte is known to use, in `json`.
fn json_messages(json: Json<'_>, parts: &mut Vec<String>) {
    if let Some(text) = json.as_str() {
        parts.push(text.to_owned());
        return;
    }
    for key in ["message", "errorMessage", "error_description", "error"] {
        if let Some(text) = json.get_str(key) {
            parts.push(text.to_owned());
        }
    }
    for key in ["Errors", "errors", "formErrors"] {
        if let Some(list) = json.get(key) {
            for item in list.items() {
                if let Some(text) = item.as_str() {
                    parts.push(text.to_owned());
                } else if let Some(text) =
                    ["description", "msg", "message"].iter().find_map(|k| item.get_str(k))
                {
                    parts.push(text.to_owned());
                } else if let Some(code) = item.get_str("code") {
                    parts.push(code.to_owned());
                }
            }
        }
    }
    if let Some(fields) = json.get("inputErrors") {
        for (field, errors) in fields.entries() {
            let texts: Vec<&str> = errors
                .items()
                .filter_map(|e| ["msg", "message", "description", "code"].iter().find_map(|k| e.get_str(k)))
                .collect();
            if !texts.is_empty() {
                parts.push(format!("{field}: {}", texts.join(", ")));
            }
        }
    }
    if parts.is_empty() {
        if let Some(code) = json.get_str("code") {
            parts.push(code.to_owned());
        }
    }
}

/// `<h1>Developer Over Qps</h1>` → `Developer Over Qps`.
fn strip_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                out.push(' ');
            }
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Whitespace and control characters collapsed to single spaces, cut to [`MAX_TEXT_CHARS`].
fn one_line(text: &str) -> String {
    let mut out = String::new();
    for word in text.split(|c: char| c.is_whitespace() || c.is_control()).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(word);
    }
    if out.chars().count() > MAX_TEXT_CHARS {
        out = out.chars().take(MAX_TEXT_CHARS).collect::<String>() + "…";
    }
    out
}

/// Runs `read` on the JSON value of `body`; `None` when it is not JSON (or `read` says so).
pub(crate) fn with_json<R>(body: &[u8], read: impl FnOnce(Json<'_>) -> Option<R>) -> Option<R> {
    let mut copy = body.to_vec();
    let tape = simd_json::to_tape(&mut copy).ok()?;
    if tape.0.is_empty() {
        return None;
    }
    read(Json::at(&tape.0, 0))
}

/// A webhook object: `webhookId` (or `id`), `status`, `expires`, and in details `url`,
/// `eventType`, `path`, `authHeader` (only its length is kept). `id` fills in a missing id.
pub(crate) fn read_webhook(json: Json<'_>, id: Option<&str>) -> Option<Webhook> {
    if json.kind() != JsonKind::Object {
        return None;
    }
    let text = |v: Json<'_>| {
        v.as_str().map(str::to_owned).or_else(|| (v.kind() == JsonKind::Number).then(|| v.to_string()))
    };
    let found = ["webhookId", "id"].iter().find_map(|k| json.get(k).and_then(text));
    let id = found.or_else(|| id.map(str::to_owned)).filter(|id| !id.is_empty())?;
    let expires = json.get("expires").and_then(|v| v.as_u64().or_else(|| v.as_str()?.trim().parse().ok()));
    // A time in milliseconds (13 digits) is read as such: the documented unit is seconds.
    let expires = expires.map(|e| if e >= 100_000_000_000 { e / 1000 } else { e });
    let event_types = match json.get("eventType") {
        Some(list) if list.kind() == JsonKind::Array => {
            list.items().filter_map(|v| v.as_str().map(str::to_owned)).collect()
        }
        Some(one) => one.as_str().map_or_else(Vec::new, |s| {
            s.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
        }),
        None => Vec::new(),
    };
    Some(Webhook {
        id,
        status: json.get_str("status").unwrap_or("").to_owned(),
        expires,
        url: json.get_str("url").map(str::to_owned),
        event_types,
        path: json.get_str("path").filter(|p| !p.is_empty()).map(str::to_owned),
        auth_header_chars: json.get_str("authHeader").filter(|v| !v.is_empty()).map(|v| v.chars().count()),
    })
}

/// The webhooks of a list answer: an array, or an object holding one under `webhooks` (or
/// `data`); an empty body is an empty list.
pub(crate) fn read_webhooks(body: &[u8]) -> Option<Vec<Webhook>> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Some(Vec::new());
    }
    with_json(body, |json| {
        let list = match json.kind() {
            JsonKind::Array => json,
            JsonKind::Object => ["webhooks", "data"].iter().find_map(|k| json.get(k))?,
            _ => return None,
        };
        list.items().map(|item| read_webhook(item, None)).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn every_error_shape_gives_its_text() {
        for (body, text) in [
            (r#"{"message":"Webhook not found"}"#, "Webhook not found"),
            (r#"{"errorMessage":"Invalid access token"}"#, "Invalid access token"),
            (
                r#"{"Errors":[{"description":"bad url","code":"E1"},{"description":"bad path"}]}"#,
                "bad url; bad path",
            ),
            (r#"{"errors":[{"msg":"nope","code":"X"}]}"#, "nope"),
            (r#"{"formErrors":[{"code":"C","msg":"form\nbroken"}]}"#, "form broken"),
            (
                r#"{"inputErrors":{"eventType":[{"msg":"Unknown event type: fs:nope","code":"INVALID"}],"url":[{"code":"REQUIRED"}]}}"#,
                "eventType: Unknown event type: fs:nope; url: REQUIRED",
            ),
            (r#"{"code":"QUOTA_EXCEEDED","message":"Webhook quota exceeded"}"#, "Webhook quota exceeded"),
            (r#"{"code":"QUOTA_EXCEEDED"}"#, "QUOTA_EXCEEDED"),
            (r#"{"other":1}"#, r#"{"other":1}"#),
            (r#""plain string""#, "plain string"),
            ("<h1>Developer Over Qps</h1>", "Developer Over Qps"),
            ("<html><body><h1>502 Bad Gateway</h1>\r\n</body></html>", "502 Bad Gateway"),
            ("", ""),
        ] {
            assert_eq!(error_text(body.as_bytes()), text, "{body}");
        }
        let long = "x".repeat(1000);
        assert_eq!(error_text(long.as_bytes()).chars().count(), MAX_TEXT_CHARS + 1);
    }

    #[test]
    fn throttling_is_told_from_refusal() {
        let qps = response(
            403,
            &[("X-Mashery-Error-Code", "ERR_403_DEVELOPER_OVER_QPS"), ("Retry-After", "1")],
            "<h1>Developer Over Qps</h1>",
        );
        assert_eq!(classify(&qps), Verdict::Throttled(RateLimit::PerSecond, Some(Duration::from_secs(1))));
        let daily = response(
            403,
            &[("x-mashery-error-code", "ERR_403_DEVELOPER_OVER_RATE"), ("retry-after", "3600")],
            "",
        );
        assert_eq!(classify(&daily), Verdict::Throttled(RateLimit::Daily, Some(Duration::from_secs(3600))));
        let body_only = response(403, &[], "<h1>Developer Over Rate</h1>");
        assert_eq!(classify(&body_only), Verdict::Throttled(RateLimit::Daily, None));
        let too_many = response(429, &[("Retry-After", "2")], "{}");
        assert_eq!(
            classify(&too_many),
            Verdict::Throttled(RateLimit::TooManyRequests, Some(Duration::from_secs(2)))
        );
        let forbidden = response(403, &[], r#"{"errorMessage":"User is not an admin"}"#);
        assert_eq!(classify(&forbidden), Verdict::Refused(403, "User is not an admin".into()));
        let inactive = response(403, &[("X-Mashery-Error-Code", "ERR_403_DEVELOPER_INACTIVE")], "");
        assert_eq!(classify(&inactive), Verdict::Refused(403, "Developer Inactive".into()));
        assert_eq!(classify(&response(204, &[], "")), Verdict::Success);
        assert_eq!(
            classify(&response(404, &[], r#"{"message":"gone"}"#)),
            Verdict::Refused(404, "gone".into())
        );
    }

    #[test]
    fn messages_are_one_line_with_a_hint() {
        let refused = ApiError::Refused { status: 401, message: "Invalid access token".into() };
        assert_eq!(
            refused.to_string(),
            "Egnyte answered 401 Unauthorized: Invalid access token (the API token is invalid, revoked or expired: get a new one)"
        );
        let limited =
            ApiError::RateLimited { limit: RateLimit::PerSecond, retry_after: Some(Duration::from_secs(1)) };
        assert!(limited.to_string().ends_with("(ERR_403_DEVELOPER_OVER_QPS); Retry-After 1 s"), "{limited}");
        assert!(limited.transient() && !refused.transient());
        assert!(ApiError::Refused { status: 503, message: String::new() }.transient());
        for error in [refused, limited] {
            assert!(!error.to_string().contains('\n'));
        }
    }

    #[test]
    fn webhooks_are_read_leniently() {
        let list = br#"[{"webhookId":"a","expires":2100000000,"status":"enabled"},
            {"webhookId":"b","expires":"2100000000000","status":"disabled","extra":[1]}]"#;
        let hooks = read_webhooks(list).unwrap();
        assert_eq!(hooks.len(), 2);
        assert_eq!(
            (hooks[0].id.as_str(), hooks[0].expires, hooks[0].enabled()),
            ("a", Some(2_100_000_000), Some(true))
        );
        assert_eq!((hooks[1].expires, hooks[1].enabled()), (Some(2_100_000_000), Some(false)));
        assert_eq!(read_webhooks(br#"{"webhooks":[]}"#), Some(Vec::new()));
        assert_eq!(read_webhooks(b""), Some(Vec::new()));
        assert_eq!(read_webhooks(b"<html>"), None);
        assert_eq!(read_webhooks(br#"[{"status":"enabled"}]"#), None, "an item without an id");
        let details =
            br#"{"webhookId":"w","status":"enabled","url":"https://h/e","eventType":["fs:*","link:*"],
            "path":"/Shared/A, /Shared/B","authHeader":"Token secret"}"#;
        let hook = with_json(details, |j| read_webhook(j, None)).unwrap();
        assert_eq!(hook.event_types, ["fs:*", "link:*"]);
        assert_eq!(hook.path.as_deref(), Some("/Shared/A, /Shared/B"));
        assert_eq!(hook.auth_header_chars, Some(12));
        assert!(!format!("{hook:?}").contains("secret"), "the auth header's value is not kept");
        let bare = with_json(br#"{"status":"disabled"}"#, |j| read_webhook(j, Some("given"))).unwrap();
        assert_eq!(bare.id, "given");
        let comma =
            with_json(br#"{"id":7,"eventType":"fs:add_file, fs:copy_file"}"#, |j| read_webhook(j, None))
                .unwrap();
        assert_eq!((comma.id.as_str(), comma.event_types.len()), ("7", 2));
    }
}
