//! `cleanroom kbs ...` and `cleanroom run ...`: handed over to the key broker's binary
//! (`cleanroom-kbs`) and the room's (`cleanroom-room run`), which sit beside `cleanroom`.
//! The broker runs in a binary without the room, and a run is the measured room binary's,
//! never the CLI's.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::{Command, ExitCode};

use anyhow::Context;

/// The path of a sibling binary `name` (beside the running executable).
pub fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let dir = exe
        .parent()
        .context("the running executable has no directory")?;
    // Test binaries run from target/<profile>/deps; the binaries are one level up.
    for d in [dir, dir.parent().unwrap_or(dir)] {
        let p = d.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        if p.is_file() {
            return Ok(p);
        }
    }
    anyhow::bail!(
        "`{name}` not found beside {} (build it: `cargo build --bins`, or install it next to `cleanroom`)",
        exe.display()
    )
}

/// Run sibling binary `name` with `args` (same stdin, stdout and stderr) and pass its exit
/// code through. A service (`cleanroom kbs serve`) is better run as the sibling itself
/// (`cleanroom-kbs serve`), so that a service manager's signals reach it directly.
pub fn run(name: &str, prefix: &[&str], args: &[OsString]) -> anyhow::Result<ExitCode> {
    let bin = sibling(name)?;
    let status = Command::new(&bin)
        .args(prefix)
        .args(args)
        .status()
        .with_context(|| format!("running {}", bin.display()))?;
    Ok(ExitCode::from(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(2),
    ))
}
