//! The bundled libraries are what the sources build: each is byte for byte
//! the file `toolchain/build.sh` made from `interpreters/lua/c/` and the
//! pinned registry sources. CI runs the toolchain build on a fresh machine
//! first, so this is a rebuild check.

use componentize_lua::{BUNDLED, Binding};

#[test]
fn the_bundled_libraries_are_what_the_sources_build() {
    let build = Binding::locate().unwrap_or_else(|e| panic!("{e}"));
    let built: Vec<_> = std::iter::once(build.interpreter())
        .chain(build.dependencies())
        .collect();
    let names: Vec<_> = built.iter().map(|lib| lib.name).collect();
    let bundled: Vec<_> = BUNDLED.iter().map(|lib| lib.name).collect();
    assert_eq!(bundled, names, "bundled libraries and link order");
    let stale: Vec<_> = BUNDLED
        .iter()
        .zip(&built)
        .filter(|(bundled, lib)| std::fs::read(&lib.path).unwrap() != bundled.bytes)
        .map(|(bundled, lib)| format!("{} (built: {})", bundled.name, lib.path.display()))
        .collect();
    assert!(
        stale.is_empty(),
        "the bundled {} differ from what the sources build; run \
         `bash toolchain/build.sh && bash interpreters/lua/bundle.sh` and commit \
         interpreters/lua/bundled/",
        stale.join(", ")
    );
}
