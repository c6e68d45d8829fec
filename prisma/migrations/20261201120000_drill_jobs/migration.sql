-- CreateTable: scheduled restore drills (restore to a throwaway VM, verify, delete).
CREATE TABLE "drill_jobs" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "vcenter_id" UUID NOT NULL,
    "vms" JSONB NOT NULL,
    "point_choice" TEXT NOT NULL DEFAULT 'newest',
    "datastore" TEXT,
    "schedule" TEXT,
    "last_scheduled_at" TIMESTAMPTZ(3),
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "drill_jobs_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "drill_jobs_name_key" ON "drill_jobs"("name");
ALTER TABLE "drill_jobs" ADD CONSTRAINT "drill_jobs_vcenter_id_fkey" FOREIGN KEY ("vcenter_id") REFERENCES "vcenters"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- AlterTable: a drill run belongs to its drill job.
ALTER TABLE "job_runs" ADD COLUMN "drill_job_id" UUID;
CREATE INDEX "job_runs_drill_job_id_created_at_idx" ON "job_runs"("drill_job_id", "created_at");
ALTER TABLE "job_runs" ADD CONSTRAINT "job_runs_drill_job_id_fkey" FOREIGN KEY ("drill_job_id") REFERENCES "drill_jobs"("id") ON DELETE SET NULL ON UPDATE CASCADE;
