//! The Wasm sandbox: runs approved modules (WebAssembly components of the
//! `cleanroom:workload` worlds, see `wit/`) with least capability (invariant I4).
//!
//! - [`inspect`]: digest, world and imports of a component (no code runs).
//! - [`Sandbox::load`]: checks the bytes against the approved digest (I3), refuses imports
//!   outside the world (I4), precompiles or takes the code from the digest-keyed cache.
//! - [`Sandbox::run`]: instantiates the module in a fresh store with only the world's
//!   imports linked, a memory limit, an epoch deadline and output/log caps, calls its
//!   export with the approved parameters and returns what it wrote through `output`.
//!
//! The run ends when the export returns. Nothing a module does afterwards can reach the
//! host: wasmtime forbids imports in the post-return phase (the only guest code that runs
//! after the export returned) and the run state refuses every call once the run ended;
//! the store and instance are dropped at the end of `run`.

mod bindings;
mod error;
mod input;
mod ipc;
mod limits;
mod log;
mod output;
mod precompiled;
mod state;
mod wasi;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use sha2::{Digest, Sha256};
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

pub use error::{MAX_ECHOED_NAME_BYTES, SandboxError, echo_name};
pub use limits::*;
pub use precompiled::CacheOutcome;
pub use state::OutputName;
use state::RunState;
pub use wasi::RUNTIME_IMPORTS;

/// The WIT package version every import must carry.
pub const WIT_PACKAGE: &str = "cleanroom:workload@0.1.0";

/// The imports a module of any world may have: the interfaces of the world, plus the WASI
/// stdio/seed imports of Rust's standard library ([`RUNTIME_IMPORTS`], linked with nothing
/// behind them). Anything else (wasi:filesystem, wasi:sockets, wasi:http,
/// wasi:cli/environment, ...) is refused at inspect/publish and at load.
pub const WORLD_IMPORTS: [&str; 3] = [
    "cleanroom:workload/input@0.1.0",
    "cleanroom:workload/output@0.1.0",
    "cleanroom:workload/log@0.1.0",
];

/// Whether a module may import `import` (see [`WORLD_IMPORTS`]).
pub fn is_allowed_import(import: &str) -> bool {
    WORLD_IMPORTS.contains(&import) || wasi::is_runtime_import(import)
}

/// The world of a module: which export the host calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// `world query`, export `run`.
    Query,
    /// `world training`, export `train`.
    Training,
    /// `world inference`, export `infer`.
    Inference,
}

impl World {
    /// All worlds.
    pub const ALL: [World; 3] = [World::Query, World::Training, World::Inference];

    /// The WIT world name (`query`, `training`, `inference`).
    pub fn name(self) -> &'static str {
        match self {
            World::Query => "query",
            World::Training => "training",
            World::Inference => "inference",
        }
    }

    /// The name of the world's export function.
    pub fn export(self) -> &'static str {
        match self {
            World::Query => "run",
            World::Training => "train",
            World::Inference => "infer",
        }
    }
}

impl From<cleanroom_policy::workload::WorkloadKind> for World {
    /// A workload of kind K runs a module of world K.
    fn from(kind: cleanroom_policy::workload::WorkloadKind) -> Self {
        use cleanroom_policy::workload::WorkloadKind;
        match kind {
            WorkloadKind::Query => World::Query,
            WorkloadKind::Training => World::Training,
            WorkloadKind::Inference => World::Inference,
        }
    }
}

impl std::fmt::Display for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for World {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        World::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| format!("unknown world {s:?} (query, training, inference)"))
    }
}

/// What [`inspect`] learns about a component without running it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ModuleInfo {
    /// sha256 of the component bytes, lowercase hex (the digest owners approve).
    pub digest: String,
    /// The world, from the component's exports; `None` if it matches no world.
    pub world: Option<World>,
    /// Every import name of the component.
    pub imports: Vec<String>,
    /// Every export name of the component.
    pub exports: Vec<String>,
    /// The imports outside the world (empty for an acceptable module).
    pub forbidden_imports: Vec<String>,
}

