//! The wasmtime engine components run on, its compiled-code cache,
//! precompiling a component into a `.cwasm`, and loading a component file
//! (a `.wasm` or a `.cwasm`) with errors that say what the file is instead.

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::path::Path;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, Precompiled};

/// An engine for the components componentize builds: the component model
/// with `map<k, v>` (the bindings support it, as init's engine does) and
/// wasm exceptions (setjmp/longjmp in interpreters such as Lua).
///
/// With `code_cache_dir` (an absolute folder), compiled components are stored
/// there and a component compiled before is loaded instead of compiled
/// again.
///
/// Snapshots start copy-on-write: wasmtime maps a memory's initial image
/// instead of copying its data segments when the image spans at most
/// [`DENSE_IMAGE_LIMIT`] (wasmtime's default is 16 MiB, unless at least half
/// of the span is data). An interpreter's heap after init is often sparse
/// and larger than that (the Lua startup benchmark's: 2.2 MB of data over
/// 42 MB), and copying its thousands of segments is most of its startup.
///
/// This configuration is also what a `.cwasm` ([`precompile`]) is bound to:
/// the code cache does not change it, so an engine with or without a cache
/// loads the same `.cwasm` files.
pub fn engine(code_cache_dir: Option<&Path>) -> Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .wasm_component_model_map(true)
        .wasm_exceptions(true)
        .memory_guaranteed_dense_image_size(DENSE_IMAGE_LIMIT);
    if let Some(dir) = code_cache_dir {
        config.cache(Some(componentize_init::code_cache(dir)?));
    }
    Engine::new(&config)
        .map_err(anyhow::Error::from)
        .context("cannot create the wasmtime engine")
}

/// The largest memory image [`engine`] maps copy-on-write whatever its
/// density: 512 MiB. The image is built once per compiled component (and
/// stored in its `.cwasm`), so a sparse image costs its span in host memory
/// and file size, shared by every instance.
pub const DENSE_IMAGE_LIMIT: u64 = 512 << 20;

/// The first bytes of every WebAssembly binary.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// The version and layer fields of a core module (a component has another
/// layer).
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// The first bytes of every ELF file; wasmtime's precompiled artifacts are
/// ELF files.
const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// The last bytes of a `.cwasm` written by [`precompile`], after the
/// SHA-256 of wasmtime's artifact that precedes them.
const CHECKSUM_MAGIC: &[u8; 16] = b"\0componentize-v1";

/// The bytes [`precompile`] appends to wasmtime's artifact: its SHA-256,
/// then [`CHECKSUM_MAGIC`].
const TRAILER_LEN: usize = 32 + CHECKSUM_MAGIC.len();

/// How to make a `.cwasm` this build of componentize loads; the end of
/// every error about one.
const REBUILD: &str = "rebuild it with `componentize compile <component.wasm>` from this \
                       componentize, or run the .wasm it was made from";

