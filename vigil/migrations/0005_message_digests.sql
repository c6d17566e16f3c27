-- Filled in by the seq_reused work: a digest of each message's content in the ledger.
SELECT 1;
