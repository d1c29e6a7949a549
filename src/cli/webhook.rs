//! `egnyte-receiver webhook register|list|show|status|enable|disable|delete`: Egnyte's webhook
//! management API for operators (`egnyte_receiver::egnyte`), and the API settings `serve
//! --webhook-id` shares with it ([`api_config`], [`watch_config`]).
//!
//! The common options come from flags or from the variables `serve` reads
//! (`EGNYTE_RECEIVER_DOMAIN`, `…_API_TOKEN`, `…_API_TOKEN_FILE`, `…_API_URL`), so that the
//! service's environment file serves both. Output is text, or JSON with `--json`; the API token
//! and any `authHeader` value are never printed (a header's length at most).

use std::path::{Path, PathBuf};
use std::time::Duration;

use egnyte_receiver::egnyte::{
    self, Api, ApiConfig, ApiError, ApiToken, Registration, Retry, WatchConfig, Webhook, DAILY_QUOTA,
    DEFAULT_EVENT_TYPES, EXPIRY_WARNING, MIN_CHECK_INTERVAL,
};
use egnyte_receiver::json::write_json_string;
use egnyte_receiver::time::now_ms;

use super::Command;

/// Exit status when Egnyte refused or could not be reached.
const EXIT_FAILED: u8 = 1;

/// The receiver's token file under the service (`LoadCredential=token:…` reads it).
const SERVICE_TOKEN_FILE: &str = "/etc/egnyte-receiver/token";

pub(super) const HELP: &str = "\
Register and manage Egnyte webhooks through Egnyte's management API.

Usage: egnyte-receiver webhook register --url URL [--event-type TYPE]... [--path FOLDER]...
                                        [--auth-header VALUE | --auth-token-file FILE] [OPTIONS]
       egnyte-receiver webhook list [OPTIONS]
       egnyte-receiver webhook show|status|enable|disable|delete ID [OPTIONS]

register: registers URL with Egnyte and prints the new webhook's id, status and expiry. Egnyte
then POSTs the events of each TYPE (default: fs:*) under each FOLDER (default: the whole domain)
to URL, with the header value of --auth-header; without it, the receiver's own token, as serve
reads it: --auth-token-file FILE, else $EGNYTE_RECEIVER_AUTH_TOKEN_FILE, else
$EGNYTE_RECEIVER_AUTH_TOKEN, else /etc/egnyte-receiver/token (the service's; run as root).
list: the webhooks this API token's app registered in the domain.
show: one webhook's details (its auth header only as a length: it is a secret).
status, enable, disable: whether Egnyte sends to it. Egnyte disables a webhook after repeated
failed deliveries; serve --webhook-id ID re-enables it by itself.
delete: removes the webhook at Egnyte.

Options (each also from the environment as EGNYTE_RECEIVER_<NAME>, as serve reads them):
  --domain DOMAIN         the Egnyte domain: acme or acme.egnyte.com
  --api-token-file FILE   a file holding an OAuth bearer token of a domain admin with the
                          Egnyte.webhooks scope, on one line
                          [default: $CREDENTIALS_DIRECTORY/api-token if present]
  --api-token TOKEN       the token itself (visible to other users in ps: prefer the file)
  --api-url URL           Egnyte's API; http:// only on a loopback address (tests, a local
                          proxy) [default: https://DOMAIN.egnyte.com]
  --json                  print JSON (an object, or an array for list) instead of text
  -h, --help              print this help

Options of register:
  --url URL               where Egnyte sends: the receiver's public https:// URL
  --event-type TYPE       an event type or family: fs:add_file, fs:*, link:*, ... (repeat for more)
  --path FOLDER           only events under this folder, /Shared/Projects (repeat for more)
  --auth-header VALUE     the value Egnyte sends in the Authorization or Authentication header
  --auth-token-file FILE  the receiver's token file (with two tokens, the second: the newer)

An API token gets about 2 calls a second and 1,000 a day. A rate-limited call is sent again
after Egnyte's Retry-After (up to 60 s; a used-up daily quota is reported at once); a call that
got no answer is sent again after 1, 2 and 4 s (a registration only when it was never sent).

Exit status: 0 done; 1 Egnyte refused (its error text is printed) or could not be reached;
2 usage (a bad option, no domain or API token).
";

/// What `webhook` does.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Register,
    List,
    Show(String),
    Status(String),
    Enable(String),
    Disable(String),
    Delete(String),
}

