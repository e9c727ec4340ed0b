//! A global tracing subscriber that keeps every event and every span's fields, at every level
//! (and `log` records, through tracing-subscriber's `log` bridge), for a test to read back.
#![allow(unreachable_pub)]

use std::fmt::{self, Write as _};
use std::sync::{Mutex, Once};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

/// One captured event, or the fields of a span.
#[derive(Clone, Debug)]
pub struct Line {
    pub level: Level,
    pub target: String,
    /// The `message` field (empty for spans and events without one).
    pub message: String,
    /// Every field, `name=value` (values in `Debug` form), the message included.
    pub text: String,
}

static LINES: Mutex<Vec<Line>> = Mutex::new(Vec::new());
static INSTALL: Once = Once::new();

/// Installs the capturing subscriber for the whole test process (once).
pub fn install() {
    INSTALL.call_once(|| {
        tracing_subscriber::registry()
            .with(Capture)
            .try_init()
            .expect("no other global subscriber in this test binary");
    });
}

/// Everything captured since the last call.
pub fn take() -> Vec<Line> {
    std::mem::take(&mut *LINES.lock().unwrap())
}

struct Capture;

impl Capture {
    fn keep(level: Level, target: &str, fields: impl FnOnce(&mut Fields)) {
        let mut visitor = Fields::default();
        fields(&mut visitor);
        LINES.lock().unwrap().push(Line {
            level,
            target: target.to_owned(),
            message: visitor.message,
            text: visitor.text,
        });
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        Self::keep(*meta.level(), meta.target(), |v| event.record(v));
    }

    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        let meta = attrs.metadata();
        Self::keep(*meta.level(), meta.target(), |v| attrs.record(v));
    }

    fn on_record(&self, span: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(meta) = ctx.metadata(span) {
            Self::keep(*meta.level(), meta.target(), |v| values.record(v));
        }
    }
}

#[derive(Default)]
struct Fields {
    message: String,
    text: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.text, "{}={value} ", field.name());
        if field.name() == "message" {
            value.clone_into(&mut self.message);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let _ = write!(self.text, "{}={value:?} ", field.name());
        if field.name() == "message" {
            self.message = format!("{value:?}");
        }
    }
}
