//! Adapters: core modules implementing an import namespace (preview1's
//! `wasi_snapshot_preview1`) on top of the component model. The given ones,
//! read and checked, and the bundled preview1 reactor adapter where none is
//! given for its namespace.

use crate::abi::{WASI_PREVIEW1, WASI_PREVIEW1_REACTOR};
use crate::dylib::check_core_module;
use crate::inputs::{Blob, read_file};
use crate::report::{Adapter, AdapterOrigin};
use anyhow::{Context, Result, bail};
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

/// An adapter the link may use, if a kept library imports its namespace.
#[derive(Clone, Debug)]
pub struct AdapterModule {
    /// The import namespace it implements.
    pub name: String,
    pub origin: AdapterOrigin,
    pub bytes: Cow<'static, [u8]>,
}

impl AdapterModule {
    /// The adapter as the report lists it.
    pub fn to_adapter(&self) -> Adapter {
        Adapter {
            name: self.name.clone(),
            origin: self.origin.clone(),
        }
    }
}

/// Reads and checks the given adapters and adds the bundled one unless
/// replaced: every adapter the link may use, by name.
pub fn load(given: &[(String, Blob)]) -> Result<Vec<AdapterModule>> {
    let mut by_name = BTreeMap::new();
    for (name, blob) in given {
        if name.is_empty() {
            bail!("an adapter needs the name of the import namespace it implements");
        }
        let (origin, bytes) = match blob {
            Blob::Bytes(b) => (AdapterOrigin::Given, b.clone()),
            Blob::File(p) => (AdapterOrigin::File(p.clone()), read_file(p)?),
        };
        check_core_module(
            &bytes,
            "is a component; an adapter must be a core wasm module",
        )
        .with_context(|| format!("adapter `{name}`"))?;
        let adapter = AdapterModule {
            name: name.clone(),
            origin,
            bytes: Cow::Owned(bytes),
        };
        if by_name.insert(name.clone(), adapter).is_some() {
            bail!("two adapters given for `{name}`");
        }
    }
    by_name
        .entry(WASI_PREVIEW1.to_string())
        .or_insert_with(|| AdapterModule {
            name: WASI_PREVIEW1.to_string(),
            origin: AdapterOrigin::Bundled,
            bytes: Cow::Borrowed(WASI_PREVIEW1_REACTOR),
        });
    Ok(by_name.into_values().collect())
}

/// The adapters whose namespace is `imported`, in the order of `all`.
pub fn used<'a>(all: &'a [AdapterModule], imported: &BTreeSet<&str>) -> Vec<&'a AdapterModule> {
    all.iter()
        .filter(|a| imported.contains(a.name.as_str()))
        .collect()
}
