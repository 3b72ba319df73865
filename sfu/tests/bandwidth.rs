//! Each subscriber gets what its own link carries: simulated links of a
//! given rate between the server and a browser (a queue that drains at
//! that rate and drops what overflows its buffer), a publisher sending
//! three simulcast layers at a browser's usual rates, and the layers each
//! subscriber receives as its estimate and allocator follow the link.
//! Simulated time: a minute of meeting takes a few seconds.

mod net;

use std::time::Duration;

use net::*;

/// Bytes per frame at 25 frames a second: 150 kbit/s, 500 kbit/s and
/// 1.5 Mbit/s, as a browser's camera sends its three layers.
const SIZES: [usize; 3] = [750, 2500, 7500];

/// "sim" publishes three layers at a browser's rates; `viewers` join.
fn meeting(viewers: &[&str]) -> (Net, SimulcastMedia) {
    let mut net = Net::new(Duration::from_secs(8));
    let media = SimulcastMedia {
        sizes: Some(SIZES),
        ..Default::default()
    };
    net.join_publishing("sim", "r", SIMULCAST_VIDEO);
    for v in viewers {
        net.join(v, "r", false);
    }
    (net, media)
}

/// Runs for `d`, noting the layer `viewer` is on every 100 ms.
fn watch(
    net: &mut Net,
    media: &mut SimulcastMedia,
    viewer: &str,
    d: Duration,
) -> Vec<(Duration, Option<u8>)> {
    let start = net.now;
    let mut seen = Vec::new();
    let mut count = received_layers(net.browser_ref(viewer), "sim").len();
    let mut next = start;
    net.run_for(d, |n| {
        media.send(n, "sim", &[0, 1, 2]);
        if n.now >= next {
            next += Duration::from_millis(100);
            seen.push((n.now - start, newest_layer(n, viewer, &mut count)));
        }
    });
    seen
}

/// The layer of the newest packet `viewer` received since `count` of them.
fn newest_layer(net: &Net, viewer: &str, count: &mut usize) -> Option<u8> {
    let got = received_layers(net.browser_ref(viewer), "sim");
    let layer = got[*count..].last().map(|l| l.0);
    *count = got.len();
    layer
}

/// The layer at the end of `seen`, and when it was first reached for good.
fn settled(seen: &[(Duration, Option<u8>)]) -> (u8, Duration) {
    let last = seen
        .iter()
        .rev()
        .find_map(|s| s.1)
        .expect("something arrived");
    let since = seen
        .iter()
        .rposition(|s| s.1.is_some_and(|l| l != last))
        .map_or(Duration::ZERO, |i| seen[i].0);
    (last, since)
}

/// Longest run of 100 ms slices in which nothing arrived.
fn longest_freeze(seen: &[(Duration, Option<u8>)]) -> usize {
    seen.split(|s| s.1.is_some())
        .map(<[_]>::len)
        .max()
        .unwrap_or(0)
}

#[test]
fn a_subscriber_on_a_700_kbit_link_settles_on_the_middle_layer_without_freezes() {
    let (mut net, mut media) = meeting(&["viewer"]);
    net.limit_downlink("viewer", Some(700_000.0));
    let seen = watch(&mut net, &mut media, "viewer", Duration::from_secs(20));
    let (layer, since) = settled(&seen);
    assert_eq!(layer, 1, "{seen:?}");
    let since = since.max(first(&seen, Duration::ZERO, |l| l.is_some()).unwrap());
    assert!(
        since <= Duration::from_secs(5),
        "settled after {since:?}: {seen:?}"
    );
    let after: Vec<_> = seen.iter().filter(|s| s.0 > since).cloned().collect();
    assert_eq!(longest_freeze(&after), 0, "froze after settling: {seen:?}");
    println!(
        "settled on the middle layer after {since:?}; {} datagrams dropped by the link",
        dropped(&net)
    );
}

fn dropped(net: &Net) -> usize {
    net.downlinks.values().map(|l| l.dropped).sum()
}

