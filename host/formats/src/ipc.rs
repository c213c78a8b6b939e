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
///
/// arrow-ipc 59 panics (a bounds assertion in `Buffer::slice_with_length`) on a record batch
/// whose buffer offset and length point past its body, which the `arrow_ipc` fuzz target
/// found in 75 executions (`fuzz/regressions/arrow_ipc/forged-buffer-length-panics-the-decoder`).
/// A module must not be able to take the host down, so a panic inside the decoder is caught
/// and reported as the malformed input it is. Catching it is sound: the panic is a checked
/// assertion in safe code, and everything the decoder touched (its own state and the input
/// buffer) is dropped with it; nothing shared is observed afterwards.
pub fn decode(bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| decode_unchecked(bytes)))
        .unwrap_or_else(|_| {
            Err(ArrowError::IpcError(
                "malformed stream (a buffer lies outside its message)".into(),
            ))
        })
}

fn decode_unchecked(bytes: Vec<u8>) -> Result<(SchemaRef, Vec<RecordBatch>), ArrowError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The fuzz target's first crash: a batch whose buffer length points 4 GiB past its
    /// body. Decoding it is an error, not a panic.
    #[test]
    fn a_forged_buffer_length_is_an_error_not_a_panic() {
        let bytes = include_bytes!(
            "../../../fuzz/regressions/arrow_ipc/forged-buffer-length-panics-the-decoder"
        );
        assert!(matches!(
            decode(bytes.to_vec()),
            Err(ArrowError::IpcError(m)) if m == "malformed stream (a buffer lies outside its message)"
        ));
    }
}
