//! The few WASI interfaces Rust's standard library imports in every module, linked with
//! nothing behind them:
//!
//! - `wasi:cli/stdout`, `wasi:cli/stderr` (and the `terminal-*` queries): both go to one
//!   in-memory pipe bounded by the run's log cap, appended to the bounded log after the
//!   run (this is where std's panic messages land);
//! - `wasi:cli/stdin`: an empty stream (std opens it; a module reads nothing from it);
//! - `wasi:io/{error,poll,streams}`: the stream plumbing of the above;
//! - `wasi:random/insecure-seed`: the seed of std's `HashMap` (no capability, no data).
//!
//! Nothing else of WASI is linked: no filesystem, sockets, HTTP, environment, arguments,
//! clocks, exit or secure random. [`RUNTIME_IMPORTS`] is the list the import check allows.

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::p2::bindings::{cli, random, sync};
use wasmtime_wasi::random::WasiRandom;
use wasmtime_wasi::{WasiCtxView, WasiView};

use super::state::RunState;

/// The WASI 0.2 interfaces (any 0.2.x version) a module may import besides its world's.
pub const RUNTIME_IMPORTS: [&str; 12] = [
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:random/insecure-seed",
];

/// Whether `import` (as named in a component) is one of [`RUNTIME_IMPORTS`] at a WASI 0.2.x
/// version.
pub(crate) fn is_runtime_import(import: &str) -> bool {
    let Some((name, version)) = import.split_once('@') else {
        return false;
    };
    RUNTIME_IMPORTS.contains(&name)
        && version
            .strip_prefix("0.2.")
            .is_some_and(|patch| !patch.is_empty() && patch.bytes().all(|b| b.is_ascii_digit()))
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

struct HasTable;
impl HasData for HasTable {
    type Data<'a> = &'a mut ResourceTable;
}

/// Add exactly the [`RUNTIME_IMPORTS`] to `linker`.
pub(crate) fn add_to_linker(l: &mut Linker<RunState>) -> wasmtime::Result<()> {
    sync::io::error::add_to_linker::<RunState, HasTable>(l, |s| &mut s.table)?;
    sync::io::poll::add_to_linker::<RunState, HasTable>(l, |s| &mut s.table)?;
    sync::io::streams::add_to_linker::<RunState, HasTable>(l, |s| &mut s.table)?;
    cli::stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_input::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_output::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdin::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stdout::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    cli::terminal_stderr::add_to_linker::<RunState, WasiCli>(l, RunState::cli)?;
    random::insecure_seed::add_to_linker::<RunState, WasiRandom>(l, |s| &mut s.random)?;
    Ok(())
}