/// Compiles `component` (the bytes of a WebAssembly component) to native
/// code for this host: a `.cwasm` that [`load`] loads without compiling, in
/// milliseconds. This is `componentize compile` and `componentize
/// --precompile`.
///
/// The bytes are wasmtime's precompiled artifact, exactly what
/// [`Engine::precompile_component`] returns, followed by its SHA-256 and a
/// 16-byte marker: [`load`] checks that checksum before it hands the
/// artifact to wasmtime, because wasmtime checks only the artifact's
/// header and engine section, not its code (a corrupt artifact could run
/// arbitrary code). The component is compiled through `engine`'s code cache
/// when it has one, so precompiling a component that was compiled before
/// (by `componentize run`, or an earlier precompile) costs no compile, and
/// running the `.wasm` after precompiling it neither.
///
/// # Version coupling
///
/// A `.cwasm` is native code for this host's CPU architecture and
/// operating system (and the CPU features Cranelift detected here), for
/// wasmtime 48, with exactly the engine configuration of [`engine`]
/// (component model, `map`, exceptions). wasmtime refuses to load it
/// anywhere else: its engine section records wasmtime's major version
/// (`48`, which must be the loading wasmtime's), the target, the
/// compiler's flags and ISA flags (a CPU feature the code uses must be
/// present on the loading host), the tunables (memory reservation and
/// guards, signals-based traps, epoch interruption, fuel, ...) and the
/// WebAssembly features it was compiled with (each must be enabled for the
/// loading engine).
/// [`Engine::precompile_compatibility_hash`] hashes this same compile
/// environment (it is what the code cache keys on): engines with equal
/// hashes load each other's artifacts. So a `.cwasm` belongs to one build
/// of componentize on one kind of machine; the `.wasm` stays the portable
/// artifact, and a `.cwasm` refused by another engine is rebuilt from it.
///
/// Only load `.cwasm` files you trust (ones you wrote): running one runs
/// its native code.
pub fn precompile(engine: &Engine, component: &[u8]) -> Result<Vec<u8>> {
    match Kind::of(component) {
        Kind::Checksummed { .. } | Kind::Precompiled(_) => bail!(
            "it is already precompiled (a .cwasm): precompile the component (.wasm) it was \
             made from"
        ),
        Kind::Elf => bail!(
            "not a WebAssembly component (an ELF file: a truncated or corrupted .cwasm?): \
             precompile the component (.wasm) instead"
        ),
        Kind::NotWasm => bail!("{NOT_WASM}"),
        Kind::CoreModule => bail!("{CORE_MODULE}"),
        Kind::Component => {}
    }
    // `Component::new` goes through the code cache (`precompile_component`
    // does not), and `serialize` returns the artifact it compiled or
    // loaded: the bytes `precompile_component` returns (a test checks).
    let mut bytes = Component::new(engine, component)
        .map_err(anyhow::Error::from)
        .context("not a valid component")?
        .serialize()
        .map_err(anyhow::Error::from)
        .context("cannot serialize the compiled component")?;
    let checksum = Sha256::digest(&bytes);
    bytes.extend_from_slice(&checksum);
    bytes.extend_from_slice(CHECKSUM_MAGIC);
    Ok(bytes)
}

/// Why a component file is not a WebAssembly binary.
const NOT_WASM: &str =
    "not a WebAssembly component (it does not start with `\\0asm`, and it is not a .cwasm)";

/// Why a core module is not a component.
const CORE_MODULE: &str = "a core WebAssembly module, not a component: build components with \
                           componentize (or wrap a module with `wasm-tools component new`)";

/// What a file's bytes are, from their first and last bytes.
enum Kind<'a> {
    /// Written by [`precompile`]: it ends with the checksum trailer.
    Checksummed {
        /// What precedes the trailer: wasmtime's artifact, unless corrupt.
        artifact: &'a [u8],
        /// The SHA-256 stored in the trailer.
        checksum: &'a [u8],
    },
    /// A wasmtime precompiled artifact ([`Engine::detect_precompiled`]) of
    /// this kind without the trailer: truncated, or written by another tool.
    Precompiled(Precompiled),
    /// Another ELF file (a truncated or corrupted `.cwasm`).
    Elf,
    NotWasm,
    CoreModule,
    Component,
}

impl Kind<'_> {
    fn of(bytes: &[u8]) -> Kind<'_> {
        if bytes.starts_with(WASM_MAGIC) {
            if bytes.get(4..8) == Some(&CORE_MODULE_VERSION) {
                return Kind::CoreModule;
            }
            return Kind::Component;
        }
        if bytes.len() >= TRAILER_LEN && bytes.ends_with(CHECKSUM_MAGIC) {
            let (artifact, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
            return Kind::Checksummed {
                artifact,
                checksum: &trailer[..32],
            };
        }
        if let Some(precompiled) = Engine::detect_precompiled(bytes) {
            return Kind::Precompiled(precompiled);
        }
        if bytes.starts_with(ELF_MAGIC) {
            return Kind::Elf;
        }
        Kind::NotWasm
    }
}

