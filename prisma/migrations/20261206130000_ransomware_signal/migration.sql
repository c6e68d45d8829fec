-- The ransomware signal: per-disk statistics of a restore point's new data (compressibility, sampled entropy),
-- the anomaly they raised against the VM's recent points, when it was notified, and the release of the
-- retention hold it puts on the VM in its repository.
ALTER TABLE "restore_points" ADD COLUMN "data_stats" JSONB NOT NULL DEFAULT '[]',
ADD COLUMN "ransomware_suspect" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN "anomaly" TEXT,
ADD COLUMN "anomaly_notified_at" TIMESTAMPTZ(3),
ADD COLUMN "hold_released_at" TIMESTAMPTZ(3),
ADD COLUMN "hold_released_by" TEXT;

