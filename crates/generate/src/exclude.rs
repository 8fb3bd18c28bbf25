//! Partial bindings: the parts of a world the bindings leave to another
//! library.
//!
//! An excluded interface (imported or exported) or export gets no bindings
//! and no metadata entry: the bindings are generated for the world without
//! it, and the interpreter or another linked library implements it with
//! bindings of its own, declared in its own `component-type` section. The
//! excluded exports are named in the bindings'
//! [`EXCLUDED_EXPORTS_SECTION`](componentize_contract::excluded::EXCLUDED_EXPORTS_SECTION),
//! so the link stage can check that exactly one library defines each.
//!
//! Names match semver-aware: `wasi:http/incoming-handler` matches every
//! version of the interface, `wasi:http/incoming-handler@0.2` every 0.2.x,
//! and a full version only itself.

use anyhow::{Result, bail};
use std::collections::BTreeSet;
use wit_parser::{InterfaceId, Resolve, TypeOwner, WorldId, WorldItem, WorldKey};

/// What [`Exclusions`] leave of a world.
pub(crate) struct Reduced {
    /// A copy of the resolve whose world lacks the excluded items.
    pub resolve: Resolve,
    /// The excluded exports, as the component names them, in world order.
    pub excluded_exports: Vec<String>,
}

/// The parts of a world to leave out of the bindings.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "cli", derive(clap::Args))]
// Flattened next to other stages' options: the group needs its own id.
#[cfg_attr(feature = "cli", group(id = "exclusions"))]
#[cfg_attr(feature = "cli", command(next_help_heading = "Partial bindings"))]
pub struct Exclusions {
    /// Leave an interface, imported or exported, out of the bindings
    /// (`ns:pkg/iface` for any version, `ns:pkg/iface@0.2` for every 0.2.x);
    /// another library implements it. Repeatable.
    #[cfg_attr(feature = "cli", arg(long = "exclude-interface", value_name = "NAME"))]
    pub interfaces: Vec<String>,
    /// Leave an export of the world out of the bindings: a function (`run`)
    /// or an interface (`wasi:http/incoming-handler@0.2`); another library
    /// implements it. Repeatable.
    #[cfg_attr(feature = "cli", arg(long = "exclude-export", value_name = "NAME"))]
    pub exports: Vec<String>,
}

impl Exclusions {
    /// Adds to [`Exclusions::interfaces`].
    pub fn interface(&mut self, name: impl Into<String>) -> &mut Self {
        self.interfaces.push(name.into());
        self
    }

    /// Adds to [`Exclusions::exports`].
    pub fn export(&mut self, name: impl Into<String>) -> &mut Self {
        self.exports.push(name.into());
        self
    }

    /// Whether nothing is excluded.
    pub fn is_empty(&self) -> bool {
        self.interfaces.is_empty() && self.exports.is_empty()
    }

    /// The command-line flags that give these exclusions back.
    pub fn to_args(&self) -> Vec<std::ffi::OsString> {
        let interfaces = self.interfaces.iter().map(|n| ("--exclude-interface", n));
        let exports = self.exports.iter().map(|n| ("--exclude-export", n));
        interfaces
            .chain(exports)
            .flat_map(|(flag, name)| [flag.into(), name.into()])
            .collect()
    }

