//! Builds a lab `Topology` in an account through the SDK (meant for a local emulator: the
//! demo, the drill and the end-to-end tests). Emulators choose their own ids, so the result
//! maps each logical id (and public IP) of the topology to the real one.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::{
    AttributeBooleanValue, DomainType, InstanceType, ResourceType, Tag, TagSpecification,
};
use aws_sdk_ec2::Client as Ec2Client;
use aws_sdk_s3::types::{Tag as S3Tag, Tagging};
use aws_sdk_s3::Client as S3Client;

use failover_core::aws::{cloud_error, AwsCloud};
use failover_core::engine::declaration::Tags;
use failover_core::engine::error::CloudError;
use failover_core::lab::{BucketSpec, EipSpec, InstanceSpec, InterfaceSpec, TableSpec, Topology};

/// Logical id (or seed public IP) → id (or public IP) in the account.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct LabIds(pub BTreeMap<String, String>);

impl LabIds {
    /// The real id for a logical one (the logical id itself when unmapped).
    pub fn real<'a>(&'a self, logical: &'a str) -> &'a str {
        self.0.get(logical).map(String::as_str).unwrap_or(logical)
    }

    /// Replaces every logical id in `text` (e.g. a declaration, or an event whose SNS
    /// message embeds ids in an escaped string) with the real one, whole tokens only.
    pub fn rewrite(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (from, to) in &self.0 {
            out = replace_token(&out, from, to);
        }
        out
    }
}

/// Replaces `from` where it is not part of a longer id or address.
fn replace_token(text: &str, from: &str, to: &str) -> String {
    let part = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(from) {
        let before = if i > 0 {
            rest[..i].chars().last()
        } else {
            out.chars().last()
        };
        let after = rest[i + from.len()..].chars().next();
        out.push_str(&rest[..i]);
        if before.is_some_and(part) || after.is_some_and(part) {
            out.push_str(from);
        } else {
            out.push_str(to);
        }
        rest = &rest[i + from.len()..];
    }
    out.push_str(rest);
    out
}

fn ec2_tags(tags: &Tags) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Creates `topo` and returns the id map.
pub async fn create(cloud: &AwsCloud, topo: &Topology) -> Result<LabIds, CloudError> {
    let ec2 = cloud.ec2.client();
    let mut ids = LabIds::default();
    let vpc_id = create_vpc(ec2, topo, &mut ids).await?;
    for inst in &topo.instances {
        create_instance(ec2, inst, &mut ids).await?;
    }
    for e in &topo.elastic_ips {
        create_eip(ec2, e, &mut ids).await?;
    }
    for t in &topo.route_tables {
        create_route_table(ec2, &vpc_id, t, &mut ids).await?;
    }
    create_bucket(cloud.s3.client(), &topo.bucket).await?;
    Ok(ids)
}

/// Creates the VPC and its subnets; returns the VPC's id.
async fn create_vpc(
    ec2: &Ec2Client,
    topo: &Topology,
    ids: &mut LabIds,
) -> Result<String, CloudError> {
    let vpc = ec2
        .create_vpc()
        .cidr_block(topo.vpc_cidr.to_string())
        .send()
        .await
        .map_err(|e| cloud_error("CreateVpc", e))?;
    let vpc_id = vpc
        .vpc()
        .and_then(|v| v.vpc_id())
        .unwrap_or_default()
        .to_string();
    ids.0.insert(topo.vpc_id.clone(), vpc_id.clone());
    for s in &topo.subnets {
        let out = ec2
            .create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(s.cidr.to_string())
            .availability_zone(&s.az)
            .send()
            .await
            .map_err(|e| cloud_error("CreateSubnet", e))?;
        let id = out.subnet().and_then(|x| x.subnet_id()).unwrap_or_default();
        ids.0.insert(s.id.clone(), id.to_string());
    }
    Ok(vpc_id)
}

