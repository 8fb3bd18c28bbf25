//! The exports a bindings dylib leaves to other libraries.
//!
//! Bindings generated with exclusions (`--exclude-interface`,
//! `--exclude-export`) do not implement some of the world's exports: the
//! interpreter or another library does, with bindings of its own declared in
//! its own `component-type` section. The bindings name those exports in the
//! custom section [`EXCLUDED_EXPORTS_SECTION`], so the link stage can check
//! that exactly one of the linked libraries defines each of them. Bindings
//! without exclusions have no such section.

use anyhow::{Result, bail};

/// The custom section listing the world exports the bindings leave to other
/// libraries.
pub const EXCLUDED_EXPORTS_SECTION: &str = "componentize-excluded-exports";

/// The contents of [`EXCLUDED_EXPORTS_SECTION`]: the export names as a
/// component names them (`f`, `pkg:ns/iface@1.0.0`), one per line.
pub fn encode_excluded_exports<S: AsRef<str>>(names: &[S]) -> Vec<u8> {
    let mut out = Vec::new();
    for name in names {
        out.extend_from_slice(name.as_ref().as_bytes());
        out.push(b'\n');
    }
    out
}

/// The export names in the contents of an [`EXCLUDED_EXPORTS_SECTION`].
pub fn decode_excluded_exports(data: &[u8]) -> Result<Vec<String>> {
    let Ok(text) = std::str::from_utf8(data) else {
        bail!("the `{EXCLUDED_EXPORTS_SECTION}` section is not UTF-8");
    };
    let names: Vec<String> = text.lines().map(str::to_string).collect();
    if names
        .iter()
        .any(|n| n.is_empty() || n.contains(char::is_whitespace))
    {
        bail!("the `{EXCLUDED_EXPORTS_SECTION}` section holds a malformed export name");
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_garbage_is_refused() {
        let names = ["run", "wasi:http/incoming-handler@0.2.12"];
        let data = encode_excluded_exports(&names);
        assert_eq!(decode_excluded_exports(&data).unwrap(), names);
        assert!(decode_excluded_exports(&[]).unwrap().is_empty());
        assert!(decode_excluded_exports(b"a\n\nb\n").is_err());
        assert!(decode_excluded_exports(&[0xff]).is_err());
    }
}
