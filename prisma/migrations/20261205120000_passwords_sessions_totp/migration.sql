-- Sessions end after a while without requests (idle timeout) besides their absolute expiry.
ALTER TABLE "sessions" ADD COLUMN "last_seen_at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- Optional TOTP second factor: the secret is sealed with the appliance key; it counts only once confirmed.
ALTER TABLE "users" ADD COLUMN "totp_secret_sealed" TEXT;
ALTER TABLE "users" ADD COLUMN "totp_enabled_at" TIMESTAMPTZ(3);
ALTER TABLE "users" ADD COLUMN "totp_last_step" INTEGER;

-- Failed password or code checks, shared by every Director process (per-account and global rate limits).
CREATE TABLE "auth_failures" (
    "id" BIGSERIAL NOT NULL,
    "account" TEXT NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "auth_failures_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "auth_failures_account_at_idx" ON "auth_failures"("account", "at");
CREATE INDEX "auth_failures_at_idx" ON "auth_failures"("at");