/// Launches one instance, then creates, attaches and configures its interfaces.
async fn create_instance(
    ec2: &Ec2Client,
    inst: &InstanceSpec,
    ids: &mut LabIds,
) -> Result<(), CloudError> {
    let first = &inst.interfaces[0];
    let mut name = Tags::new();
    name.insert("Name".into(), inst.name.clone());
    let out = ec2
        .run_instances()
        .image_id("ami-12c6146b")
        .instance_type(InstanceType::T3Medium)
        .min_count(1)
        .max_count(1)
        .subnet_id(ids.real(&first.subnet))
        .private_ip_address(first.primary.to_string())
        .tag_specifications(
            TagSpecification::builder()
                .resource_type(ResourceType::Instance)
                .set_tags(Some(ec2_tags(&name)))
                .build(),
        )
        .send()
        .await
        .map_err(|e| cloud_error("RunInstances", e))?;
    let i = &out.instances()[0];
    let iid = i.instance_id().unwrap_or_default().to_string();
    ids.0.insert(inst.id.clone(), iid.clone());
    for (index, spec) in inst.interfaces.iter().enumerate() {
        let eni = if index == 0 {
            i.network_interfaces()
                .first()
                .and_then(|n| n.network_interface_id())
                .unwrap_or_default()
                .to_string()
        } else {
            attach_interface(ec2, &iid, index, spec, ids).await?
        };
        ids.0.insert(spec.id.clone(), eni.clone());
        configure_interface(ec2, &eni, spec).await?;
    }
    Ok(())
}

/// Creates interface `spec` and attaches it to instance `iid` at `index`; returns its id.
async fn attach_interface(
    ec2: &Ec2Client,
    iid: &str,
    index: usize,
    spec: &InterfaceSpec,
    ids: &LabIds,
) -> Result<String, CloudError> {
    let out = ec2
        .create_network_interface()
        .subnet_id(ids.real(&spec.subnet))
        .private_ip_address(spec.primary.to_string())
        .send()
        .await
        .map_err(|e| cloud_error("CreateNetworkInterface", e))?;
    let eni = out
        .network_interface()
        .and_then(|n| n.network_interface_id())
        .unwrap_or_default()
        .to_string();
    ec2.attach_network_interface()
        .network_interface_id(&eni)
        .instance_id(iid)
        .device_index(index as i32)
        .send()
        .await
        .map_err(|e| cloud_error("AttachNetworkInterface", e))?;
    Ok(eni)
}

/// Gives interface `eni` the secondary IPs, source/destination check and tags of `spec`.
async fn configure_interface(
    ec2: &Ec2Client,
    eni: &str,
    spec: &InterfaceSpec,
) -> Result<(), CloudError> {
    if !spec.secondary.is_empty() {
        ec2.assign_private_ip_addresses()
            .network_interface_id(eni)
            .set_private_ip_addresses(Some(
                spec.secondary.iter().map(ToString::to_string).collect(),
            ))
            .send()
            .await
            .map_err(|e| cloud_error("AssignPrivateIpAddresses", e))?;
    }
    ec2.modify_network_interface_attribute()
        .network_interface_id(eni)
        .source_dest_check(
            AttributeBooleanValue::builder()
                .value(spec.source_dest_check)
                .build(),
        )
        .send()
        .await
        .map_err(|e| cloud_error("ModifyNetworkInterfaceAttribute", e))?;
    if !spec.tags.is_empty() {
        ec2.create_tags()
            .resources(eni)
            .set_tags(Some(ec2_tags(&spec.tags)))
            .send()
            .await
            .map_err(|e| cloud_error("CreateTags", e))?;
    }
    Ok(())
}

