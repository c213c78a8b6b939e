//! Building the guest modules (`guests/`) from source, for the demo and the tests.
//!
//! The guests are a separate cargo workspace for `wasm32-wasip2`; they are never shipped
//! prebuilt. This runs `cargo build --release --target wasm32-wasip2` on that workspace
//! (incremental: a no-op when nothing changed) and returns the directory of the `.wasm`
//! components.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cleanroom_formats::FormatError;

type Result<T> = std::result::Result<T, FormatError>;

/// The source tree this binary was built from (where `guests/` is).
pub fn source_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Build the guests once per process; returns the release directory of the components.
/// `CLEANROOM_GUEST_TARGET_DIR` overrides the guests' target directory.
pub fn build() -> Result<&'static Path> {
    static DIR: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let r = DIR.get_or_init(|| {
        let guests = source_root().join("guests");
        if !guests.join("Cargo.toml").is_file() {
            return Err(format!("{} not found: the guest sources are not here", guests.display()));
        }
        let target = std::env::var_os("CLEANROOM_GUEST_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| guests.join("target"));
        ensure_wasm_target()?;
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let out = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(guests.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            // The guests build for their own target with their own flags: the host's
            // (RUSTFLAGS, CI's clippy wrapper for the workspace crates) do not apply.
            .env_remove("CARGO_BUILD_TARGET")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTFLAGS")
            .env_remove("RUSTC_WORKSPACE_WRAPPER")
            .env_remove("CLIPPY_ARGS")
            .output()
            .map_err(|e| format!("running cargo to build the guests: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "building the guests failed (is the wasm32-wasip2 target installed? `rustup target add wasm32-wasip2`):\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(target.join("wasm32-wasip2").join("release"))
    });
    r.as_deref().map_err(|e| FormatError::BadFile {
        path: "guests".into(),
        what: e.clone(),
    })
}

/// The bytes of guest component `name` (e.g. `training-logreg`).
pub fn component(name: &str) -> Result<Vec<u8>> {
    let path = build()?.join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::read(&path).map_err(|e| FormatError::io(path, e))
}

/// Add the `wasm32-wasip2` target with rustup when the toolchain lacks it (rust-toolchain.toml
/// names it, but a toolchain installed before it was pinned may not have it). Without rustup
/// the build below says what is missing.
fn ensure_wasm_target() -> std::result::Result<(), String> {
    let Ok(list) = std::process::Command::new("rustup")
        .args(["target", "list", "--installed"])
        .current_dir(source_root())
        .output()
    else {
        return Ok(());
    };
    let installed = String::from_utf8_lossy(&list.stdout);
    if installed.lines().any(|l| l.trim() == "wasm32-wasip2") {
        return Ok(());
    }
    eprintln!("adding the wasm32-wasip2 target (rustup target add wasm32-wasip2)...");
    let status = std::process::Command::new("rustup")
        .args(["target", "add", "wasm32-wasip2"])
        .current_dir(source_root())
        .status()
        .map_err(|e| format!("running rustup: {e}"))?;
    if !status.success() {
        return Err("`rustup target add wasm32-wasip2` failed".into());
    }
    Ok(())
}
