//! Minion keys, generated once and kept on disk: RSA-2048 generation costs
//! ~0.1 s a key, so 10,000 minions' keys are made once and reused by every
//! later run (`<dir>/<bits>/<index>.pem`, PKCS#1 PEM).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use brine_proto::crypto::PrivateKey;
use log::info;

pub fn key_path(dir: &Path, bits: u32, index: usize) -> PathBuf {
    dir.join(bits.to_string()).join(format!("{index}.pem"))
}

/// Make sure keys `0..count` exist, generating missing ones on every core.
pub fn ensure(dir: &Path, bits: u32, count: usize) -> std::io::Result<()> {
    let sub = dir.join(bits.to_string());
    std::fs::create_dir_all(&sub)?;
    // One generator at a time (tests run in parallel); the others wait and
    // then find the keys made.
    let lock = std::fs::File::create(sub.join(".lock"))?;
    // SAFETY: flock on a descriptor we own; released when `lock` is closed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let missing: Vec<usize> = (0..count).filter(|i| !key_path(dir, bits, *i).exists()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    info!(
        "generating {} RSA-{bits} minion keys in {}",
        missing.len(),
        sub.display()
    );
    let next = AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|s| -> std::io::Result<()> {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| -> std::io::Result<()> {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&index) = missing.get(k) else { return Ok(()) };
                        let key = PrivateKey::generate(bits).map_err(std::io::Error::other)?;
                        let pem = key.to_pem_pkcs1().map_err(std::io::Error::other)?;
                        let path = key_path(dir, bits, index);
                        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                        std::fs::write(&tmp, pem)?;
                        std::fs::rename(&tmp, &path)?;
                        if k > 0 && k.is_multiple_of(500) {
                            info!("{k}/{} keys generated", missing.len());
                        }
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("keygen thread")?;
        }
        Ok(())
    })
}

pub fn load(dir: &Path, bits: u32, index: usize) -> std::io::Result<PrivateKey> {
    let pem = std::fs::read(key_path(dir, bits, index))?;
    PrivateKey::from_pem_trusted(&pem).map_err(std::io::Error::other)
}
