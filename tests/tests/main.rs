//! The end-to-end scenarios, in one test binary: several members, key brokers on
//! loopback, hostile inputs, the room service, the VM image. One binary, not one per file:
//! each links DataFusion and wasmtime (~200 MB and a long link apiece), and the modules
//! share one build of the guests. Run one file's tests with a filter:
//! `cargo test -p cleanroom-tests --test scenarios e2e::`.

mod common;

mod architecture;
mod bench;
mod broker_attacks;
mod dp;
mod e2e;
mod image;
mod kill;
mod modules;
mod privacy;
mod provenance;
mod sandbox;
mod service;
