//! What the server records with `tracing`, captured for tests: every
//! span's fields (as created and as recorded later) and every event with
//! the span it was recorded in.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;

pub type Fields = BTreeMap<String, String>;

#[derive(Clone, Debug, Default)]
pub struct SpanRecord {
    pub name: String,
    pub fields: Fields,
    pub events: Vec<Fields>,
}

/// Everything recorded in this process since the capture was installed.
#[derive(Default)]
pub struct Captured {
    spans: Mutex<HashMap<u64, SpanRecord>>,
    /// Events outside any span.
    loose: Mutex<Vec<Fields>>,
}

impl Captured {
    /// The spans whose `field` has the value `value`.
    pub fn spans_where(&self, field: &str, value: &str) -> Vec<SpanRecord> {
        let spans = self.spans.lock().unwrap();
        spans
            .values()
            .filter(|s| s.fields.get(field).map(String::as_str) == Some(value))
            .cloned()
            .collect()
    }

    /// Every field name and value, span fields and event fields alike.
    pub fn all_text(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut push = |f: &Fields| out.extend(f.iter().map(|(k, v)| format!("{k}={v}")));
        for s in self.spans.lock().unwrap().values() {
            push(&s.fields);
            s.events.iter().for_each(&mut push);
        }
        self.loose.lock().unwrap().iter().for_each(push);
        out
    }
}

/// Installs the capture as the process' subscriber (once) and returns it.
pub fn capture() -> Arc<Captured> {
    static CAPTURED: OnceLock<Arc<Captured>> = OnceLock::new();
    CAPTURED
        .get_or_init(|| {
            let captured = Arc::new(Captured::default());
            let subscriber = tracing_subscriber::registry().with(Capture(captured.clone()));
            tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
            captured
        })
        .clone()
}

struct Capture(Arc<Captured>);

/// Span ids are reused once a span closes; this one is not.
struct Serial(u64);

struct Visitor<'a>(&'a mut Fields);

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        let serial = NEXT.fetch_add(1, Ordering::Relaxed);
        let mut record = SpanRecord {
            name: attrs.metadata().name().to_owned(),
            ..SpanRecord::default()
        };
        attrs.record(&mut Visitor(&mut record.fields));
        self.0.spans.lock().unwrap().insert(serial, record);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(Serial(serial));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let Some(serial) = span.extensions().get::<Serial>().map(|s| s.0) else {
            return;
        };
        if let Some(record) = self.0.spans.lock().unwrap().get_mut(&serial) {
            values.record(&mut Visitor(&mut record.fields));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut fields = Fields::new();
        event.record(&mut Visitor(&mut fields));
        let serial = ctx
            .event_span(event)
            .and_then(|s| s.extensions().get::<Serial>().map(|s| s.0));
        match serial.and_then(|n| {
            let mut spans = self.0.spans.lock().unwrap();
            spans.get_mut(&n).map(|r| r.events.push(fields.clone()))
        }) {
            Some(()) => {}
            None => self.0.loose.lock().unwrap().push(fields),
        }
    }
}
