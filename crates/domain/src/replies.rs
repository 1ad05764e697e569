//! Standard replies (统一口径): the centre's agreed answers to common questions, so every
//! agent tells a resident the same thing, with placeholders filled from the ticket.
//!
//! A body is text with placeholders in braces, `{unit}`; `{{` and `}}` are literal braces.
//! Rendering is strict: an unknown placeholder is refused when the body is saved, and a
//! missing value is refused when it is rendered, each by name, so a resident never gets a
//! half-filled sentence.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Datelike, TimeDelta, Timelike, Utc};

use crate::aggregate::TicketFacts;
use crate::follow_up::ReplyMethod;
use crate::search::Query;
use crate::ticket::{Department, TicketKind, coded_enum};
use crate::validation::Violations;

/// Longest body, in characters.
pub const MAX_BODY: usize = 4000;
/// Longest code, in characters: letters, digits, `_`, `-` and `.`.
pub const MAX_CODE: usize = 64;
/// Most keywords per reply, and the longest each.
pub const MAX_KEYWORDS: usize = 20;
pub const MAX_KEYWORD: usize = 30;
/// The language of a reply when none is given.
pub const DEFAULT_LANGUAGE: &str = "zh-CN";

coded_enum!(
    /// What a standard reply can fill in.
    Placeholder, "placeholder" {
        /// The unit's label ("2-1203"), or the ticket's location for a common area.
        Unit => "unit",
        /// The ticket's reference.
        TicketNo => "ticket_no",
        /// When the resident can expect it, in the property's local time.
        ExpectedTime => "expected_time",
        /// The department doing the work.
        Department => "department",
        /// The interim measure in place (e.g. the water tanker at gate 2).
        InterimMeasure => "interim_measure",
        /// The property's name.
        Property => "property",
    }
);

/// One piece of a parsed body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Slot(Placeholder),
}

/// A body, parsed: every placeholder known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

/// Why a body cannot be a template.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    #[error("has an unknown placeholder {{{0}}} (known: {known})", known = Placeholder::known())]
    Unknown(String),
    #[error("has a `{{` that is never closed (write `{{{{` for a brace)")]
    Unclosed,
    #[error("has a `}}` that closes nothing (write `}}}}` for a brace)")]
    Unopened,
}

/// Why a standard reply cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unusable {
    #[error("belongs to another property")]
    OtherProperty,
    #[error("is inactive")]
    Inactive,
    /// A stored body that no longer parses (written by a newer release).
    #[error("its body {0}")]
    Body(TemplateError),
    #[error(transparent)]
    Missing(MissingValues),
}

/// Values were missing for these placeholders.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no value for {}", names(.0))]
pub struct MissingValues(pub Vec<Placeholder>);

fn names(placeholders: &[Placeholder]) -> String {
    placeholders.iter().map(|p| format!("{{{}}}", p.code())).collect::<Vec<_>>().join(", ")
}

impl Placeholder {
    /// Every placeholder, as a body writes it.
    fn known() -> String {
        names(Placeholder::ALL)
    }
}

/// The values a rendering fills in; an empty value counts as missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(BTreeMap<Placeholder, String>);

impl Values {
    pub fn new() -> Values {
        Values::default()
    }

    /// Sets `placeholder` (a blank value leaves it unset).
    pub fn set(&mut self, placeholder: Placeholder, value: impl Into<String>) {
        let value = value.into();
        if !value.trim().is_empty() {
            self.0.insert(placeholder, value);
        }
    }

    /// Adds every value of `other` (its values win).
    pub fn extend(&mut self, other: Values) {
        self.0.extend(other.0);
    }
}

