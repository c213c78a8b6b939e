//! Stage 4, load: each input decrypted in memory (never to disk) with its released key,
//! registered as a view of its allowed fields only; `min_rows` checked. `file` inputs
//! (a model, for example) are opened for the module as named artifacts.

use std::collections::BTreeMap;

use cleanroom_formats::audit::{Decision, Step};
use cleanroom_formats::fsutil::Root;
use cleanroom_formats::{FormatError, stream};
use cleanroom_policy::contract::DataFormat;
use cleanroom_policy::guards::{EffectiveGuards, OutputRule, check_min_rows};
use cleanroom_policy::{Contract, ContractDigest, Workload};

use super::{Attested, Ctx, KeysReleased, RunConfig};
use crate::engine::Engine;
use crate::error::{Result, RoomError};

/// What the approved workload runs.
#[derive(Debug, Clone, Copy)]
pub enum Program<'a> {
    /// Approved SQL, run by the engine over the views.
    Sql(&'a str),
    /// An approved Wasm component, by its digest.
    Module(&'a str),
}

/// A run with its inputs decrypted into views. Only [`load`] makes one.
#[derive(Debug)]
pub struct Loaded {
    attested: Attested,
    engine: Engine,
    artifacts: BTreeMap<String, Vec<u8>>,
    input_rows: Vec<(String, u64)>,
    guards: EffectiveGuards,
    output_rule: OutputRule,
}

impl Loaded {
    pub fn contract(&self) -> &Contract {
        self.attested.admitted().contract().contract()
    }
    pub fn signed_contract(&self) -> &cleanroom_policy::SignedContract {
        self.attested.admitted().contract()
    }
    pub fn digest(&self) -> ContractDigest {
        self.attested.admitted().contract().digest()
    }
    pub fn workload(&self) -> &Workload {
        self.attested.admitted().workload()
    }
    pub fn insecure(&self) -> bool {
        self.attested.insecure()
    }
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
    pub fn guards(&self) -> &EffectiveGuards {
        &self.guards
    }
    /// Grouped, or per-row under the policy's proof that every input's owner allowed it.
    pub fn output_rule(&self) -> &OutputRule {
        &self.output_rule
    }
    pub fn input_rows(&self) -> &[(String, u64)] {
        &self.input_rows
    }
    /// The decrypted `file` inputs (handed to the module once).
    pub(super) fn take_artifacts(&mut self) -> BTreeMap<String, Vec<u8>> {
        std::mem::take(&mut self.artifacts)
    }
    pub(super) fn workload_subject(&self) -> String {
        let w = self.workload();
        format!("{} ({})", w.name, w.digest().hex())
    }
    pub fn program(&self) -> Program<'_> {
        let w = self.workload();
        match (&w.module_digest, &w.sql) {
            (Some(d), _) => Program::Module(d),
            (None, Some(sql)) => Program::Sql(sql),
            (None, None) => unreachable!("load refuses a workload with neither SQL nor module"),
        }
    }
}

pub(super) async fn load(
    released: KeysReleased,
    cfg: &RunConfig,
    ctx: &mut Ctx<'_, '_>,
) -> Result<Loaded> {
    let (attested, keys) = released.into_parts();
    let contract = attested.admitted().contract().contract();
    let workload = attested.admitted().workload();
    let subject = format!("{} ({})", workload.name, workload.digest().hex());
    if workload.module_digest.is_none() && workload.sql.is_none() {
        return ctx.refuse(Step::Run, &subject, RoomError::NoProgram);
    }
    let output_rule = match OutputRule::for_run(contract, workload) {
        Ok(r) => r,
        Err(e) => return ctx.refuse(Step::Guard, &subject, e),
    };
    let data = Root::open(&cfg.data_dir)?;
    let mut engine = Engine::new(cfg.memory_limit)?;
    let mut input_rows = Vec::new();
    let mut artifacts = BTreeMap::new();
    for (name, key, file_id) in &keys {
        let ds = contract
            .dataset(name)
            .expect("approval::check validated the inputs");
        let location = ds.location.get_ref();
        let rows = match ds.format {
            DataFormat::Parquet => {
                // Scanned in place as the query runs: only the magic and the footer are read
                // now (the identity and the row count are in them).
                let (rows, identity) = match engine.register_parquet(ds, key, &data, location).await
                {
                    Ok(r) => r,
                    Err(e) => return ctx.refuse(Step::Decrypt, name, e),
                };
                // The version its owner registered, or nothing (I2: the operator picks no
                // version).
                match super::keys::check_file_identity(name, ds.format, &identity, file_id) {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => return ctx.refuse(Step::Decrypt, name, e),
                }
                rows
            }
            DataFormat::Csv | DataFormat::Json => {
                // Streamed into each scan: only the header is read now, then the whole input
                // once, to count its rows and authenticate every segment.
                let (input, header) = match engine.open_sealed_rows(ds, key, &data, location) {
                    Ok(r) => r,
                    Err(e) => return ctx.refuse(Step::Decrypt, name, e),
                };
                let unidentified =
                    match super::keys::check_file_identity(name, ds.format, &header, file_id) {
                        Ok(u) => u,
                        Err(e) => return ctx.refuse(Step::Decrypt, name, e),
                    };
                let rows = match engine.register_sealed_rows(ds, input).await {
                    Ok(r) => r,
                    Err(e) => return ctx.refuse(Step::Decrypt, name, e),
                };
                if let Some(e) = unidentified {
                    return ctx.refuse(Step::Decrypt, name, e);
                }
                rows
            }
            DataFormat::File => {
                let sealed = match data.read(location) {
                    Ok(b) => b,
                    Err(e) => return ctx.refuse(Step::Decrypt, name, e),
                };
                let unidentified =
                    match super::keys::check_file_identity(name, ds.format, &sealed, file_id) {
                        Ok(u) => u,
                        Err(e) => return ctx.refuse(Step::Decrypt, name, e),
                    };
                let plain = match stream::open(key, Some(name), &sealed) {
                    Ok(p) => p,
                    Err(source) => {
                        let e = FormatError::Sealed {
                            path: data.display(location).display().to_string(),
                            source,
                        };
                        return ctx.refuse(Step::Decrypt, name, e);
                    }
                };
                if let Some(e) = unidentified {
                    return ctx.refuse(Step::Decrypt, name, e);
                }
                ctx.ok(
                    Step::Decrypt,
                    name,
                    Decision::Ok,
                    &format!("file of {} bytes, for the module", plain.len()),
                )?;
                artifacts.insert(name.clone(), plain.to_vec());
                continue;
            }
        };
        if let Err(min_rows) = check_min_rows(contract, name, rows) {
            return ctx.refuse(
                Step::Precondition,
                name,
                RoomError::TooFewRows {
                    dataset: name.clone(),
                    rows,
                    min_rows,
                },
            );
        }
        ctx.ok(
            Step::Decrypt,
            name,
            Decision::Ok,
            &format!("{rows} rows; views hold allowed fields only"),
        )?;
        input_rows.push((name.clone(), rows));
    }
    let guards = EffectiveGuards::for_run(contract, workload);
    Ok(Loaded {
        attested,
        engine,
        artifacts,
        input_rows,
        guards,
        output_rule,
    })
}
