//! How a participant negotiates, with our SFU (its WebSocket protocol) or
//! with Janus (VideoRoom over HTTP). Either way the media loop sees the
//! same events: an answer for its publisher connection and offers for its
//! subscriber connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sfu::signalling::v1::{
    ClientMessage, Kind, Quality, ServerMessage, TrackAnnouncement, PROTOCOL_VERSION,
};
use tokio::sync::{mpsc, Notify};
use tokio_tungstenite::tungstenite::Message;

use crate::janus::Client;
use crate::progress::Progress;

/// Which SFU a participant talks to.
#[derive(Clone)]
pub enum Target {
    Ours {
        http: SocketAddr,
    },
    Janus {
        api: SocketAddr,
        room: u64,
        feeds: Arc<Feeds>,
    },
}

/// What the media loop must act on.
#[derive(Debug)]
pub enum Event {
    PublisherAnswer(String),
    SubscriberOffer(String),
    /// A video track to receive, by id, where a quality other than the
    /// default was asked for, or layers are to be moved between (our SFU).
    VideoTrack(String),
    Failed(String),
}

/// Janus publishers' feed ids, which subscribers must name; subscribers wait
/// until every publisher of the run has one.
pub struct Feeds {
    ids: Mutex<Vec<u64>>,
    expected: usize,
    changed: Notify,
}

impl Feeds {
    pub fn new(expected: usize) -> Arc<Self> {
        Arc::new(Self {
            ids: Mutex::new(Vec::new()),
            expected,
            changed: Notify::new(),
        })
    }

    fn add(&self, id: u64) {
        self.ids.lock().expect("feeds lock").push(id);
        self.changed.notify_waiters();
    }