/// sha256 hex of `bytes`.
pub fn digest_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The digest, world and imports of a component, without running it (the component is
/// validated and compiled in memory to read its types; nothing is instantiated).
pub fn inspect(component_bytes: &[u8]) -> Result<ModuleInfo, SandboxError> {
    // An inspect-only engine: no pooling, no epochs; type information does not depend on them.
    let engine = Engine::new(Config::new().wasm_component_model(true))
        .map_err(|e| SandboxError::Engine(e.to_string()))?;
    inspect_with(&engine, component_bytes)
}

fn inspect_with(engine: &Engine, bytes: &[u8]) -> Result<ModuleInfo, SandboxError> {
    let digest = digest_hex(bytes);
    let component = Component::new(engine, bytes)
        .map_err(|e| SandboxError::InvalidComponent(format!("{e:#}")))?;
    Ok(describe(engine, &component, digest))
}

/// The [`ModuleInfo`] of a compiled component.
fn describe(engine: &Engine, component: &Component, digest: String) -> ModuleInfo {
    let ty = component.component_type();
    let imports: Vec<String> = ty.imports(engine).map(|(n, _)| n.to_string()).collect();
    let exports: Vec<(String, bool)> = ty
        .exports(engine)
        .map(|(n, item)| {
            (
                n.to_string(),
                matches!(item.ty, ComponentItem::ComponentFunc(_)),
            )
        })
        .collect();
    let world = World::ALL
        .into_iter()
        .find(|w| exports.iter().any(|(n, is_fn)| *is_fn && n == w.export()));
    let forbidden_imports = imports
        .iter()
        .filter(|i| !is_allowed_import(i))
        .cloned()
        .collect();
    ModuleInfo {
        digest,
        world,
        imports,
        exports: exports.into_iter().map(|(n, _)| n).collect(),
        forbidden_imports,
    }
}

/// Sandbox-wide settings (per-run settings are [`Limits`]).
#[derive(Clone)]
pub struct SandboxConfig {
    /// Directory of the precompiled-component cache (`<digest>.cwasm`); `None`: no disk cache.
    pub cache_dir: Option<PathBuf>,
    /// Secret key authenticating cache entries (keep it stable across restarts to reuse the
    /// cache; derive it from a host secret). `None`: a random key per `Sandbox`, so entries
    /// written by another process are rebuilt.
    pub cache_key: Option<[u8; 32]>,
    /// Most runs at the same time (sizes the pooling allocator).
    pub max_concurrent_runs: u32,
    /// Largest memory limit a run may ask for (the pooling allocator's slot size).
    pub max_memory_bytes: usize,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("cache_dir", &self.cache_dir)
            .field("cache_key", &self.cache_key.map(|_| "<secret>"))
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field("max_memory_bytes", &self.max_memory_bytes)
            .finish()
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            cache_dir: None,
            cache_key: None,
            max_concurrent_runs: 8,
            max_memory_bytes: 1 << 30,
        }
    }
}

/// One input view: its schema (allowed fields only) and its batches.
#[derive(Debug, Clone)]
pub struct View {
    /// The view's schema; every batch must have it.
    pub schema: SchemaRef,
    /// The view's rows.
    pub batches: Vec<RecordBatch>,
}

/// What a run may read, and its approved parameters.
#[derive(Debug, Clone, Default)]
pub struct RunInputs {
    /// The views the run may read, by name.
    pub views: BTreeMap<String, View>,
    /// Input artifacts (for example a model's weights), by name.
    pub artifacts: BTreeMap<String, Vec<u8>>,
    /// The approved parameters (JSON text), passed to the export as is.
    pub params: String,
}

/// What a run wrote. Nothing here has passed the guards yet: the caller applies them.
#[derive(Debug, Clone, Default)]
pub struct RunOutputs {
    /// Output tables: schema and batches.
    pub tables: BTreeMap<OutputName, View>,
    /// Output artifacts (for example model weights).
    pub artifacts: BTreeMap<OutputName, Vec<u8>>,
    /// Metrics.
    pub metrics: BTreeMap<OutputName, f64>,
    /// The bounded log (keep it only under the contract's logging consent).
    pub log: String,
    /// Whether log messages were dropped at the log cap.
    pub log_truncated: bool,
}

