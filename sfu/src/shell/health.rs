//! Health endpoints for load balancers and service managers: `/healthz`
//! (the process answers), `/readyz` (it can host meetings: its media
//! workers run and it is not draining), with a JSON body naming each check
//! and whether it failed, and `/healthz/chat` (meeting chat reaches its
//! homeserver). Chat is apart from readiness: meetings go on without it,
//! so a load balancer must not take a server out for a homeserver's sake.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::shell::state::AppState;

/// One readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// `/readyz`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    pub ready: bool,
    /// The names of the checks that failed.
    pub failed: Vec<&'static str>,
    pub checks: Vec<Check>,
}

/// The chat bridge's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatHealth {
    /// No homeserver configured: nothing to wait for.
    Off,
    Reachable,
    /// Not signed in yet, or syncing or sending fails.
    Unreachable,
}

impl ChatHealth {
    fn check(self) -> Check {
        Check {
            name: "chat",
            ok: self != ChatHealth::Unreachable,
            detail: match self {
                ChatHealth::Off => "off (no homeserver configured)",
                ChatHealth::Reachable => "homeserver reachable",
                ChatHealth::Unreachable => {
                    "homeserver unreachable (or not signed in yet); meetings go on, chat waits in the outbox"
                }
            }
            .into(),
        }
    }
}

/// What the checks conclude from the server's state: ready while every
/// media worker runs and no drain is under way.
pub fn readiness(workers_running: usize, workers: usize, draining: Option<usize>) -> Readiness {
    let checks = vec![
        Check {
            name: "workers",
            ok: workers_running == workers && workers > 0,
            detail: format!("{workers_running} of {workers} media workers running"),
        },
        Check {
            name: "draining",
            ok: draining.is_none(),
            detail: match draining {
                None => "serving".into(),
                Some(n) => format!("draining for a stop; {n} participants still in meetings"),
            },
        },
    ];
    conclude(checks)
}

fn conclude(checks: Vec<Check>) -> Readiness {
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    Readiness {
        ready: failed.is_empty(),
        failed,
        checks,
    }
}

fn answer(r: Readiness) -> Response {
    let status = match r.ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(r)).into_response()
}

/// Alive: the process answers HTTP.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready to host meetings: 200, or 503 with the failed checks.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let workers = state.workers.all();
    let running = workers.iter().filter(|w| w.is_running()).count();
    let draining = state
        .access
        .drain
        .is_draining()
        .then(|| state.access.drain.participants());
    answer(readiness(running, workers.len(), draining))
}

/// Meeting chat: 200 while it reaches its homeserver (or is off), 503
/// while not; the same JSON shape as `/readyz`.
pub async fn chat(State(state): State<AppState>) -> Response {
    let chat = match &state.access.chat {
        None => ChatHealth::Off,
        Some(chat) if chat.stats().delayed => ChatHealth::Unreachable,
        Some(_) => ChatHealth::Reachable,
    };
    answer(conclude(vec![chat.check()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let r = readiness(2, 2, None);
        assert!(r.ready && r.failed.is_empty(), "{r:?}");
        let r = readiness(1, 2, None);
        assert_eq!(r.failed, ["workers"]);
        let r = readiness(0, 2, Some(3));
        assert!(!r.ready);
        assert_eq!(r.failed, ["workers", "draining"]);
        assert!(r.checks[1].detail.contains('3'), "{r:?}");
    }

    #[test]
    fn chat_is_its_own_check() {
        let names = |r: &Readiness| r.checks.iter().map(|c| c.name).collect::<Vec<_>>();
        assert!(!names(&readiness(1, 1, None)).contains(&"chat"));
        let r = conclude(vec![ChatHealth::Unreachable.check()]);
        assert_eq!(r.failed, ["chat"]);
        for fine in [ChatHealth::Off, ChatHealth::Reachable] {
            assert!(conclude(vec![fine.check()]).ready, "{fine:?}");
        }
    }

    #[test]
    fn the_answer_names_each_check() {
        let r = serde_json::to_value(readiness(1, 1, Some(0))).unwrap();
        assert_eq!(r["ready"], false);
        assert_eq!(r["failed"], serde_json::json!(["draining"]));
        assert_eq!(r["checks"][0]["name"], "workers");
        assert_eq!(r["checks"][0]["ok"], true);
    }
}
