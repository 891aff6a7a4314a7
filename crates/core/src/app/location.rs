//! Where declarations live: one object or file (one cluster), or a prefix or directory (a
//! fleet: one cluster per declaration under it, see `fleet`).

use std::path::PathBuf;
use std::str::FromStr;

use crate::engine::declaration::Declaration;
use crate::engine::failover::FailoverError;
use crate::engine::ports::ObjectStore;

/// Where a declaration lives: `s3://bucket/key` or a local file; or where a fleet's do:
/// `s3://bucket/prefix/` (ending in `/`) or a local directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// An S3 object.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// A local file (CLI only).
    File(PathBuf),
    /// Every object under an S3 prefix (a fleet).
    Prefix {
        /// Bucket.
        bucket: String,
        /// Prefix (empty, or ending in `/`).
        prefix: String,
    },
    /// Every `*.json` file of a local directory (a fleet; CLI only).
    Dir(PathBuf),
}

impl Location {
    /// Whether this names many clusters (a prefix or a directory).
    pub fn is_fleet(&self) -> bool {
        matches!(self, Location::Prefix { .. } | Location::Dir(_))
    }

    /// Where the fleet's declaration `key` is (its key under a prefix, its file name in a
    /// directory); a single declaration's location is itself.
    pub fn member(&self, key: &str) -> Location {
        match self {
            Location::Prefix { bucket, .. } => Location::S3 {
                bucket: bucket.clone(),
                key: key.to_string(),
            },
            Location::Dir(dir) => Location::File(dir.join(key)),
            single => single.clone(),
        }
    }
}

impl FromStr for Location {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(rest) = s.strip_prefix("s3://") {
            return match rest.split_once('/') {
                Some((bucket, prefix))
                    if !bucket.is_empty() && (prefix.is_empty() || prefix.ends_with('/')) =>
                {
                    Ok(Location::Prefix {
                        bucket: bucket.into(),
                        prefix: prefix.into(),
                    })
                }
                Some((bucket, key)) if !bucket.is_empty() => Ok(Location::S3 {
                    bucket: bucket.into(),
                    key: key.into(),
                }),
                _ => Err(format!(
                    "{s:?} is not s3://BUCKET/KEY (one declaration) or s3://BUCKET/PREFIX/ (a fleet)"
                )),
            };
        }
        if s.is_empty() || s.contains("://") {
            return Err(format!("{s:?} is not s3://BUCKET/KEY or a file path"));
        }
        if s.ends_with('/') || std::path::Path::new(s).is_dir() {
            return Ok(Location::Dir(s.into()));
        }
        Ok(Location::File(s.into()))
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            Location::Prefix { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Location::File(p) | Location::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// Reads and validates the declaration at `loc`.
pub async fn load_declaration(
    store: &dyn ObjectStore,
    loc: &Location,
) -> Result<Declaration, FailoverError> {
    let unavailable = |reason: String| FailoverError::DeclarationUnavailable {
        location: loc.to_string(),
        reason,
    };
    let bytes = match loc {
        Location::S3 { bucket, key } => {
            store
                .get_object(bucket, key)
                .await
                .map_err(|e| unavailable(e.to_string()))?
                .ok_or_else(|| unavailable("no such object".into()))?
                .body
        }
        Location::File(path) => std::fs::read(path).map_err(|e| unavailable(e.to_string()))?,
        Location::Prefix { .. } | Location::Dir(_) => return Err(unavailable(
            "names a fleet (many declarations): give one declaration, or use the fleet's commands"
                .into(),
        )),
    };
    let text = String::from_utf8(bytes).map_err(|_| unavailable("not UTF-8 text".into()))?;
    let decl = Declaration::parse(&text)?;
    for warning in &decl.warnings {
        tracing::warn!(%warning, "declaration");
    }
    Ok(decl)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trailing_slash_names_a_fleet() {
        let one: Location = "s3://b/cloud-failover/declaration.json".parse().unwrap();
        assert!(!one.is_fleet());
        let fleet: Location = "s3://b/cloud-failover/fleet/".parse().unwrap();
        assert_eq!(
            fleet,
            Location::Prefix {
                bucket: "b".into(),
                prefix: "cloud-failover/fleet/".into()
            }
        );
        assert_eq!(fleet.to_string(), "s3://b/cloud-failover/fleet/");
        assert!("s3://b/".parse::<Location>().unwrap().is_fleet());
        assert!("s3:///k".parse::<Location>().is_err());
        assert!("fleet/".parse::<Location>().unwrap().is_fleet());
        assert!(!"declaration.json".parse::<Location>().unwrap().is_fleet());
    }
}
