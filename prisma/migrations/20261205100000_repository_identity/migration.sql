-- What a repository's storage must hold, compared on every open: its id, KDF parameters and config hash.
ALTER TABLE "repositories" ADD COLUMN "repository_uid" TEXT;
ALTER TABLE "repositories" ADD COLUMN "kdf_params" JSONB;
ALTER TABLE "repositories" ADD COLUMN "config_sha256" TEXT;
