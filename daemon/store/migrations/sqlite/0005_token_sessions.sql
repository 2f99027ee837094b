-- Login tokens carry their user's token generation, which a password reset advances (revoking
-- every earlier token at once, where a time cut-off missed tokens issued in the same second),
-- and an id that logging out records here until the token would have expired anyway.
ALTER TABLE users ADD COLUMN token_generation INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users DROP COLUMN tokens_valid_after;
CREATE TABLE revoked_tokens (
    jti TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens(expires_at);
