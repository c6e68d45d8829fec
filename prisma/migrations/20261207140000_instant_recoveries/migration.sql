-- Instant recovery to vSphere: one row per recovery, shared by the Director (requests, actions) and the Transporter serving it.
CREATE TABLE "instant_recoveries" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "restore_point_id" UUID,
    "restore_point_ref" UUID NOT NULL,
    "source_vm" TEXT NOT NULL,
    "restore_point_time" TIMESTAMPTZ(3) NOT NULL,
    "vcenter_id" UUID NOT NULL,
    "host_moref" TEXT NOT NULL,
    "host_name" TEXT NOT NULL,
    "folder" TEXT,
    "resource_pool" TEXT,
    "power_on" BOOLEAN NOT NULL DEFAULT true,
    "connect_nics" BOOLEAN NOT NULL DEFAULT false,
    "transporter_id" TEXT,
    "state" TEXT NOT NULL DEFAULT 'requested',
    "detail" TEXT,
    "error" TEXT,
    "datastore_name" TEXT,
    "migrated_to" TEXT,
    "pending_action" TEXT,
    "pending_datastore" TEXT,
    "created_by" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "instant_recoveries_pkey" PRIMARY KEY ("id"),
    CONSTRAINT "instant_recoveries_state_check" CHECK ("state" IN ('requested', 'starting', 'running', 'migrating', 'migrated', 'discarding', 'discarded', 'failed')),
    CONSTRAINT "instant_recoveries_pending_action_check" CHECK ("pending_action" IS NULL OR "pending_action" IN ('migrate', 'discard'))
);

CREATE INDEX "instant_recoveries_state_idx" ON "instant_recoveries"("state");
CREATE INDEX "instant_recoveries_transporter_id_state_idx" ON "instant_recoveries"("transporter_id", "state");

ALTER TABLE "instant_recoveries" ADD CONSTRAINT "instant_recoveries_restore_point_id_fkey" FOREIGN KEY ("restore_point_id") REFERENCES "restore_points"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "instant_recoveries" ADD CONSTRAINT "instant_recoveries_vcenter_id_fkey" FOREIGN KEY ("vcenter_id") REFERENCES "vcenters"("id") ON DELETE RESTRICT ON UPDATE CASCADE;

-- Transporters claim requests and record each step (their column grants stay narrow: no name or placement changes).
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'vl_transporters') THEN
    GRANT SELECT ON "instant_recoveries" TO vl_transporters;
    GRANT UPDATE ("transporter_id", "state", "detail", "error", "datastore_name", "migrated_to", "host_name", "pending_action", "pending_datastore", "updated_at") ON "instant_recoveries" TO vl_transporters;
  END IF;
END $$;
