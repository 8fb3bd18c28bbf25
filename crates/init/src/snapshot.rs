//! Taking the snapshot of a [`Session`] after the init call: stdio is
//! flushed, libc drops its host handles and the host checks that none is
//! left (a snapshot cannot hold one), then every mutable global and memory
//! is read into a [`ModuleState`] and the dead part of the shadow stack is
//! zeroed.

use crate::instrument::{Accessor, Hook};
use crate::parse::{ComponentInfo, ModuleInfo};
use crate::report::Failure;
use crate::run::Session;
use crate::segments;
use anyhow::{Result, anyhow, bail};
use std::ops::Range;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::filesystem::Descriptor;

/// A measured global value (floats as bits, so NaN payloads survive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GlobalValue {
    I32(i32),
    I64(i64),
    F32(u32),
    F64(u64),
}

/// A measured memory.
#[derive(Debug, Clone)]
pub(crate) struct MemoryState {
    /// Index in the module's memory index space.
    pub index: u32,
    /// Size in pages of the memory's page size.
    pub pages: u64,
    /// The memory's bytes.
    pub image: Vec<u8>,
    /// Byte ranges of `image` that become active segments.
    pub segments: Vec<Range<usize>>,
}

/// The measured state of one module instance.
#[derive(Debug, Clone, Default)]
pub(crate) struct ModuleState {
    /// Mutable globals the module defines, by index.
    pub globals: Vec<(u32, GlobalValue)>,
    /// Memories the module defines.
    pub memories: Vec<MemoryState>,
}

/// Releases the host handles of `session` (failing if any is left) and
/// measures every instantiated module of `info`, in module order.
pub(crate) fn snapshot(
    session: &mut Session<'_>,
    info: &ComponentInfo,
    preopens: usize,
) -> Result<Vec<ModuleState>> {
    release_handles(session, preopens)?;
    let mut states = measure(session, info)?;
    for (module, state) in info.modules.iter().zip(states.iter_mut()) {
        zero_dead_stack(module, state);
    }
    Ok(states)
}

/// Flushes stdio, makes sure nothing but stdio and the `preopens` is open,
/// lets libc drop those, and checks that no host handle is left.
fn release_handles(session: &mut Session<'_>, preopens: usize) -> Result<()> {
    if let Some(Err(e)) = session.hook(Hook::Fflush)? {
        return Err(session.guest_error("flushing stdio after init (fflush)", e));
    }
    let files = open_files(session.resources(), preopens);
    if !files.is_empty() {
        return Err(session.fail(
            Failure::LiveHandle,
            format!(
                "init left {} open; a snapshot cannot hold host handles (its copy of the handle \
                 would be invalid at runtime): close them before init returns",
                files.join(" and ")
            ),
        ));
    }
    for hook in [Hook::ResetPreopens, Hook::DeinitEnviron] {
        if let Some(Err(e)) = session.hook(hook)? {
            let what = format!("resetting libc after init ({})", hook.symbol());
            return Err(session.guest_error(&what, e));
        }
    }
    let live = live_resources(session.resources());
    if !live.is_empty() {
        let why = if session.has_hook(Hook::ResetPreopens) {
            "they are still held after libc's reset"
        } else {
            "the component has no wasi-libc `__wasilibc_reset_preopens` that could drop them"
        };
        return Err(session.fail(
            Failure::LiveHandle,
            format!(
                "init left live host handles, which a snapshot cannot hold ({why}): {}",
                live.join(", ")
            ),
        ));
    }
    let left = session.async_state_left();
    if left > 0 {
        let named: Vec<String> = session
            .async_handles_made()?
            .into_iter()
            .map(|(kind, count)| kind.describe(count))
            .collect();
        let what = if named.is_empty() {
            // Made by lifting, which passes no built-in the census wraps.
            format!(
                "{left} entries of component-model async state (future or stream ends, \
                 waitable sets, subtasks or error contexts that reached it in a call, so of \
                 unknown kind)"
            )
        } else {
            format!("component-model async handles: {}", named.join(", "))
        };
        return Err(session.fail(
            Failure::LiveHandle,
            format!(
                "init left {what} open, which a snapshot cannot hold: they live in the runtime, \
                 not in linear memory; drop them before init returns"
            ),
        ));
    }
    Ok(())
}

