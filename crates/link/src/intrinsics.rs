//! The interpreter interface (`componentize.h`) as the link stage sees it:
//! which imports of a bindings module are its intrinsics, and, for the ones
//! no linked library defines, whether the world needs them and for what.
//!
//! Bindings (componentize-generate's, and wit-dylib 0.263's, which share the
//! ABI) import every intrinsic, whatever the world uses, so an interpreter
//! built against an older header leaves some unresolved: e.g. the map and
//! list-iterator functions. An intrinsic the bindings' code never reaches
//! (see [`FuncImport::used`](crate::dylib::FuncImport::used)) is not needed by
//! the world, and a trapping stub for it is never called. One the code does
//! reach is needed; what needs it is looked up in the bindings' world, from
//! the intrinsic's name: `wit_dylib_push_map` moves a `map` into the
//! interpreter (an export's parameter, an import's result),
//! `wit_dylib_pop_list_iter_next` a `list` out of it, `wit_dylib_resource_dtor`
//! serves exported resources, and so on.

use crate::dylib::Wit;
use std::collections::BTreeSet;
use std::sync::OnceLock;
use wit_parser::{Function, Handle, Resolve, Type, TypeDefKind, WorldItem, WorldKey};

/// The prefix of every intrinsic but `cabi_realloc`.
const PREFIX: &str = "wit_dylib_";

/// Whether `name` is a function of componentize.h.
pub fn is_intrinsic(name: &str) -> bool {
    names().contains(name)
}

/// Whether `name` is one of the intrinsics only an interpreter defines
/// (`cabi_realloc` is libc's too).
pub fn is_interpreter_intrinsic(name: &str) -> bool {
    name.starts_with(PREFIX) && is_intrinsic(name)
}

/// Every function of componentize.h, as the generator imports them.
fn names() -> &'static BTreeSet<&'static str> {
    static NAMES: OnceLock<BTreeSet<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| componentize_generate::intrinsic_names().collect())
}

/// What an intrinsic serves, read from its name.
#[derive(Debug, PartialEq, Eq)]
enum Purpose<'a> {
    /// Moves values of a WIT type, named as a primitive type (`u8`,
    /// `string`) or as [`TypeDefKind::as_str`] names the kind (`record`,
    /// `map`, `own`), into the interpreter (`push_*`, `*_append`) or out of
    /// it (`pop_*`).
    Values {
        kind: &'a str,
        into_interpreter: bool,
    },
    /// Destroys exported resources.
    ExportedResource,
    /// Runs async exports.
    AsyncExport,
    /// Runs exports.
    Export,
    /// Anything else (`initialize`, `cabi_realloc`, `dealloc_bytes`): every
    /// bindings module needs it.
    Bindings,
}

fn purpose(name: &str) -> Purpose<'_> {
    let Some(rest) = name.strip_prefix(PREFIX) else {
        return Purpose::Bindings;
    };
    let (into_interpreter, noun) = if let Some(noun) = rest.strip_prefix("push_") {
        (true, noun)
    } else if let Some(noun) = rest.strip_prefix("pop_") {
        (false, noun)
    } else if let Some(noun) = rest.strip_suffix("_append") {
        (true, noun)
    } else if rest == "resource_dtor" {
        return Purpose::ExportedResource;
    } else if rest.starts_with("export_async_") {
        return Purpose::AsyncExport;
    } else if rest.starts_with("export_") {
        return Purpose::Export;
    } else {
        return Purpose::Bindings;
    };
    let kind = noun
        .strip_suffix("_iter_next")
        .or_else(|| noun.strip_suffix("_iter"))
        .unwrap_or(noun);
    Purpose::Values {
        kind,
        into_interpreter,
    }
}

