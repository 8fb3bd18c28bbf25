//! Test support: deterministic random WIT worlds from `wit-smith`, limited to
//! the synchronous subset (no `async`, futures, streams, `error-context` or
//! fixed-length lists), and without wit-smith's `implements` worlds (one
//! interface imported under several names), which wit-dylib 0.263 rejects.
//! wit-smith 0.263 never generates `map<K, V>`; [`add_maps`] turns some lists
//! into maps for the tests that want them.
//!
//! A seed is expanded into a byte string by a SplitMix64 generator; those
//! bytes drive `arbitrary::Unstructured`, which first picks a
//! `wit_smith::Config` (whose async-related switches are then forced off) and
//! then the packages. The encoded WIT package that `wit_smith::smith` returns
//! is decoded back into a `Resolve`.
//!
//! Not every seed yields something usable (wit-smith may run out of data or
//! reject its own draw, or the main package may have no non-empty world);
//! such seeds give `Ok(None)`, deterministically.
//!
//! The fuzz targets (tests/fuzz.rs) draw from the fuzz driver's input
//! instead of a seed: [`biased_bytes`], [`all_features_config`] or
//! [`smith_config`], [`decode_package`], [`add_maps`] and
//! [`synthesized_world`].

#![allow(dead_code)]

use anyhow::{Context, Result, bail};
use arbitrary::{Arbitrary, Unstructured};
use componentize_testkit::fuzz::SplitMix64;
use std::collections::BTreeSet;
use wit_parser::decoding::{DecodedWasm, decode};
use wit_parser::{PackageId, Resolve, Type, TypeDefKind, TypeId, WorldId, WorldItem};

/// Bytes fed to `Unstructured` per seed: a base plus a seed-dependent extra
/// amount, so that both small and larger worlds occur.
const MIN_BYTES: usize = 512;
const MAX_EXTRA_BYTES: usize = 8 * 1024;

/// The deterministic byte string for `seed`.
///
/// wit-smith decides "one more item?" with `bool`s (the low bit of one
/// byte), so uniform bytes give mostly tiny packages. The low bit of each
/// byte is therefore forced to 1, so that it is 1 with probability 3/4, 7/8
/// or 15/16 (chosen by the seed), to get a spread of sizes.
pub fn seed_bytes(seed: u64) -> Vec<u8> {
    let mut rng = SplitMix64(seed);
    let len = MIN_BYTES + (rng.next_u64() % (MAX_EXTRA_BYTES as u64 + 1)) as usize;
    let bias_bits = 1 + (rng.next_u64() % 3) as u32;
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let word = rng.next_u64();
        let bias = rng.next_u64();
        for i in 0..8 {
            out.push(biased(
                (word >> (8 * i)) as u8,
                (bias >> (8 * i)) as u8,
                bias_bits,
            ));
        }
    }
    out.truncate(len);
    out
}

/// `byte` with its low bit forced to 1 unless the low `bias_bits` bits of
/// `r` are all 0 (see [`seed_bytes`]).
fn biased(byte: u8, r: u8, bias_bits: u32) -> u8 {
    if r & ((1u8 << bias_bits) - 1) != 0 {
        byte | 1
    } else {
        byte
    }
}

/// The rest of `u`'s bytes, biased like [`seed_bytes`] (so that wit-smith
/// makes packages of every size from a fuzz driver's uniform bytes): the
/// first byte picks the bias, then each pair of bytes gives one, a byte and
/// its bias.
pub fn biased_bytes(u: &mut Unstructured<'_>) -> arbitrary::Result<Vec<u8>> {
    let bias_bits = u.int_in_range(1..=3)?;
    let rest = u.bytes(u.len())?;
    Ok(rest
        .chunks_exact(2)
        .map(|pair| biased(pair[0], pair[1], bias_bits))
        .collect())
}

/// The wit-smith configuration used for all seeds: whatever `Config`'s own
/// `Arbitrary` impl draws, with every asynchronous or unsupported feature
/// switched off.
pub fn smith_config(u: &mut Unstructured<'_>) -> arbitrary::Result<wit_smith::Config> {
    let mut config = wit_smith::Config::arbitrary(u)?;
    config.async_ = false;
    config.futures = false;
    config.streams = false;
    config.error_context = false;
    config.fixed_length_lists = false;
    // `implements` lets a world import one interface under several plain
    // names (`import a: x:y/z; import x:y/z;`); wit-dylib 0.263 panics on
    // that (`assert!(prev.is_none())` in `add_imported_type_intrinsics`
    // when the interface has a resource).
    config.implements = false;
    Ok(config)
}

