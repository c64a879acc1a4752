//! [`KeyRing`]: the AES-256-GCM keys that seal sessions at rest.
//!
//! One key is *current* (it seals every new session); older keys are kept
//! for opening only, so keys rotate without dropping live sessions. For a
//! fleet, rotate in three rolling steps:
//!
//! 1. add the new key as the *second* line on every server (accepted, not used);
//! 2. move it to the first line on every server (now it seals);
//! 3. after the longest session lifetime, delete the old key's line.
//!
//! A server that meets a value sealed under a key it does not hold counts
//! it as a miss and leaves it in Redis for the servers that can open it.
//!
//! Each key has a one-byte *key id* written in front of every sealed value.
//! The id is derived from the key itself (the first byte of
//! SHA-256("tls-session-cache seal key id" ‖ key)), not from its line, so
//! reordering or prepending lines never changes which key a value names.
//! Two keys may share an id (1 in 256); opening then tries both. A server
//! that lacks the new one of two such keys sees its values fail to open:
//! counted as corrupt, a miss, and *not* deleted (the store never deletes
//! a value that does not open), so the rest of the fleet still resumes
//! them.

use std::fmt;
use std::path::{Path, PathBuf};

/// Length of a sealing key in bytes (AES-256).
pub const KEY_LEN: usize = 32;

/// Why a key ring could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyRingError {
    /// The key file could not be read.
    #[error("cannot read seal key file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating-system error.
        #[source]
        source: std::io::Error,
    },
    /// A line is neither blank, a `#` comment, nor 64 hex characters.
    #[error("seal key file line {line}: {reason}")]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: BadKeyLine,
    },
    /// The same key appears twice.
    #[error("seal key file line {line}: the same key as line {first}")]
    Duplicate {
        /// 1-based line of the repetition.
        line: usize,
        /// 1-based line where the key first appears.
        first: usize,
    },
    /// The file holds no key.
    #[error("seal key file holds no key (expected lines of 64 hex characters)")]
    Empty,
    /// The key file is readable or writable by group or others (Unix).
    #[error(
        "seal key file {path} is accessible to group or others (mode {mode:o}): chmod 600 it \
         (or allow it explicitly)"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The key file belongs to another user than the one running (and not
    /// to root) (Unix).
    #[error(
        "seal key file {path} is owned by uid {owner}, not by the running user (uid {user}) \
         or root: chown it (or allow it explicitly)"
    )]
    Owner {
        /// The file.
        path: PathBuf,
        /// The file's owner.
        owner: u32,
        /// The running (effective) user.
        user: u32,
    },
    /// The random number generator failed.
    #[error("cannot generate a random seal key: {0}")]
    Random(#[source] openssl::error::ErrorStack),
}

/// What is wrong with one line of a key file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BadKeyLine {
    /// Not 64 characters long.
    #[error("expected 64 hex characters, found {0} characters")]
    Length(usize),
    /// A character that is not a hex digit.
    #[error("character {column} is not a hex digit")]
    NotHex {
        /// 1-based column.
        column: usize,
    },
}

/// One sealing key and its id.
#[derive(Clone)]
pub(crate) struct SealKey {
    pub(crate) id: u8,
    pub(crate) bytes: [u8; KEY_LEN],
}

impl SealKey {
    fn new(bytes: [u8; KEY_LEN]) -> Self {
        let mut input = Vec::with_capacity(64);
        input.extend_from_slice(b"tls-session-cache seal key id");
        input.extend_from_slice(&bytes);
        let id = openssl::sha::sha256(&input)[0];
        SealKey { id, bytes }
    }
}

/// The current sealing key plus older keys accepted for opening.
/// `Debug` prints key ids only, never key bytes.
#[derive(Clone)]
pub struct KeyRing {
    current: SealKey,
    older: Vec<SealKey>,
}

impl KeyRing {
    /// A ring with one key, which is current.
    pub fn new(current: [u8; KEY_LEN]) -> Self {
        KeyRing {
            current: SealKey::new(current),
            older: Vec::new(),
        }
    }

