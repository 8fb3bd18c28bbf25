//! The init call: the script contract ([`INIT_INTERFACE`]) or an exported
//! function given as a name or a WAVE call (`--init-func`), and the libc
//! hooks ([`Hook`]) called after it.

use super::Session;
use crate::instrument::{Accessor, Hook};
use crate::report::Failure;
use anyhow::{Context, Result, anyhow, bail};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use std::time::{Duration, Instant};
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave::{self, untyped::UntypedFuncCall, wasm::WasmFunc};
use wasmtime::component::wit_parser::ItemName;
use wasmtime::component::{Component, ComponentExportIndex, Val};

/// What init calls after instantiating the component.
#[non_exhaustive]
#[derive(Clone, Debug)]
pub enum InitCall {
    /// The interpreter contract: `componentize:init/init@0.1.0.init(name,
    /// source)`, whose `err(message)` fails init with the message.
    Script {
        /// The script's name, for messages (usually its file name).
        name: String,
        /// The script.
        source: Vec<u8>,
    },
    /// An exported function: a name (`f`, `iface.f`,
    /// `pkg:ns/iface.f@1.0.0`) of a function without parameters, or a WAVE
    /// call with arguments (`pkg:ns/iface.f("x", 3)`), as `wasmtime wizer
    /// --init-func` takes it.
    Func(String),
}

/// What the init call left for the rewrite.
pub(crate) struct Called {
    /// The results of an [`InitCall::Func`], in WAVE.
    pub results: Vec<String>,
    /// The name of the top-level export to remove, if any.
    pub remove: Option<String>,
    /// How long the call took.
    pub time: Duration,
}

impl Session<'_> {
    /// Makes `call` (if any); unless `keep_export`, names the export the
    /// rewrite removes.
    pub fn call(&mut self, call: Option<&InitCall>, keep_export: bool) -> Result<Called> {
        let t = Instant::now();
        let mut called = Called {
            results: Vec::new(),
            remove: None,
            time: Duration::ZERO,
        };
        match call {
            None => {}
            Some(InitCall::Script { name, source }) => {
                self.call_script(name, source)?;
                if !keep_export {
                    called.remove = Some(INIT_INTERFACE.to_string());
                }
            }
            Some(InitCall::Func(call)) => {
                let prepared = prepare_call(self.store.engine(), &self.component, call)?;
                // Refuse before running when the export cannot be removed.
                if !keep_export {
                    called.remove = Some(prepared.removal.clone().map_err(|e| anyhow!(e))?);
                }
                called.results = self.call_func(call, &prepared)?;
            }
        }
        called.time = t.elapsed();
        Ok(called)
    }

    /// Runs the script through the interpreter's init contract.
    fn call_script(&mut self, name: &str, source: &[u8]) -> Result<()> {
        let iface = self
            .component
            .get_export_index(None, INIT_INTERFACE)
            .ok_or_else(|| {
                anyhow!(
                    "the component does not export `{INIT_INTERFACE}`: generate its bindings from \
                     the world that componentize_contract::add_init_export returns"
                )
            })?;
        let func = self
            .component
            .get_export_index(Some(&iface), INIT_FUNCTION)
            .ok_or_else(|| anyhow!("`{INIT_INTERFACE}` has no function `{INIT_FUNCTION}`"))?;
        let func = self
            .instance
            .get_typed_func::<(&str, &[u8]), (Result<(), String>,)>(&mut self.store, &func)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "`{INIT_INTERFACE}.{INIT_FUNCTION}` does not have the type `func(name: \
                     string, source: list<u8>) -> result<_, string>`"
                )
            })?;
        match func.call(&mut self.store, (name, source)) {
            Ok((Ok(()),)) => Ok(()),
            Ok((Err(message),)) => {
                // Show what the script printed before it failed.
                let _ = self.hook(Hook::Fflush);
                Err(self.fail(
                    Failure::ScriptError,
                    format!("the script `{name}` failed: {message}"),
                ))
            }
            Err(e) => Err(self.guest_error(&format!("init of `{name}`"), e)),
        }
    }

    /// Calls the prepared `--init-func` and returns its results in WAVE.
    fn call_func(&mut self, call: &str, prepared: &PreparedCall) -> Result<Vec<String>> {
        let func = self
            .instance
            .get_func(&mut self.store, prepared.func)
            .ok_or_else(|| anyhow!("`{call}` is not a function"))?;
        let mut results = vec![Val::Bool(false); prepared.results];
        if let Err(e) = func.call(&mut self.store, &prepared.params, &mut results) {
            return Err(self.guest_error(&format!("the init call `{call}`"), e));
        }
        Ok(results
            .iter()
            .map(|v| wasm_wave::to_string(v).unwrap_or_else(|e| format!("<unprintable: {e}>")))
            .collect())
    }

    /// Whether the component has libc's `hook`.
    pub fn has_hook(&self, hook: Hook) -> bool {
        self.hook_accessor(hook).is_some()
    }

    fn hook_accessor(&self, wanted: Hook) -> Option<usize> {
        self.accessors
            .iter()
            .position(|a| matches!(a, Accessor::Hook { hook, .. } if *hook == wanted))
    }

    /// Calls libc's `hook` if the component has it (`None` if not); the
    /// inner result is the guest's.
    pub fn hook(&mut self, hook: Hook) -> Result<Option<wasmtime::Result<()>>> {
        let Some(i) = self.hook_accessor(hook) else {
            return Ok(None);
        };
        let index = self.accessor_index(i)?;
        let (store, instance) = (&mut self.store, &self.instance);
        let result = match hook {
            // `fflush(NULL)` flushes every stream; its status is not needed.
            Hook::Fflush => instance
                .get_typed_func::<(i32,), (i32,)>(&mut *store, &index)
                .and_then(|f| f.call(&mut *store, (0,)).map(|_| ())),
            Hook::ResetPreopens | Hook::DeinitEnviron => instance
                .get_typed_func::<(), ()>(&mut *store, &index)
                .and_then(|f| f.call(&mut *store, ())),
        };
        Ok(Some(result))
    }
}

