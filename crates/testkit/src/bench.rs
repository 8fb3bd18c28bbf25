//! What the benchmarks share: counts from the environment and the
//! statistics they print (medians and ratios, never absolute claims: the
//! machines are shared).

use anyhow::{Context, Result};
use std::time::Duration;

/// The count in environment variable `name` (such as `SPEED_BENCH_ITERS`),
/// or `default` when it is unset; an error when it is not a number.
pub fn env_count(name: &str, default: usize) -> Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v} is not a count")),
        Err(_) => Ok(default),
    }
}

/// The median of `samples` (the upper one of an even count); panics on none.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// How many times longer `a` took than `b`.
pub fn ratio(a: Duration, b: Duration) -> f64 {
    a.as_secs_f64() / b.as_secs_f64()
}
