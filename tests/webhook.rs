//! Egnyte's webhook management API, against a fake of it on loopback (`support/fake_egnyte.rs`;
//! nothing here reaches the internet):
//!
//! * `egnyte-receiver webhook …`: each action's request (method, path, body, bearer token) and
//!   output, as text and as `--json`; exit status 0, 1 (Egnyte refused: its error text is in
//!   the message; or unreachable) and 2 (usage); the options from the environment; a
//!   rate-limit answer (403 `ERR_403_DEVELOPER_OVER_QPS`, 429) honoured by waiting its
//!   `Retry-After`, a used-up daily quota reported at once; the API token and any `authHeader`
//!   value never printed.
//! * `serve --webhook-id`: a webhook found disabled at start is re-enabled at once (counted,
//!   warned with how long it may have been disabled); a rate-limited check is tried again after
//!   `Retry-After`; an unreachable API never affects receiving while the failure counter grows;
//!   an expiry within 7 days is warned; a receiver that cannot store events leaves the webhook
//!   disabled; the interval is refused below Egnyte's daily quota, saying so; the token is in no
//!   log line, even at trace level.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fake_egnyte::{self, now, FakeEgnyte, Hook};
use support::server::{self, Server, TempDir, BIN};

/// The API token the fake expects.
const TOKEN: &str = "egnyte-api-T0KEN-7Hq2xw";
/// A receiver token (an `authHeader` value): never printed either.
const AUTH: &str = "Token receiver-secret-1";
/// A webhook id.
const ID: &str = "5da697d9-f34e-55ce-a68f-3eece8dc4086";

/// What one `webhook` run printed.
#[derive(Debug)]
struct Run {
    status: i32,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("stdout is not JSON: {e}: {self:?}"))
    }
}

/// A directory with the API token in `api-token`.
fn token_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new("webhook");
    let file = dir.path().join("api-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    (dir, file)
}

/// `egnyte-receiver webhook ARGS` with only `env` of our variables set (and no proxy); asserts
/// that neither secret is in its output.
fn run(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(BIN);
    command.arg("webhook").args(args);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("EGNYTE_RECEIVER_")
            || name == "CREDENTIALS_DIRECTORY"
            || name.to_ascii_lowercase().ends_with("_proxy")
        {
            command.env_remove(name);
        }
    }
    command.env("NO_PROXY", "*").envs(env.iter().copied()).stdin(Stdio::null());
    let start = Instant::now();
    let output = command.output().unwrap_or_else(|e| panic!("{BIN}: {e}"));
    let run = Run {
        status: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        elapsed: start.elapsed(),
    };
    for secret in [TOKEN, AUTH, "receiver-secret"] {
        assert!(!run.stdout.contains(secret) && !run.stderr.contains(secret), "{secret:?} printed: {run:?}");
    }
    run
}

/// `webhook ARGS` against the fake, with the token from a file.
fn call(fake: &FakeEgnyte, args: &[&str]) -> Run {
    let (_dir, file) = token_dir();
    let url = fake.url();
    let mut all = args.to_vec();
    all.extend(["--api-url", &url, "--api-token-file", file.to_str().unwrap()]);
    run(&all, &[])
}

/// Asserts success, returning the run.
fn ok(run: Run) -> Run {
    assert_eq!(run.status, 0, "{run:?}");
    run
}

