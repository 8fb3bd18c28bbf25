//! What a running component sees of the host: [`Sandbox`].

use anyhow::{Context, Result};
use componentize_init::{EnvVar, PreopenDir};
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder};

/// The host folders and environment variables a component is granted;
/// nothing else of the host's filesystem or environment, and no network
/// sockets (outgoing wasi:http requests are allowed). stdout and stderr are
/// the process's.
///
/// With the `cli` feature this is a set of `clap` arguments spelled like
/// `wasmtime run`'s: `--dir HOST[::GUEST]`, `--env NAME[=VAL]` (`NAME`
/// alone passes the host's value). The parsers are componentize-init's, so
/// init and run take the same spellings.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Sandbox"))]
pub struct Sandbox {
    /// Grant host folder HOST to the component as GUEST, read-write (GUEST
    /// defaults to HOST).
    #[cfg_attr(
        feature = "cli",
        arg(long = "dir", value_name = "HOST[::GUEST]", value_parser = componentize_init::parse_dir)
    )]
    pub dirs: Vec<PreopenDir>,
    /// Set an environment variable (`NAME` alone passes the host's value).
    #[cfg_attr(
        feature = "cli",
        arg(long = "env", value_name = "NAME[=VAL]", value_parser = componentize_init::parse_env)
    )]
    pub env: Vec<EnvVar>,
}

impl Sandbox {
    /// Grants host folder `host` as `guest`.
    pub fn dir(
        &mut self,
        host: impl Into<std::path::PathBuf>,
        guest: impl Into<String>,
    ) -> &mut Self {
        self.dirs.push(PreopenDir::new(host, guest));
        self
    }

    /// Sets environment variable `key` to `value`.
    pub fn env(&mut self, key: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.env.push(EnvVar::new(key, value));
        self
    }

    /// The WASI context of a command: its arguments are `program` (argv[0],
    /// like wasmtime: the component's file name) then `args`; stdin, stdout
    /// and stderr are the process's.
    pub fn command(&self, program: &str, args: &[String]) -> Result<WasiCtx> {
        let mut b = self.builder()?;
        b.inherit_stdin().arg(program).args(args);
        Ok(b.build())
    }

    /// The WASI context of one HTTP request's instance: no arguments, empty
    /// stdin (the request body is the input), stdout and stderr the
    /// process's.
    pub fn handler(&self) -> Result<WasiCtx> {
        Ok(self.builder()?.build())
    }

    /// stdout, stderr, the variables and the folders.
    fn builder(&self) -> Result<WasiCtxBuilder> {
        let mut b = WasiCtx::builder();
        b.inherit_stdout().inherit_stderr();
        for var in &self.env {
            b.env(&var.key, &var.value);
        }
        for dir in &self.dirs {
            b.preopened_dir(&dir.host, &dir.guest, FsPerms::ReadWrite)
                .map_err(anyhow::Error::from)
                .with_context(|| format!("cannot open `{}` for --dir", dir.host.display()))?;
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_folder_is_named() {
        let mut sandbox = Sandbox::default();
        sandbox.dir("/surely/not/a/folder/of/this/host", "/data");
        let e = format!("{:#}", sandbox.handler().err().unwrap());
        assert!(
            e.starts_with("cannot open `/surely/not/a/folder/of/this/host` for --dir"),
            "{e}"
        );
        assert!(Sandbox::default().handler().is_ok());
    }

    #[cfg(feature = "cli")]
    #[test]
    fn command_line_spellings_are_wasmtimes() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            sandbox: Sandbox,
        }
        let none = Cli::try_parse_from(["run"]).unwrap().sandbox;
        assert_eq!(none, Sandbox::default());
        let args = ["run", "--dir", "/a::/b", "--dir", "c", "--env", "K=v=w"];
        let sandbox = Cli::try_parse_from(args).unwrap().sandbox;
        assert_eq!(
            sandbox.dirs,
            [PreopenDir::new("/a", "/b"), PreopenDir::new("c", "c")]
        );
        assert_eq!(sandbox.env, [EnvVar::new("K", "v=w")]);
        // `--env NAME` reads the host's value now.
        let inherited = Cli::try_parse_from(["run", "--env", "PATH"]).unwrap();
        let path = std::env::var("PATH").unwrap();
        assert_eq!(inherited.sandbox.env[0].value, path);
        assert!(inherited.sandbox.env[0].from_host);
        let e = Cli::try_parse_from(["run", "--dir", "::/b"]).err().unwrap();
        assert!(e.to_string().contains("invalid --dir `::/b`"), "{e}");
    }
}
