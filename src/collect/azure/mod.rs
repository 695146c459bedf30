//! Microsoft Entra ID: one scope per tenant, collected from Microsoft Graph
//! v1.0 with tokens from azure_identity.

pub mod api;
pub mod arm;
pub mod arm_listing;
pub mod certificate;
pub mod export;
pub mod graph;
pub mod inventory;
pub mod owners;
pub mod records;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};

use crate::settings::{AzureCloud, AzureTenantSettings};

/// The endpoints of one Azure cloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloudEndpoints {
    /// The Graph host, which is also the token audience.
    pub graph: &'static str,
    /// The Entra authority host that issues tokens.
    pub authority: &'static str,
    /// The Azure Resource Manager host, which is also the token audience.
    pub arm: &'static str,
}

/// Graph, authority and Resource Manager hosts of each cloud, from
/// Microsoft's national cloud deployment reference.
pub fn endpoints(cloud: AzureCloud) -> CloudEndpoints {
    match cloud {
        AzureCloud::Public => CloudEndpoints {
            graph: "https://graph.microsoft.com",
            authority: "https://login.microsoftonline.com",
            arm: "https://management.azure.com",
        },
        AzureCloud::UsGovernment => CloudEndpoints {
            graph: "https://graph.microsoft.us",
            authority: "https://login.microsoftonline.us",
            arm: "https://management.usgovcloudapi.net",
        },
        AzureCloud::China => CloudEndpoints {
            graph: "https://microsoftgraph.chinacloudapi.cn",
            authority: "https://login.chinacloudapi.cn",
            arm: "https://management.chinacloudapi.cn",
        },
    }
}

/// Returns azure_identity's configuration for a cloud.
pub fn cloud_configuration(cloud: AzureCloud) -> CloudConfiguration {
    match cloud {
        AzureCloud::Public => CloudConfiguration::AzurePublic,
        AzureCloud::UsGovernment => CloudConfiguration::AzureGovernment,
        AzureCloud::China => CloudConfiguration::AzureChina,
    }
}

/// Returns azure_identity's configuration for a tenant: its cloud's, or a
/// custom cloud whose authority host is the tenant's `authority_url`.
// CustomConfiguration is non-exhaustive, so it is built from its default.
#[allow(clippy::field_reassign_with_default)]
pub fn tenant_cloud_configuration(tenant: &AzureTenantSettings) -> CloudConfiguration {
    match &tenant.authority_url {
        Some(authority_url) => {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = authority_url.trim_end_matches('/').to_string();
            custom.into()
        }
        None => cloud_configuration(tenant.cloud),
    }
}