#[test]
fn register_sends_the_documented_body_and_prints_id_status_and_expiry() {
    let fake = FakeEgnyte::start(TOKEN);
    let text = ok(call(
        &fake,
        &[
            "register",
            "--url",
            "https://hooks.example.com/egnyte/webhook",
            "--event-type",
            "fs:add_file",
            "--event-type",
            "fs:delete_file",
            "--path",
            "/Shared/Projects",
            "--path",
            "/Shared/Invoices",
            "--auth-header",
            AUTH,
        ],
    ));
    let requests = fake.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.line(), "POST /pubapi/v1/webhooks");
    assert_eq!(request.header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.json(),
        json!({"url": "https://hooks.example.com/egnyte/webhook", "eventType": ["fs:add_file", "fs:delete_file"],
               "path": "/Shared/Projects, /Shared/Invoices", "authHeader": AUTH})
    );
    let id = "5da697d9-f34e-45ce-a68f-000000000001";
    assert_eq!(
        text.stdout,
        format!(
            "registered: Egnyte sends fs:add_file, fs:delete_file events under /Shared/Projects, /Shared/Invoices to \
             https://hooks.example.com/egnyte/webhook\nwebhook  {id}\nstatus   enabled\nexpires  2036-07-18T13:20:00Z (in {})\n\
             keep it enabled with: egnyte-receiver serve --webhook-id {id} (or EGNYTE_RECEIVER_WEBHOOK_ID)\n",
            in_days(2_100_000_000)
        )
    );
    assert!(text.stderr.contains("authHeader: --auth-header"), "{text:?}");
    // --json: one object; the default event type is fs:*, no path, no header given: a warning.
    let json =
        ok(call(&fake, &["register", "--json", "--url", "https://h.example.com/e", "--auth-header", AUTH]));
    assert_eq!(
        json.json(),
        json!({"webhookId": "5da697d9-f34e-45ce-a68f-000000000002", "status": "enabled", "expires": 2_100_000_000_u64,
               "expiresAt": "2036-07-18T13:20:00Z"})
    );
    assert_eq!(
        fake.requests()[1].json(),
        json!({"url": "https://h.example.com/e", "eventType": ["fs:*"], "authHeader": AUTH})
    );
}

/// `2036-…`'s distance from now as the commands print it (`4000 days 3 h`).
fn in_days(at: u64) -> String {
    let secs = at - now();
    match secs % 86_400 / 3600 {
        0 => format!("{} days", secs / 86_400),
        h => format!("{} days {h} h", secs / 86_400),
    }
}

#[test]
fn register_uses_the_receivers_token_file_as_serve_reads_it() {
    let fake = FakeEgnyte::start(TOKEN);
    let (dir, api_token) = token_dir();
    let receiver_token = dir.path().join("token");
    std::fs::write(&receiver_token, format!("{AUTH}\n")).unwrap();
    let url = fake.url();
    let common = ["--api-url", url.as_str(), "--api-token-file", api_token.to_str().unwrap()];
    let mut args = vec![
        "register",
        "--url",
        "https://h.example.com/e",
        "--auth-token-file",
        receiver_token.to_str().unwrap(),
    ];
    args.extend(common);
    let first = ok(run(&args, &[]));
    assert_eq!(fake.requests()[0].json()["authHeader"], AUTH);
    assert!(
        first.stderr.contains(&format!("authHeader: the receiver's token from {}", receiver_token.display())),
        "{first:?}"
    );
    // From the environment, as serve reads it; with two tokens (rotating), the newer.
    std::fs::write(&receiver_token, "Token old-one\nToken receiver-secret-2\n").unwrap();
    let mut args = vec!["register", "--url", "https://h.example.com/e"];
    args.extend(common);
    let second = ok(run(&args, &[("EGNYTE_RECEIVER_AUTH_TOKEN_FILE", receiver_token.to_str().unwrap())]));
    assert_eq!(fake.requests()[1].json()["authHeader"], "Token receiver-secret-2");
    assert!(second.stderr.contains("its second line (the newer of two)"), "{second:?}");
    assert!(!second.stderr.contains("old-one"));
}