    /// The world without the excluded items, or `None` when nothing is
    /// excluded. Fails for a name that matches nothing, and for an exclusion
    /// that a kept item depends on (it uses the excluded interface's types).
    pub(crate) fn apply(&self, resolve: &Resolve, world: WorldId) -> Result<Option<Reduced>> {
        if self.is_empty() {
            return Ok(None);
        }
        let interfaces = self
            .interfaces
            .iter()
            .map(|n| Pattern::interface(n))
            .collect::<Result<Vec<_>>>()?;
        let exports = self
            .exports
            .iter()
            .map(|n| Pattern::export(n))
            .collect::<Result<Vec<_>>>()?;
        let w = &resolve.worlds[world];
        let mut used = vec![false; interfaces.len() + exports.len()];
        let mut excluded = |key: &WorldKey, item: &WorldItem, is_export: bool| {
            let mut hit = false;
            if let WorldItem::Interface { .. } = item {
                for (i, p) in interfaces.iter().enumerate() {
                    if p.matches(resolve, key) {
                        used[i] = true;
                        hit = true;
                    }
                }
            }
            if is_export {
                for (i, p) in exports.iter().enumerate() {
                    if p.matches(resolve, key) {
                        used[interfaces.len() + i] = true;
                        hit = true;
                    }
                }
            }
            hit
        };
        let [removed_imports, removed_exports] =
            [(&w.imports, false), (&w.exports, true)].map(|(items, is_export)| {
                items
                    .iter()
                    .filter(|(k, item)| excluded(k, item, is_export))
                    .map(|(k, _)| k)
                    .collect::<Vec<&WorldKey>>()
            });
        let unmatched = interfaces
            .iter()
            .chain(&exports)
            .zip(&used)
            .find(|(_, used)| !**used);
        if let Some((pattern, _)) = unmatched {
            bail!("{}", pattern.unmatched(resolve, world));
        }
        check_dependencies(resolve, world, &removed_imports, &removed_exports)?;

        let excluded_exports = removed_exports
            .iter()
            .map(|k| resolve.name_world_key(k))
            .collect();
        let removed_imports: Vec<WorldKey> = removed_imports.into_iter().cloned().collect();
        let removed_exports: Vec<WorldKey> = removed_exports.into_iter().cloned().collect();
        let mut reduced = resolve.clone();
        let w = &mut reduced.worlds[world];
        w.imports.retain(|k, _| !removed_imports.contains(k));
        w.exports.retain(|k, _| !removed_exports.contains(k));
        Ok(Some(Reduced {
            resolve: reduced,
            excluded_exports,
        }))
    }
}

/// Refuses exclusions that kept items depend on: a kept item whose types
/// come from an excluded interface would lose them (or, for an export,
/// silently get the imported interface's types instead of the exported
/// ones).
fn check_dependencies(
    resolve: &Resolve,
    world: WorldId,
    removed_imports: &[&WorldKey],
    removed_exports: &[&WorldKey],
) -> Result<()> {
    let w = &resolve.worlds[world];
    fn interface_of<'a>(
        (key, item): (&'a WorldKey, &WorldItem),
    ) -> Option<(&'a WorldKey, InterfaceId)> {
        match item {
            WorldItem::Interface { id, .. } => Some((key, *id)),
            _ => None,
        }
    }
    let imported: Vec<(&WorldKey, InterfaceId)> =
        w.imports.iter().filter_map(interface_of).collect();
    let exported: Vec<(&WorldKey, InterfaceId)> =
        w.exports.iter().filter_map(interface_of).collect();
    let kept = |list: &[(&WorldKey, InterfaceId)], removed: &[&WorldKey], id| {
        list.iter().any(|(k, i)| *i == id && !removed.contains(k))
    };
    let was = |list: &[(&WorldKey, InterfaceId)], id| list.iter().any(|(_, i)| *i == id);
    let items = w
        .imports
        .iter()
        .filter(|(k, _)| !removed_imports.contains(k))
        .map(|item| (item, false))
        .chain(
            w.exports
                .iter()
                .filter(|(k, _)| !removed_exports.contains(k))
                .map(|item| (item, true)),
        );
    for ((key, item), is_export) in items {
        let own = match item {
            WorldItem::Interface { id, .. } => Some(*id),
            _ => None,
        };
        let mut live = wit_parser::LiveTypes::default();
        live.add_world_item(resolve, item);
        for ty in live.iter() {
            let TypeOwner::Interface(owner) = resolve.types[ty].owner else {
                continue;
            };
            if Some(owner) == own {
                continue;
            }
            // An export's types come from the exported interface if the world
            // exports it, else from the imported one; an import's always
            // from the imported one.
            let available = if is_export && was(&exported, owner) {
                kept(&exported, removed_exports, owner)
            } else {
                kept(&imported, removed_imports, owner)
            };
            if !available {
                let ty_name = resolve.types[ty].name.as_deref().unwrap_or("<anonymous>");
                bail!(
                    "cannot leave `{}` out of the bindings: the {} `{}` uses its type `{ty_name}`; \
                     exclude that too, or keep both",
                    resolve.id_of(owner).unwrap_or_default(),
                    if is_export { "export" } else { "import" },
                    resolve.name_world_key(key),
                );
            }
        }
    }
    Ok(())
}

