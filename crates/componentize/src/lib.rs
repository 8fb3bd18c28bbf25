//! componentize as a library: the whole pipeline (generate -> link -> init)
//! with a per-stage cache, for language projects that vendor the toolkit and
//! ship their own interpreter.
//!
//! ```no_run
//! use componentize::{Pipeline, Source};
//! # fn main() -> anyhow::Result<()> {
//! let built = Pipeline::new(Source::path("lua.so"), "app.wit")
//!     .script(Source::path("app.lua"))
//!     .search_path("target/toolchain/current/lib")
//!     .run(&mut |_| {})?;
//! std::fs::write("app.wasm", &built.component)?;
//! for stage in &built.stages {
//!     println!("{:?}: {:?}{}", stage.stage, stage.time, if stage.cached { " (cached)" } else { "" });
//! }
//! # Ok(()) }
//! ```
//!
//! Each stage takes the options struct of its crate
//! ([`componentize_generate::WitOptions`], [`componentize_link::Options`],
//! [`componentize_init::Options`]), the same ones the subcommands parse, and
//! each stage's output is cached under a key hashing everything it depends
//! on (see [`cache`]): a rerun with nothing changed does no stage work,
//! changing only the script reruns only init, changing the WIT reruns all
//! three.

#![warn(missing_docs)]

pub mod bundled;
pub mod cache;
pub mod intermediates;
pub mod output;
mod pipeline;
mod source;
pub mod stages;

pub use bundled::BundledInterpreter;
pub use pipeline::{BINDINGS_NAME, Built, Event, PROGRESS_INTERVAL, Pipeline, StageReport};
pub use source::Source;
pub use stages::Stage;
