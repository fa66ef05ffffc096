//! The alarm window's metrics, in one GetMetricData call per kind of statistic. Percentiles
//! go in a call of their own: moto answers 500 to any GetMetricData holding one, and AWS may
//! throttle. They are optional: one attempt within a short budget of their own, and their
//! absence is a gap, never a delay.

use std::collections::BTreeMap;

use aws_sdk_cloudwatch::operation::get_metric_data::GetMetricDataOutput;
use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat, ScanBy};
use aws_smithy_types::date_time::Format as DateFormat;
use aws_smithy_types::DateTime;
use elbmedic_engine::alarm::LbKind;
use elbmedic_engine::snapshot::{DataPoint, Gap, GapFact, MetricSeries};
use tokio::time::Instant;

use super::{all_pages, bounded, settle, GatherOptions};
use crate::clients::Clients;

/// The whole budget of the optional (percentile) call: one attempt, no retries.
const OPTIONAL_BUDGET: std::time::Duration = std::time::Duration::from_secs(3);

/// (metric, statistic) pairs fetched in one call.
type MetricList = &'static [(&'static str, &'static str)];

/// The plain statistics and the percentiles of each kind of load balancer.
fn wanted(kind: LbKind) -> (MetricList, MetricList) {
    match kind {
        LbKind::Application => (
            &[
                ("HTTPCode_ELB_5XX_Count", "Sum"),
                ("HTTPCode_ELB_502_Count", "Sum"),
                ("HTTPCode_ELB_503_Count", "Sum"),
                ("HTTPCode_ELB_504_Count", "Sum"),
                ("TargetConnectionErrorCount", "Sum"),
                ("TargetTLSNegotiationErrorCount", "Sum"),
                ("RejectedConnectionCount", "Sum"),
                ("HTTPCode_Target_5XX_Count", "Sum"),
                ("TargetResponseTime", "Maximum"),
                ("RequestCount", "Sum"),
            ],
            &[("TargetResponseTime", "p99")],
        ),
        LbKind::Classic => (
            &[
                ("HTTPCode_ELB_5XX", "Sum"),
                ("Latency", "Maximum"),
                ("BackendConnectionErrors", "Sum"),
                ("RequestCount", "Sum"),
                ("SurgeQueueLength", "Maximum"),
                ("SpilloverCount", "Sum"),
                ("HealthyHostCount", "Minimum"),
                ("HealthyHostCount", "Maximum"),
            ],
            &[],
        ),
        // NLB metrics exist only while traffic flows: no data is not zero.
        LbKind::Network => (
            &[
                ("TCP_ELB_Reset_Count", "Sum"),
                ("TCP_Target_Reset_Count", "Sum"),
                ("TCP_Client_Reset_Count", "Sum"),
                ("PortAllocationErrorCount", "Sum"),
                ("RejectedFlowCount", "Sum"),
                ("UnhealthyRoutingFlowCount", "Sum"),
                ("TargetTLSNegotiationErrorCount", "Sum"),
                ("SecurityGroupBlockedFlowCount_Inbound_TCP", "Sum"),
                ("SecurityGroupBlockedFlowCount_Outbound_TCP", "Sum"),
                ("ActiveFlowCount", "Maximum"),
                ("NewFlowCount", "Sum"),
            ],
            &[],
        ),
    }
}

/// Every series of the window, and a gap for each call that failed.
pub async fn gather(
    clients: &Clients,
    kind: LbKind,
    dimension_value: &str,
    options: &GatherOptions,
    deadline: Instant,
) -> (Vec<MetricSeries>, Vec<Gap>) {
    let (plain, percentiles) = wanted(kind);
    let lb_wide = |list: MetricList| -> Vec<Query> {
        list.iter()
            .map(|(metric, stat)| Query {
                metric,
                stat,
                dimensions: vec![(kind.dimension_name(), dimension_value.to_string())],
                target_group: None,
                zone: None,
            })
            .collect()
    };
    let mut plain = lb_wide(plain);
    plain.extend(per_zone(kind, dimension_value, &clients.region));
    let percentiles = lb_wide(percentiles);
    let (plain, percentiles) = tokio::join!(
        call(clients, kind, options, &plain, deadline, false),
        call(
            clients,
            kind,
            options,
            &percentiles,
            deadline.min(Instant::now() + OPTIONAL_BUDGET),
            true,
        ),
    );
    let mut series = Vec::new();
    let mut gaps = Vec::new();
    for result in [plain, percentiles] {
        match result {
            Ok(found) => series.extend(found),
            Err(gap) => gaps.push(gap),
        }
    }
    // The zones the load balancer is not in.
    series.retain(|s| s.availability_zone.is_none() || !s.points.is_empty());
    (series, gaps)
}

/// The load balancer's 5xx per `AvailabilityZone`: the zone of the LB node that answered.
/// Zones are the region's name and a letter; no region has one past `f`, and a zone the load
/// balancer is not in returns no data, so the call needs no round to learn the zones first.
fn per_zone(kind: LbKind, dimension_value: &str, region: &str) -> Vec<Query> {
    let metric = match kind {
        LbKind::Application => "HTTPCode_ELB_5XX_Count",
        LbKind::Classic => "HTTPCode_ELB_5XX",
        LbKind::Network => "TCP_ELB_Reset_Count",
    };
    ('a'..='f')
        .map(|letter| {
            let zone = format!("{region}{letter}");
            Query {
                metric,
                stat: "Sum",
                dimensions: vec![
                    (kind.dimension_name(), dimension_value.to_string()),
                    ("AvailabilityZone", zone.clone()),
                ],
                target_group: None,
                zone: Some(zone),
            }
        })
        .collect()
}