impl Template {
    pub fn parse(body: &str) -> Result<Template, TemplateError> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => return Err(TemplateError::Unopened),
                '{' => {
                    let mut name = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => name.push(c),
                            None => return Err(TemplateError::Unclosed),
                        }
                    }
                    let placeholder = name.trim().parse().map_err(|_| TemplateError::Unknown(name))?;
                    if !text.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut text)));
                    }
                    pieces.push(Piece::Slot(placeholder));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The placeholders the body uses, each once, in order of first use.
    pub fn placeholders(&self) -> Vec<Placeholder> {
        let mut used = Vec::new();
        for piece in &self.pieces {
            if let Piece::Slot(p) = piece
                && !used.contains(p)
            {
                used.push(*p);
            }
        }
        used
    }

    /// The text with every placeholder filled, or every one that has no value.
    pub fn render(&self, values: &Values) -> Result<String, MissingValues> {
        let missing: Vec<Placeholder> = self.placeholders().into_iter().filter(|p| !values.0.contains_key(p)).collect();
        if !missing.is_empty() {
            return Err(MissingValues(missing));
        }
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Slot(p) => out.push_str(&values.0[p]),
            }
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    /// The body as written (braces doubled again).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => f.write_str(&text.replace('{', "{{").replace('}', "}}"))?,
                Piece::Slot(p) => write!(f, "{{{}}}", p.code())?,
            }
        }
        Ok(())
    }
}

/// A standard reply at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardReplyRef {
    pub id: String,
    pub version: i64,
}

/// How a resident was answered: the method, and the standard reply the words came from
/// (none: the agent's own words). The words themselves are the event's note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySent {
    pub method: ReplyMethod,
    pub standard: Option<StandardReplyRef>,
}

/// What a standard reply says and whom it is for: everything an edit may change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplyContent {
    pub title: String,
    pub body: String,
    /// The ticket categories it answers; empty: any.
    pub category_codes: Vec<String>,
    /// The kinds of request it answers; empty: any.
    pub kinds: Vec<TicketKind>,
    pub keywords: Vec<String>,
    pub language: String,
    /// Inactive replies are kept but not offered to agents.
    pub active: bool,
}

/// Who wrote a version, when and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    pub by: String,
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// A standard reply at one version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StandardReply {
    pub id: String,
    /// The property whose library holds it; `None`: company-wide.
    pub property_id: Option<String>,
    pub code: String,
    pub content: ReplyContent,
    pub version: i64,
    /// How often it was sent (every version).
    pub use_count: i64,
    pub created_at: DateTime<Utc>,
    pub edit: Edit,
}

impl StandardReply {
    /// Whether agents at `property_id` may use it: the property's own, or company-wide.
    pub fn serves(&self, property_id: &str) -> bool {
        self.property_id.as_deref().is_none_or(|own| own == property_id)
    }

    /// Whether it answers a request of `category` and `kind` (an empty list answers any).
    pub fn answers(&self, category: Option<&str>, kind: Option<TicketKind>) -> bool {
        let content = &self.content;
        let category_ok = category
            .is_none_or(|c| content.category_codes.is_empty() || content.category_codes.iter().any(|own| own == c));
        let kind_ok = kind.is_none_or(|k| content.kinds.is_empty() || content.kinds.contains(&k));
        category_ok && kind_ok
    }

    /// The next version: `content` as `edit` wrote it.
    pub fn edited(&self, content: ReplyContent, edit: Edit) -> StandardReply {
        StandardReply { content, version: self.version + 1, edit, ..self.clone() }
    }

    /// The words to send at `property_id`: the body with `fill`'s values and `given`
    /// (which win), and the version they came from.
    pub fn render_for(
        &self,
        property_id: &str,
        fill: &Fill<'_>,
        given: Values,
    ) -> Result<(String, StandardReplyRef), Unusable> {
        if !self.serves(property_id) {
            return Err(Unusable::OtherProperty);
        }
        if !self.content.active {
            return Err(Unusable::Inactive);
        }
        let template = Template::parse(&self.content.body).map_err(Unusable::Body)?;
        let mut values = fill.values(&self.content.language);
        values.extend(given);
        let text = template.render(&values).map_err(Unusable::Missing)?;
        Ok((text, StandardReplyRef { id: self.id.clone(), version: self.version }))
    }

    /// The text agents find it by: title, keywords and body.
    fn searchable(&self) -> String {
        let content = &self.content;
        format!("{}\n{}\n{}", content.title, content.keywords.join(" "), content.body)
    }
}

