//! `serve --webhook-id ID`: a thread that keeps the receiver's own webhook enabled at Egnyte.
//!
//! Egnyte disables a webhook after repeated failed deliveries (a long reboot, a full disk, a
//! broken proxy) and then sends nothing, so a receiver that is healthy again would sit idle. The
//! watcher reads the webhook's status ([`crate::egnyte::Api::status`]) right at the start and
//! every `--webhook-check-interval`, and:
//! * **enabled**: notes the time (the last check that saw it enabled);
//! * **disabled**, and the receiver can store events (journal writable, disk not full, journal
//!   within `--max-journal-bytes`, delivery running, not stopping): re-enables it, counts it, and
//!   warns, naming how long it may have been disabled (since the later of the last event
//!   accepted, also before this start as the journal's newest record says, and the last check
//!   that saw it enabled). It never re-enables while events cannot be stored: Egnyte's calls
//!   would fail and disable it again;
//! * `expires` less than [`EXPIRY_WARNING`] away: warns (at most once a day), saying how to
//!   re-register; that stays the operator's decision.
//!
//! Failures never touch receiving: the thread only reads the receiver's state. A rate-limited
//! call is tried again after its `Retry-After`; no answer or a 5xx after 5 s, 10 s, 20 s, …
//! (at most the interval); a refusal (401, 403, 404) at the next interval, with an error line.
//! Egnyte's daily quota is about 1,000 calls per token: the interval is at least
//! [`MIN_CHECK_INTERVAL`](crate::egnyte::MIN_CHECK_INTERVAL) (720 checks a day), 300 s by default.
//!
//! The thread holds the service's state weakly, sleeps parked, and ends when the receiver
//! stops ([`Watcher::stop`]) or is dropped; a call in flight ends within the outbound client's
//! timeouts. Metrics: [`WebhookMetrics`]. `/healthz` does not look at any of it.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::Shared;
use crate::egnyte::{human_duration, utc, Api, ApiError, Retry, WatchConfig, Webhook, EXPIRY_WARNING};
use crate::time::now_ms;

/// First wait after a call that got no answer (or a 5xx); doubled each time, up to the interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(5);
/// Longest wait for a `Retry-After` (Egnyte's daily quota resets at midnight UTC).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);
/// Time between two warnings that the webhook expires soon.
const EXPIRY_WARNING_EVERY: Duration = Duration::from_secs(86_400);

/// The watcher's metrics (written with the others by `metrics.rs`).
#[derive(Debug, Default)]
pub(super) struct WebhookMetrics {
    /// True once a watcher runs; without one only the families' descriptions are written.
    watching: AtomicBool,
    /// 1 enabled, 0 disabled, -1 unknown.
    enabled: AtomicI64,
    reenabled: AtomicU64,
    failures: AtomicU64,
    /// Unix seconds; 0 while unknown.
    expires: AtomicU64,
}

impl WebhookMetrics {
    /// Writes the four families; their samples only while a webhook is watched (the expiry once
    /// known), so that the alert rules see nothing from a receiver that does not watch.
    pub(super) fn render(&self, out: &mut impl fmt::Write) -> fmt::Result {
        let watching = self.watching.load(Ordering::Relaxed);
        let expires = self.expires.load(Ordering::Relaxed);
        let families = [
            (
                "webhook_enabled",
                "gauge",
                "The --webhook-id webhook at Egnyte: 1 enabled, 0 disabled, -1 unknown (not read yet, or the last check failed).",
                watching.then(|| self.enabled.load(Ordering::Relaxed).to_string()),
            ),
            (
                "webhook_reenabled_total",
                "counter",
                "Times the webhook was found disabled at Egnyte and re-enabled (events Egnyte sent meanwhile are probably lost).",
                watching.then(|| self.reenabled.load(Ordering::Relaxed).to_string()),
            ),
            (
                "webhook_check_failures_total",
                "counter",
                "Webhook status checks and re-enables that failed: no answer, refused or rate-limited (receiving is not affected).",
                watching.then(|| self.failures.load(Ordering::Relaxed).to_string()),
            ),
            (
                "webhook_expires_timestamp_seconds",
                "gauge",
                "When the webhook expires at Egnyte (Unix time), once a check has read it.",
                (watching && expires > 0).then(|| expires.to_string()),
            ),
        ];
        for (name, kind, help, value) in families {
            writeln!(out, "# HELP egnyte_receiver_{name} {help}")?;
            writeln!(out, "# TYPE egnyte_receiver_{name} {kind}")?;
            if let Some(value) = value {
                writeln!(out, "egnyte_receiver_{name} {value}")?;
            }
        }
        Ok(())
    }
}