#[test]
fn list_show_status_enable_disable_delete() {
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID));
    fake.add(Hook::new("w-2").status("disabled").expires(2_000_000_000));
    let list = ok(call(&fake, &["list"]));
    let lines: Vec<&str> = list.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{list:?}");
    assert!(
        lines[0].starts_with("WEBHOOK ID") && lines[0].contains("STATUS") && lines[0].ends_with("EXPIRES")
    );
    assert!(lines[1].starts_with(&format!("{ID}  enabled   ")), "{list:?}");
    assert!(
        lines[2].starts_with("w-2") && lines[2].contains("  disabled  2033-05-18T03:33:20Z (in "),
        "{list:?}"
    );
    let list_json = ok(call(&fake, &["list", "--json"])).json();
    assert_eq!(list_json.as_array().map(Vec::len), Some(2));
    assert_eq!(
        list_json[1],
        json!({"webhookId": "w-2", "status": "disabled", "expires": 2_000_000_000_u64, "expiresAt": "2033-05-18T03:33:20Z"})
    );

    // show: the fake echoes authHeader; the command prints only that there is one.
    let show = ok(call(&fake, &["show", ID]));
    assert!(
        show.stdout.starts_with(&format!("webhook      {ID}\nstatus       enabled\nexpires      ")),
        "{show:?}"
    );
    assert!(show.stdout.contains("\nurl          https://hooks.example.com/egnyte/webhook\n"), "{show:?}");
    assert!(show.stdout.contains("\nevent types  fs:*\npath         (the whole domain)\n"), "{show:?}");
    assert!(show.stdout.ends_with("\nauth header  set (23 characters, not shown)\n"), "{show:?}");
    let show_json = ok(call(&fake, &["show", ID, "--json"])).json();
    assert_eq!(show_json["authHeaderSet"], true);
    assert_eq!(show_json["eventType"], json!(["fs:*"]));
    assert_eq!(show_json["url"], "https://hooks.example.com/egnyte/webhook");

    let status = ok(call(&fake, &["status", "w-2"]));
    assert!(
        status.stdout.starts_with("webhook  w-2\nstatus   disabled\nexpires  2033-05-18T03:33:20Z (in "),
        "{status:?}"
    );
    let enable = ok(call(&fake, &["enable", "w-2"]));
    assert!(enable.stdout.starts_with("webhook  w-2\nstatus   enabled\n"), "{enable:?}");
    assert_eq!(fake.hook("w-2").unwrap().status, "enabled");
    let disable = ok(call(&fake, &["disable", ID, "--json"])).json();
    assert_eq!(disable["status"], "disabled");
    assert_eq!(fake.hook(ID).unwrap().status, "disabled");
    let delete = ok(call(&fake, &["delete", "w-2"]));
    assert_eq!(delete.stdout, "deleted webhook w-2\n");
    assert_eq!(ok(call(&fake, &["delete", ID, "--json"])).json(), json!({"webhookId": ID, "deleted": true}));
    assert_eq!(
        ok(call(&fake, &["list"])).stdout,
        "no webhook registered by this API token's app in this domain\n"
    );
    assert_eq!(ok(call(&fake, &["list", "--json"])).stdout, "[]\n");

    let lines: Vec<String> = fake.requests().iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [
            "GET /pubapi/v1/webhooks".to_owned(),
            "GET /pubapi/v1/webhooks".into(),
            format!("GET /pubapi/v1/webhooks/{ID}/details"),
            format!("GET /pubapi/v1/webhooks/{ID}/details"),
            "GET /pubapi/v1/webhooks/w-2/status".into(),
            "POST /pubapi/v1/webhooks/w-2/status".into(),
            format!("POST /pubapi/v1/webhooks/{ID}/status"),
            "DELETE /pubapi/v1/webhooks/w-2".into(),
            format!("DELETE /pubapi/v1/webhooks/{ID}"),
            "GET /pubapi/v1/webhooks".into(),
            "GET /pubapi/v1/webhooks".into(),
        ]
    );
    let requests = fake.requests();
    assert_eq!(requests[5].json(), json!({"status": "enabled"}));
    assert_eq!(requests[6].json(), json!({"status": "disabled"}));
    assert!(requests.iter().all(|r| r.header("authorization") == Some(&format!("Bearer {TOKEN}"))));
}

#[test]
fn egnytes_refusals_exit_1_with_its_error_text() {
    let fake = FakeEgnyte::start(TOKEN);
    let missing = call(&fake, &["status", "nope"]);
    assert_eq!(missing.status, 1, "{missing:?}");
    assert_eq!(missing.stdout, "");
    assert_eq!(
        missing.stderr,
        "egnyte-receiver: cannot read webhook nope's status: Egnyte answered 404 Not Found: Webhook nope not found\n"
    );
    let json = call(&fake, &["enable", "nope", "--json"]);
    assert_eq!((json.status, json.stdout.as_str()), (1, ""), "{json:?}");
    assert!(json
        .stderr
        .contains("cannot enable webhook nope: Egnyte answered 404 Not Found: Webhook nope not found"));
    let invalid = call(
        &fake,
        &["register", "--url", "https://h.example.com/e", "--event-type", "fs:nope", "--auth-header", AUTH],
    );
    assert_eq!(invalid.status, 1, "{invalid:?}");
    assert!(
        invalid.stderr.contains("cannot register the webhook: Egnyte answered 400 Bad Request: eventType: Unknown event type: fs:nope"),
        "{invalid:?}"
    );
    for id in ["a", "b", "c"] {
        fake.add(Hook::new(id));
    }
    let quota = call(&fake, &["register", "--url", "https://h.example.com/e", "--auth-header", AUTH]);
    assert_eq!(quota.status, 1);
    assert!(quota.stderr.contains("Egnyte answered 409 Conflict: Webhook quota exceeded"), "{quota:?}");
    // Another token: 401 with Egnyte's text and what to do.
    let (_dir, wrong) = token_dir();
    std::fs::write(&wrong, "another-token\n").unwrap();
    let unauthorized =
        run(&["list", "--api-url", &fake.url(), "--api-token-file", wrong.to_str().unwrap()], &[]);
    assert_eq!(unauthorized.status, 1);
    assert!(
        unauthorized.stderr.contains(
            "Egnyte answered 401 Unauthorized: Invalid access token (the API token is invalid, revoked or expired: get a new one)"
        ),
        "{unauthorized:?}"
    );
    assert!(!unauthorized.stderr.contains("another-token"));
    // A gateway's HTML 503, then the answer: sent again after 1 s.
    fake.then(fake_egnyte::unavailable());
    let retried = ok(call(&fake, &["list"]));
    assert!(
        retried.stderr.contains(
            "Egnyte answered 503 Service Unavailable: 503 Service Unavailable: sending again in 1 s"
        ),
        "{retried:?}"
    );
}

