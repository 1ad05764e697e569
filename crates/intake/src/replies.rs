//! ReplyService: the libraries of standard replies (统一口径), and rendering one for a
//! ticket (also used when a reply is sent: [`render_use`]).
//!
//! Everybody at a property reads its library and the company-wide one; supervisors,
//! managers and admins write their property's replies, admins the company-wide ones.

use std::collections::HashMap;
use std::sync::Arc;

use propdesk_domain::replies::{
    self, DEFAULT_LANGUAGE, Edit, Fill, ReplyContent, ReplySearch, StandardReply, StandardReplyRef, Unusable,
};
use propdesk_domain::search::Query;
use propdesk_domain::validation::{MAX_NOTE, MAX_TITLE};
use propdesk_domain::{Actor, Denied, Operation, Role, TicketFacts, TicketKind, Violations};
use propdesk_proto::v1 as pb;
use propdesk_proto::v1::ErrorReason;
use propdesk_proto::v1::reply_service_server::ReplyService;
use propdesk_store::entity::{property, standard_reply};
use propdesk_store::{Inserted, StoreError};
use tonic::{Request, Response, Status};

use crate::IntakeState;
use crate::auth::actor;
use crate::convert::{WireEnum, optional_enum, required_enum, timestamp};
use crate::error::{ApiError, ApiResult};
use crate::idempotency::{check_request_id, key_of, mismatch};
use crate::paging;

pub struct ReplyApi {
    state: Arc<IntakeState>,
}

impl ReplyApi {
    pub fn new(state: Arc<IntakeState>) -> Self {
        ReplyApi { state }
    }
}

/// The fields an edit may change.
const UPDATABLE: &[&str] = &["title", "category_codes", "kinds", "keywords", "body", "language", "active"];
/// The fields of StandardReply that never change by an edit.
const FIXED: &[&str] = &[
    "id",
    "property_id",
    "code",
    "version",
    "use_count",
    "placeholders",
    "created_at",
    "edited_by",
    "edited_at",
    "edit_reason",
];

pub fn reply_to_wire(reply: &StandardReply) -> pb::StandardReply {
    let content = &reply.content;
    let placeholders = replies::Template::parse(&content.body)
        .map(|template| template.placeholders().iter().map(|p| p.code().to_owned()).collect())
        .unwrap_or_default();
    pb::StandardReply {
        id: reply.id.clone(),
        property_id: reply.property_id.clone().unwrap_or_default(),
        code: reply.code.clone(),
        title: content.title.clone(),
        category_codes: content.category_codes.clone(),
        kinds: content.kinds.iter().map(|k| k.to_wire()).collect(),
        keywords: content.keywords.clone(),
        body: content.body.clone(),
        language: content.language.clone(),
        active: content.active,
        version: reply.version,
        use_count: reply.use_count,
        placeholders,
        created_at: Some(timestamp(reply.created_at)),
        edited_by: reply.edit.by.clone(),
        edited_at: Some(timestamp(reply.edit.at)),
        edit_reason: reply.edit.reason.clone(),
    }
}

/// Who may write a library: admins the company-wide one, supervisors, managers and admins
/// a property's.
fn authorize_edit(actor: &Actor, property_id: Option<&str>) -> ApiResult<()> {
    match property_id {
        Some(id) => Ok(actor.authorize(id, Operation::EditReplies, false)?),
        None if actor.role == Role::Admin => Ok(()),
        None => Err(Denied::Role { role: actor.role, what: "edit company-wide standard replies" }.into()),
    }
}

/// Who may read a reply: anyone at its property; anyone for a company-wide one.
fn authorize_read(actor: &Actor, reply: &StandardReply) -> ApiResult<()> {
    match &reply.property_id {
        Some(id) => Ok(actor.authorize(id, Operation::ReadTickets, false)?),
        None => Ok(actor.authorize_role(Operation::ReadTickets, false)?),
    }
}

/// The content fields of a request, checked: every bad one is a violation.
struct ContentFields<'a> {
    /// Where the fields sit in the request: "" (create) or "reply." (update).
    prefix: &'a str,
    title: &'a str,
    category_codes: &'a [String],
    kinds: &'a [i32],
    keywords: &'a [String],
    body: &'a str,
    language: &'a str,
}

/// A request's content as checked.
struct Checked {
    content: ReplyContent,
    violations: Violations,
    /// The body names an unknown placeholder or has an unbalanced brace.
    bad_template: bool,
}

