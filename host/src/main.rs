//! `cleanroom`: parse, dispatch, map errors to exit codes (0 ok, 1 refused, 2 error).

use std::process::ExitCode;

use clap::Parser;
use cleanroom_host::cli::{Cli, dispatch};
use cleanroom_host::error::HostError;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            let mut msg = format!("error: {e}");
            for cause in e.chain().skip(1) {
                msg.push_str(&format!(": {cause}"));
            }
            eprintln!("{msg}");
            let refused = e.chain().any(|c| {
                c.downcast_ref::<HostError>()
                    .is_some_and(HostError::is_refusal)
                    || c.downcast_ref::<cleanroom_policy::PolicyError>().is_some()
                    || c.downcast_ref::<cleanroom_attest::AttestError>().is_some()
            });
            ExitCode::from(if refused { 1 } else { 2 })
        }
    }
}
