//! The cluster key: 32 random bytes in a file that only its owner may read.
//!
//! `harness keygen` writes one (`generate`); `--key-file` loads one (`load`). A key file that
//! other users can read, or of the wrong size, is refused with an error naming the problem,
//! because a leaked or truncated key silently weakens every link of the cluster. The key's bytes
//! are never printed: `Debug` shows a fingerprint only (STYLE.md, "Never log the key").

use std::fmt;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// Bytes of a cluster key.
pub const KEY_BYTES: usize = 32;
/// Permission bits of a key file that `keygen` writes: read and write for its owner only.
const KEY_FILE_MODE: u32 = 0o600;
/// Permission bits that must be clear: any access by users outside the owner's group.
const OTHERS_MASK: u32 = 0o007;

/// A loaded cluster key.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterKey([u8; KEY_BYTES]);

impl ClusterKey {
    /// A key from its bytes (tests, and embedders that keep the key elsewhere).
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> ClusterKey {
        ClusterKey(bytes)
    }

    /// A fresh key from the operating system's random generator.
    pub fn generate() -> Result<ClusterKey, String> {
        let mut bytes = [0u8; KEY_BYTES];
        getrandom::getrandom(&mut bytes).map_err(|e| format!("the system random generator failed: {e}"))?;
        Ok(ClusterKey(bytes))
    }

    /// Reads and checks a key file: a regular file, not accessible to other users, of exactly
    /// `KEY_BYTES` bytes, not all zero. The error says what is wrong and how to fix it.
    pub fn load(path: &Path) -> Result<ClusterKey, String> {
        let metadata = std::fs::metadata(path).map_err(|e| format!("cannot read it: {e}"))?;
        if !metadata.is_file() {
            return Err("is not a regular file".to_string());
        }
        let mode = metadata.permissions().mode() & 0o777;
        if mode & OTHERS_MASK != 0 {
            return Err(format!(
                "is accessible to every user (mode {mode:03o}); run chmod 600 {}",
                path.display()
            ));
        }
        if metadata.len() != KEY_BYTES as u64 {
            return Err(format!(
                "is {} bytes; a cluster key is exactly {KEY_BYTES} (make one with harness keygen)",
                metadata.len()
            ));
        }
        let mut file = std::fs::File::open(path).map_err(|e| format!("cannot read it: {e}"))?;
        let mut bytes = [0u8; KEY_BYTES];
        file.read_exact(&mut bytes).map_err(|e| format!("cannot read it: {e}"))?;
        // One more byte means the file grew after the size check.
        if file.read(&mut [0u8; 1]).map_err(|e| format!("cannot read it: {e}"))? != 0 {
            return Err(format!("is longer than {KEY_BYTES} bytes"));
        }
        if bytes == [0u8; KEY_BYTES] {
            return Err("holds only zero bytes, not a random key (make one with harness keygen)".to_string());
        }
        Ok(ClusterKey(bytes))
    }

    /// Writes the key to a new file readable by its owner only; an existing file is never
    /// overwritten, since that would lock its cluster out.
    pub fn write_new(&self, path: &Path) -> Result<(), String> {
        let mut file =
            OpenOptions::new().write(true).create_new(true).mode(KEY_FILE_MODE).open(path).map_err(|e| {
                match e.kind() {
                    std::io::ErrorKind::AlreadyExists => {
                        "already exists; a key file is never overwritten".to_string()
                    }
                    _ => format!("cannot create it: {e}"),
                }
            })?;
        file.write_all(&self.0).and_then(|()| file.sync_all()).map_err(|e| format!("cannot write it: {e}"))
    }

    /// A short public identity of the key (first 8 bytes of its SHA-256, hex), for logs that must
    /// show which key a node uses without revealing it.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(self.0);
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The key bound to one cluster name: HMAC-SHA-256(key, label || name). Clusters that share a
    /// key file but not a name cannot talk to each other.
    pub(crate) fn for_cluster(&self, cluster_name: &str) -> [u8; KEY_BYTES] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(b"harness v1 cluster\0");
        mac.update(cluster_name.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClusterKey({})", self.fingerprint())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("harness-key-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("cluster.key")
    }

    fn set_mode(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn a_generated_key_round_trips_through_its_file() {
        let path = temp("round-trip");
        let key = ClusterKey::generate().unwrap();
        key.write_new(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(ClusterKey::load(&path).unwrap(), key);
        assert_ne!(ClusterKey::generate().unwrap(), key, "two keys are never equal");
        let again = key.write_new(&path).unwrap_err();
        assert!(again.contains("already exists"), "{again}");
    }

    #[test]
    fn unsafe_or_malformed_key_files_are_refused_with_the_reason() {
        let path = temp("refused");
        std::fs::write(&path, [7u8; KEY_BYTES]).unwrap();
        set_mode(&path, 0o644);
        let error = ClusterKey::load(&path).unwrap_err();
        assert!(error.contains("every user (mode 644)") && error.contains("chmod 600"), "{error}");
        set_mode(&path, 0o602);
        assert!(ClusterKey::load(&path).unwrap_err().contains("mode 602"));
        set_mode(&path, 0o640);
        assert!(ClusterKey::load(&path).is_ok(), "group-readable is the operator's choice");

        std::fs::write(&path, [7u8; 31]).unwrap();
        assert!(ClusterKey::load(&path).unwrap_err().starts_with("is 31 bytes"));
        std::fs::write(&path, [7u8; 33]).unwrap();
        assert!(ClusterKey::load(&path).unwrap_err().starts_with("is 33 bytes"));
        std::fs::write(&path, [0u8; KEY_BYTES]).unwrap();
        assert!(ClusterKey::load(&path).unwrap_err().contains("zero"));
        let missing = ClusterKey::load(&path.with_extension("missing")).unwrap_err();
        assert!(missing.starts_with("cannot read it"), "{missing}");
        let dir = ClusterKey::load(path.parent().unwrap()).unwrap_err();
        assert_eq!(dir, "is not a regular file");
    }

    #[test]
    fn debug_shows_a_fingerprint_not_the_key() {
        let key = ClusterKey::from_bytes([0xab; KEY_BYTES]);
        let shown = format!("{key:?}");
        assert!(!shown.contains("abab"), "{shown}");
        assert_eq!(shown, format!("ClusterKey({})", key.fingerprint()));
        assert_eq!(key.fingerprint().len(), 16);
    }

    #[test]
    fn the_cluster_name_changes_the_bound_key() {
        let key = ClusterKey::from_bytes([1; KEY_BYTES]);
        assert_ne!(key.for_cluster("a"), key.for_cluster("b"));
        assert_eq!(key.for_cluster("a"), key.for_cluster("a"));
    }
}
