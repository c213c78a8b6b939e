//! Encrypted Parquet inputs scanned in place, as the query runs.
//!
//! - **Keys** reach DataFusion's Parquet reader through [`RunKeys`], an
//!   [`EncryptionFactory`] holding this run's released keys in memory. A registered table
//!   names only the factory and its dataset (`factory_options.dataset`), never a key, so no
//!   plan display, `EXPLAIN`, error or serialised plan can carry one.
//! - **The footer is pinned.** At registration the room reads the file's magic and footer
//!   once (through the data directory's capability handle), checks the file identity the
//!   owner registered and decrypts the footer with the released key. [`SealedStore`] then
//!   serves those very bytes whenever the reader asks for the end of the file, and the rest
//!   from disk. Every page is authenticated against the pinned footer (its AAD carries the
//!   file's unique id, row group, column and page ordinals), so an operator who swaps or
//!   rewrites the file while the run reads it gets an authentication failure, not another
//!   version of the dataset (I2).
//! - **Only what the query reads is decrypted:** projection and row-group pruning happen
//!   before any page is fetched; a page that fails authentication fails the query.

use std::collections::HashMap;
use std::fmt;
use std::io::{Read, Seek, SeekFrom};
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use datafusion::common::config::EncryptionFactoryOptions;
use datafusion::execution::parquet_encryption::EncryptionFactory;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::ObjectStoreExt;
use object_store::path::Path as StorePath;
use object_store::{
    CopyOptions, GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta,
    ObjectStore, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};
use parquet::encryption::decrypt::FileDecryptionProperties;
use parquet::encryption::encrypt::FileEncryptionProperties;

use cleanroom_formats::fsutil::Root;
use cleanroom_formats::parquet::LocalWrapKeys;
use cleanroom_formats::stream::DataKey;

/// The URL scheme the run's sealed inputs are registered under (no host path in plans).
pub const SCHEME: &str = "cleanroom-sealed";

/// The URL the run's data directory is registered under.
pub fn url() -> url::Url {
    url::Url::parse(&format!("{SCHEME}://inputs/")).expect("a valid URL")
}

/// The id [`RunKeys`] is registered under in the run's runtime environment.
pub const FACTORY_ID: &str = "cleanroom-run-keys";

/// The factory option naming the dataset whose key decrypts a file.
pub const DATASET_OPTION: &str = "dataset";

/// Largest footer the room reads (a footer is metadata: row groups × columns; 64 MiB is far
/// above any real file's and bounds what a forged length can make the room allocate).
pub const MAX_FOOTER: u64 = 64 << 20;

/// Why an encrypted Parquet file could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(transparent)]
    Io(#[from] cleanroom_formats::FormatError),
    #[error("reading the file: {0}")]
    Read(std::io::Error),
    #[error("not Parquet with an encrypted footer (no PARE magic)")]
    NotEncrypted,
    #[error("the footer length is out of range")]
    FooterLength,
}

/// The magic and footer of a sealed Parquet file as read once at registration.
#[derive(Clone)]
pub struct Pinned {
    /// Size of the file when it was pinned.
    pub size: u64,
    /// Where the pinned tail (footer, its length and the magic) starts.
    pub tail_start: u64,
    /// The last `size - tail_start` bytes of the file.
    pub tail: Bytes,
    /// The first four bytes (`PARE`).
    pub head: [u8; 4],
}

impl fmt::Debug for Pinned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned")
            .field("size", &self.size)
            .field("tail_start", &self.tail_start)
            .finish()
    }
}

