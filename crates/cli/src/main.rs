//! `cloud-failover`: the operator CLI. Each command parses its arguments, builds the AWS
//! adapters and calls one library function; output is JSON or a table, errors are one line
//! on stderr with a non-zero exit.
//!
//! `args`: the argument model; `commands`: one function per command; `render`: JSON and
//! tables; `exit`: the exit codes and the error a command ends with.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;

/// Prints a line on stdout. A closed stdout (`cloud-failover history | head`) is no reason to
/// panic, nor to die of SIGPIPE half way through a failover: the line is dropped, the run goes
/// on, and its own outcome decides the exit code. (Logs on a closed stderr are dropped alike.)
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout().lock(), $($arg)*);
    }};
}

/// Prints a line on stderr, dropping it when stderr is closed (see `say!`).
macro_rules! stderr {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

mod args;
mod commands;
mod exit;
mod render;

use args::{Cli, Command, LogFormat};
use commands::Context;
use exit::CliError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(&cli);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match rt.block_on(dispatch(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => e.exit(),
    }
}

fn init_logs(cli: &Cli) {
    // Progress lines (one per mutation wave) when a person watches stderr.
    let level = if std::io::stderr().is_terminal() {
        format!("{},progress=info", cli.log_level)
    } else {
        cli.log_level.clone()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        // A log line that cannot be written (stderr closed) is dropped, not reported on the
        // same closed stderr (which would panic).
        .log_internal_errors(false);
    match cli.log_format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

async fn dispatch(cli: &Cli) -> Result<(), CliError> {
    let ctx = Context::of(cli);
    match &cli.command {
        Command::Validate { file, against } => commands::validate(&ctx, file, against),
        Command::Declare { file, to } => commands::declare(&ctx, file, to).await,
        Command::Plan {
            declaration,
            target,
        } => commands::plan(&ctx, declaration, target).await,
        Command::Execute {
            declaration,
            target,
            force,
            deadline,
        } => commands::execute(&ctx, declaration, target, *force, *deadline).await,
        Command::Unlock { declaration, force } => commands::unlock(&ctx, declaration, *force).await,
        Command::Reset { declaration, force } => commands::reset(&ctx, declaration, *force).await,
        Command::History {
            declaration,
            failed,
            cluster,
            limit,
        } => commands::history(&ctx, declaration, *failed, cluster.as_deref(), *limit).await,
        Command::Invoke {
            event,
            declaration,
            alarm_name_prefix,
        } => commands::invoke(&ctx, event, declaration, alarm_name_prefix).await,
        Command::Inspect { declaration } => commands::inspect(&ctx, declaration).await,
        Command::Doctor { declaration } => commands::doctor(&ctx, declaration).await,
        Command::State { declaration } => commands::state(&ctx, declaration).await,
    }
}
