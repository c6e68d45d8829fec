-- Restores: what the verify pass has read back of each disk, so a reload shows the progress the live view showed.
ALTER TABLE "run_disks" ADD COLUMN "bytes_verified" BIGINT NOT NULL DEFAULT 0;
