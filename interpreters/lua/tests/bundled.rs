//! The bundled libraries are what the sources build: each is byte for byte
//! the file `toolchain/build.sh` made from `interpreters/lua/c/` and the
//! pinned registry sources. CI runs the toolchain build on a fresh machine
//! first, so this is a rebuild check.

#[test]
fn the_bundled_libraries_are_what_the_sources_build() {
    let build = componentize_lua::binding().unwrap_or_else(|e| panic!("{e}"));
    componentize_testkit::script::check_bundled(
        &build,
        &componentize_lua::BUNDLED,
        "interpreters/lua",
    );
}
