//! [`Tx`] on a PostgreSQL transaction: the same steps as the SQLite engine's, in PostgreSQL's
//! dialect (timestamptz, jsonb, boolean, bytea).
//!
//! Round trips are what a request waits on, so the transaction sends what it need not wait for
//! together with what it must: BEGIN goes with the first statement, and an insert or update
//! whose outcome the request does not read (a new identity, a new login, a touch) waits to go
//! with the next statement or the COMMIT. A failure of such a step surfaces there, before
//! anything after it counts: the statement or the COMMIT it went with fails with its error, and
//! the transaction is rolled back. A new login's GetId is two round trips (see `ops::linking`).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_postgres::error::SqlState;
use tokio_postgres::types::{Json, ToSql};
use tokio_postgres::{Row, Statement};

use super::conn::PgConn;

use crate::model::{
    CognitoProvider, DescribedIdentity, DeveloperUserRecord, Identity, IdentityRecord,
    IdentityWithPool, KeyRecord, KeysVersion, LoginRecord, Pool, PoolRecord, PoolRoles,
    PoolSettings, PoolSummary, Position, PrincipalTagMap, RoleMapping, SigningKey,
};
use crate::store::tx::{Tx, R};
use crate::store::StoreError;
use crate::times::Millis;

/// The columns `described_row` reads: an identity, its provider names, and whether it has
/// developer user ids. A pool without a developer provider has none to look for, so its
/// variant skips that lookup per row.
macro_rules! described_columns {
    ($developer_users:literal) => {
        concat!(
            "SELECT i.id, i.pool_id, i.created_at, i.updated_at, i.disabled, \
             array(SELECT provider FROM logins WHERE identity_id = i.id ORDER BY provider), ",
            $developer_users,
            " "
        )
    };
    () => {
        described_columns!("false")
    };
    (developer) => {
        described_columns!("EXISTS (SELECT 1 FROM developer_users WHERE identity_id = i.id)")
    };
}

type P<'a> = &'a (dyn ToSql + Sync);

/// A driver error as the store names it: races that running the request again resolves are
/// `Conflict`, the rest `Database`.
pub fn db_error(e: tokio_postgres::Error) -> StoreError {
    let racing = matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
            || *c == SqlState::FOREIGN_KEY_VIOLATION
    );
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    };
    if racing {
        StoreError::Conflict(text)
    } else {
        StoreError::Database(text)
    }
}

fn ts(m: Millis) -> SystemTime {
    // Never a panic on a time past what SystemTime holds: the epoch stands in.
    let d = Duration::from_millis(m.0.unsigned_abs());
    let t = if m.0 >= 0 {
        UNIX_EPOCH.checked_add(d)
    } else {
        UNIX_EPOCH.checked_sub(d)
    };
    t.unwrap_or(UNIX_EPOCH)
}

fn millis(t: SystemTime) -> Millis {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Millis(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
        Err(e) => Millis(-i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX)),
    }
}

fn get<'r, T: tokio_postgres::types::FromSql<'r>>(row: &'r Row, i: usize) -> R<T> {
    row.try_get(i)
        .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}")))
}

fn time(row: &Row, i: usize) -> R<Millis> {
    Ok(millis(get::<SystemTime>(row, i)?))
}

fn opt_time(row: &Row, i: usize) -> R<Option<Millis>> {
    Ok(get::<Option<SystemTime>>(row, i)?.map(millis))
}

/// A value bound to a step sent later: owned, since the request's borrow ends first.
type Owned = Box<dyn ToSql + Sync + Send>;

/// A step not yet sent.
enum Step {
    /// BEGIN, COMMIT: the simple protocol.
    Simple(&'static str),
    /// A prepared insert or update whose outcome is read only as success or failure.
    Exec(Statement, Vec<Owned>),
}

/// One request's steps on one PostgreSQL transaction.
pub struct PgTx<'c> {
    conn: &'c PgConn,
    /// Steps to send with the next one the request waits for; the first is BEGIN until then.
    pending: RefCell<Vec<Step>>,
    /// Whether BEGIN has gone: a transaction that never sent anything has nothing to end.
    begun: Cell<bool>,
    ended: Cell<bool>,
    changes_mappings: Cell<bool>,
    lost_race: Cell<bool>,
    failed: Cell<bool>,
}

/// What a step answered.
enum Out {
    Done,
    Rows(Vec<Row>),
    Count(u64),
}

/// What the step a request waits for wants back.
#[derive(Clone, Copy)]
enum Want {
    Rows,
    Count,
}

/// One step's answer.
type Answer = Result<Out, tokio_postgres::Error>;
type Sent<'a> = Pin<Box<dyn Future<Output = Answer> + 'a>>;

