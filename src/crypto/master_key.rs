//! The master key: the root of the key hierarchy, kept outside the database.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::alphabet;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use zeroize::Zeroizing;

use super::aead_key::{AeadKey, KEY_LEN};

/// The file in the data directory that holds a generated master key.
pub const MASTER_KEY_FILE: &str = "master.key";

/// How long a start waits for another process that is still writing a new master key file.
const CONCURRENT_CREATE_WAIT: Duration = Duration::from_secs(2);
const CONCURRENT_CREATE_POLL: Duration = Duration::from_millis(20);

const BASE64_ANY_PADDING: GeneralPurposeConfig =
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
const BASE64: GeneralPurpose = GeneralPurpose::new(&alphabet::STANDARD, BASE64_ANY_PADDING);
const BASE64_URL: GeneralPurpose = GeneralPurpose::new(&alphabet::URL_SAFE, BASE64_ANY_PADDING);

static GENERATED_KEY_WARNED: AtomicBool = AtomicBool::new(false);

/// The 32-byte key that wraps every vault's KEK. Zeroized on drop; its `Debug` output is
/// redacted, and nothing else prints it.
pub struct MasterKey(AeadKey);

/// Why a text is not a master key. Never holds the text, only its shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MasterKeyParseError {
    #[error("it is empty")]
    Empty,
    #[error("it is hex of {bytes} bytes; a master key is 32 bytes (64 hex digits)")]
    WrongHexLength { bytes: usize },
    #[error("it is base64 of {bytes} bytes; a master key is 32 bytes (44 base64 characters)")]
    WrongBase64Length { bytes: usize },
    #[error(
        "its {chars} characters are neither 64 hex digits nor base64 of 32 bytes; \
         generate one with `openssl rand -base64 32`"
    )]
    NotEncoded { chars: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum MasterKeyError {
    #[error("KEYWARD_MASTER_KEY is not a master key: {0}")]
    Configured(MasterKeyParseError),
    #[error("master key file {path} is not a master key: {reason}")]
    InvalidFile { path: PathBuf, reason: MasterKeyParseError },
    #[error(
        "master key file {path} is empty: a start that was creating it stopped half-way. Restore it from a \
         backup; delete it only if nothing was ever encrypted with it"
    )]
    EmptyFile { path: PathBuf },
    #[error("cannot read master key file {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot create master key file {path}: {source}")]
    Create { path: PathBuf, source: io::Error },
    #[error("the operating system's random number generator failed")]
    Random,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses a master key: 32 bytes as 64 hex digits, or as base64 (standard or URL-safe
    /// alphabet, padded or not). Surrounding whitespace is ignored.
    pub fn parse(text: &str) -> Result<Self, MasterKeyParseError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(MasterKeyParseError::Empty);
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        // Base64 of 32 bytes is 43 characters, or 44 with its `=`: never an even run of hex
        // digits, so hex-looking text is hex.
        if text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            if text.len() != 2 * KEY_LEN {
                return Err(MasterKeyParseError::WrongHexLength { bytes: text.len() / 2 });
            }
            hex::decode_to_slice(text, bytes.as_mut_slice()).map_err(|_| MasterKeyParseError::NotEncoded {
                chars: text.chars().count(),
            })?;
            return Ok(Self(AeadKey::from_bytes(bytes)));
        }
        let decoded = Zeroizing::new(BASE64.decode(text).or_else(|_| BASE64_URL.decode(text)).map_err(|_| {
            MasterKeyParseError::NotEncoded {
                chars: text.chars().count(),
            }
        })?);
        if decoded.len() != KEY_LEN {
            return Err(MasterKeyParseError::WrongBase64Length { bytes: decoded.len() });
        }
        bytes.copy_from_slice(&decoded);
        Ok(Self(AeadKey::from_bytes(bytes)))
    }

    /// The configured key if there is one (the value of KEYWARD_MASTER_KEY); else the key in
    /// `<data_dir>/master.key`, generated and written there (mode 0600) on first start.
    /// Several processes starting together agree on one key: the file is created with
    /// `create_new`, and whoever loses that race reads the winner's key.
    ///
    /// Blocking file IO: call it once at start-up.
    pub fn load_or_generate(data_dir: &Path, configured: Option<&str>) -> Result<Self, MasterKeyError> {
        if let Some(text) = configured {
            return Self::parse(text).map_err(MasterKeyError::Configured);
        }
        let path = data_dir.join(MASTER_KEY_FILE);
        let key = load_or_create_file(data_dir, &path)?;
        if !GENERATED_KEY_WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                path = %path.display(),
                "using the development master key generated in the data directory: whoever reads this file and \
                 the database reads every secret. In production set KEYWARD_MASTER_KEY (32 bytes, base64 or hex) \
                 from a secret manager"
            );
        }
        Ok(key)
    }

    /// The key as a KEK-wrapping key.
    pub(crate) fn key(&self) -> &AeadKey {
        &self.0
    }
}

