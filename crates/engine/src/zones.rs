//! The 5xx per `AvailabilityZone`, which on both load balancer kinds is the zone of the
//! load balancer node that handled the request. An ALB always balances across zones, so a
//! dominant zone points at that zone's LB subnet and its NACL legs, not at the targets there;
//! only a Classic LB with cross-zone off sends a zone's requests to that zone's targets.

use crate::context::format_value;
use crate::snapshot::Snapshot;

/// A zone dominates when it has this share of the 5xx...
const DOMINANT_SHARE: f64 = 0.8;
/// ...and the window has at least this many: a handful proves nothing.
const MIN_ERRORS: f64 = 10.0;

#[derive(Debug, Clone, PartialEq)]
pub struct ZoneErrors {
    pub zone: String,
    pub errors: f64,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Zones {
    /// Most 5xx first.
    pub by_zone: Vec<ZoneErrors>,
    pub total: f64,
}

impl Zones {
    pub fn of(snapshot: &Snapshot) -> Self {
        let mut by_zone: Vec<ZoneErrors> = snapshot
            .metrics
            .iter()
            .filter(|s| s.is_elb_5xx_sum())
            .filter_map(|s| {
                Some(ZoneErrors {
                    zone: s.availability_zone.clone()?,
                    errors: s
                        .points
                        .iter()
                        .map(|p| p.value)
                        .filter(|v| v.is_finite())
                        .sum(),
                })
            })
            .collect();
        by_zone.sort_by(|a, b| b.errors.total_cmp(&a.errors).then(a.zone.cmp(&b.zone)));
        let total = by_zone.iter().map(|z| z.errors).sum();
        Self { by_zone, total }
    }

    /// The zone with most of the 5xx, and its share, when one dominates.
    pub fn dominant(&self) -> Option<(&ZoneErrors, f64)> {
        let top = self.by_zone.first()?;
        let share = top.errors / self.total;
        (self.total >= MIN_ERRORS && self.by_zone.len() > 1 && share >= DOMINANT_SHARE)
            .then_some((top, share))
    }

    /// "5xx by load balancer node zone: eu-west-1b 46 (92 %), eu-west-1a 4 (8 %)".
    pub fn summary(&self) -> Option<String> {
        if self.total <= 0.0 {
            return None;
        }
        let parts: Vec<String> = self
            .by_zone
            .iter()
            .map(|z| {
                format!(
                    "{} {} ({} %)",
                    z.zone,
                    format_value(z.errors),
                    (z.errors * 100.0 / self.total).round()
                )
            })
            .collect();
        Some(format!(
            "5xx by load balancer node zone: {}",
            parts.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{DataPoint, MetricSeries};
    use crate::testkit::healthy_alb;

    fn world(zones: &[(&str, f64)]) -> Snapshot {
        let mut world = healthy_alb();
        world
            .metrics
            .extend(zones.iter().map(|(zone, errors)| MetricSeries {
                metric_name: "HTTPCode_ELB_5XX_Count".into(),
                statistic: "Sum".into(),
                target_group: None,
                availability_zone: Some(zone.to_string()),
                period_seconds: Some(60),
                points: vec![DataPoint {
                    timestamp: "2026-11-23T17:56:00Z".into(),
                    value: *errors,
                }],
            }));
        world
    }

    #[test]
    fn one_zone_with_most_of_many_errors_dominates() {
        let zones = Zones::of(&world(&[
            ("eu-west-1a", 2.0),
            ("eu-west-1b", 46.0),
            ("eu-west-1c", 2.0),
        ]));
        let (top, share) = zones.dominant().unwrap();
        assert_eq!(top.zone, "eu-west-1b");
        assert!((share - 0.92).abs() < 1e-9);
        assert_eq!(
            zones.summary().unwrap(),
            "5xx by load balancer node zone: eu-west-1b 46 (92 %), eu-west-1a 2 (4 %), eu-west-1c 2 (4 %)"
        );
    }

    #[test]
    fn spread_few_or_single_zone_errors_decide_nothing() {
        assert!(
            Zones::of(&world(&[("eu-west-1a", 20.0), ("eu-west-1b", 25.0)]))
                .dominant()
                .is_none()
        );
        assert!(
            Zones::of(&world(&[("eu-west-1a", 0.0), ("eu-west-1b", 6.0)]))
                .dominant()
                .is_none()
        );
        assert!(Zones::of(&world(&[("eu-west-1b", 60.0)]))
            .dominant()
            .is_none());
        // The LB-wide series is not a zone.
        assert!(Zones::of(&healthy_alb()).by_zone.is_empty());
    }
}
