-- Where each disk's time went (busy fractions of source read, processing, target write), kept after the run.
ALTER TABLE "run_disks" ADD COLUMN "bottleneck" JSONB;
