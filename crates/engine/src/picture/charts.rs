//! The alarm window's charts: one per question an engineer asks of the metrics (how many 5xx,
//! how long the targets took against the idle timeout, how many connections failed, how many
//! targets were healthy), from the series the snapshot holds.

use crate::context::Context;

#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    pub title: &'static str,
    /// What the values count: `per period`, `seconds`.
    pub unit: &'static str,
    pub lines: Vec<Line>,
    /// A level drawn across the chart: the idle timeout on the latency chart.
    pub limit: Option<Limit>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// `HTTPCode_ELB_504_Count (Sum)`.
    pub label: String,
    /// (Unix seconds, value), in time order.
    pub points: Vec<(i64, f64)>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Limit {
    pub label: String,
    pub value: f64,
}

/// A chart's title, unit, and the (metric, statistic) series it draws.
type ChartSpec = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

/// Which chart shows which (metric, statistic): both kinds' names, so each draws what it has.
const CHARTS: [ChartSpec; 4] = [
    (
        "5xx returned by the load balancer",
        "per period",
        &[
            ("HTTPCode_ELB_5XX_Count", "Sum"),
            ("HTTPCode_ELB_5XX", "Sum"),
            ("HTTPCode_ELB_502_Count", "Sum"),
            ("HTTPCode_ELB_503_Count", "Sum"),
            ("HTTPCode_ELB_504_Count", "Sum"),
        ],
    ),
    (
        "How long the targets took",
        "seconds",
        &[
            ("TargetResponseTime", "Maximum"),
            ("TargetResponseTime", "p99"),
            ("Latency", "Maximum"),
        ],
    ),
    (
        "Connections to the targets that failed",
        "per period",
        &[
            ("TargetConnectionErrorCount", "Sum"),
            ("BackendConnectionErrors", "Sum"),
            ("TargetTLSNegotiationErrorCount", "Sum"),
        ],
    ),
    (
        "Healthy targets",
        "targets",
        &[
            ("HealthyHostCount", "Minimum"),
            ("UnHealthyHostCount", "Maximum"),
        ],
    ),
];

/// The charts with at least one observed point, in the order above.
pub fn charts(ctx: &Context<'_>) -> Vec<Chart> {
    CHARTS
        .iter()
        .filter_map(|(title, unit, wanted)| {
            let lines: Vec<Line> = wanted
                .iter()
                .filter_map(|(metric, statistic)| {
                    let series = ctx.series(metric, statistic)?;
                    let mut points: Vec<(i64, f64)> = series
                        .points
                        .iter()
                        .filter(|p| p.value.is_finite())
                        .filter_map(|p| {
                            crate::alarm::parse_timestamp(&p.timestamp).map(|at| (at, p.value))
                        })
                        .collect();
                    points.sort_by_key(|(at, _)| *at);
                    (!points.is_empty()).then(|| Line {
                        label: format!("{metric} ({statistic})"),
                        points,
                    })
                })
                .collect();
            if lines.is_empty() {
                return None;
            }
            let limit = (*unit == "seconds")
                .then_some(ctx.snapshot.load_balancer.idle_timeout_seconds)
                .flatten()
                .map(|seconds| Limit {
                    label: format!("idle timeout {seconds} s"),
                    value: f64::from(seconds),
                });
            Some(Chart {
                title,
                unit,
                lines,
                limit,
            })
        })
        .collect()
}
