//! TagResource / UntagResource / ListTagsForResource on identity pool ARNs: merging,
//! removing, the 50-tag limit, ARNs of other accounts and regions, malformed ARNs, and the
//! same tags in DescribeIdentityPool, across restarts.

use std::collections::HashMap;

use aws_sdk_cognitoidentity::Client;
use serde_json::json;

use crate::common::*;

/// The account the default admin key acts for (the server's default `account_id`).
const ACCOUNT: &str = "000000000000";
const MISSING_POOL: &str = "us-east-1:00000000-0000-4000-8000-000000000000";

fn arn(pool: &str) -> String {
    format!("arn:aws:cognito-identity:us-east-1:{ACCOUNT}:identitypool/{pool}")
}

fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn list(c: &Client, arn: &str) -> HashMap<String, String> {
    c.list_tags_for_resource()
        .resource_arn(arn)
        .send()
        .await
        .unwrap()
        .tags()
        .cloned()
        .unwrap_or_default()
}

async fn described(c: &Client, pool: &str) -> HashMap<String, String> {
    c.describe_identity_pool()
        .identity_pool_id(pool)
        .send()
        .await
        .unwrap()
        .identity_pool_tags()
        .cloned()
        .unwrap_or_default()
}

async fn tag(
    c: &Client,
    arn: &str,
    tags: &HashMap<String, String>,
) -> Result<(), aws_sdk_cognitoidentity::Error> {
    c.tag_resource()
        .resource_arn(arn)
        .set_tags(Some(tags.clone()))
        .send()
        .await
        .map(|_| ())
        .map_err(aws_sdk_cognitoidentity::Error::from)
}