/// What an agent looks for in the library.
#[derive(Debug, Clone, Default)]
pub struct ReplySearch {
    pub category: Option<String>,
    pub kind: Option<TicketKind>,
    pub query: Option<Query>,
    pub language: Option<String>,
    pub include_inactive: bool,
}

/// The replies that match `search`, best first: the closest match to the words, then the
/// most used, then by code.
pub fn find<'a>(replies: &'a [StandardReply], search: &ReplySearch) -> Vec<&'a StandardReply> {
    let mut found: Vec<(usize, &StandardReply)> = replies
        .iter()
        .filter(|r| search.include_inactive || r.content.active)
        .filter(|r| search.language.as_deref().is_none_or(|l| r.content.language == l))
        .filter(|r| r.answers(search.category.as_deref(), search.kind))
        .filter_map(|r| match &search.query {
            Some(query) => query.score(&r.searchable()).map(|score| (score, r)),
            None => Some((0, r)),
        })
        .collect();
    found.sort_by(|(a_score, a), (b_score, b)| {
        b_score.cmp(a_score).then(b.use_count.cmp(&a.use_count)).then(a.code.cmp(&b.code)).then(a.id.cmp(&b.id))
    });
    found.into_iter().map(|(_, r)| r).collect()
}

/// The reply of `replies` (one code's, of a property and company-wide) for a resident who
/// reads `language`: in that language before others (then the default one), the
/// property's own before the company-wide one.
pub fn for_language<'a>(replies: &'a [StandardReply], language: &str) -> Option<&'a StandardReply> {
    replies.iter().min_by_key(|r| {
        (r.content.language != language, r.content.language != DEFAULT_LANGUAGE, r.property_id.is_none())
    })
}

/// `text` after its label, Chinese or English.
fn labelled(language: &str, (chinese, english): (&str, &str), text: &str) -> String {
    let label = if language.starts_with("zh") { chinese } else { english };
    format!("{label}{text}")
}

/// A department as residents are told it.
pub fn department_name(department: Department, language: &str) -> &'static str {
    let chinese = language.starts_with("zh");
    match (department, chinese) {
        (Department::Engineering, true) => "工程部",
        (Department::Cleaning, true) => "保洁部",
        (Department::Security, true) => "秩序维护部",
        (Department::CustomerService, true) => "客服中心",
        (Department::Engineering, false) => "the engineering team",
        (Department::Cleaning, false) => "the cleaning team",
        (Department::Security, false) => "the security team",
        (Department::CustomerService, false) => "the service centre",
    }
}

/// A time as residents are told it: the property's local wall time (`utc_offset_minutes`
/// from UTC), "12月6日 14:05" in Chinese, "6 Dec 14:05" otherwise.
pub fn local_time(at: DateTime<Utc>, utc_offset_minutes: i32, language: &str) -> String {
    let local = at.naive_utc() + TimeDelta::minutes(i64::from(utc_offset_minutes));
    if language.starts_with("zh") {
        format!("{}月{}日 {:02}:{:02}", local.month(), local.day(), local.hour(), local.minute())
    } else {
        format!("{} {:02}:{:02}", local.format("%-d %b"), local.hour(), local.minute())
    }
}

/// What a ticket (or a report being logged) fills in by itself.
#[derive(Debug, Clone, Copy)]
pub struct Fill<'a> {
    /// The unit's label, or the location of a common area.
    pub unit: &'a str,
    pub ticket_no: &'a str,
    pub department: Option<Department>,
    /// When the resident can expect it.
    pub expected: Option<DateTime<Utc>>,
    pub property_name: &'a str,
    /// The property's local time minus UTC.
    pub utc_offset_minutes: i32,
    /// What stands in for the service meanwhile, if anything.
    pub interim_measure: Option<&'a str>,
}

