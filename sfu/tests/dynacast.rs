//! Dynacast in the routing core, in simulated time: a publisher is told
//! which of its simulcast layers anyone receives (`LayersWanted`), a few
//! seconds after nobody wants the upper ones and within a tick of someone
//! wanting them again, and its subscribers follow the layers it sends.

mod net;

use std::time::Duration;

use net::*;
use sfu::room::api::{Command, Event, Quality};

/// The layers `publisher` was told to send, in order.
fn told(net: &Net, publisher: &str) -> Vec<Vec<String>> {
    net.browser_ref(publisher)
        .inbox
        .iter()
        .filter_map(|m| match m {
            Event::LayersWanted { rids, mid, .. } => {
                assert_eq!(mid, "0", "the camera's media section");
                Some(rids.clone())
            }
            _ => None,
        })
        .collect()
}

fn ask(net: &mut Net, viewer: &str, track_id: &str, quality: Quality) {
    net.command(
        viewer,
        Command::SetQuality {
            track_id: track_id.to_owned(),
            quality,
        },
    );
}

#[test]
fn a_publisher_sends_only_the_layers_someone_receives() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = SimulcastMedia::default();
    let all = [0, 1, 2];
    net.join_publishing("sim", "r", SIMULCAST_VIDEO);
    net.join("a", "r", false);
    net.join("b", "r", false);
    net.run_for(Duration::from_secs(2), |n| media.send(n, "sim", &all));
    assert!(told(&net, "sim").is_empty(), "everything is wanted");
    let track_id = published_track(net.browser("a"));

    // Both tiles get small: the upper layers stop after three seconds, not
    // before.
    ask(&mut net, "a", &track_id, Quality::Low);
    ask(&mut net, "b", &track_id, Quality::Medium);
    net.run_for(Duration::from_millis(2800), |n| media.send(n, "sim", &all));
    assert!(told(&net, "sim").is_empty(), "lowered too soon");
    net.run_for(Duration::from_millis(400), |n| media.send(n, "sim", &all));
    assert_eq!(told(&net, "sim"), [vec!["q", "h"]]);
    ask(&mut net, "b", &track_id, Quality::Low);
    net.run_for(Duration::from_millis(3200), |n| media.send(n, "sim", &all));
    assert_eq!(told(&net, "sim").last().unwrap(), &["q"]);
    // The publisher does as told; both viewers go on with the low layer.
    media.paused = vec![1, 2];
    net.run_for(Duration::from_secs(2), |n| media.send(n, "sim", &all));
    for viewer in ["a", "b"] {
        let got = received_layers(net.browser(viewer), "sim");
        assert_eq!(got.last().unwrap().0, 0, "{viewer}: {got:?}");
    }

    // "a" wants the top layer: the publisher hears of it within a tick,
    // and once the layer flows "a" moves up to it (on its keyframe).
    let before = told(&net, "sim").len();
    ask(&mut net, "a", &track_id, Quality::High);
    net.run_for(Duration::from_millis(150), |n| media.send(n, "sim", &all));
    let now = told(&net, "sim");
    assert_eq!(now.len(), before + 1);
    assert_eq!(now.last().unwrap(), &["q", "h", "f"]);
    media.paused.clear();
    net.run_for(Duration::from_secs(2), |n| media.send(n, "sim", &all));
    let got = received_layers(net.browser("a"), "sim");
    assert_eq!(got.last().unwrap().0, 2, "a: {got:?}");
    let got = received_layers(net.browser("b"), "sim");
    assert_eq!(got.last().unwrap().0, 0, "b: {got:?}");
    assert!(net.router.stats().media.layer_updates >= 3);

    // Everyone leaves: the lowest layer only, ready for the next viewer.
    for viewer in ["a", "b"] {
        net.command(viewer, Command::Leave);
    }
    net.run_for(Duration::from_millis(3200), |n| media.send(n, "sim", &all));
    assert_eq!(told(&net, "sim").last().unwrap(), &["q"]);
}

#[test]
fn a_track_without_simulcast_is_never_told() {
    let mut net = Net::new(Duration::from_secs(8));
    let mut media = Media::new();
    net.join("p", "r", true);
    net.join("v", "r", false);
    net.run_for(Duration::from_secs(5), |n| media.send(n, &["p"]));
    assert!(told(&net, "p").is_empty());
}
