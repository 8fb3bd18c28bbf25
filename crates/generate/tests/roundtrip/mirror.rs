//! Mirror worlds from wit-smith: the packages wit-smith generates for a
//! seed, with a world that imports AND exports each of their interfaces
//! (plus `componentize:test/debug`), so the test interpreter can answer every
//! export with its import.
//!
//! A world whose exports carry futures or streams of payloads the host
//! cannot name (records, variants, tuples...: see roundtrip/transmit.rs)
//! also exports [`PEER_INTERFACE`], through which instances of the same
//! component write and read them for the host (PEERS in testinterp.c):
//! for payload number `k`,
//!
//! ```wit
//! fill-stream-k: async func(items: list<p>) -> stream<p>;
//! drain-stream-k: async func(s: stream<p>) -> list<p>;
//! fill-future-k: async func(items: list<p>) -> future<p>;
//! drain-future-k: async func(f: future<p>) -> list<p>;
//! ```

use crate::smith;
use crate::transmit;
use anyhow::Result;
use std::collections::BTreeMap;
use wit_parser::{
    Function, FunctionKind, Handle, InterfaceId, PackageId, Resolve, Type, TypeDef, TypeDefKind,
    TypeId, TypeOwner, WorldId, WorldItem,
};

/// The interface of the peers' fills and drains.
pub const PEER_INTERFACE: &str = "componentize:mirror/peer";

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

/// The type `id` names, through aliases and `use`s.
pub fn dealias(resolve: &Resolve, mut id: TypeId) -> TypeId {
    while let TypeDefKind::Type(Type::Id(next)) = resolve.types[id].kind {
        id = next;
    }
    id
}

/// Whether futures and streams of `ty` go through the peers: the host
/// cannot name it, and it holds no resource, `error-context` or map (which
/// wit-smith does not make in these worlds). One that holds futures or
/// streams holds no string or list besides: the test interpreter drops
/// those of items a reader left by lifting the items again (testinterp.c),
/// which only memory-free items allow.
pub fn is_peer_payload(resolve: &Resolve, ty: Type) -> bool {
    /// What a value holds: futures or streams, strings or lists.
    #[derive(Default)]
    struct Holds {
        ends: bool,
        memory: bool,
    }
    /// Notes in `holds` what `ty` holds (not looking into the payloads of
    /// its futures and streams); false for a part no peer carries, there
    /// too.
    fn walk(resolve: &Resolve, ty: Type, holds: &mut Holds) -> bool {
        let id = match ty {
            Type::ErrorContext => return false,
            Type::String => {
                holds.memory = true;
                return true;
            }
            Type::Id(id) => id,
            _ => return true,
        };
        let parts: Vec<Type> = match &resolve.types[id].kind {
            TypeDefKind::Record(r) => r.fields.iter().map(|f| f.ty).collect(),
            TypeDefKind::Tuple(t) => t.types.clone(),
            TypeDefKind::Variant(v) => v.cases.iter().filter_map(|c| c.ty).collect(),
            TypeDefKind::Result(r) => r.ok.iter().chain(&r.err).copied().collect(),
            TypeDefKind::Option(t) | TypeDefKind::Type(t) => vec![*t],
            TypeDefKind::List(t) => {
                holds.memory = true;
                vec![*t]
            }
            TypeDefKind::Enum(_) | TypeDefKind::Flags(_) => Vec::new(),
            TypeDefKind::Future(p) | TypeDefKind::Stream(p) => {
                holds.ends = true;
                return p.is_none_or(|p| walk(resolve, p, &mut Holds::default()));
            }
            _ => return false,
        };
        parts.into_iter().all(|t| walk(resolve, t, holds))
    }
    let mut holds = Holds::default();
    !transmit::is_host_payload(resolve, Some(ty))
        && walk(resolve, ty, &mut holds)
        && !(holds.ends && holds.memory)
}

/// WIT for `ty` (a peer payload or a part of one), spelling each named
/// type (its `use`s followed) with `named`.
fn type_wit(resolve: &Resolve, ty: Type, named: &mut dyn FnMut(TypeId) -> String) -> String {
    let id = match ty {
        Type::Bool => return "bool".into(),
        Type::U8 => return "u8".into(),
        Type::S8 => return "s8".into(),
        Type::U16 => return "u16".into(),
        Type::S16 => return "s16".into(),
        Type::U32 => return "u32".into(),
        Type::S32 => return "s32".into(),
        Type::U64 => return "u64".into(),
        Type::S64 => return "s64".into(),
        Type::F32 => return "f32".into(),
        Type::F64 => return "f64".into(),
        Type::Char => return "char".into(),
        Type::String => return "string".into(),
        Type::ErrorContext => return "error-context".into(),
        Type::Id(id) => dealias(resolve, id),
    };
    if resolve.types[id].name.is_some() {
        return named(id);
    }
    let mut of = |t: Option<Type>| t.map_or("_".to_string(), |t| type_wit(resolve, t, named));
    match &resolve.types[id].kind {
        TypeDefKind::List(t) => format!("list<{}>", of(Some(*t))),
        TypeDefKind::Option(t) => format!("option<{}>", of(Some(*t))),
        TypeDefKind::Tuple(t) => {
            let items: Vec<String> = t.types.iter().map(|t| of(Some(*t))).collect();
            format!("tuple<{}>", items.join(", "))
        }
        TypeDefKind::Result(r) => match (r.ok, r.err) {
            (None, None) => "result".into(),
            (ok, None) => format!("result<{}>", of(ok)),
            (ok, err) => format!("result<{}, {}>", of(ok), of(err)),
        },
        TypeDefKind::Future(None) => "future".into(),
        TypeDefKind::Future(p) => format!("future<{}>", of(*p)),
        TypeDefKind::Stream(None) => "stream".into(),
        TypeDefKind::Stream(p) => format!("stream<{}>", of(*p)),
        // Anonymous records, variants and the like do not exist.
        other => panic!("no WIT for an anonymous {other:?}"),
    }
}