/// An `--init-func` call, checked against the component before it runs.
struct PreparedCall {
    func: ComponentExportIndex,
    params: Vec<Val>,
    results: usize,
    /// The export to remove, or why it cannot be removed alone.
    removal: std::result::Result<String, String>,
}

/// Parses `--init-func`: an export name (`f`, `iface.f`, `pkg:ns/iface.f@1.0`)
/// or a WAVE call (`iface.f("x", 3)`), and finds the function.
fn prepare_call(
    engine: &wasmtime::Engine,
    component: &Component,
    call: &str,
) -> Result<PreparedCall> {
    let (item, parsed) = if call.contains('(') {
        let parsed = UntypedFuncCall::parse(call)
            .map_err(|e| anyhow!("cannot parse `{call}` as a WAVE function call: {e}"))?;
        let item = parsed
            .item_name()
            .map_err(|e| anyhow!("cannot parse the function name in `{call}`: {e}"))?;
        (item, Some(parsed))
    } else {
        let item = call
            .parse::<ItemName>()
            .map_err(|e| anyhow!("cannot parse `{call}` as a function name: {e}"))?;
        (item, None)
    };
    let export = export_name(&item);
    let (ty, func) = component
        .get_export(None, &item)
        .ok_or_else(|| anyhow!("the component does not export the function `{export}`"))?;
    let ComponentItem::ComponentFunc(ty) = ty else {
        bail!("the component's export `{export}` is not a function");
    };
    let params = match parsed {
        Some(parsed) => {
            let types: Vec<_> = WasmFunc::params(&ty).collect();
            parsed
                .to_wasm_params::<Val>(&types)
                .map_err(|e| anyhow!("the arguments of `{call}` do not fit its parameters: {e}"))?
        }
        None => no_params(&ty, &item)?,
    };
    Ok(PreparedCall {
        func,
        params,
        results: ty.results().len(),
        removal: removal(engine, component, &item),
    })
}

/// The arguments of a call given without any: none, if `ty` takes none.
fn no_params(ty: &ComponentFunc, item: &ItemName) -> Result<Vec<Val>> {
    let n = ty.params().len();
    if n != 0 {
        bail!(
            "`{}` takes {n} parameter(s): give them as a WAVE call, e.g. `{}(...)`",
            export_name(item),
            item.name
        );
    }
    Ok(Vec::new())
}

/// The top-level export that removing the init function `item` removes: the
/// function itself, or its instance when the function is all it exports.
fn removal(
    engine: &wasmtime::Engine,
    component: &Component,
    item: &ItemName,
) -> std::result::Result<String, String> {
    let Some(instance) = item.instance_name() else {
        return Ok(item.name.clone());
    };
    match component.get_export(None, instance.as_str()) {
        Some((ComponentItem::ComponentInstance(t), _)) => {
            let n = t.exports(engine).count();
            if n == 1 {
                Ok(instance)
            } else {
                Err(format!(
                    "cannot remove the init export `{}` alone: `{instance}` exports {n} \
                     functions; keep the init export (--keep-init-export) or use a world where \
                     the init function has an interface of its own",
                    export_name(item)
                ))
            }
        }
        _ => Err(format!("cannot find the exported instance `{instance}`")),
    }
}

/// `item` as the component names it: `f` or `pkg:ns/iface.f@1.0.0`-style
/// `instance.f`, without any arguments.
fn export_name(item: &ItemName) -> String {
    match item.instance_name() {
        Some(instance) => format!("{instance}.{}", item.name),
        None => item.name.clone(),
    }
}
