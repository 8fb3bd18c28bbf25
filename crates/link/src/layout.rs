//! The layout wit-component's linker makes of the libraries' `dylink.0`
//! mem-info: the stack, then each library's memory area (and, in the
//! table, each library's table area), aligned as it asks, in link order.
//! The linker adds these up in `u32` without checks and writes some of
//! them as `i32.const`s, so a damaged or absurd mem-info (an alignment of
//! 2^40, sizes past 4 GiB, a table area past 2^31 slots) or stack size
//! would overflow: a panic in a debug build, a wrong layout in a release
//! one. [`check`] refuses them first, naming the library.

use crate::abi::DEFAULT_STACK_SIZE;
use crate::dylib::Dylib;
use anyhow::{Result, bail};

/// Room left for what the linker places after the libraries' areas
/// (thread-local and dl-openable tables, heap alignment, rounding to a
/// page): far more than it needs.
const LINKER_ROOM: u64 = 16 << 20;

/// The most the libraries' memory areas may reach in the 32-bit memory.
const MEMORY_LIMIT: u64 = (1 << 32) - LINKER_ROOM;

/// The largest stack: the linker places the main thread's thread-local
/// area right after it and addresses it with an `i32.const`.
const STACK_LIMIT: u64 = (1 << 31) - LINKER_ROOM;

/// The most the libraries' table areas may reach: the linker addresses
/// table slots with `i32.const`s.
const TABLE_LIMIT: u64 = (1 << 31) - LINKER_ROOM;

/// Checks that the areas of `libs` (in link order) after a stack of
/// `stack_size` bytes (wit-component's default if `None`) fit in a 32-bit
/// memory and table.
pub fn check(libs: &[&Dylib], stack_size: Option<u32>) -> Result<()> {
    let stack = u64::from(stack_size.unwrap_or(DEFAULT_STACK_SIZE));
    if stack > STACK_LIMIT {
        bail!("a stack of {stack} bytes is too large: at most {STACK_LIMIT} bytes fit");
    }
    let mut memory = stack;
    // Table slot 0 stays null.
    let mut table = 1u64;
    for lib in libs {
        let m = lib.mem_info;
        for (area, alignment) in [("memory", m.memory_alignment), ("table", m.table_alignment)] {
            if alignment >= 32 {
                bail!(
                    "library `{}`: its `{}` mem-info asks for a {area} alignment of 2^{alignment}, \
                     more than a 32-bit {area} has; the section is damaged (rebuild the library)",
                    lib.name,
                    crate::abi::DYLINK_SECTION
                );
            }
        }
        memory = align(memory, m.memory_alignment) + u64::from(m.memory_size);
        table = align(table, m.table_alignment) + u64::from(m.table_size);
        if memory > MEMORY_LIMIT {
            bail!(
                "the libraries do not fit in a 32-bit memory: after the {stack}-byte stack, they \
                 need {memory} bytes up to library `{}`, which reserves {} bytes (its `{}` \
                 mem-info); at most {MEMORY_LIMIT} fit (a smaller --stack-size, or fewer libraries)",
                lib.name,
                m.memory_size,
                crate::abi::DYLINK_SECTION
            );
        }
        if table > TABLE_LIMIT {
            bail!(
                "the libraries do not fit in a 32-bit table: they need {table} slots up to \
                 library `{}`, which reserves {} (its `{}` mem-info); at most {TABLE_LIMIT} fit",
                lib.name,
                m.table_size,
                crate::abi::DYLINK_SECTION
            );
        }
    }
    Ok(())
}

/// `offset` rounded up to a multiple of `2^alignment` (`alignment < 32`).
fn align(offset: u64, alignment: u32) -> u64 {
    let step = 1u64 << alignment;
    offset.div_ceil(step) * step
}
