-- Transporter-to-Transporter transfer (issue #17): a Transporter serves repository folders over mutual TLS with a
-- certificate from the Director's Transporter CA, issued for a key pair that never leaves the Transporter's data dir.
ALTER TABLE "transporters" ADD COLUMN "tls_csr" TEXT,
ADD COLUMN "tls_cert" TEXT,
ADD COLUMN "tls_fingerprint" TEXT,
ADD COLUMN "serve_address" TEXT,
ADD COLUMN "served_repositories" TEXT[] NOT NULL DEFAULT ARRAY[]::TEXT[];

-- One row: the CA certificate, and its key sealed with the appliance key.
CREATE TABLE "transfer_ca" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "cert_pem" TEXT NOT NULL,
    "key_sealed" TEXT NOT NULL,
    "created_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "transfer_ca_pkey" PRIMARY KEY ("id")
);

-- A remote Transporter's role reads every Transporter's row (the columns it is granted: certificates, fingerprints,
-- where they serve) and updates only its own (its request and what it serves). The owner (the Director, the appliance's
-- own Transporter) is not subject to row-level security.
ALTER TABLE "transporters" ENABLE ROW LEVEL SECURITY;
CREATE POLICY "transporters_readable" ON "transporters" FOR SELECT USING (true);
CREATE POLICY "transporter_own_row" ON "transporters" FOR UPDATE USING (current_user = 'vl_t_' || replace("id", '-', '_')) WITH CHECK (current_user = 'vl_t_' || replace("id", '-', '_'));

-- The same grants as TABLE_GRANTS/COLUMN_GRANTS (apps/director/src/services/transporter-access.ts) for roles deployed
-- before this migration; a deploy re-applies them. Never the CA's key, never another column of transporters.
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'vl_transporters') THEN
    GRANT SELECT ("id", "last_heartbeat", "tls_cert", "tls_fingerprint", "serve_address", "served_repositories") ON "transporters" TO vl_transporters;
    GRANT UPDATE ("tls_csr", "serve_address", "served_repositories") ON "transporters" TO vl_transporters;
    GRANT SELECT ("id", "cert_pem") ON "transfer_ca" TO vl_transporters;
  END IF;
END $$;