#[test]
fn a_rate_limit_answer_is_honoured_by_waiting_its_retry_after() {
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID));
    fake.then(fake_egnyte::over_qps(1));
    let status = ok(call(&fake, &["status", ID]));
    assert!(status.stdout.contains("status   enabled"), "{status:?}");
    assert!(
        status.stderr.contains("Egnyte's rate limit: too many calls per second for this API token (ERR_403_DEVELOPER_OVER_QPS); Retry-After 1 s: sending again in 1 s"),
        "{status:?}"
    );
    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(5), "{waited:?}");
    // 429, as some clients see it, and on a registration (throttled: not processed, so sent again).
    fake.then(fake_egnyte::too_many(1));
    let registered =
        ok(call(&fake, &["register", "--url", "https://h.example.com/e", "--auth-header", AUTH, "--json"]));
    assert_eq!(registered.json()["status"], "enabled");
    assert!(
        registered.stderr.contains("429 Too Many Requests; Retry-After 1 s: sending again in 1 s"),
        "{registered:?}"
    );
    assert_eq!(fake.requests().iter().filter(|r| r.method == "POST").count(), 2);
    assert_eq!(fake.hook("5da697d9-f34e-45ce-a68f-000000000001").map(|h| h.status), Some("enabled".into()));
    assert_eq!(fake.requests().len(), 4, "registered once");
    // The daily quota resets in hours: reported at once, with when to try again.
    fake.then(fake_egnyte::over_rate(7200));
    let quota = call(&fake, &["list"]);
    assert_eq!(quota.status, 1, "{quota:?}");
    assert!(quota.elapsed < Duration::from_secs(5), "{quota:?}");
    assert!(
        quota.stderr.contains("cannot list the webhooks: Egnyte's daily quota for this API token is used up (ERR_403_DEVELOPER_OVER_RATE; about 1,000 calls a day); Retry-After 7200 s (try again after "),
        "{quota:?}"
    );
}

