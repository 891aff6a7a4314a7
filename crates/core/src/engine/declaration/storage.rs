//! `externalStorage`: the state bucket, its object name and encryption.

use serde_json::Value;

use super::cursor::{show_str, Obj, Path};
use super::{
    parse_endpoint, parse_scope, DeclarationError, Encryption, ExternalStorage, Scope,
    DEFAULT_STATE_FILE,
};

pub(super) fn parse_storage(v: &Value, p: Path) -> Result<ExternalStorage, DeclarationError> {
    let mut o = Obj::new(v, p)?;
    let endpoint_dns_name = parse_endpoint(&mut o, "s3")?;
    let scope = parse_scope(&mut o, "a bucket name", |_| Ok::<(), &str>(()))?;
    let (scope, bucket_region) = match scope {
        Scope::Name(name) => {
            let np = o.path.key("scopingName");
            let (bucket, region) = split_bucket_name(&name, endpoint_dns_name.is_some());
            check_bucket_name(bucket, &np, &name)?;
            if let Some(r) = region {
                np.warn(format!(
                    "virtual-host name read as bucket \"{bucket}\" in region \"{r}\" (as CFE 2.1+ does)"
                ));
            }
            (Scope::Name(bucket.to_string()), region.map(str::to_string))
        }
        tags => (tags, None),
    };
    let state_file_name = match o.opt_str("stateFileName")? {
        Some((n, p)) => {
            // "." and ".." would make `f5cloudfailover/..`: a path that HTTP clients and S3
            // consoles resolve out of the prefix.
            if n.is_empty()
                || n.len() > 200
                || n.contains('/')
                || n == "."
                || n == ".."
                || n.chars().any(char::is_control)
            {
                return Err(p.err(format!(
                    "{} is not a file name (1-200 characters, no '/', not \".\" or \"..\")",
                    show_str(n)
                )));
            }
            n.to_string()
        }
        None => DEFAULT_STATE_FILE.to_string(),
    };
    let encryption = match o.opt("encryption") {
        Some((v, p)) => {
            let mut e = Obj::new(v, p)?;
            let enc = match e.opt("serverSide") {
                Some((v, p)) => parse_server_side(v, p)?,
                None => Encryption::None,
            };
            e.finish()?;
            enc
        }
        None => Encryption::None,
    };
    o.finish()?;
    Ok(ExternalStorage {
        scope,
        state_file_name,
        encryption,
        bucket_region,
        endpoint_dns_name,
    })
}

/// `encryption.serverSide` with CFE's schema defaults (`enabled: false`, `algorithm:
/// "aws:kms"`) and CFE's use of them: nothing is sent unless `enabled` is true; then the
/// algorithm, and the key id when one is given.
fn parse_server_side(v: &Value, p: Path) -> Result<Encryption, DeclarationError> {
    let mut s = Obj::new(v, p)?;
    let enabled = s.opt_bool("enabled")?.unwrap_or(false);
    let algorithm = s.opt_str("algorithm")?;
    let key_id = s.opt_str("keyId")?;
    let sp = s.path.clone();
    s.finish()?;
    let kms = match algorithm {
        None | Some(("aws:kms", _)) => true,
        Some(("AES256", _)) => false,
        Some((other, ap)) => {
            return Err(ap.err(format!(
                "{} is not \"AES256\" or \"aws:kms\"",
                show_str(other)
            )))
        }
    };
    if !enabled {
        if algorithm.is_some() || key_id.is_some() {
            sp.key("enabled").warn(
                "is not true, so nothing is encrypted by request (CFE's default is enabled: false; \
                 the bucket's default encryption applies)",
            );
        }
        return Ok(Encryption::None);
    }
    let key_id = match key_id {
        Some(("", kp)) => {
            kp.warn("is empty: the AWS managed key is used (as CFE did)");
            None
        }
        Some((k, kp)) if !kms => {
            kp.warn(format!(
                "{} is ignored with algorithm \"AES256\" (S3 would refuse a KMS key with SSE-S3)",
                show_str(k)
            ));
            None
        }
        Some((k, _)) => Some(k.to_string()),
        None => None,
    };
    if algorithm.is_none() {
        sp.key("algorithm")
            .warn("not given: \"aws:kms\" (CFE's default) is used");
    }
    Ok(if kms {
        Encryption::Kms { key_id }
    } else {
        Encryption::Aes256
    })
}

/// Splits a virtual-host bucket name as CFE 2.1+ does: `bucket.s3.REGION.amazonaws.com`
/// gives the bucket and its region; with a PrivateLink endpoint
/// (`NAME.bucket.vpce-….s3.REGION.vpce.amazonaws.com`) the region is the fifth label.
/// Any other name is returned unchanged.
pub fn split_bucket_name(name: &str, private_link: bool) -> (&str, Option<&str>) {
    if !name.contains(".s3.") {
        return (name, None);
    }
    let labels: Vec<&str> = name.split('.').collect();
    let region = labels
        .get(if private_link { 4 } else { 2 })
        .copied()
        .filter(|r| !r.is_empty());
    (labels[0], region)
}