/// The options `webhook` reads: flag name, also from the environment.
const COMMON: [&str; 4] = ["domain", "api-token", "api-token-file", "api-url"];
/// The options of `register` (flags only, but `auth-token-file` also from the environment).
const REGISTER: [&str; 5] = ["url", "event-type", "path", "auth-header", "auth-token-file"];

/// The arguments of `webhook`.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Args {
    action: Action,
    values: Vec<(&'static str, String)>,
    json: bool,
}

impl Args {
    pub(super) fn parse(parser: &mut lexopt::Parser) -> Result<Command, lexopt::Error> {
        use lexopt::prelude::*;
        let mut words: Vec<String> = Vec::new();
        let mut values = Vec::new();
        let mut json = false;
        while let Some(arg) = parser.next()? {
            match arg {
                Short('h') | Long("help") => return Ok(Command::HelpText(HELP.into())),
                Long("json") => json = true,
                Long(name) => match COMMON.iter().chain(&REGISTER).find(|option| **option == name) {
                    Some(option) => {
                        let value = parser.value()?;
                        let value =
                            value.into_string().map_err(|_| format!("--{option}: not valid UTF-8"))?;
                        values.push((*option, value));
                    }
                    None => return Err(arg.unexpected()),
                },
                Value(word) => words.push(word.into_string().map_err(|_| "not valid UTF-8")?),
                _ => return Err(arg.unexpected()),
            }
        }
        let mut words = words.into_iter();
        let verb = words
            .next()
            .ok_or("webhook needs an action: register, list, show, status, enable, disable or delete")?;
        let id = |words: &mut std::vec::IntoIter<String>| -> Result<String, lexopt::Error> {
            let id = words
                .next()
                .ok_or_else(|| format!("webhook {verb} needs a webhook ID (see: webhook list)"))?;
            egnyte::check_webhook_id(&id)?;
            Ok(id)
        };
        let action = match verb.as_str() {
            "register" => Action::Register,
            "list" => Action::List,
            "show" => Action::Show(id(&mut words)?),
            "status" => Action::Status(id(&mut words)?),
            "enable" => Action::Enable(id(&mut words)?),
            "disable" => Action::Disable(id(&mut words)?),
            "delete" => Action::Delete(id(&mut words)?),
            other => {
                return Err(format!(
                "unknown webhook action {other:?} (register, list, show, status, enable, disable, delete)"
            )
                .into())
            }
        };
        if let Some(extra) = words.next() {
            return Err(format!("webhook {verb}: unexpected argument {extra:?}").into());
        }
        if action != Action::Register {
            if let Some((option, _)) = values.iter().find(|(option, _)| REGISTER.contains(option)) {
                return Err(format!("--{option} is an option of webhook register only").into());
            }
        }
        let args = Args { action, values, json };
        if args.action == Action::Register {
            args.registration_checks()?;
        }
        Ok(Command::Webhook(args))
    }

    /// The last flag's value of `name`.
    fn flag(&self, name: &str) -> Option<&str> {
        self.values.iter().rev().find(|(option, _)| *option == name).map(|(_, v)| v.as_str())
    }

    /// Every flag's value of `name`.
    fn flags(&self, name: &str) -> Vec<String> {
        self.values.iter().filter(|(option, _)| *option == name).map(|(_, v)| v.clone()).collect()
    }