/// Reads the component at `path` and compiles it (or loads it from the
/// code cache), or loads it from a `.cwasm` written by [`precompile`]
/// (`componentize compile`, `componentize --precompile`) without compiling.
///
/// A `.cwasm` is recognized by its contents (its checksum trailer and
/// [`Engine::detect_precompiled`]), whatever the file's name. Its checksum
/// is verified first, so a truncated or corrupted `.cwasm` is an error,
/// never loaded; one that another wasmtime version, engine configuration
/// or machine made (see [`precompile`]) is an error naming the file and
/// how to rebuild it. Only load `.cwasm` files you trust: the checksum
/// guards against damage, not against a file crafted to pass it, and
/// loading a `.cwasm` runs whatever native code it holds.
///
/// A missing file, a core module, a precompiled core module and a file
/// that is not WebAssembly are errors that say so.
pub fn load(engine: &Engine, path: &Path) -> Result<Component> {
    let shown = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read `{shown}`"))?;
    match Kind::of(&bytes) {
        Kind::Checksummed { artifact, checksum } => {
            load_precompiled(engine, path, artifact, checksum)
        }
        Kind::Precompiled(Precompiled::Component) => bail!(
            "`{shown}` is a precompiled component without componentize's checksum (truncated, \
             or not written by `componentize compile`): {REBUILD}"
        ),
        Kind::Precompiled(Precompiled::Module) => {
            bail!("`{shown}` is a precompiled core WebAssembly module, not a component: {REBUILD}")
        }
        Kind::Elf => bail!(
            "`{shown}` is an ELF file but not a precompiled component (a truncated or corrupted \
             .cwasm?): {REBUILD}"
        ),
        Kind::NotWasm => bail!("`{shown}` is {NOT_WASM}"),
        Kind::CoreModule => bail!("`{shown}` is {CORE_MODULE}"),
        Kind::Component => Component::new(engine, &bytes)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("`{shown}` is not a valid component")),
    }
}

/// Loads the precompiled component `artifact` (read from `path`) once it
/// matches `checksum`.
fn load_precompiled(
    engine: &Engine,
    path: &Path,
    artifact: &[u8],
    checksum: &[u8],
) -> Result<Component> {
    let shown = path.display();
    if Sha256::digest(artifact).as_slice() != checksum {
        bail!(
            "`{shown}` is corrupt: its contents do not match the checksum `componentize \
             compile` stored in it: {REBUILD}"
        );
    }
    match Engine::detect_precompiled(artifact) {
        Some(Precompiled::Component) => {}
        Some(Precompiled::Module) => bail!(
            "`{shown}` is a precompiled core WebAssembly module, not a precompiled component: \
             {REBUILD}"
        ),
        None => bail!("`{shown}` is not a wasmtime precompiled artifact: {REBUILD}"),
    }
    // SAFETY: `Component::deserialize` trusts its input to be an artifact
    // wasmtime wrote, since it runs its code. This one was written by
    // `precompile` (`componentize compile`/`--precompile`), as its checksum
    // shows: the bytes are exactly what wasmtime returned, neither
    // truncated nor altered since (a file crafted to pass is excluded by
    // the documented contract: users load only `.cwasm` files they trust).
    // Whether it fits this engine wasmtime checks itself before using
    // anything (the version, target, flags, tunables and features in its
    // engine section), failing cleanly otherwise. The verified bytes are
    // loaded from memory rather than with `deserialize_file`, which would
    // map the file again: the file could have changed since it was
    // verified, and it would have to stay unchanged while the component is
    // in use.
    unsafe { Component::deserialize(engine, artifact) }
        .map_err(anyhow::Error::from)
        .with_context(|| {
            format!(
                "cannot load `{shown}`: it was precompiled by another wasmtime version, engine \
                 configuration or machine than this componentize's (wasmtime 48 on this host): \
                 {REBUILD}"
            )
        })
}