/// When `seen` first shows `layer` (or nothing, for a pause: `None`),
/// after `from`.
fn first(
    seen: &[(Duration, Option<u8>)],
    from: Duration,
    f: impl Fn(Option<u8>) -> bool,
) -> Option<Duration> {
    seen.iter().find(|s| s.0 >= from && f(s.1)).map(|s| s.0)
}

#[test]
fn a_link_that_shrinks_gets_the_low_layer_within_2_s_and_the_top_again_within_15_s_of_recovering() {
    let (mut net, mut media) = meeting(&["viewer"]);
    net.limit_downlink("viewer", Some(3_000_000.0));
    let seen = watch(&mut net, &mut media, "viewer", Duration::from_secs(8));
    assert_eq!(
        settled(&seen).0,
        2,
        "not on the top layer at 3 Mbit/s: {seen:?}"
    );

    net.limit_downlink("viewer", Some(300_000.0));
    let seen = watch(&mut net, &mut media, "viewer", Duration::from_secs(10));
    // Down to the low layer (or paused) within 2 s, and nothing better
    // after.
    let low = seen
        .iter()
        .rev()
        .find(|s| s.1.is_some_and(|l| l > 0))
        .map(|s| s.0)
        .unwrap_or_default();
    assert!(
        low <= Duration::from_secs(2),
        "stepped down after {low:?}: {seen:?}"
    );
    assert!(
        seen.iter().any(|s| s.1 == Some(0)),
        "paused for good: {seen:?}"
    );

    net.limit_downlink("viewer", None);
    let seen = watch(&mut net, &mut media, "viewer", Duration::from_secs(20));
    let top = first(&seen, Duration::ZERO, |l| l == Some(2)).expect("never back on top");
    assert!(
        top <= Duration::from_secs(15),
        "back on top after {top:?}: {seen:?}"
    );
    let (layer, since) = settled(&seen);
    assert_eq!(layer, 2, "{seen:?}");
    println!(
        "down within {low:?}; top again {top:?} after the limit went, for good after {since:?}"
    );
}

#[test]
fn three_subscribers_get_what_each_link_carries_and_none_holds_back_another() {
    let (mut net, mut media) = meeting(&["slow", "middling", "fast"]);
    net.limit_downlink("slow", Some(300_000.0));
    net.limit_downlink("middling", Some(1_000_000.0));
    let mut seen: Vec<Vec<(Duration, Option<u8>)>> = vec![Vec::new(); 3];
    let names = ["slow", "middling", "fast"];
    let mut counts = [0usize; 3];
    let start = net.now;
    let mut next = start;
    net.run_for(Duration::from_secs(15), |n| {
        media.send(n, "sim", &[0, 1, 2]);
        if n.now >= next {
            next += Duration::from_millis(100);
            for (i, name) in names.iter().enumerate() {
                seen[i].push((n.now - start, newest_layer(n, name, &mut counts[i])));
            }
        }
    });
    for (i, want) in [0u8, 1, 2].iter().enumerate() {
        assert_eq!(settled(&seen[i]).0, *want, "{}: {:?}", names[i], seen[i]);
    }
    // The one on a link without limit, once its estimate found the top
    // layer, kept it, whatever the others' links did.
    let fast: Vec<_> = seen[2].iter().filter_map(|s| s.1).collect();
    let top = fast
        .iter()
        .position(|&l| l == 2)
        .expect("fast never on top");
    assert!(fast[top..].iter().all(|&l| l == 2), "fast: {:?}", seen[2]);
    assert!(top <= 40, "fast on top after {top} slices: {:?}", seen[2]);
}