    /// A common option: the last flag, else its environment variable (empty: unset).
    fn value(&self, name: &str) -> Result<Option<String>, String> {
        if let Some(value) = self.flag(name) {
            return Ok(Some(value.to_owned()));
        }
        match std::env::var_os(env_name(name)).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(value) => {
                value.into_string().map(Some).map_err(|_| format!("{}: not valid UTF-8", env_name(name)))
            }
        }
    }

    /// `--name`, or the environment variable when no flag was given.
    fn origin(&self, name: &str) -> String {
        if self.flag(name).is_none() && std::env::var_os(env_name(name)).is_some_and(|v| !v.is_empty()) {
            env_name(name)
        } else {
            format!("--{name}")
        }
    }

    /// What can be checked of a registration before anything is read or sent.
    fn registration_checks(&self) -> Result<(), String> {
        let url = self
            .flag("url")
            .ok_or("webhook register needs --url URL (the receiver's public https:// URL)")?;
        if !url.get(..8).is_some_and(|s| s.eq_ignore_ascii_case("https://")) || url.len() <= 8 {
            return Err(format!(
                "--url {url:?}: Egnyte calls https:// URLs only (put the receiver behind TLS)"
            ));
        }
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(format!("--url {url:?}: has a space or a control character"));
        }
        for event_type in self.flags("event-type") {
            let fine = event_type
                .split_once(':')
                .is_some_and(|(family, name)| !family.is_empty() && !name.is_empty())
                && !event_type.bytes().any(|b| b <= b' ' || b == b',' || b == b'"' || b == 0x7f);
            if !fine {
                return Err(format!(
                    "--event-type {event_type:?}: not an event type like fs:add_file or fs:*"
                ));
            }
        }
        for folder in self.flags("path") {
            if !folder.starts_with('/') || folder.contains(',') || folder.chars().any(char::is_control) {
                return Err(format!(
                    "--path {folder:?}: a folder like /Shared/Projects, without commas (Egnyte's list is \
                     comma-separated)"
                ));
            }
        }
        if let Some(header) = self.flag("auth-header") {
            auth_header_check(header).map_err(|e| format!("--auth-header: {e}"))?;
        }
        if self.flag("auth-header").is_some() && self.flag("auth-token-file").is_some() {
            return Err("give --auth-header or --auth-token-file, not both".into());
        }
        Ok(())
    }

    /// The value Egnyte is to send with every call, and where it came from (`None`: no token).
    fn auth_header(&self) -> Result<Option<(String, String)>, String> {
        if let Some(header) = self.flag("auth-header") {
            return Ok(Some((header.to_owned(), "--auth-header".into())));
        }
        let file =
            self.value("auth-token-file")?.map(|file| (PathBuf::from(file), self.origin("auth-token-file")));
        if file.is_none() {
            if let Some(token) = self.value("auth-token")? {
                auth_header_check(&token).map_err(|e| format!("EGNYTE_RECEIVER_AUTH_TOKEN: {e}"))?;
                return Ok(Some((token, "the receiver's token from EGNYTE_RECEIVER_AUTH_TOKEN".into())));
            }
        }
        let credential =
            std::env::var_os("CREDENTIALS_DIRECTORY").map(|dir| PathBuf::from(dir).join("token"));
        let file = file
            .or_else(|| credential.filter(|p| p.exists()).map(|p| (p, "$CREDENTIALS_DIRECTORY/token".into())))
            .or_else(|| {
                let service = PathBuf::from(SERVICE_TOKEN_FILE);
                service.exists().then(|| (service, "the service's token file".into()))
            });
        let Some((path, origin)) = file else { return Ok(None) };
        let (token, note) = read_token_file(&path).map_err(|e| format!("{origin}: {e}"))?;
        Ok(Some((token, format!("the receiver's token from {} ({origin}){note}", path.display()))))
    }
}

/// `EGNYTE_RECEIVER_` + the option name in upper case, dashes as underscores (as `serve`).
fn env_name(option: &str) -> String {
    format!("EGNYTE_RECEIVER_{}", option.to_ascii_uppercase().replace('-', "_"))
}

