-- Per-disk read speed kept on the run: the average and the fastest second.
ALTER TABLE "run_disks" ADD COLUMN "avg_bytes_per_second" BIGINT NOT NULL DEFAULT 0;
ALTER TABLE "run_disks" ADD COLUMN "peak_bytes_per_second" BIGINT NOT NULL DEFAULT 0;
