//! When an alarm's episode began: the last time it went into ALARM, read from its history
//! (`cloudwatch:DescribeAlarmHistory`, read-only). A recovery's chat message names that moment
//! so that it joins the thread of the report of the ALARM it ends.

use aws_sdk_cloudwatch::types::{HistoryItemType, ScanBy};
use serde_json::Value;

/// How many state updates are read back, newest first, looking for the ALARM.
const HISTORY_ITEMS: i32 = 10;

/// The time (RFC 3339) of the last transition into ALARM before `before` (epoch seconds);
/// `None` when the history cannot be read or holds none, and the recovery gets a thread of its
/// own.
pub async fn began(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    alarm_name: &str,
    before: Option<i64>,
) -> Option<String> {
    let mut request = cloudwatch
        .describe_alarm_history()
        .alarm_name(alarm_name)
        .history_item_type(HistoryItemType::StateUpdate)
        .scan_by(ScanBy::TimestampDescending)
        .max_records(HISTORY_ITEMS);
    if let Some(before) = before {
        request = request.end_date(aws_smithy_types::DateTime::from_secs(before));
    }
    let history = match request.send().await {
        Ok(history) => history,
        Err(error) => {
            tracing::warn!(alarm = alarm_name, error = %aws_smithy_types::error::display::DisplayErrorContext(&error), "the alarm's history could not be read; its recovery gets a chat thread of its own");
            return None;
        }
    };
    history.alarm_history_items().iter().find_map(|item| {
        let data: Value = serde_json::from_str(item.history_data()?).ok()?;
        let into_alarm = data["newState"]["stateValue"] == "ALARM";
        let at = item.timestamp()?;
        into_alarm.then(|| {
            chrono::DateTime::from_timestamp(at.secs(), 0)
                .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        })?
    })
}
