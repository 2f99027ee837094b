-- Login tokens issued before this time (Unix seconds) are refused: set when a password is reset,
-- so a leaked token stops working with the password it came from.
ALTER TABLE users ADD COLUMN tokens_valid_after INTEGER NOT NULL DEFAULT 0;
