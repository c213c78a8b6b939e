//! The cache of precompiled components, keyed by module digest.
//!
//! This is the only module of the host that uses `unsafe`, for one call:
//! [`wasmtime::component::Component::deserialize`], which loads native code and so must
//! only ever see bytes produced by `Engine::precompile_component` of a compatible engine.
//!
//! Why it is sound here: the cache directory is untrusted storage (the operator controls
//! it), so every entry is `HMAC-SHA256(cache key, domain || digest || code) || code`, where
//! the cache key is a secret held only by this host (given in `SandboxConfig`, or random per
//! process). An entry is deserialized only if its MAC verifies, which proves this host wrote
//! exactly these bytes for exactly this digest with `precompile_component`; wasmtime then
//! checks its own header (version, engine settings) and refuses incompatible code. An entry
//! that fails either check is treated as tampered or stale: it is rebuilt from the
//! component bytes (whose digest the caller has already checked) and rewritten.
#![allow(unsafe_code)]

use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use wasmtime::Engine;
use wasmtime::component::Component;

use super::SandboxError;

const DOMAIN: &[u8] = b"cleanroom precompiled component v1\0";
const MAC_LEN: usize = 32;

/// What the cache did for one load (for the caller's audit log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheOutcome {
    /// No cache directory configured: compiled in memory.
    NoCache,
    /// Already loaded by this sandbox: the compiled module in memory was reused.
    Memory,
    /// Found a valid entry.
    Hit,
    /// No entry: compiled and stored.
    Miss,
    /// An entry existed but failed its MAC or wasmtime's checks: rebuilt and rewritten.
    RebuiltTampered,
}

fn mac(key: &[u8; 32], digest: &str, code: &[u8]) -> Hmac<Sha256> {
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    m.update(DOMAIN);
    m.update(digest.as_bytes());
    m.update(&[0]);
    m.update(code);
    m
}

/// Load the component with sha256 hex `digest` (already checked against `bytes` by the
/// caller) from `dir`, or compile `bytes` and store the result there.
pub(crate) fn load_or_compile(
    engine: &Engine,
    dir: Option<&Path>,
    key: &[u8; 32],
    digest: &str,
    bytes: &[u8],
) -> Result<(Component, CacheOutcome), SandboxError> {
    let Some(dir) = dir else {
        let c = Component::new(engine, bytes)
            .map_err(|e| SandboxError::InvalidComponent(e.to_string()))?;
        return Ok((c, CacheOutcome::NoCache));
    };
    let path = dir.join(format!("{digest}.cwasm"));
    let mut outcome = CacheOutcome::Miss;
    match std::fs::read(&path) {
        Ok(entry) if entry.len() > MAC_LEN => {
            let (tag, code) = entry.split_at(MAC_LEN);
            if mac(key, digest, code).verify_slice(tag).is_ok() {
                // SAFETY: `code` carries a valid MAC under this host's secret cache key,
                // so it is exactly the output of `Engine::precompile_component` that this
                // host stored for `digest` (see the module documentation); wasmtime checks
                // engine compatibility itself and returns an error if it does not match.
                match unsafe { Component::deserialize(engine, code) } {
                    Ok(c) => return Ok((c, CacheOutcome::Hit)),
                    Err(_) => outcome = CacheOutcome::RebuiltTampered,
                }
            } else {
                outcome = CacheOutcome::RebuiltTampered;
            }
        }
        Ok(_) => outcome = CacheOutcome::RebuiltTampered,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(SandboxError::Cache(format!("read {}: {e}", path.display()))),
    }
    let c =
        Component::new(engine, bytes).map_err(|e| SandboxError::InvalidComponent(e.to_string()))?;
    let code = c
        .serialize()
        .map_err(|e| SandboxError::Cache(e.to_string()))?;
    let tag = mac(key, digest, &code).finalize().into_bytes();
    let mut entry = Vec::with_capacity(MAC_LEN + code.len());
    entry.extend_from_slice(&tag);
    entry.extend_from_slice(&code);
    write_atomic(dir, &path, &entry)?;
    Ok((c, outcome))
}

fn write_atomic(dir: &Path, path: &Path, data: &[u8]) -> Result<(), SandboxError> {
    use std::io::Write;
    let err = |e: std::io::Error| SandboxError::Cache(format!("write {}: {e}", path.display()));
    std::fs::create_dir_all(dir).map_err(err)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::File::create(&tmp).map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(err)
}
