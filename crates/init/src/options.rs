//! What the component may reach during init and how long and large init may
//! get: [`Options`], and the parsers of its command-line spellings.

use anyhow::{Result, anyhow, bail};
use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// Default of [`Options::timeout`]: 300 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Default of [`Options::memory_limit`]: 2 GiB per linear memory.
pub const DEFAULT_MEMORY_LIMIT: usize = 2 << 30;

/// Bytes in the unit of `--init-memory-limit`.
const MIB: usize = 1 << 20;

/// The sandbox and limits of init; closed by default: no directories, no
/// environment variables, no arguments, no network, empty stdin, captured
/// stdout and stderr, fixed random bytes and clocks.
///
/// With the `cli` feature this is a set of `clap` arguments, spelled like
/// wasmtime's (`--dir`, `--env`) plus the init limits. Field order is
/// stable: callers hash the [`Debug`] form for cache keys.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
// Flattened next to other stages' options: the group needs its own id.
#[cfg_attr(feature = "cli", group(id = "init-options"))]
#[cfg_attr(
    feature = "cli",
    command(next_help_heading = "Init sandbox and limits")
)]
pub struct Options {
    /// Preopen host folder HOST as GUEST during init (wasmtime style; GUEST
    /// defaults to HOST).
    #[cfg_attr(
        feature = "cli",
        arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = parse_dir)
    )]
    pub dirs: Vec<PreopenDir>,
    /// Set an environment variable during init (`KEY` alone passes the host's
    /// value).
    #[cfg_attr(
        feature = "cli",
        arg(long = "env", value_name = "KEY[=VALUE]", value_parser = parse_env)
    )]
    pub env: Vec<EnvVar>,
    /// A folder the script's modules are loaded from during init (Lua:
    /// `require`), read-only; repeatable, searched in order. The pipeline
    /// puts the script's own folder first. Gone after init: modules must
    /// be loaded by then.
    #[cfg_attr(feature = "cli", arg(long = "module-path", value_name = "DIR"))]
    pub module_paths: Vec<PathBuf>,
    /// Fail init after this many seconds.
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "init-timeout",
            value_name = "SECONDS",
            // So `-1` reaches the parser and its message, not clap's.
            allow_negative_numbers = true,
            value_parser = parse_timeout,
            default_value = "300"
        )
    )]
    pub timeout: Duration,
    /// Fail init when a linear memory grows beyond this many MiB.
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "init-memory-limit",
            value_name = "MIB",
            allow_negative_numbers = true,
            value_parser = parse_memory_limit,
            default_value = "2048"
        )
    )]
    pub memory_limit: usize,
    /// Keep the init export in the output (by default it is removed).
    #[cfg_attr(feature = "cli", arg(long))]
    pub keep_init_export: bool,
    /// Let init make outgoing HTTP requests (wasi:http, plain http:// only).
    /// What the responses put in memory becomes part of the snapshot, so the
    /// output then depends on the network.
    #[cfg_attr(feature = "cli", arg(long))]
    pub allow_http: bool,
    /// The compiler of the init run. The snapshot is the same bytes
    /// whichever runs; `auto` picks the fastest to compile that can.
    #[cfg_attr(
        feature = "cli",
        arg(
            long = "init-compiler",
            value_name = "COMPILER",
            value_enum,
            default_value_t
        )
    )]
    pub compiler: Compiler,
}

/// Which wasmtime compiler compiles the component for the init run, whose
/// code runs once and is thrown away: compile speed is what counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Compiler {
    /// Winch when the component allows it (it uses none of the features
    /// Winch lacks, such as the exceptions a C library's setjmp/longjmp
    /// compiles to), otherwise Cranelift unoptimized.
    #[default]
    Auto,
    /// Winch, wasmtime's baseline compiler: several times faster to
    /// compile; a component it cannot compile is an error.
    Winch,
    /// Cranelift without optimizations (`OptLevel::None`): compiles every
    /// feature.
    Cranelift,
}

impl Compiler {
    /// The spelling of `--init-compiler`.
    pub fn name(self) -> &'static str {
        match self {
            Compiler::Auto => "auto",
            Compiler::Winch => "winch",
            Compiler::Cranelift => "cranelift",
        }
    }
}

