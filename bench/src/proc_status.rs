//! A process' memory figures from `/proc/<pid>/status`, for the benchmarks that print them.

/// The `field` (`VmRSS`, `VmHWM`, ...) of process `pid` in MB; 0 when it cannot be read.
pub fn megabytes(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| {
            l.strip_prefix(field)
                .is_some_and(|rest| rest.starts_with(':'))
        })
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}
