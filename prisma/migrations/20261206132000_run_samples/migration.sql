-- Per-disk progress samples over time, for the run page's throughput chart (bounded per disk by the Transporter).
CREATE TABLE "run_disk_samples" (
    "id" BIGSERIAL NOT NULL,
    "run_disk_id" UUID NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "bytes_read" BIGINT NOT NULL,
    "bytes_written" BIGINT NOT NULL,
    CONSTRAINT "run_disk_samples_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "run_disk_samples_run_disk_id_at_idx" ON "run_disk_samples"("run_disk_id", "at");

ALTER TABLE "run_disk_samples" ADD CONSTRAINT "run_disk_samples_run_disk_id_fkey" FOREIGN KEY ("run_disk_id") REFERENCES "run_disks"("id") ON DELETE CASCADE ON UPDATE CASCADE;