/// Why the world needs the intrinsic `name`, as the end of "`name` is
/// needed ...": "for `map<string, u32>` in export `pkg:ns/iface.f`", or "by
/// the bindings" when nothing in the world matches.
pub fn needed_for(name: &str, wit: Option<&Wit>) -> String {
    let found = wit.and_then(|wit| match purpose(name) {
        Purpose::Values {
            kind,
            into_interpreter,
        } => value_use(wit, kind, into_interpreter),
        Purpose::ExportedResource => exported_resource(wit),
        Purpose::AsyncExport => functions(wit)
            .into_iter()
            .find(|f| f.export && f.func.kind.is_async())
            .map(|f| format!("for {f}")),
        Purpose::Export => functions(wit)
            .into_iter()
            .find(|f| f.export)
            .map(|f| format!("for {f}")),
        Purpose::Bindings => None,
    });
    found.unwrap_or_else(|| "by the bindings".into())
}

/// A function of the world, imported or exported.
struct WorldFunc<'a> {
    export: bool,
    /// As the component names it: `f`, `pkg:ns/iface.f@1.0.0`.
    name: String,
    func: &'a Function,
}

impl std::fmt::Display for WorldFunc<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.export { "export" } else { "import" };
        let kind = if self.func.kind.is_async() {
            "async "
        } else {
            ""
        };
        write!(f, "{kind}{what} `{}`", self.name)
    }
}

/// The world's functions, exports first (what the interpreter implements),
/// each in world order.
fn functions(wit: &Wit) -> Vec<WorldFunc<'_>> {
    let resolve = &wit.resolve;
    let world = &resolve.worlds[wit.world];
    let mut out = Vec::new();
    for (export, items) in [(true, &world.exports), (false, &world.imports)] {
        for (key, item) in items {
            match item {
                WorldItem::Function(func) => out.push(WorldFunc {
                    export,
                    name: func.name.clone(),
                    func,
                }),
                WorldItem::Interface { id, .. } => {
                    for func in resolve.interfaces[*id].functions.values() {
                        out.push(WorldFunc {
                            export,
                            name: interface_function_name(resolve, key, &func.name),
                            func,
                        });
                    }
                }
                WorldItem::Type { .. } => {}
            }
        }
    }
    out
}

/// `pkg:ns/iface.f@1.0.0` (the version last, as `--init-func` takes it), or
/// `iface.f` for an interface declared in the world.
fn interface_function_name(resolve: &Resolve, key: &WorldKey, func: &str) -> String {
    if let WorldKey::Interface(id) = key {
        let iface = &resolve.interfaces[*id];
        if let (Some(pkg), Some(name)) = (iface.package, &iface.name) {
            let pkg = &resolve.packages[pkg].name;
            let version = pkg
                .version
                .as_ref()
                .map(|v| format!("@{v}"))
                .unwrap_or_default();
            return format!("{}:{}/{name}.{func}{version}", pkg.namespace, pkg.name);
        }
    }
    format!("{}.{func}", resolve.name_world_key(key))
}

/// "for `map<string, u32>` in export `f`": the first type of `kind` that
/// crosses in the intrinsic's direction (an export's parameters and an
/// import's results go into the interpreter), else in the other one.
fn value_use(wit: &Wit, kind: &str, into_interpreter: bool) -> Option<String> {
    let funcs = functions(wit);
    for same_direction in [true, false] {
        for f in &funcs {
            let into = f.export == same_direction;
            let params = f.func.params.iter().map(|p| &p.ty);
            let types: Vec<&Type> = if into == into_interpreter {
                params.collect()
            } else {
                f.func.result.iter().collect()
            };
            for ty in types {
                if let Some(found) = find_kind(&wit.resolve, ty, kind) {
                    return Some(format!("for {} in {f}", describe(&wit.resolve, found)));
                }
            }
        }
    }
    None
}

