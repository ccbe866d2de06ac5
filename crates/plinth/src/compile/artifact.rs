//! Precompiled artifacts: a plug-in compiled ahead of time (`plinth compile`) so that a host
//! loads it in about a millisecond instead of running Cranelift.
//!
//! - [`ArtifactKey`]: the secret that signs and verifies artifacts. An artifact is native code,
//!   and loading one runs it without the checks that compiling wasm gives, so a host loads
//!   only artifacts signed with a key it holds: holding the key is the opt-in.
//! - `Artifact` (internal): a parsed, verified artifact: the wasm it was compiled from and
//!   the native code.
//!
//! The layout, all integers little-endian:
//! `MAGIC` (16 bytes), format version (u32), engine kind (u32: bit 0 fuel), engine fingerprint
//! (u64), sha256 of the wasm (32 bytes), wasm length (u64), native length (u64), the wasm, the
//! native code (wasmtime's serialized module), then a 32-byte HMAC-SHA256 tag over all of the
//! above. The tag is checked before anything else is trusted; a tag that does not verify is an
//! error, never a reason to compile instead. An artifact for another engine (another wasmtime
//! version or settings, or fuel on one side only) is compiled from its own wasm, with a
//! warning. The wasm inside binds the artifact to its source: a host that loads it next to a
//! manifest gets an error when the manifest's module is another one.

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use wasmtime::Module;

use crate::engine::EngineHandle;
use crate::{Error, Result};

type Tag = Hmac<Sha256>;
const MAGIC: &[u8; 16] = b"plinth artifact\0";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 16 + 4 + 4 + 8 + 32 + 8 + 8;
const TAG_LEN: usize = 32;
/// Versions what the tag covers, apart from the disk cache's tags.
const TAG_DOMAIN: &[u8] = b"plinth precompiled artifact v1\0";
/// Keys shorter than this are refused: a short key can be guessed.
const MIN_KEY_LEN: usize = 16;
/// Keys longer than this are refused when read from a file: it is not a key.
const MAX_KEY_LEN: usize = 1024;

/// The secret that signs and verifies precompiled artifacts (HMAC-SHA256).
///
/// Whoever holds the key can make artifacts that a host holding it will run as native code,
/// so keep it as private as the host's own binaries: generate it once
/// ([`ArtifactKey::generate`], or `plinth compile` makes one), give it to the machines that
/// build artifacts and those that load them, and nobody else.
#[derive(Clone)]
pub struct ArtifactKey(Vec<u8>);

impl fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ArtifactKey(..)")
    }
}

impl ArtifactKey {
    /// A key from secret bytes: at least 16 of them (32 random bytes are best).
    pub fn new(secret: impl Into<Vec<u8>>) -> Result<ArtifactKey> {
        let secret = secret.into();
        if secret.len() < MIN_KEY_LEN {
            return Err(Error::Artifact(format!(
                "an artifact key needs at least {MIN_KEY_LEN} bytes, this one has {}; make one \
                 with ArtifactKey::generate or `plinth compile --key FILE`",
                secret.len()
            )));
        }
        Ok(ArtifactKey(secret))
    }

    /// A new random 32-byte key.
    pub fn generate() -> Result<ArtifactKey> {
        let mut secret = vec![0u8; 32];
        getrandom::fill(&mut secret)
            .map_err(|e| Error::Artifact(format!("cannot draw a random key: {e}")))?;
        Ok(ArtifactKey(secret))
    }

    /// Reads a key file. On Unix the file must be readable by its owner only (whoever can read
    /// the key can sign artifacts this host will run).
    pub fn from_file(path: impl AsRef<Path>) -> Result<ArtifactKey> {
        let path = path.as_ref();
        let fail = |what: String| Error::Artifact(format!("key {}: {what}", path.display()));
        let meta = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(fail(format!(
                    "open to its group or others (mode {mode:03o}), who could sign artifacts \
                     with it; run `chmod 600 {}`",
                    path.display()
                )));
            }
        }
        if meta.len() > MAX_KEY_LEN as u64 {
            return Err(fail(format!(
                "{} bytes is not a key (at most {MAX_KEY_LEN})",
                meta.len()
            )));
        }
        let secret = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
        ArtifactKey::new(secret).map_err(|e| fail(e.to_string()))
    }

    /// Writes the key to a new file readable by its owner only; an existing file is an error.
    pub fn write_new_file(&self, path: impl AsRef<Path>) -> Result<()> {
        use std::io::Write;
        let path = path.as_ref();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options
            .open(path)
            .and_then(|mut f| f.write_all(&self.0).map(|_| f));
        if let Ok(f) = &mut file {
            if let Err(e) = f.sync_all() {
                file = Err(e);
            }
        }
        file.map(drop)
            .map_err(|e| Error::Artifact(format!("cannot write key {}: {e}", path.display())))
    }

    /// Verifies `artifact` under this key and returns the wasm it was compiled from, for a
    /// host that wants to build a manifest around it (limits, config) and then load it with
    /// [`PluginBuilder::with_artifact`](crate::PluginBuilder::with_artifact).
    pub fn wasm_of(&self, artifact: &[u8]) -> Result<Vec<u8>> {
        Artifact::read(artifact, self).map(|a| a.wasm)
    }

    fn tag(&self, signed: &[u8]) -> Tag {
        let mut mac = Tag::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(TAG_DOMAIN);
        mac.update(signed);
        mac
    }
}

/// A verified artifact.
pub(crate) struct Artifact {
    /// Bit 0: made on the engine with fuel metering.
    pub kind: u32,
    pub fingerprint: u64,
    pub wasm_sha256: [u8; 32],
    pub wasm: Vec<u8>,
    pub native: Vec<u8>,
}