/// A header value Egnyte can send: not empty, no control character, no space at either end.
fn auth_header_check(value: &str) -> Result<(), String> {
    if value.is_empty() || value.trim() != value || value.chars().any(char::is_control) {
        return Err("empty, a space at either end, or a control character: no header value".into());
    }
    Ok(())
}

/// The token to register from the receiver's token file (as `serve` reads it: one token per
/// line, at most two): the last one (while rotating, the newer), and a note when there are two.
fn read_token_file(path: &Path) -> Result<(String, String), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let lines: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if lines.len() > 2 {
        return Err(format!("{}: {} lines: at most 2 tokens", path.display(), lines.len()));
    }
    let last = lines.last().copied().unwrap_or_default();
    auth_header_check(last).map_err(|e| format!("{}: {e}", path.display()))?;
    let note =
        if lines.len() == 2 { ", its second line (the newer of two)".to_owned() } else { String::new() };
    Ok((last.to_owned(), note))
}

/// The API settings from option values (`value`: flag, else environment; `origin`: how the
/// operator spelled it), shared by `webhook` and `serve --webhook-id`: `--api-url`, else
/// `--domain`; `--api-token` or `--api-token-file`, else `$CREDENTIALS_DIRECTORY/api-token`.
pub(super) fn api_config(
    value: &dyn Fn(&str) -> Result<Option<String>, String>,
    origin: &dyn Fn(&str) -> String,
) -> Result<ApiConfig, String> {
    let base_url = match (value("api-url")?, value("domain")?) {
        (Some(url), _) => egnyte::api_base_url(&url).map_err(|e| format!("{}: {e}", origin("api-url")))?,
        (None, Some(domain)) => {
            egnyte::domain_base_url(&domain).map_err(|e| format!("{}: {e}", origin("domain")))?
        }
        (None, None) => return Err("no Egnyte domain: give --domain acme (or EGNYTE_RECEIVER_DOMAIN)".into()),
    };
    let token = match (value("api-token")?, value("api-token-file")?) {
        (Some(_), Some(_)) => return Err("give --api-token or --api-token-file, not both".into()),
        (Some(token), None) => ApiToken::new(&token).map_err(|e| format!("{}: {e}", origin("api-token")))?,
        (None, Some(file)) => {
            ApiToken::read_file(Path::new(&file)).map_err(|e| format!("{}: {e}", origin("api-token-file")))?
        }
        (None, None) => {
            let credential =
                std::env::var_os("CREDENTIALS_DIRECTORY").map(|dir| PathBuf::from(dir).join("api-token"));
            match credential.filter(|path| path.exists()) {
                Some(path) => ApiToken::read_file(&path).map_err(|e| format!("credential {e}"))?,
                None => {
                    return Err("no Egnyte API token: give --api-token-file FILE (or EGNYTE_RECEIVER_API_TOKEN_FILE, \
                                or an api-token credential); the README's \"Registering and keeping the webhook \
                                alive\" says how a domain admin gets one"
                        .into())
                }
            }
        }
    };
    Ok(ApiConfig { base_url, token })
}

/// `serve`'s watcher settings: `None` without `--webhook-id`. `interval` is the checked
/// `--webhook-check-interval`; a refused one is explained with Egnyte's daily quota.
pub(super) fn watch_config(
    value: &dyn Fn(&str) -> Result<Option<String>, String>,
    origin: &dyn Fn(&str) -> String,
    interval: Result<u64, String>,
) -> Result<Option<WatchConfig>, String> {
    let interval = interval.map_err(|error| {
        let calls = value("webhook-check-interval")
            .ok()
            .flatten()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&secs| secs > 0 && secs < MIN_CHECK_INTERVAL.as_secs())
            .map(|secs| format!("a check every {secs} s is {} calls a day, ", 86_400 / secs))
            .unwrap_or_default();
        format!(
            "{error}: {calls}and Egnyte allows an API token about {DAILY_QUOTA} calls a day; the shortest \
             interval, {} s, takes {} and leaves the rest for re-enabling, retries and your own calls",
            MIN_CHECK_INTERVAL.as_secs(),
            86_400 / MIN_CHECK_INTERVAL.as_secs()
        )
    })?;
    let Some(id) = value("webhook-id")? else { return Ok(None) };
    egnyte::check_webhook_id(&id).map_err(|e| format!("{}: {e}", origin("webhook-id")))?;
    let api =
        api_config(value, origin).map_err(|e| format!("{} needs the API: {e}", origin("webhook-id")))?;
    Ok(Some(WatchConfig { api, webhook_id: id, interval: Duration::from_secs(interval) }))
}

