-- API tokens that end: an expiry chosen when a token is issued (`vigil token create --expires-in`) and
-- a non-secret id by which an operator who no longer holds the token revokes it (`vigil token revoke`).
-- Tokens issued before this migration get an id each and never expire, as before. Safe to run again.
ALTER TABLE api_tokens
    ADD COLUMN IF NOT EXISTS id text NOT NULL UNIQUE
        DEFAULT 'tok_' || left(replace(gen_random_uuid()::text, '-', ''), 16),
    ADD COLUMN IF NOT EXISTS expires_at timestamptz;
