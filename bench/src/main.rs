//! `burnrate-bench`: the benchmarks, outside the shipped library and binary. Each starts
//! the `burnrate` binary built beside it (or `BURNRATE_BIN`) through the harness the
//! end-to-end tests use.

mod flags;
mod run;

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let bench = flags::Bench::parse();
    match run::run(bench.command).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
