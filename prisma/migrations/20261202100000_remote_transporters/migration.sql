-- Remote Transporters deployed and managed over SSH: port, pinned host key, how to sign in, where and what is installed.
ALTER TABLE "transporters" ADD COLUMN "ssh_port" INTEGER;
ALTER TABLE "transporters" ADD COLUMN "ssh_host_key_sha256" TEXT;
ALTER TABLE "transporters" ADD COLUMN "ssh_auth" TEXT;
ALTER TABLE "transporters" ADD COLUMN "install_dir" TEXT;
ALTER TABLE "transporters" ADD COLUMN "deployed_version" TEXT;
ALTER TABLE "transporters" ADD COLUMN "deployed_digest" TEXT;
ALTER TABLE "transporters" ADD COLUMN "supervisor" TEXT;
ALTER TABLE "transporters" ADD COLUMN "deployed_at" TIMESTAMPTZ(3);
