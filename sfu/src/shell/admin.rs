//! The admin API: what an operator (or their automation) may do over HTTP
//! with the deployment's admin key — list meetings and who is in them,
//! end a meeting or remove someone, mint invite links and withdraw one,
//! give a meeting a policy of its own. Its OpenAPI
//! document is generated from these handlers and served at
//! `/api/openapi.json`.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::access::admission::validate_name;
use crate::access::invite::invite_link;
use crate::access::invite::{self, DEFAULT_LIFETIME_SECS};
use crate::access::policy::{Overrides, Policy, PolicyError};
use crate::access::revocations::{is_invite_id, remember_until, RevocationError};
use crate::access::roster::Ended;
use crate::access::token::unix_now;
use crate::cluster::Unavailable;
use crate::room::api::Role;
use crate::shell::state::AppState;

/// Bodies of admin requests are a few fields.
const MAX_BODY_BYTES: usize = 4 * 1024;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "meet admin API",
        description = "Operate a meet server: meetings, participants, invite links, \
                       meeting policies. \
                       Every operation needs `Authorization: Bearer <admin_key>`."
    ),
    modifiers(&AdminKeyScheme),
    security(("admin_key" = []))
)]
struct ApiDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_default()
            .add_security_scheme(
                "admin_key",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
    }
}

/// The admin routes (behind the key) and the document describing them.
pub fn router(state: AppState) -> (axum::Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(list_meetings))
        .routes(routes!(get_meeting, close_meeting))
        .routes(routes!(remove_participant))
        .routes(routes!(create_invite))
        .routes(routes!(revoke_invite))
        .routes(routes!(get_policy, set_policy))
        .split_for_parts();
    // Route layers: on the admin routes only, not on the fallback, which
    // the merged router shares (an unknown path is a 404, not a 401).
    let router = router
        .route_layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .route_layer(middleware::from_fn_with_state(state, require_key));
    (router, doc)
}

/// What every error response carries.
#[derive(Serialize, ToSchema)]
struct ApiError {
    /// Stable code: `unauthorized`, `bad_request`, `not_found`,
    /// `conflict`, `unavailable`.
    error: String,
    message: String,
}

/// A refused admin request.
struct Failure {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = ApiError {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> Failure {
    Failure {
        status,
        code,
        message: message.into(),
    }
}

fn bad_request(message: impl Into<String>) -> Failure {
    error(StatusCode::BAD_REQUEST, "bad_request", message)
}

async fn require_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let Some(key) = state.admin_key.as_deref() else {
        let m = "the admin API is off: no admin_key is configured";
        return error(StatusCode::UNAUTHORIZED, "unauthorized", m).into_response();
    };
    if !bool::from(given.as_bytes().ct_eq(key.as_bytes())) {
        let m = "missing or wrong admin key (Authorization: Bearer <admin_key>)";
        let mut r = error(StatusCode::UNAUTHORIZED, "unauthorized", m).into_response();
        r.headers_mut()
            .insert(header::WWW_AUTHENTICATE, "Bearer".parse().expect("ASCII"));
        return r;
    }
    next.run(request).await
}

type JsonObject = serde_json::Map<String, serde_json::Value>;

/// A request body, which must be a JSON object: serde would also take a
/// struct's fields from an array, which the schema does not allow.
fn object<T: serde::de::DeserializeOwned>(
    body: Result<Json<JsonObject>, JsonRejection>,
) -> Result<T, Failure> {
    let Json(fields) = body.map_err(|e| bad_request(e.body_text()))?;
    serde_json::from_value(serde_json::Value::Object(fields))
        .map_err(|e| bad_request(e.to_string()))
}

/// A meeting named in the path; the schema says what `validate_name`
/// checks: 1–64 characters, not all blank, no control characters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct RoomPath {
    /// Meeting name.
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    room: String,
}

/// A participant of a meeting named in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct ParticipantPath {
    /// Meeting name.
    #[param(
        min_length = 1,
        max_length = 64,
        pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$"
    )]
    room: String,
    /// Participant id, as listed.
    id: String,
}

