//! The `burnrate` binary: parse flags, set up logging, run the command.

use clap::Parser;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BURNRATE_LOG")
                .unwrap_or_else(|_| "burnrate=info".into()),
        )
        .with_writer(std::io::stderr)
        // Colour codes only help a person at a terminal; in a file or a log pipeline
        // they are noise that breaks grep and parsers.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = match burnrate::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return burnrate::cli::usage_exit_code(&e);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(burnrate::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
