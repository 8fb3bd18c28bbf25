//! The binary interface the generated module speaks, named once: the
//! interpreter's intrinsics (names and core signatures, in import order), the
//! dynamic-linking symbols and `dylink.0` encoding constants, the name
//! mangling, and the mapping of canonical-ABI flat types to wasm types.

use wasm_encoder::ValType;
use wit_parser::abi::{FlatTypes, WasmType};
use wit_parser::{LiftLowerAbi, ManglingAndAbi, Resolve, Type};

/// The import module of everything the dynamic linker provides: the
/// interpreter's intrinsics, memory, table and the base globals.
pub const ENV: &str = "env";
/// The shared linear memory, imported from [`ENV`].
pub const MEMORY: &str = "memory";
/// The shared function table, imported from [`ENV`].
pub const INDIRECT_FUNCTION_TABLE: &str = "__indirect_function_table";
/// Where this module's table slots start, imported from [`ENV`].
pub const TABLE_BASE: &str = "__table_base";
/// Where this module's data starts, imported from [`ENV`].
pub const MEMORY_BASE: &str = "__memory_base";
/// The shadow stack pointer, imported from [`ENV`].
pub const STACK_POINTER: &str = "__stack_pointer";
/// The export the dynamic linker calls to rebase pointers in the data.
pub const APPLY_DATA_RELOCS: &str = "__wasm_apply_data_relocs";
/// The export the dynamic linker calls once relocations are applied.
pub const CALL_CTORS: &str = "__wasm_call_ctors";

/// The module name the bindings give themselves in their name section, as
/// wasm-ld names a shared library after its soname: backtraces then read
/// `bindings.so!f` rather than `<unknown>!f`.
pub const BINDINGS_MODULE_NAME: &str = "bindings.so";

/// The custom section of the dynamic-linking convention.
pub const DYLINK_SECTION: &str = "dylink.0";
/// `WASM_DYLINK_MEM_INFO`: memory and table needs.
pub const DYLINK_MEM_INFO: u8 = 1;
/// `WASM_DYLINK_NEEDED`: libraries to load first.
pub const DYLINK_NEEDED: u8 = 2;
/// Data alignment recorded in mem-info, as a power of two: the export
/// return area holds 8-byte values.
pub const DYLINK_MEMORY_ALIGN_LOG2: u32 = 3;

/// The name mangling and ABI of resource intrinsics and synchronous
/// functions (the legacy one, as wit-dylib 0.263 uses; it yields the
/// `cabi_post_*` names of post-return functions).
pub const RESOURCE_MANGLING: ManglingAndAbi = ManglingAndAbi::Legacy(LiftLowerAbi::Sync);

/// The name mangling and ABI of a function: asynchronous functions use the
/// callback ABI (`[async-lower]`, `[async-lift]`, `[callback]`).
pub fn mangling(is_async: bool) -> ManglingAndAbi {
    match is_async {
        true => ManglingAndAbi::Legacy(LiftLowerAbi::AsyncCallback),
        false => RESOURCE_MANGLING,
    }
}

/// The import module of component-level built-ins not tied to an
/// interface (`[context-get-0]`, ...).
pub const ROOT: &str = "$root";
/// `context.get` of slot 0, where a WASIp3 libc keeps the task's stack
/// pointer (`--stack-pointer task-context`).
pub const CONTEXT_GET_0: &str = "[context-get-0]";
/// `context.set` of slot 0.
pub const CONTEXT_SET_0: &str = "[context-set-0]";
/// The import-module prefix of an exported function's future and stream
/// built-ins.
pub const EXPORT_PREFIX: &str = "[export]";
/// The import module of the built-ins that act on the running export's
/// own task (`[task-cancel]`): [`EXPORT_PREFIX`] then [`ROOT`].
pub const EXPORT_ROOT: &str = "[export]$root";

/// A future or a stream: the two kinds of values that transmit items
/// between tasks, each type with its own canonical built-ins.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Transmit {
    Future,
    Stream,
}

/// A canonical built-in of a future or stream type.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum TransmitBuiltin {
    New,
    Read,
    Write,
    CancelRead,
    CancelWrite,
    DropReadable,
    DropWritable,
}

impl TransmitBuiltin {
    /// Every built-in, in the order the metadata (`wit_future_t`,
    /// `wit_stream_t`) points to them.
    pub const ALL: [TransmitBuiltin; 7] = [
        TransmitBuiltin::New,
        TransmitBuiltin::Read,
        TransmitBuiltin::Write,
        TransmitBuiltin::CancelRead,
        TransmitBuiltin::CancelWrite,
        TransmitBuiltin::DropReadable,
        TransmitBuiltin::DropWritable,
    ];

