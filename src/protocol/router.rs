//! Operation names: the 23 operations of the service, which are public (callable unsigned), and
//! how an `X-Amz-Target` header names one.

/// One of the 23 operations of Amazon Cognito Identity 2014-06-30.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    CreateIdentityPool,
    DeleteIdentities,
    DeleteIdentityPool,
    DescribeIdentity,
    DescribeIdentityPool,
    GetCredentialsForIdentity,
    GetId,
    GetIdentityPoolRoles,
    GetOpenIdToken,
    GetOpenIdTokenForDeveloperIdentity,
    GetPrincipalTagAttributeMap,
    ListIdentities,
    ListIdentityPools,
    ListTagsForResource,
    LookupDeveloperIdentity,
    MergeDeveloperIdentities,
    SetIdentityPoolRoles,
    SetPrincipalTagAttributeMap,
    TagResource,
    UnlinkDeveloperIdentity,
    UnlinkIdentity,
    UntagResource,
    UpdateIdentityPool,
}

/// The prefix SDKs send before the operation name.
pub const TARGET_PREFIX: &str = "AWSCognitoIdentityService";

impl Operation {
    /// Every operation, in the service model's (alphabetical) order.
    pub const ALL: [Operation; 23] = [
        Operation::CreateIdentityPool,
        Operation::DeleteIdentities,
        Operation::DeleteIdentityPool,
        Operation::DescribeIdentity,
        Operation::DescribeIdentityPool,
        Operation::GetCredentialsForIdentity,
        Operation::GetId,
        Operation::GetIdentityPoolRoles,
        Operation::GetOpenIdToken,
        Operation::GetOpenIdTokenForDeveloperIdentity,
        Operation::GetPrincipalTagAttributeMap,
        Operation::ListIdentities,
        Operation::ListIdentityPools,
        Operation::ListTagsForResource,
        Operation::LookupDeveloperIdentity,
        Operation::MergeDeveloperIdentities,
        Operation::SetIdentityPoolRoles,
        Operation::SetPrincipalTagAttributeMap,
        Operation::TagResource,
        Operation::UnlinkDeveloperIdentity,
        Operation::UnlinkIdentity,
        Operation::UntagResource,
        Operation::UpdateIdentityPool,
    ];

    /// The operation's name as the service model spells it.
    pub fn name(self) -> &'static str {
        match self {
            Operation::CreateIdentityPool => "CreateIdentityPool",
            Operation::DeleteIdentities => "DeleteIdentities",
            Operation::DeleteIdentityPool => "DeleteIdentityPool",
            Operation::DescribeIdentity => "DescribeIdentity",
            Operation::DescribeIdentityPool => "DescribeIdentityPool",
            Operation::GetCredentialsForIdentity => "GetCredentialsForIdentity",
            Operation::GetId => "GetId",
            Operation::GetIdentityPoolRoles => "GetIdentityPoolRoles",
            Operation::GetOpenIdToken => "GetOpenIdToken",
            Operation::GetOpenIdTokenForDeveloperIdentity => "GetOpenIdTokenForDeveloperIdentity",
            Operation::GetPrincipalTagAttributeMap => "GetPrincipalTagAttributeMap",
            Operation::ListIdentities => "ListIdentities",
            Operation::ListIdentityPools => "ListIdentityPools",
            Operation::ListTagsForResource => "ListTagsForResource",
            Operation::LookupDeveloperIdentity => "LookupDeveloperIdentity",
            Operation::MergeDeveloperIdentities => "MergeDeveloperIdentities",
            Operation::SetIdentityPoolRoles => "SetIdentityPoolRoles",
            Operation::SetPrincipalTagAttributeMap => "SetPrincipalTagAttributeMap",
            Operation::TagResource => "TagResource",
            Operation::UnlinkDeveloperIdentity => "UnlinkDeveloperIdentity",
            Operation::UnlinkIdentity => "UnlinkIdentity",
            Operation::UntagResource => "UntagResource",
            Operation::UpdateIdentityPool => "UpdateIdentityPool",
        }
    }

    /// Public operations take no signature, as on AWS (`authtype: none` in the model).
    pub fn is_public(self) -> bool {
        match self {
            Operation::GetId
            | Operation::GetOpenIdToken
            | Operation::GetCredentialsForIdentity
            | Operation::UnlinkIdentity => true,
            Operation::CreateIdentityPool
            | Operation::DeleteIdentities
            | Operation::DeleteIdentityPool
            | Operation::DescribeIdentity
            | Operation::DescribeIdentityPool
            | Operation::GetIdentityPoolRoles
            | Operation::GetOpenIdTokenForDeveloperIdentity
            | Operation::GetPrincipalTagAttributeMap
            | Operation::ListIdentities
            | Operation::ListIdentityPools
            | Operation::ListTagsForResource
            | Operation::LookupDeveloperIdentity
            | Operation::MergeDeveloperIdentities
            | Operation::SetIdentityPoolRoles
            | Operation::SetPrincipalTagAttributeMap
            | Operation::TagResource
            | Operation::UnlinkDeveloperIdentity
            | Operation::UntagResource
            | Operation::UpdateIdentityPool => false,
        }
    }

    /// Looks an operation up by its bare name.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// Maps an `X-Amz-Target` value to an operation. SDKs send
    /// `AWSCognitoIdentityService.<Op>`; old documentation shows a namespaced prefix
    /// (`com.amazonaws.cognito.identity.model.AWSCognitoIdentityService.<Op>`), accepted too.
    pub fn from_target(target: &str) -> Option<Operation> {
        let (prefix, name) = target.rsplit_once('.')?;
        if prefix != TARGET_PREFIX && !prefix.ends_with(".AWSCognitoIdentityService") {
            return None;
        }
        Operation::from_name(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_round_trips_through_its_target() {
        for op in Operation::ALL {
            let target = format!("{TARGET_PREFIX}.{}", op.name());
            assert_eq!(Operation::from_target(&target), Some(op));
        }
    }

    #[test]
    fn exactly_four_operations_are_public() {
        let public: Vec<_> = Operation::ALL.iter().filter(|o| o.is_public()).collect();
        assert_eq!(public.len(), 4);
    }

    #[test]
    fn foreign_or_malformed_targets_are_unknown() {
        assert_eq!(Operation::from_target("GetId"), None);
        assert_eq!(Operation::from_target("DynamoDB_20120810.GetId"), None);
        assert_eq!(
            Operation::from_target("AWSCognitoIdentityService.Nope"),
            None
        );
        assert_eq!(
            Operation::from_target("AWSCognitoIdentityService.getid"),
            None
        );
        assert_eq!(
            Operation::from_target(
                "com.amazonaws.cognito.identity.model.AWSCognitoIdentityService.GetId"
            ),
            Some(Operation::GetId)
        );
    }
}
