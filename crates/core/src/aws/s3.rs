//! S3 adapter over `aws-sdk-s3`.

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::ServerSideEncryption;
use aws_sdk_s3::Client;

use super::cloud_error;
use crate::engine::declaration::{Encryption, Tags};
use crate::engine::error::{CloudError, ErrorKind};
use crate::engine::ports::{Listed, ObjectStore, StoredObject, WriteCondition};

/// S3's error code for a bucket that does not exist.
const NO_SUCH_BUCKET: &str = "NoSuchBucket";

/// S3 says "The specified bucket does not exist" without naming it: name it.
fn no_such_bucket(mut e: CloudError, bucket: &str) -> CloudError {
    if e.code.as_deref() == Some(NO_SUCH_BUCKET) {
        e.message = format!("bucket {bucket} does not exist");
    }
    e
}

/// The S3 port over the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsS3 {
    client: Client,
}

impl AwsS3 {
    /// Wraps a client.
    pub fn new(client: Client) -> AwsS3 {
        AwsS3 { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl ObjectStore for AwsS3 {
    async fn list_buckets(&self) -> Result<Vec<String>, CloudError> {
        let mut names = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_buckets()
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| cloud_error("ListBuckets", e))?;
            names.extend(
                out.buckets()
                    .iter()
                    .filter_map(|b| b.name().map(str::to_string)),
            );
            token = out.continuation_token().map(str::to_string);
            if token.is_none() {
                return Ok(names);
            }
        }
    }

    async fn bucket_tags(&self, bucket: &str) -> Result<Tags, CloudError> {
        match self.client.get_bucket_tagging().bucket(bucket).send().await {
            Ok(out) => Ok(out
                .tag_set()
                .iter()
                .map(|t| (t.key().to_string(), t.value().to_string()))
                .collect()),
            Err(e) => {
                let e = cloud_error("GetBucketTagging", e);
                match e.kind {
                    ErrorKind::Throttled | ErrorKind::Transient => Err(e),
                    // No tag set, another region, or no access: not our bucket.
                    _ => {
                        tracing::debug!(bucket, error = %e, "bucket has no readable tags");
                        Ok(Tags::new())
                    }
                }
            }
        }
    }

    async fn bucket_encryption(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        match self
            .client
            .get_bucket_encryption()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .server_side_encryption_configuration()
                .and_then(|c| c.rules().first())
                .and_then(|r| r.apply_server_side_encryption_by_default())
                .map(|d| d.sse_algorithm().as_str().to_string())),
            Err(e) => {
                let e = cloud_error("GetBucketEncryption", e);
                if e.code.as_deref() == Some("ServerSideEncryptionConfigurationNotFoundError") {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn bucket_versioning(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        let out = self
            .client
            .get_bucket_versioning()
            .bucket(bucket)
            .send()
            .await
            .map_err(|e| no_such_bucket(cloud_error("GetBucketVersioning", e), bucket))?;
        Ok(out.status().map(|s| s.as_str().to_string()))
    }

    async fn public_access_blocked(&self, bucket: &str) -> Result<bool, CloudError> {
        match self
            .client
            .get_public_access_block()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(out.public_access_block_configuration().is_some_and(|c| {
                [
                    c.block_public_acls(),
                    c.ignore_public_acls(),
                    c.block_public_policy(),
                    c.restrict_public_buckets(),
                ]
                .iter()
                .all(|on| *on == Some(true))
            })),
            Err(e) => {
                let e = cloud_error("GetPublicAccessBlock", e);
                if e.code.as_deref() == Some("NoSuchPublicAccessBlockConfiguration") {
                    Ok(false)
                } else {
                    Err(no_such_bucket(e, bucket))
                }
            }
        }
    }

    async fn bucket_policy(&self, bucket: &str) -> Result<Option<String>, CloudError> {
        match self.client.get_bucket_policy().bucket(bucket).send().await {
            Ok(out) => Ok(out.policy().map(str::to_string)),
            Err(e) => {
                let e = cloud_error("GetBucketPolicy", e);
                if e.code.as_deref() == Some("NoSuchBucketPolicy") {
                    Ok(None)
                } else {
                    Err(no_such_bucket(e, bucket))
                }
            }
        }
    }

    async fn bucket_exists(&self, bucket: &str) -> Result<bool, CloudError> {
        match self.client.head_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(true),
            Err(e) => {
                let e = cloud_error("HeadBucket", e);
                if e.kind == ErrorKind::NotFound {
                    Ok(false)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn get_object(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<StoredObject>, CloudError> {
        let out = match self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let e = no_such_bucket(cloud_error("GetObject", e), bucket);
                // Only a missing key is an absent object; a missing bucket is an error.
                return if e.kind == ErrorKind::NotFound && e.code.as_deref() != Some(NO_SUCH_BUCKET)
                {
                    Ok(None)
                } else {
                    Err(e)
                };
            }
        };
        let etag = out.e_tag().map(str::to_string);
        let last_modified = out
            .last_modified()
            .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
        let body = out.body.collect().await.map_err(|e| CloudError {
            operation: "GetObject",
            kind: ErrorKind::Transient,
            code: None,
            message: format!("reading the body failed: {e}"),
            source: Some(Box::new(e)),
        })?;
        Ok(Some(StoredObject {
            body: body.into_bytes().to_vec(),
            etag,
            last_modified,
        }))
    }

    async fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        encryption: &Encryption,
        condition: Option<WriteCondition>,
    ) -> Result<Option<String>, CloudError> {
        let mut req = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(ByteStream::from(body));
        req = match encryption {
            Encryption::None => req,
            Encryption::Aes256 => req.server_side_encryption(ServerSideEncryption::Aes256),
            Encryption::Kms { key_id } => req
                .server_side_encryption(ServerSideEncryption::AwsKms)
                .set_ssekms_key_id(key_id.clone()),
        };
        let conditional = condition.is_some();
        req = match condition {
            None => req,
            Some(WriteCondition::IfNoneMatch) => req.if_none_match("*"),
            Some(WriteCondition::IfMatch(etag)) => req.if_match(etag),
        };
        let sent = if conditional {
            // A conditional write whose response was lost must not be sent again blindly: the
            // retry would fail its own precondition (412) although the first one took effect.
            // The caller (the lock) reads the object back to learn what happened.
            req.customize()
                .config_override(
                    aws_sdk_s3::config::Builder::default().retry_config(RetryConfig::disabled()),
                )
                .send()
                .await
        } else {
            req.send().await
        };
        let out = sent.map_err(|e| no_such_bucket(cloud_error("PutObject", e), bucket))?;
        Ok(out.e_tag().map(str::to_string))
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<Listed>, CloudError> {
        let pages: Vec<_> = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .into_paginator()
            .send()
            .try_collect()
            .await
            .map_err(|e| no_such_bucket(cloud_error("ListObjectsV2", e), bucket))?;
        Ok(pages
            .iter()
            .flat_map(|p| p.contents())
            .filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_string(),
                    etag: o.e_tag().map(str::to_string),
                    size: o.size().unwrap_or_default().max(0) as u64,
                })
            })
            .collect())
    }
}
