//! What the machine itself can do, measured the same way every run: the database running
//! CreateTicket's own statements (pgbench), and the broker taking durable messages with
//! pipelined publisher confirms. (The gRPC ceiling is the load generator calling the health
//! check; see the suite.)

use std::collections::VecDeque;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Confirmation, Connection, ConnectionProperties};
use serde::Serialize;

use crate::BenchError;

#[derive(Debug, Clone, Serialize)]
pub struct PgbenchOutcome {
    pub clients: usize,
    pub seconds: u64,
    pub transactions_per_second: f64,
    pub latency_average_ms: f64,
}

/// A PostgreSQL server and database, as pgbench and psql take them.
#[derive(Debug, Clone)]
pub struct PgTarget {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub database: String,
}

impl PgTarget {
    /// From `postgres://user[:password]@host[:port]/database`.
    pub fn parse(url: &str) -> Result<PgTarget, BenchError> {
        let bad = || BenchError::Setup(format!("not a postgres://user@host:port/database URL: {url}"));
        let rest = url.strip_prefix("postgres://").or_else(|| url.strip_prefix("postgresql://")).ok_or_else(bad)?;
        let (authority, database) = rest.split_once('/').ok_or_else(bad)?;
        let (user, server) = authority.rsplit_once('@').unwrap_or(("postgres", authority));
        let user = user.split(':').next().unwrap_or("postgres");
        let (host, port) = match server.rsplit_once(':') {
            Some((host, port)) => (host, port.parse().map_err(|_| bad())?),
            None => (server, 5432),
        };
        let database = database.split('?').next().unwrap_or_default();
        if host.is_empty() || database.is_empty() {
            return Err(bad());
        }
        Ok(PgTarget { host: host.to_owned(), port, user: user.to_owned(), database: database.to_owned() })
    }

    pub fn url(&self) -> String {
        format!("postgres://{}@{}:{}/{}", self.user, self.host, self.port, self.database)
    }
}

/// Runs `script` with pgbench: `clients` connections for `seconds`, prepared statements.
pub fn pgbench(
    target: &PgTarget,
    script: &Path,
    clients: usize,
    seconds: u64,
    variables: &[(&str, &str)],
) -> Result<PgbenchOutcome, BenchError> {
    let mut command = Command::new("pgbench");
    command
        .args(["-h", &target.host, "-p", &target.port.to_string(), "-U", &target.user])
        .args(["-n", "-M", "prepared", "-j", "2"])
        .args(["-c", &clients.to_string(), "-T", &seconds.to_string()])
        .arg("-f")
        .arg(script);
    for (name, value) in variables {
        command.args(["-D", &format!("{name}={value}")]);
    }
    command.arg(&target.database);
    let output = command.output().map_err(|e| BenchError::Setup(format!("cannot run pgbench: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(BenchError::Setup(format!(
            "pgbench failed: {}{}",
            stdout,
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    parse_pgbench(&stdout, clients, seconds)
}

fn parse_pgbench(stdout: &str, clients: usize, seconds: u64) -> Result<PgbenchOutcome, BenchError> {
    let number_after = |prefix: &str| {
        stdout
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    let tps =
        number_after("tps = ").ok_or_else(|| BenchError::Setup(format!("no tps in pgbench output:\n{stdout}")))?;
    Ok(PgbenchOutcome {
        clients,
        seconds,
        transactions_per_second: tps,
        latency_average_ms: number_after("latency average = ").unwrap_or_default(),
    })
}

#[derive(Debug, Clone, Serialize)]
pub struct BrokerOutcome {
    pub messages_per_second: f64,
    pub payload_bytes: usize,
    pub in_flight: usize,
}

const CEILING_QUEUE: &str = "propdesk-bench.ceiling";

/// Publishes persistent `payload_bytes` messages to a fresh quorum queue, keeping
/// `in_flight` unconfirmed, for `seconds` after a one-second warm-up; confirmed messages
/// per second. The queue is deleted afterwards.
pub async fn broker_publish(
    amqp_url: &str,
    seconds: f64,
    in_flight: usize,
    payload_bytes: usize,
) -> Result<BrokerOutcome, BenchError> {
    let connection = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = connection.create_channel().await?;
    let mut quorum = FieldTable::default();
    quorum.insert(ShortString::from("x-queue-type"), AMQPValue::LongString("quorum".into()));
    let durable = QueueDeclareOptions { durable: true, ..QueueDeclareOptions::default() };
    channel.queue_delete(CEILING_QUEUE.into(), QueueDeleteOptions::default()).await?;
    channel.queue_declare(CEILING_QUEUE.into(), durable, quorum).await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let payload = vec![b'x'; payload_bytes];
    let properties = BasicProperties::default().with_delivery_mode(2);
    let started = Instant::now();
    let measured_from = started + Duration::from_secs(1);
    let end = measured_from + Duration::from_secs_f64(seconds);
    let mut pending = VecDeque::with_capacity(in_flight);
    let mut confirmed = 0u64;
    let mut last_confirm = measured_from;
    loop {
        let now = Instant::now();
        if now < end {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    CEILING_QUEUE.into(),
                    BasicPublishOptions::default(),
                    &payload,
                    properties.clone(),
                )
                .await?;
            pending.push_back((now, confirm));
        }
        if pending.len() >= in_flight || (now >= end && !pending.is_empty()) {
            let Some((sent, confirm)) = pending.pop_front() else { break };
            match confirm.await? {
                Confirmation::Ack(_) if sent >= measured_from && sent < end => {
                    confirmed += 1;
                    last_confirm = Instant::now();
                }
                Confirmation::Ack(_) => {}
                other => return Err(BenchError::Setup(format!("broker refused a message: {other:?}"))),
            }
        } else if now >= end {
            break;
        }
    }
    channel.queue_delete(CEILING_QUEUE.into(), QueueDeleteOptions::default()).await?;
    connection.close(200, "done".into()).await?;
    let window = last_confirm.duration_since(measured_from).as_secs_f64().max(1e-9);
    Ok(BrokerOutcome { messages_per_second: confirmed as f64 / window, payload_bytes, in_flight })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_urls_name_host_port_user_and_database() {
        let target = PgTarget::parse("postgres://postgres@127.0.0.1:5432/propdesk_bench").expect("parse");
        assert_eq!(
            (target.host.as_str(), target.port, target.user.as_str(), target.database.as_str()),
            ("127.0.0.1", 5432, "postgres", "propdesk_bench")
        );
        assert_eq!(PgTarget::parse("postgres://u:pw@db/x?sslmode=disable").expect("parse").database, "x");
        assert!(PgTarget::parse("sqlite://x.db").is_err());
    }

    #[test]
    fn pgbench_output_gives_tps_and_latency() {
        let out = "transaction type: create_ticket.pgbench.sql\nlatency average = 9.412 ms\n\
                   initial connection time = 21.2 ms\ntps = 3399.823811 (without initial connection time)\n";
        let outcome = parse_pgbench(out, 32, 15).expect("parse");
        assert!((outcome.transactions_per_second - 3399.82).abs() < 0.01);
        assert!((outcome.latency_average_ms - 9.412).abs() < 1e-9);
        assert!(parse_pgbench("nothing", 1, 1).is_err());
    }
}