impl Checked {
    fn into_result(self) -> ApiResult<ReplyContent> {
        if self.violations.is_empty() {
            return Ok(self.content);
        }
        let reason = if self.bad_template { ErrorReason::UnknownPlaceholder } else { ErrorReason::InvalidField };
        Err(ApiError::Invalid { reason, violations: self.violations })
    }
}

impl ContentFields<'_> {
    /// Checks every field, after the violations found before (`v`).
    fn check(&self, state: &IntakeState, mut v: Violations, active: bool) -> Checked {
        let v = &mut v;
        let field = |name: &str| format!("{}{name}", self.prefix);
        v.required_text(&field("title"), self.title, MAX_TITLE);
        for (index, code) in self.category_codes.iter().enumerate() {
            if state.policy.categories.get(code).is_none() {
                v.add(&field(&format!("category_codes[{index}]")), format!("`{code}` is not in the category catalog"));
            }
        }
        let kinds: Vec<TicketKind> = self
            .kinds
            .iter()
            .enumerate()
            .filter_map(|(index, kind)| required_enum(v, &field(&format!("kinds[{index}]")), *kind))
            .collect();
        replies::check_keywords(v, &field("keywords"), self.keywords);
        let template = replies::check_body(v, &field("body"), self.body);
        let language = if self.language.is_empty() { DEFAULT_LANGUAGE } else { self.language };
        replies::check_language(v, &field("language"), language);
        let content = ReplyContent {
            title: self.title.trim().to_owned(),
            body: self.body.to_owned(),
            category_codes: self.category_codes.to_vec(),
            kinds,
            keywords: self.keywords.iter().map(|k| k.trim().to_owned()).collect(),
            language: language.to_owned(),
            active,
        };
        Checked { content, violations: std::mem::take(v), bad_template: template.is_none() }
    }
}

/// A standard reply a request names, with the values it gives and the request fields they
/// came in (for the errors).
pub(crate) struct ReplyUse<'a> {
    pub reply_id: &'a str,
    pub values: &'a HashMap<String, String>,
    pub id_field: String,
    pub values_field: String,
}

impl<'a> ReplyUse<'a> {
    /// A `StandardReplyUse` in the request field `field`.
    pub fn in_field(used: &'a pb::StandardReplyUse, field: &str) -> ReplyUse<'a> {
        ReplyUse {
            reply_id: &used.standard_reply_id,
            values: &used.values,
            id_field: format!("{field}.standard_reply_id"),
            values_field: format!("{field}.values"),
        }
    }
}

/// A property's name, as residents are told it.
pub(crate) async fn property_name(state: &IntakeState, property_id: &str) -> ApiResult<String> {
    Ok(state.store.find::<property::Model>(property_id).await?.map(|p| p.name).unwrap_or_default())
}

/// Renders the standard reply `used` names for a ticket at `property_id` whose facts
/// `fill` gives.
pub(crate) async fn render_use(
    state: &IntakeState,
    used: ReplyUse<'_>,
    property_id: &str,
    fill: &Fill<'_>,
) -> ApiResult<(String, StandardReplyRef)> {
    let mut v = Violations::new();
    let id = v.required_id(&used.id_field, used.reply_id);
    let given = replies::named_values(&mut v, &used.values_field, used.values);
    v.into_result()?;
    let reply =
        state.store.standard_reply(&id.unwrap_or_default()).await?.ok_or(ApiError::NotFound("standard reply"))?;
    reply.render_for(property_id, fill, given).map_err(|err| {
        let (reason, field) = match &err {
            Unusable::OtherProperty => (ErrorReason::OfAnotherProperty, &used.id_field),
            Unusable::Inactive | Unusable::Body(_) => (ErrorReason::InvalidField, &used.id_field),
            Unusable::Missing(_) => (ErrorReason::MissingPlaceholderValues, &used.values_field),
        };
        ApiError::field_as(reason, field, err.to_string())
    })
}

/// The fill of a stored ticket.
pub(crate) fn ticket_fill<'a>(state: &IntakeState, ticket: &'a TicketFacts, property_name: &'a str) -> Fill<'a> {
    Fill::of_ticket(ticket, property_name, state.policy.hours_for(&ticket.property_id).utc_offset_minutes)
}

#[tonic::async_trait]
impl ReplyService for ReplyApi {
    async fn create_standard_reply(
        &self,
        request: Request<pb::CreateStandardReplyRequest>,
    ) -> Result<Response<pb::StandardReply>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let key = key_of(&actor, &body.request_id, &body);
        let mut v = Violations::new();
        check_request_id(&mut v, &body.request_id);
        let property_id = v.optional_id("property_id", &body.property_id);
        replies::check_code(&mut v, "code", &body.code);
        let fields = ContentFields {
            prefix: "",
            title: &body.title,
            category_codes: &body.category_codes,
            kinds: &body.kinds,
            keywords: &body.keywords,
            body: &body.body,
            language: &body.language,
        };
        if let Some(id) = &property_id
            && self.state.store.find::<property::Model>(id).await.map_err(ApiError::from)?.is_none()
        {
            v.add("property_id", "no such property");
        }
        let content = fields.check(&self.state, v, true).into_result()?;
        authorize_edit(&actor, property_id.as_deref())?;
        let now = propdesk_store::now();
        let reply = StandardReply {
            id: uuid::Uuid::now_v7().to_string(),
            property_id,
            code: body.code,
            content,
            version: 1,
            use_count: 0,
            created_at: now,
            edit: Edit { by: actor.staff_id.clone(), at: now, reason: "created".to_owned() },
        };
        let stored = match self.state.store.insert_once(standard_reply::Model::of(&reply), key).await {
            Ok(Inserted::New(row) | Inserted::Existing(row)) => row.into_reply(),
            Ok(Inserted::Mismatch) => return Err(mismatch().into()),
            Err(StoreError::Conflict(_)) => {
                let taken = "is already used in this library for this language";
                return Err(ApiError::field_as(ErrorReason::CodeTaken, "code", taken).into());
            }
            Err(other) => return Err(ApiError::from(other).into()),
        };
        Ok(Response::new(reply_to_wire(&stored)))
    }

