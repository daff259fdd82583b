-- Root-service labels: a label names a change (change_id) or, for a root-service suspect, a service.
ALTER TABLE labels ADD COLUMN IF NOT EXISTS service text;