/// Awaits every step, polling them in order so each is sent before the next: one round trip.
async fn in_order(mut steps: Vec<Sent<'_>>) -> Vec<Answer> {
    let mut answers: Vec<Option<Answer>> = steps.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut waiting = false;
        for (step, answer) in steps.iter_mut().zip(answers.iter_mut()) {
            if answer.is_none() {
                match step.as_mut().poll(cx) {
                    Poll::Ready(a) => *answer = Some(a),
                    Poll::Pending => waiting = true,
                }
            }
        }
        if waiting {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
    answers.into_iter().flatten().collect()
}

impl<'c> PgTx<'c> {
    /// A transaction that begins with `begin` (a BEGIN statement), sent with its first step.
    pub fn new(conn: &'c PgConn, begin: &'static str) -> PgTx<'c> {
        PgTx {
            conn,
            pending: RefCell::new(vec![Step::Simple(begin)]),
            begun: Cell::new(false),
            ended: Cell::new(false),
            changes_mappings: Cell::new(false),
            lost_race: Cell::new(false),
            failed: Cell::new(false),
        }
    }

    /// Whether a step failed in a way that running the request again can resolve.
    pub fn lost_race(&self) -> bool {
        self.lost_race.get()
    }

    /// Whether a step failed for another reason: the database, not the request, is at fault.
    pub fn failed(&self) -> bool {
        self.failed.get()
    }

    /// Sends what waits with COMMIT; Ok once every step and the COMMIT succeeded.
    pub fn commit(self) -> R<()> {
        self.check()?;
        self.ended.set(true);
        if !self.begun.get() && self.pending.borrow().len() <= 1 {
            // Nothing was sent and nothing waits but BEGIN: nothing to commit.
            return Ok(());
        }
        self.pending.borrow_mut().push(Step::Simple("COMMIT"));
        self.send(None).map(|_| ())
    }

    /// Ends a read-only transaction without waiting for the server's answer: there is nothing
    /// to commit, so the request need not wait a round trip for it. The COMMIT is written to
    /// the socket now (the snapshot is released as soon as the server reads it), and its answer
    /// is skipped by the connection before the next request's.
    pub fn end_read(self) -> R<()> {
        self.check()?;
        if !self
            .pending
            .borrow()
            .iter()
            .all(|s| matches!(s, Step::Simple(_)))
        {
            // A write step in a read: let it fail (read-only) where it is sent.
            return self.commit();
        }
        self.ended.set(true);
        if !self.begun.get() {
            return Ok(());
        }
        let client = self.conn.client()?;
        self.conn.block_on(async {
            let mut commit = std::pin::pin!(client.batch_execute("COMMIT"));
            // The first poll queues it; the yield lets the connection write it.
            let _ = std::future::poll_fn(|cx| Poll::Ready(commit.as_mut().poll(cx))).await;
            tokio::task::yield_now().await;
        });
        Ok(())
    }

    /// A failed step leaves PostgreSQL's transaction aborted, and COMMIT then rolls it back
    /// without an error: a request that went on past a failure must not count as committed.
    fn check(&self) -> R<()> {
        if self.lost_race.get() {
            return Err(StoreError::Conflict(
                "a step of this transaction lost a race".into(),
            ));
        }
        if self.failed.get() {
            return Err(StoreError::Database(
                "a step of this transaction failed".into(),
            ));
        }
        Ok(())
    }

    /// Tells every replica that a cached mapping may have changed (sent with the COMMIT).
    pub fn bump_generation(&self) -> R<()> {
        self.later(
            "UPDATE cache_generation SET generation = generation + 1",
            Vec::new(),
        )
    }

    fn fail(&self, e: tokio_postgres::Error) -> StoreError {
        let e = db_error(e);
        if matches!(e, StoreError::Conflict(_)) {
            self.lost_race.set(true);
        } else {
            self.failed.set(true);
        }
        e
    }

    fn stale<T>(&self, r: R<T>) -> R<T> {
        self.changes_mappings.set(true);
        r
    }

    /// The statement for `sql`, prepared once per connection (outside the transaction: a
    /// prepared statement belongs to the session).
    fn statement(&self, sql: &'static str) -> R<Statement> {
        if let Some(s) = self.conn.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let client = self.conn.client()?;
        let s = self
            .conn
            .block_on(client.prepare(sql))
            .map_err(|e| self.fail(e))?;
        self.conn.statements.borrow_mut().insert(sql, s.clone());
        Ok(s)
    }

    /// Sends every pending step and then `last`, in one round trip, and waits for all their
    /// answers; the first failure is the answer, else `last`'s.
    fn send(&self, last: Option<(&Statement, &[P], Want)>) -> R<Out> {
        let pending = std::mem::take(&mut *self.pending.borrow_mut());
        if pending.is_empty() && last.is_none() {
            return Ok(Out::Done);
        }
        self.begun.set(true);
        let client = self.conn.client()?;
        let answers = self.conn.block_on(async {
            let mut sent: Vec<Sent<'_>> = Vec::with_capacity(pending.len() + 1);
            for step in &pending {
                sent.push(match step {
                    Step::Simple(sql) => {
                        Box::pin(async move { client.batch_execute(sql).await.map(|()| Out::Done) })
                    }
                    Step::Exec(statement, values) => Box::pin(async move {
                        let values: Vec<P> = values.iter().map(|v| v.as_ref() as P).collect();
                        client.execute(statement, &values).await.map(|_| Out::Done)
                    }),
                });
            }
            if let Some((statement, values, want)) = last {
                sent.push(Box::pin(async move {
                    match want {
                        Want::Rows => client.query(statement, values).await.map(Out::Rows),
                        Want::Count => client.execute(statement, values).await.map(Out::Count),
                    }
                }));
            }
            in_order(sent).await
        });
        let mut out = Out::Done;
        for answer in answers {
            out = answer.map_err(|e| self.fail(e))?;
        }
        Ok(out)
    }

    /// A step whose outcome the request reads only as success or failure: sent with the next
    /// one it waits for (or the COMMIT), which fails with this one's error if it failed.
    fn later(&self, sql: &'static str, values: Vec<Owned>) -> R<()> {
        let s = self.statement(sql)?;
        self.pending.borrow_mut().push(Step::Exec(s, values));
        Ok(())
    }

    fn rows(&self, sql: &'static str, params: &[P]) -> R<Vec<Row>> {
        let s = self.statement(sql)?;
        match self.send(Some((&s, params, Want::Rows)))? {
            Out::Rows(rows) => Ok(rows),
            _ => Ok(Vec::new()),
        }
    }

    fn opt(&self, sql: &'static str, params: &[P]) -> R<Option<Row>> {
        let mut rows = self.rows(sql, params)?;
        if rows.len() > 1 {
            self.failed.set(true);
            return Err(StoreError::Database(format!(
                "{} rows where at most one was expected",
                rows.len()
            )));
        }
        Ok(rows.pop())
    }

    fn one(&self, sql: &'static str, params: &[P]) -> R<Row> {
        match self.opt(sql, params)? {
            Some(row) => Ok(row),
            None => {
                self.failed.set(true);
                Err(StoreError::Database(
                    "no row where exactly one was expected".into(),
                ))
            }
        }
    }

    fn exec(&self, sql: &'static str, params: &[P]) -> R<u64> {
        let s = self.statement(sql)?;
        match self.send(Some((&s, params, Want::Count)))? {
            Out::Count(n) => Ok(n),
            _ => Ok(0),
        }
    }

    fn strings(&self, sql: &'static str, params: &[P]) -> R<Vec<String>> {
        self.rows(sql, params)?.iter().map(|r| get(r, 0)).collect()
    }
}