impl<'a> Fill<'a> {
    /// A ticket's facts: the expected time is the reply promised, else the resolve
    /// deadline.
    pub fn of_ticket(ticket: &'a TicketFacts, property_name: &'a str, utc_offset_minutes: i32) -> Fill<'a> {
        Fill {
            unit: ticket.unit_label.as_deref().unwrap_or(&ticket.location),
            ticket_no: &ticket.id,
            department: ticket.department,
            expected: ticket.promised_reply_at.or(ticket.deadlines.resolve_by),
            property_name,
            utc_offset_minutes,
            interim_measure: ticket.interim_measure.as_deref(),
        }
    }

    /// The values, in `language` and the property's local time.
    pub fn values(&self, language: &str) -> Values {
        let mut values = Values::new();
        values.set(Placeholder::Unit, self.unit);
        values.set(Placeholder::TicketNo, self.ticket_no);
        if let Some(department) = self.department {
            values.set(Placeholder::Department, department_name(department, language));
        }
        values.set(Placeholder::Property, self.property_name);
        if let Some(at) = self.expected {
            values.set(Placeholder::ExpectedTime, local_time(at, self.utc_offset_minutes, language));
        }
        if let Some(measure) = self.interim_measure {
            values.set(Placeholder::InterimMeasure, measure);
        }
        values
    }
}

coded_enum!(
    /// What residents are told without anyone writing to them: each has a standard reply
    /// code a library may define (the property's first, then the company-wide one) and a
    /// built-in text for when none does.
    Notice, "notice" {
        /// A deadline was missed: when to expect it now (客户等待管理).
        Breach => "notice.breach",
        /// Their report is part of an outage being handled: staff have taken it on.
        IncidentAcknowledged => "notice.incident.acknowledged",
        /// Staff are on site for the outage.
        IncidentOnSite => "notice.incident.on_site",
        /// The outage is resolved.
        IncidentResolved => "notice.incident.resolved",
        /// The reply time promised to them moved (with why, which is added to the words).
        PromiseMoved => "notice.promise_moved",
        /// An outside party the matter was referred to answered (its result is added).
        ReferralResult => "notice.referral_result",
    }
);

impl Notice {
    /// Why the notice was sent, as it is added to its words.
    pub fn because(language: &str, reason: &str) -> String {
        labelled(language, ("原因：", " Why: "), reason)
    }

    /// What came of it, as it is added to its words.
    pub fn result(language: &str, result: &str) -> String {
        labelled(language, ("处理结果：", " Result: "), result)
    }

    /// The built-in text.
    fn default_body(self, language: &str) -> &'static str {
        let chinese = language.starts_with("zh");
        match (self, chinese) {
            (Notice::Breach, true) => {
                "您好，您反映的问题（单号 {ticket_no}）处理时间比承诺的长，我们深表歉意。预计 {expected_time} 前处理完毕。"
            }
            (Notice::IncidentAcknowledged, true) => {
                "您好，{unit} 反映的问题属于一次集中故障，{department}已受理，正在处理。"
            }
            (Notice::IncidentOnSite, true) => "您好，{department}维修人员已到达现场处理 {unit} 反映的故障。",
            (Notice::IncidentResolved, true) => "您好，{unit} 反映的故障已处理完毕。如仍有问题，请随时联系客服中心。",
            (Notice::PromiseMoved, true) => "您好，我们答复您的时间调整为 {expected_time}（单号 {ticket_no}）。",
            (Notice::ReferralResult, true) => {
                "您好，您反映的问题（单号 {ticket_no}）已转交相关部门处理，现将结果告知。"
            }
            (Notice::Breach, false) => {
                "We are sorry: your request {ticket_no} is taking longer than promised. Expect it by {expected_time}."
            }
            (Notice::IncidentAcknowledged, false) => {
                "What you reported at {unit} is part of a wider outage; {department} has taken it on."
            }
            (Notice::IncidentOnSite, false) => "{department} is on site for the outage reported at {unit}.",
            (Notice::IncidentResolved, false) => {
                "The outage reported at {unit} is resolved. Call the service centre if anything is still wrong."
            }
            (Notice::PromiseMoved, false) => "We will now answer you by {expected_time} (request {ticket_no}).",
            (Notice::ReferralResult, false) => "Your request {ticket_no} was referred on; here is what came of it.",
        }
    }

    /// The words of this notice: the library's reply for it when it has an active one that
    /// renders (`reply`), else the built-in text in `language`; the interim measure is added
    /// when the words do not already say it.
    pub fn words(
        self,
        reply: Option<&StandardReply>,
        fill: &Fill<'_>,
        language: &str,
    ) -> (String, Option<StandardReplyRef>) {
        let from_library = reply.filter(|r| r.content.active).and_then(|r| {
            let template = Template::parse(&r.content.body).ok()?;
            let text = template.render(&fill.values(&r.content.language)).ok()?;
            let says_measure = template.placeholders().contains(&Placeholder::InterimMeasure);
            Some((
                text,
                says_measure,
                Some(StandardReplyRef { id: r.id.clone(), version: r.version }),
                r.content.language.clone(),
            ))
        });
        let (mut text, says_measure, source, language) = match from_library {
            Some(found) => found,
            None => {
                let template = Template::parse(self.default_body(language));
                let values = fill.values(language);
                let text = template.ok().and_then(|t| t.render(&values).ok()).unwrap_or_default();
                (text, false, None, language.to_owned())
            }
        };
        if let (Some(measure), false) = (fill.interim_measure, says_measure) {
            if language.starts_with("zh") {
                text.push_str(&format!("临时措施：{measure}。"));
            } else {
                text.push_str(&format!(" Meanwhile: {measure}."));
            }
        }
        (text, source)
    }
}

