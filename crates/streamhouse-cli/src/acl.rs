//! `streamctl acl add|list|remove`: Kafka ACLs, with the flags of
//! `kafka-acls.sh` (`--allow-principal`, `--deny-principal`,
//! `--operation`, `--topic`, `--group`, `--cluster`, `--transactional-id`,
//! `--resource-pattern-type`, `--host`).
//!
//! `add` stores one binding per resource, principal and operation given;
//! `remove` deletes, per resource, the bindings the other flags select (all
//! of the resource's when none is given), as `kafka-acls.sh --remove`.
//!
//! JSON output: the bindings added, listed or removed
//! (`[{"resource_type","resource_name","pattern_type","principal","host",
//! "operation","permission"}]`).

use anyhow::{Result, bail};
use clap::{Args, Subcommand};
use streamhouse_api::{Acl, AclFilter};
use streamhouse_core::security::{
    AclOperation, AclPermission, CLUSTER_NAME, PatternType, Principal, ResourceType,
};

use crate::client::ApiClient;
use crate::output::{OutputFormat, print_json, print_line, table};

#[derive(Debug, Subcommand)]
pub(crate) enum AclCommand {
    /// Allow or deny principals operations on resources.
    Add(AclArgs),
    /// List ACL bindings, all or those of the resources given.
    List(ListArgs),
    /// Remove the ACL bindings of resources.
    Remove(AclArgs),
}

/// The resources of a command.
#[derive(Debug, Args)]
pub(crate) struct Resources {
    /// A topic (repeatable); `*` is every topic.
    #[arg(long = "topic", value_name = "NAME")]
    topics: Vec<String>,
    /// A consumer group (repeatable); `*` is every group.
    #[arg(long = "group", value_name = "NAME")]
    groups: Vec<String>,
    /// A transactional id (repeatable); `*` is every one.
    #[arg(long = "transactional-id", value_name = "ID")]
    transactional_ids: Vec<String>,
    /// The cluster (`kafka-cluster`).
    #[arg(long)]
    cluster: bool,
    /// How resource names match: `literal` or `prefixed` for bindings;
    /// `any` and `match` too for `list` and `remove` (`match`: every
    /// binding that applies to the name). Default `literal` when a
    /// resource is given.
    #[arg(long, value_name = "TYPE", value_parser = parse_pattern)]
    resource_pattern_type: Option<PatternType>,
}

impl Resources {
    fn list(&self) -> Vec<(ResourceType, String)> {
        let named = |kind: ResourceType, names: &[String]| {
            names
                .iter()
                .map(move |name| (kind, name.clone()))
                .collect::<Vec<_>>()
        };
        let mut resources = named(ResourceType::Topic, &self.topics);
        resources.extend(named(ResourceType::Group, &self.groups));
        resources.extend(named(
            ResourceType::TransactionalId,
            &self.transactional_ids,
        ));
        if self.cluster {
            resources.push((ResourceType::Cluster, CLUSTER_NAME.to_owned()));
        }
        resources
    }
}

#[derive(Debug, Args)]
pub(crate) struct AclArgs {
    #[command(flatten)]
    resources: Resources,
    /// A principal to allow, e.g. `User:alice` or `User:*` (repeatable).
    #[arg(long = "allow-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    allow: Vec<String>,
    /// A principal to deny (repeatable); Deny wins over Allow.
    #[arg(long = "deny-principal", value_name = "PRINCIPAL", value_parser = parse_principal)]
    deny: Vec<String>,
    /// An operation (repeatable): Read, Write, Create, Delete, Alter,
    /// Describe, DescribeConfigs, AlterConfigs, IdempotentWrite,
    /// ClusterAction or All. Default for `add`: All.
    #[arg(long = "operation", value_name = "OPERATION", value_parser = parse_operation)]
    operations: Vec<AclOperation>,
    /// The client address the bindings apply to. Default for `add`: `*`
    /// (every host).
    #[arg(long, value_name = "HOST")]
    host: Option<String>,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    resources: Resources,
    /// Only the bindings of this principal.
    #[arg(long, value_name = "PRINCIPAL", value_parser = parse_principal)]
    principal: Option<String>,
}

fn parse_principal(text: &str) -> Result<String, String> {
    Principal::parse(text)
        .map(|p| p.to_string())
        .map_err(|e| format!("{e} (expected TYPE:NAME, e.g. User:alice)"))
}

fn parse_operation(text: &str) -> Result<AclOperation, String> {
    text.parse()
        .map_err(|e: streamhouse_core::ValidationError| e.to_string())
}

fn parse_pattern(text: &str) -> Result<PatternType, String> {
    text.parse()
        .map_err(|e: streamhouse_core::ValidationError| e.to_string())
}

