//! Several regions from one server: admin calls take their region from the SigV4 scope,
//! public ones from the IdentityPoolId; pools, ids, ARNs and listings are per region, and a
//! region not served is refused as AWS refuses a wrong scope.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_server_answers_for_each_configured_region_separately() {
    let ts = TestServer::start_with(|c| c.regions = vec!["eu-west-1".into()]).await;
    let us = ts.client();
    let eu = sdk_client_in(&ts.url, AKID, SECRET, "eu-west-1");

    let us_pool = create_pool(&us, "app").await;
    let eu_pool = create_pool(&eu, "app").await;
    assert!(us_pool.starts_with("us-east-1:"), "{us_pool}");
    assert!(eu_pool.starts_with("eu-west-1:"), "{eu_pool}");

    // Each region lists only its own pools.
    let listed = |c: aws_sdk_cognitoidentity::Client| async move {
        c.list_identity_pools()
            .max_results(60)
            .send()
            .await
            .unwrap()
            .identity_pools
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.identity_pool_id.unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(listed(us.clone()).await, vec![us_pool.clone()]);
    assert_eq!(listed(eu.clone()).await, vec![eu_pool.clone()]);

    // Another region's pool is not found, as on AWS.
    let err = us
        .describe_identity_pool()
        .identity_pool_id(&eu_pool)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&err).0, "ResourceNotFoundException");
    eu.describe_identity_pool()
        .identity_pool_id(&eu_pool)
        .send()
        .await
        .unwrap();

    // Tags by ARN: the ARN names the region, and only that region's caller reaches it.
    let arn = format!("arn:aws:cognito-identity:eu-west-1:000000000000:identitypool/{eu_pool}");
    eu.tag_resource()
        .resource_arn(&arn)
        .tags("team", "eu")
        .send()
        .await
        .unwrap();
    let err = us
        .tag_resource()
        .resource_arn(&arn)
        .tags("team", "us")
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&err).0, "ResourceNotFoundException");

    // Public calls go by the pool id: identities carry their pool's region.
    let id = get_id(&us, &eu_pool, &[("accounts.google.com", "anna")])
        .await
        .unwrap();
    assert!(id.starts_with("eu-west-1:"), "{id}");
    let ids = eu
        .list_identities()
        .identity_pool_id(&eu_pool)
        .max_results(10)
        .send()
        .await
        .unwrap();
    assert_eq!(ids.identities.unwrap().len(), 1);

    // A region this server does not serve is refused, as AWS refuses a wrong scope.
    let ap = sdk_client_in(&ts.url, AKID, SECRET, "ap-south-1");
    let err = ap
        .list_identity_pools()
        .max_results(5)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(
        code(&err),
        (
            "InvalidSignatureException".to_string(),
            "Credential should be scoped to a valid region.".to_string()
        )
    );
    ts.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_signatures_the_scope_still_picks_the_region() {
    let ts = TestServer::start_with(|c| {
        c.regions = vec!["eu-west-1".into()];
        c.admin.allow_unsigned = true;
    })
    .await;
    let eu = sdk_client_in(&ts.url, "ANYKEY", "any-secret", "eu-west-1");
    let pool = create_pool(&eu, "unsigned").await;
    assert!(pool.starts_with("eu-west-1:"), "{pool}");
    let ap = sdk_client_in(&ts.url, "ANYKEY", "any-secret", "ap-south-1");
    let err = ap
        .list_identity_pools()
        .max_results(5)
        .send()
        .await
        .map_err(aws_sdk_cognitoidentity::Error::from)
        .unwrap_err();
    assert_eq!(code(&err).0, "InvalidSignatureException");
    // No scope at all: the default region.
    let r = ts
        .call(
            "CreateIdentityPool",
            r#"{"IdentityPoolName":"raw","AllowUnauthenticatedIdentities":true}"#,
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(r.json()["IdentityPoolId"]
        .as_str()
        .unwrap()
        .starts_with("us-east-1:"));
    ts.stop().await;
}
