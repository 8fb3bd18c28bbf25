//! The names the dynamic-linking convention (`dylink.0`, `env`, `GOT.*`)
//! and wit-component 0.263's linker give meaning to, in one place.

/// Name of the preview1 adapter's module namespace.
pub const WASI_PREVIEW1: &str =
    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME;

/// The reactor flavour of the preview1 adapter this crate bundles.
pub(crate) const WASI_PREVIEW1_REACTOR: &[u8] =
    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER;

/// The shadow stack's size when none is given: wit-component 0.263's
/// `DEFAULT_STACK_SIZE_BYTES` (16 pages).
pub(crate) const DEFAULT_STACK_SIZE: u32 = 16 * 65536;

/// Name of wit-component's built-in libdl, used with dl-openable libraries.
pub const BUILT_IN_LIBDL: &str = "libdl.so";

/// The library the built-in libdl needs (for `strlen` and `memcmp`).
pub(crate) const LIBC: &str = "libc.so";

/// Name wit-component gives its library of trapping stubs.
pub(crate) const STUBS_LIBRARY: &str = "wit-component:stubs";

/// Name of the library of trapping stubs for the intrinsics an interpreter
/// lacks (`trap_stubs`).
pub(crate) const INTRINSIC_STUBS_LIBRARY: &str = "componentize:missing-intrinsics";

/// Name of the library the link stage makes to give interpreters the
/// task built-ins of async exports (`task_context`).
pub(crate) const TASK_CONTEXT_LIBRARY: &str = "componentize-task-context.so";

/// The module of most component-model built-ins, as wit-component names it.
const ROOT_BUILTINS: &str = componentize_generate::ROOT;

/// The module of the built-ins that act on the running export's task
/// (`task.cancel`), as wit-component names it.
const EXPORT_ROOT_BUILTINS: &str = componentize_generate::EXPORT_ROOT;

/// A task built-in an interpreter imports, weakly, from `env` (declared in
/// componentize.h): the component-model built-in it calls, where
/// wit-component has that built-in, and its numbers of `i32` parameters and
/// results.
pub(crate) struct TaskBuiltin {
    pub name: &'static str,
    pub module: &'static str,
    pub builtin: &'static str,
    pub params: usize,
    pub results: usize,
}

const fn task_builtin(
    name: &'static str,
    module: &'static str,
    builtin: &'static str,
    params: usize,
    results: usize,
) -> TaskBuiltin {
    TaskBuiltin {
        name,
        module,
        builtin,
        params,
        results,
    }
}

/// Every task built-in the task-context library defines.
pub(crate) const TASK_BUILTINS: [TaskBuiltin; 8] = [
    task_builtin(
        "componentize_task_context_get",
        ROOT_BUILTINS,
        componentize_generate::CONTEXT_GET_0,
        0,
        1,
    ),
    task_builtin(
        "componentize_task_context_set",
        ROOT_BUILTINS,
        componentize_generate::CONTEXT_SET_0,
        1,
        0,
    ),
    task_builtin(
        "componentize_waitable_set_new",
        ROOT_BUILTINS,
        "[waitable-set-new]",
        0,
        1,
    ),
    task_builtin(
        "componentize_waitable_set_drop",
        ROOT_BUILTINS,
        "[waitable-set-drop]",
        1,
        0,
    ),
    task_builtin(
        "componentize_waitable_join",
        ROOT_BUILTINS,
        "[waitable-join]",
        2,
        0,
    ),
    task_builtin(
        "componentize_subtask_drop",
        ROOT_BUILTINS,
        "[subtask-drop]",
        1,
        0,
    ),
    // Synchronous: it returns once the subtask has returned or cancelled.
    task_builtin(
        "componentize_subtask_cancel",
        ROOT_BUILTINS,
        "[subtask-cancel]",
        1,
        1,
    ),
    task_builtin(
        "componentize_task_cancel",
        EXPORT_ROOT_BUILTINS,
        "[task-cancel]",
        0,
        0,
    ),
];

/// The custom section holding a dynamic library's linking metadata.
pub(crate) const DYLINK_SECTION: &str = "dylink.0";

/// Prefix of the custom sections that embed a WIT world.
pub(crate) const COMPONENT_TYPE_SECTION: &str = "component-type";

/// The namespace of imported functions, tags and linker-provided items.
pub(crate) const ENV: &str = "env";

/// The namespace of imported data addresses.
pub(crate) const GOT_MEM: &str = "GOT.mem";

/// The namespace of imported function addresses.
pub(crate) const GOT_FUNC: &str = "GOT.func";

/// Prefix of the core export that frees a WIT export's results.
pub(crate) const CABI_POST: &str = "cabi_post_";

/// Imports the linker itself satisfies from the `env` namespace.
pub(crate) const ENV_PROVIDED: &[&str] = &[
    "memory",
    "__indirect_function_table",
    "__memory_base",
    "__table_base",
    "__stack_pointer",
    "__init_stack_pointer",
    "__asyncify_data",
    "__asyncify_state",
    "__wasm_get_stack_pointer",
    "__wasm_set_stack_pointer",
    "__wasm_get_tls_base",
    "__wasm_set_tls_base",
];

/// Data addresses (`GOT.mem`) the linker itself provides.
pub(crate) const GOT_MEM_PROVIDED: &[&str] = &[
    "__heap_base",
    "__heap_end",
    "__stack_high",
    "__stack_low",
    "__wasm_libdl_libraries",
    "__wasm_program_tls_info",
];

/// Exports the linker calls per library; they are not symbols other
/// libraries can import, so several libraries may have them.
pub(crate) const LINKER_CALLED: &[&str] = &[
    "__wasm_apply_data_relocs",
    "__wasm_call_ctors",
    "_initialize",
    "__wasm_library_tls_info",
];

/// The program entry point; at most one library may export it.
pub(crate) const START: &str = "_start";
