-- SFTP repositories pin the server's SSH host key.
ALTER TABLE "repositories" ADD COLUMN "sftp_host_key_sha256" TEXT;
