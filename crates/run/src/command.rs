//! `componentize run`: a wasi:cli command ([`run_command`]) or one exported
//! function given as a WAVE call ([`invoke`]).

use crate::host::{Host, export_names, linker, prepare};
use crate::sandbox::Sandbox;
use anyhow::{Context, Result, bail};
use componentize_init::ExportCall;
use wasmtime::component::Component;
use wasmtime::component::wasm_wave::wasm::DisplayFuncResults;
use wasmtime::{Engine, Store, Trap};
use wasmtime_wasi::I32Exit;
use wasmtime_wasi::p2::bindings::CommandPre;

/// The exports that make a component a wasi:cli command, of WASI 0.2 and
/// 0.3 (any 0.2.x or 0.3.x: wasmtime matches exports by semver).
const CLI_RUN: &str = "wasi:cli/run@0.2.0";
const CLI_RUN_P3: &str = "wasi:cli/run@0.3.0";

/// The exit code of a run that trapped, like `wasmtime run` (128 + SIGABRT).
pub const TRAP_EXIT_CODE: i32 = 134;

/// Runs `component` as a wasi:cli command (`wasi:cli/run@0.2.x`, or the
/// async `run` of `wasi:cli/run@0.3.x`) and returns its exit code: 0 when `run` returns `ok`, 1 for `err`, the code
/// the command exits with through wasi:cli/exit otherwise. The command's
/// arguments are `program` (argv\[0\], by convention the component's file
/// name) then `args`; stdin, stdout and stderr are the process's.
///
/// A component without the export is an error saying to use [`invoke`]; a
/// trap is an error (see [`exit_code`]).
pub fn run_command(
    engine: &Engine,
    component: &Component,
    sandbox: &Sandbox,
    program: &str,
    args: &[String],
) -> Result<i32> {
    let p3 = component.get_export_index(None, CLI_RUN).is_none();
    if p3 && component.get_export_index(None, CLI_RUN_P3).is_none() {
        bail!(
            "the component is not a wasi:cli command (it exports neither `wasi:cli/run@0.2.x` \
             nor `wasi:cli/run@0.3.x`); use --invoke to call one of its exports: {}",
            export_names(engine, component)
        );
    }
    let pre = prepare(&linker(engine)?, component)?;
    let wasi = sandbox.command(program, args)?;
    let not_run = |version: &str| {
        format!(
            "the component's `wasi:cli/run` export does not have the type of wasi:cli {version}"
        )
    };
    runtime()?.block_on(async {
        let mut store = Store::new(engine, Host::new(wasi));
        let ran = if p3 {
            let pre = wasmtime_wasi::p3::bindings::CommandPre::new(pre)
                .map_err(anyhow::Error::from)
                .context(not_run("0.3"))?;
            match pre.instantiate_async(&mut store).await {
                // `run` is an async func: it runs on the store's event loop,
                // with the tasks it starts.
                Ok(command) => store
                    .run_concurrent(async move |a| command.wasi_cli_run().call_run(a).await)
                    .await
                    .and_then(|ran| ran),
                Err(e) => Err(e),
            }
        } else {
            let pre = CommandPre::new(pre)
                .map_err(anyhow::Error::from)
                .context(not_run("0.2"))?;
            match pre.instantiate_async(&mut store).await {
                Ok(command) => command.wasi_cli_run().call_run(&mut store).await,
                Err(e) => Err(e),
            }
        };
        match ran {
            Ok(Ok(())) => Ok(0),
            Ok(Err(())) => Ok(1),
            Err(e) => match e.downcast_ref::<I32Exit>() {
                Some(exit) => Ok(exit.0),
                None => Err(anyhow::Error::from(e).context("the command failed")),
            },
        }
    })
}

/// Calls one exported function of `component`: `call` is a name (`f`,
/// `pkg:ns/iface.f`) of a function without parameters or a WAVE call
/// (`'f(1, "x")'`), parsed by componentize-init's [`ExportCall`]. Returns
/// the results in WAVE as `wasmtime run --invoke` prints them (one value, or
/// a parenthesized list for none or several). The sandbox's arguments are
/// `program` then `args`, as for [`run_command`].
pub fn invoke(
    engine: &Engine,
    component: &Component,
    sandbox: &Sandbox,
    call: &str,
    program: &str,
    args: &[String],
) -> Result<String> {
    let call = ExportCall::parse(engine, component, call)?;
    let pre = prepare(&linker(engine)?, component)?;
    let wasi = sandbox.command(program, args)?;
    runtime()?.block_on(async {
        let mut store = Store::new(engine, Host::new(wasi));
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(anyhow::Error::from)
            .context("instantiating the component failed")?;
        let func = call.func(&mut store, &instance)?;
        let mut results = call.results();
        func.call_async(&mut store, call.params(), &mut results)
            .await
            .map_err(anyhow::Error::from)
            .with_context(|| format!("calling `{}` failed", call.function()))?;
        Ok(DisplayFuncResults(&results).to_string())
    })
}

/// The process exit code for a failed run: [`TRAP_EXIT_CODE`] when the
/// component trapped, else 1.
pub fn exit_code(error: &anyhow::Error) -> i32 {
    match error.downcast_ref::<Trap>() {
        Some(_) => TRAP_EXIT_CODE,
        None => 1,
    }
}

/// A runtime on this thread: a command is one instance, so one thread.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}