/// Open files and non-preopened directories: what resetting libc would
/// silently close.
fn open_files(table: &mut ResourceTable, preopens: usize) -> Vec<String> {
    let mut files = 0usize;
    let mut dirs = 0usize;
    for entry in table.iter_mut() {
        match entry.downcast_ref::<Descriptor>() {
            Some(Descriptor::File(_)) => files += 1,
            Some(Descriptor::Dir(_)) => dirs += 1,
            None => {}
        }
    }
    let mut out = Vec::new();
    if files > 0 {
        out.push(format!(
            "{files} open file(s) (wasi:filesystem/types.descriptor)"
        ));
    }
    if dirs > preopens {
        out.push(format!(
            "{} open directory handle(s) besides the preopens (wasi:filesystem/types.descriptor)",
            dirs - preopens
        ));
    }
    out
}

/// Live entries of the host's resource table, named where possible.
fn live_resources(table: &mut ResourceTable) -> Vec<String> {
    if table.is_empty() {
        return Vec::new();
    }
    let mut named: Vec<String> = Vec::new();
    let mut unknown = 0usize;
    for entry in table.iter_mut() {
        match resource_name(entry) {
            Some(n) => named.push(n.to_string()),
            None => unknown += 1,
        }
    }
    if named.is_empty() {
        named.push(format!(
            "{unknown} host resource(s) of a type init does not know"
        ));
    }
    named
}

/// The name of a live host resource, if this crate knows its type.
fn resource_name(entry: &(dyn std::any::Any + Send)) -> Option<&'static str> {
    use wasmtime_wasi::p2;
    Some(if let Some(d) = entry.downcast_ref::<Descriptor>() {
        match d {
            Descriptor::File(_) => "an open file (wasi:filesystem/types.descriptor)",
            Descriptor::Dir(_) => "an open directory (wasi:filesystem/types.descriptor)",
        }
    } else if entry.is::<p2::DynOutputStream>() {
        "an output stream (wasi:io/streams.output-stream; stdout, stderr or a file)"
    } else if entry.is::<p2::DynInputStream>() {
        "an input stream (wasi:io/streams.input-stream; stdin or a file)"
    } else if entry.is::<p2::DynPollable>() {
        "a pollable (wasi:io/poll.pollable)"
    } else if entry.is::<p2::ReaddirIterator>() {
        "a directory listing (wasi:filesystem/types.directory-entry-stream)"
    } else if entry.is::<p2::TcpSocket>() {
        "a TCP socket (wasi:sockets/tcp.tcp-socket)"
    } else if entry.is::<p2::UdpSocket>() {
        "a UDP socket (wasi:sockets/udp.udp-socket)"
    } else if entry.is::<p2::Network>() {
        "a network handle (wasi:sockets/network.network)"
    } else if entry.is::<p2::IoError>() {
        "an I/O error (wasi:io/error.error)"
    } else {
        return None;
    })
}

/// Reads every global and memory through the session's accessors.
fn measure(session: &mut Session<'_>, info: &ComponentInfo) -> Result<Vec<ModuleState>> {
    let mut states = vec![ModuleState::default(); info.modules.len()];
    let accessors = session.accessors().to_vec();
    for (i, accessor) in accessors.into_iter().enumerate() {
        match accessor {
            Accessor::Global { module, global, ty } => {
                let value = read_global(session, i, ty)?;
                states[module as usize].globals.push((global, value));
            }
            // `MemoryTail` and `Memory` follow at `i + 1` and `i + 2`.
            Accessor::MemorySize { module, memory } => {
                let state = read_memory(session, i, &info.modules[module as usize], memory)?;
                states[module as usize].memories.push(state);
            }
            Accessor::MemoryTail
            | Accessor::Memory
            | Accessor::Hook { .. }
            | Accessor::Census { .. } => {}
        }
    }
    Ok(states)
}

