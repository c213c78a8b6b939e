//! What a member signs: its acceptance of a contract, workload proposals (SQL, or a
//! module after its component is checked), approvals. Each message is verified as its
//! reader will verify it before anything is written.

use std::path::{Path, PathBuf};

use cleanroom_policy::message::{MessageType, SignedMessage};
use cleanroom_policy::proposal::{self, ModuleSummary, Proposal, ProposalPayload};
use cleanroom_policy::workload::{ApprovalPayload, RevocationPayload};
use cleanroom_policy::{SignedContract, Workload};
use cleanroom_room::sandbox::{self, ModuleInfo, SandboxError, World};

use cleanroom_formats::fsutil::{self, FileMode};
use cleanroom_formats::keys;
use cleanroom_formats::load::{load_signed_contract, load_workload, read_messages, read_proposal};

use crate::error::{MemberError, Result};

/// Append `msg` to a file of base64 messages (atomically).
pub fn append_message(path: &Path, msg: &SignedMessage) -> Result<()> {
    let mut text = if path.exists() {
        fsutil::read_text(path)?
    } else {
        String::new()
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&msg.to_base64());
    text.push('\n');
    fsutil::write_file_atomic(path, text.as_bytes(), FileMode::Public)?;
    Ok(())
}

/// The member of `contract` whose signing key is at `key`, with the key.
fn member_of(
    contract: &cleanroom_policy::Contract,
    key: &Path,
) -> Result<(p384::ecdsa::SigningKey, String)> {
    let sk = keys::signing_key(key)?;
    let fp = cleanroom_policy::message::key_fingerprint(&p384::ecdsa::VerifyingKey::from(&sk));
    let member = contract
        .member_by_kid(&fp)
        .ok_or_else(|| MemberError::NotAMember {
            path: key.display().to_string(),
        })?
        .name
        .get_ref()
        .clone();
    Ok((sk, member))
}

/// Sign the contract at `contract` as the member whose key is at `key`, replacing that
/// member's earlier signature in `sigs`. Returns the member's name.
pub fn sign_contract(contract: &Path, key: &Path, sigs: &Path) -> Result<String> {
    let text = fsutil::read_text(contract)?;
    let c = cleanroom_policy::Contract::parse(&text, &contract.display().to_string())?;
    let (sk, member) = member_of(&c, key)?;
    let fp = cleanroom_policy::message::key_fingerprint(&p384::ecdsa::VerifyingKey::from(&sk));
    let d = c.digest();
    // Drop an earlier signature by the same member, so re-signing does not accumulate.
    let existing: Vec<SignedMessage> = read_messages(sigs)?
        .into_iter()
        .filter(|m| m.kid != fp)
        .collect();
    let msg = SignedMessage::sign(
        &sk,
        MessageType::ContractAccept,
        d.0,
        cleanroom_formats::clock::now_unix(),
        d.0.to_vec(),
    );
    let mut out = String::new();
    for m in existing.iter().chain(std::iter::once(&msg)) {
        out.push_str(&m.to_base64());
        out.push('\n');
    }
    fsutil::write_file_atomic(sigs, out.as_bytes(), FileMode::Public)?;
    Ok(member)
}

/// Sign a proposal of the workload file at `workload` (with `module` for a module workload)
/// and write it to `out`. Refuses what the run would refuse: a workload the contract does
/// not allow, or a proposer outside governance.proposers. Returns (proposer, workload).
pub fn propose(
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    module: Option<ModuleSummary>,
    out: &Path,
) -> Result<(String, Workload)> {
    let (signed, _) = load_signed_contract(contract, sigs)?;
    let text = fsutil::read_text(workload)?;
    let payload = ProposalPayload::new(&text, &workload.display().to_string(), module)?;
    let (sk, member) = member_of(signed.contract(), key)?;
    let msg = SignedMessage::sign(
        &sk,
        MessageType::WorkloadPropose,
        signed.digest().0,
        cleanroom_formats::clock::now_unix(),
        payload.to_bytes(),
    );
    // Verify it as an owner will (proposer allowed, workload valid under the contract)
    // before anything is written.
    let p = proposal::open(&signed, &msg)?;
    let mut line = msg.to_base64();
    line.push('\n');
    fsutil::write_file_atomic(out, line.as_bytes(), FileMode::Public)?;
    Ok((member, p.workload))
}

/// Read the proposal in `path`, which must exist.
fn read_existing_proposal(path: &Path) -> Result<SignedMessage> {
    read_proposal(path)?.ok_or_else(|| MemberError::NoSuchProposal {
        path: path.display().to_string(),
    })
}

