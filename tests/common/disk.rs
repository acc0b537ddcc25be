//! Files on disk the way the tests need them.

use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Writes `contents` to `dir/name`, creating the parent directories.
pub fn write(dir: &Path, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, contents).unwrap();
    path
}

/// A path as a double-quoted YAML scalar.
pub fn yaml_str(path: &Path) -> String {
    format!("{:?}", path.to_str().unwrap())
}

/// Lays `files` (name, contents) out in `dir` as the kubelet does for a
/// Secret or ConfigMap volume: the real files in `dir/<stamp>/`, `..data`
/// pointed at it atomically (a new symlink renamed over the old one, as the
/// kubelet's AtomicWriter does), and each name a symlink through `..data`.
/// Called again with a new stamp, it is the kubelet's update; the previous
/// directory stays until the caller removes it.
pub fn secret_volume(dir: &Path, stamp: &str, files: &[(&str, &str)]) {
    for (name, contents) in files {
        write(&dir.join(stamp), name, contents);
    }
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(stamp, &tmp).unwrap();
    std::fs::rename(&tmp, dir.join("..data")).unwrap();
    for (name, _) in files {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            symlink(format!("..data/{name}"), &link).unwrap();
        }
    }
}

/// A FIFO at `path`.
pub fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success(), "mkfifo {}", path.display());
}

/// Whether this process can open a file whose mode is 000 (root, or
/// CAP_DAC_OVERRIDE): then permission errors cannot be produced in-process.
pub fn permission_checks_bypassed(dir: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let probe = write(dir, "perm-probe", "x");
    std::fs::set_permissions(&probe, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bypassed = std::fs::File::open(&probe).is_ok();
    std::fs::remove_file(&probe).unwrap();
    bypassed
}

/// Deterministic pseudo-random bytes (xorshift), so failures reproduce.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