/// A peer payload's key: its WIT with each named type as its id, the same
/// for every spelling of the type.
pub fn payload_key(resolve: &Resolve, ty: Type) -> String {
    type_wit(resolve, ty, &mut |id| format!("#{}", id.index()))
}

/// The peer interface for the payloads of `world`'s exported futures and
/// streams that need it, or `None` if none does.
fn peer_interface(resolve: &Resolve, world: WorldId) -> Option<String> {
    let mut payloads: Vec<Type> = Vec::new();
    let mut keys = Vec::new();
    for item in resolve.worlds[world].exports.values() {
        let WorldItem::Interface { id, .. } = item else {
            continue;
        };
        for f in resolve.interfaces[*id].functions.values() {
            let types = f.params.iter().map(|p| &p.ty).chain(&f.result);
            for t in types.flat_map(|t| smith::parts(resolve, t)) {
                let Type::Id(tid) = t else { continue };
                let (TypeDefKind::Future(Some(p)) | TypeDefKind::Stream(Some(p))) =
                    resolve.types[tid].kind
                else {
                    continue;
                };
                if !is_peer_payload(resolve, p) {
                    continue;
                }
                let key = payload_key(resolve, p);
                if !keys.contains(&key) {
                    keys.push(key);
                    payloads.push(p);
                }
            }
        }
    }
    if payloads.is_empty() {
        return None;
    }
    // Each named type comes in by a `use` of its interface, as `t<n>`.
    let mut uses: BTreeMap<TypeId, String> = BTreeMap::new();
    let mut unusable = false;
    let mut functions = String::new();
    for (k, p) in payloads.iter().enumerate() {
        let p = type_wit(resolve, *p, &mut |id| {
            let n = uses.len();
            uses.entry(id).or_insert_with(|| format!("t{n}")).clone()
        });
        functions.push_str(&format!(
            "  fill-stream-{k}: async func(items: list<{p}>) -> stream<{p}>;\n  \
             drain-stream-{k}: async func(s: stream<{p}>) -> list<{p}>;\n  \
             fill-future-{k}: async func(items: list<{p}>) -> future<{p}>;\n  \
             drain-future-{k}: async func(f: future<{p}>) -> list<{p}>;\n"
        ));
    }
    let mut text = String::from("interface peer {\n");
    for (id, alias) in &uses {
        let def = &resolve.types[*id];
        let owner = match def.owner {
            TypeOwner::Interface(i) => resolve.id_of(i),
            _ => None,
        };
        let (Some(owner), Some(name)) = (owner, &def.name) else {
            unusable = true;
            continue;
        };
        text.push_str(&format!("  use {owner}.{{{name} as {alias}}};\n"));
    }
    text.push_str(&functions);
    text.push_str("}\n");
    (!unusable).then_some(text)
}

/// `package componentize:mirror; world w { import I; export I; ... }`, with
/// the `peer` interface `peer` (WIT text) exported if given.
fn try_world(resolve: &Resolve, interfaces: &[String], peer: Option<&str>) -> Option<MirrorWorld> {
    let mut text = String::from("package componentize:mirror;\n\n");
    text.push_str(peer.unwrap_or(""));
    text.push_str("\nworld w {\n");
    for i in interfaces {
        text.push_str(&format!("  import {i};\n  export {i};\n"));
    }
    if peer.is_some() {
        text.push_str("  export peer;\n");
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
/// deterministically. The world exports the peer interface when its
/// payloads need one.
pub fn mirror_of(mut resolve: Resolve) -> Result<Option<MirrorWorld>> {
    give_resources_constructors(&mut resolve);
    resolve.push_str("componentize-test.wit", DEBUG_WIT)?;
    let Some((names, world)) = mirror_interfaces(&resolve) else {
        return Ok(None);
    };
    let peer = peer_interface(&world.resolve, world.world);
    let with_peer = peer.and_then(|peer| try_world(&resolve, &names, Some(&peer)));
    Ok(Some(with_peer.unwrap_or(world)))
}

/// The interfaces of the mirror world (see [`mirror_of`]) and that world,
/// without the peer interface.
fn mirror_interfaces(resolve: &Resolve) -> Option<(Vec<String>, MirrorWorld)> {
    let names: Vec<String> = resolve
        .interfaces
        .iter()
        .filter(|(id, i)| i.name.is_some() && i.package.is_some() && !is_debug(resolve, *id))
        .filter_map(|(id, _)| resolve.id_of(id))
        .collect();
    if let Some(w) = try_world(resolve, &names, None) {
        return Some((names, w));
    }
    let mut kept: Vec<String> = Vec::new();
    for n in names {
        kept.push(n);
        if try_world(resolve, &kept, None).is_none() {
            kept.pop();
        }
    }
    if kept.is_empty() {
        return None;
    }
    let w = try_world(resolve, &kept, None)?;
    Some((kept, w))
}
