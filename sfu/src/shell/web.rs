//! The browser client, compiled into the binary so that a server is one file
//! and a page loads nothing from anywhere else.

const MEETING_HTML: &str = include_str!("../../../web/meeting.html");

/// The meeting page, telling the widget code which parents to trust.
pub fn meeting_page(widget_origins: &[String]) -> String {
    // Validated origins hold no quotes or markup.
    let filled = format!(
        r#"<meta name="meet-widget-origins" content="{}">"#,
        widget_origins.join(" ")
    );
    MEETING_HTML.replacen(WIDGET_ORIGINS_SLOT, &filled, 1)
}

const WIDGET_ORIGINS_SLOT: &str = r#"<meta name="meet-widget-origins" content="">"#;

/// One of the client's JavaScript modules in `web/static/`, by file name.
macro_rules! module {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!("../../../web/static/", $name)),
            "text/javascript; charset=utf-8",
        )
    };
}

const ASSETS: &[(&str, &str, &str)] = &[
    // The entry point (meeting.html loads it) and the modules it imports.
    module!("app.js"),
    module!("chat.js"),
    module!("devices.js"),
    module!("hands.js"),
    module!("host.js"),
    module!("i18n.js"),
    module!("ice.js"),
    module!("identity.js"),
    module!("lang-en.js"),
    module!("lang-sv.js"),
    module!("layout.js"),
    module!("media.js"),
    module!("meeting.js"),
    module!("peers.js"),
    module!("people.js"),
    module!("prejoin.js"),
    module!("quality.js"),
    module!("speakers.js"),
    module!("session.js"),
    module!("shortcuts.js"),
    module!("signalling.js"),
    module!("state.js"),
    module!("widget.js"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every module a served module imports (`from './x.js'`) is served too:
    /// a file left out of `ASSETS` would break the page only in a browser.
    #[test]
    fn imported_modules_are_served() {
        let mut imports = 0;
        for (name, body, _) in ASSETS {
            for rest in body.split("from './").skip(1) {
                let Some((imported, _)) = rest.split_once('\'') else {
                    panic!("{name}: an import without its closing quote");
                };
                assert!(
                    asset(imported).is_some(),
                    "{name} imports {imported}, which is not served"
                );
                imports += 1;
            }
        }
        assert!(
            imports > 0,
            "no imports found: did the import syntax change?"
        );
        assert!(MEETING_HTML.contains("src=\"/static/app.js\""));
    }

    #[test]
    fn the_page_names_the_trusted_widget_parents() {
        let page = meeting_page(&["https://a.example".into(), "http://b.example:8008".into()]);
        assert!(page.contains(
            r#"<meta name="meet-widget-origins" content="https://a.example http://b.example:8008">"#
        ));
        assert!(!page.contains(WIDGET_ORIGINS_SLOT));
    }
}
