//! A host environment variable never reaches the output: the sandbox passes
//! no host environment unless asked (`--env`). The check runs in a child
//! process of this test binary, so that the variable is set from the start
//! without mutating this process's environment.

mod common;

const VAR: &str = "COMPONENTIZE_INIT_TEST_SECRET";
const SECRET: &str = "s3cr3t-9f4c1a7e-do-not-leak";

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Runs in the child (does nothing when the variable is not set).
#[test]
fn child_snapshot_without_the_secret() {
    let Ok(secret) = std::env::var(VAR) else {
        return;
    };
    assert_eq!(secret, SECRET);
    let snap = common::init(common::linked())
        .script("secret.snap", format!("env {VAR}\nenv PATH\nprint done\n"))
        .run()
        .unwrap();
    assert!(!contains(&snap.wasm, SECRET.as_bytes()));
    let mut demo = common::Demo::new(&snap.wasm);
    assert_eq!(demo.get(VAR).as_deref(), Some("(unset)"));
    assert_eq!(demo.get("PATH").as_deref(), Some("(unset)"));

    // Passed explicitly, the script sees it (and copies it into the table).
    let snap = common::init(common::linked())
        .env(VAR, SECRET)
        .script("secret.snap", format!("env {VAR}\n"))
        .run()
        .unwrap();
    assert!(contains(&snap.wasm, SECRET.as_bytes()));
}

#[test]
fn secret_in_the_host_environment_stays_out() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "--exact",
            "child_snapshot_without_the_secret",
            "--nocapture",
        ])
        .env(VAR, SECRET)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
}
