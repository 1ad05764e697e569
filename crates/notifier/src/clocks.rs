//! A ticket seen through the ladder: which alarms it should have now.

use propdesk_domain::Policy;
use propdesk_domain::Ticket;
use propdesk_domain::ladder::{self, Alarm, ClockFacts, Progress, Promise};

/// The alarms the ladder plans for `t` as it stands.
pub fn planned_alarms(policy: &Policy, t: &Ticket) -> Vec<Alarm> {
    let waiting = t.case.as_ref().and_then(|c| c.waiting.as_ref());
    let progress = Progress {
        state: t.state(),
        accepted: t.times.accepted_at.is_some(),
        on_site: t.times.on_site_at.is_some(),
        linked_to_incident: t.is_linked_report(),
        is_incident: t.is_incident(),
        deadlines: t.deadlines,
        promised_reply_at: t.promised_reply_at,
        replied: t.times.replied_at.is_some(),
        review_by: waiting.map(|w| w.review_by),
    };
    let promise = ladder::running_promise(&progress).map(|due| Promise::new(due, t.times.clocks_from));
    let review = ladder::running_review(&progress).zip(waiting).map(|(due, w)| Promise::new(due, w.since));
    let running = ladder::running(&progress);
    let facts = ClockFacts { priority: t.priority, is_incident: t.is_incident(), running, promise, review };
    ladder::plan(&policy.sla, &policy.escalation, policy.hours_for(&t.property_id), &facts)
}
