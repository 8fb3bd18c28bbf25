//! The init call: the script contract ([`INIT_INTERFACE`]) or an exported
//! function given as a name or a WAVE call (`--init-func`, parsed by
//! [`ExportCall`], which `componentize run --invoke` shares), and the libc
//! hooks ([`Hook`]) called after it.

use super::{Session, call_typed};
use crate::instrument::{Accessor, Hook};
use crate::report::Failure;
use anyhow::{Context, Result, anyhow, bail};
use componentize_contract::{INIT_FUNCTION, INIT_INTERFACE};
use std::time::{Duration, Instant};
use wasmtime::AsContextMut;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::wasm_wave::{
    self,
    parser::ParserErrorKind,
    untyped::UntypedFuncCall,
    wasm::{DisplayType, WasmFunc, WasmValueError},
};
use wasmtime::component::wit_parser::ItemName;
use wasmtime::component::{Component, ComponentExportIndex, Func, Instance, Val};

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

/// The export an init call goes through, and what removing it takes out.
#[derive(Clone, Debug)]
pub(crate) struct InitExport {
    /// The init function as the component names it, spelled like
    /// `--init-func` (`f`, `pkg:ns/iface.f@1.0.0`), for messages.
    pub function: String,
    /// What the rewrite takes out of the component.
    pub removes: Removes,
}

/// What removing the init export takes out of the component.
#[derive(Clone, Debug)]
pub(crate) enum Removes {
    /// The top-level export of this name: the function itself, the init
    /// contract's interface, or an instance whose only export is the
    /// function.
    Export(String),
    /// Function `func` of the exported instance `instance`, which exports
    /// other items as well.
    Member { instance: String, func: String },
}

/// An init call checked against the component, not made yet.
pub(crate) struct Prepared<'a> {
    call: Ready<'a>,
    export: Option<InitExport>,
}

impl Prepared<'_> {
    /// The export the call goes through (`None` without a call).
    pub fn export(&self) -> Option<&InitExport> {
        self.export.as_ref()
    }
}

/// What [`Session::call`] runs.
enum Ready<'a> {
    /// Nothing: only the constructors ran.
    Nothing,
    /// The init contract with a script.
    Script {
        name: &'a str,
        source: &'a [u8],
        func: ComponentExportIndex,
    },
    /// An `--init-func`.
    Func(ExportCall),
}

/// What the init call left for the rewrite.
pub(crate) struct Called {
    /// The results of an [`InitCall::Func`], in WAVE.
    pub results: Vec<String>,
    /// How long the call took.
    pub time: Duration,
}

impl Session<'_> {
    /// Checks `call` (if any) against the component without running it:
    /// the function exists and its arguments fit.
    pub fn prepare<'a>(&self, call: Option<&'a InitCall>) -> Result<Prepared<'a>> {
        Ok(match call {
            None => Prepared {
                call: Ready::Nothing,
                export: None,
            },
            Some(InitCall::Script { name, source }) => Prepared {
                call: Ready::Script {
                    name,
                    source,
                    func: self.init_contract()?,
                },
                export: Some(InitExport {
                    function: member_name(INIT_INTERFACE, INIT_FUNCTION),
                    removes: Removes::Export(INIT_INTERFACE.to_string()),
                }),
            },
            Some(InitCall::Func(call)) => {
                let call = ExportCall::parse(self.store.engine(), &self.component, call)?;
                let export = call.init_export();
                Prepared {
                    call: Ready::Func(call),
                    export: Some(export),
                }
            }
        })
    }

    /// Makes the `prepared` call.
    pub fn call(&mut self, prepared: &Prepared<'_>) -> Result<Called> {
        let t = Instant::now();
        let mut results = Vec::new();
        let outcome = match &prepared.call {
            Ready::Nothing => Ok(()),
            Ready::Script { name, source, func } => self.call_script(name, source, func),
            Ready::Func(call) => self.call_func(call).map(|r| results = r),
        };
        // A refused request is the cause of whatever failed after it, and
        // fails init even when the guest carried on without the response.
        let refused = self.store.data().refused_requests().join(", ");
        if !refused.is_empty() {
            let _ = self.hook(Hook::Fflush);
            return Err(self.fail(
                Failure::NetworkRefused,
                format!(
                    "init made outgoing HTTP requests, which the init sandbox refuses (it has no \
                     network): {refused}; make them at runtime instead, or pass --allow-http to let init \
                     use the network"
                ),
            ));
        }
        outcome?;
        Ok(Called {
            results,
            time: t.elapsed(),
        })
    }

    /// The init contract's function.
    fn init_contract(&self) -> Result<ComponentExportIndex> {
        let iface = self
            .component
            .get_export_index(None, INIT_INTERFACE)
            .ok_or_else(|| {
                anyhow!(
                    "the component does not export `{INIT_INTERFACE}`: generate its bindings from \
                     the world that componentize_contract::add_init_export returns"
                )
            })?;
        self.component
            .get_export_index(Some(&iface), INIT_FUNCTION)
            .ok_or_else(|| anyhow!("`{INIT_INTERFACE}` has no function `{INIT_FUNCTION}`"))
    }

    /// Runs the script through the interpreter's init contract `func`.
    fn call_script(
        &mut self,
        name: &str,
        source: &[u8],
        func: &ComponentExportIndex,
    ) -> Result<()> {
        let func = self
            .instance
            .get_typed_func::<(&str, &[u8]), (Result<(), String>,)>(&mut self.store, func)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "`{INIT_INTERFACE}.{INIT_FUNCTION}` does not have the type `func(name: \
                     string, source: list<u8>) -> result<_, string>`"
                )
            })?;
        match call_typed(&mut self.store, func, (name, source)) {
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
    fn call_func(&mut self, call: &ExportCall) -> Result<Vec<String>> {
        let function = call.function();
        let func = call.func(&mut self.store, &self.instance)?;
        let mut results = call.results();
        let outcome = if func.ty(&self.store).async_() || self.store.data().concurrent {
            // An `async func` runs on wasmtime's event loop until its task
            // ends; with nothing in the sandbox to wait for, a task still
            // waiting when the loop goes idle is a trap. (A plain executor,
            // as in `call_typed`.)
            futures::executor::block_on(func.call_async(
                &mut self.store,
                call.params(),
                &mut results,
            ))
        } else {
            func.call(&mut self.store, call.params(), &mut results)
        };
        if let Err(e) = outcome {
            return Err(self.guest_error(&format!("the init function `{function}`"), e));
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
                .and_then(|f| call_typed(store, f, (0,)).map(|_| ())),
            Hook::ResetPreopens | Hook::DeinitEnviron => instance
                .get_typed_func::<(), ()>(&mut *store, &index)
                .and_then(|f| call_typed(store, f, ())),
        };
        Ok(Some(result))
    }
}

