//! Seal key files, written the way an operator would (`openssl rand -hex 32`
//! per line, mode 600).

use std::io::Write;
use std::path::Path;

use tempfile::NamedTempFile;
use tls_session_cache_redis::KeyRing;

/// A seal key file in a temporary directory, deleted on drop.
#[derive(Debug)]
pub struct KeyFile {
    file: NamedTempFile,
    ring: KeyRing,
}

impl KeyFile {
    /// A file holding `keys` (64 hex characters each), one per line, the
    /// first one current.
    pub fn new(keys: &[&str]) -> KeyFile {
        let text: String = keys.iter().map(|k| format!("{k}\n")).collect();
        let ring = KeyRing::parse(&text).expect("test keys are well formed");
        let mut file = tempfile::Builder::new()
            .prefix("seal-keys-")
            .tempfile()
            .expect("temporary key file");
        file.write_all(text.as_bytes()).expect("write key file");
        file.flush().expect("flush key file");
        KeyFile { file, ring }
    }

    /// Where the file is: the value of `--seal-key-file`.
    pub fn path(&self) -> &Path {
        self.file.path()
    }

    /// The key id of the file's current key.
    pub fn current_key_id(&self) -> u8 {
        self.ring.current_key_id()
    }
}
