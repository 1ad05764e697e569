//! The escalation ladder: which alarms a running clock sets, when each fires, whom it
//! tells and how far it raises the ticket's escalation level.
//!
//! Overdue work reminds automatically and goes up the chain at once: assignee, supervisor,
//! manager. Defaults: a reminder to the assignee and
//! the first-contact owner at 80 % of the allowance; at the breach the department
//! supervisor (and the manager at once for a P1 or a group incident), with the resident told
//! the expected time; at twice the allowance the property manager. Alarms of working-hours
//! tickets are held until the centre opens.

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::WorkingHours;
use crate::sla::{Deadlines, SlaPolicy};

use crate::ticket::{Priority, TicketState, coded_enum};

coded_enum!(
    /// A deadline the notifier watches.
    Clock, "clock" {
        Acknowledge => "acknowledge",
        OnSite => "on_site",
        Resolve => "resolve",
        FirstReply => "first_reply",
        Callback => "callback",
        /// The reply time an agent promised the resident (a complex request).
        PromisedReply => "promised_reply",
        /// The date the owner reviews a wait on an outside party.
        Review => "review",
    }
);

coded_enum!(
    /// A step of the ladder.
    Rung, "rung" {
        /// Before the deadline: the people doing the work are reminded.
        Reminder => "reminder",
        /// The deadline passed unmet.
        Breach => "breach",
        /// Twice the allowance passed unmet (with the defaults).
        Overdue => "overdue",
    }
);

coded_enum!(
    /// Who hears of an alarm.
    Recipient, "recipient" {
        Assignee => "assignee",
        FirstContact => "first_contact",
        Supervisor => "supervisor",
        Manager => "manager",
        /// The resident, in the channel they used (客户等待管理).
        Resident => "resident",
    }
);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationPolicy {
    /// The reminder fires when this share of the allowance has passed (1 to 99).
    pub reminder_percent: u32,
    /// The manager steps in when this share has passed (over 100).
    pub manager_percent: u32,
    /// A missed P1 deadline goes to the manager at the breach, not only at `manager_percent`.
    pub manager_at_breach_for_p1: bool,
    /// Likewise for group incidents.
    pub manager_at_breach_for_incidents: bool,
}

impl Default for EscalationPolicy {
    fn default() -> Self {
        EscalationPolicy {
            reminder_percent: 80,
            manager_percent: 200,
            manager_at_breach_for_p1: true,
            manager_at_breach_for_incidents: true,
        }
    }
}

impl EscalationPolicy {
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=99).contains(&self.reminder_percent) {
            return Err("reminder_percent must be between 1 and 99".to_owned());
        }
        if self.manager_percent <= 100 {
            return Err("manager_percent must be over 100".to_owned());
        }
        Ok(())
    }
}

/// One alarm a clock sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alarm {
    pub clock: Clock,
    pub rung: Rung,
    /// The deadline this alarm is about.
    pub deadline: DateTime<Utc>,
    /// When it fires.
    pub fire_at: DateTime<Utc>,
    /// The ticket's escalation level once it fired (0 none, 1 supervisor, 2 manager); a
    /// level is never lowered.
    pub level: i32,
    pub recipients: Vec<Recipient>,
}

/// What the ladder needs to know of a ticket.
#[derive(Debug, Clone, Copy)]
pub struct ClockFacts {
    pub priority: Priority,
    pub is_incident: bool,
    /// The deadlines still unmet while the clocks run (met or paused ones left out).
    pub running: Deadlines,
    /// The reply promised to the resident, while it is owed.
    pub promise: Option<Promise>,
    /// The review date of a wait on an outside party, while it waits.
    pub review: Option<Promise>,
}

/// A time set by hand (a reply promised to the resident, a review date): its own
/// allowance, from when it was set or the ticket's clocks started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Promise {
    pub due: DateTime<Utc>,
    pub allowance_secs: i64,
}

impl Promise {
    /// The promise of `due`, counted from `from` (at least a second).
    pub fn new(due: DateTime<Utc>, from: DateTime<Utc>) -> Promise {
        Promise { due, allowance_secs: (due - from).num_seconds().max(1) }
    }
}

