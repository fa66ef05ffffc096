//! The one reader of elbmedic's settings: every optional variable is read through [`set`], so
//! they all mean the same by "unset". Pure: the caller hands in the lookup (the process
//! environment is read only in the AWS crate's `settings`).

/// A variable's value, trimmed; `None` when it is unset or blank (a stack passes "" for an
/// optional parameter left empty).
pub fn set(get: &impl Fn(&str) -> Option<String>, key: &str) -> Option<String> {
    get(key)
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}
