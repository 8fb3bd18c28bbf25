//! Mirror worlds from wit-smith: the packages wit-smith generates for a
//! seed, with a world that imports AND exports each of their interfaces
//! (plus `componentize:test/debug`), so the test interpreter can answer every
//! export with its import.

use crate::smith;
use anyhow::Result;
use wit_parser::{
    Function, FunctionKind, Handle, InterfaceId, PackageId, Resolve, Type, TypeDef, TypeDefKind,
    TypeOwner, WorldId, WorldItem,
};

/// Same as fixtures/wit/roundtrip/deps/componentize-test.wit.
pub const DEBUG_WIT: &str = "package componentize:test;\n\
    interface debug {\n  live-bytes: func() -> u64;\n  trace: func() -> tuple<u64, u64, list<string>>;\n}\n";

pub struct MirrorWorld {
    pub resolve: Resolve,
    pub world: WorldId,
    pub package: PackageId,
}

impl MirrorWorld {
    /// Functions the harness can call.
    pub fn function_count(&self) -> usize {
        self.resolve.worlds[self.world]
            .exports
            .values()
            .map(|item| match item {
                WorldItem::Interface { id, .. } if !is_debug(&self.resolve, *id) => {
                    self.resolve.interfaces[*id].functions.len()
                }
                _ => 0,
            })
            .sum()
    }

    /// WIT text of the world's package and everything it uses, to replay a
    /// failure by hand.
    pub fn wit_text(&self) -> String {
        smith::wit_text(&self.resolve, self.package)
            .unwrap_or_else(|e| format!("(cannot print the WIT: {e:#})"))
    }
}

fn is_debug(resolve: &Resolve, id: InterfaceId) -> bool {
    resolve.id_of(id).as_deref() == Some("componentize:test/debug")
}

/// Every resource gets a constructor without parameters (an existing one
/// loses its parameters), so that the harness can always make an instance
/// of an exported resource, and making one never needs another.
fn give_resources_constructors(resolve: &mut Resolve) {
    let ids: Vec<InterfaceId> = resolve.interfaces.iter().map(|(id, _)| id).collect();
    for iid in ids {
        let resources: Vec<_> = resolve.interfaces[iid]
            .types
            .iter()
            .filter(|(_, t)| matches!(resolve.types[**t].kind, TypeDefKind::Resource))
            .map(|(name, t)| (name.clone(), *t))
            .collect();
        for (name, rid) in resources {
            let key = format!("[constructor]{name}");
            if resolve.interfaces[iid].functions.contains_key(&key) {
                resolve.interfaces[iid]
                    .functions
                    .get_mut(&key)
                    .unwrap()
                    .params
                    .clear();
                continue;
            }
            // A resolved constructor returns an anonymous `own<r>`.
            let own = resolve
                .types
                .iter()
                .find(|(_, t)| t.name.is_none() && t.kind == TypeDefKind::Handle(Handle::Own(rid)))
                .map(|(id, _)| id)
                .unwrap_or_else(|| {
                    resolve.types.alloc(TypeDef {
                        name: None,
                        kind: TypeDefKind::Handle(Handle::Own(rid)),
                        owner: TypeOwner::None,
                        docs: Default::default(),
                        stability: Default::default(),
                        span: Default::default(),
                        external_id: None,
                    })
                });
            resolve.interfaces[iid].functions.insert(
                key.clone(),
                Function {
                    name: key,
                    kind: FunctionKind::Constructor(rid),
                    params: Vec::new(),
                    result: Some(Type::Id(own)),
                    docs: Default::default(),
                    stability: Default::default(),
                    span: Default::default(),
                    external_id: None,
                },
            );
        }
    }
}

/// `package componentize:mirror; world w { import I; export I; ... }`.
fn try_world(resolve: &Resolve, interfaces: &[String]) -> Option<MirrorWorld> {
    let mut text = String::from("package componentize:mirror;\n\nworld w {\n");
    for i in interfaces {
        text.push_str(&format!("  import {i};\n  export {i};\n"));
    }
    text.push_str("  export componentize:test/debug;\n}\n");
    let mut resolve = resolve.clone();
    let package = resolve.push_str("mirror.wit", &text).ok()?;
    let world = resolve.select_world(&[package], Some("w")).ok()?;
    Some(MirrorWorld {
        resolve,
        world,
        package,
    })
}

/// The mirror world of the packages of `resolve`, or `None` if no interface
/// is left. Interfaces that cannot be both imported and exported next to
/// the others (WIT resolution refuses the world) are left out,
/// deterministically.
pub fn mirror_of(mut resolve: Resolve) -> Result<Option<MirrorWorld>> {
    give_resources_constructors(&mut resolve);
    resolve.push_str("componentize-test.wit", DEBUG_WIT)?;
    let names: Vec<String> = resolve
        .interfaces
        .iter()
        .filter(|(id, i)| i.name.is_some() && i.package.is_some() && !is_debug(&resolve, *id))
        .filter_map(|(id, _)| resolve.id_of(id))
        .collect();
    if let Some(w) = try_world(&resolve, &names) {
        return Ok(Some(w));
    }
    let mut kept: Vec<String> = Vec::new();
    for n in names {
        kept.push(n);
        if try_world(&resolve, &kept).is_none() {
            kept.pop();
        }
    }
    if kept.is_empty() {
        return Ok(None);
    }
    Ok(try_world(&resolve, &kept))
}
