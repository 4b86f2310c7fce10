//! Amazon Resource Names: the one parser for the IAM role, OIDC and SAML provider ARNs pools
//! name, and the identity pool ARNs the tag operations take.

/// The six parts of `arn:<partition>:<service>:<region>:<account>:<resource>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Splits an ARN of an AWS partition (`aws`, `aws-cn`, `aws-us-gov`, …); anything else is None.
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        let mut parts = s.splitn(6, ':');
        if parts.next()? != "arn" {
            return None;
        }
        let arn = Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        (arn.partition == "aws" || arn.partition.starts_with("aws-")).then_some(arn)
    }

    /// Whether the account is `min..=max` digits.
    pub fn account_digits(&self, min: usize, max: usize) -> bool {
        (min..=max).contains(&self.account.len())
            && self.account.bytes().all(|b| b.is_ascii_digit())
    }

    /// For an IAM ARN (no region, a numeric account) of the given resource kind (`role/`,
    /// `oidc-provider/`, `saml-provider/`), what follows the kind.
    pub fn iam_resource(&self, kind: &str) -> Option<&'a str> {
        if self.service != "iam" || !self.region.is_empty() || !self.account_digits(1, 15) {
            return None;
        }
        self.resource.strip_prefix(kind).filter(|r| !r.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_and_partitions() {
        let a = Arn::parse("arn:aws:iam::123456789012:role/x/y").unwrap();
        assert_eq!(a.service, "iam");
        assert_eq!(a.iam_resource("role/"), Some("x/y"));
        assert_eq!(a.iam_resource("oidc-provider/"), None);
        assert!(Arn::parse("arn:aws-cn:iam::1:role/x").is_some());
        assert!(Arn::parse("arn:azure:iam::1:role/x").is_none());
        assert!(Arn::parse("arn:aws:iam::1").is_none());
        assert!(Arn::parse("nope:aws:iam::1:role/x").is_none());
        let p =
            Arn::parse("arn:aws:cognito-identity:us-east-1:1:identitypool/us-east-1:ab").unwrap();
        assert_eq!(p.resource, "identitypool/us-east-1:ab");
        assert!(Arn::parse("arn:aws:iam:us-east-1:1:role/x")
            .unwrap()
            .iam_resource("role/")
            .is_none());
    }
}
