//! The alarm window's access logs, read from S3 and counted as they stream (the engine's
//! `access_log::Tally`); only the counts reach the snapshot. An ALB writes a file per node
//! every 5 minutes and a Classic LB every 5 or 60, with eventual delivery, so this runs in the
//! follow-up pass (and the CLI's `--follow-up`), never in the first.
//!
//! Keys: `[PREFIX/]AWSLogs/ACCOUNT/elasticloadbalancing/REGION/YYYY/MM/DD/ACCOUNT_elasticloadbalancing_REGION_LB_ENDTIME_IP_RANDOM.log[.gz]`,
//! where `LB` is `app.NAME.ID` for an ALB and the name for a Classic LB, and `ENDTIME` is
//! `YYYYMMDDTHHMMZ`. The date folder is the UTC delivery date, so a window across midnight
//! lists two folders; `StartAfter` skips to the window's start within the LB's own keys.
//! Reading is bounded in objects, decompressed bytes and time: a 256 MB function has a
//! fraction of a vCPU.

use std::io::Read;

use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use elbmedic_engine::access_log::{AccessLogs, Tally};
use elbmedic_engine::alarm::LbKind;
use elbmedic_engine::snapshot::{Gap, GapFact, GapReason, Snapshot, DEFAULT_IDLE_TIMEOUT};
use tokio::time::Instant;

use super::bounded;
use crate::clients::Clients;

/// How much one read may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    /// Log objects read at most.
    pub objects: usize,
    /// Decompressed bytes read at most, over all objects.
    pub bytes: u64,
}

/// 200 objects (an ALB of 3 zones writes 36 in its 5-minute files over an hour) and 32 MiB.
pub const BUDGET: Budget = Budget {
    objects: 200,
    bytes: 32 * 1024 * 1024,
};

/// An object larger than this (compressed) is not fetched: it alone would exceed the budget.
const MAX_OBJECT_BYTES: i64 = 16 * 1024 * 1024;

/// The `ENDTIME` of a log file name (`20261123T1805Z`) as epoch seconds.
fn end_time(key: &str) -> Option<i64> {
    let token = key
        .rsplit('/')
        .next()?
        .split('_')
        .find(|t| t.len() == 14 && t.ends_with('Z') && t.as_bytes().get(8) == Some(&b'T'))?;
    let text = format!(
        "{}-{}-{}T{}:{}:00Z",
        &token[0..4],
        &token[4..6],
        &token[6..8],
        &token[9..11],
        &token[11..13]
    );
    elbmedic_engine::alarm::parse_timestamp(&text)
}

fn end_token(epoch: i64) -> String {
    chrono::DateTime::from_timestamp(epoch, 0)
        .map(|t| t.format("%Y%m%dT%H%MZ").to_string())
        .unwrap_or_default()
}

/// The UTC dates (`YYYY/MM/DD`) whose folders may hold files delivered for the window.
fn date_folders(from: i64, to: i64) -> Vec<String> {
    let mut folders = Vec::new();
    let mut day = from.div_euclid(86_400) * 86_400;
    while day <= to && folders.len() < 3 {
        if let Some(date) = chrono::DateTime::from_timestamp(day, 0) {
            folders.push(date.format("%Y/%m/%d").to_string());
        }
        day += 86_400;
    }
    folders
}

fn gap(reason: GapReason, resource: &str, detail: String) -> Gap {
    Gap {
        fact: GapFact::AccessLogs,
        resource: Some(resource.to_string()),
        reason,
        detail,
    }
}

/// The S3 error as a gap that names the fix.
fn s3_gap(bucket: &str, code: Option<&str>, message: String) -> Gap {
    match code {
        Some("AccessDenied" | "AllAccessDisabled" | "InvalidAccessKeyId") => gap(
            GapReason::AccessDenied,
            bucket,
            format!("{message}: grant the diagnose role s3:ListBucket on arn:aws:s3:::{bucket} and s3:GetObject on arn:aws:s3:::{bucket}/* (the stack's AccessLogBuckets parameter); a bucket of another account must also allow the role in its bucket policy"),
        ),
        Some("NoSuchBucket") => gap(GapReason::NotFound, bucket, format!("{message}: the bucket named in the load balancer's access-log settings does not exist")),
        _ => gap(GapReason::Error, bucket, message),
    }
}