/// Reads the global of type `ty` behind accessor `i`.
fn read_global(
    session: &mut Session<'_>,
    i: usize,
    ty: wasmparser::ValType,
) -> Result<GlobalValue> {
    // Floats come as their bits: the accessor reinterprets them.
    Ok(match ty {
        wasmparser::ValType::I32 => GlobalValue::I32(session.read::<i32>(i)?),
        wasmparser::ValType::I64 => GlobalValue::I64(session.read::<i64>(i)?),
        wasmparser::ValType::F32 => GlobalValue::F32(session.read::<i32>(i)? as u32),
        _ => GlobalValue::F64(session.read::<i64>(i)? as u64),
    })
}

/// Reads `memory` of `module` through the accessors `size` (its size in
/// bytes), `size + 1` (the 8 bytes the list accessor overwrites with its
/// return area) and `size + 2` (the memory as a list).
fn read_memory(
    session: &mut Session<'_>,
    size: usize,
    module: &ModuleInfo,
    memory: u32,
) -> Result<MemoryState> {
    let ty = module
        .memories
        .iter()
        .find(|x| x.index == memory)
        .map(|x| x.ty)
        .ok_or_else(|| anyhow!("internal error: unknown memory"))?;
    let log2 = ty.page_size_log2.unwrap_or(16);
    let bytes = session.read::<i64>(size)? as u64;
    let image = if bytes == 0 {
        Vec::new()
    } else {
        if bytes < 8 {
            bail!(
                "cannot read memory {memory} of {}: it is only {bytes} bytes",
                module.label
            );
        }
        if bytes > u64::from(u32::MAX) {
            bail!(
                "cannot read memory {memory} of {}: it is 4 GiB or larger",
                module.label
            );
        }
        let tail = session.read::<i64>(size + 1)?;
        let mut image = session.read_bytes(size + 2)?;
        // The list accessor's return area is the last aligned 8 bytes.
        let ret = ((bytes - 8) & !3) as usize;
        image
            .get_mut(ret..ret + 8)
            .ok_or_else(|| anyhow!("internal error: short memory read"))?
            .copy_from_slice(&tail.to_le_bytes());
        image
    };
    let segments = segments::segments(&image);
    Ok(MemoryState {
        index: memory,
        pages: bytes >> log2,
        image,
        segments,
    })
}

/// Zeroes the part of the shadow stack below the stack pointer, which holds
/// only dead frames of init (garbage that would otherwise be stored in the
/// snapshot), then recomputes the memory's segments.
///
/// Applies to a module laid out by wasm-ld/wit-component's linker: it
/// defines memory 0 and exports the globals `__stack_pointer`,
/// `__stack_low` and `__stack_high`; the stack grows down from
/// `__stack_high`. When init returns no frame is live, and whatever lies in
/// `[__stack_low, __stack_pointer)` is dead by the C ABI (wasm32 has no red
/// zone).
fn zero_dead_stack(module: &ModuleInfo, state: &mut ModuleState) {
    // The value of an exported i32 global: measured if mutable, else its
    // constant initializer.
    let value = |name: &str| {
        let index = module.exported_global(name)?;
        let g = module.globals.iter().find(|g| g.index == index)?;
        if !g.ty.mutable {
            return g.init_i32.map(|v| v as u32 as usize);
        }
        state.globals.iter().find_map(|(i, v)| match v {
            GlobalValue::I32(v) if *i == index => Some(*v as u32 as usize),
            _ => None,
        })
    };
    let (Some(low), Some(high), Some(sp)) = (
        value("__stack_low"),
        value("__stack_high"),
        value("__stack_pointer"),
    ) else {
        return;
    };
    let Some(memory) = state.memories.iter_mut().find(|m| m.index == 0) else {
        return;
    };
    if low <= sp && sp <= high && sp <= memory.image.len() {
        memory.image[low..sp].fill(0);
        memory.segments = segments::segments(&memory.image);
    }
}