/// A name given to `--exclude-interface` or `--exclude-export`.
struct Pattern {
    /// As given, for messages.
    text: String,
    /// The flag it came from, for messages.
    flag: &'static str,
    target: Target,
}

enum Target {
    /// `namespace:package/interface`, with a version pattern.
    Interface {
        namespace: String,
        package: String,
        interface: String,
        version: VersionPattern,
    },
    /// A world-level export by its plain name (`run`).
    Name(String),
}

enum VersionPattern {
    /// No version given: any version, or none.
    Any,
    /// `0.2`: the given leading components (major, minor, patch) must
    /// match; the rest is free.
    Prefix(Vec<u64>),
    /// A version with a pre-release or build part: exactly that one.
    Exact(semver::Version),
}

impl Pattern {
    fn interface(text: &str) -> Result<Pattern> {
        let flag = "--exclude-interface";
        match Pattern::parse(text, flag)? {
            Some(target) => Ok(Pattern {
                text: text.to_string(),
                flag,
                target,
            }),
            None => bail!(
                "{flag} `{text}` is not an interface name (`namespace:package/interface`, \
                 optionally with `@version`); exclude a world-level export with --exclude-export"
            ),
        }
    }

    fn export(text: &str) -> Result<Pattern> {
        let flag = "--exclude-export";
        let target = Pattern::parse(text, flag)?.unwrap_or_else(|| Target::Name(text.to_string()));
        Ok(Pattern {
            text: text.to_string(),
            flag,
            target,
        })
    }

    /// An interface target, `None` for a plain name.
    fn parse(text: &str, flag: &str) -> Result<Option<Target>> {
        let bad = |why: &str| anyhow::anyhow!("{flag} `{text}`: {why}");
        let (base, version) = match text.split_once('@') {
            Some((base, version)) => (base, Some(version)),
            None => (text, None),
        };
        let Some((namespace, rest)) = base.split_once(':') else {
            if version.is_some() || text.is_empty() || text.contains('/') {
                return Err(bad(
                    "expected `namespace:package/interface[@version]` or a plain export name",
                ));
            }
            return Ok(None);
        };
        let Some((package, interface)) = rest.split_once('/') else {
            return Err(bad("expected `namespace:package/interface[@version]`"));
        };
        if [namespace, package, interface].iter().any(|s| s.is_empty()) {
            return Err(bad("expected `namespace:package/interface[@version]`"));
        }
        let version = match version {
            None => VersionPattern::Any,
            Some(v) if v.contains(['-', '+']) => VersionPattern::Exact(
                v.parse()
                    .map_err(|e| bad(&format!("`{v}` is not a version: {e}")))?,
            ),
            Some(v) => {
                let parts = v
                    .split('.')
                    .map(|p| p.parse::<u64>())
                    .collect::<Result<Vec<_>, _>>()
                    .ok()
                    .filter(|parts| (1..=3).contains(&parts.len()))
                    .ok_or_else(|| {
                        bad(&format!("`{v}` is not a version (e.g. `0.2` or `0.2.3`)"))
                    })?;
                VersionPattern::Prefix(parts)
            }
        };
        Ok(Some(Target::Interface {
            namespace: namespace.to_string(),
            package: package.to_string(),
            interface: interface.to_string(),
            version,
        }))
    }

