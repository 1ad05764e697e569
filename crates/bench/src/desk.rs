//! The desk's look-ups at scale: 100,000 tickets of the realistic mix, with history,
//! written through the store's own repository (so the search index and phone keys are the
//! ones CreateTicket writes), then SearchTickets and the phone and unit look-ups through a
//! real intake, each at a steady desk rate.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use propdesk_domain::aggregate::{CategoryCode, Report, Reporter, RequestKey, UnitPlace};
use propdesk_domain::{By, Policy, Role, Ticket};
use propdesk_intake::convert::WireEnum;
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ticket_service_client::TicketServiceClient;
use propdesk_store::entity::unit;
use propdesk_store::{Change, NewTicket, Store};
use sea_orm::{ConnectionTrait, EntityTrait};
use tonic::Request;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::{Channel, Endpoint};

use crate::BenchError;
use crate::load::{self, LoadOutcome, LoadSpec, Pace};
use crate::mix::{self, Site};

/// Tickets written per transaction while seeding.
const BATCH: usize = 500;
/// Every this many tickets, one gets a staff note (its history grows by an event).
const NOTE_EVERY: usize = 5;

/// What the seeded data offers to look up.
pub struct Seeded {
    pub tickets: usize,
    /// Phone numbers as residents gave them, and how many tickets each has.
    pub phones: Vec<String>,
    /// Units with at least one ticket.
    pub units: Vec<String>,
}

/// Writes `tickets` tickets of the mix for `sites` by `agent_id`, a fifth with a note.
pub async fn seed(store: &Store, sites: &[Site], agent_id: &str, tickets: usize) -> Result<Seeded, BenchError> {
    let policy = Policy::default();
    let places: HashMap<String, UnitPlace> = unit::Entity::find()
        .all(store.connection())
        .await?
        .into_iter()
        .map(|u| (u.id.clone(), UnitPlace { unit_id: u.id, building_id: u.building_id, label: u.label }))
        .collect();
    let agent = By::staff(agent_id, Role::Agent);
    let now = propdesk_store::now();
    let mut phones: HashMap<String, usize> = HashMap::new();
    let mut units: HashMap<String, usize> = HashMap::new();
    let run = 0x5eed;
    for start in (0..tickets).step_by(BATCH) {
        let mut batch = Vec::with_capacity(BATCH);
        for n in start..(start + BATCH).min(tickets) {
            let request = mix::ticket_request(sites, run, n as u64);
            let report = report_of(&policy, &places, request, n)?;
            if !report.reporter.phone.is_empty() {
                *phones.entry(report.reporter.phone.clone()).or_default() += 1;
            }
            if let Some(place) = &report.unit {
                *units.entry(place.unit_id.clone()).or_default() += 1;
            }
            let (ticket, events) =
                Ticket::log(report, &policy, agent.clone(), now).map_err(|e| BenchError::Setup(e.to_string()))?;
            batch.push(NewTicket { ticket, events, trace_parent: None });
        }
        let created = store.create_tickets(batch).await?;
        let mut notes = Vec::new();
        for (k, outcome) in created.into_iter().enumerate() {
            if let propdesk_store::Created::New(mut ticket) = outcome
                && (start + k).is_multiple_of(NOTE_EVERY)
            {
                let events =
                    ticket.add_note(agent.clone(), format!("已联系住户，约好明天上门查看（{}）", start + k), now);
                notes.push(Change { ticket, events });
            }
        }
        store.save(notes).await?;
    }
    // No relay runs while seeding: the bus is not what this phase measures.
    store.connection().execute_unprepared("DELETE FROM outbox").await?;
    store.connection().execute_unprepared("VACUUM ANALYZE").await?;
    let mut phones: Vec<(String, usize)> = phones.into_iter().collect();
    phones.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut units: Vec<(String, usize)> = units.into_iter().collect();
    units.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(Seeded {
        tickets,
        phones: phones.into_iter().map(|(phone, _)| phone).collect(),
        units: units.into_iter().map(|(unit, _)| unit).collect(),
    })
}

