//! The config file (`burnrate.toml`, named by `--config` or `BURNRATE_CONFIG`): every
//! flag of every command, the global ones at the top and each command's under its
//! section (`[serve]`, `[alerts.evaluate]`), keyed by the flag's long name. Precedence is
//! flags > environment > file > default: the command line is read first, then each
//! file value whose flag was neither given nor set by its environment variable is added
//! to the arguments (`--name=value`) and clap reads them again, so a file value is
//! checked exactly like the flag. `burnrate config example` prints every flag, commented,
//! from clap's own description of the commands (the documentation cannot drift).

use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use std::ffi::OsString;

#[derive(clap::Subcommand)]
pub enum ConfigCommand {
    /// Print a burnrate.toml with every flag of every command, commented, at its default.
    Example,
}

/// The flags never read from the file: where the file is, and clap's own.
const NOT_IN_FILE: &[&str] = &["config", "help", "version"];

/// The command line with the config file's values for what it left unset.
pub fn parse_args(args: Vec<OsString>) -> Result<super::Cli, clap::Error> {
    let command = super::Cli::command();
    let matches = command.clone().try_get_matches_from(&args)?;
    let Some(path) = matches.get_one::<std::path::PathBuf>("config") else {
        return super::Cli::from_arg_matches(&matches);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| bad(format!("--config {}: cannot read it: {e}", path.display())))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| bad(format!("{}: is not TOML: {e}", path.display())))?;
    check(&command, &table, "").map_err(|m| bad(format!("{}: {m}", path.display())))?;
    let extra = missing_values(&command, &matches, &table);
    if extra.is_empty() {
        return super::Cli::from_arg_matches(&matches);
    }
    let mut all = args;
    all.extend(extra.into_iter().map(OsString::from));
    <super::Cli as clap::Parser>::try_parse_from(all)
}

fn bad(message: String) -> clap::Error {
    clap::Error::raw(
        clap::error::ErrorKind::ValueValidation,
        format!("{message}\n"),
    )
}

/// The flags of a command that the file may hold.
fn file_flags(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        a.get_long().is_some()
            && !a.is_positional()
            && !a.is_global_set()
            && !NOT_IN_FILE.contains(&a.get_id().as_str())
    })
}

fn is_switch(arg: &Arg) -> bool {
    matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse)
}

/// Every key of `table` is a flag of `cmd` (of the right kind) or a section of one of
/// its subcommands; the first problem, named by its section and key.
fn check(cmd: &Command, table: &toml::Table, section: &str) -> Result<(), String> {
    for (key, value) in table {
        let place = match section {
            "" => key.clone(),
            s => format!("[{s}] {key}"),
        };
        if let Some(sub) = cmd.find_subcommand(key).filter(|_| value.is_table()) {
            let inner = if section.is_empty() {
                key.clone()
            } else {
                format!("{section}.{key}")
            };
            check(sub, value.as_table().expect("checked"), &inner)?;
            continue;
        }
        let flag = file_flags(cmd)
            .chain(
                section
                    .is_empty()
                    .then(|| globals(cmd))
                    .into_iter()
                    .flatten(),
            )
            .find(|a| a.get_long() == Some(key.as_str()));
        let Some(flag) = flag else {
            let known: Vec<String> = file_flags(cmd)
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect();
            return Err(format!(
                "{place} is not a flag of `burnrate {}`{}",
                section.replace('.', " "),
                if known.is_empty() {
                    String::new()
                } else {
                    format!(" (its flags: {})", known.join(", "))
                }
            ));
        };
        let fits = match value {
            toml::Value::Boolean(_) => is_switch(flag),
            toml::Value::Table(_) | toml::Value::Datetime(_) => false,
            toml::Value::Array(items) => {
                !is_switch(flag)
                    && matches!(flag.get_action(), ArgAction::Append)
                    && items.iter().all(|v| scalar(v).is_some())
            }
            other => !is_switch(flag) && scalar(other).is_some(),
        };
        if !fits {
            return Err(format!(
                "{place} must be {}",
                if is_switch(flag) {
                    "true or false"
                } else {
                    "a string or a number (an array for a flag given many times)"
                }
            ));
        }
    }
    Ok(())
}

