-- Keyed digest (HMAC-SHA256 under store.external_ref_key) of tenant id + external reference,
-- kept for the subject's whole life: the plaintext reference is cleared at opt-out, the digest
-- stays so a look-up by reference still finds the opted-out subject and its withdrawn consent.
-- SQL cannot compute it (the key never reaches the database): the store fills existing rows
-- from Python right after migrating (bioauth.store._refs); rows that had already opted out
-- have nothing left to digest and stay NULL.
ALTER TABLE subjects ADD COLUMN external_ref_digest BLOB;

-- Look-ups by digest, whatever the status (opted-out rows included).
CREATE INDEX subjects_ref_digest ON subjects (tenant_id, external_ref_digest);

-- At most one live (enrolled or opting-out) subject per reference; opted-out rows may repeat
-- it, since a person may enrol again after leaving.
CREATE UNIQUE INDEX subjects_ref_digest_live ON subjects (tenant_id, external_ref_digest)
    WHERE status <> 'opted_out';