/// Runs the command; returns the exit status.
pub(super) fn run(args: &Args) -> u8 {
    let config = api_config(&|name| args.value(name), &|name| args.origin(name));
    let (config, auth_header) = match config.and_then(|config| {
        let header = if args.action == Action::Register { args.auth_header()? } else { None };
        Ok((config, header))
    }) {
        Ok(found) => found,
        Err(message) => {
            eprintln!("egnyte-receiver: {message}");
            return super::EXIT_USAGE;
        }
    };
    let api = match Api::new(&config, Retry::COMMAND) {
        Ok(api) => api,
        Err(e) => {
            eprintln!("egnyte-receiver: cannot set up the HTTP client: {e}");
            return EXIT_FAILED;
        }
    };
    let api = api.on_retry(|error, wait| {
        eprintln!("egnyte-receiver: {error}: sending again in {}", egnyte::human_duration(wait));
    });
    match execute(args, &api, auth_header) {
        Ok(output) => {
            use std::io::Write;
            let _ = std::io::stdout().write_all(output.as_bytes());
            0
        }
        Err(error) => {
            eprintln!("egnyte-receiver: {}", failure(&args.action, &error));
            EXIT_FAILED
        }
    }
}

/// The one line for a failed call: what was asked, and Egnyte's answer.
fn failure(action: &Action, error: &ApiError) -> String {
    let what = match action {
        Action::Register => "cannot register the webhook".to_owned(),
        Action::List => "cannot list the webhooks".to_owned(),
        Action::Show(id) => format!("cannot read webhook {id}"),
        Action::Status(id) => format!("cannot read webhook {id}'s status"),
        Action::Enable(id) => format!("cannot enable webhook {id}"),
        Action::Disable(id) => format!("cannot disable webhook {id}"),
        Action::Delete(id) => format!("cannot delete webhook {id}"),
    };
    let mut line = format!("{what}: {error}");
    if let ApiError::RateLimited { retry_after: Some(after), .. } = error {
        let at = now_ms() / 1000 + after.as_secs();
        line.push_str(&format!(" (try again after {})", egnyte::utc(at)));
    }
    if *action == Action::Register && matches!(error, ApiError::Unreachable(_)) {
        line.push_str(
            " (the registration may or may not have been made: see `egnyte-receiver webhook list`)",
        );
    }
    line
}

