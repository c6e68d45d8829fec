-- File-level restore leftovers the sweep keeps failing to undo are reported once, like the cleanup journal's.
ALTER TABLE "flr_journal" ADD COLUMN "notified_at" TIMESTAMPTZ(3);
