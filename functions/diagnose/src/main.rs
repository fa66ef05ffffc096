//! Lambda binary `diagnose` (contract). `main` only reads the configuration, sets up JSON
//! logs and runs the handler on the Lambda Runtime API; the work is in the library.

use std::sync::Arc;

use elbmedic_diagnose::{account_of_function, Config, Handler, Role};
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    elbmedic_aws::edge::init_lambda_logs();
    let config = Config::from_process_env(Role::Diagnose).inspect_err(|error| {
        tracing::error!(error = %error, "invalid configuration; fix the function's environment variables");
    })?;
    tracing::info!(
        report_topic = config.report_topic_arn.as_deref().unwrap_or_default(),
        deadline_seconds = config.gather_deadline.as_secs(),
        remediation = config.remediation.mode.as_str(),
        follow_up_delay_seconds = config.follow_up.as_ref().map_or(0, |q| q.delay_seconds),
        "configured"
    );
    let handler = Arc::new(Handler::new(config));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        let handler = handler.clone();
        async move {
            let own_account = account_of_function(&event.context.invoked_function_arn);
            let now = elbmedic_aws::edge::epoch_now();
            handler
                .handle(&event.payload, own_account.as_deref(), now)
                .await
                .map_err(Error::from)
        }
    }))
    .await
}
