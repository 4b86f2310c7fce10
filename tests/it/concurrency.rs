//! Concurrency: uniqueness lives in the schema and the single writer, so racing requests can
//! never create two identities for one login or put one login on two identities.

use std::collections::{HashMap, HashSet};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixty_four_concurrent_getids_with_one_new_login_make_exactly_one_identity() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "race").await;
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let c = c.clone();
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            get_id(&c, &pool, &[("accounts.google.com", "racer")]).await
        }));
    }
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ts.count("SELECT count(*) FROM identities"), 1);
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
}

/// Racing GetIds over overlapping login sets: whatever order they commit in, no login ends on
/// two identities, no identity has two users of one provider, and every success agrees with
/// the final state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_overlapping_login_sets_stay_consistent() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "overlap").await;
    let providers = [
        "accounts.google.com",
        "graph.facebook.com",
        "www.amazon.com",
    ];
    let mut tasks = Vec::new();
    for round in 0..96usize {
        let c = c.clone();
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            // Each request names 1..3 logins drawn from a small set of users, so sets overlap.
            let n = 1 + round % 3;
            let logins: Vec<(String, String)> = (0..n)
                .map(|k| {
                    let p = providers[(round + k) % 3];
                    (p.to_string(), format!("user{}", (round / 3 + k) % 4))
                })
                .collect();
            let refs: Vec<(&str, &str)> = logins
                .iter()
                .map(|(a, b)| (a.as_str(), b.as_str()))
                .collect();
            (logins.clone(), get_id(&c, &pool, &refs).await)
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    // Final state, read as an admin would.
    let mut owner: HashMap<(String, String), String> = HashMap::new();
    let rows: Vec<(String, String, String)> = ts
        .db()
        .rows("SELECT provider, subject, identity_id FROM logins", &[]);
    let mut per_identity_provider = HashSet::new();
    for (p, s, i) in rows {
        assert!(owner.insert((p.clone(), s), i.clone()).is_none());
        assert!(
            per_identity_provider.insert((i, p)),
            "two users of one provider on one identity"
        );
    }
    let mut successes = 0;
    for (logins, result) in results {
        match result {
            Ok(id) => {
                successes += 1;
                for (p, s) in &logins {
                    assert_eq!(owner.get(&(p.clone(), s.clone())), Some(&id), "{logins:?}");
                }
            }
            Err(e) => {
                let (code, _) = code(&e);
                assert_eq!(code, "ResourceConflictException", "{e:?}");
            }
        }
    }
    assert!(successes > 0);
}

/// Thirty-two guests sign in as the same new user at once: one of them becomes the user's
/// identity, every other is merged into it, and every answer names that one identity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_racing_to_sign_in_as_one_user_end_on_one_identity() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "race-merge").await;
    let mut guests = Vec::new();
    for _ in 0..32 {
        guests.push(get_id(&c, &pool, &[]).await.unwrap());
    }
    let mut tasks = Vec::new();
    for g in &guests {
        let c = c.clone();
        let g = g.clone();
        tasks.push(tokio::spawn(async move {
            c.get_open_id_token()
                .identity_id(&g)
                .logins("accounts.google.com", "shared-user")
                .send()
                .await
                .map(|o| o.identity_id.unwrap_or_default())
        }));
    }
    let mut answers = HashSet::new();
    for t in tasks {
        answers.insert(t.await.unwrap().unwrap());
    }
    assert_eq!(answers.len(), 1, "{answers:?}");
    let owner = answers.into_iter().next().unwrap();
    assert!(
        guests.contains(&owner),
        "the first guest to sign in keeps its id"
    );
    assert_eq!(ts.count("SELECT count(*) FROM logins"), 1);
    assert_eq!(
        ts.count(&format!(
            "SELECT count(*) FROM identities WHERE disabled AND merged_into = '{owner}'"
        )),
        31
    );
    assert_eq!(
        get_id(&c, &pool, &[("accounts.google.com", "shared-user")])
            .await
            .unwrap(),
        owner
    );
}
