//! The init contract: how componentize's init stage hands a script to an
//! interpreter.
//!
//! The pipeline adds one export to the user's world before generating the
//! bindings ([`add_init_export`]); the init stage calls it once, with the
//! script, and removes it again from the snapshot, so the final component
//! exports exactly the user's world. The contract is the WIT in
//! [`INIT_WIT`]:
//!
//! ```wit
//! package componentize:init@0.1.0;
//!
//! interface init {
//!   init: func(name: string, source: list<u8>) -> result<_, string>;
//! }
//! ```
//!
//! Module folders (`--module-path`, and the script's own folder) reach the
//! interpreter during init as read-only preopens named in the environment
//! variable [`MODULE_PATH_ENV`]; see there.
//!
//! The crate also holds the other agreement between stages: the custom
//! section in which bindings name the exports they leave to other libraries
//! ([`excluded`]).
//!
//! This crate has no wasmtime dependency: interpreter crates, the generator,
//! the linker and the init stage all name the contracts through it.

#![warn(missing_docs)]

pub mod excluded;

use anyhow::{Context, Result, anyhow};
use wit_parser::{Resolve, WorldId, WorldItem, WorldKey};

/// The WIT of the contract (`wit/init.wit` in this crate).
pub const INIT_WIT: &str = include_str!("../wit/init.wit");

/// The environment variable that lists, during init only, the folders the
/// script's modules are loaded from: guest paths separated by `:`, in
/// search order, each a read-only preopen (`/componentize/modules/0`,
/// `/componentize/modules/1`, ...; see [`module_folder`]). An interpreter
/// puts them on its module search path before running the script (Lua:
/// `package.path`); nothing of them exists after init, so modules must be
/// loaded by then.
pub const MODULE_PATH_ENV: &str = "COMPONENTIZE_MODULE_PATH";

/// Where the `index`-th module folder is preopened during init.
pub fn module_folder(index: usize) -> String {
    format!("/componentize/modules/{index}")
}

/// The contract's package namespace (`componentize` in `componentize:init`).
pub const PACKAGE_NAMESPACE: &str = "componentize";

/// The contract's package name (`init` in `componentize:init`).
pub const PACKAGE_NAME: &str = "init";

/// The contract's interface name within its package.
pub const INTERFACE_NAME: &str = "init";

/// The interface of the contract, as a component exports it.
pub const INIT_INTERFACE: &str = "componentize:init/init@0.1.0";

/// The function of [`INIT_INTERFACE`] the init stage calls: `init(name,
/// source) -> result<_, string>`.
pub const INIT_FUNCTION: &str = "init";

/// Returns a world that exports everything `world` does plus
/// [`INIT_INTERFACE`] (last): generate the bindings from it, link, and run
/// the init stage with the script; the snapshot then exports exactly
/// `world`.
///
/// Adds the contract's package to `resolve` if it is not there yet. The new
/// world is named like `world` and belongs to a package of its own; a world
/// that already exports the contract is returned as it is.
pub fn add_init_export(resolve: &mut Resolve, world: WorldId) -> Result<WorldId> {
    let contract = match resolve
        .package_names
        .iter()
        .find(|(n, _)| n.namespace == PACKAGE_NAMESPACE && n.name == PACKAGE_NAME)
        .map(|(_, id)| *id)
    {
        Some(id) => id,
        None => resolve
            .push_str("componentize-init.wit", INIT_WIT)
            .context("adding the init contract's WIT")?,
    };
    let iface = *resolve.packages[contract]
        .interfaces
        .get(INTERFACE_NAME)
        .ok_or_else(|| {
            anyhow!(
                "package {PACKAGE_NAMESPACE}:{PACKAGE_NAME} has no interface `{INTERFACE_NAME}`"
            )
        })?;
    if resolve.worlds[world]
        .exports
        .contains_key(&WorldKey::Interface(iface))
    {
        return Ok(world);
    }
    let name = resolve.worlds[world].name.clone();
    // The world with the export lives in a package of its own, whose name
    // must not clash with one already in `resolve`.
    let mut suffix = String::new();
    let mut n = 1;
    while resolve
        .package_names
        .keys()
        .any(|p| p.namespace == PACKAGE_NAMESPACE && p.name == format!("init-world{suffix}"))
    {
        n += 1;
        suffix = format!("-n{n}");
    }
    let source = format!(
        "package {PACKAGE_NAMESPACE}:init-world{suffix};\n\nworld %{name} {{\n  export {INIT_INTERFACE};\n}}\n"
    );
    let pkg = resolve
        .push_str("componentize-init-world.wit", &source)
        .context("creating the world with the init export")?;
    let new = *resolve.packages[pkg]
        .worlds
        .values()
        .next()
        .ok_or_else(|| anyhow!("internal error: no world was created"))?;
    resolve
        .merge_worlds(world, new, &mut wit_parser::CloneMaps::default())
        .with_context(|| format!("adding `{INIT_INTERFACE}` to world `{name}`"))?;
    // The init export goes last, so the indices of the user's exports do not
    // depend on whether the contract was added.
    let exports = &mut resolve.worlds[new].exports;
    let key = WorldKey::Interface(iface);
    if let Some(item) = exports.shift_remove(&key) {
        exports.insert(key, item);
    }
    debug_assert!(matches!(
        resolve.worlds[new].exports.get(&WorldKey::Interface(iface)),
        Some(WorldItem::Interface { .. })
    ));
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn world(src: &str) -> (Resolve, WorldId) {
        let mut resolve = Resolve::default();
        let pkg = resolve.push_str("app.wit", src).unwrap();
        let world = resolve.select_world(&[pkg], None).unwrap();
        (resolve, world)
    }

    #[test]
    fn the_wit_declares_the_named_interface_and_function() {
        let mut resolve = Resolve::default();
        let pkg = resolve.push_str("init.wit", INIT_WIT).unwrap();
        let package = &resolve.packages[pkg];
        let version = package.name.version.as_ref().unwrap();
        assert_eq!(
            format!(
                "{}:{}/{INTERFACE_NAME}@{version}",
                package.name.namespace, package.name.name
            ),
            INIT_INTERFACE
        );
        let iface = &resolve.interfaces[package.interfaces[INTERFACE_NAME]];
        let func = &iface.functions[INIT_FUNCTION];
        let params: Vec<&str> = func.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(params, ["name", "source"]);
    }

    #[test]
    fn adds_the_export_last_and_keeps_the_world_name() {
        let (mut resolve, world) =
            world("package a:b; world app { export f: func(); export g: func(); }");
        let new = add_init_export(&mut resolve, world).unwrap();
        assert_ne!(new, world);
        assert_eq!(resolve.worlds[new].name, "app");
        let names: Vec<String> = resolve.worlds[new]
            .exports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect();
        assert_eq!(names, ["f", "g", INIT_INTERFACE]);
        // Adding it again is a no-op.
        assert_eq!(add_init_export(&mut resolve, new).unwrap(), new);
    }

    #[test]
    fn a_keyword_world_name_and_repeated_use_do_not_clash() {
        let (mut resolve, world) = world("package a:b; world %interface { export f: func(); }");
        let first = add_init_export(&mut resolve, world).unwrap();
        let second = add_init_export(&mut resolve, world).unwrap();
        assert_ne!(first, second);
        assert_eq!(resolve.worlds[second].name, "interface");
    }
}