/// S3 bucket naming: 3-63 of a-z 0-9 . -; legacy us-east-1 names (made before March 2018)
/// may also hold capitals and underscores and be up to 255 long: those load with a warning.
fn check_bucket_name(bucket: &str, p: &Path, given: &str) -> Result<(), DeclarationError> {
    let modern = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if modern {
        return Ok(());
    }
    let legacy = (3..=255).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    if legacy {
        p.warn(format!(
            "\"{bucket}\" is a legacy bucket name (capitals, underscores or over 63 characters: only us-east-1 buckets made before March 2018 have one)"
        ));
        return Ok(());
    }
    Err(p.err(format!("{} is not an S3 bucket name", show_str(given))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::declaration::Declaration;
    use crate::testing::declaration::with;

    #[test]
    fn storage_scope_and_encryption_rules() {
        let e = with(|v| v["externalStorage"]["scopingName"] = "my-bucket".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "externalStorage: give scopingName or scopingTags, not both"
        );
        let d = with(|v| {
            v["externalStorage"] = serde_json::json!({
                "scopingName": "state-bucket",
                "encryption": {"serverSide": {"enabled": true, "algorithm": "aws:kms", "keyId": "alias/cfe"}}
            })
        })
        .unwrap();
        assert_eq!(
            d.external_storage.encryption,
            Encryption::Kms {
                key_id: Some("alias/cfe".into())
            }
        );
        let e = with(|v| v["environment"] = "azure".into()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "environment: \"azure\" is not supported (only \"aws\")"
        );
    }

    fn sse(server_side: Value) -> Result<Declaration, DeclarationError> {
        with(|v| {
            v["externalStorage"]["encryption"] = serde_json::json!({"serverSide": server_side})
        })
    }

    #[test]
    fn encryption_defaults_are_cfes() {
        // CFE's schema: enabled defaults to false, algorithm to "aws:kms".
        let enc = |s: Value| sse(s).unwrap().external_storage.encryption;
        assert_eq!(
            enc(serde_json::json!({"enabled": true})),
            Encryption::Kms { key_id: None }
        );
        assert_eq!(
            enc(serde_json::json!({"algorithm": "AES256"})),
            Encryption::None
        );
        assert_eq!(
            enc(serde_json::json!({"algorithm": "aws:kms", "keyId": "alias/x"})),
            Encryption::None
        );
        assert_eq!(enc(serde_json::json!({})), Encryption::None);
        assert_eq!(
            enc(serde_json::json!({"enabled": true, "algorithm": "AES256"})),
            Encryption::Aes256
        );
        assert_eq!(
            enc(serde_json::json!({"enabled": true, "keyId": "alias/cfe"})),
            Encryption::Kms {
                key_id: Some("alias/cfe".into())
            }
        );
        // CFE sent no key header for an empty key id, and S3 refuses a KMS key with SSE-S3.
        assert_eq!(
            enc(serde_json::json!({"enabled": true, "algorithm": "aws:kms", "keyId": ""})),
            Encryption::Kms { key_id: None }
        );
        let d =
            sse(serde_json::json!({"enabled": true, "algorithm": "AES256", "keyId": "k"})).unwrap();
        assert_eq!(d.external_storage.encryption, Encryption::Aes256);
        assert!(
            d.warnings[0].starts_with("externalStorage.encryption.serverSide.keyId:"),
            "{:?}",
            d.warnings
        );
        let d = sse(serde_json::json!({"algorithm": "AES256"})).unwrap();
        assert!(
            d.warnings[0].starts_with("externalStorage.encryption.serverSide.enabled: is not true"),
            "{:?}",
            d.warnings
        );
    }

    #[test]
    fn legacy_bucket_names_load_with_a_warning() {
        let named = |n: &str| {
            with(|v| {
                v["externalStorage"] = serde_json::json!({"scopingName": n});
            })
        };
        let d = named("myCloudFailoverBucket").unwrap();
        assert_eq!(
            d.external_storage.scope,
            Scope::Name("myCloudFailoverBucket".into())
        );
        assert_eq!(d.warnings.len(), 1);
        assert!(
            d.warnings[0].starts_with(
                "externalStorage.scopingName: \"myCloudFailoverBucket\" is a legacy bucket name"
            ),
            "{:?}",
            d.warnings
        );
        assert!(named("cfe_state_2017").is_ok());
        assert!(named("cfe-state").unwrap().warnings.is_empty());
        let e = named("my bucket!").unwrap_err();
        assert_eq!(e.path, "externalStorage.scopingName");
        assert!(named("ab").is_err());
    }

    #[test]
    fn virtual_host_bucket_names_are_split_as_cfe_does() {
        let named = |n: &str, endpoint: Option<&str>| {
            with(|v| {
                v["externalStorage"] = serde_json::json!({"scopingName": n});
                if let Some(e) = endpoint {
                    v["externalStorage"]["endpointDnsName"] = e.into();
                }
            })
            .unwrap()
            .external_storage
        };
        let s = named("cfe-state.s3.us-gov-west-1.amazonaws.com", None);
        assert_eq!(s.scope, Scope::Name("cfe-state".into()));
        assert_eq!(s.bucket_region.as_deref(), Some("us-gov-west-1"));
        let s = named(
            "cfe-state.bucket.vpce-0a1b2c3d-4e5f6a7b.s3.us-east-2.vpce.amazonaws.com",
            Some("vpce-0a1b2c3d-4e5f6a7b.s3.us-east-2.vpce.amazonaws.com"),
        );
        assert_eq!(s.scope, Scope::Name("cfe-state".into()));
        assert_eq!(s.bucket_region.as_deref(), Some("us-east-2"));
        let s = named("cfe-state", None);
        assert_eq!(s.bucket_region, None);
        // A dotted name without ".s3." is an ordinary bucket name.
        let s = named("state.example.com", None);
        assert_eq!(s.scope, Scope::Name("state.example.com".into()));
    }
}