/// Values given by name (`"interim_measure"`), each a known placeholder; an unknown name
/// is a violation of `field`.
pub fn named_values<'a>(
    v: &mut Violations,
    field: &str,
    given: impl IntoIterator<Item = (&'a String, &'a String)>,
) -> Values {
    let mut values = Values::new();
    for (name, value) in given {
        match name.parse::<Placeholder>() {
            Ok(placeholder) => values.set(placeholder, value.clone()),
            Err(_) => {
                v.add(&format!("{field}[{name}]"), format!("is not a placeholder (known: {})", Placeholder::known()))
            }
        }
    }
    values
}

/// Checks a reply's code: 1 to 64 letters, digits, `_`, `-` or `.`.
pub fn check_code(v: &mut Violations, field: &str, code: &str) {
    if code.is_empty() {
        v.add(field, "is required");
    } else if code.chars().count() > MAX_CODE {
        v.add(field, format!("must be at most {MAX_CODE} characters"));
    } else if !code.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        v.add(field, "may hold only letters, digits, `_`, `-` and `.`");
    }
}

/// Checks a language tag (`zh-CN`, `en`): letters and digits in parts joined by `-`.
pub fn check_language(v: &mut Violations, field: &str, language: &str) {
    let well_formed = !language.is_empty()
        && language.len() <= 16
        && language.split('-').all(|part| !part.is_empty() && part.chars().all(|c| c.is_ascii_alphanumeric()));
    if !well_formed {
        v.add(field, "must be a language tag such as zh-CN or en");
    }
}

/// Checks a body: required, at most [`MAX_BODY`] characters, every placeholder known.
pub fn check_body(v: &mut Violations, field: &str, body: &str) -> Option<Template> {
    v.required_text(field, body, MAX_BODY);
    match Template::parse(body) {
        Ok(template) => Some(template),
        Err(err) => {
            v.add(field, err.to_string());
            None
        }
    }
}

