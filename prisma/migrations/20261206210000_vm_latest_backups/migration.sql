-- Each VM's latest finished backup item, kept by a trigger as items finish, so the overview reads one row per
-- VM instead of sorting every backup item ever run (1.4-2.2 s at 480,000 items; npm run bench -- overview).
-- The key is the overview's: the VM's instance UUID, else "<vCenter id>/<moref>" of the job's vCenter.
CREATE TABLE "vm_latest_backups" (
    "vm_key" TEXT NOT NULL,
    "run_vm_id" UUID NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "vm_latest_backups_pkey" PRIMARY KEY ("vm_key")
);
CREATE INDEX "vm_latest_backups_run_vm_id_idx" ON "vm_latest_backups"("run_vm_id");
ALTER TABLE "vm_latest_backups" ADD CONSTRAINT "vm_latest_backups_run_vm_id_fkey" FOREIGN KEY ("run_vm_id") REFERENCES "run_vms"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Runs as its owner (SECURITY DEFINER): Transporters finish items with roles that may not write this table.
CREATE FUNCTION vaultline_note_latest_backup() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER SET search_path = public AS $$
DECLARE
  k TEXT;
  t TIMESTAMPTZ(3);
BEGIN
  IF NEW.status::text NOT IN ('succeeded', 'warning', 'failed', 'cancelled') THEN
    RETURN NEW;
  END IF;
  IF TG_OP = 'UPDATE' AND OLD.status::text IN ('succeeded', 'warning', 'failed', 'cancelled') AND OLD.finished_at IS NOT DISTINCT FROM NEW.finished_at THEN
    RETURN NEW;
  END IF;
  SELECT COALESCE(NEW.vm_instance_uuid, j.vcenter_id::text || '/' || NEW.vm_moref), COALESCE(NEW.finished_at, r.created_at)
    INTO k, t
    FROM job_runs r LEFT JOIN backup_jobs j ON j.id = r.job_id
    WHERE r.id = NEW.run_id AND r.kind = 'backup';
  IF k IS NULL THEN
    RETURN NEW;
  END IF;
  INSERT INTO vm_latest_backups (vm_key, run_vm_id, at) VALUES (k, NEW.id, t)
    ON CONFLICT (vm_key) DO UPDATE SET run_vm_id = EXCLUDED.run_vm_id, at = EXCLUDED.at
    WHERE vm_latest_backups.at <= EXCLUDED.at;
  RETURN NEW;
END $$;

CREATE TRIGGER run_vms_latest_backup AFTER INSERT OR UPDATE OF status, finished_at ON "run_vms"
  FOR EACH ROW EXECUTE FUNCTION vaultline_note_latest_backup();

-- What finished before this migration.
INSERT INTO vm_latest_backups (vm_key, run_vm_id, at)
SELECT DISTINCT ON (k) k, id, at FROM (
  SELECT COALESCE(v.vm_instance_uuid, j.vcenter_id::text || '/' || v.vm_moref) AS k, v.id, COALESCE(v.finished_at, r.created_at) AS at
  FROM run_vms v JOIN job_runs r ON r.id = v.run_id LEFT JOIN backup_jobs j ON j.id = r.job_id
  WHERE r.kind = 'backup' AND v.status IN ('succeeded', 'warning', 'failed', 'cancelled')
) items WHERE k IS NOT NULL ORDER BY k, at DESC;
