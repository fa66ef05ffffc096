//! `elbmedic`: the command line of the diagnosis engine, for on-call engineers and offline
//! replay. Thin by design: it reads files, calls the engine, prints, and maps outcomes to exit
//! codes (0 ok, 2 bad input, 3 unsupported alarm).

mod alarms;
mod commands;
mod input;
mod live;
mod output;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use elbmedic_engine::plan::message::{Mode, UnknownMode};

#[derive(Parser)]
#[command(
    name = "elbmedic",
    version,
    about = "Finds why an AWS load balancer in front of EKS returns 5xx: the cause, the evidence, and the exact fix"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Diagnose an embedded scenario offline and print its report (no AWS account needed).
    Demo {
        /// Scenario to run; see --list.
        #[arg(long, default_value = elbmedic_engine::scenarios::DEFAULT_DEMO)]
        scenario: String,
        /// List the embedded scenarios and exit.
        #[arg(long)]
        list: bool,
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
    },
    /// Diagnose an alarm event: live from AWS, or replayed against a recorded snapshot.
    Diagnose {
        /// SNS event or CloudWatch alarm JSON (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        event: String,
        /// Replay against this snapshot (from `elbmedic snapshot`) instead of gathering from AWS.
        #[arg(long, value_name = "FILE")]
        snapshot: Option<String>,
        #[arg(long, value_enum, default_value_t = FormatArg::Text)]
        format: FormatArg,
        /// Also publish each report to this SNS topic, as the diagnose function does.
        #[arg(long, value_name = "TOPIC_ARN")]
        publish: Option<String>,
        /// Remediation: off (default), dry-run, approve, auto. Overrides REMEDIATION_MODE;
        /// the guardrails come from the same variables as the functions'.
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
        /// Wait a few seconds longer and look up every recent change in CloudTrail (the
        /// function's follow-up pass, done in this run) instead of the first pass's two lookups.
        #[arg(long)]
        follow_up: bool,
    },
    /// Print the command that attaches elbmedic's alarms (infra/alarms.yaml) to a load balancer.
    Alarms {
        /// The ALB's or Classic LB's name, as the console and `kubectl get svc,ingress` show it.
        #[arg(long, value_name = "NAME")]
        lb: String,
        /// The AlarmTopicArn output of the elbmedic stack (same region as the LB).
        #[arg(long, value_name = "TOPIC_ARN")]
        topic: String,
        /// Defaults to AWS_REGION.
        #[arg(long)]
        region: Option<String>,
    },
    /// The remediation ledger (DynamoDB): lock, cooldown and audit trail.
    Ledger {
        #[command(subcommand)]
        command: LedgerCommand,
    },
    /// Put back what a plan changed in a cluster, from the ledger's before values (only
    /// fields still as elbmedic set them), under the same locks and guardrails.
    Undo {
        /// The plan's id, as its outcome report names it (plan-...).
        plan_id: String,
        /// The ledger table; defaults to LEDGER_TABLE.
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
        /// The ledger's region; defaults to AWS_REGION.
        #[arg(long)]
        region: Option<String>,
        /// Overrides REMEDIATION_MODE (off is the kill switch: undo then changes nothing).
        #[arg(long, value_parser = parse_mode)]
        mode: Option<Mode>,
    },
    /// List the open and recent incidents from the ledger: alarms, cause changes, plans, and
    /// what each alarm became (full report, update, recovery, nothing).
    Incidents {
        /// Only load balancers whose name or id contains this.
        #[arg(long, value_name = "NAME")]
        lb: Option<String>,
        /// The ledger table; defaults to LEDGER_TABLE.
        #[arg(long, value_name = "NAME")]
        table: Option<String>,
        /// The ledger's region; defaults to AWS_REGION.
        #[arg(long)]
        region: Option<String>,
        /// Print the incidents' records as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Gather the snapshot of the alarmed load balancer from AWS and print it as JSON.
    Snapshot {
        /// SNS event or CloudWatch alarm JSON (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        event: String,
    },
    /// Print what was understood from an alarm event, as JSON.
    Alarm {
        /// SNS event or CloudWatch alarm JSON (`-` for standard input).
        #[arg(long, value_name = "FILE")]
        event: String,
    },
}

#[derive(Subcommand)]
enum LedgerCommand {
    /// Create the ledger table (on-demand billing); an existing table is left as it is.
    Create {
        #[arg(long, value_name = "NAME")]
        table: String,
        /// Defaults to AWS_REGION.
        #[arg(long)]
        region: Option<String>,
    },
}

fn parse_mode(text: &str) -> Result<Mode, UnknownMode> {
    text.parse()
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Text,
    Markdown,
    Json,
    /// One self-contained page (inline CSS and SVG, no script): the path diagram and charts.
    Html,
}

impl From<FormatArg> for elbmedic_engine::report::Format {
    fn from(format: FormatArg) -> Self {
        match format {
            FormatArg::Text => Self::Text,
            FormatArg::Markdown => Self::Markdown,
            FormatArg::Json => Self::Json,
            FormatArg::Html => Self::Html,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Demo {
            scenario,
            list,
            format,
        } => commands::demo(&scenario, list, format.into()),
        Command::Diagnose {
            event,
            snapshot,
            format,
            publish,
            mode,
            follow_up,
        } => commands::diagnose(
            &event,
            snapshot.as_deref(),
            format.into(),
            publish.as_deref(),
            mode,
            follow_up,
        ),
        Command::Ledger {
            command: LedgerCommand::Create { table, region },
        } => commands::ledger_create(&table, region.as_deref()),
        Command::Alarms { lb, topic, region } => commands::alarms(&lb, &topic, region.as_deref()),
        Command::Undo {
            plan_id,
            table,
            region,
            mode,
        } => commands::undo(&plan_id, table.as_deref(), region.as_deref(), mode),
        Command::Incidents {
            lb,
            table,
            region,
            json,
        } => commands::incidents(lb.as_deref(), table.as_deref(), region.as_deref(), json),
        Command::Snapshot { event } => commands::snapshot(&event),
        Command::Alarm { event } => commands::alarm(&event),
    };
    match outcome {
        Ok(code) => code.into(),
        Err(error) => {
            output::error(&error);
            commands::Exit::BadInput.into()
        }
    }
}