/// Reads and counts the window's logs; `None` when the settings were not read. Logs that are
/// off are a gap saying how to turn them on.
pub async fn read(
    clients: &Clients,
    world: &Snapshot,
    window: (i64, i64),
    deadline: Instant,
) -> Option<Result<AccessLogs, Gap>> {
    read_within(clients, world, window, deadline, BUDGET).await
}

/// [`read`] within `budget`.
pub async fn read_within(
    clients: &Clients,
    world: &Snapshot,
    window: (i64, i64),
    deadline: Instant,
    budget: Budget,
) -> Option<Result<AccessLogs, Gap>> {
    let lb = &world.load_balancer;
    let config = lb.access_log.as_ref()?;
    let bucket = match (&config.bucket, config.enabled) {
        (Some(bucket), true) => bucket.clone(),
        _ => {
            return Some(Err(gap(
                GapReason::Unsupported,
                &lb.name,
                format!(
                    "access logs are off for {}: turn them on with {}",
                    lb.name,
                    match lb.kind {
                        LbKind::Application | LbKind::Network =>
                            elbmedic_engine::rules::access_logs::ENABLE_ALB_LOGS,
                        LbKind::Classic => elbmedic_engine::rules::access_logs::ENABLE_CLB_LOGS,
                    }
                ),
            )))
        }
    };
    let account = world.account_id.clone().unwrap_or_default();
    let region = &world.region;
    let marker = match lb.kind {
        LbKind::Application | LbKind::Network => lb.id.replace('/', "."),
        LbKind::Classic => lb.name.clone(),
    };
    // A file's end time is at most one interval after its last line.
    let interval = i64::from(config.emit_interval_minutes.unwrap_or(5).max(5)) * 60;
    let (from, to) = (window.0, window.1 + interval);
    let prefix = if config.prefix.is_empty() {
        String::new()
    } else {
        format!("{}/", config.prefix.trim_end_matches('/'))
    };
    // One listing prefix per day folder: the load balancer's own objects in it.
    let own_prefixes: Vec<String> = date_folders(from, to + 3600)
        .into_iter()
        .map(|folder| {
            let folder =
                format!("{prefix}AWSLogs/{account}/elasticloadbalancing/{region}/{folder}/");
            format!("{folder}{account}_elasticloadbalancing_{region}_{marker}_")
        })
        .collect();
    let keys = match list_keys(
        clients,
        &bucket,
        &own_prefixes,
        (from, to),
        deadline,
        budget,
    )
    .await
    {
        Ok(keys) => keys,
        Err(gap) => return Some(Err(gap)),
    };
    let mut logs = AccessLogs {
        bucket: bucket.clone(),
        prefix: config.prefix.clone(),
        ..AccessLogs::default()
    };
    logs.objects_found = u32::try_from(keys.len()).unwrap_or(u32::MAX);
    // An NLB logs its TLS listeners only, whose idle timeout is fixed at 350 s.
    let idle = match lb.kind {
        LbKind::Network => elbmedic_engine::snapshot::NLB_TCP_IDLE_TIMEOUT,
        _ => lb.idle_timeout_seconds.unwrap_or(DEFAULT_IDLE_TIMEOUT),
    };
    let mut tally = Tally::new(lb.kind, idle, window, logs);
    if let Err(gap) = tally_objects(clients, &bucket, &keys, &mut tally, deadline, budget).await {
        return Some(Err(gap));
    }
    tracing::info!(bucket = %bucket, objects = tally.logs.objects_read, lines = tally.logs.lines, "access logs read");
    Some(Ok(tally.logs))
}