impl Pinned {
    /// Read the magic and the footer of `rel` below `data`.
    pub fn read(data: &Root, rel: &str) -> Result<Self, PinError> {
        let mut file = data.open_read(rel)?;
        let size = file.metadata().map_err(PinError::Read)?.len();
        if size < 12 {
            return Err(PinError::NotEncrypted);
        }
        let mut head = [0u8; 4];
        file.read_exact(&mut head).map_err(PinError::Read)?;
        let mut end = [0u8; 8];
        file.seek(SeekFrom::Start(size - 8))
            .map_err(PinError::Read)?;
        file.read_exact(&mut end).map_err(PinError::Read)?;
        if &head != cleanroom_formats::parquet::ENCRYPTED_FOOTER_MAGIC
            || &end[4..] != cleanroom_formats::parquet::ENCRYPTED_FOOTER_MAGIC
        {
            return Err(PinError::NotEncrypted);
        }
        let footer_len = u64::from(u32::from_le_bytes(end[..4].try_into().expect("four bytes")));
        if footer_len > MAX_FOOTER || footer_len + 12 > size {
            return Err(PinError::FooterLength);
        }
        let tail_start = size - 8 - footer_len;
        let mut tail = vec![0u8; (size - tail_start) as usize];
        file.seek(SeekFrom::Start(tail_start))
            .map_err(PinError::Read)?;
        file.read_exact(&mut tail).map_err(PinError::Read)?;
        Ok(Self {
            size,
            tail_start,
            tail: tail.into(),
            head,
        })
    }

    /// The magic followed by the footer: what the file identity is computed from.
    pub fn identity_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(4 + self.tail.len());
        b.extend_from_slice(&self.head);
        b.extend_from_slice(&self.tail);
        b
    }
}

/// Decryption properties for one dataset's file. A file sealed by `cleanroom dataset seal`:
/// the released key for the footer and for the `allowed` columns, the AAD prefix naming the
/// dataset; no key exists in the room for any other column. A file written with PME's key
/// tools (`master_key_id`): the released key is that master key, and each data key is
/// unwrapped from the file's key material ([`LocalWrapKeys`]); keys under other master keys
/// are refused.
pub fn decryption_properties(
    key: &DataKey,
    allowed: &[String],
    dataset: &str,
    master_key_id: Option<&str>,
) -> parquet::errors::Result<Arc<FileDecryptionProperties>> {
    if let Some(id) = master_key_id {
        return FileDecryptionProperties::with_key_retriever(Arc::new(LocalWrapKeys::new(
            id,
            key.key_bytes(),
        )))
        .build();
    }
    let mut b = FileDecryptionProperties::builder(key.key_bytes().to_vec())
        .with_aad_prefix(cleanroom_formats::parquet::aad_prefix(dataset));
    for c in allowed {
        b = b.with_column_key(c, key.key_bytes().to_vec());
    }
    b.build()
}

/// This run's released Parquet keys, by dataset, for DataFusion's Parquet reader.
#[derive(Default)]
pub struct RunKeys {
    keys: Mutex<HashMap<String, Arc<FileDecryptionProperties>>>,
}

impl fmt::Debug for RunKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<String> = self
            .keys
            .lock()
            .map(|k| k.keys().cloned().collect())
            .unwrap_or_default();
        f.debug_struct("RunKeys").field("datasets", &names).finish()
    }
}

impl RunKeys {
    pub fn insert(&self, dataset: &str, props: Arc<FileDecryptionProperties>) {
        self.keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(dataset.to_string(), props);
    }
}

#[async_trait]
impl EncryptionFactory for RunKeys {
    async fn get_file_encryption_properties(
        &self,
        _config: &EncryptionFactoryOptions,
        _schema: &arrow::datatypes::SchemaRef,
        _file_path: &StorePath,
    ) -> datafusion::common::Result<Option<Arc<FileEncryptionProperties>>> {
        Err(datafusion::common::DataFusionError::NotImplemented(
            "the room writes no Parquet files".into(),
        ))
    }

    async fn get_file_decryption_properties(
        &self,
        config: &EncryptionFactoryOptions,
        _file_path: &StorePath,
    ) -> datafusion::common::Result<Option<Arc<FileDecryptionProperties>>> {
        let dataset = config.options.get(DATASET_OPTION).ok_or_else(|| {
            datafusion::common::DataFusionError::Configuration(
                "a sealed table without its dataset".into(),
            )
        })?;
        let keys = self.keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.get(dataset).cloned().map(Some).ok_or_else(|| {
            datafusion::common::DataFusionError::Configuration(format!(
                "no key was released for `{dataset}`"
            ))
        })
    }
}

