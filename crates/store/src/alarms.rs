//! The escalation ladder's timers. The database is their source of truth: the notifier
//! keeps each ticket's pending alarms equal to what the ladder plans for it, under the
//! ticket's alarm key ([`hold_alarms_of`]), so replicas never plan or fire one twice.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect, Set};

use propdesk_domain::ladder::{Alarm, Recipient};
use propdesk_domain::ticket::UnknownCode;

use crate::entity::alarm;
use crate::entity::ticket::UnreadableTicket;
use crate::work::Transaction;
use crate::{Store, StoreError, stored_time};

/// A stored alarm due to fire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueAlarm {
    pub id: i64,
    pub alarm: Alarm,
}

/// Recipients as stored: their codes, comma-separated.
pub(crate) fn recipient_codes(recipients: &[Recipient]) -> String {
    recipients.iter().map(|r| r.code()).collect::<Vec<_>>().join(",")
}

fn due_alarm(row: alarm::Model) -> Result<DueAlarm, StoreError> {
    let unreadable = |e: UnknownCode| UnreadableTicket {
        ticket_id: row.ticket_id.clone(),
        detail: format!("alarm {}: {e}", row.id),
    };
    let recipients = row
        .recipients
        .split(',')
        .filter(|code| !code.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<Recipient>, _>>()
        .map_err(unreadable)?;
    let alarm = Alarm {
        clock: row.clock.parse().map_err(unreadable)?,
        rung: row.rung.parse().map_err(unreadable)?,
        deadline: row.deadline_at,
        fire_at: row.fire_at,
        level: row.level,
        recipients,
    };
    Ok(DueAlarm { id: row.id, alarm })
}

/// What a sync changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AlarmSync {
    pub inserted: usize,
    pub moved: usize,
    pub removed: usize,
    /// The earliest pending alarm of the ticket afterwards.
    pub next_fire_at: Option<DateTime<Utc>>,
}

/// Serialises the writers of these tickets' alarms (notifier replicas re-planning or
/// firing them) until commit, without touching the tickets' rows: dispatch and the desk go
/// on changing a ticket meanwhile, and each of their changes reaches the notifier as an
/// event, after which it re-plans from the ticket as that change left it. Taken before any
/// row lock (the order every transaction keeps: keys, then ticket rows, then people).
pub async fn hold_alarms_of(txn: &Transaction, ticket_ids: &[&str]) -> Result<(), StoreError> {
    crate::work::lock_keys(txn, ticket_ids.iter().map(|id| format!("alarms/{id}"))).await
}

/// Makes the pending alarms of a ticket (its alarms held) exactly `planned` for clock cycle
/// `cycle`: missing ones are added, moved deadlines update their alarms, alarms of met or
/// paused clocks and of earlier cycles are removed. A step that already fired in this
/// cycle is never planned again.
pub async fn sync_alarms(
    txn: &Transaction,
    ticket_id: &str,
    cycle: i32,
    planned: &[Alarm],
) -> Result<AlarmSync, StoreError> {
    let mut synced = sync_alarms_of(txn, &[AlarmPlan { ticket_id, cycle, planned }]).await?;
    Ok(synced.pop().unwrap_or_default())
}

/// What the ladder wants of one ticket's alarms (held).
#[derive(Debug, Clone, Copy)]
pub struct AlarmPlan<'a> {
    pub ticket_id: &'a str,
    pub cycle: i32,
    pub planned: &'a [Alarm],
}

