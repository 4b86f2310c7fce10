-- 0001: identity pools, identities, and the provider logins linked to them.
-- Times are UTC text 'YYYY-MM-DD HH:MM:SS.SSS', so SQLite's date functions and a person can read them.

CREATE TABLE pools (
    seq                          INTEGER PRIMARY KEY,       -- creation order; ListIdentityPools pages by it
    id                           TEXT NOT NULL UNIQUE,      -- 'us-east-1:<uuid>'
    account_id                   TEXT NOT NULL,             -- owner account
    name                         TEXT NOT NULL,
    allow_unauthenticated        INTEGER NOT NULL CHECK (allow_unauthenticated IN (0, 1)),
    allow_classic_flow           INTEGER CHECK (allow_classic_flow IN (0, 1)), -- NULL: never set
    developer_provider_name      TEXT,
    supported_login_providers    TEXT NOT NULL DEFAULT '{}', -- JSON object: provider name -> app/client id
    openid_connect_provider_arns TEXT NOT NULL DEFAULT '[]', -- JSON array of IAM OIDC provider ARNs
    cognito_identity_providers   TEXT NOT NULL DEFAULT '[]', -- JSON array of {ProviderName, ClientId, ServerSideTokenCheck}
    saml_provider_arns           TEXT NOT NULL DEFAULT '[]', -- JSON array of IAM SAML provider ARNs
    authenticated_role           TEXT,                      -- role ARN
    unauthenticated_role         TEXT,                      -- role ARN
    role_mappings                TEXT,                      -- JSON object, as SetIdentityPoolRoles takes it
    created_at                   TEXT NOT NULL,
    updated_at                   TEXT NOT NULL
);
CREATE INDEX pools_by_account ON pools (account_id, seq);

CREATE TABLE pool_tags (
    pool_id TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (pool_id, key)
) WITHOUT ROWID;

CREATE TABLE principal_tag_maps (
    pool_id        TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    provider       TEXT NOT NULL,
    use_defaults   INTEGER NOT NULL CHECK (use_defaults IN (0, 1)),
    principal_tags TEXT NOT NULL DEFAULT '{}',             -- JSON object: tag key -> claim name
    PRIMARY KEY (pool_id, provider)
) WITHOUT ROWID;

CREATE TABLE identities (
    seq         INTEGER PRIMARY KEY,                        -- creation order; ListIdentities pages by it
    id          TEXT NOT NULL UNIQUE,                       -- 'us-east-1:<uuid>'
    pool_id     TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    merged_into TEXT                                        -- the identity that took over its logins
);
CREATE INDEX identities_by_pool ON identities (pool_id, seq);

-- One row per (pool, provider, user): a user of a provider belongs to exactly one identity,
-- and an identity has at most one user per provider.
CREATE TABLE logins (
    pool_id     TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    provider    TEXT NOT NULL,                              -- the Logins key, e.g. 'accounts.google.com'
    subject     TEXT NOT NULL,                              -- the provider's user id
    identity_id TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    linked_at   TEXT NOT NULL,
    PRIMARY KEY (pool_id, provider, subject),
    UNIQUE (identity_id, provider)
) WITHOUT ROWID;

-- Developer-authenticated users: an identity may have several.
CREATE TABLE developer_users (
    pool_id           TEXT NOT NULL REFERENCES pools (id) ON DELETE CASCADE,
    developer_user_id TEXT NOT NULL,
    identity_id       TEXT NOT NULL REFERENCES identities (id) ON DELETE CASCADE,
    linked_at         TEXT NOT NULL,
    PRIMARY KEY (pool_id, developer_user_id)
) WITHOUT ROWID;
CREATE INDEX developer_users_by_identity ON developer_users (identity_id, developer_user_id);
