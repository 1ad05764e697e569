//! Logging setup: human-readable by default, JSON for production (`log.format = "json"`).
//! `RUST_LOG`, when set, overrides `log.filter`.

use tracing_subscriber::EnvFilter;

use crate::settings::LogSettings;

pub fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.filter));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if settings.format == "json" {
        builder.json().with_current_span(true).init();
    } else {
        builder.init();
    }
}
