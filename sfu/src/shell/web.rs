//! The browser client, compiled into the binary so that a server is one file
//! and a page loads nothing from anywhere else.

pub const MEETING_HTML: &str = include_str!("../../../web/meeting.html");

const ASSETS: &[(&str, &str, &str)] = &[
    (
        "app.js",
        include_str!("../../../web/static/app.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "signalling.js",
        include_str!("../../../web/static/signalling.js"),
        "text/javascript; charset=utf-8",
    ),
    (
        "style.css",
        include_str!("../../../web/static/style.css"),
        "text/css; charset=utf-8",
    ),
];

/// A static asset by file name, with its content type.
pub fn asset(name: &str) -> Option<(&'static str, &'static str)> {
    ASSETS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, body, ct)| (*body, *ct))
}