/// The allowance of a clock at a priority, in seconds (`None`: the clock does not apply).
pub fn allowance_secs(sla: &SlaPolicy, priority: Priority, clock: Clock) -> Option<i64> {
    let level = sla.level(priority);
    match clock {
        Clock::Acknowledge => Some(level.acknowledge_secs),
        Clock::OnSite => level.on_site_secs,
        Clock::Resolve => Some(level.resolve_secs),
        Clock::FirstReply => Some(sla.complaint_first_reply_secs),
        Clock::Callback => Some(sla.callback_secs),
        // Each promise and review date has its own (see `Promise`).
        Clock::PromisedReply | Clock::Review => None,
    }
}

/// Where a ticket stands, as far as its clocks care.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub state: TicketState,
    pub accepted: bool,
    pub on_site: bool,
    /// A report linked to a group incident: the incident carries the work clocks.
    pub linked_to_incident: bool,
    /// A group incident: its reports carry the callbacks (it has no resident of its own).
    pub is_incident: bool,
    pub deadlines: Deadlines,
    pub promised_reply_at: Option<DateTime<Utc>>,
    /// A reply was sent since the promise was given.
    pub replied: bool,
    /// The review date of a wait on an outside party, while it waits.
    pub review_by: Option<DateTime<Utc>>,
}

/// The review date still owed: while the ticket waits (on hold) on an outside party.
pub fn running_review(progress: &Progress) -> Option<DateTime<Utc>> {
    progress.review_by.filter(|_| progress.state == TicketState::OnHold)
}

/// The promised reply still owed: while the ticket is open (and not on hold), until a
/// reply is sent.
pub fn running_promise(progress: &Progress) -> Option<DateTime<Utc>> {
    let owed = progress.state.is_open() && progress.state != TicketState::OnHold && !progress.replied;
    progress.promised_reply_at.filter(|_| owed)
}

/// The deadlines still running: met clocks are cleared, and nothing runs on hold (the
/// clocks are paused; resuming moves them) or once closed or cancelled. A complaint's first
/// reply is met when the department accepts it; the callback runs while resolved.
pub fn running(progress: &Progress) -> Deadlines {
    let d = progress.deadlines;
    let state = progress.state;
    if state == TicketState::Resolved {
        let callback_by = if progress.is_incident { None } else { d.callback_by };
        return Deadlines { callback_by, ..Deadlines::default() };
    }
    if !state.is_open() || state == TicketState::OnHold || progress.linked_to_incident {
        return Deadlines::default();
    }
    let unless = |met: bool, at: Option<DateTime<Utc>>| if met { None } else { at };
    Deadlines {
        acknowledge_by: unless(progress.accepted, d.acknowledge_by),
        on_site_by: unless(progress.on_site, d.on_site_by),
        resolve_by: d.resolve_by,
        first_reply_by: unless(progress.accepted, d.first_reply_by),
        callback_by: None,
    }
}