    fn matches(&self, resolve: &Resolve, key: &WorldKey) -> bool {
        match (&self.target, key) {
            (Target::Name(name), WorldKey::Name(n)) => name == n,
            (
                Target::Interface {
                    namespace,
                    package,
                    interface,
                    version,
                },
                WorldKey::Interface(id),
            ) => {
                let iface = &resolve.interfaces[*id];
                let Some(pkg) = iface.package.map(|p| &resolve.packages[p].name) else {
                    return false;
                };
                pkg.namespace == *namespace
                    && pkg.name == *package
                    && iface.name.as_deref() == Some(interface.as_str())
                    && version.matches(pkg.version.as_ref())
            }
            _ => false,
        }
    }

    /// The error for a pattern that matched nothing: what the world has.
    fn unmatched(&self, resolve: &Resolve, world: WorldId) -> String {
        let w = &resolve.worlds[world];
        let (what, names): (&str, Vec<String>) = match self.flag {
            "--exclude-interface" => (
                "interface",
                w.imports
                    .iter()
                    .chain(&w.exports)
                    .filter(|(k, _)| matches!(k, WorldKey::Interface(_)))
                    .map(|(k, _)| resolve.name_world_key(k))
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect(),
            ),
            _ => (
                "export",
                w.exports
                    .keys()
                    .map(|k| resolve.name_world_key(k))
                    .collect(),
            ),
        };
        let list = if names.is_empty() {
            "none".to_string()
        } else {
            names.join(", ")
        };
        format!(
            "{} `{}` matches no {what} of world `{}` (its {what}s: {list})",
            self.flag, self.text, w.name
        )
    }
}

