//! What the package ships beside the binary, held to the binary:
//!
//! * the man page `deploy/egnyte-receiver.1` and the shell completions in `deploy/completions/`
//!   are generated here from the built binary's `--help` texts (the top level and each command's;
//!   `serve --help` is itself generated from its option table). The committed files must equal
//!   what the binary generates now: after changing a help text or an option, regenerate them with
//!   `UPDATE_GENERATED=1 cargo test --test packaging`. The man page renders without a groff
//!   warning; the bash completion, run in a real bash, completes commands, options and values;
//!   the zsh one parses;
//! * `--version` names the commit (the one checked out, when built from a git checkout) and the
//!   journal format;
//! * every file in the `.deb`'s assets exists, and the new ones go where Debian looks for them;
//! * `deploy/prometheus/scrape.yml` scrapes the receiver's default address and passes
//!   `promtool check config` (when promtool is installed; CI installs it, and there a missing one
//!   fails). groff and zsh checks are skipped, saying so, where those are not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The binary under test.
const BIN: &str = env!("CARGO_BIN_EXE_egnyte-receiver");

/// The command that rewrites the generated files.
const REGENERATE: &str = "UPDATE_GENERATED=1 cargo test --test packaging";

const MAN_PAGE: &str = "deploy/egnyte-receiver.1";
const BASH_COMPLETION: &str = "deploy/completions/egnyte-receiver.bash";
const ZSH_COMPLETION: &str = "deploy/completions/_egnyte-receiver";
const SCRAPE_CONFIG: &str = "deploy/prometheus/scrape.yml";

/// The commands with a help text of their own, in the order the man page lists them.
const COMMANDS: [&str; 6] = ["serve", "check", "journal", "replay", "simulate", "webhook"];

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `egnyte-receiver ARGS` (which must succeed): its standard output.
fn run(args: &[&str]) -> String {
    let output = Command::new(BIN).args(args).output().unwrap_or_else(|e| panic!("{BIN}: {e}"));
    assert!(output.status.success(), "egnyte-receiver {args:?}: {output:?}");
    String::from_utf8(output.stdout).expect("help is UTF-8")
}

// ---------------------------------------------------------------------------------------------
// Reading a help text.

/// One piece of a help text, as the help texts are laid out.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    /// Unindented lines up to a blank line or an indented one.
    Text(Vec<String>),
    /// `Usage: …` and its lines (an indented line not starting with the program continues the
    /// line before it).
    Usage(Vec<String>),
    /// `  TERM  description` on one line, or `  TERM` with the description on the indented
    /// lines below it.
    Item { term: String, description: String },
    /// Indented lines without a description (a sample of output).
    Example(Vec<String>),
}

/// An option of a command, read from its help.
#[derive(Debug, Clone, PartialEq)]
struct Flag {
    /// `--data-dir`, `-h`.
    name: String,
    /// `DIR`; empty for a flag without a value.
    value: String,
    /// The help's description, without its `[default: …]`.
    description: String,
    /// The values the description lists as `a: …; b: …` (`fsync`, `none`).
    choices: Vec<String>,
}

/// A help text cut into pieces.
fn pieces(help: &str) -> Vec<Piece> {
    let lines: Vec<&str> = help.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        let indented = |l: &str| l.starts_with(' ') && !l.trim().is_empty();
        if line.trim().is_empty() {
            i += 1;
        } else if let Some(first) = line.strip_prefix("Usage:") {
            let mut usage = vec![first.trim().to_owned()];
            i += 1;
            while i < lines.len() && indented(lines[i]) {
                let next = lines[i].trim();
                if next.starts_with("egnyte-receiver") {
                    usage.push(next.to_owned());
                } else {
                    let last = usage.last_mut().expect("a first line");
                    last.push(' ');
                    last.push_str(next);
                }
                i += 1;
            }
            out.push(Piece::Usage(usage));
        } else if line.starts_with("  ") && !line.starts_with("   ") {
            let (term, mut description) = match line.trim().split_once("  ") {
                Some((term, description)) => (term.trim().to_owned(), description.trim().to_owned()),
                None => (line.trim().to_owned(), String::new()),
            };
            i += 1;
            while i < lines.len() && lines[i].starts_with("   ") && !lines[i].trim().is_empty() {
                if !description.is_empty() {
                    description.push(' ');
                }
                description.push_str(lines[i].trim());
                i += 1;
            }
            if description.is_empty() {
                match out.last_mut() {
                    Some(Piece::Example(example)) => example.push(term),
                    _ => out.push(Piece::Example(vec![term])),
                }
            } else {
                out.push(Piece::Item { term, description });
            }
        } else {
            let mut text = Vec::new();
            while i < lines.len() && !lines[i].trim().is_empty() && !lines[i].starts_with(' ') {
                text.push(lines[i].to_owned());
                i += 1;
            }
            out.push(Piece::Text(text));
        }
    }
    out
}

