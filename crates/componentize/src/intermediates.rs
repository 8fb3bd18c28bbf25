//! `--keep-intermediates`: each stage's output and `commands.sh`, the stage
//! commands that reproduce them from the same inputs, rendered from the
//! [`Pipeline`] itself so that every option it used appears in them.

use crate::output;
use crate::pipeline::{BINDINGS_NAME, Built, Pipeline};
use crate::source::Source;
use crate::stages::{InitWith, Stage};
use anyhow::{Context, Result};
use std::ffi::{OsStr, OsString};
use std::path::Path;

/// The linked component's file name in the intermediates folder.
pub const LINKED_NAME: &str = "linked.wasm";

/// The script's file name in the intermediates folder.
pub const COMMANDS_NAME: &str = "commands.sh";

/// Where in-memory inputs are written so the commands can name them.
const INPUTS_DIR: &str = "inputs";

/// Writes `bindings.so`, `linked.wasm`, the component as `component_name`
/// and `commands.sh` into `dir`.
///
/// `commands.sh [OUT]` reruns the three stages into `OUT` (default: its own
/// folder). It changes to the folder the build ran in, so relative paths
/// among the options mean what they meant then; inputs given as bytes are
/// written under `dir/inputs/` and named from there.
pub fn write(dir: &Path, component_name: &str, pipeline: &Pipeline, built: &Built) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    output::write(&dir.join(BINDINGS_NAME), &built.bindings)?;
    output::write(&dir.join(LINKED_NAME), &built.linked)?;
    output::write(&dir.join(component_name), &built.component)?;
    let script = commands(dir, component_name, pipeline)?;
    output::write(&dir.join(COMMANDS_NAME), script.as_bytes())
}

/// A path argument for `source`: its path, or a copy of its bytes in `dir`.
fn input_path(dir: &Path, source: &Source) -> Result<OsString> {
    match source {
        Source::Path(p) => Ok(p.clone().into_os_string()),
        Source::Bytes { name, bytes } => {
            let inputs = std::path::absolute(dir.join(INPUTS_DIR))?;
            std::fs::create_dir_all(&inputs)
                .with_context(|| format!("cannot create `{}`", inputs.display()))?;
            let path = inputs.join(name);
            output::write(&path, bytes)?;
            Ok(path.into_os_string())
        }
    }
}

/// One word of a stage command.
enum Word {
    /// An argument, quoted as needed.
    Arg(OsString),
    /// A file in the script's output folder (`$out/NAME`).
    Out(&'static str),
    /// The final component in the output folder.
    OutComponent,
}

fn commands(dir: &Path, component_name: &str, pipeline: &Pipeline) -> Result<String> {
    let args = |args: Vec<OsString>| args.into_iter().map(Word::Arg);
    let mut generate = vec![
        Word::Arg(Stage::Generate.name().into()),
        Word::Arg(pipeline.wit.clone().into()),
    ];
    if let Some(world) = &pipeline.world {
        generate.extend(args(vec!["--world".into(), world.into()]));
    }
    generate.extend(args(pipeline.bindings_options().to_args()));
    generate.extend(args(pipeline.wit_options.to_args()));
    if pipeline.init_export() {
        generate.push(Word::Arg("--init-export".into()));
    }
    generate.extend([Word::Arg("-o".into()), Word::Out(BINDINGS_NAME)]);

    let mut link = vec![
        Word::Arg(Stage::Link.name().into()),
        Word::Out(BINDINGS_NAME),
    ];
    for lib in std::iter::once(&pipeline.interpreter).chain(&pipeline.libraries) {
        link.push(Word::Arg(input_path(dir, lib)?));
    }
    link.extend(args(pipeline.link.to_args()));
    link.extend([Word::Arg("-o".into()), Word::Out(LINKED_NAME)]);

    let mut init = vec![Word::Arg(Stage::Init.name().into()), Word::Out(LINKED_NAME)];
    match &pipeline.call {
        InitWith::Startup => {}
        InitWith::Script(script) => {
            init.extend(args(vec!["--script".into(), input_path(dir, script)?]))
        }
        InitWith::Func(call) => init.extend(args(vec!["--init-func".into(), call.into()])),
    }
    init.extend(args(pipeline.effective_init_options().to_args()));
    init.extend([Word::Arg("-o".into()), Word::OutComponent]);

    let cwd = std::env::current_dir().context("cannot read the current folder")?;
    let mut script = String::from(
        "#!/bin/sh\n\
         # Reproduces each stage of a componentize build from the previous one's\n\
         # output: sh commands.sh [OUT] (default OUT: this script's folder).\n\
         set -e\n\
         out=$(cd \"${1:-$(dirname \"$0\")}\" && pwd)\n",
    );
    script += &format!("cd {}\n", quote(cwd.as_os_str()));
    for command in [generate, link, init] {
        script += "componentize";
        for word in &command {
            script.push(' ');
            match word {
                Word::Arg(arg) => script += &quote(arg),
                Word::Out(name) => script += &format!("\"$out\"/{}", quote(name.as_ref())),
                Word::OutComponent => {
                    script += &format!("\"$out\"/{}", quote(component_name.as_ref()))
                }
            }
        }
        script.push('\n');
    }
    Ok(script)
}

/// `arg` as one POSIX shell word: as it is when no shell treats any of its
/// characters specially, else single-quoted.
fn quote(arg: &OsStr) -> String {
    let text = arg.to_string_lossy();
    if !text.is_empty() && text.chars().all(is_plain) {
        return text.into_owned();
    }
    format!("'{}'", text.replace('\'', "'\\''"))
}

/// Characters no POSIX shell treats specially in a word.
fn is_plain(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c)
}

#[cfg(test)]
mod tests {
    use super::quote;
    use std::process::Command;

    #[test]
    fn quoting_survives_the_shell() {
        let args = [
            "plain/path.wit",
            "with space",
            "it's",
            "$HOME",
            "`date`",
            "a\"b",
            "",
            "semi;colon",
            "new\nline",
            "glob*",
        ];
        let line: Vec<String> = args.iter().map(|a| quote(a.as_ref())).collect();
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {}", line.join(" ")))
            .output()
            .unwrap();
        let got: Vec<&str> = std::str::from_utf8(&out.stdout)
            .unwrap()
            .split_terminator('\0')
            .collect();
        assert_eq!(got, args);
    }
}
