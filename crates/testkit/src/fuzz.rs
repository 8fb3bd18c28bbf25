//! A fuzz driver that runs on stable Rust: a property over
//! [`arbitrary::Unstructured`] input, tried on a fixed sequence of seeds.
//!
//! Each seed expands (SplitMix64) into a byte buffer whose length is drawn
//! from the seed too, so one seed is one reproducible input. CI runs each
//! target on its first seeds for a short budget; the environment raises it:
//!
//! - `COMPONENTIZE_FUZZ_SECONDS=s`: run each target for `s` seconds (at
//!   least the target's minimum count of iterations);
//! - `COMPONENTIZE_FUZZ_SEED=n`: run only seed `n` (the replay a failure
//!   prints);
//! - `COMPONENTIZE_FUZZ_FIRST_SEED=n`: start the sequence at `n`, to explore
//!   beyond the seeds CI runs.
//!
//! A failing property panics; the driver then prints the target, the seed
//! and the command that replays it, and lets the panic fail the test. At the
//! end it prints how many inputs it tried and how many the property
//! rejected as not well-formed (`Err` from `Unstructured`).

use arbitrary::Unstructured;
use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::time::{Duration, Instant};

/// The largest input a seed expands to.
const MAX_INPUT: usize = 64 << 10;

/// One fuzz target: its name (for the replay line), how many seeds CI runs,
/// and how long CI may spend on it.
#[derive(Clone, Debug)]
pub struct Target {
    name: &'static str,
    replay: &'static str,
    iterations: u64,
    budget: Duration,
}

/// What a run did, for the closing figures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Inputs tried.
    pub iterations: u64,
    /// Inputs the property turned away as not well-formed.
    pub rejected: u64,
}

impl Target {
    /// A target named `name`; `replay` is the cargo command that runs it
    /// (`cargo test -p crate --test fuzz name`), printed with the seed on
    /// failure. CI runs 32 seeds within 20 seconds unless told otherwise.
    pub fn new(name: &'static str, replay: &'static str) -> Target {
        Target {
            name,
            replay,
            iterations: 32,
            budget: Duration::from_secs(20),
        }
    }

    /// How many seeds CI runs (the budget may stop it earlier).
    pub fn iterations(&mut self, n: u64) -> &mut Self {
        self.iterations = n;
        self
    }

    /// The most time CI spends (it stops after the iteration in flight).
    pub fn budget(&mut self, budget: Duration) -> &mut Self {
        self.budget = budget;
        self
    }

    /// Runs `property` on each seed's input. The property returns `Err`
    /// when the input does not make a well-formed case (counted as
    /// rejected) and panics when the behaviour is wrong.
    pub fn run(
        &self,
        mut property: impl FnMut(&mut Unstructured<'_>) -> arbitrary::Result<()>,
    ) -> Tally {
        let seeds: Box<dyn Iterator<Item = u64>> = match env_u64("COMPONENTIZE_FUZZ_SEED") {
            Some(seed) => Box::new(std::iter::once(seed)),
            None => Box::new(env_u64("COMPONENTIZE_FUZZ_FIRST_SEED").unwrap_or(0)..),
        };
        // CI: the first `iterations` seeds, cut short by the budget (after
        // one at least). A long run: at least `iterations`, then until the
        // time is up.
        let (budget, minimum, limit) = match env_u64("COMPONENTIZE_FUZZ_SECONDS") {
            Some(s) => (Duration::from_secs(s), self.iterations, u64::MAX),
            None => (self.budget, 1, self.iterations),
        };
        let start = Instant::now();
        let mut tally = Tally::default();
        for seed in seeds {
            if tally.iterations >= limit
                || (tally.iterations >= minimum && start.elapsed() >= budget)
            {
                break;
            }
            let input = expand(seed);
            let outcome = catch_unwind(AssertUnwindSafe(|| {
                property(&mut Unstructured::new(&input))
            }));
            tally.iterations += 1;
            match outcome {
                Ok(Ok(())) => {}
                Ok(Err(_)) => tally.rejected += 1,
                Err(panic) => {
                    eprintln!(
                        "fuzz target `{}` failed on seed {seed} ({} input bytes)\nreplay: COMPONENTIZE_FUZZ_SEED={seed} {}",
                        self.name,
                        input.len(),
                        self.replay
                    );
                    resume_unwind(panic);
                }
            }
        }
        eprintln!(
            "fuzz target `{}`: {} inputs ({} rejected as not well-formed) in {:.1?}",
            self.name,
            tally.iterations,
            tally.rejected,
            start.elapsed()
        );
        tally
    }
}

/// The input of `seed`: its length and bytes both drawn from [`SplitMix64`].
pub fn expand(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    // Mostly small inputs, some large: small ones reach the early error
    // paths, large ones make deep worlds and long value lists.
    let len = match rng.next_u64() % 4 {
        0 => rng.next_u64() % 256,
        1 | 2 => rng.next_u64() % 4096,
        _ => rng.next_u64() % MAX_INPUT as u64,
    } as usize;
    let mut bytes = Vec::with_capacity(len + 8);
    while bytes.len() < len {
        bytes.extend_from_slice(&rng.next_u64().to_le_bytes());
    }
    bytes.truncate(len);
    bytes
}

/// SplitMix64: a small, fast generator whose whole state is its seed, for
/// tests that need reproducible numbers (inputs, kill delays).
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    match value.trim().parse() {
        Ok(n) => Some(n),
        Err(_) => panic!("{name}={value:?} is not a number"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_is_one_input() {
        assert_eq!(expand(7), expand(7));
        assert_ne!(expand(7), expand(8));
        assert!((0..64).all(|s| expand(s).len() <= MAX_INPUT));
    }

    #[test]
    fn the_driver_counts_and_stops() {
        let mut seen = Vec::new();
        let tally = Target::new("count", "cargo test").iterations(5).run(|u| {
            seen.push(u.len());
            if u.is_empty() {
                Err(arbitrary::Error::NotEnoughData)
            } else {
                Ok(())
            }
        });
        assert_eq!(tally.iterations, 5);
        assert_eq!(seen.len(), 5);
        assert_eq!(
            tally.rejected,
            seen.iter().filter(|n| **n == 0).count() as u64
        );
    }

    #[test]
    #[should_panic(expected = "wrong")]
    fn a_failing_property_fails_the_test() {
        Target::new("fail", "cargo test").run(|_| panic!("wrong"));
    }
}
