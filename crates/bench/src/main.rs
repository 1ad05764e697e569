//! `propdesk-bench`: the load generator (`load`) and the one-run benchmark (`suite`).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use propdesk_bench::BenchError;
use propdesk_bench::client::Connections;
use propdesk_bench::load::{self, LoadSpec, Pace};
use propdesk_bench::suite::{self, SuiteOptions};

#[derive(Parser)]
#[command(name = "propdesk-bench", about = "Load generator and benchmark for propdesk")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum Call {
    /// CreateTicket with the realistic mix, for the token holder's properties.
    Create,
    /// The gRPC health check.
    Health,
}

#[derive(Clone, Copy, PartialEq, ValueEnum)]
enum Phase {
    /// Intake, end to end and escalation lateness on PostgreSQL and RabbitMQ.
    Postgres,
    /// `propdesk dev` on SQLite.
    Embedded,
    /// End to end on PostgreSQL and RabbitMQ alone (with the ceilings), for quick looks.
    E2e,
    /// CreateTicket on PostgreSQL alone (with the ceilings), for quick looks.
    Intake,
    /// The desk's search and look-ups among 100,000 tickets on PostgreSQL (with the ceilings).
    Desk,
    /// Attachment uploads and downloads (with the ceilings).
    Files,
    /// Many WatchTickets streams, on PostgreSQL and in embedded mode (with the ceilings).
    Watch,
}

#[derive(Subcommand)]
enum Command {
    /// Load a running intake and print what it measured (JSON).
    Load {
        /// The intake, e.g. http://127.0.0.1:50051.
        #[arg(long)]
        url: String,
        /// Bearer token of an agent (CreateTicket); its properties and units are read from DirectoryService.
        #[arg(long, env = "PROPDESK_TOKEN")]
        token: Option<String>,
        #[arg(long, value_enum, default_value = "create")]
        call: Call,
        /// Open loop: requests per second.
        #[arg(long, conflicts_with = "concurrency")]
        rate: Option<f64>,
        /// Closed loop: callers, each with one request in flight.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[arg(long, default_value_t = 20)]
        duration_secs: u64,
        #[arg(long, default_value_t = 3)]
        warmup_secs: u64,
        #[arg(long, default_value_t = 4)]
        connections: usize,
    },
    /// The whole benchmark against local PostgreSQL and RabbitMQ (see scripts/bench).
    Suite {
        #[arg(long, default_value = "bench/results")]
        out: PathBuf,
        #[arg(long, default_value = "target/bench")]
        logs: PathBuf,
        #[arg(long, default_value = "bench/create_ticket.pgbench.sql")]
        pgbench_script: PathBuf,
        #[arg(long, env = "PROPDESK_BENCH_POSTGRES", default_value = "postgres://postgres@127.0.0.1:5432")]
        postgres: String,
        #[arg(long, env = "PROPDESK_BENCH_AMQP", default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp: String,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// Short windows and fewer deadlines: checks the run works, measures little.
        #[arg(long)]
        quick: bool,
        /// Only these phases after the ceilings (default: all).
        #[arg(long, value_enum)]
        only: Option<Phase>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("propdesk-bench: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("propdesk-bench: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), BenchError> {
    match command {
        Command::Load { url, token, call, rate, concurrency, duration_secs, warmup_secs, connections } => {
            let connections = Connections::open(&url, connections, token.as_deref()).await?;
            let pace = match rate {
                Some(rate) => Pace::Open { rate },
                None => Pace::Closed { concurrency },
            };
            let spec = LoadSpec {
                pace,
                warmup: Duration::from_secs(warmup_secs),
                duration: Duration::from_secs(duration_secs),
            };
            let outcome = match call {
                Call::Health => load::drive(spec, move |n| connections.health(n)).await,
                Call::Create => {
                    let sites = Arc::new(connections.discover_sites().await?);
                    let run = chrono::Utc::now().timestamp_micros() as u64;
                    load::drive(spec, move |n| connections.create_ticket(&sites, run, n)).await
                }
            };
            let json = serde_json::to_string_pretty(&outcome).map_err(|e| BenchError::Setup(e.to_string()))?;
            println!("{json}");
            Ok(())
        }
        Command::Suite { out, logs, pgbench_script, postgres, amqp, concurrency, quick, only } => {
            let mut options = SuiteOptions::new(out.clone(), logs, pgbench_script);
            options.postgres_server = postgres.trim_end_matches('/').to_owned();
            options.amqp_url = amqp;
            options.concurrency = concurrency;
            let measures = |phases: &[Phase]| only.is_none_or(|phase| phases.contains(&phase));
            options.intake = measures(&[Phase::Postgres, Phase::Intake]);
            options.end_to_end = measures(&[Phase::Postgres, Phase::E2e]);
            options.time = measures(&[Phase::Postgres]);
            options.embedded = measures(&[Phase::Embedded]);
            options.desk = measures(&[Phase::Postgres, Phase::Desk]);
            options.files = measures(&[Phase::Postgres, Phase::Files]);
            options.watch = measures(&[Phase::Postgres, Phase::Watch]);
            if quick {
                options.warmup = Duration::from_secs(1);
                options.intake_window = Duration::from_secs(3);
                options.e2e_window = Duration::from_secs(5);
                options.embedded_e2e_window = Duration::from_secs(5);
                options.e2e_step_window = Duration::from_secs(3);
                options.e2e_cold_window = Duration::from_secs(3);
                options.open_deadlines = 3_000;
                options.firing_tickets = 100;
                options.firing_allowance_secs = 5;
                options.desk_tickets = 5_000;
                options.desk_window = Duration::from_secs(3);
                options.files_window = Duration::from_secs(3);
                options.watch_window = Duration::from_secs(5);
            }
            let report = suite::run(options).await?;
            suite::write(&report, &out)?;
            println!("{}", report.table());
            println!("results: {}/results.md and results.json", out.display());
            Ok(())
        }
    }
}