pub(crate) async fn run(
    client: &ApiClient,
    command: AclCommand,
    output: OutputFormat,
) -> Result<()> {
    match command {
        AclCommand::Add(args) => {
            let acls = bindings(&args)?;
            let created = client.create_acls(&acls).await?;
            show(&created, output, "Added", "No ACL bindings added.")
        }
        AclCommand::List(args) => {
            let mut listed = Vec::new();
            for filter in list_filters(&args) {
                listed.extend(client.list_acls(&filter).await?);
            }
            listed.sort();
            listed.dedup();
            match output {
                OutputFormat::Json => print_json(&listed),
                OutputFormat::Table if listed.is_empty() => print_line("No ACL bindings."),
                OutputFormat::Table => print_line(acl_table(&listed)),
            }
        }
        AclCommand::Remove(args) => {
            let mut removed = Vec::new();
            for filter in remove_filters(&args)? {
                removed.extend(client.delete_acls(&filter).await?);
            }
            show(&removed, output, "Removed", "No ACL bindings matched.")
        }
    }
}

fn show(acls: &[Acl], output: OutputFormat, verb: &str, none: &str) -> Result<()> {
    match output {
        OutputFormat::Json => print_json(acls),
        OutputFormat::Table if acls.is_empty() => print_line(none),
        OutputFormat::Table => {
            let noun = if acls.len() == 1 {
                "binding"
            } else {
                "bindings"
            };
            print_line(format!(
                "{verb} {} ACL {noun}:\n{}",
                acls.len(),
                acl_table(acls)
            ))
        }
    }
}

fn acl_table(acls: &[Acl]) -> comfy_table::Table {
    let mut rows = table([
        "PRINCIPAL",
        "PERMISSION",
        "OPERATION",
        "HOST",
        "RESOURCE TYPE",
        "RESOURCE NAME",
        "PATTERN",
    ]);
    for acl in acls {
        rows.add_row(vec![
            acl.principal.clone(),
            acl.permission.clone(),
            acl.operation.clone(),
            acl.host.clone(),
            acl.resource_type.clone(),
            acl.resource_name.clone(),
            acl.pattern_type.clone(),
        ]);
    }
    rows
}

/// What `add` stores: every resource × principal × operation.
fn bindings(args: &AclArgs) -> Result<Vec<Acl>> {
    let resources = args.resources.list();
    if resources.is_empty() {
        bail!("name a resource: --topic, --group, --transactional-id or --cluster");
    }
    if args.allow.is_empty() && args.deny.is_empty() {
        bail!("name a principal: --allow-principal or --deny-principal");
    }
    let pattern = args
        .resources
        .resource_pattern_type
        .unwrap_or(PatternType::Literal);
    if !matches!(pattern, PatternType::Literal | PatternType::Prefixed) {
        bail!(
            "--resource-pattern-type: ACLs are added with `literal` or `prefixed`, not `{pattern}`"
        );
    }
    let operations = if args.operations.is_empty() {
        vec![AclOperation::All]
    } else {
        args.operations.clone()
    };
    let principals = args
        .allow
        .iter()
        .map(|p| (p, AclPermission::Allow))
        .chain(args.deny.iter().map(|p| (p, AclPermission::Deny)));
    let mut acls = Vec::new();
    for (principal, permission) in principals {
        for (resource_type, name) in &resources {
            for operation in &operations {
                acls.push(Acl {
                    resource_type: resource_type.name().to_owned(),
                    resource_name: name.clone(),
                    pattern_type: pattern.name().to_owned(),
                    principal: principal.clone(),
                    host: args.host.clone().unwrap_or_else(|| "*".to_owned()),
                    operation: operation.name().to_owned(),
                    permission: permission.name().to_owned(),
                });
            }
        }
    }
    Ok(acls)
}

/// One filter per resource given, or one for everything.
fn resource_filters(resources: &Resources) -> Vec<AclFilter> {
    let list = resources.list();
    if list.is_empty() {
        return vec![AclFilter {
            pattern_type: resources.resource_pattern_type.map(|p| p.name().to_owned()),
            ..AclFilter::default()
        }];
    }
    let pattern = resources
        .resource_pattern_type
        .unwrap_or(PatternType::Literal);
    list.into_iter()
        .map(|(resource_type, name)| AclFilter {
            resource_type: Some(resource_type.name().to_owned()),
            resource_name: Some(name),
            pattern_type: Some(pattern.name().to_owned()),
            ..AclFilter::default()
        })
        .collect()
}

fn list_filters(args: &ListArgs) -> Vec<AclFilter> {
    resource_filters(&args.resources)
        .into_iter()
        .map(|filter| AclFilter {
            principal: args.principal.clone(),
            ..filter
        })
        .collect()
}