/// The global flags (set on the top command, valid everywhere).
fn globals(cmd: &Command) -> impl Iterator<Item = &Arg> {
    cmd.get_arguments().filter(|a| {
        a.get_long().is_some() && a.is_global_set() && !NOT_IN_FILE.contains(&a.get_id().as_str())
    })
}

fn scalar(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        _ => None,
    }
}

/// `--name=value` for each file value whose flag the command line and the environment
/// left unset: the global ones, then those of each subcommand on the way down.
fn missing_values(cmd: &Command, matches: &ArgMatches, table: &toml::Table) -> Vec<String> {
    let mut out = Vec::new();
    add_missing(cmd, globals(cmd), matches, table, &mut out);
    let (mut cmd, mut matches, mut table) = (cmd, matches, table);
    while let Some((name, sub_matches)) = matches.subcommand() {
        let Some(sub) = cmd.find_subcommand(name) else {
            break;
        };
        let Some(section) = table.get(name).and_then(toml::Value::as_table) else {
            break;
        };
        add_missing(sub, file_flags(sub), sub_matches, section, &mut out);
        (cmd, matches, table) = (sub, sub_matches, section);
    }
    out
}

fn add_missing<'a>(
    cmd: &Command,
    flags: impl Iterator<Item = &'a Arg>,
    matches: &ArgMatches,
    table: &toml::Table,
    out: &mut Vec<String>,
) {
    use clap::parser::ValueSource;
    for flag in flags {
        let long = flag.get_long().expect("file flags have a long name");
        let Some(value) = table.get(long) else {
            continue;
        };
        let given = |a: &Arg| {
            matches!(
                matches.value_source(a.get_id().as_str()),
                Some(ValueSource::CommandLine | ValueSource::EnvVariable)
            )
        };
        // Set by the user, or in conflict with a flag the user set (`--from` on the
        // command line leaves the file's `since` out).
        if given(flag) || cmd.get_arg_conflicts_with(flag).into_iter().any(given) {
            continue;
        }
        match value {
            toml::Value::Boolean(on) => {
                // A switch set to its default adds nothing (and cannot conflict).
                let default_on = matches!(flag.get_action(), ArgAction::SetFalse);
                if *on != default_on {
                    out.push(format!("--{long}"));
                }
            }
            toml::Value::Array(items) => {
                out.extend(
                    items
                        .iter()
                        .filter_map(scalar)
                        .map(|v| format!("--{long}={v}")),
                );
            }
            other => {
                let text = scalar(other).unwrap_or_default();
                // The default given again adds nothing (and cannot conflict).
                let is_default = flag
                    .get_default_values()
                    .iter()
                    .any(|d| d.to_str() == Some(text.as_str()));
                if !is_default {
                    out.push(format!("--{long}={text}"));
                }
            }
        }
    }
}

/// The fully commented example: every flag of every command with its help, its
/// environment variable and its default (set where there is one, commented out where
/// there is none).
pub fn example() -> String {
    let cmd = super::Cli::command();
    let mut out = String::from(
        "# burnrate.toml: every flag of every command. Give it with --config PATH or\n\
         # BURNRATE_CONFIG=PATH. A flag on the command line wins over its environment\n\
         # variable, which wins over this file, which wins over the default. Keys are the\n\
         # flags' long names; each command's flags sit under its section ([serve],\n\
         # [alerts.evaluate]) and apply only when that command runs. Delete what you do\n\
         # not change: the values below are the defaults.\n\n",
    );
    let globals: Vec<&Arg> = globals(&cmd).collect();
    write_flags(&mut out, &globals);
    write_command(&mut out, &cmd, "");
    out
}

