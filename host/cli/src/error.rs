//! The errors of the member tools ([`crate::keygen`], [`crate::sealing`],
//! [`crate::signing`]): one enum, each variant named for what is wrong, with the one map to
//! an exit code every binary of ours uses ([`MemberError::class`]).

use cleanroom_formats::{ErrorClass, FormatError};
use cleanroom_policy::PolicyError;
use cleanroom_room::sandbox::SandboxError;

/// What a member tool refuses, or could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MemberError {
    /// A member name that cannot appear in a contract or a file name.
    #[error("member name `{name}`: use letters, digits, `-` and `_` only")]
    BadMemberName { name: String },
    /// A private key would be overwritten.
    #[error("{path} already exists; refusing to overwrite a key")]
    WouldOverwriteKey { path: String },
    /// A key could not be encoded (PKCS#8 / SPKI).
    #[error("encoding the {what}: {detail}")]
    KeyEncoding { what: &'static str, detail: String },
    /// The contract has no dataset of that name.
    #[error("dataset `{dataset}` is not in {contract} (datasets: {known})")]
    UnknownDataset {
        dataset: String,
        contract: String,
        known: String,
    },
    /// A key file given for one dataset belongs to another.
    #[error("{path} is the key of dataset `{key_dataset}`, not `{dataset}`")]
    KeyOfAnotherDataset {
        path: String,
        key_dataset: String,
        dataset: String,
    },
    /// A master key to import for a dataset whose contract entry names no
    /// `key.master_key_id` (only PME files written with PyArrow's or Spark's key tools use
    /// one).
    #[error(
        "dataset `{dataset}` has no key.master_key_id in the contract: its file is sealed by `cleanroom dataset seal`, with a key of its own"
    )]
    NoMasterKeyId { dataset: String },
    /// A master key file that is not 32 bytes written as 64 hexadecimal digits.
    #[error("{path}: a master key must be 32 bytes written as 64 hexadecimal digits (AES-256)")]
    BadMasterKey { path: String },
    /// A plaintext Parquet input that cannot be read.
    #[error("{path}: not a readable Parquet file: {source}")]
    ParquetUnreadable {
        path: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A plaintext input whose column is missing or of another type than the contract's
    /// (`want`: the contract's spelling; `found`: the file's Arrow type, or `missing`).
    #[error("{path}: column `{column}` is {found}, the contract says {want}")]
    ColumnMismatch {
        path: String,
        column: String,
        want: String,
        found: String,
    },
    /// Writing the encrypted Parquet file failed.
    #[error("sealing `{dataset}` as encrypted Parquet: {source}")]
    ParquetEncryption {
        dataset: String,
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A sealed file that does not open as the dataset with the key given.
    #[error(
        "{path}: does not decrypt as dataset `{dataset}` with this key (wrong key, or modified/swapped file)"
    )]
    DoesNotDecrypt { path: String, dataset: String },
    /// Batches that do not fit the contract's schema, or an I/O error while sealing.
    #[error("{path}: {detail}")]
    Unreadable { path: String, detail: String },
    /// A signing key that is not any member's key in the contract.
    #[error("{path}: this key is not the signing key of any member of the contract")]
    NotAMember { path: String },
    /// A proposal file that does not exist.
    #[error("{path}: no such proposal file")]
    NoSuchProposal { path: String },
    /// A proposal the contract refuses (signature, proposer, workload).
    #[error("proposal {path}: {source}")]
    ProposalRefused {
        path: String,
        #[source]
        source: PolicyError,
    },
    /// Refused by the contract or a signed message's check.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A component refused for publication.
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// A file or format error (reading, writing, parsing).
    #[error(transparent)]
    Format(#[from] FormatError),
}

impl MemberError {
    /// Exit code 1 for what policy or verification refuses, 2 for bad input and I/O.
    pub fn class(&self) -> ErrorClass {
        match self {
            MemberError::NotAMember { .. }
            | MemberError::ProposalRefused { .. }
            | MemberError::Policy(_)
            | MemberError::Sandbox(_)
            | MemberError::DoesNotDecrypt { .. } => ErrorClass::Refused,
            MemberError::Format(f) => f.class(),
            MemberError::BadMemberName { .. }
            | MemberError::WouldOverwriteKey { .. }
            | MemberError::KeyEncoding { .. }
            | MemberError::UnknownDataset { .. }
            | MemberError::KeyOfAnotherDataset { .. }
            | MemberError::ParquetUnreadable { .. }
            | MemberError::ColumnMismatch { .. }
            | MemberError::NoMasterKeyId { .. }
            | MemberError::BadMasterKey { .. }
            | MemberError::ParquetEncryption { .. }
            | MemberError::Unreadable { .. }
            | MemberError::NoSuchProposal { .. } => ErrorClass::Invalid,
        }
    }
}

/// The class of `cause` when it is a [`MemberError`] (for the binaries' error reports).
pub fn classify(cause: &(dyn std::error::Error + 'static)) -> Option<ErrorClass> {
    cause.downcast_ref::<MemberError>().map(MemberError::class)
}

pub type Result<T, E = MemberError> = std::result::Result<T, E>;
