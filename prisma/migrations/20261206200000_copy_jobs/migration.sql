-- Backup copy jobs: restore points copied from one repository into another, with their own retention.
ALTER TYPE "RunKind" ADD VALUE 'copy';

CREATE TABLE "copy_jobs" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "source_repository_id" UUID NOT NULL,
    "target_repository_id" UUID NOT NULL,
    "newest" INTEGER,
    "retention" JSONB NOT NULL DEFAULT '{}',
    "schedule" TEXT,
    "last_scheduled_at" TIMESTAMPTZ(3),
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "copy_jobs_pkey" PRIMARY KEY ("id")
);

CREATE UNIQUE INDEX "copy_jobs_name_key" ON "copy_jobs"("name");
CREATE UNIQUE INDEX "copy_jobs_source_repository_id_target_repository_id_key" ON "copy_jobs"("source_repository_id", "target_repository_id");

ALTER TABLE "copy_jobs" ADD CONSTRAINT "copy_jobs_source_repository_id_fkey" FOREIGN KEY ("source_repository_id") REFERENCES "repositories"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "copy_jobs" ADD CONSTRAINT "copy_jobs_target_repository_id_fkey" FOREIGN KEY ("target_repository_id") REFERENCES "repositories"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

ALTER TABLE "restore_points" ADD COLUMN "copy_of_id" UUID;
ALTER TABLE "restore_points" ADD COLUMN "copy_job_id" UUID;
CREATE INDEX "restore_points_copy_of_id_idx" ON "restore_points"("copy_of_id");
ALTER TABLE "restore_points" ADD CONSTRAINT "restore_points_copy_job_id_fkey" FOREIGN KEY ("copy_job_id") REFERENCES "copy_jobs"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- Transporters run the copies: they read the job (its repositories and retention).
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'vl_transporters') THEN
    GRANT SELECT ON "copy_jobs" TO vl_transporters;
  END IF;
END $$;