impl Options {
    /// The command-line flags that give these options back (as
    /// `componentize init` spells them); defaults are left out. A memory
    /// limit that is not a whole number of MiB is rounded up.
    pub fn to_args(&self) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        for dir in &self.dirs {
            let mut value = dir.host.clone().into_os_string();
            value.push("::");
            value.push(&dir.guest);
            args.extend(["--dir".into(), value]);
        }
        for var in &self.env {
            let value = match var.from_host {
                true => var.key.clone(),
                false => format!("{}={}", var.key, var.value),
            };
            args.extend(["--env".into(), value.into()]);
        }
        for dir in &self.module_paths {
            args.extend(["--module-path".into(), dir.clone().into_os_string()]);
        }
        if self.timeout != DEFAULT_TIMEOUT {
            let seconds = self.timeout.as_secs_f64().to_string();
            args.extend(["--init-timeout".into(), seconds.into()]);
        }
        if self.memory_limit != DEFAULT_MEMORY_LIMIT {
            let mib = self.memory_limit.div_ceil(MIB).to_string();
            args.extend(["--init-memory-limit".into(), mib.into()]);
        }
        if self.keep_init_export {
            args.push("--keep-init-export".into());
        }
        if self.allow_http {
            args.push("--allow-http".into());
        }
        if self.compiler != Compiler::Auto {
            args.extend(["--init-compiler".into(), self.compiler.name().into()]);
        }
        args
    }
}

impl Default for Options {
    fn default() -> Options {
        Options {
            dirs: Vec::new(),
            env: Vec::new(),
            module_paths: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            keep_init_export: false,
            allow_http: false,
            compiler: Compiler::Auto,
        }
    }
}

/// A host directory the component sees during init.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PreopenDir {
    /// The directory on the host.
    pub host: PathBuf,
    /// Where the component finds it.
    pub guest: String,
}

impl PreopenDir {
    /// Host directory `host`, seen as `guest`.
    pub fn new(host: impl Into<PathBuf>, guest: impl Into<String>) -> PreopenDir {
        PreopenDir {
            host: host.into(),
            guest: guest.into(),
        }
    }
}

/// An environment variable the component sees during init.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnvVar {
    /// Its name.
    pub key: String,
    /// Its value.
    pub value: String,
    /// Whether the value was read from the host's environment (`--env KEY`):
    /// [`Options::to_args`] then gives `KEY` back rather than writing the
    /// host's value out.
    pub from_host: bool,
}

impl EnvVar {
    /// Variable `key` set to `value`.
    pub fn new(key: impl Into<String>, value: impl Into<String>) -> EnvVar {
        EnvVar {
            key: key.into(),
            value: value.into(),
            from_host: false,
        }
    }
}

/// Parses a `--dir` argument in wasmtime's style: `HOST[::GUEST]` (the guest
/// path defaults to the host path).
pub fn parse_dir(spec: &str) -> Result<PreopenDir> {
    let (host, guest) = spec.split_once("::").unwrap_or((spec, spec));
    if host.is_empty() || guest.is_empty() {
        bail!("invalid --dir `{spec}`: expected HOST[::GUEST]");
    }
    Ok(PreopenDir::new(host, guest))
}

/// Parses an `--env` argument in wasmtime's style: `KEY=VALUE`, or `KEY` to
/// pass the host's value of `KEY` (an explicit opt-in, read now).
pub fn parse_env(spec: &str) -> Result<EnvVar> {
    let var = match spec.split_once('=') {
        Some((key, value)) => EnvVar::new(key, value),
        None => {
            let value = std::env::var(spec).map_err(|_| {
                anyhow!("--env {spec}: `{spec}` is not set in the environment; give KEY=VALUE")
            })?;
            EnvVar {
                from_host: true,
                ..EnvVar::new(spec, value)
            }
        }
    };
    if var.key.is_empty() {
        bail!("invalid --env `{spec}`: expected KEY=VALUE");
    }
    Ok(var)
}

/// Parses `--init-timeout`: a non-negative number of seconds, such as `2.5`.
pub fn parse_timeout(seconds: &str) -> Result<Duration> {
    let value: f64 = seconds
        .trim()
        .parse()
        .map_err(|_| anyhow!("invalid --init-timeout `{seconds}`: expected a number of seconds"))?;
    Duration::try_from_secs_f64(value).map_err(|_| {
        anyhow!(
            "invalid --init-timeout `{seconds}`: expected a positive number of seconds that is \
             not too large"
        )
    })
}

