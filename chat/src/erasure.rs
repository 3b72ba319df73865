//! A data subject's request: erasing what the bridge holds about one
//! person (a Matrix user, or a guest by the name they gave), for
//! `meet erase`. It works beside a running server: the store is SQLite in
//! WAL mode, and each side waits for the other's writes.

use std::path::Path;

use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::ruma::UserId;

use crate::admin::{erase_ghost, Admin};
use crate::ghosts::{GhostError, Ghosts};
use crate::store::{Erasure, GhostRow, Store};
use crate::{ChatConfig, ChatError};

/// Whom to erase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A Matrix user, by user id (`@alice:example.org`).
    MatrixUser(String),
    /// A guest, by the name they gave (their ghost shows "Name (guest)").
    GuestName(String),
}

/// One ghost user of the person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErasedGhost {
    /// `@localpart:server`, or the localpart alone if the server name
    /// could not be found.
    pub user_id: String,
    /// The display name it had, as stored.
    pub display_name: Option<String>,
    /// Whether the homeserver deactivated and erased it; if not, why (the
    /// running server's next retention pass tries again).
    pub on_homeserver: Result<(), String>,
}

/// What [`erase`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    pub ghosts: Vec<ErasedGhost>,
    /// Messages the person wrote that still waited for the homeserver,
    /// deleted from the outbox.
    pub messages_removed: usize,
    /// No chat store at all: the bridge holds nothing.
    pub no_store: bool,
}

/// Erases what the bridge holds about `subject`: their ghost users are
/// deactivated and erased on the homeserver (with the application
/// service's token, else the admin token), their rows and device tokens
/// deleted, and their messages still waiting for the homeserver dropped.
/// With `dry_run`, only finds the ghosts.
pub async fn erase(
    config: &ChatConfig,
    subject: &Subject,
    dry_run: bool,
) -> Result<ErasureReport, ChatError> {
    let path = config.store_dir.join(crate::store::FILE);
    if !Path::new(&path).exists() {
        return Ok(ErasureReport {
            no_store: true,
            ..ErasureReport::default()
        });
    }
    let store = Store::open(&path)?;
    let ghosts = config.appservice.as_ref().map(|a| {
        Ghosts::new(
            config.homeserver.clone(),
            a.as_token.clone(),
            a.prefix.clone(),
        )
    });
    let admin = config
        .admin_token
        .as_ref()
        .map(|t| Admin::new(config.homeserver.clone(), t.clone()));
    let server = server_name(&store, ghosts.as_ref(), admin.as_ref()).await;
    let user_id = |localpart: &str| match &server {
        Some(s) => format!("@{localpart}:{s}"),
        None => localpart.to_owned(),
    };

    let mut found: Vec<GhostRow> = Vec::new();
    match subject {
        Subject::MatrixUser(u) => {
            UserId::parse(u.as_str())
                .map_err(|e| ChatError::Invalid(format!("Matrix user id `{u}`: {e}")))?;
            let person = format!("matrix:{u}");
            found.extend(store.ghosts()?.into_iter().filter(|g| g.person == person));
        }
        Subject::GuestName(name) => {
            let name = name.trim();
            if name.is_empty() {
                return Err(ChatError::Invalid("a guest's name is not empty".into()));
            }
            let display = format!("{name} (guest)");
            for g in store.ghosts()? {
                if !g.person.starts_with("guest:") {
                    continue;
                }
                let matches = match &g.name {
                    Some(n) => *n == display,
                    // Rows from before names were kept: the homeserver
                    // has the name, for ghosts whose localpart fits.
                    None => match (&ghosts, &server) {
                        (Some(gh), Some(_))
                            if g.localpart.starts_with(&gh.localpart_prefix(name)) =>
                        {
                            gh.display_name(&user_id(&g.localpart)).await.ok().flatten()
                                == Some(display.clone())
                        }
                        _ => false,
                    },
                };
                if matches {
                    found.push(g);
                }
            }
        }
    }

    let mut report = ErasureReport::default();
    for g in found {
        let id = user_id(&g.localpart);
        let on_homeserver = if dry_run {
            Err("dry run: nothing done".to_owned())
        } else {
            // Out of use and queued first, so that a failure below leaves
            // it for the running server to finish.
            store.take_ghost(&g.localpart)?;
            let done = match &server {
                None => Err(GhostError::Transient(
                    "the homeserver's name is not known (unreachable?)".into(),
                )),
                Some(_) => erase_ghost(ghosts.as_ref(), admin.as_ref(), &id).await,
            };
            if done.is_ok() {
                store.erased(&Erasure::Ghost(g.localpart.clone()))?;
            }
            done.map_err(|e| e.to_string())
        };
        if !dry_run {
            report.messages_removed += store.remove_waiting_of(Some(&g.person), None, None)?;
        }
        report.ghosts.push(ErasedGhost {
            user_id: id,
            display_name: g.name,
            on_homeserver,
        });
    }
    if !dry_run {
        report.messages_removed += match subject {
            Subject::MatrixUser(u) => store.remove_waiting_of(None, Some(u), None)?,
            Subject::GuestName(n) => store.remove_waiting_of(None, None, Some(n.trim()))?,
        };
        store.compact()?;
    }
    Ok(report)
}

/// The bot's homeserver name: from the bot's saved login, else asked of
/// the homeserver with whichever token there is.
async fn server_name(
    store: &Store,
    ghosts: Option<&Ghosts>,
    admin: Option<&Admin>,
) -> Option<String> {
    let saved = store.get("session").ok().flatten().and_then(|s| {
        let session: MatrixSession = serde_json::from_str(&s).ok()?;
        Some(session.meta.user_id.server_name().to_string())
    });
    if saved.is_some() {
        return saved;
    }
    if let Some(g) = ghosts {
        if let Ok(s) = g.server_name().await {
            return Some(s);
        }
    }
    match admin {
        Some(a) => a.server_name().await.ok(),
        None => None,
    }
}
