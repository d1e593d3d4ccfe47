//! Access tokens: EdDSA (Ed25519) JWTs carrying who the bearer is and what it may reach.
//!
//! One Ed25519 key signs every token. It is read from `<data_dir>/jwt-signing-key.pem`
//! (unencrypted PKCS#8 PEM), or generated there on first start with mode 0600. Its `kid` is
//! the first 16 hex characters of the SHA-256 of the raw 32-byte public key, so it changes
//! exactly when the key does. The public half is published as a JWKS document
//! (`/.well-known/jwks.json`) and in the shape of `GET /v1/auth/jwt-public-key`.
//!
//! # Claims
//!
//! A token's payload, as 1claw describes its agent tokens (`sub` = `agent:<uuid>`, `org`,
//! `scopes`, `vault_ids`, `intents_api_enabled`), plus the registered claims:
//!
//! | claim | meaning |
//! | --- | --- |
//! | `iss` | the server's public URL; must equal the verifier's |
//! | `sub` | `user:<uuid>` or `agent:<uuid>` |
//! | `aud` | `"keyward"` for the API; `"keyward-page"` for the web pages' session cookie, which the API refuses (see [`TokenUse`]) |
//! | `iat`, `exp` | Unix seconds; `exp = iat + ttl` |
//! | `jti` | a UUID naming this token, for revocation (`DELETE /v1/auth/token`) |
//! | `principal_type` | `"user"` or `"agent"`; must agree with the prefix of `sub` |
//! | `org` | the principal's organization |
//! | `scopes` | path globs that bound what the token reaches; empty reaches nothing |
//! | `vault_ids` | the vaults the token is bound to; empty means not bound to any one vault |
//! | `intents_api_enabled` | whether the agent may use the signing proxy (false for users) |
//! | `sid` | the session the token belongs to, for logout and revocation: a human's sign-in (`user.signed_in`; the family of its refresh tokens, if any) or the API key it was exchanged for, an agent's key. Optional on the wire; the service refuses a token without one |
//!
//! `scopes`, `vault_ids` and `intents_api_enabled` are required when verifying: a token that
//! lacked them must not be read as "no restriction". The claims say what was true when the
//! token was issued; whether the principal is still active, or rotated its key after `iat`,
//! is checked live by the caller.
//!
//! # Verification
//!
//! In this order, each failure a distinct [`TokenError`], never a panic: at most 8 KiB;
//! three base64url segments whose header is JSON; `alg` exactly `EdDSA` (so `none` and the
//! HS256-with-the-public-key confusion are refused before any key is touched); `kid` equal
//! to our key's; the signature; `iss` and `aud` equal to ours; the payload has every claim
//! above and `sub` agrees with `principal_type`; `exp > now` with no leeway; `iat` at most
//! [`MAX_CLOCK_SKEW_SECS`] ahead of `now` (replicas' clocks may differ a little).
//! `now` is an argument: `jsonwebtoken`'s own expiry check reads the system clock, so it is
//! switched off and `exp` is compared here instead.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Mutex;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::{DateTime, TimeDelta, Utc};
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;
use zeroize::Zeroizing;

use super::{AuthError, TokenError};

/// The signing key's file name inside the data directory.
pub const SIGNING_KEY_FILE: &str = "jwt-signing-key.pem";
/// The `aud` of every token keyward issues for its API.
pub const TOKEN_AUDIENCE: &str = "keyward";
/// Appended to the API's audience to make the web pages' (`keyward-page`).
const PAGE_AUDIENCE_SUFFIX: &str = "-page";
/// How far a token's `iat` may lie ahead of the verifier's clock. `exp` gets no leeway.
pub const MAX_CLOCK_SKEW_SECS: i64 = 5;
/// The longest lifetime [`TokenIssuer::issue`] accepts: a sanity bound, not a policy (the
/// caller picks the lifetime), that keeps `exp` a representable date.
pub const MAX_TOKEN_TTL_SECS: i64 = 366 * 24 * 60 * 60;
/// Our tokens are well under 2 KiB even with many scopes; anything longer is refused unparsed.
const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// A PKCS#8 Ed25519 PEM is about 120 bytes.
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;
const ALG: &str = "EdDSA";

/// The Ed25519 key pair that signs tokens.
///
/// The private key is held only inside `jsonwebtoken`'s `EncodingKey` (its PKCS#8 DER,
/// zeroized on drop); every transient copy made while loading or generating it is zeroized
/// too. (The `ed25519` crate is a direct dependency only for its `zeroize` feature: it makes
/// the `KeypairBytes` that PKCS#8 encoding and decoding pass through, here and inside
/// `jsonwebtoken` on every signature, wipe the seed on drop.) `Debug` shows the `kid` and
/// nothing else.
pub struct SigningKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    public: [u8; 32],
    kid: String,
    public_key_pem: String,
}

impl SigningKeys {
    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Self, AuthError> {
        Self::from_signing_key(&generate_signing_key()?)
    }

    /// A configured key: an unencrypted PKCS#8 Ed25519 private key in PEM form
    /// (`-----BEGIN PRIVATE KEY-----`, as `openssl genpkey -algorithm ed25519` writes).
    pub fn from_pkcs8_pem(pem: &str) -> Result<Self, AuthError> {
        let signing = SigningKey::from_pkcs8_pem(pem.trim()).map_err(|_| AuthError::InvalidSigningKey)?;
        Self::from_signing_key(&signing)
    }

