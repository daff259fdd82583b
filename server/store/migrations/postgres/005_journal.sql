-- Ingest journal: events the API stored, written in the same transaction as their data,
-- so that an in-process bus can replay them after a crash (consecutive seq per log).
CREATE TABLE journal (
    log    text NOT NULL,
    seq    bigint NOT NULL,
    key    bytea NOT NULL,
    value  bytea NOT NULL,
    added_at double precision NOT NULL,
    PRIMARY KEY (log, seq)
);

CREATE TABLE journal_heads (
    log       text PRIMARY KEY,
    next_seq  bigint NOT NULL
);