#[test]
fn an_unreachable_api_is_tried_again_then_reported() {
    let closed = server::free_port();
    let (_dir, file) = token_dir();
    let url = format!("http://{closed}");
    let args = ["list", "--api-url", url.as_str(), "--api-token-file", file.to_str().unwrap()];
    let unreachable = run(&args, &[]);
    assert_eq!(unreachable.status, 1, "{unreachable:?}");
    assert!(
        unreachable
            .stderr
            .contains("egnyte-receiver: cannot list the webhooks: cannot reach Egnyte's API: cannot connect"),
        "{unreachable:?}"
    );
    assert_eq!(unreachable.stderr.matches("sending again in").count(), 3, "{unreachable:?}");
    assert!(
        unreachable.elapsed >= Duration::from_secs(7) && unreachable.elapsed < Duration::from_secs(30),
        "{unreachable:?}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let fake = FakeEgnyte::start(TOKEN);
    let (_dir, file) = token_dir();
    let file = file.to_str().unwrap();
    let url = fake.url();
    for (args, env, error) in [
        (
            vec!["list", "--api-token-file", file],
            vec![],
            "no Egnyte domain: give --domain acme (or EGNYTE_RECEIVER_DOMAIN)",
        ),
        (vec!["list", "--api-url", &url], vec![], "no Egnyte API token: give --api-token-file FILE"),
        (
            vec!["list", "--api-url", &url, "--api-token", TOKEN, "--api-token-file", file],
            vec![],
            "give --api-token or --api-token-file, not both",
        ),
        (
            vec!["list", "--api-url", "http://hooks.example.com", "--api-token-file", file],
            vec![],
            "--api-url: \"http://hooks.example.com\": http:// only for a loopback address",
        ),
        (
            vec!["list", "--domain", "acme.com", "--api-token-file", file],
            vec![],
            "--domain: \"acme.com\" is not an Egnyte domain",
        ),
        (
            vec!["list", "--api-token-file", file],
            vec![("EGNYTE_RECEIVER_DOMAIN", "acme.example.org")],
            "EGNYTE_RECEIVER_DOMAIN: \"acme.example.org\" is not an Egnyte domain",
        ),
        (
            vec!["list", "--api-url", &url, "--api-token-file", "/nonexistent/api-token"],
            vec![],
            "--api-token-file: /nonexistent/api-token: No such file",
        ),
        (vec!["show"], vec![], "webhook show needs a webhook ID"),
        (vec!["show", "../x"], vec![], "is not a webhook id"),
        (vec!["rename", "x"], vec![], "unknown webhook action \"rename\""),
        (vec!["register"], vec![], "webhook register needs --url URL"),
        (vec!["register", "--url", "http://h.example.com/e"], vec![], "Egnyte calls https:// URLs only"),
        (
            vec!["status", "x", "--url", "https://h.example.com/e"],
            vec![],
            "--url is an option of webhook register only",
        ),
        (vec!["list", "--verbose"], vec![], "invalid option '--verbose'"),
    ] {
        let got = run(&args, &env);
        assert_eq!(got.status, 2, "{args:?}: {got:?}");
        assert!(got.stderr.contains(error), "{args:?}: expected {error:?} in {got:?}");
        assert_eq!(got.stdout, "");
    }
    assert!(fake.requests().is_empty(), "nothing sent on a usage error");
    let help = ok(run(&["--help"], &[]));
    assert!(help
        .stdout
        .starts_with("Register and manage Egnyte webhooks through Egnyte's management API.\n"));
    assert!(help.stdout.contains("Usage: egnyte-receiver webhook register --url URL"));
}

#[test]
fn the_common_options_come_from_the_environment_too() {
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID));
    let (dir, file) = token_dir();
    let url = fake.url();
    let from_file = ok(run(
        &["status", ID],
        &[("EGNYTE_RECEIVER_API_URL", &url), ("EGNYTE_RECEIVER_API_TOKEN_FILE", file.to_str().unwrap())],
    ));
    assert!(from_file.stdout.contains("status   enabled"));
    let from_value = ok(run(
        &["status", ID, "--json"],
        &[("EGNYTE_RECEIVER_API_URL", &url), ("EGNYTE_RECEIVER_API_TOKEN", TOKEN)],
    ));
    assert_eq!(from_value.json()["status"], "enabled");
    // A flag beats the environment; an empty variable is unset.
    let flag = ok(run(
        &["status", ID, "--api-url", &url, "--api-token", TOKEN],
        &[("EGNYTE_RECEIVER_API_URL", "http://10.0.0.1"), ("EGNYTE_RECEIVER_DOMAIN", "")],
    ));
    assert!(flag.stdout.contains("status   enabled"));
    // $CREDENTIALS_DIRECTORY/api-token, as under the unit.
    let credential = ok(run(
        &["status", ID],
        &[("EGNYTE_RECEIVER_API_URL", &url), ("CREDENTIALS_DIRECTORY", dir.path().to_str().unwrap())],
    ));
    assert!(credential.stdout.contains("status   enabled"));
    assert_eq!(fake.requests().len(), 4);
}

// -------------------------------------------------------------------------------------------
// serve --webhook-id

/// A receiver watching `id` at `api_url`, its API token in a file; extra `args`.
fn watching(id: &str, api_url: &str, args: &[&str]) -> Server {
    let (dir, file) = token_dir();
    Server::builder()
        .temp_dir(dir)
        .env("NO_PROXY", "*")
        .args(["--webhook-id", id, "--api-url", api_url, "--api-token-file", file.to_str().unwrap()])
        .args(args)
        .start()
}

