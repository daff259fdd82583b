-- The first PostgreSQL schema: telemetry (series catalogue, metrics, logs) and state
-- (changes, topology, anomalies, incidents, merges, suspects, labels, models, identity,
-- checkpoints, id sequences). Applied by server/store/postgres.py in one transaction.

-- ---- telemetry ---------------------------------------------------------------------
CREATE TABLE series (
    id          serial PRIMARY KEY,
    service     text NOT NULL,
    metric      text NOT NULL,
    points      bigint NOT NULL DEFAULT 0,
    first_ts    double precision,
    last_ts     double precision,
    UNIQUE (service, metric)
);

-- one row per point; the RCA reads one series (or a few services' series) in a window.
-- series_id is written in the same transaction as its series row (no foreign key: a
-- per-row check would cost more than the COPY itself)
CREATE TABLE metrics (
    series_id   integer NOT NULL,
    ts          double precision NOT NULL,
    value       double precision NOT NULL,
    labels      text
);
CREATE INDEX metrics_series_ts ON metrics (series_id, ts);

CREATE TABLE logs (
    service     text NOT NULL,
    ts          double precision NOT NULL,
    level       text NOT NULL,
    level_rank  smallint NOT NULL,
    message     text NOT NULL,
    attributes  text
);
CREATE INDEX logs_service_ts ON logs (service, ts);
CREATE INDEX logs_ts ON logs (ts);

-- ---- state -------------------------------------------------------------------------
CREATE TABLE changes (
    id          text PRIMARY KEY,
    kind        text NOT NULL,
    services    text[] NOT NULL,
    ts          double precision NOT NULL,
    author      text,
    description text,
    fields      text NOT NULL,
    seq         bigserial NOT NULL
);
CREATE INDEX changes_ts ON changes (ts);
CREATE INDEX changes_services ON changes USING gin (services);

CREATE TABLE topology (
    source      text NOT NULL,
    target      text NOT NULL,
    PRIMARY KEY (source, target)
);

CREATE TABLE incidents (
    id                   text PRIMARY KEY,
    status               text NOT NULL CHECK (status IN ('OPEN', 'RESOLVED')),
    title                text NOT NULL,
    started_at           double precision NOT NULL,
    detected_at          double precision NOT NULL,
    resolved_at          double precision,
    services             text[] NOT NULL,
    severity             double precision NOT NULL,
    anomaly_count        integer NOT NULL,
    top_suspect          text,
    no_convincing_change boolean NOT NULL DEFAULT false,
    rca_version          integer NOT NULL DEFAULT 0
);
CREATE INDEX incidents_started ON incidents (started_at DESC, id DESC);
CREATE INDEX incidents_status_started ON incidents (status, started_at DESC);
CREATE INDEX incidents_services ON incidents USING gin (services);

CREATE TABLE incident_merges (
    merged_id   text PRIMARY KEY,
    into_id     text NOT NULL,
    merged_at   double precision NOT NULL,
    CHECK (merged_id <> into_id)
);
CREATE INDEX incident_merges_into ON incident_merges (into_id);

CREATE TABLE anomalies (
    id          text PRIMARY KEY,
    incident_id text,
    service     text NOT NULL,
    metric      text NOT NULL,
    started_at  double precision NOT NULL,
    detected_at double precision NOT NULL,
    ended_at    double precision,
    direction   text NOT NULL,
    score       double precision NOT NULL,
    baseline    double precision NOT NULL,
    observed    double precision NOT NULL,
    join_reason text
);
CREATE INDEX anomalies_incident ON anomalies (incident_id, started_at);
CREATE INDEX anomalies_open ON anomalies (started_at) WHERE ended_at IS NULL;

CREATE TABLE suspects (
    id          text PRIMARY KEY,
    incident_id text NOT NULL,
    rank        integer NOT NULL,
    kind        text NOT NULL,
    change_id   text,
    service     text,
    ts          double precision,
    score       double precision NOT NULL,
    evidence    text NOT NULL,
    explanation text
);
CREATE INDEX suspects_incident ON suspects (incident_id, rank);

CREATE TABLE labels (
    id          text PRIMARY KEY,
    incident_id text NOT NULL,
    change_id   text,
    suspect_id  text,
    verdict     text NOT NULL,
    author      text,
    note        text,
    created_at  double precision NOT NULL
);
CREATE INDEX labels_incident ON labels (incident_id);

CREATE TABLE models (
    version     integer PRIMARY KEY,
    blob        bytea NOT NULL,
    info        text NOT NULL,
    created_at  double precision NOT NULL
);

CREATE TABLE store_identity (
    singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    uid         text NOT NULL
);

-- a stage's state per partition with the offset it covers (every message before it)
CREATE TABLE checkpoints (
    stage       text NOT NULL,
    part        integer NOT NULL,
    next_offset bigint NOT NULL,
    state       bytea NOT NULL,
    saved_at    double precision NOT NULL,
    PRIMARY KEY (stage, part)
);

-- ids: one sequence per prefix (others are created on first use)
CREATE SEQUENCE id_seq_an;
CREATE SEQUENCE id_seq_inc;
CREATE SEQUENCE id_seq_sus;
CREATE SEQUENCE id_seq_lbl;
CREATE SEQUENCE id_seq_dep;
CREATE SEQUENCE id_seq_cfg;
CREATE SEQUENCE id_seq_flag;
