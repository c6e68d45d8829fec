-- Retries of a run's failed VMs (by hand, or by a job's automatic retries): each run is retried at most
-- once, which the unique index guarantees even with several Directors.
ALTER TABLE "job_runs" ADD COLUMN "retry_of_id" UUID;
CREATE UNIQUE INDEX "job_runs_retry_of_id_key" ON "job_runs"("retry_of_id");
ALTER TABLE "job_runs" ADD CONSTRAINT "job_runs_retry_of_id_fkey" FOREIGN KEY ("retry_of_id") REFERENCES "job_runs"("id") ON DELETE SET NULL ON UPDATE CASCADE;
