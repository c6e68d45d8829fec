-- CreateEnum
CREATE TYPE "Role" AS ENUM ('admin', 'operator', 'viewer');
CREATE TYPE "TransportMode" AS ENUM ('automatic', 'san', 'hotadd', 'nbdssl', 'nbd');
CREATE TYPE "RunKind" AS ENUM ('backup', 'restore', 'verify', 'drill');
CREATE TYPE "RunStatus" AS ENUM ('queued', 'running', 'succeeded', 'warning', 'failed', 'cancelled');
CREATE TYPE "CleanupKind" AS ENUM ('snapshot', 'disk_attach', 'device_open', 'lun_mount', 'restore_vm');

-- CreateTable
CREATE TABLE "users" (
    "id" UUID NOT NULL,
    "username" TEXT NOT NULL,
    "password_hash" TEXT NOT NULL,
    "role" "Role" NOT NULL DEFAULT 'viewer',
    "must_change_password" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_login_at" TIMESTAMPTZ(3),
    CONSTRAINT "users_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "sessions" (
    "id" VARCHAR(64) NOT NULL,
    "user_id" UUID NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expires_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "sessions_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "vcenters" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "url" TEXT NOT NULL,
    "username" TEXT NOT NULL,
    "password_sealed" TEXT NOT NULL,
    "thumbprint_sha256" TEXT,
    "is_lab" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_inventory_at" TIMESTAMPTZ(3),
    CONSTRAINT "vcenters_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "transporters" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "host" TEXT NOT NULL,
    "version" TEXT NOT NULL,
    "capabilities" JSONB NOT NULL DEFAULT '{}',
    "proxy_vm_uuid" TEXT,
    "max_disk_tasks" INTEGER NOT NULL DEFAULT 6,
    "ssh_host" TEXT,
    "ssh_user" TEXT,
    "ssh_key_sealed" TEXT,
    "registered_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "last_heartbeat" TIMESTAMPTZ(3),
    CONSTRAINT "transporters_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "repositories" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "kind" TEXT NOT NULL DEFAULT 'local',
    "location" TEXT NOT NULL,
    "encrypted" BOOLEAN NOT NULL DEFAULT false,
    "passphrase_sealed" TEXT,
    "sftp_key_sealed" TEXT,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "repositories_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "backup_jobs" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "vcenter_id" UUID NOT NULL,
    "repository_id" UUID NOT NULL,
    "sources" JSONB NOT NULL,
    "transport_mode" "TransportMode" NOT NULL DEFAULT 'automatic',
    "options" JSONB NOT NULL DEFAULT '{}',
    "schedule" TEXT,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "backup_jobs_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "job_runs" (
    "id" UUID NOT NULL,
    "job_id" UUID,
    "kind" "RunKind" NOT NULL DEFAULT 'backup',
    "status" "RunStatus" NOT NULL DEFAULT 'queued',
    "trigger" TEXT NOT NULL DEFAULT 'manual',
    "requested_by" TEXT,
    "cancel_requested" BOOLEAN NOT NULL DEFAULT false,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "error" TEXT,
    CONSTRAINT "job_runs_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "run_vms" (
    "id" UUID NOT NULL,
    "run_id" UUID NOT NULL,
    "vm_moref" TEXT NOT NULL,
    "vm_name" TEXT NOT NULL,
    "vm_instance_uuid" TEXT,
    "status" "RunStatus" NOT NULL DEFAULT 'queued',
    "phase" TEXT NOT NULL DEFAULT 'queued',
    "transporter_id" TEXT,
    "snapshot_moref" TEXT,
    "quiesced" BOOLEAN,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "error" TEXT,
    "log" JSONB NOT NULL DEFAULT '[]',
    CONSTRAINT "run_vms_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "run_disks" (
    "id" UUID NOT NULL,
    "run_vm_id" UUID NOT NULL,
    "device_key" INTEGER NOT NULL,
    "label" TEXT NOT NULL,
    "capacity_bytes" BIGINT NOT NULL,
    "phase" TEXT NOT NULL DEFAULT 'queued',
    "transport" TEXT,
    "transport_reason" JSONB NOT NULL DEFAULT '[]',
    "cbt_used" BOOLEAN NOT NULL DEFAULT false,
    "bytes_read" BIGINT NOT NULL DEFAULT 0,
    "bytes_written" BIGINT NOT NULL DEFAULT 0,
    "bytes_skipped" BIGINT NOT NULL DEFAULT 0,
    "started_at" TIMESTAMPTZ(3),
    "finished_at" TIMESTAMPTZ(3),
    "error" TEXT,
    CONSTRAINT "run_disks_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "restore_points" (
    "id" UUID NOT NULL,
    "repository_id" UUID NOT NULL,
    "repo_point_id" TEXT NOT NULL,
    "run_vm_id" UUID,
    "vm_instance_uuid" TEXT NOT NULL,
    "vm_name" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL,
    "logical_bytes" BIGINT NOT NULL,
    "new_bytes" BIGINT NOT NULL DEFAULT 0,
    "change_ids" JSONB NOT NULL DEFAULT '{}',
    "suspect" BOOLEAN NOT NULL DEFAULT false,
    "immutable_until" TIMESTAMPTZ(3),
    CONSTRAINT "restore_points_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "cleanup_journal" (
    "id" UUID NOT NULL,
    "kind" "CleanupKind" NOT NULL,
    "transporter_id" TEXT NOT NULL,
    "run_vm_id" UUID,
    "vcenter_id" UUID,
    "target" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "resolved_at" TIMESTAMPTZ(3),
    CONSTRAINT "cleanup_journal_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "audit_events" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "subject" TEXT,
    "detail" JSONB NOT NULL DEFAULT '{}',
    "ip" TEXT,
    CONSTRAINT "audit_events_pkey" PRIMARY KEY ("id")
);

