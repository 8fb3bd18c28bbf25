//! The reference implementation: wit-dylib 0.263's bindings for a world.

use anyhow::Result;
use wit_parser::{Resolve, WorldId};

/// wit-dylib's bindings for `world`, recording `interpreter` as `needed`,
/// with the world's component-type section embedded like ours (wit-dylib
/// leaves it out; the linker needs it).
pub fn wit_dylib_bindings(resolve: &Resolve, world: WorldId, interpreter: &str) -> Result<Vec<u8>> {
    let mut opts = wit_dylib::DylibOpts {
        interpreter: Some(interpreter.into()),
        ..Default::default()
    };
    let mut wasm = wit_dylib::create(resolve, world, Some(&mut opts))?;
    wit_component::embed_component_metadata(
        &mut wasm,
        resolve,
        world,
        wit_component::StringEncoding::UTF8,
        false,
    )?;
    Ok(wasm)
}
