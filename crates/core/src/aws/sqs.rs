//! SQS adapter over `aws-sdk-sqs`: only what the fleet's executor needs of its queue.

use async_trait::async_trait;
use aws_sdk_sqs::Client;

use super::cloud_error;
use crate::engine::error::CloudError;
use crate::engine::ports::Queue;

/// The queue port over the AWS SDK.
#[derive(Clone, Debug)]
pub struct AwsSqs {
    client: Client,
}

impl AwsSqs {
    /// Wraps a client.
    pub fn new(client: Client) -> AwsSqs {
        AwsSqs { client }
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

/// A queue's URL from its ARN (`arn:PARTITION:sqs:REGION:ACCOUNT:NAME`), as SQS forms it
/// (the API takes the URL; the event names the ARN).
pub fn queue_url(arn: &str) -> Option<String> {
    let parts: Vec<&str> = arn.split(':').collect();
    let [_, partition, "sqs", region, account, name] = parts.as_slice() else {
        return None;
    };
    let domain = match *partition {
        "aws-cn" => "amazonaws.com.cn",
        _ => "amazonaws.com",
    };
    Some(format!("https://sqs.{region}.{domain}/{account}/{name}"))
}

#[async_trait]
impl Queue for AwsSqs {
    async fn retry_after(
        &self,
        queue_arn: &str,
        receipt_handle: &str,
        delay: std::time::Duration,
    ) -> Result<(), CloudError> {
        let url = queue_url(queue_arn).ok_or_else(|| {
            CloudError::new(
                "ChangeMessageVisibility",
                crate::engine::error::ErrorKind::Rejected,
                "InvalidArn",
                format!("{queue_arn:?} is not an SQS queue ARN"),
            )
        })?;
        self.client
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(delay.as_secs().min(43_200) as i32)
            .send()
            .await
            .map_err(|e| cloud_error("ChangeMessageVisibility", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_url_from_its_arn() {
        assert_eq!(
            queue_url("arn:aws:sqs:us-east-1:123456789012:cloud-failover-fleet").as_deref(),
            Some("https://sqs.us-east-1.amazonaws.com/123456789012/cloud-failover-fleet")
        );
        assert_eq!(
            queue_url("arn:aws-cn:sqs:cn-north-1:123456789012:q").as_deref(),
            Some("https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q")
        );
        assert_eq!(queue_url("arn:aws:sns:us-east-1:123456789012:t"), None);
    }
}