    fn as_str(self) -> &'static str {
        match self {
            TransmitBuiltin::New => "new",
            TransmitBuiltin::Read => "read",
            TransmitBuiltin::Write => "write",
            TransmitBuiltin::CancelRead => "cancel-read",
            TransmitBuiltin::CancelWrite => "cancel-write",
            TransmitBuiltin::DropReadable => "drop-readable",
            TransmitBuiltin::DropWritable => "drop-writable",
        }
    }
}

impl Transmit {
    /// `future` or `stream`, as in the built-ins' names.
    pub fn as_str(self) -> &'static str {
        match self {
            Transmit::Future => "future",
            Transmit::Stream => "stream",
        }
    }

    /// `builtin` for the type found at `ordinal` in `function`'s signature:
    /// its import name and core signature. Reads and writes are lowered
    /// asynchronously (they return a status instead of blocking); a
    /// stream's take an item count too.
    pub fn builtin(
        self,
        builtin: TransmitBuiltin,
        ordinal: usize,
        function: &str,
    ) -> (String, Vec<ValType>, Vec<ValType>) {
        use TransmitBuiltin as B;
        use ValType::{I32, I64};
        let transfer = match self {
            Transmit::Future => vec![I32, I32],
            Transmit::Stream => vec![I32, I32, I32],
        };
        let (prefix, params, results) = match builtin {
            B::New => ("", vec![], vec![I64]),
            B::Read | B::Write => ("[async-lower]", transfer, vec![I32]),
            B::CancelRead | B::CancelWrite => ("", vec![I32], vec![I32]),
            B::DropReadable | B::DropWritable => ("", vec![I32], vec![]),
        };
        let name = format!(
            "{prefix}[{}-{}-{ordinal}]{function}",
            self.as_str(),
            builtin.as_str()
        );
        (name, params, results)
    }
}

macro_rules! intrinsics {
    ($($variant:ident = $name:literal : [$($p:ident)*] -> [$($r:ident)*],)*) => {
        /// A function of the interpreter interface (`componentize.h`).
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum Intrinsic { $($variant,)* }

        impl Intrinsic {
            /// Every intrinsic, in the order the module imports them (the
            /// order and signatures of wit-dylib 0.263's `bindgen.rs`): all
            /// are imported, even the async and future/stream ones nothing
            /// calls yet, so interpreters link the same way.
            pub const ALL: &[Intrinsic] = &[$(Intrinsic::$variant,)*];

            /// The symbol, imported from [`ENV`].
            pub fn name(self) -> &'static str {
                match self { $(Intrinsic::$variant => $name,)* }
            }

            /// The core signature: parameters and results.
            pub fn signature(self) -> (&'static [ValType], &'static [ValType]) {
                match self {
                    $(Intrinsic::$variant => (&[$(ValType::$p),*], &[$(ValType::$r),*]),)*
                }
            }
        }
    };
}

