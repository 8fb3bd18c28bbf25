//! A link with every input read and every needed library found: what
//! determines the component, and the run of wit-component's linker on it.

use crate::abi::INTRINSIC_STUBS_LIBRARY;
use crate::adapter::{self, AdapterModule};
use crate::dylib::Dylib;
use crate::exports;
use crate::layout;
use crate::quiet;
use crate::report::Linked;
use crate::symbols;
use crate::trap_stubs;
use anyhow::{Context, Result, anyhow, bail};
use std::collections::BTreeSet;

/// The result of [`Link::resolve`](crate::Link::resolve): the inputs read,
/// the needed libraries found, the adapters loaded. Everything the
/// component depends on is here, so [`key_parts`](Resolved::key_parts)
/// makes a cache key and [`encode`](Resolved::encode) makes the component
/// without reading any file again.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Resolved {
    pub(crate) libs: Vec<Dylib>,
    pub(crate) adapters: Vec<AdapterModule>,
    pub(crate) dl_openable: Vec<String>,
    pub(crate) stub_missing_functions: bool,
    pub(crate) stack_size: Option<u32>,
}

impl Resolved {
    /// Everything that determines [`encode`](Resolved::encode)'s output, as
    /// an ordered list of labelled byte strings (e.g. to hash into a cache
    /// key): each library as `library:NAME` with its bytes (the built-in
    /// libdl with none), in the input-then-found order; each adapter that
    /// is used if a linked library imports its namespace as
    /// `adapter:NAME` with its bytes (the bundled preview1 one unless
    /// replaced); each dl-openable name as `dl-openable`; then
    /// `stub-missing-functions` (`true`/`false`) and `stack-size` (decimal,
    /// or `default`).
    pub fn key_parts(&self) -> Vec<(String, Vec<u8>)> {
        let mut parts = Vec::new();
        for lib in &self.libs {
            parts.push((
                format!("library:{}", lib.name),
                lib.bytes.clone().unwrap_or_default(),
            ));
        }
        for a in &self.adapters {
            parts.push((format!("adapter:{}", a.name), a.bytes.to_vec()));
        }
        for name in &self.dl_openable {
            parts.push(("dl-openable".into(), name.clone().into_bytes()));
        }
        parts.push((
            "stub-missing-functions".into(),
            self.stub_missing_functions.to_string().into_bytes(),
        ));
        let stack_size = match self.stack_size {
            Some(bytes) => bytes.to_string(),
            None => "default".into(),
        };
        parts.push(("stack-size".into(), stack_size.into_bytes()));
        parts
    }

    /// Links everything into a component: steps 2 to 7 of the crate
    /// documentation.
    pub fn encode(&self) -> Result<Linked> {
        let libs = &self.libs;
        exports::check(libs)?;
        let order = symbols::order(libs)?;
        let keep = symbols::reachable(libs, &order);
        let resolution = symbols::resolve(libs, &order, &keep, self.stub_missing_functions)?;
        let intrinsic_stubs = (!resolution.intrinsic_stubs.is_empty())
            .then(|| trap_stubs::library(&resolution.intrinsic_stubs))
            .transpose()?;
        let kept: Vec<&Dylib> = order
            .iter()
            .filter(|&&i| keep[i])
            .map(|&i| &libs[i])
            .collect();
        layout::check(&kept, self.stack_size)?;

        let imported: BTreeSet<&str> = kept
            .iter()
            .flat_map(|l| l.namespaces.iter().map(String::as_str))
            .collect();
        let adapters = adapter::used(&self.adapters, &imported);

        let run_linker = || -> Result<Vec<u8>> {
            let mut linker = wit_component::Linker::default();
            let mut uses_libdl = false;
            for l in &kept {
                match &l.bytes {
                    Some(bytes) => {
                        linker.library(&l.name, bytes, l.dl_openable)?;
                    }
                    None => uses_libdl = true,
                }
            }
            // Nothing else defines the intrinsics it stubs: last will do.
            if let Some(stubs) = &intrinsic_stubs {
                linker.library(INTRINSIC_STUBS_LIBRARY, stubs, false)?;
            }
            linker
                .stub_missing_functions(self.stub_missing_functions)
                .use_built_in_libdl(uses_libdl);
            if let Some(size) = self.stack_size {
                linker.stack_size(size);
            }
            for a in &adapters {
                linker
                    .encoder()
                    .adapter(&a.name, &a.bytes)
                    .with_context(|| format!("cannot use the adapter for `{}`", a.name))?;
            }
            linker.encoder().validate(true);
            linker
                .encode()
                .context("wit-component failed to link the libraries")
        };
        let component = match quiet::catch(run_linker) {
            Ok(result) => result?,
            Err(panic) => bail!(
                "wit-component's linker panicked on these inputs ({panic}); the checks before it did not catch the problem, please report it with the inputs"
            ),
        };
        wasmparser::Validator::new_with_features(wasmparser::WasmFeatures::all())
            .validate_all(&component)
            .map_err(|e| anyhow!("internal error: the linked component does not validate: {e}"))?;

        let (libraries, unused): (Vec<usize>, Vec<usize>) =
            order.iter().copied().partition(|&i| keep[i]);
        let report = |indexes: Vec<usize>| indexes.iter().map(|&i| libs[i].to_library()).collect();
        Ok(Linked {
            component,
            libraries: report(libraries),
            unused: report(unused),
            adapters: adapters.iter().map(|a| a.to_adapter()).collect(),
            stubs: resolution.stubs,
            missing_intrinsics: resolution.missing_intrinsics,
        })
    }
}
