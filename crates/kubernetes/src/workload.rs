//! Deployments and StatefulSets as the engine's `Workload`: what decides how their pods leave
//! (the preStop hook and how long it waits, the grace period, the rollout strategy).

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Container as CoreContainer, LifecycleHandler, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use elbmedic_engine::kubernetes::{Container, HookForm, PreStop, Workload};

use crate::convert::{labels, manager};

pub fn of_deployment(raw: &Deployment) -> Workload {
    let spec = raw.spec.clone().unwrap_or_default();
    let strategy = spec.strategy.as_ref().and_then(|s| s.type_.clone());
    let rolling = spec.strategy.and_then(|s| s.rolling_update);
    let ready = raw.status.as_ref().and_then(|s| s.ready_replicas);
    let mut workload = from_template("Deployment", &raw.metadata, &spec.template);
    workload.replicas = count(spec.replicas);
    workload.ready_replicas = count(ready);
    workload.max_unavailable = rolling
        .as_ref()
        .and_then(|r| r.max_unavailable.as_ref())
        .map(int_or_string);
    workload.max_surge = rolling
        .as_ref()
        .and_then(|r| r.max_surge.as_ref())
        .map(int_or_string);
    // Kubernetes' default when the spec names none.
    workload.strategy = Some(strategy.unwrap_or_else(|| "RollingUpdate".into()));
    workload
}

pub fn of_statefulset(raw: &StatefulSet) -> Workload {
    let spec = raw.spec.clone().unwrap_or_default();
    let ready = raw.status.as_ref().and_then(|s| s.ready_replicas);
    let mut workload = from_template("StatefulSet", &raw.metadata, &spec.template);
    workload.replicas = count(spec.replicas);
    workload.ready_replicas = count(ready);
    workload.strategy = spec.update_strategy.and_then(|s| s.type_);
    workload
}

fn from_template(
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    template: &PodTemplateSpec,
) -> Workload {
    let pod = template.spec.clone().unwrap_or_default();
    Workload {
        kind: kind.into(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        pod_labels: template.metadata.as_ref().map(labels).unwrap_or_default(),
        termination_grace_period_seconds: pod
            .termination_grace_period_seconds
            .and_then(|n| u32::try_from(n).ok()),
        containers: pod.containers.iter().map(container).collect(),
        managed_by: manager(meta),
        ..Workload::default()
    }
}

fn container(raw: &CoreContainer) -> Container {
    Container {
        name: raw.name.clone(),
        pre_stop: raw
            .lifecycle
            .as_ref()
            .and_then(|l| l.pre_stop.as_ref())
            .map(pre_stop),
        readiness_probe: raw.readiness_probe.is_some(),
        ports: raw
            .ports
            .iter()
            .flatten()
            .filter_map(|p| Some((p.name.clone(), u16::try_from(p.container_port).ok()?)))
            .collect(),
    }
}

/// How long a preStop hook waits, when that can be read: the `sleep` action, or an exec of
/// `sleep N`, directly or inside `sh -c "..."`.
fn pre_stop(handler: &LifecycleHandler) -> PreStop {
    if let Some(sleep) = &handler.sleep {
        let seconds = u32::try_from(sleep.seconds).ok();
        return PreStop {
            sleep_seconds: seconds,
            description: format!("sleep {}", sleep.seconds),
            form: HookForm::SleepAction,
        };
    }
    if let Some(exec) = &handler.exec {
        let words = exec.command.clone().unwrap_or_default();
        let line = words.join(" ");
        // `sleep N` as a command of its own: first in the line, or after `-c`, `;` or `&&`.
        let tokens: Vec<&str> = line
            .split(|c: char| c.is_whitespace() || c == ';' || c == '&' || c == '"' || c == '\'')
            .filter(|t| !t.is_empty())
            .collect();
        // `/bin/sleep` is `sleep` too.
        let is_sleep = |word: &str| word.rsplit('/').next() == Some("sleep");
        let sleep_seconds = tokens.windows(2).find_map(|pair| match pair {
            [sleep, seconds] if is_sleep(sleep) => {
                seconds.trim_end_matches('s').parse::<u32>().ok()
            }
            _ => None,
        });
        // Only `sleep N`, alone, may be replaced by a longer sleep without losing anything.
        let only_sleeps = matches!(words.as_slice(), [sleep, seconds]
            if is_sleep(sleep) && seconds.trim_end_matches('s').parse::<u32>().is_ok());
        return PreStop {
            sleep_seconds,
            description: crate::clipped(&line, 120),
            form: match only_sleeps {
                true => HookForm::ExecSleep,
                false => HookForm::Other,
            },
        };
    }
    if let Some(get) = &handler.http_get {
        return PreStop {
            sleep_seconds: None,
            description: crate::clipped(
                &format!("httpGet {}", get.path.clone().unwrap_or_default()),
                120,
            ),
            form: HookForm::Other,
        };
    }
    PreStop {
        sleep_seconds: None,
        description: "a hook elbmedic does not read".into(),
        form: HookForm::Other,
    }
}

/// A replica count as the API gives it (`i32`), when it is one.
fn count(value: Option<i32>) -> Option<u32> {
    value.and_then(|n| u32::try_from(n).ok())
}

pub(crate) fn int_or_string(value: &IntOrString) -> String {
    match value {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, SleepAction};

    #[test]
    fn the_pre_stop_wait_is_read_from_sleep_and_exec_hooks() {
        let exec = |command: &[&str]| LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(command.iter().map(|s| s.to_string()).collect()),
            }),
            ..LifecycleHandler::default()
        };
        assert_eq!(pre_stop(&exec(&["sleep", "15"])).sleep_seconds, Some(15));
        assert_eq!(
            pre_stop(&exec(&["/bin/sh", "-c", "sleep 20; nginx -s quit"])).sleep_seconds,
            Some(20)
        );
        assert_eq!(pre_stop(&exec(&["/drain.sh"])).sleep_seconds, None);
        assert_eq!(pre_stop(&exec(&["/bin/sleep", "7"])).sleep_seconds, Some(7));
        assert_eq!(
            pre_stop(&exec(&["/bin/sleep", "7"])).form,
            HookForm::ExecSleep
        );
        // A hook that does more than wait is not one a patch may replace.
        assert_eq!(
            pre_stop(&exec(&["/bin/sh", "-c", "sleep 20; nginx -s quit"])).form,
            HookForm::Other
        );
        let sleep = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 10 }),
            ..LifecycleHandler::default()
        };
        assert_eq!(pre_stop(&sleep).sleep_seconds, Some(10));
        assert_eq!(pre_stop(&sleep).form, HookForm::SleepAction);
    }
}