#[test]
fn a_link_between_two_layers_gets_the_top_layer_at_a_lower_frame_rate() {
    // The publisher sends each layer in three temporal layers, as browsers
    // send VP8: the top layer's base and middle temporal layers cost half
    // of it (750 kbit/s here), which a 1 Mbit/s link carries; without
    // them the link would get the middle layer.
    let (mut net, mut media) = meeting(&["viewer"]);
    media.temporal = true;
    net.limit_downlink("viewer", Some(1_000_000.0));
    let seen = watch(&mut net, &mut media, "viewer", Duration::from_secs(15));
    let (layer, since) = settled(&seen);
    assert_eq!(layer, 2, "{seen:?}");
    // At half the frame rate a picture comes every 80 ms: a 100 ms slice
    // may see none (a probe's loss delays one), two may not.
    let after: Vec<_> = seen.iter().filter(|s| s.0 > since).cloned().collect();
    assert!(
        longest_freeze(&after) <= 1,
        "froze after settling: {seen:?}"
    );
    // What came after it settled: the top layer's base and middle
    // temporal layers only, one continuous stream to the decoder (no
    // sequence number and no picture id missing, once retransmissions
    // filled what the link lost).
    let got = received_layers(net.browser_ref("viewer"), "sim");
    let video = video_from(net.browser_ref("viewer"), "sim");
    let tail = got.len() - 60;
    // Every number from the oldest to the newest of the tail arrived (some
    // of them before it, the link's losses resent later).
    let complete = |field: fn(&(u8, u16, u32, u16)) -> u16| {
        let all: std::collections::HashSet<u16> = got.iter().map(field).collect();
        let first = got[tail..].iter().map(field).min().unwrap();
        let last = got[tail..].iter().map(field).max().unwrap();
        last - first < 1000 && (first..=last).all(|v| all.contains(&v))
    };
    assert!(got[tail..].iter().all(|g| g.0 == 2), "{:?}", &got[tail..]);
    assert!(complete(|g| g.1), "sequence gap: {:?}", &got[tail..]);
    assert!(complete(|g| g.3), "picture id missing: {:?}", &got[tail..]);
    for p in &video[tail..] {
        let tid = p.payload[4] >> 6;
        assert!(tid <= 1, "temporal layer {tid} forwarded");
    }
    println!(
        "settled on the top layer's lower temporal layers after {since:?}; {} datagrams dropped",
        dropped(&net)
    );
}

#[test]
fn a_keyframe_is_paced_into_a_narrow_link_not_burst() {
    // A 400 kbit/s link with 200 ms of buffer (10 kB) gets the low layer;
    // its keyframes, every 2 s, are 15 kB at once. Sent as they come they
    // would overflow the buffer each time (the keyframe lost, asked for
    // again); the pacer spreads each over about 200 ms.
    let (mut net, mut media) = meeting(&["viewer"]);
    media.keyframe_sizes = Some([15_000, 30_000, 60_000]);
    media.keyframe_every = Some(50);
    net.limit_downlink("viewer", Some(400_000.0));
    // Its tile is small: it asks for the low layer, so nothing better is
    // wanted and no probe (which overfills a link on purpose) muddles
    // the count.
    net.run_for(Duration::from_millis(500), |n| {
        media.send(n, "sim", &[0, 1, 2])
    });
    let track_id = published_track(net.browser("viewer"));
    net.command(
        "viewer",
        sfu::room::api::Command::SetQuality {
            track_id,
            quality: sfu::room::api::Quality::Low,
        },
    );
    let seen = watch(&mut net, &mut media, "viewer", Duration::from_secs(8));
    assert_eq!(settled(&seen).0, 0, "not on the low layer: {seen:?}");
    let dropped_before = dropped(&net);
    let seen = watch(&mut net, &mut media, "viewer", Duration::from_secs(12));
    let dropped_after = dropped(&net) - dropped_before;
    assert!(
        seen.iter().all(|s| s.1 == Some(0) || s.1.is_none()),
        "{seen:?}"
    );
    assert!(longest_freeze(&seen) <= 2, "froze: {seen:?}");
    assert_eq!(
        dropped_after, 0,
        "the link dropped {dropped_after} datagrams over six keyframes"
    );
    println!("six keyframes of 15 kB through a 400 kbit/s link: {dropped_after} datagrams dropped");
}