    /// Reads `<data_dir>/jwt-signing-key.pem`, or creates it with a new key (mode 0600).
    ///
    /// Safe against a concurrent first start: the new key is written to a temporary file
    /// and hard-linked into place, which fails rather than overwrite; the loser of the race
    /// reads the winner's complete file. An existing file that is not a valid key is an
    /// error, never replaced.
    pub fn load_or_generate(data_dir: &Path) -> Result<Self, AuthError> {
        let path = data_dir.join(SIGNING_KEY_FILE);
        match read_key_file(&path) {
            Ok(pem) => return Self::from_pkcs8_pem(&pem),
            Err(error) if error.kind() == io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(AuthError::KeyFile {
                    path,
                    action: "read",
                    source,
                });
            }
        }
        fs::create_dir_all(data_dir).map_err(|source| AuthError::KeyFile {
            path: data_dir.to_path_buf(),
            action: "created (the data directory)",
            source,
        })?;
        let signing = generate_signing_key()?;
        let pem = signing
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|_| AuthError::InvalidSigningKey)?;
        match create_key_file(&path, pem.as_bytes()) {
            Ok(()) => Self::from_signing_key(&signing),
            Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                let pem = read_key_file(&path).map_err(|source| AuthError::KeyFile {
                    path: path.clone(),
                    action: "read",
                    source,
                })?;
                Self::from_pkcs8_pem(&pem)
            }
            Err(source) => Err(AuthError::KeyFile {
                path,
                action: "created",
                source,
            }),
        }
    }

    fn from_signing_key(signing: &SigningKey) -> Result<Self, AuthError> {
        let der = signing.to_pkcs8_der().map_err(|_| AuthError::InvalidSigningKey)?;
        let verifying = signing.verifying_key();
        let public = verifying.to_bytes();
        let public_key_pem = verifying
            .to_public_key_pem(LineEnding::LF)
            .map_err(|_| AuthError::InvalidSigningKey)?;
        Ok(Self {
            encoding: EncodingKey::from_ed_der(der.as_bytes()),
            decoding: DecodingKey::from_ed_der(&public),
            public,
            kid: kid_of(&public),
            public_key_pem,
        })
    }

    /// The key id in every token's header: 16 hex characters of SHA-256(public key).
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The raw 32-byte Ed25519 public key.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.public
    }

    /// The public key as an SPKI PEM (`-----BEGIN PUBLIC KEY-----`).
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }

    /// The body of `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({
            "keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": URL_SAFE_NO_PAD.encode(self.public),
                "kid": self.kid,
                "alg": ALG,
                "use": "sig",
            }]
        })
    }

    /// The body of `GET /v1/auth/jwt-public-key`.
    pub fn public_key_response(&self) -> JwtPublicKey {
        JwtPublicKey {
            alg: ALG.to_owned(),
            public_key_base64: STANDARD.encode(self.public),
        }
    }
}

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKeys")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// `GET /v1/auth/jwt-public-key`: exactly the fields the spec documents. `public_key_base64`
/// is the raw 32-byte Ed25519 public key in standard, padded base64 (44 characters).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwtPublicKey {
    pub alg: String,
    pub public_key_base64: String,
}

fn kid_of(public: &[u8; 32]) -> String {
    let digest = Sha256::digest(public);
    hex::encode(&digest[..8])
}

fn generate_signing_key() -> Result<SigningKey, AuthError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::fill(seed.as_mut_slice()).map_err(|_| AuthError::Randomness)?;
    Ok(SigningKey::from_bytes(&seed))
}

fn read_key_file(path: &Path) -> io::Result<Zeroizing<String>> {
    let file = File::open(path)?;
    let metadata = file.metadata()?;
    warn_if_others_can_read(path, &metadata);
    // Reserved up front so the string never reallocates and leaves a copy behind.
    let capacity = usize::try_from(metadata.len().min(MAX_KEY_FILE_BYTES)).unwrap_or(0) + 1;
    let mut pem = Zeroizing::new(String::with_capacity(capacity));
    file.take(MAX_KEY_FILE_BYTES + 1).read_to_string(&mut pem)?;
    if pem.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the file is larger than 16 KiB",
        ));
    }
    Ok(pem)
}

#[cfg(unix)]
fn warn_if_others_can_read(path: &Path, metadata: &fs::Metadata) {
    use std::os::unix::fs::PermissionsExt;
    let mode = metadata.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        tracing::warn!(path = %path.display(), mode = format!("{mode:o}"), "the JWT signing key file is accessible to other users; chmod 600 it");
    }
}

#[cfg(not(unix))]
fn warn_if_others_can_read(_path: &Path, _metadata: &fs::Metadata) {}

/// Writes `contents` to a private temporary file beside `path`, then links it to `path`.
/// Fails with `AlreadyExists`, changing nothing, if `path` exists by then.
fn create_key_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let nonce = getrandom::u64().map_err(io::Error::other)?;
    let temporary = path.with_file_name(format!(".{SIGNING_KEY_FILE}.{}.{nonce:016x}.tmp", std::process::id()));
    let written = write_private_file(&temporary, contents).and_then(|()| fs::hard_link(&temporary, path));
    let _ = fs::remove_file(&temporary);
    written
}

fn write_private_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Who a principal is: the domain's type, so tokens and policies speak of the same kinds.
pub use domain::authz::PrincipalType;

/// Where a token is presented. The web pages keep a human's token in a cookie, which a
/// browser sends along with requests other sites make it send: such a token must not also
/// open the API, so it is issued for another audience.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenUse {
    /// A bearer token for the API: `aud` is the issuer's audience (`keyward`).
    Api,
    /// The web pages' session cookie: `aud` is the audience with `-page` appended.
    Page,
}

/// What a new token is to say: the caller decides it from the projections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRequest {
    pub token_use: TokenUse,
    pub principal_type: PrincipalType,
    /// The user's or agent's id.
    pub principal_id: Uuid,
    pub org_id: Uuid,
    pub scopes: Vec<String>,
    pub vault_ids: Vec<Uuid>,
    pub intents_api_enabled: bool,
    /// The login session, if the token belongs to one.
    pub sid: Option<Uuid>,
}

