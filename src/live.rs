//! The CLI's live side: a small async runtime, AWS clients from the standard configuration
//! (credentials, `AWS_ENDPOINT_URL*`), and the look-ups of the `alarms` and `ledger` commands.

use anyhow::{bail, Context, Result};
use elbmedic_aws::errors::classify;

use crate::alarms::AlarmedLb;
use elbmedic_aws::clients::{CallLimits, Clients};
use elbmedic_aws::ledger::Ledger;
use elbmedic_engine::snapshot::GapReason;

pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The clock is read here, at the edge; everything below takes it as a value.
pub use elbmedic_aws::edge::epoch_now as now;

/// The ALB or, failing that, the Classic LB named `name` in `region`, with the account it is
/// in (these credentials' account) when STS says.
pub async fn find_load_balancer(name: &str, region: &str) -> Result<(AlarmedLb, Option<String>)> {
    let clients = Clients::load(region, CallLimits::default()).await;
    let (found, account) = tokio::join!(look_up(&clients, name, region), clients.caller_account());
    Ok((found?, account))
}

async fn look_up(clients: &Clients, name: &str, region: &str) -> Result<AlarmedLb> {
    match clients
        .elbv2
        .describe_load_balancers()
        .names(name)
        .send()
        .await
    {
        Ok(out) => {
            if let Some(lb) = out.load_balancers().first() {
                if let Some(arn) = lb.load_balancer_arn() {
                    return AlarmedLb::from_elbv2_arn(arn, lb.r#type().map(|t| t.as_str()));
                }
            }
        }
        Err(e) if classify(&e).0 == GapReason::NotFound => {}
        Err(e) => bail!(
            "cannot look up the load balancer {name} in {region}: {}",
            classify(&e).1
        ),
    }
    match clients
        .elb
        .describe_load_balancers()
        .load_balancer_names(name)
        .send()
        .await
    {
        Ok(out) if !out.load_balancer_descriptions().is_empty() => Ok(AlarmedLb::Classic {
            name: name.to_string(),
        }),
        Ok(_) => bail!("no load balancer named {name} in {region}"),
        Err(e) if classify(&e).0 == GapReason::NotFound => {
            bail!("no ALB or Classic LB named {name} in {region}: check the name (kubectl get svc,ingress -A shows the LB hostnames) and the region")
        }
        Err(e) => bail!(
            "cannot look up the load balancer {name} in {region}: {}",
            classify(&e).1
        ),
    }
}

/// Creates the DynamoDB ledger table.
pub async fn create_ledger(table: &str, region: &str) -> Result<&'static str> {
    let clients = Clients::load(region, CallLimits::default()).await;
    Ledger::new(clients.dynamodb.clone(), table)
        .create_table()
        .await
        .map_err(|e| anyhow::anyhow!("cannot create the ledger table {table}: {e}"))
}

/// `elbmedic undo`: the ledger in `region`, clients in the load balancer's region.
pub async fn undo(
    table: &str,
    region: &str,
    config: &elbmedic_aws::settings::Config,
    plan_id: &str,
    run_id: &str,
    now: i64,
) -> Result<Vec<elbmedic_aws::remediate::undo::UndoLine>> {
    let clients = Clients::load(region, CallLimits::default()).await;
    let ledger = Ledger::new(clients.dynamodb.clone(), table);
    let lines = elbmedic_aws::remediate::undo::undo(
        &ledger,
        |lb_region| async move { Clients::load(&lb_region, CallLimits::default()).await },
        config,
        plan_id,
        run_id,
        now,
    )
    .await?;
    Ok(lines)
}

/// `elbmedic incidents`: the ledger's incidents in `region`, newest first.
pub async fn incidents(
    table: &str,
    region: &str,
    lb: Option<&str>,
) -> Result<Vec<elbmedic_engine::incident::Incident>> {
    let clients = Clients::load(region, CallLimits::default()).await;
    let ledger = Ledger::new(clients.dynamodb.clone(), table);
    elbmedic_aws::incidents::list(&ledger, lb)
        .await
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read the incidents from the ledger table {table} in {region}: {e}"
            )
        })
}