/// The options a help lists (`-h, --help` gives two), plus `-h` and `--help` when it does not.
fn flags(pieces: &[Piece]) -> Vec<Flag> {
    let mut out = Vec::new();
    for piece in pieces {
        let Piece::Item { term, description } = piece else { continue };
        if !term.starts_with('-') {
            continue;
        }
        let description = match description.rfind(" [default: ") {
            Some(at) => description[..at].to_owned(),
            None => description.clone(),
        };
        for spelling in term.split(", ") {
            let (name, value) = spelling.split_once(' ').unwrap_or((spelling, ""));
            out.push(Flag {
                name: name.to_owned(),
                value: value.to_owned(),
                description: description.clone(),
                choices: choices(&description),
            });
        }
    }
    for name in ["-h", "--help"] {
        if !out.iter().any(|flag| flag.name == name) {
            let description = "print this help".to_owned();
            out.push(Flag { name: name.into(), value: String::new(), description, choices: Vec::new() });
        }
    }
    out
}

/// The values of a description that lists them as `fsync: …; none: …` (every part of it `word: …`).
fn choices(description: &str) -> Vec<String> {
    let parts: Vec<&str> = description.split("; ").collect();
    let words: Vec<String> = parts
        .iter()
        .filter_map(|part| part.split_once(": ").map(|(word, _)| word))
        .filter(|word| !word.is_empty() && word.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'))
        .map(str::to_owned)
        .collect();
    if parts.len() >= 2 && words.len() == parts.len() {
        words
    } else {
        Vec::new()
    }
}

/// Every help text the generated files are made of.
struct Helps {
    /// `egnyte-receiver --help`.
    top: Vec<Piece>,
    /// Each of [`COMMANDS`] with its `--help`.
    commands: Vec<(&'static str, Vec<Piece>)>,
}

impl Helps {
    fn from_binary() -> Helps {
        Helps {
            top: pieces(&run(&["--help"])),
            commands: COMMANDS.iter().map(|command| (*command, pieces(&run(&[command, "--help"])))).collect(),
        }
    }

    /// The commands the top-level help lists, first words of its items (`journal stats` gives
    /// `journal`), and each one's subcommands (`journal`: `stats`, `verify`, `dump`).
    fn command_words(&self) -> Vec<(String, Vec<String>)> {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for piece in &self.top {
            let Piece::Item { term, .. } = piece else { continue };
            if term.starts_with('-') {
                continue;
            }
            let mut words = term.split(' ');
            let command = words.next().expect("a word").to_owned();
            let sub = words.next().filter(|w| w.bytes().all(|b| b.is_ascii_lowercase())).map(str::to_owned);
            match out.iter_mut().find(|(c, _)| *c == command) {
                Some((_, subs)) => subs.extend(sub),
                None => out.push((command, sub.into_iter().collect())),
            }
        }
        out
    }

    /// The one-line summary of a command word (`serve`) or of a command and subcommand
    /// (`journal stats`): the first line of the command's own help, else the top-level help's
    /// description of it.
    fn summary(&self, words: &str) -> String {
        let own = self.commands.iter().find(|(command, _)| *command == words).and_then(|(_, pieces)| {
            pieces.iter().find_map(|piece| match piece {
                Piece::Text(lines) => lines.first().map(|l| l.trim_end_matches('.').to_owned()),
                _ => None,
            })
        });
        own.or_else(|| {
            self.top.iter().find_map(|piece| match piece {
                Piece::Item { term, description }
                    if term == words || term.starts_with(&format!("{words} ")) =>
                {
                    Some(description.clone())
                }
                _ => None,
            })
        })
        .unwrap_or_default()
    }

    fn usage(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .filter_map(|piece| match piece {
                Piece::Usage(lines) => Some(lines.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

// ---------------------------------------------------------------------------------------------
// The man page.

/// Text escaped for roff: backslashes, dashes (as `\-`, so options copy as typed), characters
/// beyond ASCII (as `\[u2026]`, whatever the reader's encoding), and a `.` or `'` at the start
/// of a line.
fn roff(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => escaped.push_str("\\e"),
            '-' => escaped.push_str("\\-"),
            c if !c.is_ascii() => escaped.push_str(&format!("\\[u{:04X}]", u32::from(c))),
            c => escaped.push(c),
        }
    }
    if escaped.starts_with('.') || escaped.starts_with('\'') {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

/// An item's term: option and command words bold, placeholders (`DIR`, `FILE...`) italic.
fn roff_term(term: &str) -> String {
    term.split(' ')
        .map(|word| {
            let placeholder =
                word.bytes().any(|b| b.is_ascii_uppercase()) && !word.bytes().any(|b| b.is_ascii_lowercase());
            if placeholder {
                format!("\\fI{}\\fR", roff(word))
            } else {
                format!("\\fB{}\\fR", roff(word))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn roff_pieces(pieces: &[Piece], out: &mut String) {
    for piece in pieces {
        match piece {
            Piece::Text(lines) => {
                out.push_str(".PP\n");
                for line in lines {
                    out.push_str(&roff(line));
                    out.push('\n');
                }
            }
            Piece::Usage(lines) => {
                out.push_str(".PP\nUsage:\n.RS\n.nf\n");
                for line in lines {
                    out.push_str(&roff(line));
                    out.push('\n');
                }
                out.push_str(".fi\n.RE\n");
            }
            Piece::Item { term, description } => {
                out.push_str(&format!(".TP\n{}\n{}\n", roff_term(term), roff(description)));
            }
            Piece::Example(lines) => {
                out.push_str(".RS\n.nf\n");
                for line in lines {
                    out.push_str(&roff(line));
                    out.push('\n');
                }
                out.push_str(".fi\n.RE\n");
            }
        }
    }
}

/// The sections no help text holds: where the service keeps things, what it reads from its
/// environment, where to read more.
const MAN_TAIL: &str = r#".SH ENVIRONMENT
.TP
\fBEGNYTE_RECEIVER_\fR\fINAME\fR
each \fBserve\fR option \fB\-\-\fR\fIname\fR (upper case, dashes as underscores); a flag beats the
environment, which beats the default; an empty value means the default, and a variable that names
no option stops the start.
.TP
\fBRUST_LOG\fR
log filter, added to the default \fBinfo\fR (for example \fBdebug\fR, or \fBwarn\fR).
.TP
\fBCREDENTIALS_DIRECTORY\fR
under systemd, a credential named \fBtoken\fR there is the token (\fBLoadCredential=\fR).
.TP
\fBNOTIFY_SOCKET\fR, \fBWATCHDOG_USEC\fR
under systemd (\fBType=notify\fR): readiness, status and watchdog notifications.
.TP
\fBJOURNAL_STREAM\fR
when it names standard error, log lines carry a syslog priority for journald.
.SH FILES
.TP
\fI/etc/egnyte\-receiver/env\fR
the service's settings, one \fBEGNYTE_RECEIVER_\fR\fINAME\fR\fB=\fR\fIvalue\fR a line.
.TP
\fI/etc/egnyte\-receiver/token\fR
the token (mode 0600), handed to the service as its \fBtoken\fR credential.
.TP
\fI/var/lib/private/egnyte\-receiver\fR
the service's data directory (\fI/var/lib/egnyte\-receiver\fR is a symbolic link to it, made by
systemd for \fBDynamicUser=\fR): \fBlock\fR, \fBjournal/\fR, \fBcheckpoint\fR, \fBdedup.key\fR,
\fBdedup.keys\fR, \fBevents.jsonl\fR, \fBquarantine.jsonl\fR, \fBdead\-letter.jsonl\fR.
Back it up with the service stopped.
.TP
\fI/usr/share/doc/egnyte\-receiver/\fR
\fBREADME.md\fR (configuration, guarantees, operations, backup), \fBCHANGELOG.md\fR, and
\fBdeploy/\fR: TLS proxy examples, Prometheus alerts and scrape configuration, a Grafana dashboard.
.SH EXIT STATUS
0 on success; 2 for a command line or configuration that cannot be used; each command's section
above says what else it returns.
.SH SEE ALSO
\fBsystemctl\fR(1), \fBjournalctl\fR(1), \fBsystemd.exec\fR(5), \fBlogrotate\fR(8)
"#;

fn man_page(helps: &Helps) -> String {
    let name = helps
        .top
        .iter()
        .find_map(|piece| match piece {
            Piece::Text(lines) => lines.first().and_then(|l| l.strip_prefix("egnyte-receiver: ")),
            _ => None,
        })
        .expect("the top-level help's first line names the program");
    let mut out = String::new();
    out.push_str(".\\\" Generated from egnyte-receiver's --help texts by tests/packaging.rs: do not edit.\n");
    out.push_str(&format!(".\\\" Regenerate: {REGENERATE}\n"));
    out.push_str(&format!(
        ".TH EGNYTE\\-RECEIVER 1 \"\" \"egnyte\\-receiver {}\" \"User Commands\"\n",
        env!("CARGO_PKG_VERSION")
    ));
    // Left-aligned, no hyphenation: an option name is never split across lines.
    out.push_str(".ad l\n.nh\n");
    out.push_str(&format!(".SH NAME\negnyte\\-receiver \\- {}\n", roff(name)));
    out.push_str(".SH SYNOPSIS\n.nf\n");
    for line in Helps::usage(&helps.top) {
        out.push_str(&format!("{}\n", roff(&line)));
    }
    for (_, pieces) in &helps.commands {
        for line in Helps::usage(pieces) {
            out.push_str(&format!("{}\n", roff(&line)));
        }
    }
    out.push_str(".fi\n.SH DESCRIPTION\n");
    let description: Vec<Piece> = helps
        .top
        .iter()
        .filter(|piece| {
            !matches!(piece, Piece::Usage(_))
                && !matches!(piece, Piece::Text(lines) if lines.first().is_some_and(|l| l.starts_with("egnyte-receiver: ")))
        })
        .cloned()
        .collect();
    roff_pieces(&description, &mut out);
    out.push_str(".SH COMMANDS\n");
    for (command, pieces) in &helps.commands {
        out.push_str(&format!(".SS \"egnyte\\-receiver {command}\"\n"));
        roff_pieces(pieces, &mut out);
    }
    out.push_str(MAN_TAIL);
    out
}

// ---------------------------------------------------------------------------------------------
// The completions.

/// How a value of `flag` is completed: a bash `compgen` argument, or `None` for free text.
fn value_kind(flag: &Flag) -> Option<String> {
    if !flag.choices.is_empty() {
        return Some(format!("-W '{}'", flag.choices.join(" ")));
    }
    match flag.value.as_str() {
        "DIR" => Some("-d".into()),
        "FILE" => Some("-f".into()),
        _ => None,
    }
}

/// The bash completion: `complete -F` with one function, commands first, then per command its
/// options, and for a flag's value files, directories, the listed choices or nothing.
fn bash_completion(helps: &Helps) -> String {
    let words = helps.command_words();
    let top_flags: Vec<String> = flags(&helps.top).into_iter().map(|f| f.name).collect();
    let commands: Vec<&str> = words.iter().map(|(c, _)| c.as_str()).collect();
    let mut out = String::new();
    out.push_str("# bash completion for egnyte-receiver                     -*- shell-script -*-\n");
    out.push_str("# Generated from egnyte-receiver's --help texts by tests/packaging.rs: do not edit.\n");
    out.push_str(&format!("# Regenerate: {REGENERATE}\n\n"));
    out.push_str("# Completes into COMPREPLY: files (-f), directories (-d) or words (-W 'a b').\n");
    out.push_str("_egnyte_receiver_values() {\n");
    out.push_str("    if [[ $1 == -[fd] ]]; then\n");
    out.push_str("        compopt -o filenames 2>/dev/null\n");
    out.push_str("        local IFS=$'\\n'\n");
    out.push_str("    fi\n");
    out.push_str("    COMPREPLY=($(compgen \"$@\" -- \"$cur\"))\n");
    out.push_str("}\n\n");
    out.push_str("_egnyte_receiver() {\n");
    out.push_str("    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}\n");
    out.push_str("    COMPREPLY=()\n");
    out.push_str("    if ((COMP_CWORD == 1)); then\n");
    out.push_str(&format!(
        "        _egnyte_receiver_values -W '{} {}'\n",
        commands.join(" "),
        top_flags.join(" ")
    ));
    out.push_str("        return\n    fi\n");
    for (command, subs) in &words {
        if !subs.is_empty() {
            out.push_str(&format!(
                "    if [[ ${{COMP_WORDS[1]}} == {command} ]] && ((COMP_CWORD == 2)); then\n        \
                 _egnyte_receiver_values -W '{} -h --help'\n        return\n    fi\n",
                subs.join(" ")
            ));
        }
    }
    out.push_str("    case ${COMP_WORDS[1]} in\n");
    for (command, pieces) in &helps.commands {
        let command_flags = flags(pieces);
        out.push_str(&format!("    {command})\n"));
        let mut by_kind: Vec<(Option<String>, Vec<&str>)> = Vec::new();
        for flag in command_flags.iter().filter(|f| !f.value.is_empty()) {
            let kind = value_kind(flag);
            match by_kind.iter_mut().find(|(k, _)| *k == kind) {
                Some((_, names)) => names.push(&flag.name),
                None => by_kind.push((kind, vec![&flag.name])),
            }
        }
        if !by_kind.is_empty() {
            out.push_str("        case $prev in\n");
        }
        for (kind, names) in &by_kind {
            let action = match kind {
                Some(args) => format!("_egnyte_receiver_values {args}"),
                None => ":".to_owned(),
            };
            out.push_str(&format!(
                "        {})\n            {action}\n            return\n            ;;\n",
                names.join("|")
            ));
        }
        if !by_kind.is_empty() {
            out.push_str("        esac\n");
        }
        let names: Vec<&str> = command_flags.iter().map(|f| f.name.as_str()).collect();
        let files = Helps::usage(pieces).iter().any(|line| line.contains("FILE..."));
        if files {
            out.push_str(&format!(
                "        if [[ $cur == -* ]]; then\n            _egnyte_receiver_values -W '{}'\n        \
                 else\n            _egnyte_receiver_values -f\n        fi\n        ;;\n",
                names.join(" ")
            ));
        } else {
            out.push_str(&format!("        _egnyte_receiver_values -W '{}'\n        ;;\n", names.join(" ")));
        }
    }
    out.push_str("    esac\n}\n\ncomplete -F _egnyte_receiver egnyte-receiver\n");
    out
}

/// Text for inside single quotes in zsh, as an `_arguments` explanation (which ends at the first
/// unescaped `]`) or a `_describe` description (after the first colon: colons are kept).
fn zsh_quote(text: &str) -> String {
    text.replace('\'', "'\\''").replace(']', "\\]")
}

/// The zsh completion (`#compdef`): `_describe` for the commands, `_arguments` per command.
fn zsh_completion(helps: &Helps) -> String {
    let words = helps.command_words();
    let mut out = String::new();
    out.push_str("#compdef egnyte-receiver\n");
    out.push_str("# zsh completion for egnyte-receiver.\n");
    out.push_str("# Generated from egnyte-receiver's --help texts by tests/packaging.rs: do not edit.\n");
    out.push_str(&format!("# Regenerate: {REGENERATE}\n\n"));
    out.push_str("_egnyte-receiver() {\n");
    out.push_str("  local -a commands\n");
    out.push_str("  if (( CURRENT == 2 )); then\n");
    out.push_str("    if [[ $PREFIX == -* ]]; then\n");
    let top_flags: Vec<String> = flags(&helps.top).into_iter().map(|f| f.name).collect();
    out.push_str(&format!("      compadd -- {}\n", top_flags.join(" ")));
    out.push_str("    else\n      commands=(\n");
    for (command, _) in &words {
        out.push_str(&format!("        '{command}:{}'\n", zsh_quote(&helps.summary(command))));
    }
    out.push_str(
        "      )\n      _describe -t commands 'egnyte-receiver command' commands\n    fi\n    return\n  fi\n",
    );
    out.push_str("  shift words\n  (( CURRENT-- ))\n");
    for (command, subs) in &words {
        if subs.is_empty() {
            continue;
        }
        out.push_str(&format!("  if [[ $words[1] == {command} ]]; then\n    if (( CURRENT == 2 )); then\n"));
        out.push_str("      if [[ $PREFIX == -* ]]; then\n        compadd -- -h --help\n      else\n");
        out.push_str("        commands=(\n");
        for sub in subs {
            let summary = helps.summary(&format!("{command} {sub}"));
            out.push_str(&format!("          '{sub}:{}'\n", zsh_quote(&summary)));
        }
        out.push_str(&format!(
            "        )\n        _describe -t commands 'egnyte-receiver {command} command' commands\n      fi\n      return\n    fi\n"
        ));
        out.push_str("    shift words\n    (( CURRENT-- ))\n");
        out.push_str(&format!("    words[1]={command}\n  fi\n"));
    }
    out.push_str("  case $words[1] in\n");
    for (command, pieces) in &helps.commands {
        out.push_str(&format!("    {command})\n      _arguments -s \\\n"));
        for flag in flags(pieces) {
            let description = zsh_quote(&flag.description);
            if flag.value.is_empty() {
                out.push_str(&format!("        '{}[{description}]' \\\n", flag.name));
            } else {
                let action = if !flag.choices.is_empty() {
                    format!("({})", flag.choices.join(" "))
                } else {
                    match flag.value.as_str() {
                        "DIR" => "_files -/".to_owned(),
                        "FILE" => "_files".to_owned(),
                        _ => " ".to_owned(),
                    }
                };
                out.push_str(&format!(
                    "        '*{}[{description}]:{}:{action}' \\\n",
                    flag.name,
                    zsh_quote(&flag.value)
                ));
            }
        }
        if Helps::usage(pieces).iter().any(|line| line.contains("FILE...")) {
            out.push_str("        '*:file:_files' \\\n");
        }
        out.push_str("        && return\n      ;;\n");
    }
    out.push_str("  esac\n  return 1\n}\n\n_egnyte-receiver \"$@\"\n");
    out
}

// ---------------------------------------------------------------------------------------------
// The tests.

/// Compares a committed file with what was generated, or rewrites it under `UPDATE_GENERATED=1`.
/// Returns a description of the difference, if any.
fn check_generated(path: &str, generated: &str) -> Option<String> {
    let file = repo(path);
    if std::env::var_os("UPDATE_GENERATED").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(file.parent().expect("a parent")).unwrap();
        std::fs::write(&file, generated).unwrap_or_else(|e| panic!("{path}: {e}"));
        eprintln!("rewrote {path}");
        return None;
    }
    let committed = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(e) => return Some(format!("{path}: {e}")),
    };
    if committed == generated {
        return None;
    }
    let line = committed.lines().zip(generated.lines()).position(|(a, b)| a != b);
    let at = line.unwrap_or(committed.lines().count().min(generated.lines().count()));
    Some(format!(
        "{path} differs from what the help texts generate, first at line {}:\n  committed: {:?}\n  generated: {:?}",
        at + 1,
        committed.lines().nth(at).unwrap_or("<end of file>"),
        generated.lines().nth(at).unwrap_or("<end of file>"),
    ))
}

#[test]
fn the_man_page_and_completions_are_generated_from_the_help_texts() {
    let helps = Helps::from_binary();
    let differences: Vec<String> = [
        (MAN_PAGE, man_page(&helps)),
        (BASH_COMPLETION, bash_completion(&helps)),
        (ZSH_COMPLETION, zsh_completion(&helps)),
    ]
    .iter()
    .filter_map(|(path, generated)| check_generated(path, generated))
    .collect();
    assert!(differences.is_empty(), "{}\n\nRegenerate them with: {REGENERATE}", differences.join("\n\n"));
}

#[test]
fn the_help_texts_are_read_as_written() {
    let helps = Helps::from_binary();
    let words = helps.command_words();
    let names: Vec<&str> = words.iter().map(|(c, _)| c.as_str()).collect();
    for command in COMMANDS {
        assert!(names.contains(&command), "the top-level help lists {command}");
    }
    for name in &names {
        assert!(
            COMMANDS.contains(name) || *name == "help",
            "the top-level help lists a command {name}: add it to COMMANDS in tests/packaging.rs, then {REGENERATE}"
        );
    }
    let journal = words.iter().find(|(c, _)| c == "journal").map(|(_, subs)| subs.clone());
    assert_eq!(journal.unwrap_or_default(), ["stats", "verify", "dump"]);
    let serve = &helps.commands[0].1;
    let serve_flags = flags(serve);
    let flag = |name: &str| serve_flags.iter().find(|f| f.name == name).unwrap_or_else(|| panic!("{name}"));
    assert_eq!(flag("--data-dir").value, "DIR");
    assert_eq!(flag("--durability").choices, ["fsync", "none"]);
    assert_eq!(flag("--log-format").choices, ["text", "json"]);
    assert!(flag("--sink").choices.is_empty(), "{:?}", flag("--sink"));
    assert_eq!(flag("--listen").description, "address to bind");
    // Every option `serve --help` shows is an option of the completions (generated from the same).
    let help = run(&["serve", "--help"]);
    let shown = help.lines().filter(|l| l.starts_with("  --")).count();
    assert_eq!(serve_flags.iter().filter(|f| f.name.starts_with("--") && f.name != "--help").count(), shown);
    // The one-line style (journal, replay) and the two-line style (serve, simulate) both read.
    let journal = flags(&helps.commands[2].1);
    let data_dir = journal.iter().find(|f| f.name == "--data-dir").unwrap();
    assert_eq!(data_dir.description, "the receiver's data directory");
    let check = &helps.commands[1].1;
    assert!(check.iter().any(|p| matches!(p, Piece::Example(lines) if lines.len() == 2)), "{check:?}");
}

#[test]
fn the_man_page_renders_without_warnings() {
    let Some(output) =
        tool(Command::new("groff").args(["-man", "-Tutf8", "-ww", "-z"]).arg(repo(MAN_PAGE)), false)
    else {
        return;
    };
    let warnings = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success() && warnings.trim().is_empty(), "groff: {warnings}");
    let rendered =
        tool(Command::new("groff").args(["-man", "-Tutf8", "-P-cbou"]).arg(repo(MAN_PAGE)), false).unwrap();
    let text = String::from_utf8_lossy(&rendered.stdout);
    for expected in ["--log-format", "journal verify", "--verify-jsonl", "EGNYTE_RECEIVER_", "FILES"] {
        assert!(text.contains(expected), "the rendered man page lacks {expected:?}:\n{text}");
    }
}

/// Runs a tool the test needs; `None` (after saying it was skipped) when it is not installed,
/// except when `ci_installs` it and `CI` is set: then a missing tool fails the test.
fn tool(command: &mut Command, ci_installs: bool) -> Option<std::process::Output> {
    match command.output() {
        Ok(output) => Some(output),
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && !(ci_installs && std::env::var_os("CI").is_some()) =>
        {
            eprintln!("skipped: {:?} is not installed", command.get_program());
            None
        }
        Err(e) => panic!("{:?}: {e}", command.get_program()),
    }
}

/// What the bash completion offers for a command line whose last word is being typed.
fn bash_complete(line: &[&str]) -> Vec<String> {
    let words: Vec<String> = line.iter().map(|w| format!("'{w}'")).collect();
    let script = format!(
        "source '{}'\nCOMP_WORDS=({})\nCOMP_CWORD={}\n_egnyte_receiver\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"",
        repo(BASH_COMPLETION).display(),
        words.join(" "),
        line.len() - 1
    );
    let output = Command::new("bash").args(["--norc", "--noprofile", "-c", &script]).output().unwrap();
    assert!(output.status.success(), "bash: {output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.trim().is_empty(), "bash said: {stderr}");
    String::from_utf8(output.stdout).unwrap().lines().filter(|l| !l.is_empty()).map(str::to_owned).collect()
}

#[test]
fn the_bash_completion_completes_commands_options_and_values() {
    assert_eq!(bash_complete(&["egnyte-receiver", "s"]), ["serve", "simulate"]);
    assert_eq!(bash_complete(&["egnyte-receiver", "--v"]), ["--version"]);
    assert_eq!(
        bash_complete(&["egnyte-receiver", "journal", ""]),
        ["stats", "verify", "dump", "-h", "--help"]
    );
    assert_eq!(bash_complete(&["egnyte-receiver", "serve", "--log-"]), ["--log-format"]);
    assert_eq!(bash_complete(&["egnyte-receiver", "serve", "--durability", ""]), ["fsync", "none"]);
    assert_eq!(bash_complete(&["egnyte-receiver", "serve", "--log-format", "j"]), ["json"]);
    assert!(bash_complete(&["egnyte-receiver", "serve", "--listen", ""]).is_empty());
    assert_eq!(bash_complete(&["egnyte-receiver", "journal", "dump", "--qu"]), ["--quarantined"]);
    assert_eq!(bash_complete(&["egnyte-receiver", "simulate", "--verify-j"]), ["--verify-jsonl"]);
    assert_eq!(bash_complete(&["egnyte-receiver", "replay", "--data-d"]), ["--data-dir"]);
    // Values that are paths complete as paths (directories only for DIR).
    let deploy = format!("{}/deploy/", env!("CARGO_MANIFEST_DIR"));
    let dirs = bash_complete(&["egnyte-receiver", "serve", "--data-dir", &deploy]);
    assert!(dirs.contains(&format!("{deploy}completions")), "{dirs:?}");
    assert!(!dirs.iter().any(|d| d.ends_with("env")), "{dirs:?}");
    let files = bash_complete(&["egnyte-receiver", "check", &format!("{deploy}en")]);
    assert_eq!(files, [format!("{deploy}env")]);
    assert_eq!(bash_complete(&["egnyte-receiver", "check", "--h"]), ["--help"]);
}

#[test]
fn the_zsh_completion_parses() {
    let Some(output) = tool(Command::new("zsh").arg("-n").arg(repo(ZSH_COMPLETION)), false) else { return };
    assert!(output.status.success() && output.stderr.is_empty(), "zsh -n: {output:?}");
    let text = std::fs::read_to_string(repo(ZSH_COMPLETION)).unwrap();
    assert!(text.starts_with("#compdef egnyte-receiver\n"));
    assert!(text.contains("'*--durability[") && text.contains(":MODE:(fsync none)'"), "{text}");
}

#[test]
fn the_version_names_the_commit_and_the_journal_format() {
    let version = run(&["--version"]);
    assert_eq!(run(&["-V"]), version);
    let lines: Vec<&str> = version.lines().collect();
    assert_eq!(lines.len(), 3, "{version}");
    assert_eq!(lines[0], concat!("egnyte-receiver ", env!("CARGO_PKG_VERSION")));
    assert_eq!(lines[2], format!("journal format: {}", egnyte_receiver::journal::format::VERSION));
    let commit = lines[1].strip_prefix("commit: ").unwrap_or_else(|| panic!("{version}"));
    // Built from a git checkout: HEAD's hash (abbreviations may differ in length).
    let head = Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    match head {
        Some(head) => {
            let hash = commit.strip_suffix("+dirty").unwrap_or(commit);
            assert!(hash.len() >= 7 && hash.bytes().all(|b| b.is_ascii_hexdigit()), "{version}");
            assert!(hash.starts_with(&head) || head.starts_with(hash), "built from {hash}, HEAD is {head}");
        }
        None => assert_eq!(commit, "unknown", "not a git checkout: {version}"),
    }
}

/// The `.deb`'s assets as (source, destination, mode), read from Cargo.toml's
/// `[package.metadata.deb]` list (one `["…", "…", "…"],` a line).
fn deb_assets() -> Vec<(String, String, String)> {
    let manifest = std::fs::read_to_string(repo("Cargo.toml")).unwrap();
    let list = manifest.split("\nassets = [\n").nth(1).expect("an assets list");
    list.lines()
        .take_while(|line| line.trim() != "]")
        .map(|line| {
            let cells: Vec<String> = line
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(',')
                .trim_end_matches(']')
                .split(", ")
                .map(|cell| cell.trim_matches('"').to_owned())
                .collect();
            assert_eq!(cells.len(), 3, "{line}");
            (cells[0].clone(), cells[1].clone(), cells[2].clone())
        })
        .collect()
}

#[test]
fn the_package_ships_the_man_page_completions_changelog_and_scrape_config() {
    let assets = deb_assets();
    for (source, destination, mode) in &assets {
        if !source.starts_with("target/") {
            assert!(repo(source).is_file(), "the .deb asset {source} does not exist");
        }
        assert!(mode == "644" || mode == "755", "{source}: mode {mode}");
        assert!(!destination.starts_with('/'), "{destination}: cargo-deb destinations are relative");
    }
    let ships = |source: &str, destination: &str| {
        assert!(
            assets.iter().any(|(s, d, m)| s == source && d == destination && m == "644"),
            "the .deb must install {source} as {destination}: {assets:?}"
        );
    };
    ships(MAN_PAGE, "usr/share/man/man1/egnyte-receiver.1");
    ships(BASH_COMPLETION, "usr/share/bash-completion/completions/egnyte-receiver");
    ships(ZSH_COMPLETION, "usr/share/zsh/vendor-completions/_egnyte-receiver");
    ships("CHANGELOG.md", "usr/share/doc/egnyte-receiver/");
    ships(SCRAPE_CONFIG, "usr/share/doc/egnyte-receiver/deploy/prometheus/");
}

#[test]
fn the_changelog_has_an_unreleased_section_with_the_journal_format() {
    let changelog = std::fs::read_to_string(repo("CHANGELOG.md")).unwrap();
    assert!(changelog.starts_with("# Changelog\n"), "Keep a Changelog's title");
    assert!(changelog.contains("https://keepachangelog.com/en/1.1.0/"));
    assert!(changelog.contains("\n## [Unreleased]\n"));
    let format = egnyte_receiver::journal::format::VERSION;
    assert!(
        changelog.contains(&format!("Journal format: {format}")),
        "the changelog names journal format {format}"
    );
}

#[test]
fn the_scrape_config_scrapes_the_receiver() {
    let path = repo(SCRAPE_CONFIG);
    let text = std::fs::read_to_string(&path).unwrap();
    for expected in [
        "job_name: egnyte-receiver",
        "metrics_path: /metrics",
        "scrape_interval: 15s",
        "- targets: [\"127.0.0.1:8080\"]",
    ] {
        assert!(text.contains(expected), "{SCRAPE_CONFIG} lacks {expected:?}");
    }
    let Some(output) =
        tool(Command::new("promtool").args(["check", "config", "--syntax-only"]).arg(&path), true)
    else {
        return;
    };
    assert!(output.status.success(), "promtool check config: {output:?}");
}