/// Makes the call and renders its answer.
fn execute(args: &Args, api: &Api, auth_header: Option<(String, String)>) -> Result<String, ApiError> {
    let json = args.json;
    match &args.action {
        Action::Register => {
            let event_types = match args.flags("event-type") {
                types if types.is_empty() => DEFAULT_EVENT_TYPES.iter().map(|t| t.to_string()).collect(),
                types => types,
            };
            let (auth_header, source) = match auth_header {
                Some((value, source)) => (Some(value), source),
                None => (None, String::new()),
            };
            if auth_header.is_some() {
                eprintln!("egnyte-receiver: authHeader: {source}");
            } else {
                eprintln!(
                    "egnyte-receiver: warning: no --auth-header and no receiver token found: Egnyte's calls will \
                     carry no token (a receiver with one answers them 401)"
                );
            }
            let registration = Registration {
                url: args.flag("url").unwrap_or_default().to_owned(),
                event_types,
                paths: args.flags("path"),
                auth_header,
            };
            let hook = api.register(&registration)?;
            warn_expiry(&hook);
            if json {
                return Ok(format!("{}\n", json_webhook(&hook, false)));
            }
            let mut out = format!(
                "registered: Egnyte sends {} {} to {}\n",
                registration.event_types.join(", "),
                match registration.paths.is_empty() {
                    true => "events of the whole domain".to_owned(),
                    false => format!("events under {}", registration.paths.join(", ")),
                },
                registration.url
            );
            out.push_str(&text_webhook(&hook, false));
            out.push_str(&format!(
                "keep it enabled with: egnyte-receiver serve --webhook-id {} (or EGNYTE_RECEIVER_WEBHOOK_ID)\n",
                hook.id
            ));
            Ok(out)
        }
        Action::List => {
            let hooks = api.list()?;
            hooks.iter().for_each(warn_expiry);
            if json {
                let items: Vec<String> = hooks.iter().map(|h| json_webhook(h, false)).collect();
                return Ok(format!("[{}]\n", items.join(",")));
            }
            if hooks.is_empty() {
                return Ok("no webhook registered by this API token's app in this domain\n".into());
            }
            let width = hooks.iter().map(|h| h.id.chars().count()).max().unwrap_or(0).max(10);
            let status_width = hooks.iter().map(|h| h.status.chars().count()).max().unwrap_or(0).max(8);
            let mut out = format!("{:<width$}  {:<status_width$}  EXPIRES\n", "WEBHOOK ID", "STATUS");
            for hook in &hooks {
                out.push_str(&format!(
                    "{:<width$}  {:<status_width$}  {}\n",
                    hook.id,
                    status_text(hook),
                    expiry_text(hook.expires)
                ));
            }
            Ok(out)
        }
        Action::Show(id) => {
            let hook = api.details(id)?;
            warn_expiry(&hook);
            Ok(if json { format!("{}\n", json_webhook(&hook, true)) } else { text_webhook(&hook, true) })
        }
        Action::Status(id) => {
            let hook = api.status(id)?;
            warn_expiry(&hook);
            Ok(if json { format!("{}\n", json_webhook(&hook, false)) } else { text_webhook(&hook, false) })
        }
        Action::Enable(id) | Action::Disable(id) => {
            let hook = api.set_status(id, matches!(args.action, Action::Enable(_)))?;
            Ok(if json { format!("{}\n", json_webhook(&hook, false)) } else { text_webhook(&hook, false) })
        }
        Action::Delete(id) => {
            api.delete(id)?;
            if json {
                let mut out = String::from("{\"webhookId\":");
                let _ = write_json_string(&mut out, id);
                out.push_str(",\"deleted\":true}\n");
                return Ok(out);
            }
            Ok(format!("deleted webhook {id}\n"))
        }
    }
}

/// `enabled`, `disabled`, or what Egnyte said (`?` for nothing).
fn status_text(hook: &Webhook) -> &str {
    if hook.status.is_empty() {
        "?"
    } else {
        &hook.status
    }
}

/// `2036-07-18T13:20:00Z (in 3500 days)`, `… (expired)`, `unknown`.
fn expiry_text(expires: Option<u64>) -> String {
    let Some(expires) = expires else { return "unknown".into() };
    let now = now_ms() / 1000;
    if expires > now {
        format!(
            "{} (in {})",
            egnyte::utc(expires),
            egnyte::human_duration(Duration::from_secs(expires - now))
        )
    } else {
        format!("{} (expired)", egnyte::utc(expires))
    }
}

/// On stderr: the webhook expires within [`EXPIRY_WARNING`], and what to do.
fn warn_expiry(hook: &Webhook) {
    let Some(expires) = hook.expires else { return };
    let now = now_ms() / 1000;
    if expires.saturating_sub(now) < EXPIRY_WARNING.as_secs() {
        eprintln!(
            "egnyte-receiver: warning: webhook {} {}; to go on receiving, register a new one (webhook register), \
             point serve --webhook-id at it, then delete this one",
            hook.id,
            if expires > now { format!("expires {}", expiry_text(Some(expires))) } else { format!("expired at {}", egnyte::utc(expires)) }
        );
    }
}