/// Checks keywords: at most [`MAX_KEYWORDS`], each 1 to [`MAX_KEYWORD`] characters.
pub fn check_keywords(v: &mut Violations, field: &str, keywords: &[String]) {
    if keywords.len() > MAX_KEYWORDS {
        v.add(field, format!("at most {MAX_KEYWORDS} keywords"));
    }
    for (index, keyword) in keywords.iter().enumerate() {
        let length = keyword.trim().chars().count();
        if length == 0 || length > MAX_KEYWORD {
            v.add(&format!("{field}[{index}]"), format!("must be 1 to {MAX_KEYWORD} characters"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_braces_kept_literal() {
        let template = Template::parse("您好，{unit} 的报修 {ticket_no} 预计 {expected_time} 处理 {{加急}}").unwrap();
        assert_eq!(template.placeholders(), [Placeholder::Unit, Placeholder::TicketNo, Placeholder::ExpectedTime]);
        let mut values = Values::new();
        values.set(Placeholder::Unit, "2-1203");
        values.set(Placeholder::TicketNo, "T-1");
        values.set(Placeholder::ExpectedTime, "12月6日 14:00");
        assert_eq!(template.render(&values).unwrap(), "您好，2-1203 的报修 T-1 预计 12月6日 14:00 处理 {加急}");
        assert_eq!(template.to_string(), "您好，{unit} 的报修 {ticket_no} 预计 {expected_time} 处理 {{加急}}");
    }

    #[test]
    fn an_unknown_or_unbalanced_placeholder_is_refused_by_name() {
        let err = Template::parse("请于 {deadline} 前缴费").unwrap_err();
        assert_eq!(err, TemplateError::Unknown("deadline".into()));
        assert!(err.to_string().starts_with("has an unknown placeholder {deadline} (known: {unit}, {ticket_no}"));
        assert_eq!(Template::parse("{unit").unwrap_err(), TemplateError::Unclosed);
        assert_eq!(Template::parse("unit}").unwrap_err(), TemplateError::Unopened);
    }

    #[test]
    fn a_missing_value_is_refused_naming_every_one_never_half_filled() {
        let template = Template::parse("{unit}：临时供水在 {interim_measure}，{department} 处理中").unwrap();
        let mut values = Values::new();
        values.set(Placeholder::Unit, "2-1203");
        values.set(Placeholder::InterimMeasure, "  ");
        let err = template.render(&values).unwrap_err();
        assert_eq!(err, MissingValues(vec![Placeholder::InterimMeasure, Placeholder::Department]));
        assert_eq!(err.to_string(), "no value for {interim_measure}, {department}");
    }

    fn reply(code: &str, keywords: &[&str], kinds: &[TicketKind], use_count: i64) -> StandardReply {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        StandardReply {
            id: format!("id-{code}"),
            property_id: Some("p-1".into()),
            code: code.into(),
            content: ReplyContent {
                title: code.into(),
                body: "您好".into(),
                category_codes: vec![],
                kinds: kinds.to_vec(),
                keywords: keywords.iter().map(|k| (*k).to_owned()).collect(),
                language: DEFAULT_LANGUAGE.into(),
                active: true,
            },
            version: 1,
            use_count,
            created_at: at,
            edit: Edit { by: "s".into(), at, reason: "created".into() },
        }
    }

    #[test]
    fn the_library_is_searched_like_tickets_best_match_then_most_used() {
        let library = [
            reply("fee", &["物业费", "缴费"], &[TicketKind::Enquiry], 1),
            reply("fee.late", &["物业费"], &[], 9),
            reply("pets", &["宠物"], &[TicketKind::Enquiry], 0),
        ];
        let query = |text: &str| Query::parse(&mut Violations::new(), "q", text);
        let found = |search: ReplySearch| find(&library, &search).iter().map(|r| r.code.as_str()).collect::<Vec<_>>();
        assert_eq!(found(ReplySearch { query: query("物业费"), ..Default::default() }), ["fee.late", "fee"]);
        assert_eq!(found(ReplySearch { query: query("缴费 物业费"), ..Default::default() }), ["fee"]);
        assert_eq!(found(ReplySearch { kind: Some(TicketKind::Repair), ..Default::default() }), ["fee.late"]);
        assert_eq!(found(ReplySearch::default()), ["fee.late", "fee", "pets"], "most used first");
        let mut retired = library.clone();
        retired[1].content.active = false;
        assert_eq!(find(&retired, &ReplySearch::default()).len(), 2);
    }

    /// Unit 2-1203's ticket t-1, expected at 2026-11-30 00:53:20 UTC (08:53 China time).
    fn fill(interim_measure: Option<&str>) -> Fill<'_> {
        Fill {
            unit: "2-1203",
            ticket_no: "t-1",
            department: Some(Department::Engineering),
            expected: DateTime::from_timestamp(1_796_000_000, 0),
            property_name: "阳光花园",
            utc_offset_minutes: 480,
            interim_measure,
        }
    }

    #[test]
    fn a_ticket_fills_its_unit_number_department_and_local_expected_time() {
        let fill = fill(None);
        let template = Template::parse("{property} {unit} {ticket_no} {department} {expected_time}").unwrap();
        assert_eq!(template.render(&fill.values("zh-CN")).unwrap(), "阳光花园 2-1203 t-1 工程部 11月30日 08:53");
        assert_eq!(
            template.render(&fill.values("en")).unwrap(),
            "阳光花园 2-1203 t-1 the engineering team 30 Nov 08:53"
        );
        let mut given = Values::new();
        given.set(Placeholder::InterimMeasure, "2号门供水车");
        let water = StandardReply {
            content: ReplyContent { body: "{unit}：{interim_measure}".into(), ..reply("w", &[], &[], 0).content },
            ..reply("w", &[], &[], 0)
        };
        let (text, source) = water.render_for("p-1", &fill, given.clone()).unwrap();
        assert_eq!((text.as_str(), source.version), ("2-1203：2号门供水车", 1));
        assert_eq!(water.render_for("p-2", &fill, given), Err(Unusable::OtherProperty));
        let missing = water.render_for("p-1", &fill, Values::new()).unwrap_err();
        assert_eq!(missing, Unusable::Missing(MissingValues(vec![Placeholder::InterimMeasure])));
    }

    #[test]
    fn a_notice_uses_the_librarys_reply_else_its_own_words_and_always_says_the_interim_measure() {
        let fill = fill(Some("2号门临时供水车"));
        for notice in Notice::ALL {
            for language in ["zh-CN", "en"] {
                let (text, source) = notice.words(None, &fill, language);
                assert!(!text.contains('{') && text.len() > 20, "{notice} {language}: {text}");
                assert_eq!(source, None);
            }
        }
        let (text, _) = Notice::Breach.words(None, &fill, "zh-CN");
        assert!(text.contains("预计 11月30日 08:53 前") && text.ends_with("临时措施：2号门临时供水车。"), "{text}");

        let mut library = reply("notice.breach", &[], &[], 0);
        library.content.body = "{unit} 预计 {expected_time}，临时：{interim_measure}".into();
        let (text, source) = Notice::Breach.words(Some(&library), &fill, "zh-CN");
        assert_eq!(text, "2-1203 预计 11月30日 08:53，临时：2号门临时供水车", "said once");
        assert_eq!(source, Some(StandardReplyRef { id: "id-notice.breach".into(), version: 1 }));
        // A library reply that cannot be filled (no interim measure now) gives way.
        let without = Fill { interim_measure: None, ..fill };
        let (text, source) = Notice::Breach.words(Some(&library), &without, "zh-CN");
        assert!(text.starts_with("您好，您反映的问题（单号 t-1）"), "{text}");
        assert_eq!(source, None);
    }

    #[test]
    fn codes_languages_bodies_and_keywords_are_checked() {
        let mut v = Violations::new();
        check_code(&mut v, "code", "fee.enquiry-1");
        check_language(&mut v, "language", "zh-CN");
        check_keywords(&mut v, "keywords", &["物业费".into()]);
        assert!(check_body(&mut v, "body", "物业费 {property}").is_some());
        assert!(v.is_empty(), "{v:?}");
        check_code(&mut v, "code", "物业费");
        check_language(&mut v, "language", "zh_CN");
        check_keywords(&mut v, "keywords", &[String::new()]);
        assert!(check_body(&mut v, "body", "").is_some());
        assert!(check_body(&mut v, "body", &"长".repeat(MAX_BODY + 1)).is_some());
        let fields: Vec<&str> = v.0.iter().map(|f| f.field.as_str()).collect();
        assert_eq!(fields, ["code", "language", "keywords[0]", "body", "body"]);
    }
}
