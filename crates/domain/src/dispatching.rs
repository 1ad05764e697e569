//! What dispatch decides for a ticket that waits for routing: the department (routing
//! rules, or the department a transfer named), the person (least open work among those on
//! duty), whether it is a repeat fault, and whether it joins or opens a group incident.
//!
//! Pure: the caller loads the facts (people on duty, the last resolution of the unit and
//! category, the open incident and recent reports of the building and category) and
//! applies the decision through the ticket's commands.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::aggregate::{NewIncident, Repeat, Route};
use crate::assignment::{Candidate, choose_assignee};
use crate::grouping::incident_priority;
use crate::policy::Policy;
use crate::ticket::{Department, TicketKind, TicketState};
use crate::{Ticket, TicketFacts};

/// The department a ticket goes to, or `None` when it does not wait for routing (it was
/// dispatched by hand meanwhile, or cancelled).
pub fn department_for(ticket: &TicketFacts, policy: &Policy) -> Option<Department> {
    match (ticket.state(), ticket.department) {
        // A transfer names its department; routing rules would send it straight back.
        (TicketState::Transferred, Some(department)) => Some(department),
        (TicketState::New | TicketState::Transferred | TicketState::Reopened, _) => {
            Some(match policy.categories.get(ticket.category.as_str()) {
                Some(category) => {
                    let text = format!("{}\n{}", ticket.title, ticket.description);
                    policy.routing.route(category, &text, ticket.unit_id.is_some())
                }
                None => Department::CustomerService,
            })
        }
        _ => None,
    }
}

/// Whether a report is one dispatch looks at for repeats and incidents: a new report from
/// inside a unit of a building.
pub fn looks_for_groups(ticket: &TicketFacts) -> bool {
    ticket.state() == TicketState::New && ticket.unit_id.is_some() && ticket.building_id.is_some()
}

/// Whether these recent reports of one building and category make an incident.
pub fn forms_incident(reports: &[Ticket], policy: &Policy) -> bool {
    policy.grouping.forms_incident(distinct_units(reports))
}

fn distinct_units(reports: &[Ticket]) -> usize {
    reports.iter().filter_map(|r| r.unit_id.as_deref()).collect::<BTreeSet<&str>>().len()
}

/// What dispatch knows around a ticket when it decides.
#[derive(Debug, Clone, Copy)]
pub struct Surroundings<'a> {
    /// People on duty in the department, with their load.
    pub candidates: &'a [Candidate],
    /// The last resolution of the same unit and category within the repeat window.
    pub last_resolution: Option<DateTime<Utc>>,
    /// The open incident of the building and category.
    pub open_incident: Option<&'a TicketFacts>,
    /// Open reports (not incidents) of the building and category within the incident
    /// window, the ticket itself among them; current (locked) when they form an incident.
    pub recent_reports: &'a [Ticket],
}

/// Someone must hear of this now (the department's supervisor).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    RepeatFault { message: String },
    NoOneOnDuty { message: String },
}

/// A group incident to open, and the other reports it links.
#[derive(Debug, Clone)]
pub struct IncidentToOpen {
    pub incident: NewIncident,
    pub units: usize,
    /// Ids of the other recent reports (the ticket itself is routed into it).
    pub link: Vec<String>,
}

/// Everything dispatch decided for one ticket.
#[derive(Debug, Clone)]
pub struct Decision {
    pub route: Route,
    pub alerts: Vec<Alert>,
    pub open_incident: Option<IncidentToOpen>,
}

/// Decides where a ticket waiting for routing goes. `department` is from
/// [`department_for`]; `new_incident_id` names the incident if one opens.
pub fn decide(
    ticket: &TicketFacts,
    department: Department,
    around: &Surroundings<'_>,
    policy: &Policy,
    new_incident_id: &str,
    now: DateTime<Utc>,
) -> Decision {
    let mut notes = vec![format!("routed to {department}")];
    let mut alerts = Vec::new();
    let grouped = looks_for_groups(ticket);

    let repeat = match around.last_resolution {
        Some(resolved_at) if grouped => {
            let raised = ticket.priority.raised();
            notes.push(format!(
                "repeat fault (same unit and category resolved {}); priority {} -> {raised}",
                resolved_at.format("%Y-%m-%d %H:%M"),
                ticket.priority
            ));
            alerts.push(Alert::RepeatFault {
                message: format!(
                    "repeat {} fault in {}",
                    ticket.category,
                    ticket.unit_label.as_deref().unwrap_or_default()
                ),
            });
            // The clocks of a raised ticket run from when it was reported.
            let deadlines = policy.deadlines(raised, ticket.kind, &ticket.property_id, ticket.times.created_at);
            Some(Repeat { priority: raised, deadlines })
        }
        _ => None,
    };

    let mut open_incident = None;
    let (incident_id, assignee_id) = match around.open_incident {
        Some(incident) if grouped => (Some(incident.id.clone()), incident.assignee_id.clone()),
        _ if grouped && forms_incident(around.recent_reports, policy) => {
            let assignee_id = choose_assignee(around.candidates).map(|c| c.staff_id.clone());
            let opened = incident_to_open(
                ticket,
                department,
                around.recent_reports,
                assignee_id.clone(),
                policy,
                new_incident_id,
                now,
            );
            open_incident = Some(opened);
            (Some(new_incident_id.to_owned()), assignee_id)
        }
        _ => (None, choose_assignee(around.candidates).map(|c| c.staff_id.clone())),
    };
    if let Some(id) = &incident_id {
        notes.push(format!("linked to incident {id}"));
    }
    match &assignee_id {
        Some(id) => notes.push(format!("assigned to {id}")),
        None => {
            notes.push(format!("nobody on duty: waiting in the {department} pool"));
            alerts.push(Alert::NoOneOnDuty {
                message: format!("no {department} staff on duty; ticket waits in the pool"),
            });
        }
    }
    let route = Route { department, assignee_id, repeat, incident_id, note: notes.join("; ") };
    Decision { route, alerts, open_incident }
}

fn incident_to_open(
    report: &TicketFacts,
    department: Department,
    reports: &[Ticket],
    assignee_id: Option<String>,
    policy: &Policy,
    id: &str,
    now: DateTime<Utc>,
) -> IncidentToOpen {
    let units = distinct_units(reports);
    let priority = incident_priority(reports.iter().map(|r| r.priority));
    let category_name =
        policy.categories.get(report.category.as_str()).map_or_else(|| report.category.to_string(), |c| c.name.clone());
    let building = report.unit_label.as_deref().and_then(|label| label.split('-').next()).unwrap_or("?");
    let incident = NewIncident {
        id: id.to_owned(),
        property_id: report.property_id.clone(),
        building_id: report.building_id.clone().unwrap_or_default(),
        location: format!("building {building}"),
        channel: report.channel,
        category: report.category.clone(),
        department,
        priority,
        assignee_id,
        title: format!("Incident: {category_name}, {units} units"),
        description: format!("{} reports from {units} units of one building within the window", reports.len()),
        first_contact_agent_id: report.first_contact_agent_id.clone(),
        deadlines: policy.deadlines(priority, TicketKind::Repair, &report.property_id, now),
    };
    let link = reports.iter().filter(|r| r.id != report.id).map(|r| r.id.clone()).collect();
    IncidentToOpen { incident, units, link }
}

#[cfg(test)]
mod tests;
