//! Sealed CSV / JSON-lines inputs streamed into the scan, segment by segment.
//!
//! A sealed stream is read from the file the room opened once, through the data directory's
//! capability handle, with the header it read then (*pinned*): the header is the AAD of every
//! segment, so segments of any other sealing (another version swapped in, in place or by
//! rename) do not authenticate. One thread decrypts segments into a pipe, the scan parses
//! rows from it as they come; memory holds a segment, the pipe's buffer and a batch, never
//! the whole input. A scan that ends early (a decryption failure, a truncated file) ends
//! with the error, never as a shorter input.
//!
//! Registration reads the whole input once, counting its rows (for `min_rows`, before any
//! query) and authenticating every segment; each query scans it again.

use std::io::{Read, Write};
use std::sync::{Arc, Mutex};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use cleanroom_formats::FormatError;
use cleanroom_formats::StreamError;
use cleanroom_formats::fsutil::Root;
use cleanroom_formats::stream::{self, DataKey};
use cleanroom_formats::tabular;
use cleanroom_policy::contract::Dataset;
use datafusion::common::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::PartitionStream;

use crate::error::{Result, RoomError};

/// Batches a scan may hold ahead of the query.
const IN_FLIGHT: usize = 2;

/// One sealed CSV / JSON-lines input, as a partition DataFusion scans.
pub struct SealedRows {
    dataset: Dataset,
    key: DataKey,
    file: Arc<std::fs::File>,
    /// The header as read at registration, and its length in the file.
    header: Arc<Vec<u8>>,
    path: String,
    /// The allowed fields' positions in the contract schema, and their schema.
    allowed: Vec<usize>,
    schema: SchemaRef,
    /// The first error a scan of this input met (what the run is refused with).
    failure: Arc<Mutex<Option<RoomError>>>,
}

impl std::fmt::Debug for SealedRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedRows")
            .field("dataset", self.dataset.name.get_ref())
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Reads `file` from `pos` on with positional reads (the file's own offset is not shared).
struct At {
    file: Arc<std::fs::File>,
    pos: u64,
}

impl Read for At {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = std::os::unix::fs::FileExt::read_at(self.file.as_ref(), buf, self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl SealedRows {
    /// Open `location` below `data` and pin its header. Returns the input and the header's
    /// bytes (the file identity is computed from them).
    pub fn open(
        data: &Root,
        location: &str,
        ds: &Dataset,
        key: &DataKey,
        allowed: Vec<usize>,
        schema: SchemaRef,
    ) -> Result<(Self, Vec<u8>)> {
        let path = data.display(location).display().to_string();
        let mut file = data.open_read(location)?;
        let sealed = |source| FormatError::Sealed {
            path: path.clone(),
            source,
        };
        let (_, header) = stream::read_header(&mut file).map_err(sealed)?;
        Ok((
            Self {
                dataset: ds.clone(),
                key: key.clone(),
                file: Arc::new(file),
                header: Arc::new(header.clone()),
                path,
                allowed,
                schema,
                failure: Arc::default(),
            },
            header,
        ))
    }

    /// The error a failed scan recorded, taken (at most once).
    pub fn take_failure(&self) -> Option<RoomError> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    /// Read the whole input once (blocking), counting rows; every segment authenticates.
    pub fn count_rows(&self) -> Result<u64> {
        let mut rows = 0u64;
        for b in self.scan() {
            rows += b?.num_rows() as u64;
        }
        Ok(rows)
    }

    /// The allowed columns' batches, decrypted and parsed as they are read (blocking).
    fn scan(&self) -> Scan {
        let (reader, mut writer) = match std::io::pipe() {
            Ok(p) => p,
            Err(e) => return Scan::failed(FormatError::io(self.path.clone(), e).into()),
        };
        let key = self.key.clone();
        let name = self.dataset.name.get_ref().clone();
        let mut input = std::io::Cursor::new(self.header.as_ref().clone()).chain(At {
            file: self.file.clone(),
            pos: self.header.len() as u64,
        });
        let decryptor = std::thread::spawn(move || {
            let mut closed = false;
            let r = stream::open_into(&key, Some(&name), &mut input, |chunk| {
                writer.write_all(chunk).map_err(|_| {
                    closed = true;
                    StreamError::BadHeader("the scan stopped reading")
                })
            });
            // A scan that stopped reading (a parse error, a query done early) is not a
            // decryption failure.
            match r {
                Err(_) if closed => Ok(()),
                other => other.map(|_| ()),
            }
        });
        let rows = match tabular::row_batches(&self.dataset, reader) {
            Ok(r) => r,
            Err(e) => {
                return Scan {
                    rows: None,
                    decryptor: Some(decryptor),
                    allowed: Vec::new(),
                    path: self.path.clone(),
                    parse_error: Some(e.into()),
                };
            }
        };
        Scan {
            rows: Some(rows),
            decryptor: Some(decryptor),
            allowed: self.allowed.clone(),
            path: self.path.clone(),
            parse_error: None,
        }
    }
}

/// One pass over a sealed input: parsed batches, then the decryptor's verdict.
struct Scan {
    rows: Option<Box<dyn Iterator<Item = cleanroom_formats::error::Result<RecordBatch>> + Send>>,
    decryptor: Option<std::thread::JoinHandle<std::result::Result<(), StreamError>>>,
    allowed: Vec<usize>,
    path: String,
    parse_error: Option<RoomError>,
}

impl Scan {
    fn failed(e: RoomError) -> Self {
        Self {
            rows: None,
            decryptor: None,
            allowed: Vec::new(),
            path: String::new(),
            parse_error: Some(e),
        }
    }

    /// Stop parsing (closing the pipe, so the decryptor cannot block) and take the
    /// decryptor's verdict: a decryption failure explains whatever the parser saw.
    fn finish(&mut self) -> Option<RoomError> {
        self.rows = None;
        let verdict = self.decryptor.take().map(|h| h.join());
        match verdict {
            Some(Ok(Err(source))) => Some(
                FormatError::Sealed {
                    path: self.path.clone(),
                    source,
                }
                .into(),
            ),
            Some(Err(_)) => Some(RoomError::engine("the decrypting thread panicked")),
            _ => None,
        }
    }
}

impl Iterator for Scan {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(e) = self.parse_error.take() {
            return Some(Err(self.finish().unwrap_or(e)));
        }
        let next = self.rows.as_mut()?.next();
        match next {
            Some(Ok(b)) => Some(b.project(&self.allowed).map_err(RoomError::engine)),
            Some(Err(e)) => {
                let e = self.finish().unwrap_or_else(|| e.into());
                Some(Err(e))
            }
            None => self.finish().map(Err),
        }
    }
}

impl Drop for Scan {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

impl PartitionStream for SealedRows {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
        let mut scan = self.scan();
        let failure = self.failure.clone();
        let name = self.dataset.name.get_ref().clone();
        tokio::task::spawn_blocking(move || {
            for b in scan.by_ref() {
                let item = b.map_err(|e| {
                    let what = format!("sealed input `{name}` is unreadable");
                    failure
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_or_insert(e);
                    DataFusionError::Execution(what)
                });
                let stop = item.is_err();
                if tx.blocking_send(item).is_err() || stop {
                    break;
                }
            }
        });
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}