/// The watcher's series, once `done` holds (bounded).
fn wait_webhook_metrics(
    server: &Server,
    within: Duration,
    done: impl Fn(&server::Metrics) -> bool,
) -> server::Metrics {
    let metrics = server.wait_metrics(within, done);
    assert!(!server.stderr_text().contains(TOKEN), "the token is in the log:\n{}", server.stderr_text());
    metrics
}

#[test]
fn a_webhook_disabled_at_start_is_re_enabled_at_once() {
    let fake = FakeEgnyte::start(TOKEN);
    let expires = now() + 200 * 86_400;
    fake.add(Hook::new(ID).status("disabled").expires(expires));
    let server = watching(ID, &fake.url(), &[]);
    let metrics = wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.get("egnyte_receiver_webhook_reenabled_total") == Some(&1.0)
    });
    assert_eq!(metrics.get("egnyte_receiver_webhook_reenabled_total"), 1.0, "{metrics:?}");
    assert_eq!(metrics.get("egnyte_receiver_webhook_enabled"), 1.0);
    assert_eq!(metrics.get("egnyte_receiver_webhook_check_failures_total"), 0.0);
    assert_eq!(metrics.get("egnyte_receiver_webhook_expires_timestamp_seconds"), expires as f64);
    assert_eq!(fake.hook(ID).unwrap().status, "enabled");
    let requests = fake.requests();
    let lines: Vec<String> = requests.iter().map(|r| r.line()).collect();
    assert_eq!(
        lines,
        [format!("GET /pubapi/v1/webhooks/{ID}/status"), format!("POST /pubapi/v1/webhooks/{ID}/status")]
    );
    assert_eq!(requests[1].json(), json!({"status": "enabled"}));
    assert_eq!(requests[1].header("authorization"), Some(format!("Bearer {TOKEN}").as_str()));
    assert!(server.stderr_contains(
        "was disabled at Egnyte (after failed deliveries) and is re-enabled",
        Duration::from_secs(2)
    ));
    let log = server.stderr_text();
    let warning = log.lines().find(|l| l.contains("is re-enabled")).unwrap();
    assert!(warning.contains(" WARN "), "{warning}");
    assert!(
        warning.contains("since before this start (") && warning.contains("no event in the journal"),
        "{warning}"
    );
    assert!(log.contains(&format!("watching webhook {ID} at {} every 5 min", fake.url())), "{log}");
    // /healthz and receiving are as ever.
    server::assert_still_healthy(&server);
    assert!(!server.stderr_text().contains(TOKEN));
}

#[test]
fn after_a_restart_the_warning_names_the_last_event_journaled_before_it() {
    // An outage: the receiver took an event, went down, Egnyte disabled the webhook meanwhile.
    let before = Server::builder().start();
    assert_eq!(before.post(server::batch(&["before-outage"]).as_bytes(), &[]).status, 200);
    let temp = before.kill_keeping_data();
    std::thread::sleep(Duration::from_millis(1100));
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID).status("disabled"));
    let file = temp.path().join("api-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let url = fake.url();
    let server = Server::builder()
        .temp_dir(temp)
        .env("NO_PROXY", "*")
        .args(["--webhook-id", ID, "--api-url", &url, "--api-token-file", file.to_str().unwrap()])
        .start();
    wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.get("egnyte_receiver_webhook_reenabled_total") == Some(&1.0)
    });
    assert!(server.stderr_contains("is re-enabled", Duration::from_secs(2)));
    let log = server.stderr_text();
    let warning = log.lines().find(|l| l.contains("is re-enabled")).unwrap();
    assert!(
        warning.contains("it may have been disabled for up to ")
            && warning.contains("the last event accepted was at "),
        "{warning}"
    );
    assert!(warning.contains("no check since this start saw it enabled"), "{warning}");
}