/// The run's data directory as an object store for DataFusion: reads only, the pinned tail
/// of each registered file served from memory.
#[derive(Debug)]
pub struct SealedStore {
    inner: object_store::local::LocalFileSystem,
    pinned: Mutex<HashMap<StorePath, Pinned>>,
}

impl fmt::Display for SealedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedStore")
    }
}

fn read_only(op: &str) -> object_store::Error {
    object_store::Error::NotSupported {
        source: format!("the room's sealed inputs are read-only ({op})").into(),
    }
}

impl SealedStore {
    pub fn new(data_dir: &std::path::Path) -> object_store::Result<Self> {
        Ok(Self {
            inner: object_store::local::LocalFileSystem::new_with_prefix(data_dir)?,
            pinned: Mutex::default(),
        })
    }

    pub fn pin(&self, location: StorePath, pinned: Pinned) {
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(location, pinned);
    }

    fn pinned(&self, location: &StorePath) -> Option<Pinned> {
        self.pinned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(location)
            .cloned()
    }

    fn meta(location: &StorePath, p: &Pinned) -> ObjectMeta {
        ObjectMeta {
            location: location.clone(),
            last_modified: chrono::DateTime::UNIX_EPOCH,
            size: p.size,
            e_tag: None,
            version: None,
        }
    }

    /// Bytes `range` of a pinned file: below the tail from disk, the tail from memory.
    async fn read_pinned(
        &self,
        location: &StorePath,
        p: &Pinned,
        range: Range<u64>,
    ) -> object_store::Result<Bytes> {
        if range.end <= p.tail_start {
            return self.inner.get_range(location, range).await;
        }
        let from_tail = |r: Range<u64>| {
            p.tail
                .slice((r.start - p.tail_start) as usize..(r.end - p.tail_start) as usize)
        };
        if range.start >= p.tail_start {
            return Ok(from_tail(range));
        }
        let disk = self
            .inner
            .get_range(location, range.start..p.tail_start)
            .await?;
        let mut out = Vec::with_capacity((range.end - range.start) as usize);
        out.extend_from_slice(&disk);
        out.extend_from_slice(&from_tail(p.tail_start..range.end));
        Ok(out.into())
    }
}

#[async_trait]
impl ObjectStore for SealedStore {
    async fn put_opts(
        &self,
        _location: &StorePath,
        _payload: PutPayload,
        _opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        Err(read_only("put"))
    }

    async fn put_multipart_opts(
        &self,
        _location: &StorePath,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        Err(read_only("put"))
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let Some(p) = self.pinned(location) else {
            return Err(object_store::Error::NotFound {
                path: location.to_string(),
                source: "not a registered input".into(),
            });
        };
        let range = match &options.range {
            Some(r) => r
                .as_range(p.size)
                .map_err(|e| object_store::Error::Generic {
                    store: "SealedStore",
                    source: Box::new(e),
                })?,
            None => 0..p.size,
        };
        let meta = Self::meta(location, &p);
        let bytes = if options.head {
            Bytes::new()
        } else {
            self.read_pinned(location, &p, range.clone()).await?
        };
        Ok(GetResult {
            payload: GetResultPayload::Stream(futures::stream::once(async { Ok(bytes) }).boxed()),
            meta,
            range,
            attributes: Default::default(),
        })
    }

    fn delete_stream(
        &self,
        _locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        futures::stream::once(async { Err(read_only("delete")) }).boxed()
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        let pinned = self.pinned.lock().unwrap_or_else(|p| p.into_inner());
        let found: Vec<object_store::Result<ObjectMeta>> = pinned
            .iter()
            .filter(|(loc, _)| prefix.is_none_or(|pre| loc.prefix_matches(pre)))
            .map(|(loc, p)| Ok(Self::meta(loc, p)))
            .collect();
        futures::stream::iter(found).boxed()
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        let objects = self
            .list(prefix)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<object_store::Result<Vec<_>>>()?;
        Ok(ListResult {
            common_prefixes: Vec::new(),
            objects,
        })
    }

    async fn copy_opts(
        &self,
        _from: &StorePath,
        _to: &StorePath,
        _options: CopyOptions,
    ) -> object_store::Result<()> {
        Err(read_only("copy"))
    }
}