/// The domain's report of a CreateTicket request of the mix.
fn report_of(
    policy: &Policy,
    places: &HashMap<String, UnitPlace>,
    request: pb::CreateTicketRequest,
    n: usize,
) -> Result<Report, BenchError> {
    let wire = |what: &str| BenchError::Setup(format!("the mix sent an unknown {what}"));
    let category = policy.categories.get(&request.category).ok_or_else(|| wire("category"))?;
    Ok(Report {
        id: uuid::Uuid::now_v7().to_string(),
        property_id: request.property_id,
        unit: places.get(&request.unit_id).cloned(),
        location: request.location,
        resident_id: None,
        reporter: Reporter { name: request.reporter_name, phone: request.reporter_phone },
        kind: WireEnum::from_wire(request.kind).ok().flatten().ok_or_else(|| wire("kind"))?,
        channel: WireEnum::from_wire(request.channel).ok().flatten().ok_or_else(|| wire("channel"))?,
        category: CategoryCode::new(category.code.clone()),
        category_default: category.default_priority,
        requested_priority: WireEnum::from_wire(request.priority).ok().flatten(),
        title: request.title,
        description: request.description,
        request: RequestKey { request_id: format!("desk-seed-{n}"), fingerprint: "seeded".into() },
        promised_reply_at: None,
        answer_on_the_spot: None,
        answer_source: None,
        callback_wanted: false,
        referred_by: None,
    })
}

pub(crate) fn authed<T>(bearer: &MetadataValue<Ascii>, body: T) -> Request<T> {
    let mut request = Request::new(body);
    request.metadata_mut().insert("authorization", bearer.clone());
    request
}

/// A channel to the intake at `url` and the bearer header carrying `token`.
pub(crate) async fn connect(url: &str, token: &str) -> Result<(Channel, MetadataValue<Ascii>), BenchError> {
    let channel: Channel = Endpoint::from_shared(url.to_owned())?.tcp_nodelay(true).connect().await?;
    let bearer = format!("Bearer {token}").parse().map_err(|_| BenchError::Setup("the token is not ASCII".into()))?;
    Ok((channel, bearer))
}

/// One desk call, chosen by `n` among `choices`.
#[derive(Clone)]
pub enum DeskCall {
    Search(Arc<Vec<String>>),
    Phone(Arc<Vec<String>>),
    Unit(Arc<Vec<String>>),
}

/// Drives `call` at `rate` per second for `window` (after a warm-up) through `url`.
pub async fn measure(
    url: &str,
    token: &str,
    call: DeskCall,
    rate: f64,
    window: Duration,
) -> Result<LoadOutcome, BenchError> {
    let (channel, bearer) = connect(url, token).await?;
    let spec = LoadSpec { pace: Pace::Open { rate }, warmup: Duration::from_secs(2), duration: window };
    Ok(load::drive(spec, move |n| {
        let mut client = TicketServiceClient::new(channel.clone());
        let bearer = bearer.clone();
        let pick = move |choices: &Arc<Vec<String>>| choices[(n % choices.len().max(1) as u64) as usize].clone();
        let call = call.clone();
        async move {
            let result = match &call {
                DeskCall::Search(queries) => {
                    let request =
                        pb::SearchTicketsRequest { query: pick(queries), page_size: 20, ..Default::default() };
                    client.search_tickets(authed(&bearer, request)).await.map(|r| r.into_inner().tickets.len())
                }
                DeskCall::Phone(phones) => {
                    let request =
                        pb::ListTicketsRequest { reporter_phone: pick(phones), page_size: 20, ..Default::default() };
                    client.list_tickets(authed(&bearer, request)).await.map(|r| r.into_inner().tickets.len())
                }
                DeskCall::Unit(units) => {
                    let request = pb::ListTicketsRequest { unit_id: pick(units), page_size: 20, ..Default::default() };
                    client.list_tickets(authed(&bearer, request)).await.map(|r| r.into_inner().tickets.len())
                }
            };
            match result {
                Ok(0) => Err("found nothing".to_owned()),
                Ok(_) => Ok(()),
                Err(status) => Err(format!("{:?}: {}", status.code(), status.message())),
            }
        }
    })
    .await)
}