/// Parses `--init-memory-limit`: a whole number of MiB, returned in bytes.
pub fn parse_memory_limit(mib: &str) -> Result<usize> {
    let value: usize = mib.trim().parse().map_err(|_| {
        anyhow!("invalid --init-memory-limit `{mib}`: expected a whole number of MiB")
    })?;
    value.checked_mul(MIB).ok_or_else(|| {
        anyhow!(
            "invalid --init-memory-limit `{mib}`: at most {} MiB fit in this platform's address \
             space",
            usize::MAX / MIB
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_default_the_guest_path_to_the_host_path() {
        assert_eq!(parse_dir("/a::/b").unwrap(), PreopenDir::new("/a", "/b"));
        assert_eq!(parse_dir("data").unwrap(), PreopenDir::new("data", "data"));
        assert!(parse_dir("::/b").is_err());
        assert!(parse_dir("/a::").is_err());
    }

    #[test]
    fn env_takes_a_value_or_the_hosts() {
        assert_eq!(parse_env("K=v=w").unwrap(), EnvVar::new("K", "v=w"));
        assert_eq!(parse_env("K=").unwrap(), EnvVar::new("K", ""));
        assert!(parse_env("=v").is_err());
        let unset = "COMPONENTIZE_INIT_TEST_SURELY_UNSET";
        let e = parse_env(unset).unwrap_err().to_string();
        assert!(e.contains("is not set"), "{e}");
    }

    #[test]
    fn timeouts_are_non_negative_seconds() {
        assert_eq!(parse_timeout("2.5").unwrap(), Duration::from_millis(2500));
        assert_eq!(parse_timeout("300").unwrap(), DEFAULT_TIMEOUT);
        for bad in ["-1", "NaN", "inf", "1e300", "soon"] {
            assert!(parse_timeout(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn memory_limits_are_mib_without_overflow() {
        assert_eq!(parse_memory_limit("2048").unwrap(), DEFAULT_MEMORY_LIMIT);
        assert!(parse_memory_limit("-1").is_err());
        let e = parse_memory_limit(&usize::MAX.to_string())
            .unwrap_err()
            .to_string();
        assert!(e.contains("at most"), "{e}");
    }

    #[cfg(feature = "cli")]
    #[test]
    fn command_line_spellings() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            options: Options,
        }
        let defaults = Cli::try_parse_from(["init"]).unwrap().options;
        assert_eq!(defaults, Options::default());
        let args = [
            "init",
            "--dir",
            "/a::/b",
            "--env",
            "K=v",
            "--init-timeout",
            "1.5",
            "--init-memory-limit",
            "16",
            "--keep-init-export",
            "--allow-http",
            "--module-path",
            "lib",
            "--init-compiler",
            "cranelift",
        ];
        let options = Cli::try_parse_from(args).unwrap().options;
        assert_eq!(options.dirs, [PreopenDir::new("/a", "/b")]);
        assert_eq!(options.env, [EnvVar::new("K", "v")]);
        assert_eq!(options.timeout, Duration::from_millis(1500));
        assert_eq!(options.memory_limit, 16 << 20);
        assert!(options.keep_init_export);
        assert!(options.allow_http);
        assert_eq!(options.module_paths, [PathBuf::from("lib")]);
        assert_eq!(options.compiler, Compiler::Cranelift);
        let bad = Cli::try_parse_from(["init", "--init-timeout", "-1"])
            .err()
            .unwrap()
            .to_string();
        assert!(bad.contains("invalid --init-timeout `-1`"), "{bad}");

        // The flags give the options back.
        let args = std::iter::once("init".into()).chain(options.to_args());
        assert_eq!(Cli::try_parse_from(args).unwrap().options, options);
        assert!(Options::default().to_args().is_empty());
        // A host value stays at the host: `KEY`, not `KEY=VALUE`.
        let inherited = Options {
            env: vec![EnvVar {
                from_host: true,
                ..EnvVar::new("HOME", "/secret/home")
            }],
            ..Options::default()
        };
        assert_eq!(inherited.to_args(), ["--env", "HOME"]);
    }
}
