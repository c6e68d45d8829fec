-- AlterTable: what a restore (or drill) run was asked to do.
ALTER TABLE "job_runs" ADD COLUMN "request" JSONB;
