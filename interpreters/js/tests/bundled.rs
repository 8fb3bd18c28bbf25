//! The bundled libraries are what the sources build: each is byte for byte
//! the file `toolchain/build.sh` made from `interpreters/js/c/` and the
//! pinned QuickJS-NG sources. CI runs the toolchain build on a fresh
//! machine first, so this is a rebuild check.

use componentize_js::{BUNDLED, binding};

#[test]
fn the_bundled_libraries_are_what_the_sources_build() {
    let build = binding().unwrap_or_else(|e| panic!("{e}"));
    componentize_testkit::script::check_bundled(&build, &BUNDLED, "interpreters/js");
}
