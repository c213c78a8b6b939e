//! Host bindings for the `cleanroom:workload` WIT package (the only `bindgen!` in the host).
//!
//! All three worlds import the same three interfaces, so the import bindings are
//! generated once, from the `query` world. The export of each world (`run`, `train`,
//! `infer`, all `func(params: string) -> result<_, string>`) is called through a typed
//! function looked up by name in `sandbox::run`.
//!
//! Every import is `trappable`: a host function that detects a capability violation
//! records it in the run state and returns an error, which traps the module.

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "query",
    imports: { default: trappable },
});

pub(crate) use cleanroom::workload::{input, log, output};
