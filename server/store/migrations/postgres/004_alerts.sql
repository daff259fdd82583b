-- Alerts from the user's own alerting (POST /ingest/alerts): a firing alert opens or joins
-- an incident; grouping owns incident_id and join_reason.
CREATE SEQUENCE alerts_updated_seq;

CREATE TABLE alerts (
    id             text PRIMARY KEY,
    incident_id    text,
    name           text NOT NULL,
    services       text[] NOT NULL,
    status         text NOT NULL,
    starts_at      double precision NOT NULL,
    ends_at        double precision,
    labels         text,
    annotations    text,
    fingerprint    text,
    source         text,
    generator_url  text,
    join_reason    text,
    updated_seq    bigint NOT NULL DEFAULT nextval('alerts_updated_seq')
);
CREATE INDEX alerts_incident ON alerts (incident_id);
CREATE INDEX alerts_starts ON alerts (starts_at);
