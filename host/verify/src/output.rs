//! Opening an output as a recipient, with proof of where it came from: the envelope's
//! signature must verify with the key its header names, and that key must be the one bound
//! in REPORT_DATA of the run's evidence, which must satisfy the contract. HPKE base mode has
//! no sender: without this, anyone who knows a recipient's public key could make a `.cro`
//! that opens.

use cleanroom_attest::EvidenceBundle;
use cleanroom_formats::envelope::{self, EnvelopeError, Opened};
use cleanroom_policy::Contract;

use crate::evidence::{AttestedHost, EvidenceError, verify_host_evidence};

/// Why an output is not the attested room's.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the output is of contract {output}, not of the contract given ({contract})")]
    OtherContract { output: String, contract: String },
    #[error("run {run}'s evidence: {source}")]
    Evidence {
        run: String,
        #[source]
        source: EvidenceError,
    },
    #[error(
        "the output is signed by host key {signer}, but run {run}'s evidence binds {attested}: it was not made by the attested room"
    )]
    SignerNotAttested {
        run: String,
        signer: String,
        attested: String,
    },
}

/// An output opened and proven to come from the attested run.
#[derive(Debug)]
pub struct VerifiedOutput {
    pub opened: Opened,
    pub host: AttestedHost,
}

/// Open `file` as recipient `name` after checking that it was signed by the run's attested
/// identity key: `evidence` (the run's bundle) verified at `at_unix` against `contract`.
pub fn open_verified(
    file: &[u8],
    name: &str,
    private_key: &[u8; 32],
    contract: &Contract,
    evidence: &EvidenceBundle,
    at_unix: u64,
) -> Result<VerifiedOutput, OutputError> {
    let (header, _) = envelope::inspect(file)?;
    let digest = contract.digest().hex();
    if !header.contract_digest.eq_ignore_ascii_case(&digest) {
        return Err(OutputError::OtherContract {
            output: header.contract_digest,
            contract: digest,
        });
    }
    let host = verify_host_evidence(evidence, contract, at_unix).map_err(|source| {
        OutputError::Evidence {
            run: header.run_id.clone(),
            source,
        }
    })?;
    if !header.host_key.eq_ignore_ascii_case(&host.host_key_hex) {
        return Err(OutputError::SignerNotAttested {
            run: header.run_id,
            signer: header.host_key,
            attested: host.host_key_hex,
        });
    }
    // Checks the signature with the header's key (now known to be the attested one) before
    // anything is decrypted.
    let opened = envelope::open(file, name, private_key)?;
    Ok(VerifiedOutput { opened, host })
}