/// The verified contents of a token (see the module documentation for the wire names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims {
    pub principal_type: PrincipalType,
    /// The user's or agent's id; `sub` on the wire is `<principal_type>:<principal_id>`.
    pub principal_id: Uuid,
    /// `org` on the wire.
    pub org_id: Uuid,
    pub scopes: Vec<String>,
    pub vault_ids: Vec<Uuid>,
    pub intents_api_enabled: bool,
    pub sid: Option<Uuid>,
    pub jti: Uuid,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds: the token is refused from this second on.
    pub exp: i64,
    pub iss: String,
    pub aud: String,
}

impl Claims {
    /// The `sub` claim: `user:<uuid>` or `agent:<uuid>`.
    pub fn sub(&self) -> String {
        format!("{}:{}", self.principal_type, self.principal_id)
    }

    /// The token's whole lifetime in seconds: `expires_in` of a `TokenResponse`.
    pub fn expires_in(&self) -> i64 {
        self.exp - self.iat
    }

    pub fn issued_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.iat, 0)
    }

    pub fn expires_at(&self) -> Option<DateTime<Utc>> {
        DateTime::from_timestamp(self.exp, 0)
    }
}

/// The payload as it is signed. Every field is required when reading.
#[derive(Serialize, Deserialize)]
struct WireClaims {
    iss: String,
    sub: String,
    aud: String,
    iat: i64,
    exp: i64,
    jti: Uuid,
    principal_type: PrincipalType,
    org: Uuid,
    scopes: Vec<String>,
    vault_ids: Vec<Uuid>,
    intents_api_enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sid: Option<Uuid>,
}

impl From<&Claims> for WireClaims {
    fn from(claims: &Claims) -> Self {
        Self {
            iss: claims.iss.clone(),
            sub: claims.sub(),
            aud: claims.aud.clone(),
            iat: claims.iat,
            exp: claims.exp,
            jti: claims.jti,
            principal_type: claims.principal_type,
            org: claims.org_id,
            scopes: claims.scopes.clone(),
            vault_ids: claims.vault_ids.clone(),
            intents_api_enabled: claims.intents_api_enabled,
            sid: claims.sid,
        }
    }
}

impl TryFrom<WireClaims> for Claims {
    type Error = TokenError;

    fn try_from(wire: WireClaims) -> Result<Self, TokenError> {
        let (kind, id) = wire.sub.split_once(':').ok_or(TokenError::InvalidClaims)?;
        if kind != wire.principal_type.as_str() {
            return Err(TokenError::InvalidClaims);
        }
        let principal_id = Uuid::parse_str(id).map_err(|_| TokenError::InvalidClaims)?;
        Ok(Self {
            principal_type: wire.principal_type,
            principal_id,
            org_id: wire.org,
            scopes: wire.scopes,
            vault_ids: wire.vault_ids,
            intents_api_enabled: wire.intents_api_enabled,
            sid: wire.sid,
            jti: wire.jti,
            iat: wire.iat,
            exp: wire.exp,
            iss: wire.iss,
            aud: wire.aud,
        })
    }
}

/// The part of a header looked at before any signature check.
#[derive(Deserialize)]
struct PeekedHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
}

/// Issues and verifies this server's tokens.
pub struct TokenIssuer {
    keys: SigningKeys,
    issuer: String,
    audience: String,
    page_audience: String,
    validation: Validation,
    /// Tokens whose signature and claims checked out, by their text: an agent presents
    /// the same token on every request, and the signature check costs more than the rest
    /// of the authentication. The time checks run on every use.
    verified: Mutex<HashMap<String, Claims>>,
}

/// Tokens remembered as verified; past this the memory starts over.
const VERIFIED_CAPACITY: usize = 4096;

