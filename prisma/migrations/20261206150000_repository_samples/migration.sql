-- A repository's size whenever it changes (restore point recorded, retention, GC), for the capacity chart (bounded per repository by the Transporter).
CREATE TABLE "repository_samples" (
    "id" BIGSERIAL NOT NULL,
    "repository_id" UUID NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "stored_bytes" BIGINT NOT NULL,
    "logical_bytes" BIGINT NOT NULL,
    "unique_bytes" BIGINT,
    "restore_points" INTEGER NOT NULL,
    "chunks" INTEGER,
    CONSTRAINT "repository_samples_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "repository_samples_repository_id_at_idx" ON "repository_samples"("repository_id", "at");

ALTER TABLE "repository_samples" ADD CONSTRAINT "repository_samples_repository_id_fkey" FOREIGN KEY ("repository_id") REFERENCES "repositories"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Remote Transporters record these samples: their group role may from now on, not only once transporter-access.ts lists the table.
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'vl_transporters') THEN
    GRANT SELECT, INSERT, DELETE ON "repository_samples" TO vl_transporters;
    GRANT USAGE ON SEQUENCE "repository_samples_id_seq" TO vl_transporters;
  END IF;
END $$;