    /// Adds an older key, accepted for opening but never used to seal.
    /// Adding the current key or a key already present changes nothing.
    pub fn with_older(mut self, key: [u8; KEY_LEN]) -> Self {
        if self.current.bytes != key && self.older.iter().all(|k| k.bytes != key) {
            self.older.push(SealKey::new(key));
        }
        self
    }

    /// A ring with one fresh random key. Sessions sealed under it can be
    /// opened only by this process: other servers of a fleet cannot resume
    /// them. Use a shared key file for fleets.
    pub fn generate() -> Result<Self, KeyRingError> {
        let mut key = [0u8; KEY_LEN];
        openssl::rand::rand_bytes(&mut key).map_err(KeyRingError::Random)?;
        Ok(KeyRing::new(key))
    }

    /// Parses a key file's text: one key per line, 64 hex characters each;
    /// blank lines and lines starting with `#` are ignored; surrounding
    /// whitespace is ignored. The first key is current.
    ///
    /// ```
    /// use tls_session_cache_redis::KeyRing;
    /// let text = format!("# rotated 2025-01-01\n{}\n{}\n", "ab".repeat(32), "cd".repeat(32));
    /// let ring = KeyRing::parse(&text)?;
    /// assert_eq!(ring.key_count(), 2);
    /// # Ok::<(), tls_session_cache_redis::KeyRingError>(())
    /// ```
    pub fn parse(text: &str) -> Result<Self, KeyRingError> {
        let mut keys: Vec<([u8; KEY_LEN], usize)> = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let key =
                parse_hex_key(trimmed).map_err(|reason| KeyRingError::BadLine { line, reason })?;
            if let Some((_, first)) = keys.iter().find(|(k, _)| *k == key) {
                return Err(KeyRingError::Duplicate {
                    line,
                    first: *first,
                });
            }
            keys.push((key, line));
        }
        let mut iter = keys.into_iter();
        let (current, _) = iter.next().ok_or(KeyRingError::Empty)?;
        Ok(iter.fold(KeyRing::new(current), |ring, (k, _)| ring.with_older(k)))
    }

    /// Reads and parses a key file (see [`parse`](Self::parse)).
    ///
    /// On Unix the file must be private: **refused** when group or others
    /// have any permission on it ([`KeyRingError::Permissions`]; `chmod
    /// 600`), or when it is owned by neither the running user nor root
    /// ([`KeyRingError::Owner`]; someone else could rewrite the keys). The
    /// owner check needs `/proc/self` (Linux); elsewhere only the mode is
    /// checked. [`from_file_allow_shared`](Self::from_file_allow_shared)
    /// accepts such a file with a warning.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, KeyRingError> {
        Self::read_file(path.as_ref(), false)
    }

    /// Like [`from_file`](Self::from_file), but a file accessible to group
    /// or others, or owned by another user, is only warned about (through
    /// `log`). For key files shared on purpose (a group-readable secret
    /// mount, say); prefer a private file.
    pub fn from_file_allow_shared(path: impl AsRef<Path>) -> Result<Self, KeyRingError> {
        Self::read_file(path.as_ref(), true)
    }

    fn read_file(path: &Path, allow_shared: bool) -> Result<Self, KeyRingError> {
        let io = |source| KeyRingError::Io {
            path: path.to_path_buf(),
            source,
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let meta = std::fs::metadata(path).map_err(io)?;
            let mode = meta.permissions().mode() & 0o777;
            let problem = if mode & 0o077 != 0 {
                Some(KeyRingError::Permissions {
                    path: path.to_path_buf(),
                    mode,
                })
            } else {
                // /proc/self belongs to the process's effective user.
                match std::fs::metadata("/proc/self") {
                    Ok(me) if meta.uid() != me.uid() && meta.uid() != 0 => {
                        Some(KeyRingError::Owner {
                            path: path.to_path_buf(),
                            owner: meta.uid(),
                            user: me.uid(),
                        })
                    }
                    _ => None,
                }
            };
            match problem {
                Some(e) if allow_shared => log::warn!("{e}; allowed explicitly"),
                Some(e) => return Err(e),
                None => {}
            }
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::parse(&text)
    }

    /// The id written in front of values sealed now.
    pub fn current_key_id(&self) -> u8 {
        self.current.id
    }

    /// How many keys the ring holds (current + older).
    pub fn key_count(&self) -> usize {
        1 + self.older.len()
    }

    pub(crate) fn current(&self) -> &SealKey {
        &self.current
    }

    /// Keys whose id is `id`, current first.
    pub(crate) fn candidates(&self, id: u8) -> impl Iterator<Item = &SealKey> {
        std::iter::once(&self.current)
            .chain(self.older.iter())
            .filter(move |k| k.id == id)
    }
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("current_key_id", &self.current.id)
            .field(
                "older_key_ids",
                &self.older.iter().map(|k| k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn parse_hex_key(s: &str) -> Result<[u8; KEY_LEN], BadKeyLine> {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() != 2 * KEY_LEN {
        return Err(BadKeyLine::Length(chars.len()));
    }
    let mut key = [0u8; KEY_LEN];
    for (i, pair) in chars.chunks(2).enumerate() {
        let hi = hex_digit(pair[0]).ok_or(BadKeyLine::NotHex { column: 2 * i + 1 })?;
        let lo = hex_digit(pair[1]).ok_or(BadKeyLine::NotHex { column: 2 * i + 2 })?;
        key[i] = hi << 4 | lo;
    }
    Ok(key)
}

fn hex_digit(c: char) -> Option<u8> {
    c.to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comments_blank_lines_and_order() {
        let a = "0123456789abcdef".repeat(4);
        let b = "FEDCBA9876543210".repeat(4);
        let ring = KeyRing::parse(&format!("\n# comment\n  {a}  \n\n{b}\n")).unwrap();
        assert_eq!(ring.key_count(), 2);
        assert_eq!(ring.current().bytes[..2], [0x01, 0x23]);
        assert_eq!(ring.older[0].bytes[..2], [0xfe, 0xdc]);
        assert_eq!(
            ring.current_key_id(),
            KeyRing::new(ring.current.bytes).current_key_id()
        );
    }

    #[test]
    fn rejects_bad_lines_naming_them() {
        let good = "aa".repeat(32);
        match KeyRing::parse(&format!("{good}\nshort\n")) {
            Err(KeyRingError::BadLine {
                line: 2,
                reason: BadKeyLine::Length(5),
            }) => {}
            other => panic!("{other:?}"),
        }
        let bad = format!("{}g{}", "a".repeat(10), "a".repeat(53));
        match KeyRing::parse(&format!("# c\n{bad}\n")) {
            Err(KeyRingError::BadLine {
                line: 2,
                reason: BadKeyLine::NotHex { column: 11 },
            }) => {}
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            KeyRing::parse("# nothing\n\n"),
            Err(KeyRingError::Empty)
        ));
        assert!(matches!(
            KeyRing::parse(&format!("{good}\n{good}\n")),
            Err(KeyRingError::Duplicate { line: 2, first: 1 })
        ));
        // Multi-byte characters are counted as characters, never split.
        assert!(matches!(
            KeyRing::parse(&"é".repeat(64)),
            Err(KeyRingError::BadLine {
                line: 1,
                reason: BadKeyLine::NotHex { column: 1 }
            })
        ));
    }

    #[test]
    fn debug_hides_key_bytes() {
        let ring = KeyRing::new([0xAB; 32]);
        let shown = format!("{ring:?}");
        assert!(
            !shown.contains("171, 171") && !shown.to_lowercase().contains("abab"),
            "{shown}"
        );
    }

    #[test]
    fn generated_keys_differ() {
        let a = KeyRing::generate().unwrap();
        let b = KeyRing::generate().unwrap();
        assert_ne!(a.current().bytes, b.current().bytes);
    }
}