/// The host's SQL engine, answering a module's `input.query(sql)` over the same views.
/// The error string goes to the module (never to a non-owner directly).
pub trait HostQuery: Send + Sync {
    /// Run `sql` and return its result batches (at least one, possibly empty, batch),
    /// giving up at `deadline` (the run's: the sandbox traps the module once it has passed).
    fn query(&self, sql: &str, deadline: std::time::Instant) -> Result<Vec<RecordBatch>, String>;
}

/// A module that passed the digest and import checks and is compiled, ready to run.
#[derive(Clone)]
pub struct LoadedModule {
    component: Component,
    digest: String,
    world: World,
    cache: CacheOutcome,
}

impl std::fmt::Debug for LoadedModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadedModule")
            .field("digest", &self.digest)
            .field("world", &self.world)
            .field("cache", &self.cache)
            .finish()
    }
}

impl LoadedModule {
    /// The module's digest (sha256 hex of its bytes).
    pub fn digest(&self) -> &str {
        &self.digest
    }
    /// The module's world.
    pub fn world(&self) -> World {
        self.world
    }
    /// What the precompiled cache did when this module was loaded.
    pub fn cache_outcome(&self) -> CacheOutcome {
        self.cache
    }
}

/// The wasmtime engine, linker and deadline ticker shared by all runs.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<RunState>,
    cfg: SandboxConfig,
    cache_key: [u8; 32],
    stop: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
    /// Modules loaded by this sandbox, by digest (compiled code is kept in memory).
    loaded: Mutex<HashMap<String, LoadedModule>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            let _ = t.join();
        }
    }
}

impl Sandbox {
    /// An engine with the component model, Cranelift, the pooling allocator and epoch
    /// interruption, a linker holding only the world's imports, and the deadline ticker.
    pub fn new(cfg: SandboxConfig) -> Result<Self, SandboxError> {
        if cfg.max_concurrent_runs == 0 || cfg.max_memory_bytes == 0 {
            return Err(SandboxError::InvalidConfig("zero runs or memory".into()));
        }
        if cfg.max_memory_bytes > MAX_MEMORY_BYTES {
            return Err(SandboxError::InvalidConfig(format!(
                "max_memory_bytes above {MAX_MEMORY_BYTES}"
            )));
        }
        let n = cfg.max_concurrent_runs;
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            .total_core_instances(n * 16)
            .total_memories(n * 4)
            .total_tables(n * 16)
            .total_stacks(n)
            .max_memory_size(cfg.max_memory_bytes)
            .max_core_instances_per_component(32)
            .max_memories_per_component(4)
            .max_tables_per_component(32);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .strategy(wasmtime::Strategy::Cranelift)
            .parallel_compilation(true)
            .epoch_interruption(true)
            .memory_reservation(cfg.max_memory_bytes as u64)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(|e| SandboxError::Engine(format!("{e:#}")))?;

        let mut linker: Linker<RunState> = Linker::new(&engine);
        let link = |r: wasmtime::Result<()>| r.map_err(|e| SandboxError::Engine(e.to_string()));
        link(bindings::input::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s))?;
        link(bindings::output::add_to_linker::<RunState, HasSelf<RunState>>(&mut linker, |s| s))?;
        link(bindings::log::add_to_linker::<RunState, HasSelf<RunState>>(
            &mut linker,
            |s| s,
        ))?;
        link(wasi::add_to_linker(&mut linker))?;

        let cache_key = match cfg.cache_key {
            Some(k) => k,
            None => {
                use rand::RngCore;
                let mut k = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut k);
                k
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("cleanroom-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| SandboxError::Engine(e.to_string()))?
        };
        Ok(Self {
            engine,
            linker,
            cfg,
            cache_key,
            stop,
            ticker: Some(ticker),
            loaded: Mutex::new(HashMap::new()),
        })
    }

