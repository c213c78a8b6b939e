//! Arrow IPC streams between the host and modules: encoding a module's input batches, and the
//! defensive decoding of what a module sends back (untrusted bytes: fuzzed by
//! `fuzz/fuzz_targets/arrow_ipc.rs`, whose corpus `tests` replay).

use arrow::array::RecordBatch;
use arrow::buffer::Buffer;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamDecoder;
use arrow::ipc::writer::StreamWriter;

/// Encode `batches` (all of `schema`) as one Arrow IPC stream.
pub fn encode(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>, ArrowError> {
    let mut out = Vec::new();
    {
        let mut w = StreamWriter::try_new(&mut out, schema)?;
        for b in batches {
            w.write(b)?;
        }
        w.finish()?;
    }
    Ok(out)
}

/// Decode an IPC stream written by a module. Uses the push decoder over the bytes already
/// in memory, so a forged message length cannot make the host allocate more than the
/// module handed over; batches are validated.
pub fn decode(bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    let mut decoder = StreamDecoder::new();
    let mut buf = Buffer::from_vec(bytes);
    let mut batches = Vec::new();
    while !buf.is_empty() {
        if let Some(b) = decoder.decode(&mut buf)? {
            batches.push(b);
        }
    }
    decoder.finish()?;
    let schema = decoder
        .schema()
        .ok_or_else(|| ArrowError::IpcError("stream has no schema".into()))?;
    Ok((schema, batches))
}
