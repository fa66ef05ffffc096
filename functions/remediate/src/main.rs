//! Lambda binary `remediate` (contract). `main` only reads the configuration, sets up JSON
//! logs and runs the handler on the Lambda Runtime API; the work is in the library.

use std::sync::Arc;

use elbmedic_aws::settings::{Config, Role};
use elbmedic_remediate::Handler;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    elbmedic_aws::edge::init_lambda_logs();
    let config = Config::from_process_env(Role::Remediate).inspect_err(|error| {
        tracing::error!(error = %error, "invalid configuration; fix the function's environment variables");
    })?;
    let remediation = &config.remediation;
    tracing::info!(
        mode = remediation.mode.as_str(),
        max_idle_timeout = remediation.policy.max_idle_timeout,
        ledger = remediation.ledger_table.as_deref().unwrap_or("off"),
        "configured"
    );
    let handler = Arc::new(Handler::new(config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move {
            let now = elbmedic_aws::edge::epoch_now();
            handler
                .handle(&event.payload, now, &event.context.request_id)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
