-- Notifications: targets (webhook, e-mail), deliveries with retries, and what has been reported.
CREATE TABLE "notification_targets" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL,
    "url" TEXT,
    "email" JSONB,
    "secret_sealed" TEXT,
    "events" TEXT NOT NULL DEFAULT 'problems',
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "notification_targets_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "notification_targets_name_key" ON "notification_targets"("name");

CREATE TABLE "notification_deliveries" (
    "id" UUID NOT NULL,
    "target_id" UUID NOT NULL,
    "kind" TEXT NOT NULL,
    "subject_id" UUID NOT NULL,
    "status" TEXT NOT NULL DEFAULT 'pending',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "next_attempt_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "sent_at" TIMESTAMPTZ(3),
    CONSTRAINT "notification_deliveries_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "notification_deliveries_target_id_kind_subject_id_key" ON "notification_deliveries"("target_id", "kind", "subject_id");
CREATE INDEX "notification_deliveries_status_next_attempt_at_idx" ON "notification_deliveries"("status", "next_attempt_at");
ALTER TABLE "notification_deliveries" ADD CONSTRAINT "notification_deliveries_target_id_fkey" FOREIGN KEY ("target_id") REFERENCES "notification_targets"("id") ON DELETE CASCADE ON UPDATE CASCADE;

ALTER TABLE "job_runs" ADD COLUMN "notified_at" TIMESTAMPTZ(3);
ALTER TABLE "cleanup_journal" ADD COLUMN "notified_at" TIMESTAMPTZ(3);
