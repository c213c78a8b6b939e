//! Stage 1, admit: the contract signed by every member, no member's suspension in force,
//! the workload proposed by a listed proposer and approved by every owner of its inputs.
//! Nothing is asked of the hardware or of a broker before this passes.

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::load::{
    GOVERNANCE_FILE, load_signed_contract, load_workload, read_messages, read_proposal,
};
use cleanroom_policy::message::SignedMessage;
use cleanroom_policy::{SignedContract, Workload, approval, governance, proposal};

use super::{Ctx, RunConfig};
use crate::error::Result;

/// A workload the contract admits to run now. Only [`admit`] makes one.
#[derive(Debug)]
pub struct Admitted {
    signed: SignedContract,
    workload: Workload,
    approvals: Vec<SignedMessage>,
}

impl Admitted {
    pub fn contract(&self) -> &SignedContract {
        &self.signed
    }
    pub fn workload(&self) -> &Workload {
        &self.workload
    }
    /// The owners' signed approvals (carried to the brokers, bound by the evidence).
    pub fn approvals(&self) -> &[SignedMessage] {
        &self.approvals
    }
}

/// I3: no member's suspension (in the room's governance file) is in force; checked when a
/// run starts and again before its first output is sealed, so a suspension that arrives
/// while the run is in flight withholds its outputs.
pub(super) fn check_not_suspended(
    cfg: &RunConfig,
    signed: &SignedContract,
    ctx: &mut Ctx<'_, '_>,
    reason: &str,
) -> Result<()> {
    let subject = format!("contract {}", signed.digest().hex());
    let suspensions = match read_messages(&cfg.room_dir.join(GOVERNANCE_FILE)) {
        Ok(m) => m,
        Err(e) => return ctx.refuse(Step::Suspension, &subject, e),
    };
    match governance::check(signed, &suspensions) {
        Ok(()) => ctx.ok(Step::Suspension, &subject, Decision::None, reason),
        Err(e) => ctx.refuse(Step::Suspension, &subject, e),
    }
}

pub(super) fn admit(cfg: &RunConfig, ctx: &mut Ctx<'_, '_>) -> Result<Admitted> {
    let contract_name = cfg.contract.display().to_string();
    let signed = match load_signed_contract(&cfg.contract, &cfg.contract_sigs) {
        Ok((s, _)) => s,
        Err(e) => return ctx.refuse(Step::Contract, &contract_name, e),
    };
    let digest = signed.digest();
    ctx.ok(
        Step::Contract,
        &format!("{} ({})", signed.contract().id, digest),
        Decision::Accepted,
        "signed by every member",
    )?;

    // Suspension (I3): no member's suspension may be in force when a run starts. The
    // brokers check their own copies too, so removing this file does not lift one.
    check_not_suspended(cfg, &signed, ctx, "no member's suspension is in force")?;

    let workload = match load_workload(&cfg.workload) {
        Ok(w) => w,
        Err(e) => return ctx.refuse(Step::Workload, &cfg.workload.display().to_string(), e),
    };
    let wsubject =
        cleanroom_formats::audit::workload_subject(&workload.name, &workload.digest().hex());
    let proposal = match read_proposal(&cfg.proposal) {
        Ok(p) => p,
        Err(e) => return ctx.refuse(Step::Proposal, &wsubject, e),
    };
    match proposal::require(&signed, &workload, proposal.as_ref()) {
        Ok(Some(by)) => ctx.ok(
            Step::Proposal,
            &wsubject,
            Decision::Accepted,
            &format!("proposed by {by}"),
        )?,
        Ok(None) => ctx.ok(
            Step::Proposal,
            &wsubject,
            Decision::None,
            "the contract names no proposers",
        )?,
        Err(e) => return ctx.refuse(Step::Proposal, &wsubject, e),
    }
    let approvals = match read_messages(&cfg.approvals) {
        Ok(a) => a,
        Err(e) => return ctx.refuse(Step::Approval, &wsubject, e),
    };
    // Every revocation the log records must be among the messages read (the operator owns
    // the state directory, not the log).
    let held: std::collections::BTreeSet<String> = approvals
        .iter()
        .map(|m| hex::encode(<sha2::Sha256 as sha2::Digest>::digest(m.to_base64())))
        .collect();
    for (member, hash) in
        cleanroom_formats::audit::recorded_revocations(ctx.entries(), &workload.digest().hex())
    {
        if !held.contains(&hash) {
            return ctx.refuse(
                Step::Approval,
                &wsubject,
                crate::error::RoomError::RevocationWithheld { member },
            );
        }
    }
    let usage = approval::Usage {
        now: cleanroom_formats::clock::now_unix(),
        runs: Some(cleanroom_formats::audit::admitted_runs(
            ctx.entries(),
            &workload.digest().hex(),
        )),
    };
    let approved = match approval::check(&signed, &workload, &approvals, usage) {
        Ok(a) => a,
        Err(e) => return ctx.refuse(Step::Approval, &wsubject, e),
    };
    ctx.ok(
        Step::Approval,
        &wsubject,
        Decision::Granted,
        &format!(
            "approved by {}",
            approved.approvers().collect::<Vec<_>>().join(", ")
        ),
    )?;
    Ok(Admitted {
        signed,
        workload,
        approvals,
    })
}
