//! The one error type of the sandbox. Every way a module can fail is its own variant so
//! that the caller can audit it. No variant carries input data values: the only free text
//! is either host-chosen or module-chosen (a trap or an error message the module wrote,
//! which a hostile module can set to anything, but which the host never fills with data).

/// Longest module-chosen name shown as itself outside a sealed output (see [`echo_name`]).
pub const MAX_ECHOED_NAME_BYTES: usize = 64;

/// A module-chosen name as it may appear outside a sealed output: itself when it is at most
/// [`MAX_ECHOED_NAME_BYTES`] bytes of `[A-Za-z0-9_.-]`, otherwise `sha256:<16 hex>` of it
/// with its length. A module that encodes data it read into a name it asks for (a view, an
/// artifact) gets a hash back out, never the text.
pub fn echo_name(name: &str) -> String {
    let plain = !name.is_empty()
        && name.len() <= MAX_ECHOED_NAME_BYTES
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if plain {
        return name.to_string();
    }
    use sha2::Digest;
    let h = sha2::Sha256::digest(name.as_bytes());
    format!("sha256:{} ({} bytes)", &hex::encode(h)[..16], name.len())
}

/// Why loading or running a module failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum SandboxError {
    /// The sandbox configuration is not usable (for example a zero limit).
    #[error("invalid sandbox configuration: {0}")]
    InvalidConfig(String),
    /// The wasmtime engine could not be created.
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    /// The bytes are not a valid WebAssembly component.
    #[error("not a valid WebAssembly component: {0}")]
    InvalidComponent(String),
    /// The component's exports match none of the worlds `query`, `training`, `inference`.
    #[error(
        "the component does not export one of the worlds query, training or inference (exports: {exports:?})"
    )]
    UnknownWorld {
        /// The component's export names.
        exports: Vec<String>,
    },
    /// The component targets a different world than the one it was published for.
    #[error("the component is a {found} module, not a {expected} module")]
    WrongWorld {
        /// The world asked for.
        expected: String,
        /// The world the component exports.
        found: String,
    },
    /// The component imports interfaces outside its world (for example wasi:filesystem).
    #[error("the component imports interfaces outside its world: {}", imports.join(", "))]
    ForbiddenImports {
        /// The offending import names.
        imports: Vec<String>,
    },
    /// The component's bytes do not hash to the approved digest.
    #[error("module digest mismatch: approved {approved}, got {actual}")]
    DigestMismatch {
        /// The approved digest (sha256 hex).
        approved: String,
        /// The digest of the bytes presented.
        actual: String,
    },
    /// The approved digest is not 64 lowercase hex characters.
    #[error("approved digest is not a sha256 hex string")]
    MalformedDigest,
    /// The precompiled-component cache could not be read or written.
    #[error("precompiled cache error: {0}")]
    Cache(String),
    /// The run's inputs are unusable (for example a batch whose schema differs from its view).
    #[error("invalid run inputs: {0}")]
    InvalidInputs(String),
    /// The run's limits exceed what this sandbox was configured for, or are zero.
    #[error("invalid run limits: {0}")]
    InvalidLimits(String),
    /// The module was loaded by another `Sandbox` (its code belongs to another engine).
    #[error("the module was loaded by another sandbox")]
    ForeignModule,
    /// Instantiation failed (the component's imports or exports do not type-check).
    #[error("cannot instantiate the module: {0}")]
    Instantiation(String),
    /// The module ran past its CPU-time deadline.
    #[error("the module exceeded its deadline of {millis} ms")]
    DeadlineExceeded {
        /// The deadline in milliseconds.
        millis: u64,
    },
    /// The module tried to grow its memory (or tables) past the run's limit.
    #[error("the module exceeded its memory limit of {limit_bytes} bytes")]
    MemoryLimitExceeded {
        /// The limit in bytes.
        limit_bytes: usize,
    },
    /// The module wrote more output (tables and artifacts) than the run's output cap.
    #[error("the module exceeded its output cap of {limit_bytes} bytes")]
    OutputCapExceeded {
        /// The cap in bytes.
        limit_bytes: usize,
    },
    /// The module wrote more output tables, artifacts or metrics than allowed.
    #[error("the module wrote too many {what} (limit {limit})")]
    TooManyOutputs {
        /// "tables", "artifacts" or "metrics".
        what: &'static str,
        /// The limit.
        limit: usize,
    },
    /// A name the module chose (table, artifact, metric) is empty, too long or not printable.
    #[error("the module used an invalid output name")]
    InvalidOutputName,
    /// The module wrote bytes that are not a valid Arrow IPC stream, or changed a table's schema.
    #[error("the module wrote invalid Arrow IPC to output table {table:?}")]
    InvalidOutput {
        /// The output table.
        table: String,
    },
    /// The module wrote the same output artifact twice.
    #[error("the module wrote output artifact {name:?} twice")]
    DuplicateArtifact {
        /// The artifact name.
        name: String,
    },
    /// The module asked for a view that is not among this run's inputs.
    /// `view` is [`echo_name`] of what the module asked for.
    #[error("the module asked for view {view:?}, which is not among this run's inputs")]
    ViewNotInInputs {
        /// The view name the module asked for.
        view: String,
    },
    /// The module asked for an artifact that is not among this run's inputs.
    /// `name` is [`echo_name`] of what the module asked for.
    #[error("the module asked for artifact {name:?}, which is not among this run's inputs")]
    ArtifactNotInInputs {
        /// The artifact name the module asked for.
        name: String,
    },
    /// The module called a host function after its export had returned (the component
    /// model's post-return phase, the only place a module can run after it returned).
    #[error("the module called the host after its run had ended")]
    CallAfterRunEnded,
    /// The module trapped (wasm trap, abort, panic, stack overflow). `trap` is the trap
    /// kind, never a backtrace or memory contents.
    #[error("the module trapped: {trap}")]
    ModuleTrapped {
        /// The trap kind.
        trap: String,
    },
    /// The module returned an error. The message is chosen by the module.
    #[error("the module failed: {message}")]
    ModuleFailed {
        /// The module's error message (attacker-chosen text).
        message: String,
    },
}
