-- A local repository can be hardened: its restore points' files are made immutable (chattr +i) by the root helper.
ALTER TABLE "repositories" ADD COLUMN "hardened" BOOLEAN NOT NULL DEFAULT false;

-- Remote Transporters read repository rows whole: their group role may read the new column from now on, not only
-- after the next deploy re-grants its columns (transporter-access.ts).
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'vl_transporters') THEN
    GRANT SELECT ("hardened") ON "repositories" TO vl_transporters;
  END IF;
END $$;