/// The sha256 of `wasm`.
pub(crate) fn sha256(wasm: &[u8]) -> [u8; 32] {
    Sha256::digest(wasm).into()
}

/// Hex, for messages.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Artifact {
    /// Signs an artifact of `wasm` and its native code.
    pub fn write(
        key: &ArtifactKey,
        kind: u32,
        fingerprint: u64,
        wasm: &[u8],
        native: &[u8],
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN + wasm.len() + native.len() + TAG_LEN);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&fingerprint.to_le_bytes());
        out.extend_from_slice(&sha256(wasm));
        out.extend_from_slice(&(wasm.len() as u64).to_le_bytes());
        out.extend_from_slice(&(native.len() as u64).to_le_bytes());
        out.extend_from_slice(wasm);
        out.extend_from_slice(native);
        let tag = key.tag(&out).finalize().into_bytes();
        out.extend_from_slice(&tag);
        out
    }

    /// Parses `bytes` and checks its tag under `key`; nothing in it is used before that.
    pub fn read(bytes: &[u8], key: &ArtifactKey) -> Result<Artifact> {
        let bad = |what: &str| Error::Artifact(format!("not a usable Plinth artifact: {what}"));
        if bytes.len() < HEADER_LEN + TAG_LEN || &bytes[..16] != MAGIC {
            return Err(bad(
                "it does not start with Plinth's artifact header (make one with `plinth compile`)",
            ));
        }
        let (signed, tag) = bytes.split_at(bytes.len() - TAG_LEN);
        if key.tag(signed).verify_slice(tag).is_err() {
            return Err(Error::Artifact(
                "the artifact's signature does not verify under this key: it was altered after \
                 it was made, or made with another key. It is not loaded (it would run as \
                 native code); make it again with `plinth compile`"
                    .into(),
            ));
        }
        let u32_at = |at: usize| u32::from_le_bytes(signed[at..at + 4].try_into().unwrap());
        let u64_at = |at: usize| u64::from_le_bytes(signed[at..at + 8].try_into().unwrap());
        let version = u32_at(16);
        if version != VERSION {
            return Err(bad(&format!(
                "format version {version}, this Plinth reads version {VERSION}"
            )));
        }
        let kind = u32_at(20);
        let fingerprint = u64_at(24);
        let wasm_sha256: [u8; 32] = signed[32..64].try_into().unwrap();
        let (wasm_len, native_len) = (u64_at(64), u64_at(72));
        let body = &signed[HEADER_LEN..];
        if wasm_len.checked_add(native_len) != Some(body.len() as u64) {
            return Err(bad("its lengths do not add up"));
        }
        let (wasm, native) = body.split_at(wasm_len as usize);
        if sha256(wasm) != wasm_sha256 {
            return Err(bad("its wasm does not match its recorded sha256"));
        }
        Ok(Artifact {
            kind,
            fingerprint,
            wasm_sha256,
            wasm: wasm.to_vec(),
            native: native.to_vec(),
        })
    }
}

impl Artifact {
    /// The native code as a module of `engine`: `None`, with a warning, when it was made for
    /// another engine (the caller compiles the wasm instead).
    pub fn module_for(&self, handle: &EngineHandle) -> Option<Module> {
        let engine = handle.engine();
        let fuel = handle.kind & 1 == 1;
        let fingerprint = super::disk_cache::fingerprint(engine);
        let note = |why: &str| {
            tracing::warn!(
                "the precompiled artifact of the module with sha256 {} {why}; compiling its wasm \
                 instead (make the artifact again with this Plinth and these settings to skip it)",
                hex(&self.wasm_sha256)
            );
        };
        if (self.kind & 1 == 1) != fuel {
            note(if fuel {
                "was made without fuel metering, and this host meters fuel"
            } else {
                "was made with fuel metering, and this host does not meter fuel"
            });
            return None;
        }
        if self.fingerprint != fingerprint {
            note("was made by another wasmtime version or with other engine settings");
            return None;
        }
        // SAFETY: the bytes are wasmtime's serialization of a module, made by `Artifact::write`
        // for an engine with this fingerprint, and their tag verified under the host's key
        // when the artifact was read: nobody without the key changed them.
        match unsafe { Module::deserialize(engine, &self.native) } {
            Ok(module) => Some(module),
            Err(e) => {
                note(&format!("cannot be loaded ({e})"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_altered_byte_is_refused() {
        let key = ArtifactKey::generate().unwrap();
        let bytes = Artifact::write(&key, 1, 42, b"\0asm\x01\0\0\0", b"native");
        let a = Artifact::read(&bytes, &key).unwrap();
        assert_eq!((a.kind, a.fingerprint), (1, 42));
        assert_eq!(a.wasm, b"\0asm\x01\0\0\0");
        assert_eq!(a.native, b"native");
        for i in 0..bytes.len() {
            let mut altered = bytes.clone();
            altered[i] ^= 0x20;
            let err = Artifact::read(&altered, &key)
                .err()
                .expect("altered byte accepted");
            assert!(matches!(err, Error::Artifact(_)), "{err:?}");
        }
        let other = ArtifactKey::generate().unwrap();
        let err = Artifact::read(&bytes, &other).err().unwrap();
        assert!(err.to_string().contains("signature"), "{err}");
        assert!(Artifact::read(&bytes[..bytes.len() - 1], &key).is_err());
        assert!(Artifact::read(b"", &key).is_err());
        assert!(ArtifactKey::new(vec![0; 8]).is_err());
    }
}
