-- Initial schema. Tenants are configured in settings; this table only anchors foreign keys.
CREATE TABLE tenants (
    id text PRIMARY KEY
);

-- subject_id is the server's random pseudonymous id; external_ref is the tenant's reference
-- for the person, cleared at opt-out (NULLs do not collide in the UNIQUE constraint).
CREATE TABLE subjects (
    tenant_id    text NOT NULL REFERENCES tenants (id),
    subject_id   text NOT NULL,
    external_ref text,
    status       text NOT NULL CHECK (status IN ('enrolled', 'opt_out_pending', 'opted_out')),
    key_id       text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, subject_id),
    UNIQUE (tenant_id, external_ref)
);
CREATE INDEX subjects_pending ON subjects (updated_at) WHERE status = 'opt_out_pending';

CREATE TABLE consents (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id      text NOT NULL,
    subject_id     text NOT NULL,
    policy_version text NOT NULL,
    consented_at   timestamptz NOT NULL,
    channel        text NOT NULL,
    purpose        text NOT NULL,
    identification boolean NOT NULL,
    withdrawn_at   timestamptz,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, subject_id)
);
CREATE INDEX consents_subject ON consents (tenant_id, subject_id, id);

-- Sealed templates only: AES-256-GCM ciphertext, its nonce, and the data key wrapped under the
-- subject key (key_id at key_version). Nothing here opens without the key provider.
CREATE TABLE templates (
    template_id    text PRIMARY KEY,
    tenant_id      text NOT NULL,
    subject_id     text NOT NULL,
    model_id       text NOT NULL,
    format_version integer NOT NULL,
    nonce          bytea NOT NULL,
    ciphertext     bytea NOT NULL,
    wrapped_key    bytea NOT NULL,
    key_id         text NOT NULL,
    key_version    integer NOT NULL,
    quality        double precision,
    created_at     timestamptz NOT NULL,
    FOREIGN KEY (tenant_id, subject_id) REFERENCES subjects (tenant_id, subject_id)
);
CREATE INDEX templates_subject ON templates (tenant_id, subject_id, created_at);

-- Enrolment idempotency: a retried enrolment with the same key and digest gets the stored
-- response; the same key with other content is refused.
CREATE TABLE enrolments (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    idempotency_key text NOT NULL,
    request_digest  bytea NOT NULL,
    response        bytea NOT NULL,
    subject_id      text NOT NULL,
    created_at      timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, idempotency_key)
);
CREATE INDEX enrolments_subject ON enrolments (tenant_id, subject_id);

-- Append-only audit log, one hash chain per tenant (see bioauth.store.audit). details is the
-- canonical JSON text that was hashed, kept as text so it round-trips byte for byte.
CREATE TABLE audit_log (
    tenant_id       text NOT NULL REFERENCES tenants (id),
    seq             bigint NOT NULL,
    prev_hash       bytea NOT NULL,
    row_hash        bytea NOT NULL,
    at              timestamptz NOT NULL,
    operation       text NOT NULL,
    subject_id      text,
    decision        text,
    score_band      text,
    operating_point text,
    model_id        text,
    token_jti       text,
    details         text NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant_id, seq)
);

CREATE TABLE audit_heads (
    tenant_id text PRIMARY KEY REFERENCES tenants (id),
    seq       bigint NOT NULL,
    row_hash  bytea NOT NULL
);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
