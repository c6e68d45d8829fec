-- When the Director saw the Transporter running an item fall silent (its last heartbeat), so the item's
-- page and log say so at once; cleared by the Transporter that takes the item over.
ALTER TABLE "run_vms" ADD COLUMN "transporter_lost_at" TIMESTAMPTZ(3);