    /// The digest, world and imports of a component (as [`inspect`]).
    pub fn inspect(&self, bytes: &[u8]) -> Result<ModuleInfo, SandboxError> {
        inspect_with(&self.engine, bytes)
    }

    /// Check `bytes` against `approved_digest` (sha256 hex) and the world's imports, then
    /// compile it or take it from the cache. Nothing runs.
    pub fn load(&self, bytes: &[u8], approved_digest: &str) -> Result<LoadedModule, SandboxError> {
        if approved_digest.len() != 64
            || !approved_digest
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(SandboxError::MalformedDigest);
        }
        let actual = digest_hex(bytes);
        if actual != approved_digest {
            return Err(SandboxError::DigestMismatch {
                approved: approved_digest.to_string(),
                actual,
            });
        }
        // The digest of these bytes was just checked: a module compiled from bytes with
        // the same digest earlier can be reused.
        if let Some(m) = self.lock_loaded().get(&actual) {
            let mut m = m.clone();
            m.cache = CacheOutcome::Memory;
            return Ok(m);
        }
        let (component, cache) = precompiled::load_or_compile(
            &self.engine,
            self.cfg.cache_dir.as_deref(),
            &self.cache_key,
            &actual,
            bytes,
        )?;
        let info = describe(&self.engine, &component, actual.clone());
        if !info.forbidden_imports.is_empty() {
            return Err(SandboxError::ForbiddenImports {
                imports: info.forbidden_imports,
            });
        }
        let Some(world) = info.world else {
            return Err(SandboxError::UnknownWorld {
                exports: info.exports,
            });
        };
        let m = LoadedModule {
            component,
            digest: actual,
            world,
            cache,
        };
        self.lock_loaded().insert(m.digest.clone(), m.clone());
        Ok(m)
    }

    fn lock_loaded(&self) -> std::sync::MutexGuard<'_, HashMap<String, LoadedModule>> {
        // A panic while holding the lock cannot leave the map inconsistent (inserts only).
        self.loaded.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Run `m` once on `inputs` within `limits`. A fresh store and instance per run: no
    /// state survives between runs, and a failed run leaves the sandbox usable.
    pub fn run(
        &self,
        m: &LoadedModule,
        inputs: RunInputs,
        limits: Limits,
        query: Option<Arc<dyn HostQuery + Send + Sync>>,
    ) -> Result<RunOutputs, SandboxError> {
        self.run_logged(m, inputs, limits, query).0
    }

    /// As [`Sandbox::run`], and also return the run's bounded log whether the run
    /// succeeded or not (for example a panic message), with its truncation flag. Keep it
    /// only under the contract's logging consent.
    pub fn run_logged(
        &self,
        m: &LoadedModule,
        inputs: RunInputs,
        limits: Limits,
        query: Option<Arc<dyn HostQuery + Send + Sync>>,
    ) -> (Result<RunOutputs, SandboxError>, RunLog) {
        let (result, state) = match self.run_inner(m, inputs, limits, query) {
            Ok((r, state)) => (r, state),
            Err(e) => return (Err(e), RunLog::default()),
        };
        let log = RunLog {
            text: state.log.clone(),
            truncated: state.log_truncated,
        };
        (result.map(|()| outputs(state)), log)
    }

    fn run_inner(
        &self,
        m: &LoadedModule,
        inputs: RunInputs,
        limits: Limits,
        query: Option<Arc<dyn HostQuery + Send + Sync>>,
    ) -> Result<(Result<(), SandboxError>, RunState), SandboxError> {
        if !Engine::same(m.component.engine(), &self.engine) {
            return Err(SandboxError::ForeignModule);
        }
        if limits.memory_bytes == 0 || limits.output_bytes == 0 || limits.deadline.is_zero() {
            return Err(SandboxError::InvalidLimits("zero limit".into()));
        }
        if limits.memory_bytes > self.cfg.max_memory_bytes {
            return Err(SandboxError::InvalidLimits(format!(
                "memory {} above the sandbox maximum {}",
                limits.memory_bytes, self.cfg.max_memory_bytes
            )));
        }
        for (name, v) in &inputs.views {
            if v.batches.iter().any(|b| b.schema() != v.schema) {
                return Err(SandboxError::InvalidInputs(format!(
                    "a batch of view {name:?} does not have the view's schema"
                )));
            }
        }
        let deadline = limits.deadline;
        let state = RunState::new(limits, inputs.views, inputs.artifacts, query);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        let ticks = deadline.as_nanos().div_ceil(EPOCH_TICK.as_nanos()) + 1;
        store.set_epoch_deadline(u64::try_from(ticks).unwrap_or(u64::MAX));
        store.epoch_deadline_trap();

        let started = std::time::Instant::now();
        store.data_mut().deadline_at = Some(started + deadline);
        let result = self.call(&mut store, m, &inputs.params);
        // Epoch checks run only in Wasm code: a module whose time ran out in a host call
        // (its `query` import, which the engine stops at this same instant) and returned
        // without another check is out of time as well.
        let overran = started.elapsed() >= deadline;
        let state = store.data_mut();
        state.ended = true;
        state.flush_stdio();
        // Dropping the store here frees the instance: nothing of the module survives.
        let state = store.into_data();
        // A recorded violation takes precedence over what the module returned (a module
        // cannot swallow a denial: the denial traps it).
        let result = match (state.violation.clone(), result) {
            (Some(v), _) => Err(v),
            (None, _) if overran => Err(SandboxError::DeadlineExceeded {
                millis: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
            }),
            (None, Ok(Ok(()))) => Ok(()),
            (None, Ok(Err(message))) => Err(SandboxError::ModuleFailed {
                message: cut(message, MAX_ERROR_MESSAGE_BYTES),
            }),
            (None, Err(e)) => Err(classify(e, &state, deadline)),
        };
        Ok((result, state))
    }

    fn call(
        &self,
        store: &mut Store<RunState>,
        m: &LoadedModule,
        params: &str,
    ) -> wasmtime::Result<Result<(), String>> {
        let instance = self.linker.instantiate(&mut *store, &m.component)?;
        let f = instance
            .get_typed_func::<(&str,), (Result<(), String>,)>(&mut *store, m.world.export())?;
        let (r,) = f.call(&mut *store, (params,))?;
        Ok(r)
    }
}