/// The alarms of every running clock of a ticket, in firing order.
pub fn plan(sla: &SlaPolicy, ladder: &EscalationPolicy, hours: &WorkingHours, ticket: &ClockFacts) -> Vec<Alarm> {
    let level = sla.level(ticket.priority);
    let r = ticket.running;
    let clocks = [
        (Clock::Acknowledge, r.acknowledge_by),
        (Clock::OnSite, r.on_site_by),
        (Clock::Resolve, r.resolve_by),
        (Clock::FirstReply, r.first_reply_by),
        (Clock::Callback, r.callback_by),
    ]
    .map(|(clock, deadline)| (clock, deadline, allowance_secs(sla, ticket.priority, clock)))
    .into_iter()
    .chain(ticket.promise.map(|p| (Clock::PromisedReply, Some(p.due), Some(p.allowance_secs))))
    .chain(ticket.review.map(|p| (Clock::Review, Some(p.due), Some(p.allowance_secs))));
    // Working-hours tickets are not chased outside working hours; callbacks never are
    // (they are made by the desk, in its hours). A promise is a time the resident was
    // given: it runs on the wall clock.
    let set_by_hand = |clock: Clock| matches!(clock, Clock::PromisedReply | Clock::Review);
    let held = |clock: Clock| (level.working_hours_only && !set_by_hand(clock)) || clock == Clock::Callback;
    // The desk's own commitments: its agent is reminded, the resident is not told again.
    let desk = |clock: Clock| matches!(clock, Clock::Callback | Clock::PromisedReply | Clock::Review);
    let manager_at_breach = (ladder.manager_at_breach_for_p1 && ticket.priority == Priority::P1)
        || (ladder.manager_at_breach_for_incidents && ticket.is_incident);
    let mut alarms = Vec::new();
    for (clock, deadline, allowance) in clocks {
        let (Some(deadline), Some(allowance)) = (deadline, allowance) else { continue };
        // Shares in milliseconds, so seconds-long test allowances keep their proportions.
        let share =
            |percent: u32| TimeDelta::milliseconds(allowance.saturating_mul(10).saturating_mul(i64::from(percent)));
        let allowance = TimeDelta::seconds(allowance);
        // Shares of a working-hours allowance are counted in working time.
        let working = level.working_hours_only && !set_by_hand(clock);
        let before = |span: TimeDelta| if working { hours.sub_working(deadline, span) } else { deadline - span };
        let after = |span: TimeDelta| if working { hours.add_working(deadline, span) } else { deadline + span };
        let when = |at: DateTime<Utc>| if held(clock) { hours.next_opening(at) } else { at };
        let owners = if desk(clock) {
            vec![Recipient::FirstContact]
        } else {
            vec![Recipient::Assignee, Recipient::FirstContact]
        };
        let mut at_breach = vec![Recipient::Supervisor];
        if manager_at_breach && !desk(clock) {
            at_breach.push(Recipient::Manager);
        }
        at_breach.extend(owners.iter().copied());
        if !desk(clock) {
            at_breach.push(Recipient::Resident);
        }
        alarms.push(Alarm {
            clock,
            rung: Rung::Reminder,
            deadline,
            fire_at: when(before(allowance - share(ladder.reminder_percent))),
            level: 0,
            recipients: owners,
        });
        alarms.push(Alarm {
            clock,
            rung: Rung::Breach,
            deadline,
            fire_at: when(deadline),
            level: 1,
            recipients: at_breach,
        });
        alarms.push(Alarm {
            clock,
            rung: Rung::Overdue,
            deadline,
            fire_at: when(after(share(ladder.manager_percent) - allowance)),
            level: 2,
            recipients: vec![Recipient::Manager, Recipient::Supervisor, Recipient::FirstContact],
        });
    }
    alarms.sort_by_key(|a| a.fire_at);
    alarms
}

/// Who hears of an escalation to `level` that staff asked for: the people the ladder's
/// breach (1) and overdue (2) steps tell, but not the resident, who is told of missed
/// deadlines only.
pub fn escalation_recipients(level: i32) -> Vec<Recipient> {
    if level >= 2 {
        vec![Recipient::Manager, Recipient::Supervisor, Recipient::FirstContact]
    } else {
        vec![Recipient::Supervisor, Recipient::Assignee, Recipient::FirstContact]
    }
}

