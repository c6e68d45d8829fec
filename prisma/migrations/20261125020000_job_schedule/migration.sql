-- AlterTable: when the scheduler last started a run of the job (at most one start per cron occurrence).
ALTER TABLE "backup_jobs" ADD COLUMN "last_scheduled_at" TIMESTAMPTZ(3);