    async fn all(&self, timeout: Duration) -> anyhow::Result<Vec<u64>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.changed.notified();
            {
                let ids = self.ids.lock().expect("feeds lock");
                if ids.len() >= self.expected {
                    return Ok(ids.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                bail!("not every publisher joined Janus in time");
            }
        }
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub enum Signaller {
    Ours(SplitSink<Ws, Message>),
    Janus {
        client: Client,
        room: u64,
        display: String,
        /// Handles, 0 until attached; the event task reads them.
        publisher: Arc<AtomicU64>,
        subscriber: Arc<AtomicU64>,
        own_feed: Arc<AtomicU64>,
        feeds: Arc<Feeds>,
    },
}

impl Signaller {
    /// Joins; events arrive on `events` from then on.
    pub async fn connect(
        target: &Target,
        room: &str,
        name: &str,
        quality: Quality,
        move_layers: bool,
        events: mpsc::UnboundedSender<Event>,
        progress: Arc<Progress>,
    ) -> anyhow::Result<Self> {
        match target {
            Target::Ours { http } => {
                let (ws, _) = tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio_tungstenite::connect_async(format!("ws://{http}/ws")),
                )
                .await
                .context("connecting timed out")??;
                let (mut sink, mut stream) = ws.split();
                let join = ClientMessage::Join {
                    v: PROTOCOL_VERSION,
                    room: room.to_owned(),
                    name: name.to_owned(),
                    token: None,
                    invite: None,
                    resume: None,
                };
                sink.send(Message::Text(serde_json::to_string(&join)?.into()))
                    .await?;
                tokio::spawn(async move {
                    while let Some(Ok(m)) = stream.next().await {
                        let Message::Text(text) = m else { continue };
                        let Ok(msg) = serde_json::from_str::<ServerMessage>(&text) else {
                            continue;
                        };
                        let video: Vec<String> = match &msg {
                            ServerMessage::Joined { participants, .. } => participants
                                .iter()
                                .flat_map(|p| &p.tracks)
                                .filter(|t| t.kind == Kind::Video)
                                .map(|t| t.id.clone())
                                .collect(),
                            ServerMessage::TrackPublished { track, .. }
                                if track.kind == Kind::Video =>
                            {
                                vec![track.id.clone()]
                            }
                            _ => Vec::new(),
                        };
                        if quality != Quality::High || move_layers {
                            for id in video {
                                let _ = events.send(Event::VideoTrack(id));
                            }
                        }
                        let event = match msg {
                            ServerMessage::Joined { .. } => {
                                progress.joined.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            ServerMessage::PublisherAnswer { sdp } => Event::PublisherAnswer(sdp),
                            ServerMessage::SubscriberOffer { sdp } => Event::SubscriberOffer(sdp),
                            ServerMessage::Error { code, message } => {
                                Event::Failed(format!("{code:?}: {message}"))
                            }
                            _ => continue,
                        };
                        if events.send(event).is_err() {
                            return;
                        }
                    }
                });
                Ok(Signaller::Ours(sink))
            }
            Target::Janus { api, room, feeds } => {
                let client = Client::connect(*api).await?;
                progress.joined.fetch_add(1, Ordering::Relaxed);
                let own_feed = Arc::new(AtomicU64::new(0));
                let publisher = Arc::new(AtomicU64::new(0));
                tokio::spawn(janus_events(
                    *api,
                    client.session,
                    events,
                    feeds.clone(),
                    own_feed.clone(),
                    publisher.clone(),
                    quality,
                ));
                Ok(Signaller::Janus {
                    client,
                    room: *room,
                    display: name.to_owned(),
                    publisher,
                    subscriber: Arc::new(AtomicU64::new(0)),
                    own_feed,
                    feeds: feeds.clone(),
                })
            }
        }
    }

    /// Offers our tracks; the answer comes as an event.
    pub async fn publish(
        &mut self,
        sdp: String,
        tracks: Vec<TrackAnnouncement>,
    ) -> anyhow::Result<()> {
        match self {
            Signaller::Ours(sink) => {
                let m = ClientMessage::PublisherOffer { sdp, tracks };
                sink.send(Message::Text(serde_json::to_string(&m)?.into()))
                    .await?;
            }
            Signaller::Janus {
                client,
                room,
                display,
                publisher,
                ..
            } => {
                let handle = client.attach().await?;
                publisher.store(handle, Ordering::Relaxed);
                client
                    .message(
                        handle,
                        json!({"request": "joinandconfigure", "ptype": "publisher", "room": room, "display": display}),
                        Some(json!({"type": "offer", "sdp": sdp})),
                    )
                    .await?;
                client.trickle_done(handle).await?;
            }
        }
        Ok(())
    }

    /// Starts receiving the others. Our SFU does that by itself; with Janus
    /// a subscriber names the feeds, once every publisher has one.
    pub fn subscribe(&self, publishes: bool) {
        let Signaller::Janus {
            client,
            room,
            subscriber,
            own_feed,
            feeds,
            ..
        } = self
        else {
            return;
        };
        let (addr, session, room) = (client.addr(), client.session, *room);
        let (subscriber, own_feed, feeds) = (subscriber.clone(), own_feed.clone(), feeds.clone());
        tokio::spawn(async move {
            let result: anyhow::Result<()> = async {
                let mut ids = feeds.all(Duration::from_secs(60)).await?;
                if publishes {
                    while own_feed.load(Ordering::Relaxed) == 0 {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let own = own_feed.load(Ordering::Relaxed);
                    ids.retain(|&f| f != own);
                }
                if ids.is_empty() {
                    return Ok(()); // the only publisher: nobody to receive
                }
                let mut c = Client::with_session(addr, session, "sub");
                let handle = c.attach().await?;
                subscriber.store(handle, Ordering::Relaxed);
                let streams: Vec<Value> = ids.iter().map(|f| json!({"feed": f})).collect();
                c.message(
                    handle,
                    json!({"request": "join", "ptype": "subscriber", "room": room, "streams": streams}),
                    None,
                )
                .await?;
                Ok(())
            }
            .await;
            if let Err(e) = result {
                tracing::warn!(error = %e, "janus subscription failed");
            }
        });
    }

    /// Asks our SFU for a simulcast layer of a video track (Janus is asked
    /// when its subscription is set up, see [`janus_events`]).
    pub async fn track_settings(
        &mut self,
        track_id: String,
        quality: Quality,
    ) -> anyhow::Result<()> {
        if let Signaller::Ours(sink) = self {
            let m = ClientMessage::TrackSettings { track_id, quality };
            sink.send(Message::Text(serde_json::to_string(&m)?.into()))
                .await?;
        }
        Ok(())
    }

    /// Answers the subscriber connection's offer.
    pub async fn answer(&mut self, sdp: String) -> anyhow::Result<()> {
        match self {
            Signaller::Ours(sink) => {
                let m = ClientMessage::SubscriberAnswer { sdp };
                sink.send(Message::Text(serde_json::to_string(&m)?.into()))
                    .await?;
            }
            Signaller::Janus {
                client, subscriber, ..
            } => {
                let handle = subscriber.load(Ordering::Relaxed);
                client
                    .message(
                        handle,
                        json!({"request": "start"}),
                        Some(json!({"type": "answer", "sdp": sdp})),
                    )
                    .await?;
                client.trickle_done(handle).await?;
            }
        }
        Ok(())
    }

    pub async fn leave(&mut self) {
        match self {
            Signaller::Ours(sink) => {
                if let Ok(text) = serde_json::to_string(&ClientMessage::Leave {}) {
                    let _ = sink.send(Message::Text(text.into())).await;
                }
                let _ = sink.close().await;
            }
            Signaller::Janus { client, .. } => client.destroy().await,
        }
    }
}

/// Turns a Janus session's events into ours until the session goes away.
async fn janus_events(
    api: SocketAddr,
    session: u64,
    events: mpsc::UnboundedSender<Event>,
    feeds: Arc<Feeds>,
    own_feed: Arc<AtomicU64>,
    publisher: Arc<AtomicU64>,
    quality: Quality,
) {
    loop {
        let batch = match Client::poll(api, session).await {
            Ok(b) => b,
            Err(_) => return,
        };
        for e in batch {
            tracing::debug!(event = %e, "janus event");
            let data = &e["plugindata"]["data"];
            if data["videoroom"] == "joined" {
                if let Some(id) = data["id"].as_u64() {
                    own_feed.store(id, Ordering::Relaxed);
                }
            }
            // A feed can be subscribed to once its media is up, not before.
            let sender = e["sender"].as_u64();
            if e["janus"] == "webrtcup" && sender == Some(publisher.load(Ordering::Relaxed)) {
                feeds.add(own_feed.load(Ordering::Relaxed));
            }
            if let Some(err) = data["error"].as_str() {
                let _ = events.send(Event::Failed(format!("janus: {err}")));
            }
            // A subscription was set up: pick its video streams' substream
            // (Janus starts every subscriber on the top one).
            if data["videoroom"] == "attached" && quality != Quality::High {
                if let Some(handle) = sender {
                    let substream = match quality {
                        Quality::Low => 0,
                        Quality::Medium => 1,
                        Quality::High => 2,
                    };
                    let streams: Vec<Value> = data["streams"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|s| s["type"] == "video")
                        .map(|s| json!({"mid": s["mid"], "substream": substream}))
                        .collect();
                    let mut c = Client::with_session(api, session, "cfg");
                    tokio::spawn(async move {
                        let body = json!({"request": "configure", "streams": streams});
                        if let Err(e) = c.message(handle, body, None).await {
                            tracing::warn!(error = %e, "janus substream choice failed");
                        }
                    });
                }
            }
            let Some(sdp) = e["jsep"]["sdp"].as_str() else {
                continue;
            };
            let event = match e["jsep"]["type"].as_str() {
                Some("answer") => Event::PublisherAnswer(sdp.to_owned()),
                Some("offer") => Event::SubscriberOffer(sdp.to_owned()),
                _ => continue,
            };
            if events.send(event).is_err() {
                return;
            }
        }
    }
}