/// The first type of `kind` in `ty` (itself, or nested in it), looking
/// through aliases.
fn find_kind<'a>(resolve: &'a Resolve, ty: &'a Type, kind: &str) -> Option<&'a Type> {
    let Type::Id(id) = ty else {
        return (print_type(resolve, ty) == kind).then_some(ty);
    };
    let def = &resolve.types[*id];
    if let TypeDefKind::Type(aliased) = &def.kind {
        return find_kind(resolve, aliased, kind);
    }
    if def.kind.as_str() == kind {
        return Some(ty);
    }
    let mut inner: Vec<&Type> = Vec::new();
    match &def.kind {
        TypeDefKind::Record(r) => inner.extend(r.fields.iter().map(|f| &f.ty)),
        TypeDefKind::Tuple(t) => inner.extend(&t.types),
        TypeDefKind::Variant(v) => inner.extend(v.cases.iter().filter_map(|c| c.ty.as_ref())),
        TypeDefKind::Option(t) | TypeDefKind::List(t) | TypeDefKind::FixedLengthList(t, _) => {
            inner.push(t)
        }
        TypeDefKind::Result(r) => inner.extend(r.ok.iter().chain(&r.err)),
        TypeDefKind::Map(k, v) => inner.extend([k, v]),
        TypeDefKind::Future(t) | TypeDefKind::Stream(t) => inner.extend(t),
        // Handles point at resources, whose contents do not cross.
        _ => {}
    }
    inner.into_iter().find_map(|t| find_kind(resolve, t, kind))
}

/// A type for messages: "record `span`", "`own<blob>`", "`map<string, u32>`".
fn describe(resolve: &Resolve, ty: &Type) -> String {
    if let Type::Id(id) = ty {
        let def = &resolve.types[*id];
        if let TypeDefKind::Handle(Handle::Own(r) | Handle::Borrow(r)) = &def.kind {
            let resource = resolve.types[*r].name.as_deref().unwrap_or("?");
            return format!("`{}<{resource}>`", def.kind.as_str());
        }
        if let Some(name) = &def.name {
            return format!("{} `{name}`", def.kind.as_str());
        }
    }
    format!("`{}`", print_type(resolve, ty))
}

/// The type as WIT spells it.
fn print_type(resolve: &Resolve, ty: &Type) -> String {
    let mut printer = wit_component::WitPrinter::default();
    match printer.print_type_name(resolve, ty) {
        Ok(()) => printer.output.to_string(),
        // Only anonymous records and the like fail, which a decoded world
        // does not have.
        Err(_) => "?".into(),
    }
}

