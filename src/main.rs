//! The `burnrate` binary: parse flags, set up logging, run the command.

use std::io::IsTerminal;
use std::process::ExitCode;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    with_glibc_arenas();
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
    quiet_on_closed_stdout();
    let cli = match burnrate::cli::parse_args(std::env::args_os().collect()) {
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

/// The tunables glibc's malloc gets unless the environment sets its own: two arenas.
const GLIBC_TUNABLES: &str = "glibc.malloc.arena_max=2";

/// SQLite allocates through glibc's malloc (Rust code through mimalloc), which gives
/// each thread that reads its own arena and keeps in each what the thread freed: at 10M
/// calls, after a run of raw reads, 10 arenas held 17-31 MB each, 250 MB in all with
/// under 5 MB in use. With two arenas shared by every thread, what one read freed is
/// what the next one reuses. The limit can only be set before the process starts
/// (`GLIBC_TUNABLES`; `mallopt` needs unsafe code, which the crate forbids), so the
/// binary starts itself again once with it, as the first thing it does (the same
/// process id and arguments). If that fails it carries on as it is.
fn with_glibc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("GLIBC_TUNABLES").is_none() {
        use std::os::unix::process::CommandExt;
        let mut args = std::env::args_os();
        let Some(name) = args.next() else { return };
        // `exec` returns only on failure: then this process goes on with glibc's defaults.
        let _ = std::process::Command::new("/proc/self/exe")
            .arg0(name)
            .args(args)
            .env("GLIBC_TUNABLES", GLIBC_TUNABLES)
            .exec();
    }
}

/// `burnrate prices check | head` closes stdout early; Rust ignores SIGPIPE, so `println!`
/// panics. A reader that has seen enough is no error: exit quietly with the status a
/// shell gives a command killed by SIGPIPE (128 + 13). Other panics report as usual.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}
