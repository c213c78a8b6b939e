#![deny(unsafe_code)]
//! Cleanroom host. Modules: `sandbox` (Wasm components, see wit/), `commands` (CLI).

pub mod commands;
pub mod sandbox;