/// The outputs collected in `state`.
fn outputs(state: RunState) -> RunOutputs {
    RunOutputs {
        tables: state
            .out_tables
            .into_iter()
            .map(|(k, t)| {
                let v = View {
                    schema: t.schema,
                    batches: t.batches,
                };
                (k, v)
            })
            .collect(),
        artifacts: state.out_artifacts,
        metrics: state.metrics,
        log: state.log,
        log_truncated: state.log_truncated,
    }
}

/// `s` cut to at most `max` bytes on a character boundary.
fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// A run's bounded log (see [`Sandbox::run_logged`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLog {
    /// The log text (module `log` calls and stdout/stderr, within the log cap).
    pub text: String,
    /// Whether messages were dropped at the cap.
    pub truncated: bool,
}

/// Map a wasmtime error to the variant that names what went wrong.
fn classify(e: wasmtime::Error, state: &RunState, deadline: std::time::Duration) -> SandboxError {
    if let Some(v) = &state.violation {
        return v.clone();
    }
    if state.memory_exceeded {
        return SandboxError::MemoryLimitExceeded {
            limit_bytes: state.limits.memory_bytes,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => SandboxError::DeadlineExceeded {
            millis: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
        },
        Some(Trap::CannotLeaveComponent) => SandboxError::CallAfterRunEnded,
        Some(t) => SandboxError::ModuleTrapped {
            trap: t.to_string(),
        },
        // Not a trap: instantiation or type errors (host-chosen text, no data).
        None => SandboxError::Instantiation(format!("{e:#}")),
    }
}
