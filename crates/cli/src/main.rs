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
mod progress;
mod render;

use args::{Cli, Command, LogFormat};
use commands::Context;
use exit::CliError;

/// Variables the flags read that are set but empty: unset, as if not there (an empty
/// `CLOUD_FAILOVER_EMULATOR=` or `SCOPING_TAG_KEY=$(…)` must not break every command).
const OPTIONAL_ENV: [&str; 5] = [
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "CLOUD_FAILOVER_EMULATOR",
    "SCOPING_TAG_KEY",
    "DECLARATION_URI",
];

fn main() -> ExitCode {
    for name in OPTIONAL_ENV {
        if std::env::var_os(name).is_some_and(|v| v.is_empty()) {
            std::env::remove_var(name);
        }
    }
    let cli = Cli::parse();
    if cli.emulator.is_some() && cli.endpoint_url.is_none() && cli.command.uses_the_cloud() {
        stderr!("note: --emulator without --endpoint-url is ignored: the calls go to AWS, with its behaviour and your credentials");
    }
    if cli.endpoint_url.is_some() && cli.emulator.is_none() && cli.command.uses_the_cloud() {
        stderr!("note: --endpoint-url without --emulator: AWS's behaviour and real credentials are expected there (for a local moto server add --emulator moto)");
    }
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
    use tracing_subscriber::filter::{filter_fn, EnvFilter};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    // A person watching stderr sees a paced run's progress as a bar (progress.rs), drawn from
    // the executor's `progress` events; the log lines go on as asked, without them.
    let terminal = std::io::stderr().is_terminal();
    let level = if terminal {
        format!("{},progress=off", cli.log_level)
    } else {
        cli.log_level.clone()
    };
    // The SDK's crates never above debug, whatever --log-level says (their trace lines carry
    // the access key id: failover_core::app::logging).
    let level = failover_core::app::logging::capped(&level);
    let filter = EnvFilter::try_new(&level).unwrap_or_else(|_| EnvFilter::new("warn"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(terminal)
        .with_writer(progress::BelowTheBar)
        // A log line that cannot be written (stderr closed) is dropped, not reported on the
        // same closed stderr (which would panic).
        .log_internal_errors(false);
    let logs = match cli.log_format {
        LogFormat::Json => fmt.json().with_filter(filter).boxed(),
        LogFormat::Text => fmt.with_filter(filter).boxed(),
    };
    let bar = terminal.then(|| {
        progress::ProgressBar::default().with_filter(filter_fn(|m| m.target() == "progress"))
    });
    tracing_subscriber::registry().with(logs).with(bar).init();
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
            local_time,
        } => {
            let filter = commands::HistoryFilter {
                failed: *failed,
                cluster: cluster.as_deref(),
                limit: *limit,
                local_time: *local_time,
            };
            commands::history(&ctx, declaration, filter).await
        }
        Command::Invoke {
            event,
            declaration,
            alarm_name_prefix,
        } => commands::invoke(&ctx, event, declaration, alarm_name_prefix).await,
        Command::Inspect { declaration } => commands::inspect(&ctx, declaration).await,
        Command::Doctor {
            declaration,
            probe_subnets,
        } => commands::doctor(&ctx, declaration, probe_subnets).await,
        Command::State { declaration } => commands::state(&ctx, declaration).await,
        Command::Init {
            instances,
            label,
            route_tables,
            eips,
            out,
            apply,
        } => {
            let asked = commands::InitArgs {
                instances,
                label,
                route_tables,
                eips,
                out,
                apply: *apply,
            };
            commands::init(&ctx, asked).await
        }
    }
}