/// Per resource, one filter per principal and operation given.
fn remove_filters(args: &AclArgs) -> Result<Vec<AclFilter>> {
    if args.resources.list().is_empty() {
        bail!("name a resource: --topic, --group, --transactional-id or --cluster");
    }
    let principals: Vec<(Option<String>, Option<AclPermission>)> =
        if args.allow.is_empty() && args.deny.is_empty() {
            vec![(None, None)]
        } else {
            args.allow
                .iter()
                .map(|p| (Some(p.clone()), Some(AclPermission::Allow)))
                .chain(
                    args.deny
                        .iter()
                        .map(|p| (Some(p.clone()), Some(AclPermission::Deny))),
                )
                .collect()
        };
    let operations: Vec<Option<AclOperation>> = if args.operations.is_empty() {
        vec![None]
    } else {
        args.operations.iter().copied().map(Some).collect()
    };
    let mut filters = Vec::new();
    for resource in resource_filters(&args.resources) {
        for (principal, permission) in &principals {
            for operation in &operations {
                filters.push(AclFilter {
                    principal: principal.clone(),
                    permission: permission.map(|p| p.name().to_owned()),
                    operation: operation.map(|o| o.name().to_owned()),
                    host: args.host.clone(),
                    ..resource.clone()
                });
            }
        }
    }
    Ok(filters)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Test {
        #[command(subcommand)]
        command: AclCommand,
    }

    fn parse(args: &[&str]) -> AclCommand {
        let mut full = vec!["acl"];
        full.extend_from_slice(args);
        Test::try_parse_from(full)
            .unwrap_or_else(|e| panic!("{e}"))
            .command
    }

    #[test]
    fn add_makes_one_binding_per_resource_principal_and_operation() {
        let AclCommand::Add(args) = parse(&[
            "add",
            "--allow-principal",
            "User:alice",
            "--deny-principal",
            "User:bob",
            "--operation",
            "read",
            "--operation",
            "DESCRIBE_CONFIGS",
            "--topic",
            "orders",
            "--group",
            "billing",
        ]) else {
            panic!("not add");
        };
        let acls = bindings(&args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(acls.len(), 8);
        assert!(
            acls.iter()
                .all(|a| a.host == "*" && a.pattern_type == "Literal")
        );
        assert!(acls.iter().any(|a| a.principal == "User:bob"
            && a.permission == "Deny"
            && a.operation == "DescribeConfigs"
            && a.resource_type == "Group"
            && a.resource_name == "billing"));
        let AclCommand::Add(all) = parse(&[
            "add",
            "--allow-principal",
            "User:ops",
            "--cluster",
            "--resource-pattern-type",
            "prefixed",
        ]) else {
            panic!("not add");
        };
        let acls = bindings(&all).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(acls.len(), 1);
        assert_eq!(acls[0].operation, "All");
        assert_eq!(acls[0].resource_name, CLUSTER_NAME);
        assert_eq!(acls[0].pattern_type, "Prefixed");
    }

    #[test]
    fn add_and_remove_need_a_resource_and_add_a_principal() {
        let AclCommand::Add(args) = parse(&["add", "--allow-principal", "User:a"]) else {
            panic!("not add");
        };
        assert!(bindings(&args).is_err());
        let AclCommand::Add(args) = parse(&["add", "--topic", "t"]) else {
            panic!("not add");
        };
        assert!(bindings(&args).is_err());
        let AclCommand::Remove(args) = parse(&["remove", "--operation", "Read"]) else {
            panic!("not remove");
        };
        assert!(remove_filters(&args).is_err());
        let AclCommand::Add(args) = parse(&[
            "add",
            "--allow-principal",
            "User:a",
            "--topic",
            "t",
            "--resource-pattern-type",
            "match",
        ]) else {
            panic!("not add");
        };
        assert!(bindings(&args).is_err());
        let bad = Test::try_parse_from(["acl", "add", "--allow-principal", "alice"]);
        assert!(bad.is_err());
    }

    #[test]
    fn list_and_remove_filter_like_kafka_acls() {
        let AclCommand::List(args) = parse(&["list"]) else {
            panic!("not list");
        };
        assert_eq!(list_filters(&args), vec![AclFilter::default()]);
        let AclCommand::Remove(args) = parse(&["remove", "--topic", "orders"]) else {
            panic!("not remove");
        };
        let filters = remove_filters(&args).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            filters,
            vec![AclFilter {
                resource_type: Some("Topic".into()),
                resource_name: Some("orders".into()),
                pattern_type: Some("Literal".into()),
                ..AclFilter::default()
            }]
        );
    }
}