fn write_command(out: &mut String, cmd: &Command, path: &str) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let section = match path {
            "" => sub.get_name().to_string(),
            p => format!("{p}.{}", sub.get_name()),
        };
        let flags: Vec<&Arg> = file_flags(sub).filter(|a| !a.is_hide_set()).collect();
        if !flags.is_empty() {
            out.push_str(&format!("[{section}]\n"));
            if let Some(about) = sub.get_about() {
                out.push_str(&format!(
                    "# burnrate {}: {about}\n\n",
                    section.replace('.', " ")
                ));
            }
            write_flags(out, &flags);
        }
        write_command(out, sub, &section);
    }
}

fn write_flags(out: &mut String, flags: &[&Arg]) {
    for flag in flags {
        let long = flag.get_long().expect("file flags have a long name");
        if let Some(help) = flag.get_long_help().or(flag.get_help()) {
            for line in help.to_string().lines() {
                out.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
            }
        }
        if let Some(env) = flag.get_env() {
            out.push_str(&format!("# (env {})\n", env.to_string_lossy()));
        }
        let defaults: Vec<String> = flag
            .get_default_values()
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect();
        let line = if is_switch(flag) {
            format!("{long} = false\n")
        } else if let [only] = defaults.as_slice() {
            format!("{long} = {}\n", toml_value(only))
        } else if matches!(flag.get_action(), ArgAction::Append) {
            format!("# {long} = []\n")
        } else {
            format!("# {long} = \"\"\n")
        };
        out.push_str(&line);
        out.push('\n');
    }
}

/// A default as TOML: numbers as numbers, the rest as strings.
fn toml_value(text: &str) -> String {
    let number = text.parse::<i64>().is_ok()
        || (text.parse::<f64>().is_ok_and(f64::is_finite) && text.contains('.'));
    if number {
        text.to_string()
    } else {
        toml::Value::String(text.to_string()).to_string()
    }
}

/// Every (section, flag) the file can hold, for the test that the example covers them.
pub fn every_flag() -> Vec<(String, String)> {
    let cmd = super::Cli::command();
    let mut out: Vec<(String, String)> = globals(&cmd)
        .filter_map(|a| Some((String::new(), a.get_long()?.to_string())))
        .collect();
    collect(&cmd, "", &mut out);
    out
}

fn collect(cmd: &Command, path: &str, out: &mut Vec<(String, String)>) {
    for sub in cmd.get_subcommands() {
        if sub.get_name() == "help" || sub.is_hide_set() {
            continue;
        }
        let section = match path {
            "" => sub.get_name().to_string(),
            p => format!("{p}.{}", sub.get_name()),
        };
        for flag in file_flags(sub).filter(|a| !a.is_hide_set()) {
            out.push((
                section.clone(),
                flag.get_long().unwrap_or_default().to_string(),
            ));
        }
        collect(sub, &section, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_parses_checks_and_covers_every_flag() {
        let text = example();
        let table: toml::Table = text.parse().expect("the example is TOML");
        check(&super::super::Cli::command(), &table, "").expect("every key is a flag");
        // Every flag appears under its section, set or commented out.
        let mut section = String::new();
        let mut seen = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = s.to_string();
            }
            let key_line = line.strip_prefix("# ").unwrap_or(line);
            if let Some((key, _)) = key_line.split_once(" = ") {
                seen.insert((section.clone(), key.to_string()));
            }
        }
        let all = every_flag();
        assert!(all.len() > 50, "{} flags", all.len());
        for flag in &all {
            assert!(seen.contains(flag), "{flag:?} missing from the example");
        }
        assert!(all.contains(&("serve".into(), "listen".into())));
        assert!(all.contains(&(String::new(), "db".into())));
    }

    #[test]
    fn a_key_that_is_no_flag_or_of_the_wrong_kind_is_named() {
        let cmd = super::super::Cli::command();
        let table: toml::Table = "[serve]\nlistn = \"x\"\n".parse().unwrap();
        let e = check(&cmd, &table, "").unwrap_err();
        assert!(e.starts_with("[serve] listn is not a flag"), "{e}");
        let table: toml::Table = "[serve]\nno-alerts = \"yes\"\n".parse().unwrap();
        let e = check(&cmd, &table, "").unwrap_err();
        assert_eq!(e, "[serve] no-alerts must be true or false");
    }
}