/// One series to fetch: a metric and statistic under its dimensions.
struct Query {
    metric: &'static str,
    stat: &'static str,
    dimensions: Vec<(&'static str, String)>,
    /// The `targetgroup/NAME/ID` of a per-target-group series.
    target_group: Option<String>,
    /// The `AvailabilityZone` of a per-zone series.
    zone: Option<String>,
}

/// An ALB's healthy-host counts per target group (the metric needs the `TargetGroup`
/// dimension beside `LoadBalancer`), Minimum and Maximum per period: when targets were
/// registered and deregistered. `groups` are `targetgroup/NAME/ID`; at most 100 of them.
pub async fn healthy_hosts_per_group(
    clients: &Clients,
    lb_id: &str,
    groups: &[String],
    options: &GatherOptions,
    deadline: Instant,
) -> Result<Vec<MetricSeries>, Gap> {
    let queries: Vec<Query> = groups
        .iter()
        .take(100)
        .flat_map(|group| {
            ["Minimum", "Maximum"].map(|stat| Query {
                metric: "HealthyHostCount",
                stat,
                dimensions: vec![
                    ("TargetGroup", group.clone()),
                    ("LoadBalancer", lb_id.to_string()),
                ],
                target_group: Some(group.clone()),
                zone: None,
            })
        })
        .collect();
    call(
        clients,
        LbKind::Application,
        options,
        &queries,
        deadline,
        false,
    )
    .await
}

/// One GetMetricData query per wanted series, numbered so the answers map back (`m0`, ...).
fn metric_queries(kind: LbKind, options: &GatherOptions, wanted: &[Query]) -> Vec<MetricDataQuery> {
    let period = i32::try_from(options.period).unwrap_or(60);
    wanted
        .iter()
        .enumerate()
        .map(|(i, query)| {
            let dimensions = query
                .dimensions
                .iter()
                .map(|(name, value)| Dimension::builder().name(*name).value(value).build());
            MetricDataQuery::builder()
                .id(format!("m{i}"))
                .metric_stat(
                    MetricStat::builder()
                        .metric(
                            Metric::builder()
                                .namespace(kind.namespace())
                                .metric_name(query.metric)
                                .set_dimensions(Some(dimensions.collect()))
                                .build(),
                        )
                        .period(period)
                        .stat(query.stat)
                        .build(),
                )
                .return_data(true)
                .build()
        })
        .collect()
}

/// The answers as series, in the order asked, each sorted by time; a series with no answer is
/// empty.
fn series_of(
    options: &GatherOptions,
    wanted: &[Query],
    pages: &[GetMetricDataOutput],
) -> Vec<MetricSeries> {
    let mut points: BTreeMap<usize, Vec<DataPoint>> = BTreeMap::new();
    for result in pages.iter().flat_map(|p| p.metric_data_results()) {
        let Some(index) = result
            .id()
            .and_then(|id| id.strip_prefix('m'))
            .and_then(|i| i.parse::<usize>().ok())
        else {
            continue;
        };
        let entry = points.entry(index).or_default();
        for (timestamp, value) in result.timestamps().iter().zip(result.values()) {
            entry.push(DataPoint {
                timestamp: timestamp.fmt(DateFormat::DateTime).unwrap_or_default(),
                value: *value,
            });
        }
    }
    wanted
        .iter()
        .enumerate()
        .map(|(i, query)| {
            let mut series_points = points.remove(&i).unwrap_or_default();
            series_points.sort_by(|a, b| a.timestamp.cmp(&b.timestamp));
            MetricSeries {
                metric_name: query.metric.to_string(),
                statistic: query.stat.to_string(),
                target_group: query.target_group.clone(),
                availability_zone: query.zone.clone(),
                period_seconds: Some(options.period),
                points: series_points,
            }
        })
        .collect()
}

async fn call(
    clients: &Clients,
    kind: LbKind,
    options: &GatherOptions,
    wanted: &[Query],
    deadline: Instant,
    optional: bool,
) -> Result<Vec<MetricSeries>, Gap> {
    if wanted.is_empty() {
        return Ok(Vec::new());
    }
    let queries = metric_queries(kind, options, wanted);
    // Aligned to the period, ending just after the period that holds the state change.
    let p = i64::from(options.period);
    let end = (options.window_end.div_euclid(p) + 1) * p;
    let start = end - p * i64::from(options.periods);
    let request = clients
        .cloudwatch
        .get_metric_data()
        .set_metric_data_queries(Some(queries))
        .start_time(DateTime::from_secs(start))
        .end_time(DateTime::from_secs(end))
        .scan_by(ScanBy::TimestampAscending);
    let mut label: Vec<String> = Vec::new();
    for query in wanted {
        let text = format!("{} {}", query.metric, query.stat);
        if !label.contains(&text) {
            label.push(text);
        }
    }
    let label = label.join(", ");
    let fetched = if optional {
        // One page holds every point of a few series over the window; one attempt only.
        let once = request
            .customize()
            .config_override(
                aws_sdk_cloudwatch::config::Builder::default()
                    .retry_config(aws_config::retry::RetryConfig::disabled()),
            )
            .send();
        bounded(deadline, async move { once.await.map(|page| vec![page]) }).await
    } else {
        bounded(
            deadline,
            async move { all_pages!(request.into_paginator()) },
        )
        .await
    };
    let pages = settle(fetched, GapFact::Metrics, Some(&label))?;
    Ok(series_of(options, wanted, &pages))
}