CREATE TABLE "settings" (
    "key" TEXT NOT NULL,
    "value" JSONB NOT NULL,
    "updated_at" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "settings_pkey" PRIMARY KEY ("key")
);

-- CreateIndex
CREATE UNIQUE INDEX "users_username_key" ON "users"("username");
CREATE INDEX "sessions_user_id_idx" ON "sessions"("user_id");
CREATE UNIQUE INDEX "vcenters_name_key" ON "vcenters"("name");
CREATE UNIQUE INDEX "repositories_name_key" ON "repositories"("name");
CREATE UNIQUE INDEX "backup_jobs_name_key" ON "backup_jobs"("name");
CREATE INDEX "job_runs_job_id_created_at_idx" ON "job_runs"("job_id", "created_at");
CREATE INDEX "job_runs_status_idx" ON "job_runs"("status");
CREATE INDEX "run_vms_run_id_idx" ON "run_vms"("run_id");
CREATE UNIQUE INDEX "run_disks_run_vm_id_device_key_key" ON "run_disks"("run_vm_id", "device_key");
CREATE UNIQUE INDEX "restore_points_repository_id_repo_point_id_key" ON "restore_points"("repository_id", "repo_point_id");
CREATE INDEX "restore_points_vm_instance_uuid_created_at_idx" ON "restore_points"("vm_instance_uuid", "created_at");
CREATE INDEX "cleanup_journal_resolved_at_transporter_id_idx" ON "cleanup_journal"("resolved_at", "transporter_id");
CREATE INDEX "audit_events_at_idx" ON "audit_events"("at");

-- AddForeignKey
ALTER TABLE "sessions" ADD CONSTRAINT "sessions_user_id_fkey" FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "backup_jobs" ADD CONSTRAINT "backup_jobs_vcenter_id_fkey" FOREIGN KEY ("vcenter_id") REFERENCES "vcenters"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "backup_jobs" ADD CONSTRAINT "backup_jobs_repository_id_fkey" FOREIGN KEY ("repository_id") REFERENCES "repositories"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "job_runs" ADD CONSTRAINT "job_runs_job_id_fkey" FOREIGN KEY ("job_id") REFERENCES "backup_jobs"("id") ON DELETE SET NULL ON UPDATE CASCADE;
ALTER TABLE "run_vms" ADD CONSTRAINT "run_vms_run_id_fkey" FOREIGN KEY ("run_id") REFERENCES "job_runs"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "run_disks" ADD CONSTRAINT "run_disks_run_vm_id_fkey" FOREIGN KEY ("run_vm_id") REFERENCES "run_vms"("id") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "restore_points" ADD CONSTRAINT "restore_points_repository_id_fkey" FOREIGN KEY ("repository_id") REFERENCES "repositories"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
