//! What residents are told, through the resident gateways (webhook receivers of the
//! `resident` role): notices nobody writes by hand (a missed deadline and when to expect
//! the work now; an outage's progress, to every reporter linked to it) and the replies
//! staff send. The words come from the property's standard replies, in the property's
//! local time, with any interim measure; the phone goes only to gateways entitled to it.

use chrono::{DateTime, Utc};
use propdesk_domain::Ticket;
use propdesk_domain::follow_up::ReplyMethod;
use propdesk_domain::ladder::Recipient;
use propdesk_domain::replies::{DEFAULT_LANGUAGE, Fill, Notice, StandardReply, StandardReplyRef, for_language};
use propdesk_store::replies::replies_by_code;
use propdesk_store::work::{self, Transaction};
use serde_json::json;

use crate::notify::{Addressee, Message, Notifications, ResidentAddress, notify};
use crate::{Notifier, NotifierError};

/// A message for a ticket's reporter.
pub(crate) struct ToResident<'a> {
    /// E.g. "resident.breach".
    pub subject: &'a str,
    pub text: String,
    pub method: ReplyMethod,
    /// The standard reply the words came from.
    pub source: Option<StandardReplyRef>,
}

/// What every notice of one kind at one property shares, read once whether one resident
/// is told or every reporter of an outage: the property's name and the library's replies
/// for the notice (every language).
pub(crate) struct NoticeSource {
    notice: Notice,
    property_name: String,
    replies: Vec<StandardReply>,
    utc_offset_minutes: i32,
}

impl NoticeSource {
    pub(crate) async fn load(
        notifier: &Notifier,
        txn: &Transaction,
        property_id: &str,
        notice: Notice,
    ) -> Result<NoticeSource, NotifierError> {
        Ok(NoticeSource {
            notice,
            property_name: work::property_name(txn, property_id).await?,
            replies: replies_by_code(txn, property_id, notice.code()).await?,
            utc_offset_minutes: notifier.policy.hours_for(property_id).utc_offset_minutes,
        })
    }

    /// The words for ticket `t`, in its resident's language: the library's reply or the
    /// built-in text, filled from the ticket (`given` standing in where it says).
    pub(crate) async fn words(
        &self,
        txn: &Transaction,
        t: &Ticket,
        given: Given<'_>,
    ) -> Result<(String, Option<StandardReplyRef>), NotifierError> {
        let language = match &t.resident_id {
            Some(id) => work::resident_language(txn, id).await?,
            None => None,
        };
        let language = language.as_deref().unwrap_or(DEFAULT_LANGUAGE);
        let mut fill = Fill::of_ticket(t, &self.property_name, self.utc_offset_minutes);
        fill.expected = given.expected.or(fill.expected);
        fill.interim_measure = fill.interim_measure.or(given.interim_measure);
        let reply = for_language(&self.replies, language);
        let (mut text, source) = self.notice.words(reply, &fill, language);
        if let Some(reason) = given.reason {
            text.push_str(&Notice::because(language, reason));
        }
        if let Some(result) = given.result {
            text.push_str(&Notice::result(language, result));
        }
        Ok((text, source))
    }
}

/// The words of `notice` for the one ticket `t` (see [`NoticeSource::words`]).
pub(crate) async fn notice_words(
    notifier: &Notifier,
    txn: &Transaction,
    t: &Ticket,
    notice: Notice,
    given: Given<'_>,
) -> Result<(String, Option<StandardReplyRef>), NotifierError> {
    NoticeSource::load(notifier, txn, &t.property_id, notice).await?.words(txn, t, given).await
}

/// What a notice says beyond the ticket's own facts.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Given<'a> {
    /// When to expect it, instead of the ticket's promise or deadline.
    pub expected: Option<DateTime<Utc>>,
    /// An interim measure, when the ticket has none of its own (its incident's).
    pub interim_measure: Option<&'a str>,
    /// Why, added to the words.
    pub reason: Option<&'a str>,
    /// What an outside party answered, added to the words.
    pub result: Option<&'a str>,
}

/// Tells the reporter of `t`, unless nothing identifies them (an anonymous report).
pub(crate) fn tell(
    notifier: &Notifier,
    told: &mut Notifications,
    t: &Ticket,
    message: ToResident<'_>,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    let phone = t.reporter.phone.trim();
    if t.resident_id.is_none() && phone.is_empty() {
        return Ok(());
    }
    let source = message.source.as_ref();
    let message = Message {
        subject: message.subject,
        ticket_id: Some(&t.id),
        property_id: &t.property_id,
        text: message.text,
        occurred_at: now,
        details: json!({
            "standard_reply_id": source.map(|s| s.id.as_str()),
            "standard_reply_version": source.map(|s| s.version),
        }),
        resident: Some(ResidentAddress {
            resident_id: t.resident_id.as_deref(),
            channel: message.method.code(),
            unit_id: t.unit_id.as_deref(),
            phone,
        }),
    };
    let resident = Addressee { role: Recipient::Resident, staff_id: None };
    notify(told, &notifier.settings.webhooks, &[resident], &message, now)
}

/// An outage's progress, told to the reporter of every report linked to the incident.
pub(crate) async fn tell_incident_reporters(
    notifier: &Notifier,
    txn: &Transaction,
    told: &mut Notifications,
    incident: &Ticket,
    notice: Notice,
    now: DateTime<Utc>,
) -> Result<(), NotifierError> {
    let subject = format!("resident.{}", notice.code().trim_start_matches("notice."));
    let source = NoticeSource::load(notifier, txn, &incident.property_id, notice).await?;
    let given = Given { interim_measure: incident.interim_measure.as_deref(), ..Given::default() };
    for report in work::reports_of(txn, &incident.id).await? {
        let (text, source) = source.words(txn, &report, given).await?;
        let method = ReplyMethod::for_channel(report.channel);
        tell(notifier, told, &report, ToResident { subject: &subject, text, method, source }, now)?;
    }
    Ok(())
}
