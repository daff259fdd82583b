-- API keys (hashed), the audit trail, and idempotency keys of ingest batches.
CREATE TABLE api_keys (
    id          text PRIMARY KEY,
    name        text NOT NULL,
    roles       text[] NOT NULL,
    key_hash    text NOT NULL,
    created_at  double precision NOT NULL,
    revoked_at  double precision
);

CREATE TABLE audit (
    id          text PRIMARY KEY,
    ts          double precision NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    target      text,
    detail      text
);
CREATE INDEX audit_ts ON audit (ts DESC);

CREATE TABLE idempotency (
    key         text NOT NULL,
    endpoint    text NOT NULL,
    status      integer NOT NULL,
    body        text NOT NULL,
    created_at  double precision NOT NULL,
    PRIMARY KEY (key, endpoint)
);
