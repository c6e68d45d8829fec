-- Repository maintenance: GC and verify schedules, verify results and retention intent on restore points.
ALTER TYPE "RunKind" ADD VALUE 'gc';

ALTER TABLE "repositories" ADD COLUMN "gc_schedule" TEXT DEFAULT '30 1 * * *';
ALTER TABLE "repositories" ADD COLUMN "verify_schedule" TEXT DEFAULT '0 3 * * 6';
ALTER TABLE "repositories" ADD COLUMN "verify_sample" DOUBLE PRECISION NOT NULL DEFAULT 0.1;
ALTER TABLE "repositories" ADD COLUMN "last_gc_scheduled_at" TIMESTAMPTZ(3);
ALTER TABLE "repositories" ADD COLUMN "last_verify_scheduled_at" TIMESTAMPTZ(3);

ALTER TABLE "restore_points" ADD COLUMN "verified_at" TIMESTAMPTZ(3);
ALTER TABLE "restore_points" ADD COLUMN "damaged" BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE "restore_points" ADD COLUMN "damage" TEXT;
ALTER TABLE "restore_points" ADD COLUMN "pruning_at" TIMESTAMPTZ(3);
