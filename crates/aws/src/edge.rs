//! What every entry point (the two functions, the CLI) does at the edge: read the clock, and
//! for the functions, log as JSON. Below the edge the clock is a value passed in.

/// Seconds since the epoch; 0 for a clock before 1970 rather than a panic.
pub fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// One JSON object per log line, as CloudWatch Logs Insights reads it; `RUST_LOG` filters,
/// `info` by default. Lambda stamps each line with the time, so the log does not.
pub fn init_lambda_logs() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            crate::environment::log_filter()
                .and_then(|filter| tracing_subscriber::EnvFilter::try_new(filter).ok())
                .unwrap_or_else(|| "info".into()),
        )
        .with_current_span(false)
        .with_target(false)
        .without_time()
        .init();
}
