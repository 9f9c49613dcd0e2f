//! `streamctl group list|describe`: consumer groups as the answering agent
//! sees them — live members from its coordinator, committed offsets from
//! the metadata store, and lag behind each partition's high watermark.
//!
//! JSON output: the server's group listing (`[{"group","state","members"}]`)
//! and group detail (`{"group","state","protocol_type","protocol",
//! "members":[…],"offsets":[…],"total_lag"}`).

use anyhow::Result;
use clap::Subcommand;
use streamhouse_api::{GroupDetail, GroupListing};

use crate::client::ApiClient;
use crate::output::{OutputFormat, print_json, print_line, table};

#[derive(Debug, Subcommand)]
pub(crate) enum GroupCommand {
    /// List consumer groups: those with live members on this agent and
    /// those with committed offsets.
    List,
    /// Show a group's members and assignments, and per partition its
    /// committed offset, the high watermark and the lag.
    Describe {
        /// Group id.
        group: String,
    },
}

pub(crate) async fn run(
    client: &ApiClient,
    command: GroupCommand,
    output: OutputFormat,
) -> Result<()> {
    match command {
        GroupCommand::List => {
            let groups = client.list_groups().await?;
            match output {
                OutputFormat::Json => print_json(&groups),
                OutputFormat::Table if groups.is_empty() => print_line("No consumer groups."),
                OutputFormat::Table => print_line(list_table(&groups)),
            }
        }
        GroupCommand::Describe { group } => {
            let detail = client.describe_group(&group).await?;
            match output {
                OutputFormat::Json => print_json(&detail),
                OutputFormat::Table => print_line(describe_text(&detail)),
            }
        }
    }
}

fn list_table(groups: &[GroupListing]) -> comfy_table::Table {
    let mut rows = table(["GROUP", "STATE", "MEMBERS"]);
    for group in groups {
        rows.add_row(vec![
            group.group.clone(),
            group.state.clone(),
            group.members.to_string(),
        ]);
    }
    rows
}

fn describe_text(group: &GroupDetail) -> String {
    let protocol = match (group.protocol_type.as_str(), group.protocol.as_str()) {
        ("", "") => "-".to_string(),
        (kind, "") => kind.to_string(),
        (kind, protocol) => format!("{kind}/{protocol}"),
    };
    let mut text = format!(
        "Group:     {}\nState:     {}\nProtocol:  {protocol}\nMembers:   {}\nTotal lag: {}\n",
        group.group,
        group.state,
        group.members.len(),
        group.total_lag
    );
    if !group.members.is_empty() {
        let mut members = table(["MEMBER", "CLIENT ID", "HOST", "ASSIGNMENT"]);
        for member in &group.members {
            let assignment: Vec<String> = member
                .assignment
                .iter()
                .map(|a| {
                    let partitions: Vec<String> =
                        a.partitions.iter().map(ToString::to_string).collect();
                    format!("{}: {}", a.topic, partitions.join(","))
                })
                .collect();
            members.add_row(vec![
                member.member_id.clone(),
                member.client_id.clone(),
                member.client_host.clone(),
                if assignment.is_empty() {
                    "-".to_string()
                } else {
                    assignment.join("; ")
                },
            ]);
        }
        text.push_str(&format!("\n{members}\n"));
    }
    if group.offsets.is_empty() {
        text.push_str("\nNo committed offsets.");
    } else {
        let unknown = || "?".to_string();
        let mut offsets = table(["TOPIC", "PARTITION", "COMMITTED", "HIGH WATERMARK", "LAG"]);
        for offset in &group.offsets {
            offsets.add_row(vec![
                offset.topic.clone(),
                offset.partition.to_string(),
                offset.committed_offset.to_string(),
                offset
                    .high_watermark
                    .map_or_else(unknown, |hw| hw.to_string()),
                offset.lag.map_or_else(unknown, |lag| lag.to_string()),
            ]);
        }
        text.push_str(&format!("\n{offsets}"));
    }
    text
}