/// [`sync_alarms`] for several tickets at once, one outcome per plan, in order: one read,
/// one insert and one delete for them all (a moved deadline is still one update each,
/// and rare), so a busy notifier's batch costs a few statements, not a few per ticket.
pub async fn sync_alarms_of(txn: &Transaction, plans: &[AlarmPlan<'_>]) -> Result<Vec<AlarmSync>, StoreError> {
    if plans.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = plans.iter().map(|p| p.ticket_id).collect();
    let mut existing: HashMap<String, Vec<alarm::Model>> = HashMap::new();
    for row in alarm::Entity::find().filter(alarm::Column::TicketId.is_in(ids)).all(txn).await? {
        existing.entry(row.ticket_id.clone()).or_default().push(row);
    }
    let mut outcomes = Vec::with_capacity(plans.len());
    let (mut fresh, mut stale) = (Vec::new(), Vec::new());
    for plan in plans {
        let changes = diff(plan, existing.remove(plan.ticket_id).unwrap_or_default());
        outcomes.push(AlarmSync {
            inserted: changes.fresh.len(),
            moved: changes.moved.len(),
            removed: changes.stale.len(),
            next_fire_at: changes.next_fire_at,
        });
        for row in changes.moved {
            row.update(txn).await?;
        }
        fresh.extend(changes.fresh);
        stale.extend(changes.stale);
    }
    if !fresh.is_empty() {
        alarm::Entity::insert_many(fresh).exec_without_returning(txn).await.map_err(StoreError::from_write)?;
    }
    if !stale.is_empty() {
        alarm::Entity::delete_many().filter(alarm::Column::Id.is_in(stale)).exec(txn).await?;
    }
    Ok(outcomes)
}

/// How one ticket's stored alarms become its plan.
struct AlarmChanges {
    fresh: Vec<alarm::ActiveModel>,
    moved: Vec<alarm::ActiveModel>,
    stale: Vec<i64>,
    next_fire_at: Option<DateTime<Utc>>,
}

fn diff(plan: &AlarmPlan<'_>, existing: Vec<alarm::Model>) -> AlarmChanges {
    let mut by_step: HashMap<(String, String), alarm::Model> = HashMap::new();
    let mut changes = AlarmChanges { fresh: Vec::new(), moved: Vec::new(), stale: Vec::new(), next_fire_at: None };
    for row in existing {
        if row.cycle == plan.cycle {
            by_step.insert((row.clock.clone(), row.rung.clone()), row);
        } else if row.pending {
            changes.stale.push(row.id);
        }
    }
    let mut wanted = std::collections::HashSet::new();
    for step in plan.planned {
        let key = (step.clock.code().to_owned(), step.rung.code().to_owned());
        let (fire_at, deadline_at) = (stored_time(step.fire_at), stored_time(step.deadline));
        match by_step.get(&key) {
            Some(row) if !row.pending => {}
            Some(row) => {
                if row.fire_at != fire_at || row.deadline_at != deadline_at || row.level != step.level {
                    let mut active = row.clone().into_active_model();
                    active.fire_at = Set(fire_at);
                    active.deadline_at = Set(deadline_at);
                    active.level = Set(step.level);
                    active.recipients = Set(recipient_codes(&step.recipients));
                    changes.moved.push(active);
                }
                changes.next_fire_at = earliest(changes.next_fire_at, fire_at);
            }
            None => {
                changes.fresh.push(alarm::ActiveModel {
                    ticket_id: Set(plan.ticket_id.to_owned()),
                    cycle: Set(plan.cycle),
                    clock: Set(key.0.clone()),
                    rung: Set(key.1.clone()),
                    deadline_at: Set(deadline_at),
                    fire_at: Set(fire_at),
                    level: Set(step.level),
                    recipients: Set(recipient_codes(&step.recipients)),
                    pending: Set(true),
                    fired_at: Set(None),
                    ..Default::default()
                });
                changes.next_fire_at = earliest(changes.next_fire_at, fire_at);
            }
        }
        wanted.insert(key);
    }
    changes
        .stale
        .extend(by_step.into_iter().filter(|(key, row)| row.pending && !wanted.contains(key)).map(|(_, row)| row.id));
    changes
}

fn earliest(current: Option<DateTime<Utc>>, at: DateTime<Utc>) -> Option<DateTime<Utc>> {
    Some(current.map_or(at, |c| c.min(at)))
}

/// The pending alarms of a (locked) ticket due at `now`, in firing order.
pub async fn due_alarms_of(
    txn: &Transaction,
    ticket_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<DueAlarm>, StoreError> {
    alarm::Entity::find()
        .filter(alarm::Column::TicketId.eq(ticket_id))
        .filter(alarm::Column::Pending.eq(true))
        .filter(alarm::Column::FireAt.lte(now))
        .order_by_asc(alarm::Column::FireAt)
        .order_by_asc(alarm::Column::Id)
        .all(txn)
        .await?
        .into_iter()
        .map(due_alarm)
        .collect()
}

pub async fn mark_fired(txn: &Transaction, alarm_ids: &[i64], now: DateTime<Utc>) -> Result<(), StoreError> {
    alarm::Entity::update_many()
        .col_expr(alarm::Column::Pending, Expr::value(false))
        .col_expr(alarm::Column::FiredAt, Expr::value(now))
        .filter(alarm::Column::Id.is_in(alarm_ids.iter().copied()))
        .exec(txn)
        .await?;
    Ok(())
}

impl Store {
    /// Tickets with an alarm due at `now`, most overdue first.
    pub async fn tickets_with_due_alarms(&self, now: DateTime<Utc>, limit: u64) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String, DateTime<Utc>)> = alarm::Entity::find()
            .select_only()
            .column(alarm::Column::TicketId)
            .column_as(alarm::Column::FireAt.min(), "first")
            .filter(alarm::Column::Pending.eq(true))
            .filter(alarm::Column::FireAt.lte(now))
            .group_by(alarm::Column::TicketId)
            .order_by_asc(alarm::Column::FireAt.min())
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await?;
        Ok(rows.into_iter().map(|(id, _)| id).collect())
    }

    /// When the next pending alarm fires, if any.
    pub async fn next_alarm_at(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let next: Option<DateTime<Utc>> = alarm::Entity::find()
            .select_only()
            .column(alarm::Column::FireAt)
            .filter(alarm::Column::Pending.eq(true))
            .order_by_asc(alarm::Column::FireAt)
            .limit(1)
            .into_tuple()
            .one(&self.db)
            .await?;
        Ok(next)
    }

    /// Number of pending alarms (a gauge).
    pub async fn pending_alarms(&self) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(alarm::Entity::find().filter(alarm::Column::Pending.eq(true)).count(&self.db).await?)
    }

    /// Pending alarms already due at `now`: the backlog the scanners have not fired yet.
    pub async fn due_alarms(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        use sea_orm::PaginatorTrait;
        Ok(alarm::Entity::find()
            .filter(alarm::Column::Pending.eq(true))
            .filter(alarm::Column::FireAt.lte(now))
            .count(&self.db)
            .await?)
    }

    /// Every alarm of a ticket, in firing order (for tests and diagnostics).
    pub async fn alarms_of(&self, ticket_id: &str) -> Result<Vec<alarm::Model>, StoreError> {
        Ok(alarm::Entity::find()
            .filter(alarm::Column::TicketId.eq(ticket_id))
            .order_by_asc(alarm::Column::FireAt)
            .order_by_asc(alarm::Column::Id)
            .all(&self.db)
            .await?)
    }
}