/// A new pool named `name`, without guests, tagged `env=dev`; its id.
async fn pool_tagged_env_dev(c: &Client, name: &str) -> String {
    c.create_identity_pool()
        .identity_pool_name(name)
        .allow_unauthenticated_identities(false)
        .identity_pool_tags("env", "dev")
        .send()
        .await
        .unwrap()
        .identity_pool_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_merge_untag_ignores_missing_keys_and_describe_agrees_across_restarts() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_tagged_env_dev(&c, "tagged").await;
    let a = arn(&pool);
    assert_eq!(list(&c, &a).await, map(&[("env", "dev")]));

    // Merge: a new key is added, an existing one overwritten, an empty value allowed.
    tag(
        &c,
        &a,
        &map(&[("env", "prod"), ("team", "id"), ("empty", "")]),
    )
    .await
    .unwrap();
    let all = map(&[("env", "prod"), ("team", "id"), ("empty", "")]);
    assert_eq!(list(&c, &a).await, all);
    assert_eq!(described(&c, &pool).await, all);

    let ts = ts.restart().await;
    let c = ts.client();
    assert_eq!(list(&c, &a).await, all);

    // Untag: present keys go, missing keys are ignored.
    c.untag_resource()
        .resource_arn(&a)
        .tag_keys("team")
        .tag_keys("never-there")
        .send()
        .await
        .unwrap();
    let left = map(&[("env", "prod"), ("empty", "")]);
    assert_eq!(list(&c, &a).await, left);
    assert_eq!(described(&c, &pool).await, left);

    // Tags set by UpdateIdentityPool are the same tags.
    c.update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("tagged")
        .allow_unauthenticated_identities(false)
        .identity_pool_tags("only", "this")
        .send()
        .await
        .unwrap();
    assert_eq!(list(&c, &a).await, map(&[("only", "this")]));

    let ts = ts.restart().await;
    let c = ts.client();
    c.untag_resource()
        .resource_arn(&a)
        .tag_keys("only")
        .send()
        .await
        .unwrap();
    assert_eq!(list(&c, &a).await, HashMap::new());
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untagged_pool_lists_empty_tags_on_the_wire() {
    let ts = TestServer::start_with(|c| c.admin.allow_unsigned = true).await;
    let pool = create_pool(&ts.client(), "bare").await;
    let r = ts
        .call(
            "ListTagsForResource",
            &json!({"ResourceArn": arn(&pool)}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(String::from_utf8(r.body.clone()).unwrap(), r#"{"Tags":{}}"#);
    let r = ts
        .call(
            "TagResource",
            &json!({"ResourceArn": arn(&pool), "Tags": {"k": "v"}}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.json()), (200, json!({})));
    let r = ts
        .call(
            "UntagResource",
            &json!({"ResourceArn": arn(&pool), "TagKeys": ["k"]}).to_string(),
        )
        .await;
    assert_eq!((r.status, r.json()), (200, json!({})));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_50_tags_in_total_are_refused_and_nothing_changes() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = create_pool(&c, "many").await;
    let a = arn(&pool);
    let first: HashMap<String, String> = (0..10).map(|i| (format!("k{i}"), "v".into())).collect();
    tag(&c, &a, &first).await.unwrap();

    // 10 + 41 new = 51: refused, not even the first ones are added.
    let too_many: HashMap<String, String> =
        (10..51).map(|i| (format!("k{i}"), "new".into())).collect();
    let (code_, message) = code(&tag(&c, &a, &too_many).await.unwrap_err());
    assert_eq!(code_, "InvalidParameterException");
    assert!(message.contains("50"), "{message}");
    assert_eq!(list(&c, &a).await, first);

    // Overwriting existing keys does not count twice: 10 + 40 new = 50 is fine.
    let mut fifty: HashMap<String, String> =
        (10..50).map(|i| (format!("k{i}"), "new".into())).collect();
    fifty.insert("k0".into(), "changed".into());
    tag(&c, &a, &fifty).await.unwrap();
    let now = list(&c, &a).await;
    assert_eq!(now.len(), 50);
    assert_eq!(now["k0"], "changed");

    // One more is one too many; an overwrite at 50 is fine.
    let (code_, _) = code(&tag(&c, &a, &map(&[("k50", "x")])).await.unwrap_err());
    assert_eq!(code_, "InvalidParameterException");
    tag(&c, &a, &map(&[("k1", "x")])).await.unwrap();
    let ts = ts.restart().await;
    let after = list(&ts.client(), &a).await;
    assert_eq!(after.len(), 50);
    assert_eq!(after["k1"], "x");
    assert!(!after.contains_key("k50"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_foreign_and_unknown_arns_are_refused_and_change_nothing() {
    let ts = TestServer::start().await;
    let c = ts.client();
    let other = ts.client_with(OTHER_AKID, OTHER_SECRET);
    let pool = create_pool(&c, "mine").await;
    tag(&c, &arn(&pool), &map(&[("keep", "me")])).await.unwrap();
    let not_found = (
        "ResourceNotFoundException".to_string(),
        format!("IdentityPool '{pool}' not found."),
    );

    // Malformed ARNs: InvalidParameterException for all three operations.
    for bad in [
        format!("arn:aws:cognito-idp:us-east-1:{ACCOUNT}:identitypool/{pool}"),
        format!("arn:aws:cognito-identity:us-east-1:{ACCOUNT}:userpool/{pool}"),
        format!("arn:aws:cognito-identity:us-east-1:{ACCOUNT}:identitypool/not-a-pool-id"),
        format!("arn:aws:cognito-identity:us-east-1:acct:identitypool/{pool}"),
        format!("identitypool/{pool}"),
    ] {
        let e = tag(&c, &bad, &map(&[("x", "y")])).await.unwrap_err();
        assert_eq!(code(&e).0, "InvalidParameterException", "{bad}");
        let e = c
            .untag_resource()
            .resource_arn(&bad)
            .tag_keys("keep")
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(&aws_sdk_cognitoidentity::Error::from(e)).0,
            "InvalidParameterException"
        );
        let e = c
            .list_tags_for_resource()
            .resource_arn(&bad)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            code(&aws_sdk_cognitoidentity::Error::from(e)).0,
            "InvalidParameterException"
        );
    }

    // Well-formed, but the ARN's account or region is not the pool's: not found.
    for wrong in [
        format!("arn:aws:cognito-identity:us-east-1:{OTHER_ACCOUNT}:identitypool/{pool}"),
        format!("arn:aws:cognito-identity:eu-west-1:{ACCOUNT}:identitypool/{pool}"),
    ] {
        let e = tag(&c, &wrong, &map(&[("x", "y")])).await.unwrap_err();
        assert_eq!(code(&e), not_found, "{wrong}");
        let e = c
            .list_tags_for_resource()
            .resource_arn(&wrong)
            .send()
            .await
            .unwrap_err();
        assert_eq!(code(&aws_sdk_cognitoidentity::Error::from(e)), not_found);
    }

    // The right ARN, but another account's key: not found either.
    let e = tag(&other, &arn(&pool), &map(&[("x", "y")]))
        .await
        .unwrap_err();
    assert_eq!(code(&e), not_found);
    let e = other
        .untag_resource()
        .resource_arn(arn(&pool))
        .tag_keys("keep")
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&aws_sdk_cognitoidentity::Error::from(e)), not_found);
    let e = other
        .list_tags_for_resource()
        .resource_arn(arn(&pool))
        .send()
        .await
        .unwrap_err();
    assert_eq!(code(&aws_sdk_cognitoidentity::Error::from(e)), not_found);

    // A pool that does not exist.
    let e = tag(&c, &arn(MISSING_POOL), &map(&[("x", "y")]))
        .await
        .unwrap_err();
    assert_eq!(
        code(&e),
        (
            "ResourceNotFoundException".to_string(),
            format!("IdentityPool '{MISSING_POOL}' not found.")
        )
    );

    assert_eq!(list(&c, &arn(&pool)).await, map(&[("keep", "me")]));
    assert_eq!(ts.count("SELECT count(*) FROM pool_tags"), 1);

    // The other account tags its own pool under its own account's ARN.
    let theirs = create_pool(&other, "theirs").await;
    let their_arn =
        format!("arn:aws:cognito-identity:us-east-1:{OTHER_ACCOUNT}:identitypool/{theirs}");
    tag(&other, &their_arn, &map(&[("a", "b")])).await.unwrap();
    assert_eq!(list(&other, &their_arn).await, map(&[("a", "b")]));
    let e = c
        .list_tags_for_resource()
        .resource_arn(&their_arn)
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        code(&aws_sdk_cognitoidentity::Error::from(e)).0,
        "ResourceNotFoundException"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_right_after_each_change_shows_it() {
    // DescribeIdentityPool answers from memory once it has read a pool: every change to the pool
    // or its tags must show in the very next one.
    let ts = TestServer::start().await;
    let c = ts.client();
    let pool = pool_tagged_env_dev(&c, "before").await;
    let a = arn(&pool);
    for _ in 0..2 {
        assert_eq!(described(&c, &pool).await, map(&[("env", "dev")]));
    }
    tag(&c, &a, &map(&[("team", "id")])).await.unwrap();
    assert_eq!(
        described(&c, &pool).await,
        map(&[("env", "dev"), ("team", "id")])
    );
    c.untag_resource()
        .resource_arn(&a)
        .tag_keys("env")
        .send()
        .await
        .unwrap();
    assert_eq!(described(&c, &pool).await, map(&[("team", "id")]));
    c.update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("after")
        .allow_unauthenticated_identities(true)
        .send()
        .await
        .unwrap();
    let d = c
        .describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            d.identity_pool_name.as_str(),
            d.allow_unauthenticated_identities
        ),
        ("after", true)
    );
    assert_eq!(described(&c, &pool).await, map(&[("team", "id")]));
    c.update_identity_pool()
        .identity_pool_id(&pool)
        .identity_pool_name("after")
        .allow_unauthenticated_identities(true)
        .identity_pool_tags("only", "this")
        .send()
        .await
        .unwrap();
    assert_eq!(described(&c, &pool).await, map(&[("only", "this")]));
    c.delete_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let gone = c
        .describe_identity_pool()
        .identity_pool_id(&pool)
        .send()
        .await;
    assert_eq!(fail(gone), pool_not_found(&pool));
}
