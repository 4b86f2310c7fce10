//! TagResource, UntagResource and ListTagsForResource on identity pool ARNs
//! (`arn:aws:cognito-identity:<region>:<account>:identitypool/<IdentityPoolId>`). The tags are
//! the pool's `IdentityPoolTags` (table `pool_tags`), so DescribeIdentityPool shows them too.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{json, Value};

use super::pools::check_tag_count;
use super::{decode, Caller};
use crate::arn::Arn;
use crate::model::Pool;
use crate::protocol::ApiError;
use crate::store::Tx;
use crate::App;

#[derive(Deserialize)]
struct TagInput {
    #[serde(rename = "ResourceArn")]
    arn: String,
    #[serde(rename = "Tags")]
    tags: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct UntagInput {
    #[serde(rename = "ResourceArn")]
    arn: String,
    #[serde(rename = "TagKeys")]
    keys: Vec<String>,
}

#[derive(Deserialize)]
struct ListInput {
    #[serde(rename = "ResourceArn")]
    arn: String,
}

/// The parts of an identity pool ARN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
    pub pool_id: &'a str,
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Parses `arn:<aws partition>:cognito-identity:<region>:<account>:identitypool/<id>`, where
/// the account is 1..15 digits and the id has the IdentityPoolId form `<region>:<hex and ->`.
/// Anything else is not an identity pool ARN.
pub fn parse_pool_arn(arn: &str) -> Option<PoolArn<'_>> {
    let parsed = Arn::parse(arn)?;
    if parsed.service != "cognito-identity" {
        return None;
    }
    let (region, account) = (parsed.region, parsed.account);
    let pool_id = parsed.resource.strip_prefix("identitypool/")?;
    let (id_region, uuid) = pool_id.split_once(':')?;
    let ok = is_region(region)
        && parsed.account_digits(1, 15)
        && !id_region.is_empty()
        && id_region
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !uuid.is_empty()
        && uuid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b) || b == b'-');
    ok.then_some(PoolArn {
        region,
        account,
        pool_id,
    })
}

/// The pool an ARN names, if the caller's account owns it and the ARN's region and account are
/// the pool's; every other case is "not found", as on AWS for another region or account.
fn pool_of(tx: &dyn Tx, caller: &Caller, arn: &str) -> Result<Pool, ApiError> {
    let parsed = parse_pool_arn(arn).ok_or_else(|| {
        ApiError::InvalidParameter(format!(
            "Invalid ResourceArn: '{arn}' is not an identity pool ARN \
             (arn:aws:cognito-identity:<region>:<account id>:identitypool/<IdentityPoolId>)."
        ))
    })?;
    tx.pool(parsed.pool_id)?
        .filter(|p| caller.owns(p) && p.account_id == parsed.account && p.region() == parsed.region)
        .ok_or_else(|| ApiError::pool_not_found(parsed.pool_id))
}

/// TagResource: adds the tags, overwriting values of keys the pool has. More than 50 tags in
/// total afterwards → InvalidParameterException, and nothing changes.
pub async fn tag_resource(app: &App, caller: &Caller, input: Value) -> Result<Value, ApiError> {
    let input: TagInput = decode(input)?;
    let caller = caller.clone();
    app.store
        .write(move |tx| {
            let pool = pool_of(tx, &caller, &input.arn)?;
            let mut all = tx.tags(&pool.id)?;
            all.extend(input.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
            check_tag_count(all.len())?;
            tx.add_tags(&pool.id, &input.tags)?;
            Ok(json!({}))
        })
        .await
}

/// UntagResource: removes the keys; keys the pool does not have are ignored.
pub async fn untag_resource(app: &App, caller: &Caller, input: Value) -> Result<Value, ApiError> {
    let input: UntagInput = decode(input)?;
    let caller = caller.clone();
    app.store
        .write(move |tx| {
            let pool = pool_of(tx, &caller, &input.arn)?;
            tx.remove_tags(&pool.id, &input.keys)?;
            Ok(json!({}))
        })
        .await
}

/// ListTagsForResource: `{"Tags": {…}}`, `{}` when the pool has none.
pub async fn list_tags_for_resource(
    app: &App,
    caller: &Caller,
    input: Value,
) -> Result<Value, ApiError> {
    let input: ListInput = decode(input)?;
    let caller = caller.clone();
    let tags = app
        .store
        .read(move |tx| {
            let pool = pool_of(tx, &caller, &input.arn)?;
            Ok::<_, ApiError>(tx.tags(&pool.id)?)
        })
        .await?;
    Ok(json!({ "Tags": tags }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "us-east-1:0def4f54-71bd-42f5-b8d9-7e8811807670";

    #[test]
    fn pool_arns_parse_into_region_account_and_id() {
        let arn = format!("arn:aws:cognito-identity:us-east-1:123456789012:identitypool/{ID}");
        assert_eq!(
            parse_pool_arn(&arn),
            Some(PoolArn {
                region: "us-east-1",
                account: "123456789012",
                pool_id: ID
            })
        );
        let cn = format!("arn:aws-cn:cognito-identity:cn-north-1:000000000000:identitypool/{ID}");
        assert_eq!(parse_pool_arn(&cn).map(|a| a.region), Some("cn-north-1"));
    }

    #[test]
    fn anything_else_is_not_a_pool_arn() {
        for bad in [
            "nonsense-but-long-enough".to_string(),
            format!("arn:aws:cognito-idp:us-east-1:123456789012:identitypool/{ID}"),
            format!("arn:aws:cognito-identity:us-east-1:123456789012:userpool/{ID}"),
            format!("arn:aws:cognito-identity:us-east-1::identitypool/{ID}"),
            format!("arn:aws:cognito-identity:us-east-1:12345678901a:identitypool/{ID}"),
            format!("arn:aws:cognito-identity::123456789012:identitypool/{ID}"),
            format!("arn:gcp:cognito-identity:us-east-1:123456789012:identitypool/{ID}"),
            "arn:aws:cognito-identity:us-east-1:123456789012:identitypool/".to_string(),
            "arn:aws:cognito-identity:us-east-1:123456789012:identitypool/nocolon".to_string(),
            "arn:aws:cognito-identity:us-east-1:123456789012:identitypool/us-east-1:XYZ"
                .to_string(),
            "arn:aws:cognito-identity:us-east-1:1234567890123456:identitypool/us-east-1:ab"
                .to_string(),
        ] {
            assert_eq!(parse_pool_arn(&bad), None, "{bad}");
        }
    }
}