/// Read and verify the proposal in `path`.
pub fn open_proposal(signed: &SignedContract, path: &Path) -> Result<Proposal> {
    let msg = read_existing_proposal(path)?;
    proposal::open(signed, &msg).map_err(|source| MemberError::ProposalRefused {
        path: path.display().to_string(),
        source,
    })
}

/// Approve the workload at `workload` as the member whose key is at `key`. When a proposal
/// is given (or the contract names proposers, which makes one required) it must propose
/// exactly this workload. Returns (approving member, proposer if any).
/// `limits` are the approval's expiry and run cap (none: [`ApprovalPayload::for_workload`]).
pub fn approve(
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    proposal_path: Option<&Path>,
    approvals: &Path,
    limits: impl FnOnce(ApprovalPayload) -> ApprovalPayload,
) -> Result<(String, Option<String>)> {
    let (signed, _) = load_signed_contract(contract, sigs)?;
    let w = load_workload(workload)?;
    w.check_against(signed.contract())?;
    let msg = proposal_path.map(read_existing_proposal).transpose()?;
    let proposer = proposal::require(&signed, &w, msg.as_ref())?;
    let (sk, member) = member_of(signed.contract(), key)?;
    let msg = SignedMessage::sign(
        &sk,
        MessageType::WorkloadApprove,
        signed.digest().0,
        cleanroom_formats::clock::now_unix(),
        limits(ApprovalPayload::for_workload(&w)).to_bytes(),
    );
    append_message(approvals, &msg)?;
    Ok((member, proposer))
}

/// Withdraw the approval of the workload at `workload` by the member whose key is at
/// `key`: a `workload-revoke` appended to `approvals`. Returns the member.
pub fn revoke(
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    approvals: &Path,
) -> Result<String> {
    let (signed, _) = load_signed_contract(contract, sigs)?;
    let w = load_workload(workload)?;
    let (sk, member) = member_of(signed.contract(), key)?;
    let msg = SignedMessage::sign(
        &sk,
        MessageType::WorkloadRevoke,
        signed.digest().0,
        cleanroom_formats::clock::now_unix(),
        RevocationPayload {
            workload_digest: w.digest().hex(),
        }
        .to_bytes(),
    );
    append_message(approvals, &msg)?;
    Ok(member)
}

/// Check `info` for publication as a `world` module: an error lists what is wrong.
pub fn check_publishable(info: &ModuleInfo, world: World) -> Result<(), SandboxError> {
    if !info.forbidden_imports.is_empty() {
        return Err(SandboxError::ForbiddenImports {
            imports: info.forbidden_imports.clone(),
        });
    }
    match info.world {
        None => Err(SandboxError::UnknownWorld {
            exports: info.exports.clone(),
        }),
        Some(w) if w != world => Err(SandboxError::WrongWorld {
            expected: world.to_string(),
            found: w.to_string(),
        }),
        Some(_) => Ok(()),
    }
}

/// What a proposal records of `bytes` as the component of the workload at `workload`,
/// after the checks `publish` makes (the component implements the workload's world and
/// imports nothing else).
pub fn module_summary(bytes: &[u8], workload: &Path) -> Result<ModuleSummary> {
    let info = sandbox::inspect(bytes)?;
    let world = World::from(load_workload(workload)?.kind);
    check_publishable(&info, world)?;
    Ok(ModuleSummary {
        digest: info.digest,
        world: world.name().to_string(),
        imports: info.imports,
    })
}

/// What [`publish`] did.
#[derive(Debug)]
pub struct Published {
    pub proposer: String,
    pub workload: Workload,
    pub world: World,
    pub module_digest: String,
    /// Where the component was stored, with a room.
    pub stored: Option<PathBuf>,
}

/// `module publish`: check the component `bytes` against the workload at `workload` (world =
/// kind, no import outside it, digest = module_digest), sign the proposal as the member
/// whose key is at `key` and write it to `out`; with `room`, store the component as
/// ROOM/modules/<digest>.wasm. A refused component is [`MemberError::Sandbox`].
pub fn publish(
    bytes: &[u8],
    contract: &Path,
    sigs: &Path,
    workload: &Path,
    key: &Path,
    out: &Path,
    room: Option<&Path>,
) -> Result<Published> {
    let summary = module_summary(bytes, workload)?;
    let digest = summary.digest.clone();
    let world = World::from(load_workload(workload)?.kind);
    let (proposer, w) = propose(contract, sigs, workload, key, Some(summary), out)?;
    let stored = match room {
        Some(room) => {
            let dest = room.join(format!("modules/{digest}.wasm"));
            fsutil::write_file_atomic(&dest, bytes, FileMode::Public)?;
            Some(dest)
        }
        None => None,
    };
    Ok(Published {
        proposer,
        workload: w,
        world,
        module_digest: digest,
        stored,
    })
}