fn load_or_create_file(data_dir: &Path, path: &Path) -> Result<MasterKey, MasterKeyError> {
    let read_error = |source| MasterKeyError::Read {
        path: path.to_owned(),
        source,
    };
    let mut waited = Duration::ZERO;
    loop {
        match File::open(path) {
            Ok(file) => {
                warn_if_shared(&file, path);
                let text = read_text(file).map_err(read_error)?;
                if !text.trim().is_empty() {
                    return MasterKey::parse(&text).map_err(|reason| MasterKeyError::InvalidFile {
                        path: path.to_owned(),
                        reason,
                    });
                }
                // Created but not yet written: another process is generating the key.
                if waited >= CONCURRENT_CREATE_WAIT {
                    return Err(MasterKeyError::EmptyFile { path: path.to_owned() });
                }
                std::thread::sleep(CONCURRENT_CREATE_POLL);
                waited += CONCURRENT_CREATE_POLL;
            }
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                if let Some(key) = create_file(data_dir, path)? {
                    return Ok(key);
                }
                // Another process created it first: read theirs.
            }
            Err(error) => return Err(read_error(error)),
        }
    }
}

/// Generates a key and writes it to a new file; `None` if the file appeared meanwhile.
fn create_file(data_dir: &Path, path: &Path) -> Result<Option<MasterKey>, MasterKeyError> {
    let create_error = |source| MasterKeyError::Create {
        path: path.to_owned(),
        source,
    };
    create_private_dir(data_dir).map_err(create_error)?;
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => return Ok(None),
        Err(error) => return Err(create_error(error)),
    };
    let key = AeadKey::generate().map_err(|_| MasterKeyError::Random)?;
    let mut text = Zeroizing::new(STANDARD.encode(key.bytes()));
    text.push('\n');
    let written = file
        .write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| sync_dir(data_dir));
    if let Err(error) = written {
        // Leave no empty or partial file behind to fail the next start.
        let _ = fs::remove_file(path);
        return Err(create_error(error));
    }
    Ok(Some(MasterKey(key)))
}

fn read_text(mut file: File) -> io::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::with_capacity(128));
    file.read_to_string(&mut text)?;
    Ok(text)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Makes the new file's directory entry durable: a key lost in a crash would take every
/// secret encrypted under it along.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