impl Drop for PgTx<'_> {
    /// A transaction not committed is rolled back (and one that never sent anything needs
    /// nothing), so the connection goes back to the pool outside any transaction.
    fn drop(&mut self) {
        if self.begun.get() && !self.ended.get() {
            if let Ok(client) = self.conn.client() {
                let _ = self.conn.block_on(client.batch_execute("ROLLBACK"));
            }
        }
    }
}

fn pool_row(row: &Row) -> R<Pool> {
    pool_row_at(row, 0)
}

/// A pool from the row's columns `o..o + 11`, in `pool`'s order.
fn pool_row_at(row: &Row, o: usize) -> R<Pool> {
    Ok(Pool {
        created_at: time(row, o)?,
        id: get(row, o + 1)?,
        account_id: get(row, o + 2)?,
        settings: PoolSettings {
            name: get(row, o + 3)?,
            allow_unauthenticated: get(row, o + 4)?,
            allow_classic_flow: get(row, o + 5)?,
            developer_provider_name: get(row, o + 6)?,
            supported_login_providers: get::<Json<BTreeMap<String, String>>>(row, o + 7)?.0,
            openid_connect_provider_arns: get::<Json<Vec<String>>>(row, o + 8)?.0,
            cognito_identity_providers: get::<Json<Vec<CognitoProvider>>>(row, o + 9)?.0,
            saml_provider_arns: get::<Json<Vec<String>>>(row, o + 10)?.0,
        },
    })
}

/// A pool's roles from the row's columns `o..o + 3`, in `roles`'s order.
fn roles_row_at(row: &Row, o: usize) -> R<PoolRoles> {
    let mappings: Option<Json<BTreeMap<String, RoleMapping>>> = get(row, o + 2)?;
    Ok(PoolRoles {
        authenticated: get(row, o)?,
        unauthenticated: get(row, o + 1)?,
        role_mappings: mappings.map(|m| m.0).unwrap_or_default(),
    })
}

fn identity_row(row: &Row) -> R<Identity> {
    Ok(Identity {
        id: get(row, 0)?,
        pool_id: get(row, 1)?,
        created_at: time(row, 2)?,
        updated_at: time(row, 3)?,
        disabled: get(row, 4)?,
    })
}

fn described_row(row: &Row, developer: Option<&str>) -> R<DescribedIdentity> {
    Ok(DescribedIdentity::new(
        identity_row(row)?,
        get(row, 5)?,
        developer,
        get(row, 6)?,
    ))
}

fn key_row(row: &Row) -> R<SigningKey> {
    Ok(SigningKey {
        kid: get(row, 0)?,
        seq: get(row, 1)?,
        public_jwk: get(row, 2)?,
        retire_after: opt_time(row, 3)?,
    })
}

/// The bind values of a listing position; NULL before the first row.
fn position(after: Option<&Position>) -> (Option<SystemTime>, String) {
    match after {
        Some(p) => (Some(ts(p.created_at)), p.id.clone()),
        None => (None, String::new()),
    }
}

fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX - 1) + 1
}

