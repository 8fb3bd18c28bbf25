//! What [`Init::run`](crate::Init::run) returns: the [`Snapshot`] with its
//! [`Stats`] and [`Timings`], or an [`InitError`] saying which [`Failure`]
//! stopped init.

use crate::options::Compiler;
use std::fmt;
use std::time::Duration;

/// The pre-initialized component and what init printed.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The output component.
    pub wasm: Vec<u8>,
    /// What the component wrote to stdout during init.
    pub stdout: Vec<u8>,
    /// What the component wrote to stderr during init.
    pub stderr: Vec<u8>,
    /// The results of an [`InitCall::Func`](crate::InitCall::Func) call, in
    /// WAVE.
    pub results: Vec<String>,
    /// Sizes and timings.
    pub stats: Stats,
}

/// Sizes and timings of a snapshot.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct Stats {
    /// Bytes of linear memory measured.
    pub memory_bytes: u64,
    /// Bytes stored in the new data segments.
    pub data_bytes: u64,
    /// Number of new data segments.
    pub segments: usize,
    /// Number of mutable globals measured.
    pub globals: usize,
    /// Which compiler compiled the component for the init run, and why.
    pub compilation: Compilation,
    /// Where the time went.
    pub timings: Timings,
}

/// The compiler of the init run and why it was the one.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Compilation {
    /// [`Compiler::Winch`] or [`Compiler::Cranelift`].
    pub compiler: Compiler,
    /// Why: asked for, or what kept Winch from compiling the component (a
    /// feature and where it is used, or Winch's error).
    pub reason: String,
}

impl fmt::Display for Compilation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.compiler {
            Compiler::Cranelift => "Cranelift (unoptimized)",
            Compiler::Winch => "Winch",
            // Never the record of a run.
            Compiler::Auto => "auto",
        })?;
        if !self.reason.is_empty() {
            write!(f, ": {}", self.reason)?;
        }
        Ok(())
    }
}

/// Where the time of [`Init::run`](crate::Init::run) went.
#[non_exhaustive]
#[derive(Clone, Debug, Default)]
pub struct Timings {
    /// Validating and reading the input.
    pub parse: Duration,
    /// Building the instrumented component.
    pub instrument: Duration,
    /// Compiling it (zero when the runtime had it cached).
    pub compile: Duration,
    /// Instantiating it (the constructors).
    pub instantiate: Duration,
    /// The init call.
    pub init: Duration,
    /// Resetting libc, checking host handles, reading globals and memories.
    pub measure: Duration,
    /// Writing and validating the output.
    pub rewrite: Duration,
}

/// Why running init failed.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The init contract returned `err(message)`.
    ScriptError,
    /// The component trapped (or called `exit`) during instantiation, the
    /// init call, or libc's reset.
    Trap,
    /// The timeout passed.
    Timeout,
    /// A memory or table grew beyond its limit.
    MemoryLimit,
    /// A host handle, or component-model async state (a future or stream
    /// end, a waitable set, a subtask), was still live after init.
    LiveHandle,
    /// Init made an outgoing HTTP request, which the sandbox refuses.
    NetworkRefused,
}

/// A failure while running init, with what the component printed.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub struct InitError {
    /// What went wrong.
    pub kind: Failure,
    /// The message (names the function, the limit or the handle).
    pub message: String,
    /// Everything written to stdout before the failure.
    pub stdout: Vec<u8>,
    /// Everything written to stderr before the failure.
    pub stderr: Vec<u8>,
}

/// At most this much of each stream is shown in an [`InitError`]'s message:
/// the end of the output, where the cause usually is.
const SHOWN_OUTPUT: usize = 16 << 10;

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for (name, bytes) in [("stdout", &self.stdout), ("stderr", &self.stderr)] {
            if bytes.is_empty() {
                continue;
            }
            let shown = &bytes[bytes.len().saturating_sub(SHOWN_OUTPUT)..];
            let cut = if shown.len() < bytes.len() {
                format!(" (last {} of {} bytes)", shown.len(), bytes.len())
            } else {
                String::new()
            };
            write!(
                f,
                "\n--- {name} of init{cut} ---\n{}",
                String::from_utf8_lossy(shown).trim_end()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for InitError {}