    async fn update_standard_reply(
        &self,
        request: Request<pb::UpdateStandardReplyRequest>,
    ) -> Result<Response<pb::StandardReply>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("reply_id", &body.reply_id);
        v.required_text("reason", &body.reason, MAX_NOTE);
        let paths = body.update_mask.as_ref().map(|mask| mask.paths.as_slice()).unwrap_or_default();
        if paths.is_empty() {
            v.add("update_mask", "is required: name the fields to change");
        }
        let mut fixed = false;
        for path in paths {
            if FIXED.contains(&path.as_str()) {
                fixed = true;
                v.add("update_mask", format!("`{path}` cannot change (create another reply instead)"));
            } else if !UPDATABLE.contains(&path.as_str()) {
                v.add("update_mask", format!("`{path}` is not a field of StandardReply"));
            }
        }
        if !v.is_empty() {
            let reason = if fixed { ErrorReason::FieldNotUpdatable } else { ErrorReason::InvalidField };
            return Err(ApiError::Invalid { reason, violations: v }.into());
        }
        let current = self
            .state
            .store
            .standard_reply(&id.unwrap_or_default())
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("standard reply"))?;
        authorize_edit(&actor, current.property_id.as_deref())?;
        if body.expected_version != current.version {
            return Err(ApiError::Stale { expected: body.expected_version, current: current.version }.into());
        }
        let given = body.reply.unwrap_or_default();
        let now_content = &current.content;
        let named = |field: &str| paths.iter().any(|p| p == field);
        let kinds: Vec<i32> = now_content.kinds.iter().map(|k| k.to_wire()).collect();
        let fields = ContentFields {
            prefix: "reply.",
            title: if named("title") { &given.title } else { &now_content.title },
            category_codes: if named("category_codes") { &given.category_codes } else { &now_content.category_codes },
            kinds: if named("kinds") { &given.kinds } else { &kinds },
            keywords: if named("keywords") { &given.keywords } else { &now_content.keywords },
            body: if named("body") { &given.body } else { &now_content.body },
            language: if named("language") { &given.language } else { &now_content.language },
        };
        let active = if named("active") { given.active } else { now_content.active };
        let content = fields.check(&self.state, Violations::new(), active).into_result()?;
        let edit = Edit { by: actor.staff_id.clone(), at: propdesk_store::now(), reason: body.reason };
        let edited = current.edited(content, edit);
        let saved = match self.state.store.save_standard_reply(&current, edited).await {
            Ok(saved) => saved,
            Err(StoreError::StaleVersion { current: latest }) => {
                return Err(ApiError::Stale { expected: body.expected_version, current: latest }.into());
            }
            Err(StoreError::Conflict(_)) => {
                let taken = "another reply of this library has this code in that language";
                return Err(ApiError::field_as(ErrorReason::CodeTaken, "reply.language", taken).into());
            }
            Err(other) => return Err(ApiError::from(other).into()),
        };
        Ok(Response::new(reply_to_wire(&saved)))
    }

    async fn get_standard_reply(
        &self,
        request: Request<pb::GetStandardReplyRequest>,
    ) -> Result<Response<pb::StandardReply>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("reply_id", &body.reply_id).unwrap_or_default();
        if body.version < 0 {
            v.add("version", "must be 0 (the current one) or a version number");
        }
        v.into_result().map_err(ApiError::from)?;
        let store = &self.state.store;
        let found = if body.version == 0 {
            store.standard_reply(&id).await
        } else {
            store.standard_reply_at(&id, body.version).await
        };
        let reply = found.map_err(ApiError::from)?.ok_or(ApiError::NotFound("standard reply"))?;
        authorize_read(&actor, &reply)?;
        Ok(Response::new(reply_to_wire(&reply)))
    }

    async fn list_standard_replies(
        &self,
        request: Request<pb::ListStandardRepliesRequest>,
    ) -> Result<Response<pb::ListStandardRepliesResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let property_id = v.required_id("property_id", &body.property_id).unwrap_or_default();
        let kind = optional_enum::<TicketKind>(&mut v, "kind", body.kind);
        if !body.category.is_empty() && self.state.policy.categories.get(&body.category).is_none() {
            v.add("category", format!("`{}` is not in the category catalog", body.category));
        }
        let query = (!body.query.is_empty()).then(|| Query::parse(&mut v, "query", &body.query)).flatten();
        if !body.language.is_empty() {
            replies::check_language(&mut v, "language", &body.language);
        }
        let limit = v.page_size("page_size", body.page_size);
        let skipped = paging::parse_count(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        actor.authorize(&property_id, Operation::ReadTickets, false).map_err(ApiError::from)?;
        let library = self.state.store.standard_replies_for(&property_id).await.map_err(ApiError::from)?;
        let search = ReplySearch {
            category: (!body.category.is_empty()).then_some(body.category),
            kind,
            query,
            language: (!body.language.is_empty()).then_some(body.language),
            include_inactive: body.include_inactive,
        };
        let found = replies::find(&library, &search);
        let mut page: Vec<&StandardReply> = found.into_iter().skip(skipped as usize).take(limit as usize + 1).collect();
        let next_page_token = paging::cut_by_count(&mut page, limit, skipped);
        let replies = page.into_iter().map(reply_to_wire).collect();
        Ok(Response::new(pb::ListStandardRepliesResponse { replies, next_page_token }))
    }

    async fn list_standard_reply_versions(
        &self,
        request: Request<pb::ListStandardReplyVersionsRequest>,
    ) -> Result<Response<pb::ListStandardReplyVersionsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let id = v.required_id("reply_id", &body.reply_id).unwrap_or_default();
        let limit = v.page_size("page_size", body.page_size);
        let before = paging::parse_sequence(&mut v, &body.page_token);
        v.into_result().map_err(ApiError::from)?;
        let store = &self.state.store;
        let current =
            store.standard_reply(&id).await.map_err(ApiError::from)?.ok_or(ApiError::NotFound("standard reply"))?;
        authorize_read(&actor, &current)?;
        let mut versions = store.standard_reply_versions(&id, before, limit + 1).await.map_err(ApiError::from)?;
        let next_page_token = paging::cut_by_sequence(&mut versions, limit, |r| r.version);
        let versions = versions.iter().map(reply_to_wire).collect();
        Ok(Response::new(pb::ListStandardReplyVersionsResponse { versions, next_page_token }))
    }

    async fn render_standard_reply(
        &self,
        request: Request<pb::RenderStandardReplyRequest>,
    ) -> Result<Response<pb::RenderedReply>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let mut v = Violations::new();
        let ticket_id = v.required_id("ticket_id", &body.ticket_id).unwrap_or_default();
        v.into_result().map_err(ApiError::from)?;
        let ticket = self
            .state
            .store
            .get_ticket(&ticket_id)
            .await
            .map_err(ApiError::from)?
            .ok_or(ApiError::NotFound("ticket"))?;
        actor.authorize(&ticket.property_id, Operation::ReadTickets, false).map_err(ApiError::from)?;
        let used = ReplyUse {
            reply_id: &body.reply_id,
            values: &body.values,
            id_field: "reply_id".into(),
            values_field: "values".into(),
        };
        let facts = ticket.facts();
        let name = property_name(&self.state, &facts.property_id).await?;
        let (text, source) =
            render_use(&self.state, used, &facts.property_id, &ticket_fill(&self.state, facts, &name)).await?;
        Ok(Response::new(pb::RenderedReply { text, reply_id: source.id, version: source.version }))
    }
}
