-- Journal rows carry an HMAC-SHA256 made with a key that lives only in the writing process's data dir
-- (journal.key), so a row written by anyone else is refused instead of undone. Rows from before this
-- migration have no MAC: the sweeps refuse them too and report them for an operator to look at.
ALTER TABLE "cleanup_journal" ADD COLUMN "mac" TEXT;
ALTER TABLE "cleanup_journal" ADD COLUMN "refused_at" TIMESTAMPTZ(3);
ALTER TABLE "cleanup_journal" ADD COLUMN "refusal" TEXT;
ALTER TABLE "flr_journal" ADD COLUMN "mac" TEXT;
ALTER TABLE "flr_journal" ADD COLUMN "refused_at" TIMESTAMPTZ(3);
ALTER TABLE "flr_journal" ADD COLUMN "refusal" TEXT;