/// "for resource `r` of export `pkg:ns/iface`": the first resource an
/// exported interface defines.
fn exported_resource(wit: &Wit) -> Option<String> {
    let resolve = &wit.resolve;
    let world = &resolve.worlds[wit.world];
    world.exports.iter().find_map(|(key, item)| {
        let WorldItem::Interface { id, .. } = item else {
            return None;
        };
        resolve.interfaces[*id]
            .types
            .iter()
            .find(|(_, t)| matches!(resolve.types[**t].kind, TypeDefKind::Resource))
            .map(|(name, _)| {
                format!(
                    "for resource `{name}` of export `{}`",
                    resolve.name_world_key(key)
                )
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_functions_of_the_header() {
        let names = names();
        for name in [
            "wit_dylib_initialize",
            "cabi_realloc",
            "wit_dylib_push_map",
            "wit_dylib_map_append",
            "wit_dylib_pop_list_iter_next",
            "wit_dylib_export_async_callback",
        ] {
            assert!(names.contains(name), "{name} missing from {names:?}");
        }
        // Nothing the linker provides, nothing that is not an intrinsic.
        assert!(
            names
                .iter()
                .all(|n| *n == "cabi_realloc" || n.starts_with(PREFIX)),
            "{names:?}"
        );
        // Every name is declared in the header interpreters compile against.
        for name in names {
            assert!(
                componentize_generate::HEADER.contains(&format!("{name}(")),
                "{name} is not declared in componentize.h"
            );
        }
        assert!(is_interpreter_intrinsic("wit_dylib_pop_u8"));
        assert!(is_intrinsic("cabi_realloc") && !is_interpreter_intrinsic("cabi_realloc"));
        assert!(!is_intrinsic("wit_dylib_no_such_thing"));
    }

    #[test]
    fn purpose_follows_the_name() {
        let values = |kind, into_interpreter| Purpose::Values {
            kind,
            into_interpreter,
        };
        assert_eq!(purpose("wit_dylib_push_map"), values("map", true));
        assert_eq!(purpose("wit_dylib_map_append"), values("map", true));
        assert_eq!(purpose("wit_dylib_list_append"), values("list", true));
        assert_eq!(purpose("wit_dylib_pop_map_iter_next"), values("map", false));
        assert_eq!(purpose("wit_dylib_pop_list_iter"), values("list", false));
        assert_eq!(purpose("wit_dylib_pop_u64"), values("u64", false));
        assert_eq!(purpose("wit_dylib_push_own"), values("own", true));
        assert_eq!(
            purpose("wit_dylib_resource_dtor"),
            Purpose::ExportedResource
        );
        assert_eq!(purpose("wit_dylib_export_async_call"), Purpose::AsyncExport);
        assert_eq!(purpose("wit_dylib_export_call"), Purpose::Export);
        assert_eq!(purpose("wit_dylib_initialize"), Purpose::Bindings);
        assert_eq!(purpose("cabi_realloc"), Purpose::Bindings);
    }

    fn wit(source: &str) -> Wit {
        let mut resolve = Resolve::default();
        let pkg = resolve.push_str("t.wit", source).unwrap();
        let world = resolve.select_world(&[pkg], None).unwrap();
        Wit { resolve, world }
    }

    #[test]
    fn needed_for_names_the_type_and_the_function() {
        let w = wit("package t:app@1.0.0;
            interface store {
              resource blob { size: func() -> u32; }
              record entry { key: string, tags: list<string> }
              type counts = map<string, u32>;
              put: func(e: entry, c: map<string, u32>);
              get: func(b: borrow<blob>) -> option<entry>;
              totals: func() -> counts;
            }
            world app {
              import store;
              export store;
              export run: func(x: u8) -> result<u32, string>;
            }");
        let w = Some(&w);
        // Into the interpreter: an export's parameters, in export order.
        assert_eq!(
            needed_for("wit_dylib_push_map", w),
            "for `map<string, u32>` in export `t:app/store.put@1.0.0`"
        );
        assert_eq!(
            needed_for("wit_dylib_push_record", w),
            "for record `entry` in export `t:app/store.put@1.0.0`"
        );
        // Out of it: an export's results, then an import's parameters.
        assert_eq!(
            needed_for("wit_dylib_pop_list_iter_next", w),
            "for `list<string>` in export `t:app/store.get@1.0.0`"
        );
        assert_eq!(
            needed_for("wit_dylib_pop_map", w),
            "for map `counts` in export `t:app/store.totals@1.0.0`"
        );
        assert_eq!(
            needed_for("wit_dylib_pop_option", w),
            "for `option<entry>` in export `t:app/store.get@1.0.0`"
        );
        assert_eq!(
            needed_for("wit_dylib_pop_result", w),
            "for `result<u32, string>` in export `run`"
        );
        // A method's `self`.
        assert_eq!(
            needed_for("wit_dylib_push_borrow", w),
            "for `borrow<blob>` in export `t:app/store.[method]blob.size@1.0.0`"
        );
        assert_eq!(
            needed_for("wit_dylib_push_u8", w),
            "for `u8` in export `run`"
        );
        // Only in the other direction: still named.
        assert_eq!(
            needed_for("wit_dylib_pop_u8", w),
            "for `u8` in export `run`"
        );
        assert_eq!(
            needed_for("wit_dylib_resource_dtor", w),
            "for resource `blob` of export `t:app/store@1.0.0`"
        );
        assert_eq!(needed_for("wit_dylib_export_call", w), "for export `run`");
        // Nothing matches: the bindings need it.
        assert_eq!(needed_for("wit_dylib_push_flags", w), "by the bindings");
        assert_eq!(
            needed_for("wit_dylib_export_async_call", w),
            "by the bindings"
        );
        assert_eq!(needed_for("wit_dylib_initialize", w), "by the bindings");
        assert_eq!(needed_for("wit_dylib_push_map", None), "by the bindings");
    }
}