/// The keys of the load balancer's log objects whose end time falls in `window` (widened
/// by one emit interval), listed under each prefix from the window's start on.
async fn list_keys(
    clients: &Clients,
    bucket: &str,
    own_prefixes: &[String],
    (from, to): (i64, i64),
    deadline: Instant,
    budget: Budget,
) -> Result<Vec<(String, i64)>, Gap> {
    let mut keys = Vec::new();
    for own in own_prefixes {
        let mut token: Option<String> = None;
        loop {
            let mut request = clients
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .prefix(own)
                .start_after(format!("{own}{}", end_token(from)));
            if let Some(next) = &token {
                request = request.continuation_token(next);
            }
            let page = match bounded(deadline, request.send()).await {
                None => {
                    return Err(crate::errors::deadline_gap(
                        GapFact::AccessLogs,
                        Some(bucket),
                    ))
                }
                Some(Err(error)) => {
                    let message =
                        aws_smithy_types::error::display::DisplayErrorContext(&error).to_string();
                    return Err(s3_gap(bucket, error.code(), message));
                }
                Some(Ok(page)) => page,
            };
            for object in page.contents() {
                let (Some(key), size) = (object.key(), object.size().unwrap_or(0)) else {
                    continue;
                };
                if end_time(key).is_some_and(|t| t >= from && t <= to) {
                    keys.push((key.to_string(), size));
                }
            }
            // Keys sort by end time within the LB's own: past the window, stop listing.
            let past = page
                .contents()
                .last()
                .and_then(|o| o.key())
                .and_then(end_time)
                .is_some_and(|t| t > to);
            token = page.next_continuation_token().map(str::to_string);
            if past || token.is_none() || keys.len() > budget.objects {
                break;
            }
        }
    }
    Ok(keys)
}

/// Reads each object into `tally`, within the budget of objects and bytes: past it, or past
/// the deadline, the tally is marked truncated.
async fn tally_objects(
    clients: &Clients,
    bucket: &str,
    keys: &[(String, i64)],
    tally: &mut Tally,
    deadline: Instant,
    budget: Budget,
) -> Result<(), Gap> {
    for (index, (key, size)) in keys.iter().enumerate() {
        let left = budget.bytes.saturating_sub(tally.logs.bytes_read);
        if index >= budget.objects || left == 0 || *size > MAX_OBJECT_BYTES {
            tally.logs.truncated = true;
            break;
        }
        let body = bounded(deadline, async {
            let object = clients
                .s3
                .get_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await?;
            Ok::<_, aws_sdk_s3::error::SdkError<_, _>>(
                object.body.collect().await.map(|b| b.into_bytes()),
            )
        })
        .await;
        let bytes = match body {
            None => {
                tally.logs.truncated = true;
                break;
            }
            Some(Err(error)) => {
                let message =
                    aws_smithy_types::error::display::DisplayErrorContext(&error).to_string();
                return Err(s3_gap(bucket, error.code(), message));
            }
            Some(Ok(Err(_))) => continue,
            Some(Ok(Ok(bytes))) => bytes,
        };
        let mut text = Vec::new();
        let read = if key.ends_with(".gz") {
            flate2::read::MultiGzDecoder::new(bytes.as_ref())
                .take(left)
                .read_to_end(&mut text)
        } else {
            bytes.as_ref().take(left).read_to_end(&mut text)
        };
        if read.is_err() {
            tally.logs.malformed += 1;
            continue;
        }
        tally.logs.objects_read += 1;
        tally.logs.bytes_read += text.len() as u64;
        if text.len() as u64 >= left {
            tally.logs.truncated = true;
        }
        tally.add_text(&String::from_utf8_lossy(&text));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_give_their_end_time() {
        let key = "logs/AWSLogs/111122223333/elasticloadbalancing/eu-west-1/2026/11/23/111122223333_elasticloadbalancing_eu-west-1_app.k8s-shop-checkout-6f1e2d3c4b.50dc6c495c0c9188_20261123T1805Z_10.0.1.17_2x9k3l4m.log.gz";
        assert_eq!(
            end_time(key),
            elbmedic_engine::alarm::parse_timestamp("2026-11-23T18:05:00Z")
        );
        assert_eq!(end_token(end_time(key).unwrap()), "20261123T1805Z");
        assert_eq!(end_time("AWSLogs/x/garbage_T_Z.log"), None);
    }

    #[test]
    fn a_window_across_midnight_lists_both_days() {
        let t = |s| elbmedic_engine::alarm::parse_timestamp(s).unwrap();
        assert_eq!(
            date_folders(t("2026-11-23T23:55:00Z"), t("2026-11-24T00:10:00Z")),
            ["2026/11/23", "2026/11/24"]
        );
    }
}