intrinsics! {
    Initialize = "wit_dylib_initialize": [I32] -> [],
    CabiRealloc = "cabi_realloc": [I32 I32 I32 I32] -> [I32],
    DeallocBytes = "wit_dylib_dealloc_bytes": [I32 I32 I32 I32 I32] -> [],
    ExportStart = "wit_dylib_export_start": [I32] -> [I32],
    ExportCall = "wit_dylib_export_call": [I32 I32] -> [],
    ExportAsyncCall = "wit_dylib_export_async_call": [I32 I32] -> [I32],
    ExportAsyncCallback = "wit_dylib_export_async_callback": [I32 I32 I32 I32] -> [I32],
    ExportFinish = "wit_dylib_export_finish": [I32 I32] -> [],
    ResourceDtor = "wit_dylib_resource_dtor": [I32 I32] -> [],
    PopU8 = "wit_dylib_pop_u8": [I32] -> [I32],
    PopU16 = "wit_dylib_pop_u16": [I32] -> [I32],
    PopU32 = "wit_dylib_pop_u32": [I32] -> [I32],
    PopU64 = "wit_dylib_pop_u64": [I32] -> [I64],
    PopS8 = "wit_dylib_pop_s8": [I32] -> [I32],
    PopS16 = "wit_dylib_pop_s16": [I32] -> [I32],
    PopS32 = "wit_dylib_pop_s32": [I32] -> [I32],
    PopS64 = "wit_dylib_pop_s64": [I32] -> [I64],
    PopBool = "wit_dylib_pop_bool": [I32] -> [I32],
    PopChar = "wit_dylib_pop_char": [I32] -> [I32],
    PopF32 = "wit_dylib_pop_f32": [I32] -> [F32],
    PopF64 = "wit_dylib_pop_f64": [I32] -> [F64],
    PopFlags = "wit_dylib_pop_flags": [I32 I32] -> [I32],
    PopEnum = "wit_dylib_pop_enum": [I32 I32] -> [I32],
    PopBorrow = "wit_dylib_pop_borrow": [I32 I32] -> [I32],
    PopOwn = "wit_dylib_pop_own": [I32 I32] -> [I32],
    PopFuture = "wit_dylib_pop_future": [I32 I32] -> [I32],
    PopStream = "wit_dylib_pop_stream": [I32 I32] -> [I32],
    PopRecord = "wit_dylib_pop_record": [I32 I32] -> [],
    PopTuple = "wit_dylib_pop_tuple": [I32 I32] -> [],
    PopVariant = "wit_dylib_pop_variant": [I32 I32] -> [I32],
    PopOption = "wit_dylib_pop_option": [I32 I32] -> [I32],
    PopResult = "wit_dylib_pop_result": [I32 I32] -> [I32],
    PopString = "wit_dylib_pop_string": [I32 I32] -> [I32],
    PopList = "wit_dylib_pop_list": [I32 I32 I32] -> [I32],
    PopListIterNext = "wit_dylib_pop_list_iter_next": [I32 I32] -> [],
    PopListIter = "wit_dylib_pop_list_iter": [I32 I32] -> [],
    PopMap = "wit_dylib_pop_map": [I32 I32] -> [I32],
    PopMapIterNext = "wit_dylib_pop_map_iter_next": [I32 I32] -> [],
    PopMapIter = "wit_dylib_pop_map_iter": [I32 I32] -> [],
    PushBool = "wit_dylib_push_bool": [I32 I32] -> [],
    PushChar = "wit_dylib_push_char": [I32 I32] -> [],
    PushU8 = "wit_dylib_push_u8": [I32 I32] -> [],
    PushS8 = "wit_dylib_push_s8": [I32 I32] -> [],
    PushU16 = "wit_dylib_push_u16": [I32 I32] -> [],
    PushS16 = "wit_dylib_push_s16": [I32 I32] -> [],
    PushU32 = "wit_dylib_push_u32": [I32 I32] -> [],
    PushS32 = "wit_dylib_push_s32": [I32 I32] -> [],
    PushU64 = "wit_dylib_push_u64": [I32 I64] -> [],
    PushS64 = "wit_dylib_push_s64": [I32 I64] -> [],
    PushF32 = "wit_dylib_push_f32": [I32 F32] -> [],
    PushF64 = "wit_dylib_push_f64": [I32 F64] -> [],
    PushString = "wit_dylib_push_string": [I32 I32 I32] -> [],
    PushRecord = "wit_dylib_push_record": [I32 I32] -> [],
    PushTuple = "wit_dylib_push_tuple": [I32 I32] -> [],
    PushFlags = "wit_dylib_push_flags": [I32 I32 I32] -> [],
    PushEnum = "wit_dylib_push_enum": [I32 I32 I32] -> [],
    PushBorrow = "wit_dylib_push_borrow": [I32 I32 I32] -> [],
    PushOwn = "wit_dylib_push_own": [I32 I32 I32] -> [],
    PushFuture = "wit_dylib_push_future": [I32 I32 I32] -> [],
    PushStream = "wit_dylib_push_stream": [I32 I32 I32] -> [],
    PushVariant = "wit_dylib_push_variant": [I32 I32 I32] -> [],
    PushOption = "wit_dylib_push_option": [I32 I32 I32] -> [],
    PushResult = "wit_dylib_push_result": [I32 I32 I32] -> [],
    PushList = "wit_dylib_push_list": [I32 I32 I32 I32] -> [I32],
    ListAppend = "wit_dylib_list_append": [I32 I32] -> [],
    PushMap = "wit_dylib_push_map": [I32 I32 I32] -> [],
    MapAppend = "wit_dylib_map_append": [I32 I32] -> [],
}

/// The wasm type of a canonical-ABI flat type (wasm32: pointers and lengths
/// are `i32`).
pub fn val_type(t: WasmType) -> ValType {
    match t {
        WasmType::I32 | WasmType::Pointer | WasmType::Length => ValType::I32,
        WasmType::I64 | WasmType::PointerOrI64 => ValType::I64,
        WasmType::F32 => ValType::F32,
        WasmType::F64 => ValType::F64,
    }
}

/// The wasm types of a list of flat types.
pub fn val_types(types: &[WasmType]) -> Vec<ValType> {
    types.iter().copied().map(val_type).collect()
}

/// Flat types of `ty`; only called where the canonical ABI flattens, so
/// at most 16 values.
pub fn flat(resolve: &Resolve, ty: &Type) -> Vec<ValType> {
    let mut storage = [WasmType::I32; 17];
    let mut out = FlatTypes::new(&mut storage);
    resolve.push_flat(ty, &mut out);
    val_types(out.to_vec().as_slice())
}
