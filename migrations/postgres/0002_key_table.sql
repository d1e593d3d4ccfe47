-- Wrapped keys, beside the event log but outside it: this table is mutable on purpose.
-- Deleting a secret deletes its data keys (crypto-shredding); the events that carry its
-- ciphertext stay as they are and can no longer be decrypted. See src/crypto.
--
-- key_id:      `kek:<vault>` for a vault's key-encryption key (wrapped by the master key),
--              `dek:<vault>:<path>:<version>` for a secret version's data key (wrapped by the KEK)
-- secret_path: the secret a DEK belongs to, NULL for a KEK; what a secret's shred deletes by
-- wrapped:     nonce (12 bytes) || AES-256-GCM ciphertext and tag, bound to key_id
CREATE TABLE wrapped_keys (
    key_id      TEXT    PRIMARY KEY,
    vault_id    UUID    NOT NULL,
    secret_path TEXT,
    wrapped     BYTEA   NOT NULL,
    created_at  BIGINT  NOT NULL -- unix microseconds
);
CREATE INDEX wrapped_keys_by_secret ON wrapped_keys (vault_id, secret_path);