#[test]
fn a_rate_limited_check_is_tried_again_after_retry_after() {
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID));
    fake.then(fake_egnyte::over_qps(1));
    let server = watching(ID, &fake.url(), &[]);
    let metrics = wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.get("egnyte_receiver_webhook_enabled") == Some(&1.0)
    });
    assert_eq!(metrics.get("egnyte_receiver_webhook_enabled"), 1.0, "{metrics:?}");
    assert_eq!(metrics.get("egnyte_receiver_webhook_check_failures_total"), 1.0);
    assert_eq!(metrics.get("egnyte_receiver_webhook_reenabled_total"), 0.0);
    let requests = fake.requests();
    assert_eq!(requests.len(), 2, "{requests:?}");
    let waited = requests[1].at - requests[0].at;
    assert!(waited >= Duration::from_secs(1) && waited < Duration::from_secs(4), "Retry-After 1: {waited:?}");
    let log = server.stderr_text();
    assert!(log.contains("(ERR_403_DEVELOPER_OVER_QPS); Retry-After 1 s; next try in 1 s"), "{log}");
    assert!(log.contains(&format!("webhook {ID}: enabled at Egnyte, expires ")), "{log}");
    // A daily quota: its Retry-After, not the backoff.
    drop(server);
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID));
    fake.then(fake_egnyte::over_rate(2));
    let server = watching(ID, &fake.url(), &[]);
    wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.get("egnyte_receiver_webhook_enabled") == Some(&1.0)
    });
    let requests = fake.requests();
    assert!(requests[1].at - requests[0].at >= Duration::from_secs(2), "{requests:?}");
    assert!(server.stderr_text().contains("Retry-After 2 s; next try in 2 s"));
}

#[test]
fn an_unreachable_api_never_affects_receiving() {
    let closed = server::free_port();
    let server = watching(ID, &format!("http://{closed}"), &[]);
    let metrics = wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.get("egnyte_receiver_webhook_check_failures_total").is_some_and(|&f| f >= 1.0)
    });
    assert_eq!(metrics.get("egnyte_receiver_webhook_enabled"), -1.0, "{metrics:?}");
    assert!(
        !metrics.0.contains_key("egnyte_receiver_webhook_expires_timestamp_seconds"),
        "unknown: no sample"
    );
    server::assert_still_healthy(&server);
    assert_eq!(metrics.get("egnyte_receiver_healthy"), 1.0);
    // The next try 5 s later fails too: the counter grows; receiving still unaffected.
    let metrics = wait_webhook_metrics(&server, Duration::from_secs(15), |m| {
        m.0.get("egnyte_receiver_webhook_check_failures_total").is_some_and(|&f| f >= 2.0)
    });
    assert!(metrics.get("egnyte_receiver_webhook_check_failures_total") >= 2.0, "{metrics:?}");
    server::assert_still_healthy(&server);
    let log = server.stderr_text();
    assert!(
        log.contains(&format!("webhook {ID} cannot read its status: cannot reach Egnyte's API: ")),
        "{log}"
    );
    assert!(log.contains("next try in 5 s") && log.contains("next try in 10 s"), "{log}");
}

#[test]
fn an_expiry_within_a_week_is_warned_with_how_to_re_register() {
    let fake = FakeEgnyte::start(TOKEN);
    let expires = now() + 3 * 86_400 + 600;
    fake.add(Hook::new(ID).expires(expires));
    let server = watching(ID, &fake.url(), &[]);
    let metrics = wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.contains_key("egnyte_receiver_webhook_expires_timestamp_seconds")
    });
    assert_eq!(metrics.get("egnyte_receiver_webhook_expires_timestamp_seconds"), expires as f64);
    assert!(server.stderr_contains("expires at ", Duration::from_secs(2)));
    let log = server.stderr_text();
    let warning = log.lines().find(|l| l.contains("expires at ")).unwrap();
    assert!(
        warning.contains(" WARN ") && warning.contains("(in 3 days): Egnyte stops sending then"),
        "{warning}"
    );
    assert!(
        warning.contains("egnyte-receiver webhook register --url URL")
            && warning.contains(&format!("webhook delete {ID}")),
        "{warning}"
    );
    // The command warns as well.
    let status = ok(call(&fake, &["status", ID]));
    assert!(status.stderr.contains(&format!("warning: webhook {ID} expires ")), "{status:?}");
}

