-- Initial schema. Times are UTC ISO-8601 text with microseconds; blobs are BLOB.
-- Tenants are configured in settings; this table only anchors foreign keys.
CREATE TABLE tenants (
    id TEXT PRIMARY KEY
) WITHOUT ROWID;

-- subject_id is the server's random pseudonymous id; external_ref is the tenant's reference
-- for the person, cleared at opt-out (NULLs do not collide in the UNIQUE constraint).
CREATE TABLE subjects (
    tenant_id    TEXT NOT NULL REFERENCES tenants (id),
    subject_id   TEXT NOT NULL,
    external_ref TEXT,
    status       TEXT NOT NULL CHECK (status IN ('enrolled', 'opt_out_pending', 'opted_out')),
    key_id       TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    PRIMARY KEY (tenant_id, subject_id),
    UNIQUE (tenant_id, external_ref)
);
CREATE INDEX subjects_pending ON subjects (updated_at) WHERE status = 'opt_out_pending';

CREATE TABLE consents (
    id             INTEGER PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    consented_at   TEXT NOT NULL,
    channel        TEXT NOT NULL,
    purpose        TEXT NOT NULL,
    identification INTEGER NOT NULL CHECK (identification IN (0, 1)),
    withdrawn_at   TEXT,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, subject_id)
);
CREATE INDEX consents_subject ON consents (tenant_id, subject_id, id);

-- Sealed templates only: AES-256-GCM ciphertext, its nonce, and the data key wrapped under the
-- subject key (key_id at key_version). Nothing here opens without the key provider.
CREATE TABLE templates (
    template_id    TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    subject_id     TEXT NOT NULL,
    model_id       TEXT NOT NULL,
    format_version INTEGER NOT NULL,
    nonce          BLOB NOT NULL,
    ciphertext     BLOB NOT NULL,
    wrapped_key    BLOB NOT NULL,
    key_id         TEXT NOT NULL,
    key_version    INTEGER NOT NULL,
    quality        REAL,
    created_at     TEXT NOT NULL,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, subject_id)
);
CREATE INDEX templates_subject ON templates (tenant_id, subject_id, created_at);

-- Enrolment idempotency: a retried enrolment with the same key and digest gets the stored
-- response; the same key with other content is refused.
CREATE TABLE enrolments (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    idempotency_key TEXT NOT NULL,
    request_digest  BLOB NOT NULL,
    response        BLOB NOT NULL,
    subject_id      TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
) WITHOUT ROWID;
CREATE INDEX enrolments_subject ON enrolments (tenant_id, subject_id);

-- Append-only audit log, one hash chain per tenant (see bioauth.store.audit).
CREATE TABLE audit_log (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    seq             INTEGER NOT NULL,
    prev_hash       BLOB NOT NULL,
    row_hash        BLOB NOT NULL,
    at              TEXT NOT NULL,
    operation       TEXT NOT NULL,
    subject_id      TEXT,
    decision        TEXT,
    score_band      TEXT,
    operating_point TEXT,
    model_id        TEXT,
    token_jti       TEXT,
    details         TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, seq)
) WITHOUT ROWID;

CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants (id),
    seq       INTEGER NOT NULL,
    row_hash  BLOB NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
