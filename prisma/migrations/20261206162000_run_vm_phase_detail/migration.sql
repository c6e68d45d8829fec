-- What a long phase of a run item waits on (a vCenter task and its progress, the repository's commit).
ALTER TABLE "run_vms" ADD COLUMN "phase_detail" TEXT;