/// The wit-smith configuration of the generate fuzz target: sizes as
/// `Config`'s own `Arbitrary` impl draws them, and every kind of item
/// wit-smith can make switched on (async functions, futures, streams,
/// `error-context`, fixed-length lists, `implements`), so that the generate
/// stage sees what it refuses as well as what it supports.
///
/// Except world `include`s, which `Config`'s impl leaves off too: wit-smith
/// 0.263 panics on some of its own (`bad wit parse: ... no import or export
/// kebab-name`), and a resolved world has its includes flattened anyway
/// (the synthesized worlds of [`synthesized_world`] include one).
pub fn all_features_config(u: &mut Unstructured<'_>) -> arbitrary::Result<wit_smith::Config> {
    let mut config = wit_smith::Config::arbitrary(u)?;
    config.async_ = true;
    config.futures = true;
    config.streams = true;
    config.error_context = true;
    config.fixed_length_lists = true;
    config.implements = true;
    Ok(config)
}

/// [`smith_config`] with wit-smith's async functions, futures and streams
/// switched on: what the bindings carry asynchronously (`error-context`
/// stays off, having no intrinsic).
pub fn async_config(u: &mut Unstructured<'_>) -> arbitrary::Result<wit_smith::Config> {
    let mut config = smith_config(u)?;
    config.async_ = true;
    config.futures = true;
    config.streams = true;
    Ok(config)
}

