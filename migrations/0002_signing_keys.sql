-- 0002: the RSA keys that sign this server's OpenID tokens (RS512), kept here so tokens issued
-- before a restart still verify. The key with the highest seq signs; every key whose
-- retire_after is NULL or still in the future is published at /.well-known/jwks_uri.
-- `idpool keys rotate` adds a new key and sets retire_after on the older ones.
-- Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS'.

CREATE TABLE signing_keys (
    kid          TEXT PRIMARY KEY,                          -- 'idpool-<seq>-<8 hex of the RFC 7638 thumbprint>'
    seq          INTEGER NOT NULL UNIQUE CHECK (seq > 0),   -- creation order; the highest signs
    private_key  BLOB NOT NULL,                             -- PKCS#8 DER, unencrypted: protect the file
    public_jwk   TEXT NOT NULL,                             -- the JWK exactly as published (JSON)
    created_at   TEXT NOT NULL,
    retire_after TEXT                                       -- NULL: in use; else unpublished after this moment
);
