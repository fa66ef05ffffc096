//! One alarm record from intake to published report: the path the `diagnose` function and the
//! CLI share, so they cannot drift apart.

use std::time::Duration;

use elbmedic_engine::alarm::{Alarm, AlarmState, Intake, LbRef};
use elbmedic_engine::report::Report;
use elbmedic_engine::snapshot::Snapshot;

use crate::clients::{CallLimits, Clients};
use crate::gather::{gather, GatherOptions};

/// Gathers the snapshot of the alarm's load balancer, with the window the alarm evaluated,
/// and elbmedic's own history of it from `ledger_table` when one is given.
pub async fn snapshot_for(
    clients: &Clients,
    alarm: &Alarm,
    lb: &LbRef,
    now: i64,
    deadline: Duration,
    ledger_table: Option<&str>,
) -> Snapshot {
    let mut options = GatherOptions::new(
        now,
        alarm.state_change_epoch,
        alarm.period_seconds,
        alarm.evaluation_periods,
    );
    options.account_id = alarm.account_id.clone();
    options.deadline = deadline;
    options.ledger_table = ledger_table.map(str::to_string);
    gather(clients, lb, &options).await
}

/// The report for one record: gathered and diagnosed for ALARM, a short notice otherwise.
/// Clients are loaded for the alarm's region on first use.
pub async fn report_for(
    intake: &Intake,
    clients: Option<&Clients>,
    now: i64,
    deadline: Duration,
    ledger_table: Option<&str>,
) -> (Report, Option<Snapshot>) {
    match intake {
        Intake::Diagnose {
            alarm,
            load_balancer,
        } => {
            let loaded;
            let clients = match clients {
                Some(clients) if clients.region == alarm.region => clients,
                _ => {
                    loaded = Clients::load(&alarm.region, CallLimits::default()).await;
                    &loaded
                }
            };
            // Boxed: the gather's future is deep, and callers nest it further.
            let world = Box::pin(snapshot_for(
                clients,
                alarm,
                load_balancer,
                now,
                deadline,
                ledger_table,
            ))
            .await;
            (Report::diagnosed(alarm, load_balancer, &world), Some(world))
        }
        other => match Report::without_diagnosis(other) {
            Some(report) => (report, None),
            None => unreachable!("only Diagnose needs a snapshot"),
        },
    }
}

/// Whether a record's report goes to the on-call topic: INSUFFICIENT_DATA (of a metric or a
/// composite alarm) is acknowledged and not published; everything else is.
pub fn worth_publishing(intake: &Intake) -> bool {
    match intake {
        Intake::Skipped { .. } => false,
        Intake::Composite { alarm, .. } => alarm.state != AlarmState::InsufficientData,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use elbmedic_engine::alarm::parse_input;

    #[test]
    fn insufficient_data_is_not_published_for_metric_or_composite_alarms() {
        let composite = |state: &str| {
            let message = serde_json::json!({
                "AlarmName": "c", "NewStateValue": state, "AlarmRule": "ALARM(\"a\")",
                "AlarmArn": "arn:aws:cloudwatch:eu-west-1:123456789012:alarm:c",
            });
            parse_input(message.to_string().as_bytes())
                .unwrap()
                .remove(0)
                .unwrap()
        };
        assert!(worth_publishing(&composite("ALARM")));
        assert!(worth_publishing(&composite("OK")));
        assert!(!worth_publishing(&composite("INSUFFICIENT_DATA")));
    }
}