#[test]
fn a_receiver_that_cannot_store_events_leaves_the_webhook_disabled() {
    // Over --max-journal-bytes with a sink that never delivers: POSTs get 503, so Egnyte's calls
    // would fail and disable the webhook again.
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID).status("disabled"));
    let stuck = ["--sink", "exec:/bin/false", "--delivery-attempts", "1000", "--max-journal-bytes", "4096"];
    let filler = Server::builder().args(stuck).start();
    let mut refused = false;
    for i in 0..100 {
        let body = server::batch(&[&format!("fill-{i}-a"), &format!("fill-{i}-b"), &format!("fill-{i}-c")]);
        if filler.post(body.as_bytes(), &[]).status == 503 {
            refused = true;
            break;
        }
    }
    assert!(refused, "the journal never went over its budget");
    let temp = filler.kill_keeping_data();
    let file = temp.path().join("api-token");
    std::fs::write(&file, format!("{TOKEN}\n")).unwrap();
    let url = fake.url();
    let server = Server::builder()
        .temp_dir(temp)
        .env("NO_PROXY", "*")
        .args(stuck)
        .args(["--webhook-id", ID, "--api-url", &url, "--api-token-file", file.to_str().unwrap()])
        .start();
    let metrics = wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.get("egnyte_receiver_webhook_enabled") == Some(&0.0)
    });
    assert_eq!(metrics.get("egnyte_receiver_webhook_enabled"), 0.0, "{metrics:?}");
    assert!(server
        .stderr_contains("is left so for now: the receiver cannot store events", Duration::from_secs(2)));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(fake.requests().len(), 1, "only the status read: {:?}", fake.requests());
    assert_eq!(fake.hook(ID).unwrap().status, "disabled");
    assert_eq!(server.metrics().get("egnyte_receiver_webhook_reenabled_total"), 0.0);
}

#[test]
fn serve_refuses_an_interval_that_would_use_up_the_daily_quota() {
    let serve = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = Command::new(BIN);
        command.arg("serve").args(args);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("EGNYTE_RECEIVER_") {
                command.env_remove(name);
            }
        }
        let output = command.envs(env.iter().copied()).stdin(Stdio::null()).output().unwrap();
        (output.status.code(), String::from_utf8(output.stderr).unwrap())
    };
    let (status, stderr) = serve(&["--webhook-check-interval", "60"], &[]);
    assert_eq!(status, Some(2));
    assert_eq!(
        stderr,
        "egnyte-receiver: --webhook-check-interval: from 120 to 86400: a check every 60 s is 1440 calls a day, and \
         Egnyte allows an API token about 1000 calls a day; the shortest interval, 120 s, takes 720 and leaves the \
         rest for re-enabling, retries and your own calls\n"
    );
    let (status, stderr) = serve(&[], &[("EGNYTE_RECEIVER_WEBHOOK_CHECK_INTERVAL", "86401")]);
    assert_eq!(status, Some(2));
    assert!(
        stderr.starts_with(
            "egnyte-receiver: EGNYTE_RECEIVER_WEBHOOK_CHECK_INTERVAL: from 120 to 86400: and Egnyte"
        ),
        "{stderr}"
    );
    let (status, stderr) = serve(&["--webhook-id", ID], &[]);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("--webhook-id needs the API: no Egnyte domain"), "{stderr}");
    let (status, stderr) = serve(&["--webhook-id", ID, "--domain", "acme"], &[]);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("--webhook-id needs the API: no Egnyte API token"), "{stderr}");
    let (status, stderr) = serve(&["--webhook-id", "a b", "--domain", "acme"], &[]);
    assert_eq!(status, Some(2));
    assert!(stderr.contains("--webhook-id: \"a b\" is not a webhook id"), "{stderr}");
}

#[test]
fn the_token_is_in_no_log_line_even_at_trace_level() {
    let fake = FakeEgnyte::start(TOKEN);
    fake.add(Hook::new(ID).status("disabled"));
    let url = fake.url();
    // The token on the command line: the configuration line shows its length only.
    let server = Server::builder()
        .env("NO_PROXY", "*")
        .env("RUST_LOG", "trace,may=warn")
        .args(["--webhook-id", ID, "--api-url", &url, "--api-token", TOKEN])
        .start();
    wait_webhook_metrics(&server, Duration::from_secs(10), |m| {
        m.0.get("egnyte_receiver_webhook_reenabled_total") == Some(&1.0)
    });
    server::assert_still_healthy(&server);
    let log = server.stderr_text();
    assert!(log.contains(&format!("api-token=<set, {} chars> (flag)", TOKEN.len())), "{log}");
    assert!(log.contains("DEBUG ureq"), "the HTTP client's own debug lines are there: {log}");
    // Not even in pieces (a hex dump of the request would cut it across lines).
    for piece in TOKEN.as_bytes().windows(8).map(|w| std::str::from_utf8(w).unwrap()) {
        let leaked: Vec<&str> = log.lines().filter(|l| l.contains(piece)).collect();
        assert!(leaked.is_empty(), "{piece:?} of the token in {leaked:?}");
    }
}