#[cfg(unix)]
fn warn_if_shared(file: &File, path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(metadata) = file.metadata() {
        let mode = metadata.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the master key file is readable by others than its owner; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_shared(_file: &File, _path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    const BASE64_PADDED: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn expected() -> [u8; KEY_LEN] {
        std::array::from_fn(|i| i as u8)
    }

    #[test]
    fn a_master_key_parses_from_hex_of_either_case() {
        assert_eq!(MasterKey::parse(HEX).unwrap().key().bytes(), &expected());
        assert_eq!(
            MasterKey::parse(&HEX.to_uppercase()).unwrap().key().bytes(),
            &expected()
        );
        assert_eq!(
            MasterKey::parse(&format!("  {HEX}\n")).unwrap().key().bytes(),
            &expected()
        );
    }

    #[test]
    fn a_master_key_parses_from_base64_padded_or_not_standard_or_url_safe() {
        assert_eq!(MasterKey::parse(BASE64_PADDED).unwrap().key().bytes(), &expected());
        assert_eq!(
            MasterKey::parse(BASE64_PADDED.trim_end_matches('='))
                .unwrap()
                .key()
                .bytes(),
            &expected()
        );
        let bytes = [0xfb; KEY_LEN]; // `+` and `/` in the standard alphabet, `-` and `_` in the URL-safe one
        let standard = STANDARD.encode(bytes);
        let url_safe = base64::engine::general_purpose::URL_SAFE.encode(bytes);
        assert_ne!(standard, url_safe);
        assert_eq!(MasterKey::parse(&standard).unwrap().key().bytes(), &bytes);
        assert_eq!(MasterKey::parse(&url_safe).unwrap().key().bytes(), &bytes);
    }

    #[test]
    fn a_master_key_of_the_wrong_length_is_rejected_with_its_length() {
        assert_eq!(
            MasterKey::parse(&HEX[..62]).unwrap_err(),
            MasterKeyParseError::WrongHexLength { bytes: 31 }
        );
        assert_eq!(
            MasterKey::parse(&format!("{HEX}00")).unwrap_err(),
            MasterKeyParseError::WrongHexLength { bytes: 33 }
        );
        assert_eq!(
            MasterKey::parse(&STANDARD.encode([7u8; 16])).unwrap_err(),
            MasterKeyParseError::WrongBase64Length { bytes: 16 }
        );
        assert_eq!(
            MasterKey::parse(&STANDARD.encode([7u8; 33])).unwrap_err(),
            MasterKeyParseError::WrongBase64Length { bytes: 33 }
        );
    }

    #[test]
    fn garbage_is_not_a_master_key_and_the_error_does_not_echo_it() {
        let garbage = "hunter2-is-not-a-key!!";
        let error = MasterKey::parse(garbage).unwrap_err();
        assert_eq!(error, MasterKeyParseError::NotEncoded { chars: 22 });
        let configured = MasterKeyError::Configured(error);
        assert_eq!(
            configured.to_string(),
            "KEYWARD_MASTER_KEY is not a master key: its 22 characters are neither 64 hex digits nor base64 of \
             32 bytes; generate one with `openssl rand -base64 32`"
        );
        assert!(!format!("{configured:?}").contains("hunter2"));
        assert_eq!(MasterKey::parse("   ").unwrap_err(), MasterKeyParseError::Empty);
        assert!(matches!(
            MasterKey::parse(&format!("{}!", &HEX[..63])).unwrap_err(),
            MasterKeyParseError::NotEncoded { chars: 64 }
        ));
        let wrong_length = MasterKey::parse(&HEX[..62]).unwrap_err().to_string();
        assert!(!wrong_length.contains(&HEX[..8]), "{wrong_length}");
    }

    #[test]
    fn debug_output_of_a_master_key_is_redacted() {
        let key = MasterKey::parse(HEX).unwrap();
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert_eq!(format!("{key:#?}"), "MasterKey(<redacted>)");
    }

    #[test]
    fn a_configured_key_wins_over_the_file_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let key = MasterKey::load_or_generate(dir.path(), Some(HEX)).unwrap();
        assert_eq!(key.key().bytes(), &expected());
        assert!(!dir.path().join(MASTER_KEY_FILE).exists());
        assert!(matches!(
            MasterKey::load_or_generate(dir.path(), Some("n*pe")).unwrap_err(),
            MasterKeyError::Configured(MasterKeyParseError::NotEncoded { chars: 4 })
        ));
    }

    #[test]
    fn a_generated_key_is_written_once_with_mode_0600_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = MasterKey::load_or_generate(&data_dir, None).unwrap();
        let path = data_dir.join(MASTER_KEY_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
            assert_eq!(fs::metadata(&data_dir).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{}\n", STANDARD.encode(first.key().bytes())));
        let second = MasterKey::load_or_generate(&data_dir, None).unwrap();
        assert_eq!(second.key().bytes(), first.key().bytes());
    }

    #[test]
    fn processes_starting_together_agree_on_one_generated_key() {
        let dir = tempfile::tempdir().unwrap();
        let keys: Vec<[u8; KEY_LEN]> = std::thread::scope(|scope| {
            let starts: Vec<_> = (0..8)
                .map(|_| scope.spawn(|| *MasterKey::load_or_generate(dir.path(), None).unwrap().key().bytes()))
                .collect();
            starts.into_iter().map(|start| start.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| key == &keys[0]));
    }

    #[test]
    fn a_master_key_file_holding_garbage_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(MASTER_KEY_FILE);
        fs::write(&path, "not a key\n").unwrap();
        let error = MasterKey::load_or_generate(dir.path(), None).unwrap_err();
        assert!(matches!(
            &error,
            MasterKeyError::InvalidFile {
                reason: MasterKeyParseError::NotEncoded { chars: 9 },
                ..
            }
        ));
        assert!(error.to_string().contains(&path.display().to_string()));
        assert!(!error.to_string().contains("not a key"));
    }

    #[test]
    fn a_master_key_file_written_by_hand_in_hex_is_read() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(MASTER_KEY_FILE), format!("{HEX}\n")).unwrap();
        let key = MasterKey::load_or_generate(dir.path(), None).unwrap();
        assert_eq!(key.key().bytes(), &expected());
    }
}
