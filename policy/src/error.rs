/// Why a contract, message, workload or approval was refused.
///
/// Variants name the violation and carry the offending input (names and lines, never data
/// values).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    #[error("{source_name}: {message}")]
    Toml {
        source_name: String,
        message: String,
    },
    #[error("{source_name}:{line}: duplicate {kind} name `{name}`")]
    DuplicateName {
        source_name: String,
        line: usize,
        kind: &'static str,
        name: String,
    },
    #[error("{source_name}:{line}: {field} `{name}` is not a member of the contract")]
    NotAMember {
        source_name: String,
        line: usize,
        field: String,
        name: String,
    },
    #[error(
        "{source_name}:{line}: allowed field `{field}` of dataset `{dataset}` is not in its schema"
    )]
    AllowedFieldNotInSchema {
        source_name: String,
        line: usize,
        dataset: String,
        field: String,
    },
    #[error("{source_name}:{line}: invalid {field}: {reason}")]
    InvalidField {
        source_name: String,
        line: usize,
        field: String,
        reason: String,
    },
    #[error(
        "{source_name}: guards.count_column is not accepted: a count a module writes is the module's claim, not the host's; declare guards.unit_column (the column holding each row's privacy unit) and the host counts distinct units per group"
    )]
    ModuleCountNotTrusted { source_name: String },
    #[error("{source_name}:{line}: {kind} name {name:?} is not allowed: use {rule}")]
    InvalidName {
        source_name: String,
        line: usize,
        kind: &'static str,
        name: String,
        rule: &'static str,
    },
    #[error(
        "{source_name}: [attestation.snp] has no min_tcb, so it would accept any TCB, all-zero included: set min_tcb = {{ bootloader, tee, snp, microcode }} to the patch levels members accept"
    )]
    SnpMinTcbMissing { source_name: String },
    #[error(
        "{source_name}: [attestation.tdx] does not pin rtmr{index}: give its value from a trusted reference boot (96 hex characters), or rtmr{index} = \"any\" to leave it unchecked on purpose (contract verify warns)"
    )]
    TdxRtmrNotPinned { source_name: String, index: usize },
    #[error(
        "{source_name}:{line}: key broker {url} of dataset `{dataset}` is not pinned: add broker_spki_sha256 = the SPKI SHA-256 `cleanroom kbs init` printed (64 hex), so that no one else, the operator included, can answer for the broker"
    )]
    BrokerKeyNotPinned {
        source_name: String,
        line: usize,
        dataset: String,
        url: String,
    },
    #[error("{source_name}:{line}: plain-HTTP key broker {url} of dataset `{dataset}`: {reason}")]
    PlainHttpBroker {
        source_name: String,
        line: usize,
        dataset: String,
        url: String,
        reason: &'static str,
    },
    #[error("{source_name}: invalid {field}: {reason}")]
    InvalidValue {
        source_name: String,
        field: String,
        reason: String,
    },
    #[error("signed message is malformed: {reason}")]
    MalformedMessage { reason: String },
    #[error("signed message's key id {kid} is not the key of any member of the contract")]
    SignerNotAMember { kid: String },
    #[error("signature of member `{member}` does not verify")]
    BadSignature { member: String },
    #[error("message from `{member}` is a {actual}, expected a {expected}")]
    WrongMessageType {
        member: String,
        expected: &'static str,
        actual: String,
    },
    #[error("message from `{member}` is for contract {actual}, not this contract {expected}")]
    WrongContract {
        member: String,
        expected: String,
        actual: String,
    },
    #[error("contract is missing a valid signature from member `{member}`")]
    MissingContractSignature { member: String },
    #[error("key is not a valid {expected}: {reason}")]
    BadKey {
        expected: &'static str,
        reason: String,
    },
    #[error("workload input `{input}` is not a dataset of the contract")]
    UnknownInput { input: String },
    #[error(
        "workload output recipient `{recipient}` is not an agreed output recipient of the contract"
    )]
    RecipientNotAllowed { recipient: String },
    #[error("workload `{workload}` lacks an approval from `{owner}`, owner of input `{dataset}`")]
    MissingApproval {
        workload: String,
        owner: String,
        dataset: String,
    },
    #[error("`{member}` revoked its approval of workload `{workload}`")]
    ApprovalRevoked { member: String, workload: String },
    #[error(
        "member `{member}` may not cancel run `{run}`: only who requested it and the owners of its inputs may"
    )]
    CancelNotAllowed { member: String, run: String },
    #[error("`{member}`'s approval of workload `{workload}` expired at {expired_at} (Unix time)")]
    ApprovalExpired {
        member: String,
        workload: String,
        expired_at: u64,
    },
    #[error(
        "`{member}`'s approval of workload `{workload}` allows {max_runs} runs; {runs} have run"
    )]
    ApprovalRunsExhausted {
        member: String,
        workload: String,
        max_runs: u64,
        runs: u64,
    },
    #[error("approval from `{member}` is for workload {actual}, not {expected}")]
    ApprovalForOtherWorkload {
        member: String,
        expected: String,
        actual: String,
    },
    #[error("workload guard {field} = {value} is weaker than the contract's {contract_value}")]
    GuardWeakerThanContract {
        field: &'static str,
        value: u64,
        contract_value: u64,
    },
    #[error("per-row output refused: output.row_level is only for inference modules")]
    RowLevelNotForThisKind,
    #[error(
        "per-row output refused: `{recipient}` is not in the row_recipients of input `{input}` (owner `{owner}`)"
    )]
    RowRecipientNotAllowed {
        recipient: String,
        input: String,
        owner: String,
    },
    #[error(
        "member `{member}` may not propose workloads: the contract's governance.proposers are {proposers}"
    )]
    ProposerNotAllowed { member: String, proposers: String },
    #[error("the contract names proposers ({proposers}) but workload `{workload}` has no proposal")]
    MissingProposal { workload: String, proposers: String },
    #[error("proposal from `{member}` is for workload {actual}, not {expected}")]
    ProposalForOtherWorkload {
        member: String,
        expected: String,
        actual: String,
    },
    #[error(
        "workload `{workload}` asks for differential privacy but its input `{dataset}` declares no dp budget in the contract"
    )]
    NoDpBudget { workload: String, dataset: String },
    #[error(
        "the workload's dp.epsilon {epsilon} exceeds dataset `{dataset}`'s max_epsilon_per_run {cap}"
    )]
    DpAboveRunCap {
        dataset: String,
        epsilon: String,
        cap: String,
    },
    #[error(
        "request from `{member}` was created at {created_at}, outside {window} s of the room's clock ({now}): stale or from the future"
    )]
    StaleRequest {
        member: String,
        created_at: u64,
        now: u64,
        window: u64,
    },
    #[error(
        "member `{member}` may not request runs of workload `{workload}`: only the contract's governance.runners may (by default its proposer and the owners of its inputs)"
    )]
    RunNotAllowed { member: String, workload: String },
    #[error("the room is suspended by {by}")]
    Suspended { by: String },
}
