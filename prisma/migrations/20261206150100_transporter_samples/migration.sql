-- A Transporter's load over time (at most one sample a minute from its heartbeat, kept a week), for the Transporters page.
CREATE TABLE "transporter_samples" (
    "id" BIGSERIAL NOT NULL,
    "transporter_id" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "active_disks" INTEGER NOT NULL,
    "cpu_percent" DOUBLE PRECISION NOT NULL,
    "load_1" DOUBLE PRECISION NOT NULL,
    "rss_bytes" BIGINT NOT NULL,
    CONSTRAINT "transporter_samples_pkey" PRIMARY KEY ("id")
);

CREATE INDEX "transporter_samples_transporter_id_at_idx" ON "transporter_samples"("transporter_id", "at");

ALTER TABLE "transporter_samples" ADD CONSTRAINT "transporter_samples_transporter_id_fkey" FOREIGN KEY ("transporter_id") REFERENCES "transporters"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A remote Transporter's role (vl_t_<id with - as _>) writes and thins only its own samples; the owner is not subject to it.
ALTER TABLE "transporter_samples" ENABLE ROW LEVEL SECURITY;
CREATE POLICY "transporter_own_samples" ON "transporter_samples" FOR ALL USING (current_user = 'vl_t_' || replace("transporter_id", '-', '_'));

DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'vl_transporters') THEN
    GRANT SELECT, INSERT, DELETE ON "transporter_samples" TO vl_transporters;
    GRANT USAGE ON SEQUENCE "transporter_samples_id_seq" TO vl_transporters;
  END IF;
END $$;