impl TokenIssuer {
    /// `issuer` is the server's public URL; `audience` is normally [`TOKEN_AUDIENCE`], the
    /// API's; the web pages' is derived from it.
    pub fn new(keys: SigningKeys, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        // Pin the crypto backend: should another crate ever enable jsonwebtoken's aws_lc_rs
        // feature too, its automatic choice would panic. An error means one is installed.
        let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
        let issuer = issuer.into();
        let audience = audience.into();
        let page_audience = format!("{audience}{PAGE_AUDIENCE_SUFFIX}");
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Checked in `verify` against the `now` it is given, not the system clock.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.leeway = 0;
        validation.set_issuer(&[&issuer]);
        validation.set_audience(&[&audience, &page_audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        Self {
            keys,
            issuer,
            audience,
            page_audience,
            validation,
            verified: Mutex::default(),
        }
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The `aud` of tokens for `token_use`.
    pub fn audience(&self, token_use: TokenUse) -> &str {
        match token_use {
            TokenUse::Api => &self.audience,
            TokenUse::Page => &self.page_audience,
        }
    }

    /// Signs a token for `request`, valid from `now` for `ttl`: whole seconds, from one to
    /// [`MAX_TOKEN_TTL_SECS`].
    pub fn issue(
        &self,
        request: TokenRequest,
        now: DateTime<Utc>,
        ttl: TimeDelta,
    ) -> Result<(String, Claims), AuthError> {
        let seconds = ttl.num_seconds();
        let iat = now.timestamp();
        if !(1..=MAX_TOKEN_TTL_SECS).contains(&seconds) {
            return Err(AuthError::InvalidTtl { seconds });
        }
        let exp = iat.checked_add(seconds).ok_or(AuthError::InvalidTtl { seconds })?;
        let claims = Claims {
            principal_type: request.principal_type,
            principal_id: request.principal_id,
            org_id: request.org_id,
            scopes: request.scopes,
            vault_ids: request.vault_ids,
            intents_api_enabled: request.intents_api_enabled,
            sid: request.sid,
            jti: Uuid::now_v7(),
            iat,
            exp,
            iss: self.issuer.clone(),
            aud: self.audience(request.token_use).to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.keys.kid.clone());
        let token = jsonwebtoken::encode(&header, &WireClaims::from(&claims), &self.keys.encoding)
            .map_err(|_| AuthError::Signing)?;
        Ok((token, claims))
    }

    /// Verifies a token presented to the API as of `now` (see the module documentation for
    /// the checks).
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        self.verify_for(token, TokenUse::Api, now)
    }

    /// Verifies a token presented for `token_use` as of `now`: one issued for the other
    /// use is [`TokenError::WrongAudience`].
    pub fn verify_for(&self, token: &str, token_use: TokenUse, now: DateTime<Utc>) -> Result<Claims, TokenError> {
        let remembered = self.verified().get(token).cloned();
        let claims = match remembered {
            Some(claims) => claims,
            None => {
                let claims = self.verify_signed(token)?;
                let mut verified = self.verified();
                if verified.len() >= VERIFIED_CAPACITY {
                    verified.clear();
                }
                verified.insert(token.to_owned(), claims.clone());
                claims
            }
        };
        if claims.aud != self.audience(token_use) {
            return Err(TokenError::WrongAudience);
        }
        let now = now.timestamp();
        if claims.exp <= now {
            return Err(TokenError::Expired);
        }
        if claims.iat > now.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return Err(TokenError::IssuedInFuture);
        }
        Ok(claims)
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, HashMap<String, Claims>> {
        self.verified.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// What holds of a token at any time: its encoding, signature and claims.
    fn verify_signed(&self, token: &str) -> Result<Claims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::Malformed);
        }
        let header = peek_header(token)?;
        if header.alg != ALG {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        if header.kid.as_deref() != Some(self.keys.kid.as_str()) {
            return Err(TokenError::UnknownKey);
        }
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.keys.decoding, &self.validation)
            .map_err(token_error)?;
        // The signature holds from here on: what is wrong now is the claims, not the encoding.
        let wire: WireClaims = serde_json::from_value(data.claims).map_err(|_| TokenError::InvalidClaims)?;
        let claims = Claims::try_from(wire)?;
        // jsonwebtoken checked these already; they are cheap to state exactly.
        if claims.iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        if claims.aud != self.audience && claims.aud != self.page_audience {
            return Err(TokenError::WrongAudience);
        }
        if claims.iat >= claims.exp {
            return Err(TokenError::InvalidClaims);
        }
        Ok(claims)
    }

    /// The body of `GET /.well-known/jwks.json`.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.jwks()
    }

    /// The body of `GET /v1/auth/jwt-public-key`.
    pub fn public_key_response(&self) -> JwtPublicKey {
        self.keys.public_key_response()
    }
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("page_audience", &self.page_audience)
            .field("kid", &self.keys.kid)
            .finish_non_exhaustive()
    }
}