/// A wit-smith configuration drawn from a seed's bytes.
type ConfigFn = fn(&mut Unstructured<'_>) -> arbitrary::Result<wit_smith::Config>;

fn smith_wasm(seed: u64, config: ConfigFn) -> Option<Vec<u8>> {
    let bytes = seed_bytes(seed);
    let mut u = Unstructured::new(&bytes);
    let config = config(&mut u).ok()?;
    wit_smith::smith(&config, &mut u).ok()
}

/// The binary-encoded WIT package wit-smith generates for `seed`, or `None`
/// if wit-smith declines this seed.
pub fn random_wit_wasm(seed: u64) -> Option<Vec<u8>> {
    smith_wasm(seed, smith_config)
}

/// Like [`random_world`], from packages made with [`async_config`].
pub fn random_async_world(seed: u64) -> Result<Option<(Resolve, WorldId)>> {
    let Some(wasm) = smith_wasm(seed, async_config) else {
        return Ok(None);
    };
    let (resolve, _pkg) = decode_package(&wasm).with_context(|| format!("seed {seed}"))?;
    Ok(synthesized_world(&resolve, seed))
}

/// All packages generated for `seed` and the id of the main one.
pub fn random_package(seed: u64) -> Result<Option<(Resolve, PackageId)>> {
    packages_of(seed, smith_config)
}

/// Like [`random_package`], with [`async_config`].
pub fn random_async_package(seed: u64) -> Result<Option<(Resolve, PackageId)>> {
    packages_of(seed, async_config)
}

fn packages_of(seed: u64, config: ConfigFn) -> Result<Option<(Resolve, PackageId)>> {
    let Some(wasm) = smith_wasm(seed, config) else {
        return Ok(None);
    };
    decode_package(&wasm)
        .map(Some)
        .with_context(|| format!("seed {seed}"))
}

/// The packages of the binary-encoded WIT package `wasm` (what
/// `wit_smith::smith` returns) and the id of the main one.
pub fn decode_package(wasm: &[u8]) -> Result<(Resolve, PackageId)> {
    match decode(wasm).context("decoding wit-smith output")? {
        DecodedWasm::WitPackage(resolve, pkg) => Ok((resolve, pkg)),
        DecodedWasm::Component(..) => bail!("wit-smith produced a component"),
    }
}

/// Turns some anonymous `list<T>` types of `resolve` into `map<K, T>`
/// (`K` a key type drawn from `u`), since wit-smith 0.263 makes no maps.
/// A `T` that holds a handle ([`holds_handle`]) becomes a map value only
/// with `handle_values`: WIT accepts such a map, the component model does
/// not.
pub fn add_maps(
    resolve: &mut Resolve,
    u: &mut Unstructured<'_>,
    handle_values: bool,
) -> arbitrary::Result<()> {
    const KEYS: [Type; 11] = [
        Type::Bool,
        Type::U8,
        Type::U16,
        Type::U32,
        Type::U64,
        Type::S8,
        Type::S16,
        Type::S32,
        Type::S64,
        Type::Char,
        Type::String,
    ];
    let lists: Vec<(TypeId, Type)> = resolve
        .types
        .iter()
        .filter_map(|(id, ty)| match (&ty.name, &ty.kind) {
            (None, TypeDefKind::List(value)) => Some((id, *value)),
            _ => None,
        })
        .filter(|(_, value)| handle_values || !holds_handle(resolve, value))
        .collect();
    for (id, value) in lists {
        if u.ratio(1, 3)? {
            resolve.types[id].kind = TypeDefKind::Map(*u.choose(&KEYS)?, value);
        }
    }
    Ok(())
}

/// `ty` and every type it is made of, each once (a resource's handle is a
/// part, the resource's methods are not).
pub fn parts(resolve: &Resolve, ty: &Type) -> Vec<Type> {
    fn walk(resolve: &Resolve, ty: &Type, seen: &mut BTreeSet<TypeId>, out: &mut Vec<Type>) {
        if let Type::Id(id) = ty
            && !seen.insert(*id)
        {
            return;
        }
        out.push(*ty);
        let Type::Id(id) = ty else { return };
        let nested: Vec<Type> = match &resolve.types[*id].kind {
            TypeDefKind::Record(r) => r.fields.iter().map(|f| f.ty).collect(),
            TypeDefKind::Tuple(t) => t.types.clone(),
            TypeDefKind::Variant(v) => v.cases.iter().filter_map(|c| c.ty).collect(),
            TypeDefKind::Result(r) => r.ok.iter().chain(&r.err).copied().collect(),
            TypeDefKind::Map(k, v) => vec![*k, *v],
            TypeDefKind::Option(t)
            | TypeDefKind::List(t)
            | TypeDefKind::FixedLengthList(t, _)
            | TypeDefKind::Type(t) => vec![*t],
            TypeDefKind::Future(t) | TypeDefKind::Stream(t) => t.iter().copied().collect(),
            TypeDefKind::Resource
            | TypeDefKind::Handle(_)
            | TypeDefKind::Flags(_)
            | TypeDefKind::Enum(_)
            | TypeDefKind::Unknown => Vec::new(),
        };
        for t in &nested {
            walk(resolve, t, seen, out);
        }
    }
    let mut out = Vec::new();
    walk(resolve, ty, &mut BTreeSet::new(), &mut out);
    out
}

/// Whether a value of `ty` holds a handle as the component model counts
/// them: of a resource, a future, a stream or an `error-context`.
pub fn holds_handle(resolve: &Resolve, ty: &Type) -> bool {
    parts(resolve, ty).iter().any(|t| match t {
        Type::ErrorContext => true,
        Type::Id(id) => matches!(
            resolve.types[*id].kind,
            TypeDefKind::Resource
                | TypeDefKind::Handle(_)
                | TypeDefKind::Future(_)
                | TypeDefKind::Stream(_)
        ),
        _ => false,
    })
}

/// The world for `seed`.
///
/// wit-smith's own worlds are small (most seeds produce none with a
/// function), so, like wit-dylib's roundtrip test, this synthesizes a world
/// in an extra package `componentize:fuzz`: it includes the richest
/// wit-smith world (see [`smith_world`]), and imports, exports, or imports
/// *and* exports every named interface of every generated package (the
/// choice per interface is drawn from the seed). If WIT resolution rejects
/// that combination, it is pared down deterministically (see below).
/// `Ok(None)` if wit-smith declines the seed or nothing is left.
pub fn random_world(seed: u64) -> Result<Option<(Resolve, WorldId)>> {
    let Some((resolve, _pkg)) = random_package(seed)? else {
        return Ok(None);
    };
    Ok(synthesized_world(&resolve, seed))
}

/// The world [`random_world`] synthesizes from the packages of `resolve`,
/// its import and export choices drawn from `choices`; `None` if nothing is
/// left.
pub fn synthesized_world(resolve: &Resolve, choices: u64) -> Option<(Resolve, WorldId)> {
    let include = best_world(resolve).map(|w| {
        let world = &resolve.worlds[w];
        let name = &resolve.packages[world.package.unwrap()].name;
        match &name.version {
            Some(v) => format!("{}:{}/{}@{v}", name.namespace, name.name, world.name),
            None => format!("{}:{}/{}", name.namespace, name.name, world.name),
        }
    });
    let mut rng = SplitMix64(choices ^ 0x5eed_f00d_c0de_0001);
    let mut imports = Vec::new();
    let mut exports = Vec::new();
    for (id, iface) in resolve.interfaces.iter() {
        if iface.name.is_none() || iface.package.is_none() {
            continue;
        }
        let name = resolve.id_of(id).unwrap();
        match rng.next_u64() % 4 {
            0 | 1 => imports.push(name),
            2 => exports.push(name),
            _ => {
                imports.push(name.clone());
                exports.push(name);
            }
        }
    }
    // First try everything at once; if WIT resolution rejects it (typically
    // "transitively depends on an interface in incompatible ways"), keep the
    // include only if it works with the imports, then add the exports one at
    // a time, keeping those that still resolve (a rejected export is
    // imported instead, if that resolves).
    if let Some(found) = try_world(resolve, include.as_deref(), &imports, &exports) {
        return Some(found);
    }
    let include = include.filter(|i| try_world(resolve, Some(i), &imports, &[]).is_some());
    let include = include.as_deref();
    let mut accepted: Vec<String> = Vec::new();
    for e in exports {
        accepted.push(e.clone());
        if try_world(resolve, include, &imports, &accepted).is_some() {
            continue;
        }
        accepted.pop();
        if !imports.contains(&e) {
            imports.push(e);
            if try_world(resolve, include, &imports, &accepted).is_none() {
                imports.pop();
            }
        }
    }
    if include.is_none() && imports.is_empty() && accepted.is_empty() {
        return None;
    }
    try_world(resolve, include, &imports, &accepted)
}

/// Adds package `componentize:fuzz` with `world w { include ..; import ..;
/// export ..; }` to a copy of `resolve`, if that resolves.
fn try_world(
    resolve: &Resolve,
    include: Option<&str>,
    imports: &[String],
    exports: &[String],
) -> Option<(Resolve, WorldId)> {
    let mut text = String::from("package componentize:fuzz;\n\nworld w {\n");
    if let Some(i) = include {
        text.push_str(&format!("  include {i};\n"));
    }
    for i in imports {
        text.push_str(&format!("  import {i};\n"));
    }
    for e in exports {
        text.push_str(&format!("  export {e};\n"));
    }
    text.push_str("}\n");
    let mut candidate = resolve.clone();
    let pkg = candidate.push_str("componentize-fuzz.wit", &text).ok()?;
    let world = candidate.select_world(&[pkg], Some("w")).ok()?;
    Some((candidate, world))
}

/// The plain wit-smith world for `seed` (no synthesis): see [`best_world`].
pub fn smith_world(seed: u64) -> Result<Option<(Resolve, WorldId)>> {
    let Some((resolve, _pkg)) = random_package(seed)? else {
        return Ok(None);
    };
    Ok(best_world(&resolve).map(|w| (resolve, w)))
}

/// Of all worlds in `resolve` (arena order) that import or export anything,
/// the one with the most functions; the first one on ties.
pub fn best_world(resolve: &Resolve) -> Option<WorldId> {
    let mut best: Option<(usize, WorldId)> = None;
    for (id, world) in resolve.worlds.iter() {
        if world.imports.is_empty() && world.exports.is_empty() {
            continue;
        }
        let n = world_function_count(resolve, id);
        if best.is_none_or(|(m, _)| n > m) {
            best = Some((n, id));
        }
    }
    best.map(|(_, w)| w)
}

/// Number of functions a world imports or exports, directly or through
/// interfaces.
pub fn world_function_count(resolve: &Resolve, world: WorldId) -> usize {
    let w = &resolve.worlds[world];
    w.imports
        .values()
        .chain(w.exports.values())
        .map(|item| match item {
            WorldItem::Function(_) => 1,
            WorldItem::Interface { id, .. } => resolve.interfaces[*id].functions.len(),
            WorldItem::Type { .. } => 0,
        })
        .sum()
}

/// WIT text of everything generated for `seed` (main package first, then
/// its dependencies as nested packages), for reproducing failures.
pub fn random_wit_text(seed: u64) -> Result<Option<String>> {
    let Some((resolve, pkg)) = random_package(seed)? else {
        return Ok(None);
    };
    Ok(Some(wit_text(&resolve, pkg)?))
}

/// WIT text for `pkg` with every other package of `resolve` nested.
pub fn wit_text(resolve: &Resolve, pkg: PackageId) -> Result<String> {
    let nested: Vec<PackageId> = resolve
        .topological_packages()
        .into_iter()
        .filter(|p| *p != pkg)
        .collect();
    let mut printer = wit_component::WitPrinter::default();
    printer.print(resolve, pkg, &nested)?;
    Ok(printer.output.to_string())
}

/// The first `count` usable seeds at or after `first_seed`, with their
/// worlds, in seed order. Errors (as opposed to declined seeds) are
/// returned as `Err` items carrying the seed.
pub fn random_worlds(
    first_seed: u64,
    count: usize,
) -> impl Iterator<Item = Result<(u64, Resolve, WorldId)>> {
    (first_seed..)
        .filter_map(|seed| match random_world(seed) {
            Ok(Some((r, w))) => Some(Ok((seed, r, w))),
            Ok(None) => None,
            Err(e) => Some(Err(e.context(format!("seed {seed}")))),
        })
        .take(count)
}

/// Why wit-dylib 0.263 may panic on a world we bind: a future or stream
/// type that no function signature holds (`lib.rs`, "encountered future
/// type not used in any function"). Such an entry gets NULL built-ins from
/// us.
pub const UNUSED_TRANSMIT_PANIC: &str = "type not used in any function";

/// The message of a caught panic.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}
