//! The process environment: the one place elbmedic reads it. Settings go through
//! `settings::Config::from_process_env`; the SDK's own variables through [`sdk_variable`].
//! Below `settings` and `clients`, which both need it.

use elbmedic_engine::variables::set;

/// A variable of the process environment, as it is.
pub(crate) fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok()
}

/// Whether a variable is present at all, even blank or not UTF-8 (as the SDK itself sees an
/// endpoint override).
pub fn is_present(key: &str) -> bool {
    std::env::var_os(key).is_some()
}

/// The log filter (`RUST_LOG`); blank is unset, as for every setting.
pub fn log_filter() -> Option<String> {
    set(&process_env, "RUST_LOG")
}

/// One of the AWS SDK's own variables (`AWS_REGION`, `AWS_ENDPOINT_URL`, ...), read the way
/// every setting is: trimmed, blank is unset.
pub fn sdk_variable(key: &str) -> Option<String> {
    set(&process_env, key)
}