/// The checked meeting name from the path.
fn room(path: Result<Path<RoomPath>, PathRejection>) -> Result<String, Failure> {
    let Path(RoomPath { room }) = path.map_err(|e| bad_request(e.body_text()))?;
    validate_name("room", &room)
        .map(str::to_owned)
        .map_err(bad_request)
}

#[derive(Serialize, Deserialize, ToSchema, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum ApiRole {
    Host,
    Participant,
    Viewer,
}

impl From<ApiRole> for Role {
    fn from(r: ApiRole) -> Self {
        match r {
            ApiRole::Host => Role::Host,
            ApiRole::Participant => Role::Participant,
            ApiRole::Viewer => Role::Viewer,
        }
    }
}

impl From<Role> for ApiRole {
    fn from(r: Role) -> Self {
        match r {
            Role::Host => ApiRole::Host,
            Role::Participant => ApiRole::Participant,
            Role::Viewer => ApiRole::Viewer,
        }
    }
}

#[derive(Serialize, ToSchema)]
struct MeetingSummary {
    room: String,
    participants: usize,
}

#[derive(Serialize, ToSchema)]
struct MeetingList {
    /// Meetings with someone in them on this server, by name.
    meetings: Vec<MeetingSummary>,
}

/// Lists the meetings in progress.
#[utoipa::path(get, path = "/api/admin/meetings", responses(
    (status = 200, body = MeetingList),
    (status = 401, body = ApiError),
))]
async fn list_meetings(State(state): State<AppState>) -> Json<MeetingList> {
    let meetings = state
        .access
        .roster
        .meetings()
        .into_iter()
        .map(|(room, participants)| MeetingSummary { room, participants })
        .collect();
    Json(MeetingList { meetings })
}

#[derive(Serialize, ToSchema)]
struct ParticipantEntry {
    id: String,
    name: String,
    role: ApiRole,
    /// Admitted without a Matrix identity.
    guest: bool,
    /// The Matrix user id of a signed-in participant.
    user_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
struct Meeting {
    room: String,
    participants: Vec<ParticipantEntry>,
}

const NO_MEETING: &str = "nobody is in that meeting";

/// Who is in a meeting.
#[utoipa::path(get, path = "/api/admin/meetings/{room}",
    params(RoomPath),
    responses(
        (status = 200, body = Meeting),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
    ))]
async fn get_meeting(
    State(state): State<AppState>,
    path: Result<Path<RoomPath>, PathRejection>,
) -> Result<Json<Meeting>, Failure> {
    let room = room(path)?;
    let Some(members) = state.access.roster.members(&room) else {
        return Err(error(StatusCode::NOT_FOUND, "not_found", NO_MEETING));
    };
    let participants = members
        .into_iter()
        .map(|(id, m)| ParticipantEntry {
            id,
            name: m.name,
            role: m.role.into(),
            guest: m.guest,
            user_id: m.user_id,
        })
        .collect();
    Ok(Json(Meeting { room, participants }))
}

/// Ends a meeting for everyone in it; they are told so.
#[utoipa::path(delete, path = "/api/admin/meetings/{room}",
    params(RoomPath),
    responses(
        (status = 204, description = "Everyone was told and is leaving"),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
    ))]
