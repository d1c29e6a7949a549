//! `egnyte-receiver check`: output lines and exit codes, driven through the real binary.

mod support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use support::fixtures;

fn check(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_egnyte-receiver")).arg("check").args(args).output().unwrap()
}

fn run(args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_egnyte-receiver"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap()
}

#[test]
fn invalid_element_fixtures_print_their_expected_lines() {
    let files = fixtures::json_files("invalid-elements");
    assert!(files.len() >= 20);
    for (path, _) in files {
        let expected = std::fs::read_to_string(path.with_extension("expected")).unwrap();
        let out = check(&[&path]);
        assert_eq!(text(&out.stdout), expected, "{}", path.display());
        let code = if expected.lines().any(|l| l.starts_with("invalid")) { 1 } else { 0 };
        assert_eq!(out.status.code(), Some(code), "{}", path.display());
        assert!(out.stderr.is_empty(), "{}", path.display());
    }
}

#[test]
fn valid_fixtures_are_all_ok() {
    for dir in ["types", "batches", "valid"] {
        for (path, body) in fixtures::json_files(dir) {
            let out = check(&[&path]);
            assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), text(&out.stderr));
            let lines: Vec<&str> = text(&out.stdout).lines().collect();
            assert!(
                lines.iter().all(|l| l.starts_with("ok ") && l.split(' ').count() == 4),
                "{}",
                path.display()
            );
            let elements = match serde_json::from_slice::<serde_json::Value>(&body).unwrap() {
                serde_json::Value::Array(items) => items.len(),
                _ => 1,
            };
            assert_eq!(lines.len(), elements, "{}", path.display());
        }
    }
}

#[test]
fn invalid_bodies_exit_2_with_a_reason_on_stderr() {
    for (path, _) in fixtures::json_files("invalid-body") {
        let out = check(&[&path]);
        assert_eq!(out.status.code(), Some(2), "{}", path.display());
        assert!(out.stdout.is_empty(), "{}", path.display());
        let err = text(&out.stderr);
        let name = path.display().to_string();
        assert!(err.starts_with(&format!("egnyte-receiver: {name}: ")) && err.ends_with('\n'), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let dir = fixtures::root().join("invalid-body");
    let reason =
        |file: &str| text(&check(&[&dir.join(file)]).stderr).split_once(".json: ").unwrap().1.to_owned();
    assert_eq!(reason("deep-100.json"), "nesting deeper than 64 levels at byte 64\n");
    assert_eq!(reason("empty.json"), "empty body\n");
    assert_eq!(reason("top-level-null.json"), "top level is null, not an array or object of events\n");
    assert!(reason("invalid-utf8.json").starts_with("invalid UTF-8 at byte "));
    assert!(reason("control-char-in-string.json").contains("unescaped control character in a string"));
    assert!(reason("lone-surrogate.json").contains("unpaired surrogate"));
}

#[test]
fn several_files_prefix_lines_and_the_worst_status_wins() {
    let root = fixtures::root();
    let ok = root.join("batches/batch-1.json");
    let bad = root.join("invalid-elements/missing-domain.json");
    let broken = root.join("invalid-body/truncated.json");
    let missing = root.join("no-such-file.json");

    let out = check(&[&ok, &ok]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<&str> = text(&out.stdout).lines().collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.iter().all(|l| l.starts_with(&format!("{}: ok ", ok.display()))));

    let out = check(&[&ok, &bad]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains(&format!("{}: invalid #1: missing domain\n", bad.display())));

    for worst in [&broken, &missing] {
        let out = check(&[&bad, worst, &ok]);
        assert_eq!(out.status.code(), Some(2), "{}", worst.display());
        assert_eq!(text(&out.stdout).lines().count(), 3 + 1, "the other files are still checked");
    }
    let err = text(&check(&[&missing]).stderr).to_owned();
    assert!(err.contains("no-such-file.json: No such file or directory"), "{err}");
}

#[test]
fn standard_input_and_escaped_values() {
    let body = br#"[{"eventId":"a b\nc\\d","domain":"x\ty","timestamp":1,"data":{},"actionSource":"s","eventType":"t\u0001"}]"#;
    let out = run(&["check", "-"], body);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(text(&out.stdout), "ok t\\u{1} x\\ty a\\u{20}b\\nc\\\\d\n");
}

#[test]
fn help_version_and_usage_errors() {
    for args in [&["--help"][..], &["-h"], &["help"]] {
        let out = run(args, b"");
        assert_eq!(out.status.code(), Some(0));
        assert!(text(&out.stdout).contains("check FILE..."));
    }
    let out = run(&["check", "--help"], b"");
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("Exit status: 0 every element valid"));
    let out = run(&["--version"], b"");
    let version = text(&out.stdout);
    assert!(version.starts_with(&format!("egnyte-receiver {}\n", env!("CARGO_PKG_VERSION"))), "{version}");
    for (args, message) in [
        (&[][..], "a command is required"),
        (&["frobnicate"], "unknown command"),
        (&["check"], "check needs at least one FILE"),
        (&["check", "--bogus"], "invalid option '--bogus'"),
        (&["--bogus"], "invalid option '--bogus'"),
    ] {
        let out = run(args, b"");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        assert!(text(&out.stderr).contains(message), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("--help"));
    }
}
