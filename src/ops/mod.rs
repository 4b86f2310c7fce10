//! The operations: decode a validated input, do the work through the store, shape the output.
//! `dispatch` is the one entry point `service.rs` calls.

pub mod access;
pub mod credentials;
pub mod cursor;
pub mod developer;
pub mod identities;
pub mod linking;
pub mod logins;
pub mod openid;
pub mod pools;
pub mod roles;
pub mod tags;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::protocol::{ApiError, Operation};
use crate::store::StoreError;
use crate::App;

/// Who is calling an admin operation: the account its key acts for, and the region its
/// signature is scoped to. Pools are regional: a caller sees only its region's pools.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub account_id: String,
    pub region: String,
}

impl Caller {
    /// Whether this caller owns `pool`: its account, in its region.
    pub fn owns(&self, pool: &crate::model::Pool) -> bool {
        pool.account_id == self.account_id && pool.region() == self.region
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        // Logged in full once, here; the client gets a fixed message with no SQL in it. A
        // failed write transaction was logged by the writer, once for the whole run of
        // failures, so each request's share of it is only a debug line.
        match e {
            StoreError::WriteFailed(_) => tracing::debug!(error = %e, "write not committed"),
            // Lost a race: the engine runs the request again, and logs if it gives up.
            StoreError::Conflict(_) => tracing::debug!(error = %e, "concurrent change"),
            _ => tracing::error!(error = %e, "storage failure"),
        }
        ApiError::InternalError
    }
}

/// Runs one operation on an input that has passed the service model's validation, and
/// returns its response body.
pub async fn dispatch(
    app: &App,
    op: Operation,
    caller: &Caller,
    input: Value,
) -> Result<Vec<u8>, ApiError> {
    let out = match op {
        // A pool is encoded from the pool itself, not through a JSON tree.
        Operation::CreateIdentityPool => return pools::create(app, caller, decode(input)?).await,
        Operation::DescribeIdentityPool => {
            return pools::describe(app, caller, decode(input)?).await
        }
        Operation::UpdateIdentityPool => return pools::update(app, caller, decode(input)?).await,
        Operation::DeleteIdentityPool => pools::delete(app, caller, decode(input)?).await,
        Operation::ListIdentityPools => pools::list(app, caller, decode(input)?).await,
        Operation::GetId => {
            return identities::get_id(app, decode(input)?)
                .await
                .and_then(|id| identities::id_body(&id))
        }
        Operation::DescribeIdentity => identities::describe(app, caller, decode(input)?).await,
        // A page of 60 rows is encoded from the rows themselves, not through a JSON tree.
        Operation::ListIdentities => return identities::list(app, caller, decode(input)?).await,
        Operation::SetIdentityPoolRoles => roles::set_identity_pool_roles(app, caller, input).await,
        Operation::GetIdentityPoolRoles => roles::get_identity_pool_roles(app, caller, input).await,
        Operation::SetPrincipalTagAttributeMap => {
            roles::set_principal_tag_attribute_map(app, caller, input).await
        }
        Operation::GetPrincipalTagAttributeMap => {
            roles::get_principal_tag_attribute_map(app, caller, input).await
        }
        Operation::TagResource => tags::tag_resource(app, caller, input).await,
        Operation::UntagResource => tags::untag_resource(app, caller, input).await,
        Operation::ListTagsForResource => tags::list_tags_for_resource(app, caller, input).await,
        Operation::DeleteIdentities => {
            identities::delete_identities(app, caller, decode(input)?).await
        }
        Operation::GetOpenIdToken => openid::get_open_id_token(app, decode(input)?).await,
        Operation::GetCredentialsForIdentity => {
            credentials::get_credentials_for_identity(app, decode(input)?).await
        }
        Operation::UnlinkIdentity => identities::unlink_identity(app, decode(input)?).await,
        Operation::GetOpenIdTokenForDeveloperIdentity => {
            developer::get_open_id_token_for_developer_identity(app, caller, decode(input)?).await
        }
        Operation::LookupDeveloperIdentity => {
            developer::lookup_developer_identity(app, caller, decode(input)?).await
        }
        Operation::MergeDeveloperIdentities => {
            developer::merge_developer_identities(app, caller, decode(input)?).await
        }
        Operation::UnlinkDeveloperIdentity => {
            developer::unlink_developer_identity(app, caller, decode(input)?).await
        }
    }?;
    serde_json::to_vec(&out)
        .map_err(|e| ApiError::internal(format!("could not encode a response: {e}")))
}

/// Decodes a validated input into its typed form.
pub fn decode<T: DeserializeOwned>(input: Value) -> Result<T, ApiError> {
    serde_json::from_value(input).map_err(|e| ApiError::Serialization(e.to_string()))
}

/// A new pool id, `<region>:<uuid v4>`, as AWS makes them.
pub fn new_pool_id(region: &str) -> String {
    format!("{region}:{}", uuid::Uuid::new_v4())
}

/// A new identity id, `<region>:<uuid v7>`: the same form as AWS's (clients treat it as an
/// opaque string of the pattern `[\w-]+:[0-9a-f-]+`), but ordered by creation time, so a new
/// identity is appended to the end of the id index instead of rewriting a random page of it —
/// the difference between one page per commit and one page per identity. 74 of its bits are
/// random, so a guest's id stays unguessable.
pub fn new_identity_id(region: &str) -> String {
    format!("{region}:{}", uuid::Uuid::now_v7())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_region_and_lowercase_uuid() {
        for (id, version) in [
            (new_pool_id("eu-west-1"), 4),
            (new_identity_id("eu-west-1"), 7),
        ] {
            let (r, u) = id.split_once(':').unwrap();
            assert_eq!(r, "eu-west-1");
            assert_eq!(u.len(), 36);
            assert_eq!(u, u.to_lowercase());
            assert_eq!(uuid::Uuid::parse_str(u).unwrap().get_version_num(), version);
        }
    }

    #[test]
    fn identity_ids_sort_in_creation_order() {
        let ids: Vec<String> = (0..1000).map(|_| new_identity_id("us-east-1")).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted);
    }
}
