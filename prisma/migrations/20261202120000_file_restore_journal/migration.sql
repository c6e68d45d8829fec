-- File-level restore: every NBD server, nbdfuse mount, loop device and filesystem mount of a browse
-- session is journaled before it exists and resolved once it is gone; the Director sweeps what a dead
-- Director left (rows of this host whose owner process is gone) at start.
CREATE TABLE "flr_journal" (
    "id" UUID NOT NULL,
    "session_id" UUID NOT NULL,
    "layer" TEXT NOT NULL,
    "host" TEXT NOT NULL,
    "owner_pid" INTEGER NOT NULL,
    "owner_start" TEXT NOT NULL,
    "target" JSONB NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "last_error" TEXT,
    "resolved_at" TIMESTAMPTZ(3),
    CONSTRAINT "flr_journal_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "flr_journal_resolved_at_host_idx" ON "flr_journal"("resolved_at", "host");