/// The webhook as `name  value` lines; with `details`, its target and filters too.
fn text_webhook(hook: &Webhook, details: bool) -> String {
    let mut rows = vec![
        ("webhook", hook.id.clone()),
        ("status", status_text(hook).to_owned()),
        ("expires", expiry_text(hook.expires)),
    ];
    if details {
        rows.push(("url", hook.url.clone().unwrap_or_else(|| "?".into())));
        rows.push((
            "event types",
            if hook.event_types.is_empty() { "?".into() } else { hook.event_types.join(", ") },
        ));
        rows.push(("path", hook.path.clone().unwrap_or_else(|| "(the whole domain)".into())));
        rows.push((
            "auth header",
            match hook.auth_header_chars {
                Some(chars) => format!("set ({chars} characters, not shown)"),
                None => "none".into(),
            },
        ));
    }
    let width = rows.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    rows.iter().map(|(name, value)| format!("{name:<width$}  {value}\n")).collect()
}

/// The webhook as a JSON object: `webhookId`, `status`, `expires` (Unix seconds or null),
/// `expiresAt` (RFC 3339 or null); with `details` also `url`, `eventType`, `path` and
/// `authHeaderSet` (never the value).
fn json_webhook(hook: &Webhook, details: bool) -> String {
    let mut out = String::from("{\"webhookId\":");
    let _ = write_json_string(&mut out, &hook.id);
    out.push_str(",\"status\":");
    let _ = write_json_string(&mut out, &hook.status);
    match hook.expires {
        Some(expires) => {
            out.push_str(&format!(",\"expires\":{expires},\"expiresAt\":\"{}\"", egnyte::utc(expires)))
        }
        None => out.push_str(",\"expires\":null,\"expiresAt\":null"),
    }
    if details {
        out.push_str(",\"url\":");
        match &hook.url {
            Some(url) => {
                let _ = write_json_string(&mut out, url);
            }
            None => out.push_str("null"),
        }
        out.push_str(",\"eventType\":[");
        for (i, event_type) in hook.event_types.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write_json_string(&mut out, event_type);
        }
        out.push_str("],\"path\":");
        match &hook.path {
            Some(path) => {
                let _ = write_json_string(&mut out, path);
            }
            None => out.push_str("null"),
        }
        out.push_str(&format!(",\"authHeaderSet\":{}", hook.auth_header_chars.is_some()));
    }
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn parse(words: &[&str]) -> Result<Args, String> {
        let args = std::iter::once("webhook").chain(words.iter().copied()).map(OsString::from);
        match Command::from_args(args) {
            Ok(Command::Webhook(args)) => Ok(args),
            Ok(other) => Err(format!("{other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn actions_and_their_arguments_are_checked() {
        assert_eq!(parse(&["list", "--json"]).unwrap().action, Action::List);
        assert!(parse(&["list"]).map(|a| !a.json).unwrap());
        let args = parse(&["status", "w-1", "--domain", "acme"]).unwrap();
        assert_eq!((&args.action, args.flag("domain")), (&Action::Status("w-1".into()), Some("acme")));
        let register = parse(&[
            "register",
            "--url",
            "https://h.example.com/e",
            "--event-type",
            "fs:*",
            "--event-type",
            "link:*",
        ])
        .unwrap();
        assert_eq!(register.flags("event-type"), ["fs:*", "link:*"]);
        for (words, error) in [
            (&[][..], "needs an action"),
            (&["frobnicate"][..], "unknown webhook action"),
            (&["show"][..], "needs a webhook ID"),
            (&["show", "a/b"][..], "is not a webhook id"),
            (&["show", "a", "b"][..], "unexpected argument"),
            (&["list", "--url", "https://x"][..], "--url is an option of webhook register only"),
            (&["register"][..], "needs --url"),
            (&["register", "--url", "http://h/e"][..], "https:// URLs only"),
            (&["register", "--url", "https://h/e", "--event-type", "add_file"][..], "not an event type"),
            (&["register", "--url", "https://h/e", "--path", "/a,b"][..], "without commas"),
            (&["register", "--url", "https://h/e", "--path", "Shared"][..], "a folder like"),
            (&["register", "--url", "https://h/e", "--auth-header", " x"][..], "--auth-header"),
            (&["list", "--nope"][..], "nope"),
        ] {
            let got = parse(words).unwrap_err();
            assert!(got.contains(error), "{words:?}: {got}");
        }
        assert!(parse(&["--help"]).unwrap_err().contains("HelpText"), "help");
    }

    #[test]
    fn a_refused_interval_says_why_in_calls_a_day() {
        let value = |name: &str| Ok((name == "webhook-check-interval").then(|| "60".to_owned()));
        let origin = |name: &str| format!("--{name}");
        let error = watch_config(&value, &origin, Err("--webhook-check-interval: from 120 to 86400".into()))
            .unwrap_err();
        assert!(
            error.starts_with("--webhook-check-interval: from 120 to 86400: a check every 60 s is 1440 calls a day, and Egnyte allows an API token about 1000 calls a day"),
            "{error}"
        );
        let none = |_: &str| Ok(None);
        assert_eq!(watch_config(&none, &origin, Ok(300)), Ok(None), "no --webhook-id: nothing watched");
        let partial = |name: &str| Ok((name == "webhook-id").then(|| "w1".to_owned()));
        let error = watch_config(&partial, &origin, Ok(300)).unwrap_err();
        assert!(error.starts_with("--webhook-id needs the API: no Egnyte domain"), "{error}");
        let full = |name: &str| {
            Ok(match name {
                "webhook-id" => Some("w1".to_owned()),
                "domain" => Some("acme".to_owned()),
                "api-token" => Some("tok".to_owned()),
                _ => None,
            })
        };
        let watch = watch_config(&full, &origin, Ok(300)).unwrap().unwrap();
        assert_eq!(
            (watch.api.base_url.as_str(), watch.interval),
            ("https://acme.egnyte.com", Duration::from_secs(300))
        );
    }

    #[test]
    fn token_files_give_the_newer_token() {
        let dir = egnyte_receiver::test_dir::TempDir::new("webhook-token");
        let path = dir.path().join("token");
        std::fs::write(&path, "Token old\r\nToken new\n").unwrap();
        assert_eq!(
            read_token_file(&path).unwrap(),
            ("Token new".into(), ", its second line (the newer of two)".into())
        );
        std::fs::write(&path, "Token one\n").unwrap();
        assert_eq!(read_token_file(&path).unwrap(), ("Token one".into(), String::new()));
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert!(read_token_file(&path).is_err());
        std::fs::write(&path, "\n").unwrap();
        assert!(read_token_file(&path).is_err());
    }

    #[test]
    fn output_never_shows_the_auth_header() {
        let hook = Webhook {
            id: "w1".into(),
            status: "enabled".into(),
            expires: Some(2_100_000_000),
            url: Some("https://h/e".into()),
            event_types: vec!["fs:*".into()],
            path: None,
            auth_header_chars: Some(12),
        };
        assert_eq!(
            json_webhook(&hook, true),
            r#"{"webhookId":"w1","status":"enabled","expires":2100000000,"expiresAt":"2036-07-18T13:20:00Z","url":"https://h/e","eventType":["fs:*"],"path":null,"authHeaderSet":true}"#
        );
        let text = text_webhook(&hook, true);
        assert!(text.contains("auth header  set (12 characters, not shown)\n"), "{text}");
        assert!(
            text.starts_with("webhook      w1\nstatus       enabled\nexpires      2036-07-18T13:20:00Z (in "),
            "{text}"
        );
    }
}