fn peek_header(token: &str) -> Result<PeekedHeader, TokenError> {
    let mut segments = token.split('.');
    let (Some(header), Some(_payload), Some(_signature), None) =
        (segments.next(), segments.next(), segments.next(), segments.next())
    else {
        return Err(TokenError::Malformed);
    };
    let json = URL_SAFE_NO_PAD.decode(header).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

fn token_error(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::InvalidSignature => TokenError::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::UnsupportedAlgorithm | ErrorKind::InvalidAlgorithmName => {
            TokenError::UnsupportedAlgorithm
        }
        ErrorKind::InvalidIssuer => TokenError::WrongIssuer,
        ErrorKind::InvalidAudience => TokenError::WrongAudience,
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::IssuedInFuture,
        ErrorKind::MissingRequiredClaim(_) | ErrorKind::InvalidClaimFormat(_) | ErrorKind::InvalidSubject => {
            TokenError::InvalidClaims
        }
        _ => TokenError::Malformed,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Barrier};

    use chrono::TimeZone;
    use serde_json::{Value, json};

    use super::*;

    /// The Ed25519 private key of RFC 8410, section 10.3, and its public key (section 10.1).
    const RFC8410_PRIVATE_PEM: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp+K06/nwoy/HU++CXqI9EdVhC\n-----END PRIVATE KEY-----\n";
    const RFC8410_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
    const RFC8410_SEED_HEX: &str = "d4ee72dbf913584ad5b6d8f1f769f8ad3afe7c28cbf1d4fbe097a88f44755842";
    const RFC8410_KID: &str = "e744c0791320c328";
    const ISSUER: &str = "https://vault.example/";
    /// 2024-01-15T12:00:00Z
    const NOW: i64 = 1_705_320_000;

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(NOW, 0).unwrap()
    }

    fn at(offset_secs: i64) -> DateTime<Utc> {
        now() + TimeDelta::seconds(offset_secs)
    }

    fn rfc_keys() -> SigningKeys {
        SigningKeys::from_pkcs8_pem(RFC8410_PRIVATE_PEM).unwrap()
    }

    fn issuer() -> TokenIssuer {
        TokenIssuer::new(rfc_keys(), ISSUER, TOKEN_AUDIENCE)
    }

    fn agent_request() -> TokenRequest {
        TokenRequest {
            token_use: TokenUse::Api,
            principal_type: PrincipalType::Agent,
            principal_id: Uuid::from_u128(0xa6e7),
            org_id: Uuid::from_u128(0x0e6),
            scopes: vec!["api/**".to_owned()],
            vault_ids: vec![Uuid::from_u128(0x7a17)],
            intents_api_enabled: true,
            sid: None,
        }
    }

    fn ttl() -> TimeDelta {
        TimeDelta::minutes(15)
    }

    fn issue_at(issuer: &TokenIssuer, offset_secs: i64) -> String {
        issuer.issue(agent_request(), at(offset_secs), ttl()).unwrap().0
    }

    fn b64(json: &Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(json).unwrap())
    }

    fn segment(token: &str, index: usize) -> Value {
        let part = token.split('.').nth(index).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    /// A valid payload for `issuer()`, for forging variations of.
    fn payload() -> Value {
        segment(&issue_at(&issuer(), 0), 1)
    }

    /// Signs `payload` with the real key, so only the claims can be wrong.
    fn signed_by_us(payload: &Value) -> String {
        let keys = rfc_keys();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(keys.kid().to_owned());
        jsonwebtoken::encode(&header, payload, &keys.encoding).unwrap()
    }

    #[test]
    fn an_issued_token_verifies_to_the_claims_it_was_issued_with() {
        let issuer = issuer();
        let (token, claims) = issuer.issue(agent_request(), now(), ttl()).unwrap();
        assert_eq!(
            claims,
            Claims {
                principal_type: PrincipalType::Agent,
                principal_id: Uuid::from_u128(0xa6e7),
                org_id: Uuid::from_u128(0x0e6),
                scopes: vec!["api/**".to_owned()],
                vault_ids: vec![Uuid::from_u128(0x7a17)],
                intents_api_enabled: true,
                sid: None,
                jti: claims.jti,
                iat: NOW,
                exp: NOW + 900,
                iss: ISSUER.to_owned(),
                aud: "keyward".to_owned(),
            }
        );
        assert_eq!(issuer.verify(&token, now()), Ok(claims.clone()));
        assert_eq!(claims.sub(), "agent:00000000-0000-0000-0000-00000000a6e7");
        assert_eq!(claims.expires_in(), 900);
        assert_eq!(claims.issued_at(), Some(now()));
        assert_eq!(claims.expires_at(), Some(at(900)));
    }

    #[test]
    fn the_token_carries_exactly_the_documented_header_and_claims() {
        let issuer = issuer();
        let mut request = agent_request();
        request.sid = Some(Uuid::from_u128(0x5e55));
        let (token, claims) = issuer.issue(request, now(), ttl()).unwrap();
        assert_eq!(
            segment(&token, 0),
            json!({"typ": "JWT", "alg": "EdDSA", "kid": RFC8410_KID})
        );
        assert_eq!(
            segment(&token, 1),
            json!({
                "iss": "https://vault.example/",
                "sub": "agent:00000000-0000-0000-0000-00000000a6e7",
                "aud": "keyward",
                "iat": NOW,
                "exp": NOW + 900,
                "jti": claims.jti,
                "principal_type": "agent",
                "org": "00000000-0000-0000-0000-0000000000e6",
                "scopes": ["api/**"],
                "vault_ids": ["00000000-0000-0000-0000-000000007a17"],
                "intents_api_enabled": true,
                "sid": "00000000-0000-0000-0000-000000005e55",
            })
        );
        let user = TokenRequest {
            principal_type: PrincipalType::User,
            scopes: vec![],
            vault_ids: vec![],
            intents_api_enabled: false,
            ..agent_request()
        };
        let (token, _) = issuer.issue(user, now(), ttl()).unwrap();
        let payload = segment(&token, 1);
        assert_eq!(payload["sub"], "user:00000000-0000-0000-0000-00000000a6e7");
        assert_eq!(payload["principal_type"], "user");
        assert!(payload.get("sid").is_none(), "no sid claim without a session");
    }

    #[test]
    fn a_page_token_does_not_open_the_api_nor_an_api_token_the_pages() {
        let issuer = issuer();
        let page_request = TokenRequest {
            token_use: TokenUse::Page,
            ..agent_request()
        };
        let (page, claims) = issuer.issue(page_request, now(), ttl()).unwrap();
        assert_eq!(segment(&page, 1)["aud"], "keyward-page");
        assert_eq!(issuer.verify_for(&page, TokenUse::Page, now()), Ok(claims));
        // Refused the first time and once remembered as verified alike.
        for _ in 0..2 {
            assert_eq!(issuer.verify(&page, now()), Err(TokenError::WrongAudience));
        }
        let api = issue_at(&issuer, 0);
        assert!(issuer.verify(&api, now()).is_ok());
        assert_eq!(
            issuer.verify_for(&api, TokenUse::Page, now()),
            Err(TokenError::WrongAudience)
        );
        // Another server's page audience is not ours either.
        let other = TokenIssuer::new(rfc_keys(), ISSUER, "shroud");
        let foreign = other
            .issue(
                TokenRequest {
                    token_use: TokenUse::Page,
                    ..agent_request()
                },
                now(),
                ttl(),
            )
            .unwrap()
            .0;
        assert_eq!(
            issuer.verify_for(&foreign, TokenUse::Page, now()),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn every_token_gets_its_own_jti() {
        let issuer = issuer();
        let (_, first) = issuer.issue(agent_request(), now(), ttl()).unwrap();
        let (_, second) = issuer.issue(agent_request(), now(), ttl()).unwrap();
        assert_ne!(first.jti, second.jti);
    }

    #[test]
    fn a_token_expires_at_exp_without_leeway() {
        let issuer = issuer();
        let token = issue_at(&issuer, 0);
        assert!(issuer.verify(&token, at(899)).is_ok());
        assert!(issuer.verify(&token, at(899) + TimeDelta::milliseconds(999)).is_ok());
        assert_eq!(issuer.verify(&token, at(900)), Err(TokenError::Expired));
        assert_eq!(issuer.verify(&token, at(86_400)), Err(TokenError::Expired));
    }

    #[test]
    fn a_token_issued_more_than_the_clock_skew_ahead_is_refused() {
        let issuer = issuer();
        assert!(issuer.verify(&issue_at(&issuer, MAX_CLOCK_SKEW_SECS), now()).is_ok());
        assert_eq!(
            issuer.verify(&issue_at(&issuer, MAX_CLOCK_SKEW_SECS + 1), now()),
            Err(TokenError::IssuedInFuture)
        );
    }

    #[test]
    fn a_lifetime_under_one_second_or_past_the_clock_is_refused() {
        let issuer = issuer();
        for (ttl, seconds) in [
            (TimeDelta::zero(), 0),
            (TimeDelta::milliseconds(999), 0),
            (TimeDelta::seconds(-5), -5),
            (TimeDelta::seconds(MAX_TOKEN_TTL_SECS + 1), MAX_TOKEN_TTL_SECS + 1),
            (TimeDelta::MAX, TimeDelta::MAX.num_seconds()),
        ] {
            assert!(
                matches!(issuer.issue(agent_request(), now(), ttl), Err(AuthError::InvalidTtl { seconds: s }) if s == seconds),
                "{ttl:?}"
            );
        }
        let (_, claims) = issuer
            .issue(agent_request(), now(), TimeDelta::milliseconds(1500))
            .unwrap();
        assert_eq!(claims.exp - claims.iat, 1, "whole seconds");
        let (_, claims) = issuer.issue(agent_request(), now(), TimeDelta::days(366)).unwrap();
        assert_eq!(claims.expires_at(), Some(now() + TimeDelta::days(366)));
    }

    #[test]
    fn alg_none_is_refused() {
        let issuer = issuer();
        let payload = b64(&payload());
        for alg in ["none", "None", "NONE"] {
            let header = b64(&json!({"alg": alg, "typ": "JWT", "kid": RFC8410_KID}));
            for token in [format!("{header}.{payload}."), format!("{header}.{payload}")] {
                assert!(
                    matches!(
                        issuer.verify(&token, now()),
                        Err(TokenError::UnsupportedAlgorithm | TokenError::Malformed)
                    ),
                    "{alg}"
                );
            }
            assert_eq!(
                issuer.verify(&format!("{header}.{payload}."), now()),
                Err(TokenError::UnsupportedAlgorithm)
            );
        }
    }

    #[test]
    fn hs256_signed_with_the_public_key_is_refused() {
        let issuer = issuer();
        let keys = issuer.keys();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(keys.kid().to_owned());
        let payload = payload();
        let secrets: [&[u8]; 4] = [
            keys.public_key(),
            keys.public_key_pem().as_bytes(),
            RFC8410_PUBLIC_PEM.as_bytes(),
            &URL_SAFE_NO_PAD
                .decode("Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE")
                .unwrap(),
        ];
        for secret in secrets {
            let forged = jsonwebtoken::encode(&header, &payload, &EncodingKey::from_secret(secret)).unwrap();
            assert_eq!(issuer.verify(&forged, now()), Err(TokenError::UnsupportedAlgorithm));
        }
    }

    #[test]
    fn a_token_signed_by_another_key_under_our_kid_is_refused() {
        let issuer = issuer();
        let impostor = SigningKeys::generate().unwrap();
        assert_ne!(impostor.kid(), issuer.keys().kid());
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(issuer.keys().kid().to_owned());
        let forged = jsonwebtoken::encode(&header, &payload(), &impostor.encoding).unwrap();
        assert_eq!(issuer.verify(&forged, now()), Err(TokenError::BadSignature));
        // Under its own kid it is not even looked at.
        let own = TokenIssuer::new(impostor, ISSUER, TOKEN_AUDIENCE);
        assert_eq!(issuer.verify(&issue_at(&own, 0), now()), Err(TokenError::UnknownKey));
    }

    #[test]
    fn a_missing_or_foreign_kid_is_refused() {
        let issuer = issuer();
        let keys = rfc_keys();
        let payload = payload();
        for kid in [None, Some("0000000000000000"), Some(""), Some("E744C0791320C328")] {
            let mut header = Header::new(Algorithm::EdDSA);
            header.kid = kid.map(str::to_owned);
            let token = jsonwebtoken::encode(&header, &payload, &keys.encoding).unwrap();
            assert_eq!(issuer.verify(&token, now()), Err(TokenError::UnknownKey), "{kid:?}");
        }
    }

    #[test]
    fn a_token_for_another_issuer_or_audience_is_refused() {
        let ours = issuer();
        let other_issuer = TokenIssuer::new(rfc_keys(), "https://other.example/", TOKEN_AUDIENCE);
        assert_eq!(
            ours.verify(&issue_at(&other_issuer, 0), now()),
            Err(TokenError::WrongIssuer)
        );
        let trailing_slash = TokenIssuer::new(rfc_keys(), "https://vault.example", TOKEN_AUDIENCE);
        assert_eq!(
            ours.verify(&issue_at(&trailing_slash, 0), now()),
            Err(TokenError::WrongIssuer)
        );
        let other_audience = TokenIssuer::new(rfc_keys(), ISSUER, "shroud");
        assert_eq!(
            ours.verify(&issue_at(&other_audience, 0), now()),
            Err(TokenError::WrongAudience)
        );
        let mut payload = payload();
        payload["aud"] = json!(["keyward", "shroud"]);
        assert!(
            ours.verify(&signed_by_us(&payload), now()).is_err(),
            "an audience array is not ours"
        );
    }

    #[test]
    fn a_payload_altered_after_signing_is_refused() {
        let issuer = issuer();
        let token = issue_at(&issuer, 0);
        let [header, _, signature]: [&str; 3] = token.split('.').collect::<Vec<_>>().try_into().unwrap();
        let alterations: [(&str, Value); 5] = [
            ("scopes", json!(["**"])),
            ("vault_ids", json!([])),
            ("exp", json!(NOW + 86_400)),
            ("sub", json!("agent:00000000-0000-0000-0000-000000000001")),
            ("intents_api_enabled", json!(false)),
        ];
        for (claim, value) in alterations {
            let mut payload = segment(&token, 1);
            payload[claim] = value;
            let altered = format!("{header}.{}.{signature}", b64(&payload));
            assert_eq!(issuer.verify(&altered, now()), Err(TokenError::BadSignature), "{claim}");
        }
        let mut header_json = segment(&token, 0);
        header_json["typ"] = json!("at+jwt");
        let altered = format!("{}.{}.{signature}", b64(&header_json), token.split('.').nth(1).unwrap());
        assert_eq!(issuer.verify(&altered, now()), Err(TokenError::BadSignature));
    }

    #[test]
    fn every_single_character_change_to_a_token_is_refused() {
        let issuer = issuer();
        let token = issue_at(&issuer, 0);
        for (index, original) in token.char_indices() {
            let replacement = if original == 'A' { 'B' } else { 'A' };
            let mut mutated = token.clone();
            mutated.replace_range(index..index + 1, &replacement.to_string());
            assert!(
                issuer.verify(&mutated, now()).is_err(),
                "changing character {index} was accepted"
            );
        }
        assert!(issuer.verify(&format!("{token}A"), now()).is_err());
        assert!(issuer.verify(&token[..token.len() - 1], now()).is_err());
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        let issuer = issuer();
        let header = b64(&json!({"alg": "EdDSA", "kid": RFC8410_KID}));
        let valid = issue_at(&issuer, 0);
        let garbage = [
            String::new(),
            ".".to_owned(),
            "..".to_owned(),
            "...".to_owned(),
            "a.b.c".to_owned(),
            "not a token".to_owned(),
            "Bearer x.y.z".to_owned(),
            valid.replace('.', ""),
            format!("{valid}.{}", valid.split('.').nth(2).unwrap()),
            format!("{}.{}", b64(&json!([1, 2])), "e30.x"),
            format!("{}.e30.x", b64(&json!("EdDSA"))),
            format!("{}.e30.x", b64(&json!({"alg": 5}))),
            format!("{}=.e30.x", header),
            format!("{header}.e30.!!!"),
            "é.é.é".to_owned(),
            format!("{}.{}.{}", "A".repeat(4000), "A".repeat(4000), "A".repeat(200)),
        ];
        for token in &garbage {
            assert_eq!(issuer.verify(token, now()), Err(TokenError::Malformed), "{token:?}");
        }
        // Our header, an empty payload and a signature of the right length but wrong value.
        let bad_signature = format!("{header}.e30.{}", URL_SAFE_NO_PAD.encode([7u8; 64]));
        assert_eq!(issuer.verify(&bad_signature, now()), Err(TokenError::BadSignature));
        let short_signature = format!("{header}.e30.{}", URL_SAFE_NO_PAD.encode([7u8; 10]));
        assert_eq!(issuer.verify(&short_signature, now()), Err(TokenError::BadSignature));
        // The signature is checked before the payload is decoded.
        let undecodable_payload = format!("{header}.%%%.{}", valid.split('.').nth(2).unwrap());
        assert_eq!(
            issuer.verify(&undecodable_payload, now()),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn random_strings_never_verify_and_never_panic() {
        let issuer = issuer();
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=";
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..2000 {
            let len = (next() % 300) as usize;
            let token: String = (0..len).map(|_| char::from(alphabet[(next() % 66) as usize])).collect();
            assert!(issuer.verify(&token, now()).is_err(), "{token:?}");
        }
    }

    #[test]
    fn validly_signed_but_inconsistent_or_incomplete_claims_are_refused() {
        let issuer = issuer();
        let mut mismatched = payload();
        mismatched["principal_type"] = json!("user");
        assert_eq!(
            issuer.verify(&signed_by_us(&mismatched), now()),
            Err(TokenError::InvalidClaims)
        );
        for sub in [
            json!("00000000-0000-0000-0000-00000000a6e7"),
            json!("agent:42"),
            json!("agent:"),
            json!(7),
        ] {
            let mut payload = payload();
            payload["sub"] = sub.clone();
            assert_eq!(
                issuer.verify(&signed_by_us(&payload), now()),
                Err(TokenError::InvalidClaims),
                "{sub}"
            );
        }
        for claim in [
            "iss",
            "sub",
            "aud",
            "iat",
            "exp",
            "jti",
            "principal_type",
            "org",
            "scopes",
            "vault_ids",
            "intents_api_enabled",
        ] {
            let mut payload = payload();
            payload.as_object_mut().unwrap().remove(claim);
            assert_eq!(
                issuer.verify(&signed_by_us(&payload), now()),
                Err(TokenError::InvalidClaims),
                "without {claim}"
            );
        }
        let mut inverted = payload();
        inverted["iat"] = json!(NOW + 1);
        inverted["exp"] = json!(NOW + 1);
        assert_eq!(
            issuer.verify(&signed_by_us(&inverted), now()),
            Err(TokenError::InvalidClaims)
        );
        let mut negative = payload();
        negative["exp"] = json!(-1);
        assert!(issuer.verify(&signed_by_us(&negative), now()).is_err());
    }

    #[test]
    fn the_kid_is_16_hex_characters_of_sha256_of_the_raw_public_key() {
        let keys = rfc_keys();
        assert_eq!(keys.kid(), RFC8410_KID);
        let fresh = SigningKeys::generate().unwrap();
        assert_eq!(fresh.kid(), &hex::encode(Sha256::digest(fresh.public_key()))[..16]);
    }

    #[test]
    fn the_public_documents_describe_the_signing_key() {
        let issuer = issuer();
        assert_eq!(
            issuer.jwks(),
            json!({"keys": [{
                "kty": "OKP",
                "crv": "Ed25519",
                "x": "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE",
                "kid": RFC8410_KID,
                "alg": "EdDSA",
                "use": "sig",
            }]})
        );
        assert_eq!(
            serde_json::to_value(issuer.public_key_response()).unwrap(),
            json!({"alg": "EdDSA", "public_key_base64": "Gb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE="})
        );
        assert_eq!(issuer.keys().public_key_pem(), RFC8410_PUBLIC_PEM);
    }

    #[test]
    fn a_third_party_can_verify_our_tokens_from_the_published_keys() {
        let issuer = issuer();
        let token = issue_at(&issuer, 0);
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.validate_exp = false;
        validation.set_audience(&["keyward"]);
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(issuer.jwks()["keys"][0].clone()).unwrap();
        let from_pem = DecodingKey::from_ed_pem(issuer.keys().public_key_pem().as_bytes()).unwrap();
        for key in [DecodingKey::from_jwk(&jwk).unwrap(), from_pem] {
            let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
            assert_eq!(data.claims["sub"], "agent:00000000-0000-0000-0000-00000000a6e7");
        }
    }

    #[test]
    fn keys_load_from_pkcs8_pem_and_refuse_anything_else() {
        assert_eq!(rfc_keys().public_key_pem(), RFC8410_PUBLIC_PEM);
        let with_whitespace = format!("\n  {RFC8410_PRIVATE_PEM}\n\n");
        assert_eq!(
            SigningKeys::from_pkcs8_pem(&with_whitespace).unwrap().kid(),
            RFC8410_KID
        );
        for bad in [
            "",
            "garbage",
            RFC8410_PUBLIC_PEM,
            &RFC8410_PRIVATE_PEM.replace("MC4C", "MC4D"),
        ] {
            assert!(
                matches!(SigningKeys::from_pkcs8_pem(bad), Err(AuthError::InvalidSigningKey)),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn debug_output_never_contains_the_private_key() {
        let issuer = issuer();
        let outputs = [
            format!("{:?}", issuer.keys()),
            format!("{issuer:?}"),
            format!("{:#?}", issuer.keys()),
        ];
        assert_eq!(outputs[0], format!("SigningKeys {{ kid: {RFC8410_KID:?}, .. }}"));
        let seed = hex::decode(RFC8410_SEED_HEX).unwrap();
        let secrets = [
            RFC8410_SEED_HEX.to_owned(),
            RFC8410_SEED_HEX.to_uppercase(),
            "MC4CAQAwBQYDK2VwBCIEINTuctv5E1hK1bbY8fdp".to_owned(),
            STANDARD.encode(&seed),
            URL_SAFE_NO_PAD.encode(&seed),
            format!("{:?}", &seed[..8]),
        ];
        for output in &outputs {
            for secret in &secrets {
                assert!(!output.contains(secret.as_str()), "{output} contains {secret}");
            }
        }
    }

    #[test]
    fn first_start_creates_a_private_key_file_that_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("data");
        let first = SigningKeys::load_or_generate(&data_dir).unwrap();
        let path = data_dir.join(SIGNING_KEY_FILE);
        let pem = fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{pem}");
        assert_eq!(SigningKeys::from_pkcs8_pem(&pem).unwrap().kid(), first.kid());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let second = SigningKeys::load_or_generate(&data_dir).unwrap();
        assert_eq!(second.kid(), first.kid());
        let names: Vec<_> = fs::read_dir(&data_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [SIGNING_KEY_FILE], "no temporary file is left behind");
    }

    #[test]
    fn concurrent_first_starts_agree_on_one_key() {
        let dir = tempfile::tempdir().unwrap();
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (barrier, data_dir) = (barrier.clone(), dir.path().to_path_buf());
                std::thread::spawn(move || {
                    barrier.wait();
                    SigningKeys::load_or_generate(&data_dir).unwrap().kid().to_owned()
                })
            })
            .collect();
        let kids: Vec<String> = handles.into_iter().map(|handle| handle.join().unwrap()).collect();
        assert!(kids.iter().all(|kid| *kid == kids[0]), "{kids:?}");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [SIGNING_KEY_FILE]);
    }

    #[test]
    fn a_configured_key_file_is_loaded_and_a_corrupt_one_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(SIGNING_KEY_FILE);
        fs::write(&path, RFC8410_PRIVATE_PEM).unwrap();
        assert_eq!(SigningKeys::load_or_generate(dir.path()).unwrap().kid(), RFC8410_KID);
        fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            SigningKeys::load_or_generate(dir.path()),
            Err(AuthError::InvalidSigningKey)
        ));
        assert_eq!(fs::read_to_string(&path).unwrap(), "not a key");
        fs::write(&path, "x".repeat(20_000)).unwrap();
        let error = SigningKeys::load_or_generate(dir.path()).unwrap_err();
        assert!(matches!(error, AuthError::KeyFile { action: "read", .. }), "{error:?}");
    }

    #[test]
    fn a_data_dir_that_cannot_be_created_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        fs::write(&blocker, "").unwrap();
        let error = SigningKeys::load_or_generate(&blocker.join("data")).unwrap_err();
        assert!(matches!(error, AuthError::KeyFile { .. }), "{error:?}");
        assert!(
            error
                .to_string()
                .starts_with(&format!("the JWT signing key file {}", blocker.join("data").display()))
        );
    }
}
