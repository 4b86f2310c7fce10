-- 0003: listings page by creation time and id — data every engine and every export keeps —
-- rather than by SQLite's internal row number; and a secret that signs pagination cursors, so
-- a client cannot forge one.

DROP INDEX identities_by_pool;
CREATE INDEX identities_by_pool ON identities (pool_id, created_at, id);
DROP INDEX pools_by_account;
CREATE INDEX pools_by_account ON pools (account_id, created_at, id);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,                                 -- 'cursor': signs NextToken values
    value BLOB NOT NULL
) WITHOUT ROWID;
INSERT INTO secrets (name, value) VALUES ('cursor', randomblob(32));
