-- An anomaly records what opened it (knn, seasonal, drift, level, range, shift) and one
-- sentence on why it is anomalous.
ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS channel text;
ALTER TABLE anomalies ADD COLUMN IF NOT EXISTS reason text;
