//! The access layer's small state files (the meetings' own policies, the
//! withdrawn invite links): JSON, read whole at start and written whole on
//! each change, by replacing the file so that a crash leaves the old
//! content or the new, never half of either.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum StateFileError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot save to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The file's content; empty (the default) while there is no file yet.
pub fn read<T: DeserializeOwned + Default>(path: &Path) -> Result<T, StateFileError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(T::default()),
        Err(source) => {
            return Err(StateFileError::Read {
                path: path.into(),
                source,
            })
        }
    };
    serde_json::from_str(&text).map_err(|source| StateFileError::Parse {
        path: path.into(),
        source,
    })
}

/// Writes a sibling file and renames it over `path`.
pub fn write<T: Serialize>(path: &Path, value: &T) -> Result<(), StateFileError> {
    let failed = |source| StateFileError::Write {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(failed)?;
    }
    let text = serde_json::to_string_pretty(value).expect("plain data serializes");
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, text).map_err(failed)?;
    std::fs::rename(&tmp, path).map_err(failed)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn written_whole_and_read_back() {
        let dir = std::env::temp_dir().join(format!("meet-state-file-{}", std::process::id()));
        let path = dir.join("sub").join("state.json");
        let none: BTreeMap<String, u64> = read(&path).unwrap();
        assert!(none.is_empty(), "no file yet: empty");
        let some = BTreeMap::from([("a".to_owned(), 1u64)]);
        write(&path, &some).unwrap();
        assert_eq!(read::<BTreeMap<String, u64>>(&path).unwrap(), some);
        assert!(!path.with_extension("json.tmp").exists(), "renamed over");
        std::fs::write(&path, "[1,").unwrap();
        let e = read::<BTreeMap<String, u64>>(&path).unwrap_err();
        assert!(matches!(e, StateFileError::Parse { .. }), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