/// A call of an exported function, parsed and checked against a component
/// before it runs: `--init-func` of init and `componentize run --invoke`.
///
/// The call is a name (`f`, `iface.f`, `pkg:ns/iface.f@1.0.0`) of a function
/// without parameters, or a WAVE call with arguments
/// (`pkg:ns/iface.f("x", 3)`). Messages name the function, never the
/// arguments (they may hold secrets).
#[derive(Clone, Debug)]
pub struct ExportCall {
    /// The function as the component names it.
    function: String,
    /// The function's name inside its instance (`f` of `iface.f`).
    name: String,
    /// The top-level instance exporting the function, as the component
    /// names it, and how many items it exports; `None` for a top-level
    /// function.
    instance: Option<(String, usize)>,
    func: ComponentExportIndex,
    params: Vec<Val>,
    results: usize,
}

impl ExportCall {
    /// Parses `call` and finds its function among the exports of
    /// `component`, typing the arguments with the function's parameters.
    ///
    /// Errors name what is wrong: a name that does not parse, WAVE that does
    /// not parse, a function the component does not export, arguments that
    /// do not fit the parameters (listing them), a missing argument list for
    /// a function that takes parameters.
    pub fn parse(
        engine: &wasmtime::Engine,
        component: &Component,
        call: &str,
    ) -> Result<ExportCall> {
        // A name cannot contain `(`: what precedes the first one is the name.
        let spelled = call.split('(').next().unwrap_or_default().trim();
        let item = spelled
            .parse::<ItemName>()
            .map_err(|e| anyhow!("cannot parse `{spelled}` as a function name: {e}"))?;
        let parsed = if call.contains('(') {
            Some(UntypedFuncCall::parse(call).map_err(|e| {
                anyhow!(
                    "cannot parse the arguments of `{spelled}` as a WAVE call: {}",
                    wave_error(&e)
                )
            })?)
        } else {
            None
        };
        let (ty, func) = component
            .get_export(None, &item)
            .ok_or_else(|| anyhow!("the component does not export the function `{spelled}`"))?;
        let (function, instance) = export_names(engine, component, &item, func)?;
        let ComponentItem::ComponentFunc(ty) = ty else {
            bail!("the component's export `{function}` is not a function");
        };
        let params = match parsed {
            Some(parsed) => {
                let types: Vec<_> = WasmFunc::params(&ty).collect();
                parsed.to_wasm_params::<Val>(&types).map_err(|e| {
                    anyhow!(
                        "the arguments of `{function}` do not fit its parameters `({})`: {}",
                        parameters(&ty),
                        wave_error(&e)
                    )
                })?
            }
            None => no_params(&ty, &function, spelled)?,
        };
        Ok(ExportCall {
            function,
            name: item.name,
            instance,
            func,
            params,
            results: ty.results().len(),
        })
    }

    /// The function as the component names it, spelled like the call
    /// (`f`, `pkg:ns/iface.f@1.0.0`), for messages.
    pub fn function(&self) -> &str {
        &self.function
    }

