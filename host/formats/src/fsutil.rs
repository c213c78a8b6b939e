//! File access and atomic commits.
//!
//! Everything the host writes that matters (outputs, keys, broker state) is committed
//! atomically: written to a temporary file in the same directory, fsynced, renamed over the
//! target, and the directory fsynced. A crash leaves the old file or the new one, never a
//! torn one. The audit log is the exception: it is append-only and appended durably
//! ([`Root::append_durable`]), and its reader drops a torn last line (see `audit`). Reads and writes of run data go through a `cap_std` directory handle so
//! no contract field can name a path outside the directory it was given.

use std::io::Write;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use rand::RngCore;

use crate::error::{FormatError, Result};

/// Who may read a file the host writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileMode {
    /// Keys and plaintext a user asked for: mode 0600.
    Secret,
    /// Sealed outputs, evidence, contracts: mode 0644.
    Public,
}

/// One version of a file: its size, inode and change time. The kernel sets the change time
/// on every write, truncation, rename or attribute change, and no system call sets it back;
/// replacing the file changes the inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileStamp {
    len: u64,
    ino: u64,
    ctime: (i64, i64),
}

/// A directory the host may use, and its path for messages.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    path: PathBuf,
}

impl Root {
    /// Open (creating if needed) the directory at `path`.
    pub fn open_or_create(path: &Path) -> Result<Self> {
        std::fs::create_dir_all(path).map_err(|e| FormatError::io(path, e))?;
        Self::open(path)
    }

    pub fn open(path: &Path) -> Result<Self> {
        let dir = Dir::open_ambient_dir(path, ambient_authority())
            .map_err(|e| FormatError::io(path, e))?;
        Ok(Self {
            dir,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn display(&self, rel: &str) -> PathBuf {
        self.path.join(rel)
    }

    /// Read a file below this root; `rel` cannot escape it (cap-std refuses `..` and
    /// absolute paths that leave the directory, and symlinks that point outside).
    pub fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.dir
            .read(rel)
            .map_err(|e| FormatError::io(self.display(rel), e))
    }

    /// Open a file below this root for reading (same containment as [`Root::read`]).
    pub fn open_read(&self, rel: &str) -> Result<std::fs::File> {
        self.dir
            .open(rel)
            .map(|f| f.into_std())
            .map_err(|e| FormatError::io(self.display(rel), e))
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.dir.exists(rel)
    }

    /// Which version of the file `rel` is there now (None when there is none).
    pub fn stamp(&self, rel: &str) -> Result<Option<FileStamp>> {
        use cap_std::fs::MetadataExt;
        match self.dir.metadata(rel) {
            Ok(m) => Ok(Some(FileStamp {
                len: m.len(),
                ino: m.ino(),
                ctime: (m.ctime(), m.ctime_nsec()),
            })),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(FormatError::io(self.display(rel), e)),
        }
    }

    pub fn create_dir_all(&self, rel: &str) -> Result<()> {
        self.dir
            .create_dir_all(rel)
            .map_err(|e| FormatError::io(self.display(rel), e))
    }

    /// Atomically replace `rel` with `bytes` (temp file, fsync, rename, fsync directory).
    pub fn write_atomic(&self, rel: &str, bytes: &[u8], mode: FileMode) -> Result<()> {
        let err = |e| FormatError::io(self.display(rel), e);
        let rel_path = Path::new(rel);
        let parent = rel_path.parent().filter(|p| !p.as_os_str().is_empty());
        let file_name = rel_path
            .file_name()
            .ok_or_else(|| FormatError::NotAFileName {
                path: rel.to_string(),
            })?
            .to_string_lossy()
            .into_owned();
        let dir = match parent {
            Some(p) => {
                self.dir.create_dir_all(p).map_err(err)?;
                self.dir.open_dir(p).map_err(err)?
            }
            None => self.dir.try_clone().map_err(err)?,
        };
        let tmp = format!(".{file_name}.tmp-{:016x}", rand::thread_rng().next_u64());
        let mut opts = OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt;
            opts.mode(match mode {
                FileMode::Secret => 0o600,
                FileMode::Public => 0o644,
            });
        }
        let result = (|| {
            let mut f = dir.open_with(&tmp, &opts)?;
            f.write_all(bytes)?;
            f.sync_all()?;
            drop(f);
            dir.rename(&tmp, &dir, &file_name)?;
            // fsync the directory so the rename itself is durable.
            dir.open(".")?.sync_all()
        })();
        if result.is_err() {
            let _ = dir.remove_file(&tmp);
        }
        result.map_err(err)
    }
}

impl Root {
    /// Append `bytes` to `rel` (created if absent) and fsync before returning: the bytes are
    /// durable once this returns. A crash during the call can leave a prefix of `bytes` at
    /// the end of the file; callers that append records detect and drop such a torn tail.
    pub fn append_durable(&self, rel: &str, bytes: &[u8]) -> Result<()> {
        let err = |e| FormatError::io(self.display(rel), e);
        let created = !self.dir.exists(rel);
        let mut opts = OpenOptions::new();
        opts.append(true).create(true);
        let mut f = self.dir.open_with(rel, &opts).map_err(err)?;
        f.write_all(bytes).map_err(err)?;
        f.sync_data().map_err(err)?;
        if created {
            // A new file: make its directory entry durable too.
            let parent = Path::new(rel)
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            self.dir
                .open(parent)
                .and_then(|d| d.sync_all())
                .map_err(err)?;
        }
        Ok(())
    }

    /// The names in directory `rel` (empty when it does not exist).
    pub fn list(&self, rel: &str) -> Result<Vec<String>> {
        if !self.dir.exists(rel) {
            return Ok(Vec::new());
        }
        let err = |e| FormatError::io(self.display(rel), e);
        let dir = self.dir.open_dir(rel).map_err(err)?;
        let mut names = Vec::new();
        for e in dir.entries().map_err(err)? {
            names.push(e.map_err(err)?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }

    /// Remove file `rel`, durably (its directory is synced).
    pub fn remove_file(&self, rel: &str) -> Result<()> {
        let err = |e| FormatError::io(self.display(rel), e);
        self.dir.remove_file(rel).map_err(err)?;
        let parent = Path::new(rel)
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        self.dir
            .open(parent)
            .and_then(|d| d.sync_all())
            .map_err(err)
    }

    /// Cut `rel` to its first `len` bytes, durably.
    pub fn truncate(&self, rel: &str, len: u64) -> Result<()> {
        let err = |e| FormatError::io(self.display(rel), e);
        let mut opts = OpenOptions::new();
        opts.write(true);
        let f = self.dir.open_with(rel, &opts).map_err(err)?;
        f.set_len(len).map_err(err)?;
        f.sync_all().map_err(err)
    }
}

/// `path` with `suffix` appended to its file name (`workload.toml` → `workload.toml.sigs`):
/// where the files that belong to a file live by default.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// Atomically write `bytes` to an ambient `path` (CLI outputs the user named).
pub fn write_file_atomic(path: &Path, bytes: &[u8], mode: FileMode) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path
        .file_name()
        .ok_or_else(|| FormatError::NotAFileName {
            path: path.display().to_string(),
        })?
        .to_string_lossy()
        .into_owned();
    Root::open_or_create(parent)?.write_atomic(&name, bytes, mode)
}

/// Read a file the user named on the command line.
pub fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| FormatError::io(path, e))
}

pub fn read_text(path: &Path) -> Result<String> {
    let bytes = read_file(path)?;
    String::from_utf8(bytes).map_err(|_| FormatError::BadFile {
        path: path.display().to_string(),
        what: "not UTF-8 text".into(),
    })
}
