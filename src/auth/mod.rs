//! Who may call what: public operations answer anyone; the other 19 answer only a caller that
//! signs with a configured admin key (SigV4), acting for that key's account.

pub mod sigv4;

use std::collections::HashMap;
use std::time::SystemTime;

use crate::config::{Config, Secret};
use crate::ops::Caller;
use crate::protocol::{ApiError, Operation};

/// The admin keys this server knows, by access key id.
pub struct Keys {
    by_id: HashMap<String, (Secret, String)>,
    default_account: String,
    /// Every region served, the default (`region`) first.
    regions: Vec<String>,
    allow_unsigned: bool,
    /// `[admin] host`: the only host signed requests may be signed for.
    host: Option<String>,
    derived: sigv4::DerivedKeys,
}

impl Keys {
    /// The keys of a configuration; a key without an account acts for the server's account.
    pub fn from_config(config: &Config) -> Keys {
        let by_id = config
            .admin
            .keys
            .iter()
            .map(|k| {
                let account = k
                    .account_id
                    .clone()
                    .unwrap_or_else(|| config.account_id.clone());
                (
                    k.access_key_id.clone(),
                    (k.secret_access_key.clone(), account),
                )
            })
            .collect();
        Keys {
            by_id,
            default_account: config.account_id.clone(),
            regions: config.served_regions(),
            allow_unsigned: config.admin.allow_unsigned,
            host: config.admin.host.clone(),
            derived: sigv4::DerivedKeys::default(),
        }
    }

    /// Whether any admin key is configured.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Decides who the caller of `op` is, or refuses the request.
    pub fn authorize(
        &self,
        op: Operation,
        parts: &http::request::Parts,
        body: &[u8],
    ) -> Result<Caller, ApiError> {
        let default_region = self.regions.first().cloned().unwrap_or_default();
        if op.is_public() {
            // Public operations take their region from the IdentityPoolId or IdentityId.
            return Ok(Caller {
                account_id: self.default_account.clone(),
                region: default_region,
            });
        }
        if self.allow_unsigned {
            // No signature is checked, but a scope that names a region still picks it.
            let region = match sigv4::claimed_region(&parts.headers) {
                Some(r) if self.serves(&r) => r,
                Some(_) => return Err(ApiError::InvalidSignature(sigv4::WRONG_REGION.to_owned())),
                None => default_region,
            };
            return Ok(Caller {
                account_id: self.default_account.clone(),
                region,
            });
        }
        let verified = sigv4::verify(
            &parts.method,
            &parts.uri,
            &parts.headers,
            body,
            |r| self.serves(r),
            self.host.as_deref(),
            SystemTime::now(),
            |akid| self.by_id.get(akid).map(|(s, _)| s.expose()),
            &self.derived,
        )?;
        let account = self
            .by_id
            .get(&verified.access_key_id)
            .map(|(_, a)| a.clone())
            .ok_or_else(|| {
                ApiError::UnrecognizedClient(
                    "The security token included in the request is invalid.".to_string(),
                )
            })?;
        Ok(Caller {
            account_id: account,
            region: verified.region,
        })
    }

    fn serves(&self, region: &str) -> bool {
        self.regions.iter().any(|r| r == region)
    }
}
