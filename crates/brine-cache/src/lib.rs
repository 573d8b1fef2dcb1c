//! The master's caches, as Salt lays them out under `cachedir` so that
//! Python tools on the same host read them:
//!
//! * [`jobs`]: the job cache (`master_job_cache`), behind the [`JobCache`]
//!   trait that reads and writes; [`LocalCache`] is Salt's `local_cache`.
//! * [`minions`]: the minion data cache (Salt's `localfs` cache bank
//!   `minions/<id>`: grains and pillar in `data.p`, the mine in `mine.p`).
//! * [`pgjsonb`]: the job cache (and event returner) on PostgreSQL, in
//!   Salt's `pgjsonb` schema, for several masters sharing one.
//! * [`fs`]: the atomic file writes both use.

pub mod fs;
pub mod jobs;
pub mod minions;
pub mod pgjsonb;

pub use jobs::{Cleaned, Jid, JobCache, LocalCache, LOCAL_CACHE};
pub use minions::{MinionCache, LOCALFS};
pub use pgjsonb::{PgJsonb, PGJSONB};

/// A cache file that could not be read, decoded or written.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{path}: {why}")]
    File { path: String, why: String },
    /// A write that failed (no space, no inodes, a read-only file
    /// system...): where, and the OS error. Nothing half-written is left.
    #[error("cannot write {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the {0:?} job cache is not available in Brine (only local_cache and pgjsonb)")]
    Unsupported(String),
    /// A job cache kept elsewhere (a returner) refused or lost a write.
    #[error("{0}")]
    Backend(String),
}

impl CacheError {
    /// The OS error's kind, for a failed read or write of a file.
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            CacheError::Write { source, .. } | CacheError::Io(source) => Some(source.kind()),
            _ => None,
        }
    }

    /// A failed write of `path`, for `map_err`.
    pub(crate) fn write(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
        move |source| CacheError::Write {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn file(path: &std::path::Path, why: impl std::fmt::Display) -> CacheError {
        CacheError::File {
            path: path.display().to_string(),
            why: why.to_string(),
        }
    }
}
