//! Health endpoints for load balancers and service managers: `/healthz`
//! (the process answers) and `/readyz` (it can take new meetings), the
//! latter with a JSON body naming each check and whether it failed.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::shell::server::AppState;

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

/// The chat bridge as far as readiness goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChatHealth {
    /// No homeserver configured: nothing to wait for.
    Off,
    Reachable,
    /// Not signed in yet, or syncing or sending fails.
    Unreachable,
}

/// What the checks conclude from the server's state.
pub fn readiness(
    workers_running: usize,
    workers: usize,
    chat: ChatHealth,
    draining: Option<usize>,
) -> Readiness {
    let checks = vec![
        Check {
            name: "workers",
            ok: workers_running == workers && workers > 0,
            detail: format!("{workers_running} of {workers} media workers running"),
        },
        Check {
            name: "chat",
            ok: chat != ChatHealth::Unreachable,
            detail: match chat {
                ChatHealth::Off => "off (no homeserver configured)",
                ChatHealth::Reachable => "homeserver reachable",
                ChatHealth::Unreachable => "homeserver unreachable (or not signed in yet)",
            }
            .into(),
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
    let failed: Vec<_> = checks.iter().filter(|c| !c.ok).map(|c| c.name).collect();
    Readiness {
        ready: failed.is_empty(),
        failed,
        checks,
    }
}

/// Alive: the process answers HTTP.
pub async fn healthz() -> &'static str {
    "ok"
}

/// Ready for new meetings: 200, or 503 with the failed checks.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let workers = state.workers();
    let running = workers.iter().filter(|w| w.is_running()).count();
    let chat = match &state.chat {
        None => ChatHealth::Off,
        Some(chat) if chat.stats().delayed => ChatHealth::Unreachable,
        Some(_) => ChatHealth::Reachable,
    };
    let draining = state
        .drain
        .is_draining()
        .then(|| state.drain.participants());
    let r = readiness(running, workers.len(), chat, draining);
    let status = match r.ready {
        true => StatusCode::OK,
        false => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, Json(r)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes() {
        let r = readiness(2, 2, ChatHealth::Off, None);
        assert!(r.ready && r.failed.is_empty(), "{r:?}");
        let r = readiness(1, 2, ChatHealth::Reachable, None);
        assert_eq!(r.failed, ["workers"]);
        let r = readiness(2, 2, ChatHealth::Unreachable, Some(3));
        assert!(!r.ready);
        assert_eq!(r.failed, ["chat", "draining"]);
        assert!(r.checks[2].detail.contains('3'), "{r:?}");
    }

    #[test]
    fn the_answer_names_each_check() {
        let r = serde_json::to_value(readiness(1, 1, ChatHealth::Off, Some(0))).unwrap();
        assert_eq!(r["ready"], false);
        assert_eq!(r["failed"], serde_json::json!(["draining"]));
        assert_eq!(r["checks"][0]["name"], "workers");
        assert_eq!(r["checks"][0]["ok"], true);
    }
}