/// A running watcher.
#[derive(Debug)]
pub(super) struct Watcher {
    stop: Arc<AtomicBool>,
    thread: std::thread::Thread,
}

impl Watcher {
    /// Asks the thread to end (at once when it waits; after its call when one is in flight).
    pub(super) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.unpark();
    }
}

/// Starts watching `config`'s webhook; `None` (logged) when the thread or the HTTP client cannot
/// be started: receiving goes on without it.
pub(super) fn start(config: WatchConfig, shared: &Arc<Shared>, max_journal_bytes: u64) -> Option<Watcher> {
    let metrics = &shared.metrics.webhook;
    metrics.enabled.store(-1, Ordering::Relaxed);
    metrics.watching.store(true, Ordering::Relaxed);
    let id = config.webhook_id.clone();
    let api = match Api::new(&config.api, Retry::ONCE) {
        Ok(api) => api,
        Err(e) => {
            log::error!("webhook {id}: cannot start the HTTP client ({e}): its status is not watched");
            return None;
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    let mut watch = Watch {
        interval: config.interval,
        id: config.webhook_id,
        api,
        shared: Arc::downgrade(shared),
        max_journal_bytes,
        started_ms: now_ms(),
        last_enabled_ms: None,
        failures_in_row: 0,
        expiry_warned: None,
        first_read: true,
        unhealthy_warned: false,
        journaled_before_ms: None,
    };
    let thread_stop = Arc::clone(&stop);
    let spawned =
        std::thread::Builder::new().name("webhook-watch".into()).spawn(move || watch.run(&thread_stop));
    match spawned {
        Ok(handle) => {
            log::info!(
                "watching webhook {id} at {} every {} (from now)",
                config.api.base_url,
                human_duration(config.interval)
            );
            Some(Watcher { stop, thread: handle.thread().clone() })
        }
        Err(e) => {
            log::error!("webhook {id}: cannot start the watcher thread ({e}): its status is not watched");
            None
        }
    }
}

/// The watcher thread's state.
struct Watch {
    id: String,
    interval: Duration,
    api: Api,
    shared: Weak<Shared>,
    max_journal_bytes: u64,
    started_ms: u64,
    /// The last check that saw the webhook enabled (or re-enabled it).
    last_enabled_ms: Option<u64>,
    /// Failed calls since the last success (for the backoff).
    failures_in_row: u32,
    /// The expiry last warned about, and when.
    expiry_warned: Option<(u64, Instant)>,
    /// No status read yet (the first one is logged at info).
    first_read: bool,
    /// The "left disabled" warning was given for the current spell of ill health.
    unhealthy_warned: bool,
    /// When the newest record journaled before this start was accepted.
    journaled_before_ms: Option<u64>,
}

impl Watch {
    fn run(&mut self, stop: &AtomicBool) {
        if let Some(shared) = self.shared.upgrade() {
            self.journaled_before_ms = newest_record_ms(&shared);
        }
        while !stop.load(Ordering::SeqCst) {
            let Some(shared) = self.shared.upgrade() else { return };
            if shared.draining.load(Ordering::SeqCst) {
                return;
            }
            let wait = self.check(&shared);
            drop(shared);
            let deadline = Instant::now() + wait;
            loop {
                let now = Instant::now();
                if stop.load(Ordering::SeqCst) || now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }

    /// One check (and a re-enable when due); returns the time until the next.
    fn check(&mut self, shared: &Shared) -> Duration {
        let metrics = &shared.metrics.webhook;
        let hook = match self.api.status(&self.id) {
            Ok(hook) => hook,
            Err(error) => {
                metrics.enabled.store(-1, Ordering::Relaxed);
                return self.failed(shared, "cannot read its status", &error);
            }
        };
        self.expiry(shared, &hook);
        match hook.enabled() {
            Some(true) => {
                metrics.enabled.store(1, Ordering::Relaxed);
                self.last_enabled_ms = Some(now_ms());
                self.failures_in_row = 0;
                self.unhealthy_warned = false;
                if std::mem::take(&mut self.first_read) {
                    log::info!("webhook {}: enabled at Egnyte{}", self.id, expires_text(hook.expires));
                } else {
                    log::debug!("webhook {}: enabled", self.id);
                }
                self.interval
            }
            Some(false) => {
                self.first_read = false;
                metrics.enabled.store(0, Ordering::Relaxed);
                self.disabled(shared)
            }
            None => {
                self.first_read = false;
                metrics.enabled.store(-1, Ordering::Relaxed);
                self.failures_in_row = 0;
                log::warn!(
                    "webhook {}: Egnyte reports the status {:?}, neither enabled nor disabled: nothing done",
                    self.id,
                    hook.status
                );
                self.interval
            }
        }
    }

    /// The webhook is disabled: re-enable it if events can be stored.
    fn disabled(&mut self, shared: &Shared) -> Duration {
        if let Some(why) = cannot_store(shared, self.max_journal_bytes) {
            self.failures_in_row = 0;
            if !std::mem::replace(&mut self.unhealthy_warned, true) {
                log::warn!(
                    "webhook {} is disabled at Egnyte and is left so for now: the receiver cannot store events \
                     ({why}), and Egnyte would disable it again; it is re-enabled at the first check after that \
                     is fixed (every {})",
                    self.id,
                    human_duration(self.interval)
                );
            }
            return self.interval;
        }
        match self.api.set_status(&self.id, true) {
            Ok(hook) if hook.enabled() != Some(false) => {
                let now = now_ms();
                let metrics = &shared.metrics.webhook;
                metrics.enabled.store(1, Ordering::Relaxed);
                metrics.reenabled.fetch_add(1, Ordering::Relaxed);
                let since_start = Some(shared.metrics.last_accepted_ms()).filter(|&ms| ms > 0);
                let last_event = since_start.max(self.journaled_before_ms);
                log::warn!("{}", reenabled(&self.id, now, self.started_ms, last_event, self.last_enabled_ms));
                self.last_enabled_ms = Some(now);
                self.failures_in_row = 0;
                self.unhealthy_warned = false;
                self.expiry(shared, &hook);
                self.interval
            }
            Ok(_) => {
                let error = ApiError::Unreadable {
                    status: 200,
                    detail: "the answer to enabling it still says disabled".into(),
                };
                self.failed(shared, "cannot re-enable it", &error)
            }
            Err(error) => self.failed(shared, "is disabled at Egnyte and cannot be re-enabled", &error),
        }
    }

    /// Counts and logs a failed call; returns the time until the next try.
    fn failed(&mut self, shared: &Shared, what: &str, error: &ApiError) -> Duration {
        shared.metrics.webhook.failures.fetch_add(1, Ordering::Relaxed);
        self.failures_in_row = self.failures_in_row.saturating_add(1);
        let wait = next_try(error, self.failures_in_row, self.interval);
        if error.transient() {
            log::warn!("webhook {} {what}: {error}; next try in {}", self.id, human_duration(wait));
        } else {
            log::error!(
                "webhook {} {what}: {error}; check --webhook-id and the API token (next try in {})",
                self.id,
                human_duration(wait)
            );
        }
        wait
    }

    /// Records the expiry, and warns (at most daily, or when it changed) when it is near.
    fn expiry(&mut self, shared: &Shared, hook: &Webhook) {
        let Some(expires) = hook.expires else { return };
        shared.metrics.webhook.expires.store(expires, Ordering::Relaxed);
        let now_s = now_ms() / 1000;
        if expires.saturating_sub(now_s) >= EXPIRY_WARNING.as_secs() {
            return;
        }
        let due = match self.expiry_warned {
            Some((warned, at)) => warned != expires || at.elapsed() >= EXPIRY_WARNING_EVERY,
            None => true,
        };
        if due {
            self.expiry_warned = Some((expires, Instant::now()));
            log::warn!("{}", expiry_warning(&self.id, expires, now_s));
        }
    }
}

/// When the newest journaled record was accepted (the newest segment is never removed, so it is
/// there unless the journal is empty or unreadable).
fn newest_record_ms(shared: &Shared) -> Option<u64> {
    let next = shared.journal.committed_seq();
    let last = next.checked_sub(1).filter(|&seq| seq > 0)?;
    let record = shared.journal.reader(last).next(next).ok()??;
    Some(record.meta.accepted_ms).filter(|&ms| ms > 0)
}

/// Why events cannot be stored now, or `None` when they can.
fn cannot_store(shared: &Shared, max_journal_bytes: u64) -> Option<String> {
    if shared.draining.load(Ordering::SeqCst) {
        return Some("it is stopping".into());
    }
    if let Some(problem) = shared.ingest.problem() {
        return Some(problem.trim_start_matches("unhealthy: ").to_owned());
    }
    if !shared.dispatcher.running() {
        return Some("delivery has stopped".into());
    }
    if shared.journal.undelivered_bytes() > max_journal_bytes {
        return Some(
            "the journal holds more undelivered events than --max-journal-bytes: POSTs get 503".into(),
        );
    }
    None
}

/// The wait before the next try after `error`, the `failures`-th in a row.
fn next_try(error: &ApiError, failures: u32, interval: Duration) -> Duration {
    let backoff =
        FIRST_BACKOFF.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(16))).min(interval);
    match error {
        ApiError::RateLimited { retry_after, .. } => {
            retry_after.unwrap_or(backoff).clamp(Duration::from_secs(1), MAX_RETRY_AFTER)
        }
        error if error.transient() => backoff,
        _ => interval,
    }
}

/// `, expires 2036-07-18T13:20:00Z (in 3500 days)`, or nothing.
fn expires_text(expires: Option<u64>) -> String {
    let Some(expires) = expires else { return String::new() };
    let now_s = now_ms() / 1000;
    if expires > now_s {
        format!(", expires {} (in {})", utc(expires), human_duration(Duration::from_secs(expires - now_s)))
    } else {
        format!(", expired {}", utc(expires))
    }
}

/// The warning for an expiry within [`EXPIRY_WARNING`].
fn expiry_warning(id: &str, expires: u64, now_s: u64) -> String {
    let when = if expires > now_s {
        format!(
            "expires at {} (in {}): Egnyte stops sending then",
            utc(expires),
            human_duration(Duration::from_secs(expires - now_s))
        )
    } else {
        format!("expired at {}: Egnyte may have stopped sending", utc(expires))
    };
    format!(
        "webhook {id} {when}. Re-registering is the operator's decision: `egnyte-receiver webhook register --url \
         URL` prints a new id; set --webhook-id (EGNYTE_RECEIVER_WEBHOOK_ID) to it and restart, then \
         `egnyte-receiver webhook delete {id}`"
    )
}

/// The warning after a re-enable: how long the webhook may have been disabled.
fn reenabled(id: &str, now: u64, started: u64, last_event: Option<u64>, last_enabled: Option<u64>) -> String {
    let ago = |ms: u64| human_duration(Duration::from_millis(now.saturating_sub(ms)));
    let at = |ms: u64| crate::time::rfc3339_ms(ms);
    let event = match last_event {
        Some(ms) => format!("the last event accepted was at {} ({} ago)", at(ms), ago(ms)),
        None => "no event in the journal".to_owned(),
    };
    let check = match last_enabled {
        Some(ms) => format!("the last check that saw it enabled was at {} ({} ago)", at(ms), ago(ms)),
        None => "no check since this start saw it enabled".to_owned(),
    };
    let span = match last_event.max(last_enabled) {
        Some(since) => format!("for up to {} (since {})", ago(since), at(since)),
        None => format!("since before this start ({}), for how long is unknown", at(started)),
    };
    format!(
        "webhook {id} was disabled at Egnyte (after failed deliveries) and is re-enabled; it may have been \
         disabled {span}: {event}, {check}. Egnyte does not send again what it could not deliver meanwhile: \
         fetch that period from Egnyte's Events API if it matters"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egnyte::RateLimit;

    const INTERVAL: Duration = Duration::from_secs(300);

    #[test]
    fn retries_honour_retry_after_and_back_off_within_the_interval() {
        let limited = |after: Option<u64>| ApiError::RateLimited {
            limit: RateLimit::PerSecond,
            retry_after: after.map(Duration::from_secs),
        };
        assert_eq!(next_try(&limited(Some(1)), 1, INTERVAL), Duration::from_secs(1));
        assert_eq!(next_try(&limited(Some(0)), 1, INTERVAL), Duration::from_secs(1), "at least a second");
        assert_eq!(next_try(&limited(Some(3600)), 1, INTERVAL), Duration::from_secs(3600), "a daily quota");
        assert_eq!(next_try(&limited(None), 2, INTERVAL), Duration::from_secs(10));
        let unreachable = ApiError::Unreachable("connection refused".into());
        let waits: Vec<u64> = (1..=8).map(|n| next_try(&unreachable, n, INTERVAL).as_secs()).collect();
        assert_eq!(waits, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(next_try(&unreachable, u32::MAX, INTERVAL), INTERVAL);
        let not_found = ApiError::Refused { status: 404, message: "no such webhook".into() };
        assert_eq!(next_try(&not_found, 1, INTERVAL), INTERVAL, "a refusal does not fix itself");
        let unavailable = ApiError::Refused { status: 503, message: String::new() };
        assert_eq!(next_try(&unavailable, 1, INTERVAL), Duration::from_secs(5));
    }

    #[test]
    fn the_re_enable_warning_says_how_long_it_may_have_been_disabled() {
        let start = 1_795_853_000_000; // 2026-11-28T08:03:20Z
        let now = start + 7_200_000;
        let both = reenabled("w1", now, start, Some(start + 600_000), Some(start + 3_600_000));
        assert!(both.contains("disabled for up to 60 min (since 2026-11-28T09:03:20.000Z)"), "{both}");
        assert!(
            both.contains("the last event accepted was at 2026-11-28T08:13:20.000Z (110 min ago)"),
            "{both}"
        );
        assert!(
            both.contains("the last check that saw it enabled was at 2026-11-28T09:03:20.000Z (60 min ago)"),
            "{both}"
        );
        let none = reenabled("w1", now, start, None, None);
        assert!(
            none.contains("since before this start (2026-11-28T08:03:20.000Z), for how long is unknown"),
            "{none}"
        );
        assert!(none.contains("no event in the journal") && none.contains("no check since this start"));
        let event_only = reenabled("w1", now, start, Some(now - 30_000), None);
        assert!(event_only.contains("for up to 30 s"), "{event_only}");
        assert!(!both.contains('\n'));
    }

    #[test]
    fn the_expiry_warning_says_how_to_re_register() {
        let text = expiry_warning("w1", 1_000 + 3 * 86_400, 1_000);
        assert!(text.starts_with("webhook w1 expires at 1970-01-04T00:16:40Z (in 3 days)"), "{text}");
        assert!(
            text.contains("egnyte-receiver webhook register") && text.contains("webhook delete w1"),
            "{text}"
        );
        assert!(expiry_warning("w1", 10, 1_000).contains("expired at 1970-01-01T00:00:10Z"));
    }

    #[test]
    fn metrics_are_described_always_and_sampled_only_while_watching() {
        let metrics = WebhookMetrics::default();
        let mut text = String::new();
        metrics.render(&mut text).unwrap();
        assert_eq!(text.lines().filter(|l| l.starts_with("# TYPE")).count(), 4);
        assert!(text.lines().all(|l| l.starts_with('#')), "{text}");
        metrics.watching.store(true, Ordering::Relaxed);
        metrics.enabled.store(-1, Ordering::Relaxed);
        let mut text = String::new();
        metrics.render(&mut text).unwrap();
        assert!(text.contains("\negnyte_receiver_webhook_enabled -1\n"), "{text}");
        assert!(text.contains("\negnyte_receiver_webhook_reenabled_total 0\n"), "{text}");
        assert!(!text.contains("\negnyte_receiver_webhook_expires_timestamp_seconds "), "unknown: no sample");
        metrics.expires.store(2_100_000_000, Ordering::Relaxed);
        let mut text = String::new();
        metrics.render(&mut text).unwrap();
        assert!(text.contains("\negnyte_receiver_webhook_expires_timestamp_seconds 2100000000\n"), "{text}");
    }
}
