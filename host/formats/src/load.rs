//! Loading the signed files members hand around: contracts with their signatures,
//! workloads, proposals, approvals and governance messages (one base64 COSE_Sign1 per line).

use std::path::{Path, PathBuf};

use cleanroom_policy::message::SignedMessage;
use cleanroom_policy::{Contract, SignedContract, Workload};

use crate::error::{FormatError, Result};
use crate::fsutil;

/// The room's record of members' suspend/resume messages (one base64 COSE_Sign1 per line,
/// appended by `cleanroom governance suspend|resume --room`).
pub const GOVERNANCE_FILE: &str = "governance.msgs";

/// Read a file of base64 signed messages, one per line.
pub fn read_messages(path: &Path) -> Result<Vec<SignedMessage>> {
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = fsutil::read_text(path)?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            SignedMessage::from_base64(l).map_err(|e| FormatError::BadFile {
                path: format!("{}:{}", path.display(), i + 1),
                what: e.to_string(),
            })
        })
        .collect()
}

/// The proposal in `path`: none if the file does not exist, an error unless it holds exactly
/// one message.
pub fn read_proposal(path: &Path) -> Result<Option<SignedMessage>> {
    let mut msgs = read_messages(path)?;
    match msgs.len() {
        0 if !path.exists() => Ok(None),
        1 => Ok(msgs.pop()),
        n => Err(FormatError::BadFile {
            path: path.display().to_string(),
            what: format!("holds {n} signed messages; a proposal file holds exactly one"),
        }),
    }
}

/// Load a contract and verify every member's signature.
pub fn load_signed_contract(contract: &Path, sigs: &Path) -> Result<(SignedContract, String)> {
    let text = fsutil::read_text(contract)?;
    let parsed = Contract::parse(&text, &contract.display().to_string())?;
    let signed = SignedContract::verify(parsed, &read_messages(sigs)?)?;
    Ok((signed, text))
}

pub fn load_workload(path: &Path) -> Result<Workload> {
    let text = fsutil::read_text(path)?;
    Ok(Workload::parse(&text, &path.display().to_string())?)
}

/// Where a contract's signatures live by default: `CONTRACT.sigs`.
pub fn default_sigs(contract: &Path) -> PathBuf {
    fsutil::with_suffix(contract, ".sigs")
}

/// Where a workload's approvals live by default: `WORKLOAD.approvals`.
pub fn default_approvals(workload: &Path) -> PathBuf {
    fsutil::with_suffix(workload, ".approvals")
}

/// Where a workload's signed proposal lives by default: `WORKLOAD.proposal`.
pub fn default_proposal(workload: &Path) -> PathBuf {
    fsutil::with_suffix(workload, ".proposal")
}