    /// The function in `instance` (an instance of the component the call
    /// was parsed against).
    pub fn func(&self, store: impl AsContextMut, instance: &Instance) -> Result<Func> {
        instance.get_func(store, self.func).ok_or_else(|| {
            anyhow!(
                "the component's export `{}` is not a function",
                self.function
            )
        })
    }

    /// The arguments, typed for the function's parameters.
    pub fn params(&self) -> &[Val] {
        &self.params
    }

    /// Room for the function's results, to pass to [`Func::call`].
    pub fn results(&self) -> Vec<Val> {
        vec![Val::Bool(false); self.results]
    }

    /// What removing the function from the component takes out: the
    /// function itself, its instance when the function is all the instance
    /// exports, else the function from its instance.
    pub(crate) fn init_export(&self) -> InitExport {
        let removes = match &self.instance {
            None => Removes::Export(self.function.clone()),
            Some((instance, 1)) => Removes::Export(instance.clone()),
            Some((instance, _)) => Removes::Member {
                instance: instance.clone(),
                func: self.name.clone(),
            },
        };
        InitExport {
            function: self.function.clone(),
            removes,
        }
    }
}

/// The parameters of `ty` as WIT writes them: `name: string, n: u32`.
fn parameters(ty: &ComponentFunc) -> String {
    let params: Vec<String> = ty
        .params()
        .map(|(name, ty)| format!("{name}: {}", DisplayType(&ty)))
        .collect();
    params.join(", ")
}

/// A WAVE error without its position, which is an offset into the call
/// text that the message does not show, and without what the call spelled:
/// WAVE repeats an unknown case, field or flag, a duplicate field and a
/// value of the wrong type, and arguments may hold secrets.
fn wave_error(e: &wasm_wave::parser::ParserError) -> String {
    let kind = e.kind();
    let source = std::error::Error::source(e);
    match source.and_then(|s| s.downcast_ref::<WasmValueError>()) {
        Some(WasmValueError::UnknownCase(_)) => format!("{kind}: a case its type does not have"),
        Some(WasmValueError::UnknownField(_)) => {
            format!("{kind}: a field its type does not have")
        }
        Some(WasmValueError::WrongValueType { ty, .. }) => format!("{kind}: expected {ty}"),
        Some(WasmValueError::Other(_)) => kind.to_string(),
        // The others name types, cases of the type, and counts.
        Some(other) => format!("{kind}: {other}"),
        None => match (e.detail(), source) {
            (Some(_), _) if kind == ParserErrorKind::DuplicateField => kind.to_string(),
            (Some(detail), _) => format!("{kind}: {detail}"),
            (None, Some(source)) => format!("{kind}: {source}"),
            (None, None) => kind.to_string(),
        },
    }
}

/// The arguments of a call given without any: none, if `ty` takes none.
/// The hint spells the function as the user did.
fn no_params(ty: &ComponentFunc, function: &str, spelled: &str) -> Result<Vec<Val>> {
    let n = ty.params().len();
    if n != 0 {
        bail!(
            "`{function}` takes {n} parameter(s) `({})`: give them as a WAVE call, e.g. \
             `{spelled}(...)`",
            parameters(ty)
        );
    }
    Ok(Vec::new())
}

/// The names of the function `item`, which the component exports as `func`:
/// the function as the component spells it (wasmtime also finds
/// `pkg:ns/iface@1.0.1` for an export `pkg:ns/iface@1.0.0`) and, for a
/// function of an instance, the instance's top-level name and how many items
/// it exports.
fn export_names(
    engine: &wasmtime::Engine,
    component: &Component,
    item: &ItemName,
    func: ComponentExportIndex,
) -> Result<(String, Option<(String, usize)>)> {
    let Some(spelled) = item.instance_name() else {
        let name = top_level_name(engine, component, func).unwrap_or_else(|| item.name.clone());
        return Ok((name, None));
    };
    let found = component.get_export(None, spelled.as_str());
    let Some((ComponentItem::ComponentInstance(ty), index)) = found else {
        bail!("the component does not export the instance `{spelled}`");
    };
    let instance = top_level_name(engine, component, index).unwrap_or(spelled);
    let function = member_name(&instance, &item.name);
    let members = ty.exports(engine).len();
    Ok((function, Some((instance, members))))
}

/// Function `func` of the instance `instance` as `--init-func` spells it:
/// `iface.f`, `pkg:ns/iface.f`, `pkg:ns/iface.f@1.0.0`.
fn member_name(instance: &str, func: &str) -> String {
    match instance.rsplit_once('@') {
        Some((interface, version)) => format!("{interface}.{func}@{version}"),
        None => format!("{instance}.{func}"),
    }
}

/// The name of the top-level export `index` of `component`.
fn top_level_name(
    engine: &wasmtime::Engine,
    component: &Component,
    index: ComponentExportIndex,
) -> Option<String> {
    component
        .component_type()
        .exports(engine)
        .map(|(name, _)| name)
        .find(|name| component.get_export_index(None, name) == Some(index))
        .map(str::to_string)
}