async fn close_meeting(
    State(state): State<AppState>,
    path: Result<Path<RoomPath>, PathRejection>,
) -> Result<StatusCode, Failure> {
    let room = room(path)?;
    match state.access.roster.end_all(&room, Ended::MeetingClosed) {
        0 => Err(error(StatusCode::NOT_FOUND, "not_found", NO_MEETING)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// Removes one participant from a meeting; they are told so.
#[utoipa::path(delete, path = "/api/admin/meetings/{room}/participants/{id}",
    params(ParticipantPath),
    responses(
        (status = 204, description = "The participant was told and is leaving"),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
        (status = 404, body = ApiError),
    ))]
async fn remove_participant(
    State(state): State<AppState>,
    path: Result<Path<ParticipantPath>, PathRejection>,
) -> Result<StatusCode, Failure> {
    let Path(ParticipantPath { room, id }) = path.map_err(|e| bad_request(e.body_text()))?;
    if !state.access.roster.end(&room, &id, Ended::Removed) {
        let m = "no such participant in that meeting";
        return Err(error(StatusCode::NOT_FOUND, "not_found", m));
    }
    Ok(StatusCode::NO_CONTENT)
}

fn default_lifetime() -> u64 {
    DEFAULT_LIFETIME_SECS
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct InviteRequest {
    role: ApiRole,
    /// Seconds the link is valid for (default a day, at most 31 days).
    #[serde(default = "default_lifetime", deserialize_with = "whole_number")]
    #[schema(value_type = u64, minimum = 1, maximum = 2678400, default = 86400)]
    lifetime_secs: u64,
    /// Joins the link admits; absent: any number until it expires.
    #[serde(default, deserialize_with = "some_whole_number")]
    #[schema(value_type = Option<u64>, minimum = 1, maximum = 100000)]
    uses: Option<u64>,
}

/// A JSON number with no fraction: JSON Schema's `integer`, which counts
/// `3.0` as one (serde's integers do not).
fn whole(n: serde_json::Number) -> Result<u64, String> {
    let from_float = || {
        n.as_f64()
            .filter(|f| f.fract() == 0.0 && (0.0..9.0e15).contains(f))
            .map(|f| f as u64)
    };
    n.as_u64()
        .or_else(from_float)
        .ok_or_else(|| format!("{n} is not a whole number of at least 0"))
}

fn whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    whole(serde_json::Number::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// As [`whole_number`], `null` being none.
fn some_whole_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Option::<serde_json::Number>::deserialize(d)?
        .map(whole)
        .transpose()
        .map_err(serde::de::Error::custom)
}

#[derive(Serialize, ToSchema)]
struct InviteCreated {
    /// The meeting's address with the invite in it, to hand out.
    url: String,
    /// The invite alone, for `join`'s `invite` field.
    invite: String,
    /// Unix seconds.
    expires_at: u64,
    /// The invite's id: what withdraws it (`DELETE /api/admin/invites/{id}`).
    id: String,
}

/// Mints an invite link to a meeting (which need not have started).
#[utoipa::path(post, path = "/api/admin/meetings/{room}/invites",
    params(RoomPath),
    request_body = InviteRequest,
    responses(
        (status = 201, body = InviteCreated),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
    ))]
async fn create_invite(
    State(state): State<AppState>,
    headers: HeaderMap,
    path: Result<Path<RoomPath>, PathRejection>,
    body: Result<Json<JsonObject>, JsonRejection>,
) -> Result<(StatusCode, Json<InviteCreated>), Failure> {
    let room = room(path)?;
    let request: InviteRequest = object(body)?;
    let (lifetime, uses) =
        invite::terms(Some(request.lifetime_secs), request.uses).map_err(bad_request)?;
    let minted = state
        .access
        .invites
        .mint(&room, request.role.into(), lifetime, uses);
    let created = InviteCreated {
        url: invite_link(state.public_url(&headers), &room, &minted.invite),
        invite: minted.invite,
        expires_at: minted.expires_at,
        id: minted.id,
    };
    Ok((StatusCode::CREATED, Json(created)))
}

/// An invite named in the path.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
struct InvitePath {
    /// The invite's id, as `id` in what minted it (`invite_created` for a
    /// host's link): 32 hex digits, then `-` and its expiry.
    #[param(pattern = r"^[0-9a-f]{32}(-[0-9]{1,19})?$")]
    id: String,
}

/// Withdraws an invite link before it expires (a leaked one): it admits
/// nobody from now on, on this server, also after a restart. Whoever it
/// let in stays (remove them as any participant). The server keeps no list
/// of the links it minted, so any well-formed id is taken.
#[utoipa::path(delete, path = "/api/admin/invites/{id}",
    params(InvitePath),
    responses(
        (status = 204, description = "The link admits nobody any more"),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
        (status = 409, body = ApiError),
        (status = 503, body = ApiError),
    ))]