/// The time the resident is told to expect after a breach: the point where the manager
/// takes over, which is the latest the centre commits to.
pub fn expected_after_breach(
    ladder: &EscalationPolicy,
    alarm_deadline: DateTime<Utc>,
    allowance_secs: i64,
) -> DateTime<Utc> {
    let extra = i64::from(ladder.manager_percent.saturating_sub(100));
    alarm_deadline + TimeDelta::seconds(allowance_secs * extra / 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 23, h, m, s).unwrap()
    }

    fn facts(priority: Priority, running: Deadlines) -> ClockFacts {
        ClockFacts { priority, is_incident: false, running, promise: None, review: None }
    }

    #[test]
    fn a_p1_on_site_clock_reminds_then_escalates_to_supervisor_and_manager_then_manager_again() {
        let sla = SlaPolicy::default();
        // Logged 03:00, on site by 03:15 (15 minutes).
        let running = Deadlines { on_site_by: Some(at(3, 15, 0)), ..Deadlines::default() };
        let alarms = plan(&sla, &EscalationPolicy::default(), &WorkingHours::default(), &facts(Priority::P1, running));
        let summary: Vec<_> = alarms.iter().map(|a| (a.rung, a.fire_at, a.level)).collect();
        assert_eq!(
            summary,
            vec![(Rung::Reminder, at(3, 12, 0), 0), (Rung::Breach, at(3, 15, 0), 1), (Rung::Overdue, at(3, 30, 0), 2)]
        );
        assert_eq!(
            alarms[1].recipients,
            vec![
                Recipient::Supervisor,
                Recipient::Manager,
                Recipient::Assignee,
                Recipient::FirstContact,
                Recipient::Resident
            ]
        );
        assert_eq!(alarms[0].recipients, vec![Recipient::Assignee, Recipient::FirstContact]);
        assert_eq!(alarms[2].recipients, vec![Recipient::Manager, Recipient::Supervisor, Recipient::FirstContact]);
    }

    #[test]
    fn a_p3_breach_goes_to_the_supervisor_only_and_alarms_wait_for_working_hours() {
        let sla = SlaPolicy::default();
        let hours = WorkingHours::default();
        // Acknowledge deadline 09:00 China time (01:00 UTC) after a ticket logged at night:
        // 24 working minutes before it is 08:36, and twice the allowance is 11:00.
        let running = Deadlines { acknowledge_by: Some(at(1, 0, 0)), ..Deadlines::default() };
        let alarms = plan(&sla, &EscalationPolicy::default(), &hours, &facts(Priority::P3, running));
        assert_eq!(alarms[0].rung, Rung::Reminder);
        assert_eq!(alarms[0].fire_at, at(0, 36, 0));
        assert_eq!(
            alarms[1].recipients,
            vec![Recipient::Supervisor, Recipient::Assignee, Recipient::FirstContact, Recipient::Resident]
        );
        assert_eq!(alarms[2].fire_at, at(3, 0, 0));
        // A deadline at 08:40 on Monday: 10 working minutes that morning and 14 before
        // Saturday's closing (Sunday is not worked) put the reminder at 17:16 on Saturday.
        let running = Deadlines { acknowledge_by: Some(at(0, 40, 0)), ..Deadlines::default() };
        let alarms = plan(&sla, &EscalationPolicy::default(), &hours, &facts(Priority::P3, running));
        assert_eq!(alarms[0].fire_at, at(9, 16, 0) - TimeDelta::days(2));
    }

    #[test]
    fn met_or_paused_clocks_set_no_alarm_and_a_callback_goes_to_its_owner_then_the_supervisor() {
        let sla = SlaPolicy::default();
        let ladder = EscalationPolicy::default();
        assert!(plan(&sla, &ladder, &WorkingHours::always(), &facts(Priority::P2, Deadlines::default())).is_empty());
        let running = Deadlines { callback_by: Some(at(12, 0, 0)), ..Deadlines::default() };
        let alarms = plan(&sla, &ladder, &WorkingHours::always(), &facts(Priority::P1, running));
        assert_eq!(alarms[0].recipients, vec![Recipient::FirstContact]);
        assert_eq!(alarms[1].recipients, vec![Recipient::Supervisor, Recipient::FirstContact]);
    }

    #[test]
    fn a_callback_waits_for_the_desks_hours_even_when_the_work_ran_round_the_clock() {
        let sla = SlaPolicy::default();
        let ladder = EscalationPolicy::default();
        let hours = WorkingHours::default();
        // 12:00 UTC is 20:00 in the centre (UTC+8): closed until 08:30 tomorrow (00:30 UTC).
        let opening = at(0, 30, 0) + TimeDelta::days(1);
        let callback = Deadlines { callback_by: Some(at(12, 0, 0)), ..Deadlines::default() };
        let alarms = plan(&sla, &ladder, &hours, &facts(Priority::P1, callback));
        assert!(alarms.iter().all(|a| hours.is_open(a.fire_at)), "{alarms:?}");
        assert_eq!(alarms.iter().find(|a| a.rung == Rung::Breach).map(|a| a.fire_at), Some(opening));
        // The same deadline on a P1 work clock fires when it falls, at night.
        let on_site = Deadlines { on_site_by: Some(at(12, 0, 0)), ..Deadlines::default() };
        let alarms = plan(&sla, &ladder, &hours, &facts(Priority::P1, on_site));
        assert_eq!(alarms.iter().find(|a| a.rung == Rung::Breach).map(|a| a.fire_at), Some(at(12, 0, 0)));
    }

    #[test]
    fn met_clocks_are_cleared_and_a_hold_pauses_everything() {
        let all = Deadlines {
            acknowledge_by: Some(at(1, 0, 0)),
            on_site_by: Some(at(2, 0, 0)),
            resolve_by: Some(at(3, 0, 0)),
            first_reply_by: Some(at(4, 0, 0)),
            callback_by: Some(at(5, 0, 0)),
        };
        let progress = |state, accepted, on_site| Progress {
            state,
            accepted,
            on_site,
            linked_to_incident: false,
            is_incident: false,
            deadlines: all,
            promised_reply_at: Some(at(6, 0, 0)),
            replied: false,
            review_by: Some(at(7, 0, 0)),
        };
        assert_eq!(running_review(&progress(TicketState::OnHold, true, false)), Some(at(7, 0, 0)));
        assert_eq!(running_review(&progress(TicketState::Accepted, true, false)), None, "runs only while waiting");
        assert_eq!(running_promise(&progress(TicketState::Dispatched, false, false)), Some(at(6, 0, 0)));
        assert_eq!(running_promise(&progress(TicketState::OnHold, true, false)), None);
        assert_eq!(running_promise(&progress(TicketState::Resolved, true, true)), None);
        let answered = Progress { replied: true, ..progress(TicketState::Accepted, true, false) };
        assert_eq!(running_promise(&answered), None, "a reply keeps the promise");
        let dispatched = running(&progress(TicketState::Dispatched, false, false));
        assert_eq!((dispatched.acknowledge_by, dispatched.callback_by), (all.acknowledge_by, None));
        let on_site = running(&progress(TicketState::OnSite, true, true));
        assert_eq!(on_site, Deadlines { resolve_by: all.resolve_by, ..Deadlines::default() });
        assert_eq!(running(&progress(TicketState::OnHold, true, false)), Deadlines::default());
        let resolved = running(&progress(TicketState::Resolved, true, true));
        assert_eq!(resolved, Deadlines { callback_by: all.callback_by, ..Deadlines::default() });
        assert_eq!(running(&progress(TicketState::Closed, true, true)), Deadlines::default());
        let linked = Progress { linked_to_incident: true, ..progress(TicketState::Dispatched, false, false) };
        assert_eq!(running(&linked), Deadlines::default());
        let resolved_incident = Progress { is_incident: true, ..progress(TicketState::Resolved, true, true) };
        assert_eq!(running(&resolved_incident), Deadlines::default(), "its reports are called back");
    }

    #[test]
    fn the_resident_is_told_the_managers_deadline() {
        let ladder = EscalationPolicy::default();
        assert_eq!(expected_after_breach(&ladder, at(3, 15, 0), 900), at(3, 30, 0));
    }

    #[test]
    fn bad_percentages_are_refused() {
        let ladder = EscalationPolicy { reminder_percent: 100, ..EscalationPolicy::default() };
        assert!(ladder.validate().is_err());
        let ladder = EscalationPolicy { manager_percent: 100, ..EscalationPolicy::default() };
        assert!(ladder.validate().is_err());
    }

    #[test]
    fn a_promise_reminds_the_desk_and_escalates_on_the_wall_clock_without_telling_the_resident_again() {
        let sla = SlaPolicy::default();
        let hours = WorkingHours::default();
        // Promised for 20:00 China time (12:00 UTC), given at 08:00 UTC: after hours.
        let promise = Promise::new(at(12, 0, 0), at(8, 0, 0));
        assert_eq!(promise.allowance_secs, 4 * 3600);
        let ticket = ClockFacts { promise: Some(promise), ..facts(Priority::P3, Deadlines::default()) };
        let alarms = plan(&sla, &EscalationPolicy::default(), &hours, &ticket);
        let steps: Vec<_> = alarms.iter().map(|a| (a.clock, a.rung, a.fire_at)).collect();
        assert_eq!(
            steps,
            [
                (Clock::PromisedReply, Rung::Reminder, at(11, 12, 0)),
                (Clock::PromisedReply, Rung::Breach, at(12, 0, 0)),
                (Clock::PromisedReply, Rung::Overdue, at(16, 0, 0)),
            ]
        );
        assert_eq!(alarms[0].recipients, [Recipient::FirstContact]);
        assert_eq!(alarms[1].recipients, [Recipient::Supervisor, Recipient::FirstContact]);
    }
}
