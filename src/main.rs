//! The `egnyte-receiver` binary: parse the command line, run the command, exit with its status.

#![deny(unsafe_code)]

mod cli;

use std::process::ExitCode;

fn main() -> ExitCode {
    match cli::Command::from_args(std::env::args_os().skip(1)) {
        Ok(command) => command.run(),
        Err(error) => {
            eprintln!("egnyte-receiver: {error}\nTry 'egnyte-receiver --help' for more information.");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}