async fn revoke_invite(
    State(state): State<AppState>,
    path: Result<Path<InvitePath>, PathRejection>,
) -> Result<StatusCode, Failure> {
    let Path(InvitePath { id }) = path.map_err(|e| bad_request(e.body_text()))?;
    // The schema's `$` (as Python, and so the fuzzer, reads it) also
    // matches before a last newline.
    let id = id.strip_suffix('\n').unwrap_or(&id);
    if !is_invite_id(id) {
        return Err(bad_request(
            "not an invite id: 32 hex digits, then `-` and its expiry",
        ));
    }
    let now = unix_now();
    match state.access.invites.revocations().revoke(id, now) {
        Ok(()) => {
            if let Some(cluster) = &state.access.cluster {
                let until = remember_until(id, now);
                cluster
                    .share_revocation(id, until)
                    .await
                    .map_err(not_shared)?;
            }
            Ok(StatusCode::NO_CONTENT)
        }
        Err(e @ RevocationError::TooMany) => {
            Err(error(StatusCode::CONFLICT, "conflict", e.to_string()))
        }
        Err(e) => {
            tracing::error!(error = %e, "an invite's withdrawal was not saved");
            let m = "the withdrawal could not be saved, so it is not in force";
            Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m))
        }
    }
}

/// A change in force here that the other servers sharing meetings did
/// not hear of (Redis did not answer): sent again, it reaches them.
fn not_shared(_: Unavailable) -> Failure {
    let m =
        "in force on this server, but not yet on the others: Redis does not answer; send it again";
    error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m)
}

#[derive(Serialize, ToSchema)]
struct MeetingPolicy {
    room: String,
    /// What this meeting sets itself; absent keys follow the deployment.
    overrides: Overrides,
    /// What applies to the meeting now.
    effective: Policy,
}

fn meeting_policy(state: &AppState, room: String) -> MeetingPolicy {
    MeetingPolicy {
        overrides: state.access.policies.overrides(&room),
        effective: state.access.policies.for_meeting(&room),
        room,
    }
}

/// Who may enter a meeting (which need not have started).
#[utoipa::path(get, path = "/api/admin/meetings/{room}/policy",
    params(RoomPath),
    responses(
        (status = 200, body = MeetingPolicy),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
    ))]
async fn get_policy(
    State(state): State<AppState>,
    path: Result<Path<RoomPath>, PathRejection>,
) -> Result<Json<MeetingPolicy>, Failure> {
    let room = room(path)?;
    Ok(Json(meeting_policy(&state, room)))
}

/// Gives a meeting its own policy, replacing what it had: keys left out
/// follow the deployment's config (`{}` returns to it). It applies to
/// joins from now on; nobody already in is sent out.
#[utoipa::path(put, path = "/api/admin/meetings/{room}/policy",
    params(RoomPath),
    request_body = Overrides,
    responses(
        (status = 200, body = MeetingPolicy),
        (status = 400, body = ApiError),
        (status = 401, body = ApiError),
        (status = 409, body = ApiError),
        (status = 503, body = ApiError),
    ))]
async fn set_policy(
    State(state): State<AppState>,
    path: Result<Path<RoomPath>, PathRejection>,
    body: Result<Json<JsonObject>, JsonRejection>,
) -> Result<Json<MeetingPolicy>, Failure> {
    let room = room(path)?;
    let overrides: Overrides = object(body)?;
    match state.access.policies.set(&room, overrides) {
        Ok(()) => {
            if let Some(cluster) = &state.access.cluster {
                let json = serde_json::to_string(&overrides).expect("overrides serialize");
                cluster
                    .share_policy(&room, &json)
                    .await
                    .map_err(not_shared)?;
            }
            Ok(Json(meeting_policy(&state, room)))
        }
        Err(e @ PolicyError::TooMany) => {
            Err(error(StatusCode::CONFLICT, "conflict", e.to_string()))
        }
        Err(e) => {
            tracing::error!(error = %e, "a meeting policy was not saved");
            let m = "the policy could not be saved, so it is not in force";
            Err(error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", m))
        }
    }
}
