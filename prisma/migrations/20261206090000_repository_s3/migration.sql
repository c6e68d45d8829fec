-- S3 repositories: the secret access key, sealed with the appliance key like the SFTP key beside it.
ALTER TABLE "repositories" ADD COLUMN "s3_secret_sealed" TEXT;