/// Allocates one Elastic IP, tags it, and associates it as `e` says.
async fn create_eip(ec2: &Ec2Client, e: &EipSpec, ids: &mut LabIds) -> Result<(), CloudError> {
    let out = ec2
        .allocate_address()
        .domain(DomainType::Vpc)
        .send()
        .await
        .map_err(|e| cloud_error("AllocateAddress", e))?;
    let alloc = out.allocation_id().unwrap_or_default().to_string();
    ids.0.insert(e.allocation_id.clone(), alloc.clone());
    ids.0.insert(
        e.public_ip.to_string(),
        out.public_ip().unwrap_or_default().to_string(),
    );
    if !e.tags.is_empty() {
        ec2.create_tags()
            .resources(&alloc)
            .set_tags(Some(ec2_tags(&e.tags)))
            .send()
            .await
            .map_err(|e| cloud_error("CreateTags", e))?;
    }
    if let Some((eni, ip)) = &e.associated_with {
        ec2.associate_address()
            .allocation_id(&alloc)
            .network_interface_id(ids.real(eni))
            .private_ip_address(ip.to_string())
            .send()
            .await
            .map_err(|e| cloud_error("AssociateAddress", e))?;
    }
    Ok(())
}

/// Creates one route table in `vpc_id` with its tags, routes and subnet associations.
async fn create_route_table(
    ec2: &Ec2Client,
    vpc_id: &str,
    t: &TableSpec,
    ids: &mut LabIds,
) -> Result<(), CloudError> {
    let out = ec2
        .create_route_table()
        .vpc_id(vpc_id)
        .send()
        .await
        .map_err(|e| cloud_error("CreateRouteTable", e))?;
    let rtb = out
        .route_table()
        .and_then(|r| r.route_table_id())
        .unwrap_or_default()
        .to_string();
    ids.0.insert(t.id.clone(), rtb.clone());
    if !t.tags.is_empty() {
        // Tag values may name lab resources (f5_cloud_failover_member=<instance>).
        let tags: Tags = t
            .tags
            .iter()
            .map(|(k, v)| (k.clone(), ids.real(v).to_string()))
            .collect();
        ec2.create_tags()
            .resources(&rtb)
            .set_tags(Some(ec2_tags(&tags)))
            .send()
            .await
            .map_err(|e| cloud_error("CreateTags", e))?;
    }
    for (dest, eni) in &t.routes {
        let req = ec2
            .create_route()
            .route_table_id(&rtb)
            .network_interface_id(ids.real(eni));
        let req = if dest.is_ipv6() {
            req.destination_ipv6_cidr_block(dest.to_string())
        } else {
            req.destination_cidr_block(dest.to_string())
        };
        req.send()
            .await
            .map_err(|e| cloud_error("CreateRoute", e))?;
    }
    for s in &t.subnets {
        ec2.associate_route_table()
            .route_table_id(&rtb)
            .subnet_id(ids.real(s))
            .send()
            .await
            .map_err(|e| cloud_error("AssociateRouteTable", e))?;
    }
    Ok(())
}

/// Creates the state bucket and tags it.
async fn create_bucket(s3: &S3Client, bucket: &BucketSpec) -> Result<(), CloudError> {
    s3.create_bucket()
        .bucket(&bucket.name)
        .send()
        .await
        .map_err(|e| cloud_error("CreateBucket", e))?;
    if !bucket.tags.is_empty() {
        let tagging = Tagging::builder()
            .set_tag_set(Some(
                bucket
                    .tags
                    .iter()
                    .filter_map(|(k, v)| S3Tag::builder().key(k).value(v).build().ok())
                    .collect(),
            ))
            .build()
            .expect("tag set");
        s3.put_bucket_tagging()
            .bucket(&bucket.name)
            .tagging(tagging)
            .send()
            .await
            .map_err(|e| cloud_error("PutBucketTagging", e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_whole_tokens_even_inside_escaped_json() {
        let ids = LabIds(
            [
                ("i-1".to_string(), "i-9".to_string()),
                ("10.0.0.1".to_string(), "127.0.0.9".to_string()),
            ]
            .into(),
        );
        assert_eq!(
            ids.rewrite(
                r#"{"a":"i-1","m":"{\"id\":\"i-1\"}","b":"i-12","ip":"10.0.0.1","ip2":"10.0.0.10"}"#
            ),
            r#"{"a":"i-9","m":"{\"id\":\"i-9\"}","b":"i-12","ip":"127.0.0.9","ip2":"10.0.0.10"}"#
        );
    }
}
