//! Sealing: the sealed-stream format for files, Parquet Modular Encryption for Parquet, and
//! the output envelope (HPKE per recipient around a sealed stream).

pub mod envelope;
pub mod keyfile;
pub mod parquet;
pub mod stream;
