//! # cleanroom-cli
//!
//! The `cleanroom` command members, data owners, workload authors, recipients and
//! operators use on their own machines, and the demo. It links the other crates; the room
//! and the broker run as their own binaries (`cleanroom-room`, `cleanroom-kbs`), which
//! `cleanroom run` and `cleanroom kbs` start.
//!
//! ## Module map
//! - [`cli`], [`commands`]: the command-line interface, one module per command family
//!   (argument parsing and printing).
//! - [`broker_client`]: delivering members' governance messages to brokers.
//! - [`demo`]: the multi-party demo.
//! - [`guest_build`]: building the guest modules from source (demo and tests).
//! - [`processes`]: the room and the brokers as their own processes (demo and tests).
//! - [`keygen`], [`sealing`], [`signing`]: the member tools as library functions (a
//!   member's keys; sealing and opening datasets; signing contracts, proposals, module
//!   publications and approvals), called by the commands, the demo and the tests; their
//!   errors are [`error::MemberError`].
//! - [`room_client`]: a member's client of a room service: evidence verified, TLS pinned
//!   to the attested key, signed requests.

pub mod bench;
pub mod broker_client;
pub mod cli;
pub mod commands;
pub mod demo;
pub mod error;
pub mod guest_build;
pub mod keygen;
pub mod processes;
pub mod room_client;
pub mod sealing;
pub mod signing;
