//! Rendered fragments: an event answers with HTML that `wsway.js` morphs
//! into the page element the call named (`emit(event, data, { target })`),
//! and server pushes can do the same (`wsway:render`). Only targets on the
//! event's allow-list ([`EventRoute::targets`](crate::EventRoute::targets))
//! are accepted.

use serde::Serialize;

use super::error::{EventError, truncate};
use crate::connection::handle::Handle;
use crate::connection::socket::Ws;
use crate::delivery::outbox::SendStatus;
use crate::topics::pubsub::{Published, Topics};

/// The event a server push renders with: `{"target": "#id", "html": ..}`.
/// `wsway.js` morphs `html` into the element `target` selects.
pub const RENDER_EVENT: &str = "wsway:render";

/// An HTML fragment, the reply of an event called with a target: it
/// reaches the client as `{"html": ..}`, which `wsway.js` morphs into the
/// target, keeping focus, input values and scroll positions.
///
/// The HTML goes into the page as it is: build it from user input with
/// [`escape_html`].
///
/// ```
/// use wsway::{EventError, Events, Fragment, escape_html};
///
/// let mut events = Events::<()>::new();
/// events
///     .on("greet", |_ws, name: String| {
///         Ok::<_, EventError>(Fragment::new(format!("<p>Hello, {}!</p>", escape_html(&name))))
///     })
///     .targets(["#greeting"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "typescript", derive(ts_rs::TS))]
pub struct Fragment {
    html: String,
}

impl Fragment {
    /// A fragment of this HTML.
    pub fn new(html: impl Into<String>) -> Self {
        Fragment { html: html.into() }
    }

    /// The HTML.
    pub fn html(&self) -> &str {
        &self.html
    }
}

/// `text` with `& < > " '` escaped, safe inside HTML text and quoted
/// attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[derive(Serialize)]
struct Render<'a> {
    target: &'a str,
    html: &'a str,
}

impl<D> Ws<D> {
    /// Pushes `fragment` for `wsway.js` to morph into the element `target`
    /// selects (`#members`, say).
    pub fn render(&self, target: &str, fragment: &Fragment) -> Result<SendStatus, EventError> {
        self.emit(RENDER_EVENT, &render(target, fragment))
    }
}

impl Handle {
    /// As [`Ws::render`], from any task.
    pub fn render(&self, target: &str, fragment: &Fragment) -> Result<SendStatus, EventError> {
        self.emit(RENDER_EVENT, &render(target, fragment))
    }
}

impl Topics {
    /// As [`Ws::render`], to every subscriber of `topic`.
    pub fn render(
        &self,
        topic: &str,
        target: &str,
        fragment: &Fragment,
    ) -> Result<Published, EventError> {
        self.publish_event(topic, RENDER_EVENT, &render(target, fragment))
    }
}

fn render<'a>(target: &'a str, fragment: &'a Fragment) -> Render<'a> {
    Render {
        target,
        html: &fragment.html,
    }
}

/// Whether a call may render into `target`: only into one on the event's
/// allow-list.
pub(super) fn check_target(
    event: &str,
    allowed: &[String],
    target: &str,
) -> Result<(), EventError> {
    if allowed.iter().any(|t| t == target) {
        return Ok(());
    }
    Err(refused_target(event, target))
}

/// The error for a target the event may not render into.
pub(super) fn refused_target(event: &str, target: &str) -> EventError {
    EventError::new(
        "bad_target",
        format!(
            "event `{}` cannot render into `{}`",
            truncate(event),
            truncate(target)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_html_would_read() {
        assert_eq!(
            escape_html(r#"<b onclick="x('&')">"#),
            "&lt;b onclick=&quot;x(&#39;&amp;&#39;)&quot;&gt;"
        );
        assert_eq!(escape_html("plain ü"), "plain ü");
    }

    #[test]
    fn only_listed_targets_pass() {
        let allowed = ["#feed".to_owned()];
        assert!(check_target("e", &allowed, "#feed").is_ok());
        let err = check_target("e", &allowed, "#admin").unwrap_err();
        assert_eq!(err.code(), "bad_target");
        assert_eq!(err.message(), "event `e` cannot render into `#admin`");
        assert!(check_target("e", &[], "#feed").is_err());
    }
}
