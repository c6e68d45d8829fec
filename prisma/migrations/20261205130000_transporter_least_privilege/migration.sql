-- Remote Transporters get least privilege (issue #12): each has its own key pair and database role.
-- The public key the secrets a remote Transporter needs are sealed to (new on every deploy).
ALTER TABLE "transporters" ADD COLUMN "public_key" TEXT;

-- Those secrets, sealed to that key by the Director (which keeps the appliance key to itself).
CREATE TABLE "transporter_secrets" (
    "transporter_id" TEXT NOT NULL,
    "label" TEXT NOT NULL,
    "ref_id" UUID NOT NULL,
    "sealed" TEXT NOT NULL,
    "sealed_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "transporter_secrets_pkey" PRIMARY KEY ("transporter_id","label","ref_id")
);

ALTER TABLE "transporter_secrets" ADD CONSTRAINT "transporter_secrets_transporter_id_fkey" FOREIGN KEY ("transporter_id") REFERENCES "transporters"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A Transporter's role (vl_t_<id with - as _>, made by the Director at deploy) sees only its own rows.
-- The table's owner (the Director) is not subject to row-level security.
ALTER TABLE "transporter_secrets" ENABLE ROW LEVEL SECURITY;
CREATE POLICY "transporter_own_secrets" ON "transporter_secrets" FOR SELECT USING (current_user = 'vl_t_' || replace("transporter_id", '-', '_'));