impl Tx for PgTx<'_> {
    fn pool(&self, id: &str) -> R<Option<Pool>> {
        const SQL: &str = "SELECT created_at, id, account_id, name, allow_unauthenticated, \
             allow_classic_flow, developer_provider_name, supported_login_providers, \
             openid_connect_provider_arns, cognito_identity_providers, saml_provider_arns \
             FROM pools WHERE id = $1";
        self.opt(SQL, &[&id])?.as_ref().map(pool_row).transpose()
    }
    fn pool_with_tags(&self, id: &str) -> R<Option<(Pool, BTreeMap<String, String>)>> {
        const SQL: &str = "SELECT created_at, id, account_id, name, allow_unauthenticated, \
             allow_classic_flow, developer_provider_name, supported_login_providers, \
             openid_connect_provider_arns, cognito_identity_providers, saml_provider_arns, \
             (SELECT json_object_agg(key, value) FROM pool_tags WHERE pool_id = p.id) \
             FROM pools p WHERE id = $1";
        let Some(row) = self.opt(SQL, &[&id])? else {
            return Ok(None);
        };
        let tags = get::<Option<Json<BTreeMap<String, String>>>>(&row, 11)?;
        Ok(Some((
            pool_row(&row)?,
            tags.map(|t| t.0).unwrap_or_default(),
        )))
    }
    fn pool_exists(&self, id: &str) -> R<bool> {
        Ok(self
            .opt("SELECT 1 FROM pools WHERE id = $1", &[&id])?
            .is_some())
    }
    fn count_pools(&self, account: &str) -> R<i64> {
        get(
            &self.one(
                "SELECT count(*) FROM pools WHERE account_id = $1",
                &[&account],
            )?,
            0,
        )
    }
    fn insert_pool(&self, id: &str, account: &str, s: &PoolSettings, now: Millis) -> R<()> {
        let now = ts(now);
        self.exec(
            "INSERT INTO pools (id, account_id, name, allow_unauthenticated, allow_classic_flow, \
             developer_provider_name, supported_login_providers, openid_connect_provider_arns, \
             cognito_identity_providers, saml_provider_arns, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11)",
            &[
                &id,
                &account,
                &s.name,
                &s.allow_unauthenticated,
                &s.allow_classic_flow,
                &s.developer_provider_name,
                &Json(&s.supported_login_providers),
                &Json(&s.openid_connect_provider_arns),
                &Json(&s.cognito_identity_providers),
                &Json(&s.saml_provider_arns),
                &now,
            ],
        )
        .map(|_| ())
    }
    fn update_pool(&self, id: &str, s: &PoolSettings, now: Millis) -> R<()> {
        let now = ts(now);
        let r = self.exec(
            "UPDATE pools SET name = $2, allow_unauthenticated = $3, allow_classic_flow = $4, \
             developer_provider_name = $5, supported_login_providers = $6, \
             openid_connect_provider_arns = $7, cognito_identity_providers = $8, \
             saml_provider_arns = $9, updated_at = $10 WHERE id = $1",
            &[
                &id,
                &s.name,
                &s.allow_unauthenticated,
                &s.allow_classic_flow,
                &s.developer_provider_name,
                &Json(&s.supported_login_providers),
                &Json(&s.openid_connect_provider_arns),
                &Json(&s.cognito_identity_providers),
                &Json(&s.saml_provider_arns),
                &now,
            ],
        );
        self.stale(r.map(|_| ()))
    }
    fn delete_pool_identities(&self, pool: &str, n: usize) -> R<usize> {
        let n = limit(n) - 1;
        let r = self.exec(
            "DELETE FROM identities WHERE id IN \
             (SELECT id FROM identities WHERE pool_id = $1 ORDER BY created_at, id LIMIT $2)",
            &[&pool, &n],
        );
        self.stale(r.map(|n| n as usize))
    }
    fn delete_pool(&self, id: &str) -> R<bool> {
        let r = self.exec("DELETE FROM pools WHERE id = $1", &[&id]);
        self.stale(r.map(|n| n > 0))
    }
    fn list_pools(
        &self,
        account: &str,
        region: &str,
        after: Option<&Position>,
        n: usize,
    ) -> R<Vec<PoolSummary>> {
        let (t, i) = position(after);
        let prefix = format!("{region}:");
        self.rows(
            "SELECT created_at, id, name FROM pools WHERE account_id = $1 \
             AND ($2::timestamptz IS NULL OR (created_at, id) > ($2, $3)) \
             AND left(id, length($5)) = $5 ORDER BY created_at, id LIMIT $4",
            &[&account, &t, &i, &limit(n), &prefix],
        )?
        .iter()
        .map(|r| {
            Ok(PoolSummary {
                created_at: time(r, 0)?,
                id: get(r, 1)?,
                name: get(r, 2)?,
            })
        })
        .collect()
    }

    fn tags(&self, pool: &str) -> R<BTreeMap<String, String>> {
        self.rows(
            "SELECT key, value FROM pool_tags WHERE pool_id = $1",
            &[&pool],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
        .collect()
    }
    fn set_tags(&self, pool: &str, tags: &BTreeMap<String, String>) -> R<()> {
        self.exec("DELETE FROM pool_tags WHERE pool_id = $1", &[&pool])?;
        for (k, v) in tags {
            self.exec(
                "INSERT INTO pool_tags (pool_id, key, value) VALUES ($1, $2, $3)",
                &[&pool, k, v],
            )?;
        }
        Ok(())
    }
    fn add_tags(&self, pool: &str, tags: &BTreeMap<String, String>) -> R<()> {
        for (k, v) in tags {
            self.exec(
                "INSERT INTO pool_tags (pool_id, key, value) VALUES ($1, $2, $3) \
                 ON CONFLICT (pool_id, key) DO UPDATE SET value = excluded.value",
                &[&pool, k, v],
            )?;
        }
        Ok(())
    }
    fn remove_tags(&self, pool: &str, keys: &[String]) -> R<()> {
        for k in keys {
            self.exec(
                "DELETE FROM pool_tags WHERE pool_id = $1 AND key = $2",
                &[&pool, k],
            )?;
        }
        Ok(())
    }
    fn roles(&self, pool: &str) -> R<Option<PoolRoles>> {
        self.opt(
            "SELECT authenticated_role, unauthenticated_role, role_mappings FROM pools \
             WHERE id = $1",
            &[&pool],
        )?
        .map(|r| roles_row_at(&r, 0))
        .transpose()
    }
    fn set_roles(&self, pool: &str, roles: &PoolRoles, now: Millis) -> R<()> {
        let mappings = (!roles.role_mappings.is_empty()).then_some(Json(&roles.role_mappings));
        self.exec(
            "UPDATE pools SET authenticated_role = $2, unauthenticated_role = $3, \
             role_mappings = $4, updated_at = $5 WHERE id = $1",
            &[
                &pool,
                &roles.authenticated,
                &roles.unauthenticated,
                &mappings,
                &ts(now),
            ],
        )
        .map(|_| ())
    }
    fn principal_tag_map(&self, pool: &str, provider: &str) -> R<Option<PrincipalTagMap>> {
        self.opt(
            "SELECT use_defaults, principal_tags FROM principal_tag_maps \
             WHERE pool_id = $1 AND provider = $2",
            &[&pool, &provider],
        )?
        .map(|r| {
            Ok(PrincipalTagMap {
                use_defaults: get(&r, 0)?,
                principal_tags: get::<Json<BTreeMap<String, String>>>(&r, 1)?.0,
            })
        })
        .transpose()
    }
    fn principal_tag_maps(&self, pool: &str) -> R<BTreeMap<String, PrincipalTagMap>> {
        self.rows(
            "SELECT provider, use_defaults, principal_tags FROM principal_tag_maps \
             WHERE pool_id = $1",
            &[&pool],
        )?
        .iter()
        .map(|r| {
            Ok((
                get(r, 0)?,
                PrincipalTagMap {
                    use_defaults: get(r, 1)?,
                    principal_tags: get::<Json<BTreeMap<String, String>>>(r, 2)?.0,
                },
            ))
        })
        .collect()
    }
    fn set_principal_tag_map(&self, pool: &str, provider: &str, map: &PrincipalTagMap) -> R<()> {
        self.exec(
            "INSERT INTO principal_tag_maps (pool_id, provider, use_defaults, principal_tags) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (pool_id, provider) DO UPDATE SET \
             use_defaults = excluded.use_defaults, principal_tags = excluded.principal_tags",
            &[
                &pool,
                &provider,
                &map.use_defaults,
                &Json(&map.principal_tags),
            ],
        )
        .map(|_| ())
    }

    fn identity(&self, id: &str) -> R<Option<Identity>> {
        self.opt(
            "SELECT id, pool_id, created_at, updated_at, disabled FROM identities WHERE id = $1",
            &[&id],
        )?
        .as_ref()
        .map(identity_row)
        .transpose()
    }
    fn identity_with_pool(
        &self,
        id: &str,
        roles: bool,
        tag_maps: bool,
        login: Option<(&str, &str)>,
    ) -> R<Option<IdentityWithPool>> {
        const SQL: &str = "SELECT i.id, i.pool_id, i.created_at, i.updated_at, i.disabled, \
             p.created_at, p.id, p.account_id, p.name, p.allow_unauthenticated, \
             p.allow_classic_flow, p.developer_provider_name, p.supported_login_providers, \
             p.openid_connect_provider_arns, p.cognito_identity_providers, p.saml_provider_arns, \
             p.authenticated_role, p.unauthenticated_role, p.role_mappings, \
             CASE WHEN $2 THEN (SELECT json_agg(json_build_array(t.provider, t.use_defaults, \
             t.principal_tags)) FROM principal_tag_maps t WHERE t.pool_id = p.id) END, \
             (SELECT count(*) FROM logins WHERE identity_id = i.id) \
             + (SELECT count(*) FROM developer_users WHERE identity_id = i.id), \
             (SELECT identity_id FROM logins WHERE pool_id = i.pool_id AND provider = $3 \
             AND subject = $4) \
             FROM identities i LEFT JOIN pools p ON p.id = i.pool_id WHERE i.id = $1";
        let (provider, subject) = login.unzip();
        let Some(row) = self.opt(SQL, &[&id, &tag_maps, &provider, &subject])? else {
            return Ok(None);
        };
        // With the pool gone its columns are NULL, and so is the tag maps' subquery.
        let pool = match get::<Option<String>>(&row, 6)? {
            Some(_) => Some(pool_row_at(&row, 5)?),
            None => None,
        };
        type Maps = Vec<(String, bool, BTreeMap<String, String>)>;
        let maps = get::<Option<Json<Maps>>>(&row, 19)?.map(|m| m.0);
        Ok(Some(IdentityWithPool {
            identity: identity_row(&row)?,
            roles: (roles && pool.is_some())
                .then(|| roles_row_at(&row, 16))
                .transpose()?,
            pool,
            tag_maps: maps
                .unwrap_or_default()
                .into_iter()
                .map(|(provider, use_defaults, principal_tags)| {
                    (
                        provider,
                        PrincipalTagMap {
                            use_defaults,
                            principal_tags,
                        },
                    )
                })
                .collect(),
            login_count: get(&row, 20)?,
            login_owner: get(&row, 21)?,
        }))
    }
    fn describe_identity(&self, id: &str, developer: Option<&str>) -> R<Option<DescribedIdentity>> {
        let sql = if developer.is_some() {
            concat!(
                described_columns!(developer),
                "FROM identities i WHERE i.id = $1"
            )
        } else {
            concat!(described_columns!(), "FROM identities i WHERE i.id = $1")
        };
        self.opt(sql, &[&id])?
            .map(|r| described_row(&r, developer))
            .transpose()
    }
    fn list_identities(
        &self,
        pool: &str,
        after: Option<&Position>,
        n: usize,
        hide_disabled: bool,
        developer: Option<&str>,
    ) -> R<Vec<DescribedIdentity>> {
        let (t, i) = position(after);
        macro_rules! page {
            () => {
                "FROM identities i WHERE i.pool_id = $1 \
                 AND ($2::timestamptz IS NULL OR (i.created_at, i.id) > ($2, $3)) \
                 AND (NOT $4 OR NOT i.disabled) ORDER BY i.created_at, i.id LIMIT $5"
            };
        }
        let sql = if developer.is_some() {
            concat!(described_columns!(developer), page!())
        } else {
            concat!(described_columns!(), page!())
        };
        self.rows(sql, &[&pool, &t, &i, &hide_disabled, &limit(n)])?
            .iter()
            .map(|r| described_row(r, developer))
            .collect()
    }
    fn insert_identity(&self, id: &str, pool: &str, now: Millis) -> R<()> {
        self.later(
            "INSERT INTO identities (id, pool_id, created_at, updated_at) VALUES ($1, $2, $3, $3)",
            vec![
                Box::new(id.to_string()),
                Box::new(pool.to_string()),
                Box::new(ts(now)),
            ],
        )
    }
    fn touch(&self, id: &str, now: Millis) -> R<()> {
        self.later(
            "UPDATE identities SET updated_at = $2 WHERE id = $1",
            vec![Box::new(id.to_string()), Box::new(ts(now))],
        )
    }
    fn disable(&self, id: &str, merged_into: Option<&str>, now: Millis) -> R<()> {
        let r = self.exec(
            "UPDATE identities SET disabled = true, merged_into = $2, updated_at = $3 WHERE id = $1",
            &[&id, &merged_into, &ts(now)],
        );
        self.stale(r.map(|_| ()))
    }
    fn delete_identity(&self, id: &str) -> R<bool> {
        let r = self.exec("DELETE FROM identities WHERE id = $1", &[&id]);
        self.stale(r.map(|n| n > 0))
    }
    fn login_owner(&self, pool: &str, provider: &str, subject: &str) -> R<Option<String>> {
        self.opt(
            "SELECT identity_id FROM logins WHERE pool_id = $1 AND provider = $2 AND subject = $3",
            &[&pool, &provider, &subject],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }
    fn pool_and_login_owner(
        &self,
        pool: &str,
        provider: &str,
        subject: &str,
    ) -> R<(bool, Option<String>)> {
        let row = self.one(
            "SELECT EXISTS (SELECT 1 FROM pools WHERE id = $1), \
             (SELECT identity_id FROM logins WHERE pool_id = $1 AND provider = $2 AND subject = $3)",
            &[&pool, &provider, &subject],
        )?;
        Ok((get(&row, 0)?, get(&row, 1)?))
    }
    fn login_owner_state(
        &self,
        pool: &str,
        provider: &str,
        subject: &str,
    ) -> R<Option<(String, bool)>> {
        self.opt(
            "SELECT l.identity_id, i.disabled FROM logins l JOIN identities i ON i.id = l.identity_id \
             WHERE l.pool_id = $1 AND l.provider = $2 AND l.subject = $3",
            &[&pool, &provider, &subject],
        )?
        .map(|r| Ok((get(&r, 0)?, get(&r, 1)?)))
        .transpose()
    }
    fn subject_for(&self, identity: &str, provider: &str) -> R<Option<String>> {
        self.opt(
            "SELECT subject FROM logins WHERE identity_id = $1 AND provider = $2",
            &[&identity, &provider],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }
    fn logins_of(&self, identity: &str) -> R<Vec<(String, String)>> {
        self.rows(
            "SELECT provider, subject FROM logins WHERE identity_id = $1 ORDER BY provider",
            &[&identity],
        )?
        .iter()
        .map(|r| Ok((get(r, 0)?, get(r, 1)?)))
        .collect()
    }
    fn login_count(&self, identity: &str) -> R<i64> {
        get(
            &self.one(
                "SELECT (SELECT count(*) FROM logins WHERE identity_id = $1) \
                 + (SELECT count(*) FROM developer_users WHERE identity_id = $1)",
                &[&identity],
            )?,
            0,
        )
    }
    fn link(
        &self,
        pool: &str,
        provider: &str,
        subject: &str,
        identity: &str,
        now: Millis,
    ) -> R<()> {
        self.later(
            "INSERT INTO logins (pool_id, provider, subject, identity_id, linked_at) \
             VALUES ($1, $2, $3, $4, $5)",
            vec![
                Box::new(pool.to_string()),
                Box::new(provider.to_string()),
                Box::new(subject.to_string()),
                Box::new(identity.to_string()),
                Box::new(ts(now)),
            ],
        )
    }
    fn unlink(&self, identity: &str, provider: &str) -> R<bool> {
        let r = self.exec(
            "DELETE FROM logins WHERE identity_id = $1 AND provider = $2",
            &[&identity, &provider],
        );
        self.stale(r.map(|n| n > 0))
    }
    fn move_links(&self, from: &str, to: &str) -> R<()> {
        let r = self
            .exec(
                "UPDATE logins SET identity_id = $2 WHERE identity_id = $1",
                &[&from, &to],
            )
            .and_then(|_| {
                self.exec(
                    "UPDATE developer_users SET identity_id = $2 WHERE identity_id = $1",
                    &[&from, &to],
                )
            });
        self.stale(r.map(|_| ()))
    }

    fn developer_owner(&self, pool: &str, user: &str) -> R<Option<String>> {
        self.opt(
            "SELECT identity_id FROM developer_users WHERE pool_id = $1 AND developer_user_id = $2",
            &[&pool, &user],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }
    fn link_developer(&self, pool: &str, user: &str, identity: &str, now: Millis) -> R<()> {
        self.exec(
            "INSERT INTO developer_users (pool_id, developer_user_id, identity_id, linked_at) \
             VALUES ($1, $2, $3, $4)",
            &[&pool, &user, &identity, &ts(now)],
        )
        .map(|_| ())
    }
    fn unlink_developer(&self, pool: &str, user: &str, identity: &str) -> R<bool> {
        self.exec(
            "DELETE FROM developer_users \
             WHERE pool_id = $1 AND developer_user_id = $2 AND identity_id = $3",
            &[&pool, &user, &identity],
        )
        .map(|n| n > 0)
    }
    fn developer_users_of(&self, identity: &str, after: &str, n: usize) -> R<Vec<String>> {
        self.strings(
            "SELECT developer_user_id FROM developer_users \
             WHERE identity_id = $1 AND developer_user_id COLLATE \"C\" > $2 \
             ORDER BY developer_user_id COLLATE \"C\" LIMIT $3",
            &[&identity, &after, &limit(n)],
        )
    }

    fn keys_version(&self) -> R<KeysVersion> {
        let r = self.one(
            "SELECT count(*), coalesce(max(seq), 0), max(retire_after) FROM signing_keys",
            &[],
        )?;
        Ok(KeysVersion {
            count: get(&r, 0)?,
            max_seq: get(&r, 1)?,
            max_retire: opt_time(&r, 2)?,
        })
    }
    fn signing_keys(&self) -> R<Vec<SigningKey>> {
        self.rows(
            "SELECT kid, seq, public_jwk, retire_after FROM signing_keys ORDER BY seq DESC",
            &[],
        )?
        .iter()
        .map(key_row)
        .collect()
    }
    fn private_key(&self, kid: &str) -> R<Option<Vec<u8>>> {
        self.opt(
            "SELECT private_key FROM signing_keys WHERE kid = $1",
            &[&kid],
        )?
        .map(|r| get(&r, 0))
        .transpose()
    }
    fn next_key_seq(&self) -> R<i64> {
        get(
            &self.one("SELECT coalesce(max(seq), 0) + 1 FROM signing_keys", &[])?,
            0,
        )
    }
    fn insert_signing_key(&self, key: &SigningKey, private_key: &[u8], now: Millis) -> R<()> {
        self.exec(
            "INSERT INTO signing_keys (kid, seq, private_key, public_jwk, created_at, retire_after) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &key.kid,
                &key.seq,
                &private_key,
                &key.public_jwk,
                &ts(now),
                &key.retire_after.map(ts),
            ],
        )
        .map(|_| ())
    }
    fn retire_signing_keys(&self, retire_after: Millis) -> R<Vec<String>> {
        self.strings(
            "UPDATE signing_keys SET retire_after = $1 WHERE retire_after IS NULL RETURNING kid",
            &[&ts(retire_after)],
        )
    }
    fn delete_retired_keys(&self, now: Millis) -> R<usize> {
        self.exec(
            "DELETE FROM signing_keys WHERE retire_after IS NOT NULL AND retire_after <= $1",
            &[&ts(now)],
        )
        .map(|n| n as usize)
    }
    fn secret(&self, name: &str) -> R<Option<Vec<u8>>> {
        self.opt("SELECT value FROM secrets WHERE name = $1", &[&name])?
            .map(|r| get(&r, 0))
            .transpose()
    }

    fn export_pools(&self, after: &str, n: usize) -> R<Vec<PoolRecord>> {
        let n = limit(n) - 1;
        self.rows(
            "SELECT id, account_id, name, allow_unauthenticated, allow_classic_flow, \
             developer_provider_name, supported_login_providers, openid_connect_provider_arns, \
             cognito_identity_providers, saml_provider_arns, authenticated_role, \
             unauthenticated_role, role_mappings, created_at, updated_at \
             FROM pools WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2",
            &[&after, &n],
        )?
        .iter()
        .map(|r| {
            let mappings: Option<Json<BTreeMap<String, RoleMapping>>> = get(r, 12)?;
            Ok(PoolRecord {
                id: get(r, 0)?,
                account_id: get(r, 1)?,
                name: get(r, 2)?,
                allow_unauthenticated: get(r, 3)?,
                allow_classic_flow: get(r, 4)?,
                developer_provider_name: get(r, 5)?,
                supported_login_providers: get::<Json<BTreeMap<String, String>>>(r, 6)?.0,
                openid_connect_provider_arns: get::<Json<Vec<String>>>(r, 7)?.0,
                cognito_identity_providers: get::<Json<Vec<CognitoProvider>>>(r, 8)?.0,
                saml_provider_arns: get::<Json<Vec<String>>>(r, 9)?.0,
                authenticated_role: get(r, 10)?,
                unauthenticated_role: get(r, 11)?,
                role_mappings: mappings.map(|m| m.0).unwrap_or_default(),
                created_at: time(r, 13)?,
                updated_at: time(r, 14)?,
                tags: BTreeMap::new(),
                principal_tag_maps: BTreeMap::new(),
            })
        })
        .collect()
    }
    fn export_identities(&self, after: &str, n: usize) -> R<Vec<IdentityRecord>> {
        let n = limit(n) - 1;
        self.rows(
            "SELECT id, pool_id, created_at, updated_at, disabled, merged_into FROM identities \
             WHERE id COLLATE \"C\" > $1 ORDER BY id COLLATE \"C\" LIMIT $2",
            &[&after, &n],
        )?
        .iter()
        .map(|r| {
            Ok(IdentityRecord {
                id: get(r, 0)?,
                pool_id: get(r, 1)?,
                created_at: time(r, 2)?,
                updated_at: time(r, 3)?,
                disabled: get(r, 4)?,
                merged_into: get(r, 5)?,
            })
        })
        .collect()
    }
    fn export_logins(&self, after: &(String, String, String), n: usize) -> R<Vec<LoginRecord>> {
        let n = limit(n) - 1;
        self.rows(
            "SELECT pool_id, provider, subject, identity_id, linked_at FROM logins \
             WHERE (pool_id COLLATE \"C\", provider COLLATE \"C\", subject COLLATE \"C\") \
             > ($1, $2, $3) ORDER BY pool_id COLLATE \"C\", provider COLLATE \"C\", \
             subject COLLATE \"C\" LIMIT $4",
            &[&after.0, &after.1, &after.2, &n],
        )?
        .iter()
        .map(|r| {
            Ok(LoginRecord {
                pool_id: get(r, 0)?,
                provider: get(r, 1)?,
                subject: get(r, 2)?,
                identity_id: get(r, 3)?,
                linked_at: time(r, 4)?,
            })
        })
        .collect()
    }
    fn export_developer_users(
        &self,
        after: &(String, String),
        n: usize,
    ) -> R<Vec<DeveloperUserRecord>> {
        let n = limit(n) - 1;
        self.rows(
            "SELECT pool_id, developer_user_id, identity_id, linked_at FROM developer_users \
             WHERE (pool_id COLLATE \"C\", developer_user_id COLLATE \"C\") > ($1, $2) \
             ORDER BY pool_id COLLATE \"C\", developer_user_id COLLATE \"C\" LIMIT $3",
            &[&after.0, &after.1, &n],
        )?
        .iter()
        .map(|r| {
            Ok(DeveloperUserRecord {
                pool_id: get(r, 0)?,
                developer_user_id: get(r, 1)?,
                identity_id: get(r, 2)?,
                linked_at: time(r, 3)?,
            })
        })
        .collect()
    }
    fn export_signing_keys(&self) -> R<Vec<KeyRecord>> {
        use base64::Engine;
        self.rows(
            "SELECT kid, seq, private_key, public_jwk, created_at, retire_after \
             FROM signing_keys ORDER BY seq",
            &[],
        )?
        .iter()
        .map(|r| {
            Ok(KeyRecord {
                kid: get(r, 0)?,
                seq: get(r, 1)?,
                private_key: base64::engine::general_purpose::STANDARD
                    .encode(get::<Vec<u8>>(r, 2)?),
                public_jwk: get(r, 3)?,
                created_at: time(r, 4)?,
                retire_after: opt_time(r, 5)?,
            })
        })
        .collect()
    }
    fn count_all(&self) -> R<(i64, i64)> {
        let r = self.one(
            "SELECT (SELECT count(*) FROM pools), (SELECT count(*) FROM identities)",
            &[],
        )?;
        Ok((get(&r, 0)?, get(&r, 1)?))
    }
    fn import_pool(&self, p: &PoolRecord) -> R<bool> {
        let mappings = (!p.role_mappings.is_empty()).then_some(Json(&p.role_mappings));
        let params: [P; 15] = [
            &p.id,
            &p.account_id,
            &p.name,
            &p.allow_unauthenticated,
            &p.allow_classic_flow,
            &p.developer_provider_name,
            &Json(&p.supported_login_providers),
            &Json(&p.openid_connect_provider_arns),
            &Json(&p.cognito_identity_providers),
            &Json(&p.saml_provider_arns),
            &p.authenticated_role,
            &p.unauthenticated_role,
            &mappings,
            &ts(p.created_at),
            &ts(p.updated_at),
        ];
        let n = self.exec(
            "INSERT INTO pools (id, account_id, name, allow_unauthenticated, \
                 allow_classic_flow, developer_provider_name, supported_login_providers, \
                 openid_connect_provider_arns, cognito_identity_providers, saml_provider_arns, \
                 authenticated_role, unauthenticated_role, role_mappings, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT DO NOTHING",
            &params,
        )?;
        self.stale(Ok(n > 0))
    }
    fn import_identity(&self, i: &IdentityRecord) -> R<bool> {
        let params: [P; 6] = [
            &i.id,
            &i.pool_id,
            &ts(i.created_at),
            &ts(i.updated_at),
            &i.disabled,
            &i.merged_into,
        ];
        let n = self.exec(
            "INSERT INTO identities (id, pool_id, created_at, updated_at, disabled, \
                 merged_into) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            &params,
        )?;
        self.stale(Ok(n > 0))
    }
    fn import_login(&self, l: &LoginRecord) -> R<bool> {
        let params: [P; 5] = [
            &l.pool_id,
            &l.provider,
            &l.subject,
            &l.identity_id,
            &ts(l.linked_at),
        ];
        let n = self.exec(
            "INSERT INTO logins (pool_id, provider, subject, identity_id, linked_at) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
            &params,
        )?;
        self.stale(Ok(n > 0))
    }
    fn import_developer_user(&self, d: &DeveloperUserRecord) -> R<bool> {
        let params: [P; 4] = [
            &d.pool_id,
            &d.developer_user_id,
            &d.identity_id,
            &ts(d.linked_at),
        ];
        let n = self.exec(
            "INSERT INTO developer_users (pool_id, developer_user_id, identity_id, \
                 linked_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            &params,
        )?;
        Ok(n > 0)
    }
    fn import_signing_key(&self, k: &KeyRecord, der: &[u8], seq: i64) -> R<bool> {
        Ok(self.exec(
            "INSERT INTO signing_keys (kid, seq, private_key, public_jwk, created_at, \
             retire_after) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (kid) DO NOTHING",
            &[
                &k.kid,
                &seq,
                &der,
                &k.public_jwk,
                &ts(k.created_at),
                &k.retire_after.map(ts),
            ],
        )? > 0)
    }
    fn set_secret(&self, name: &str, value: &[u8]) -> R<()> {
        self.exec(
            "INSERT INTO secrets (name, value) VALUES ($1, $2) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            &[&name, &value],
        )
        .map(|_| ())
    }

    fn probe_writes(&self) -> R<()> {
        // What an INSERT takes; refused in a read-only transaction or on a standby.
        self.exec(
            "LOCK TABLE pools, identities, logins IN ROW EXCLUSIVE MODE",
            &[],
        )
        .map(|_| ())
    }

    fn changes_mappings(&self) -> bool {
        self.changes_mappings.get()
    }
}
