//! The calls the load generator makes, through the generated propdesk client.

use std::sync::Arc;

use propdesk_proto::v1 as pb;
use propdesk_proto::v1::directory_service_client::DirectoryServiceClient;
use propdesk_proto::v1::ticket_service_client::TicketServiceClient;
use tonic::Request;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::BenchError;
use crate::mix::{self, Site};

/// A few HTTP/2 connections, used in turn: one connection's single I/O task would
/// otherwise be the load generator's own ceiling.
#[derive(Clone)]
pub struct Connections {
    channels: Arc<Vec<Channel>>,
    bearer: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl Connections {
    pub async fn open(url: &str, count: usize, token: Option<&str>) -> Result<Connections, BenchError> {
        let mut channels = Vec::with_capacity(count.max(1));
        for _ in 0..count.max(1) {
            channels.push(Endpoint::from_shared(url.to_owned())?.tcp_nodelay(true).connect().await?);
        }
        let bearer = match token {
            Some(token) => Some(
                format!("Bearer {token}").parse().map_err(|_| BenchError::Setup("the token is not ASCII".into()))?,
            ),
            None => None,
        };
        Ok(Connections { channels: Arc::new(channels), bearer })
    }

    fn channel(&self, n: u64) -> Channel {
        self.channels[(n % self.channels.len() as u64) as usize].clone()
    }

    fn authed<T>(&self, body: T) -> Request<T> {
        let mut request = Request::new(body);
        if let Some(bearer) = &self.bearer {
            request.metadata_mut().insert("authorization", bearer.clone());
        }
        request
    }

    /// CreateTicket with the `n`th request of the mix.
    pub fn create_ticket(
        &self,
        sites: &[Site],
        run: u64,
        n: u64,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + use<> {
        self.create(n, mix::ticket_request(sites, run, n))
    }

    /// CreateTicket with a given request.
    pub fn create(
        &self,
        n: u64,
        body: pb::CreateTicketRequest,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + use<> {
        let mut client = TicketServiceClient::new(self.channel(n));
        let request = self.authed(body);
        async move { client.create_ticket(request).await.map(|_| ()).map_err(|s| describe(&s)) }
    }

    /// AddNote on a ticket at its current version.
    pub fn add_note(
        &self,
        n: u64,
        ticket_id: String,
        expected_version: i64,
    ) -> impl std::future::Future<Output = Result<(), String>> + Send + use<> {
        let mut client = TicketServiceClient::new(self.channel(n));
        let note = format!("已电话联系住户，约好明天上门 (bench note {n})");
        let request = self.authed(pb::AddNoteRequest { ticket_id, expected_version, note });
        async move { client.add_note(request).await.map(|_| ()).map_err(|s| describe(&s)) }
    }

    /// The gRPC health check: the cheapest call the server answers.
    pub fn health(&self, n: u64) -> impl std::future::Future<Output = Result<(), String>> + Send + use<> {
        let mut client = HealthClient::new(self.channel(n));
        async move {
            client.check(HealthCheckRequest { service: String::new() }).await.map(|_| ()).map_err(|s| describe(&s))
        }
    }

    /// The properties the token's holder serves and their units, from DirectoryService
    /// (every page).
    pub async fn discover_sites(&self) -> Result<Vec<Site>, BenchError> {
        let mut directory = DirectoryServiceClient::new(self.channel(0));
        let mut properties = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::ListPropertiesRequest { page_size: 200, page_token };
            let page = directory.list_properties(self.authed(request)).await?.into_inner();
            properties.extend(page.properties);
            if page.next_page_token.is_empty() {
                break;
            }
            page_token = page.next_page_token;
        }
        let mut sites = Vec::new();
        for property in properties {
            let mut unit_ids = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = pb::ListUnitsRequest {
                    property_id: property.id.clone(),
                    page_size: 200,
                    page_token,
                    ..Default::default()
                };
                let page = directory.list_units(self.authed(request)).await?.into_inner();
                unit_ids.extend(page.units.into_iter().map(|u| u.id));
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            sites.push(Site { property_id: property.id, unit_ids });
        }
        if sites.is_empty() {
            return Err(BenchError::Setup("the token's holder serves no property".into()));
        }
        Ok(sites)
    }
}

fn describe(status: &tonic::Status) -> String {
    format!("{:?}: {}", status.code(), status.message())
}
