//! Reading small sysfs attribute files, with the path in every error.

use std::io;
use std::path::{Path, PathBuf};

/// A sysfs attribute that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReadError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The file did not hold what it should.
    #[error("{}: {text:?} is not {what}", path.display())]
    Parse {
        path: PathBuf,
        text: String,
        what: &'static str,
    },
}

impl ReadError {
    /// True when the file exists but the kernel refuses to let this user read it.
    pub(crate) fn permission_denied(&self) -> bool {
        matches!(self, Self::Io { source, .. } if source.kind() == io::ErrorKind::PermissionDenied)
    }
}

/// The file's contents without surrounding white space.
pub(crate) fn read_trimmed(path: &Path) -> Result<String, ReadError> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|source| ReadError::Io {
            path: path.to_path_buf(),
            source,
        })
}

/// A decimal unsigned integer (energy in µJ, power in µW).
pub(crate) fn read_u64(path: &Path) -> Result<u64, ReadError> {
    let text = read_trimmed(path)?;
    text.parse().map_err(|_| ReadError::Parse {
        path: path.to_path_buf(),
        text,
        what: "an unsigned integer",
    })
}

/// A PCI id such as "0x10de"; `None` when absent or malformed.
pub(crate) fn read_pci_id(path: &Path) -> Option<u32> {
    let text = read_trimmed(path).ok()?;
    u32::from_str_radix(text.trim_start_matches("0x"), 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_and_errors_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let n = dir.path().join("n");
        std::fs::write(&n, "123456\n").unwrap();
        assert_eq!(read_u64(&n).unwrap(), 123456);
        std::fs::write(&n, "lots").unwrap();
        let err = read_u64(&n).unwrap_err().to_string();
        assert!(err.contains("\"lots\"") && err.contains("/n"), "{err}");
        let missing = read_u64(&dir.path().join("gone")).unwrap_err();
        assert!(!missing.permission_denied());
        assert!(missing.to_string().contains("gone"), "{missing}");
        std::fs::write(&n, "0x10de\n").unwrap();
        assert_eq!(read_pci_id(&n), Some(0x10de));
        assert_eq!(read_pci_id(&dir.path().join("gone")), None);
    }

    #[test]
    fn permission_denied_is_recognised() {
        let err = ReadError::Io {
            path: "/sys/x".into(),
            source: io::Error::from(io::ErrorKind::PermissionDenied),
        };
        assert!(err.permission_denied());
    }
}
