-- How the backup engine read each disk: 'changed' (an incremental through CBT) or 'full'; the overview shows it
-- instead of inferring it from cbt_used and earlier restore points.
ALTER TABLE "run_disks" ADD COLUMN "read_mode" TEXT;
ALTER TABLE "run_disks" ADD CONSTRAINT "run_disks_read_mode_check" CHECK ("read_mode" IN ('changed', 'full'));