impl VersionPattern {
    fn matches(&self, version: Option<&semver::Version>) -> bool {
        match (self, version) {
            (VersionPattern::Any, _) => true,
            (_, None) => false,
            (VersionPattern::Exact(want), Some(v)) => want == v,
            (VersionPattern::Prefix(parts), Some(v)) => {
                let have = [v.major, v.minor, v.patch];
                // A full `x.y.z` names that release, not its pre-releases.
                parts.iter().zip(have).all(|(want, have)| *want == have)
                    && (parts.len() < 3 || v.pre.is_empty())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIT: &str = r#"
        package t:app;
        interface types { resource res; use-res: func(r: borrow<res>); }
        interface user { use types.{res}; take: func(r: own<res>); }
        interface solo { ping: func(); }
        world app {
            import t:dep/store@0.2.3;
            import t:dep/store-pre@0.3.0-rc.1;
            export solo;
            export user;
            export run: func();
        }
    "#;
    const DEP: &str = r#"
        package t:dep@0.2.3;
        interface store { get: func() -> u32; }
    "#;
    const DEP_PRE: &str = r#"
        package t:dep@0.3.0-rc.1;
        interface store-pre { get: func() -> u32; }
    "#;

    fn world() -> (Resolve, WorldId) {
        let mut resolve = Resolve::default();
        resolve.push_str("dep.wit", DEP).unwrap();
        resolve.push_str("dep-pre.wit", DEP_PRE).unwrap();
        let pkg = resolve.push_str("app.wit", WIT).unwrap();
        let world = resolve.select_world(&[pkg], None).unwrap();
        (resolve, world)
    }

    fn reduce(interfaces: &[&str], exports: &[&str]) -> Result<Reduced> {
        let (resolve, world) = world();
        let mut ex = Exclusions::default();
        for i in interfaces {
            ex.interface(*i);
        }
        for e in exports {
            ex.export(*e);
        }
        Ok(ex.apply(&resolve, world)?.expect("something is excluded"))
    }

    fn names(reduced: &Reduced, exports: bool) -> Vec<String> {
        let w = reduced
            .resolve
            .worlds
            .iter()
            .find(|(_, w)| w.name == "app")
            .unwrap()
            .1;
        let items = if exports { &w.exports } else { &w.imports };
        items
            .keys()
            .map(|k| reduced.resolve.name_world_key(k))
            .collect()
    }

    #[test]
    fn versions_match_semver_aware() {
        for pattern in [
            "t:dep/store",
            "t:dep/store@0",
            "t:dep/store@0.2",
            "t:dep/store@0.2.3",
        ] {
            let reduced = reduce(&[pattern], &[]).unwrap();
            assert!(
                !names(&reduced, false).contains(&"t:dep/store@0.2.3".to_string()),
                "{pattern}"
            );
        }
        for pattern in ["t:dep/store@0.3", "t:dep/store@0.2.4", "t:dep/store@1"] {
            let err = reduce(&[pattern], &[]).err().unwrap().to_string();
            assert!(err.contains("matches no interface of world `app`"), "{err}");
            assert!(err.contains("t:dep/store@0.2.3"), "{err}");
        }
        // A pre-release is matched by a prefix or exactly, not by its release.
        assert!(reduce(&["t:dep/store-pre@0.3"], &[]).is_ok());
        assert!(reduce(&["t:dep/store-pre@0.3.0-rc.1"], &[]).is_ok());
        assert!(reduce(&["t:dep/store-pre@0.3.0"], &[]).is_err());
    }

    #[test]
    fn exports_by_name_or_interface_are_listed_in_world_order() {
        let (resolve, world) = world();
        let order: Vec<String> = resolve.worlds[world]
            .exports
            .keys()
            .map(|k| resolve.name_world_key(k))
            .collect();
        let reduced = reduce(&[], &["t:app/solo", "run"]).unwrap();
        assert_eq!(names(&reduced, true), ["t:app/user"]);
        let expected: Vec<&String> = order.iter().filter(|n| *n != "t:app/user").collect();
        assert_eq!(
            reduced.excluded_exports.iter().collect::<Vec<_>>(),
            expected
        );
        // An import is not an export.
        let err = reduce(&[], &["t:dep/store"]).err().unwrap().to_string();
        assert!(
            err.contains("--exclude-export `t:dep/store` matches no export"),
            "{err}"
        );
        assert!(err.contains(&order.join(", ")), "{err}");
    }

    #[test]
    fn an_exclusion_a_kept_item_depends_on_is_refused() {
        let err = reduce(&[], &["t:app/types"]).err().unwrap().to_string();
        assert!(err.contains("matches no export"), "{err}");
        // `user` (exported) uses `types`, which the world imports.
        let err = reduce(&["t:app/types"], &[]).err().unwrap().to_string();
        assert!(
            err.contains("cannot leave `t:app/types` out of the bindings: the export `t:app/user` uses its type `res`"),
            "{err}"
        );
        // Leaving out both is fine.
        let reduced = reduce(&["t:app/types", "t:app/user"], &[]).unwrap();
        assert_eq!(reduced.excluded_exports, ["t:app/user"]);
        assert_eq!(
            names(&reduced, false),
            ["t:dep/store@0.2.3", "t:dep/store-pre@0.3.0-rc.1"]
        );
    }

    #[test]
    fn malformed_names_are_refused_with_the_expected_form() {
        for bad in [
            "t:dep",
            "t:/x",
            "x@1",
            "t:dep/store@x",
            "t:dep/store@1.2.3.4",
            "",
        ] {
            let err = Pattern::export(bad).err();
            let err = err.map(|e| e.to_string()).unwrap_or_default();
            assert!(err.contains("--exclude-export"), "`{bad}`: {err}");
        }
        let err = Pattern::interface("run").err().unwrap().to_string();
        assert!(
            err.contains("exclude a world-level export with --exclude-export"),
            "{err}"
        );
    }
}
