//! The `log` crate's records and panics, to Envoy's log.

use super::abi::{self, Level};

struct EnvoyLog;

static LOGGER: EnvoyLog = EnvoyLog;

/// Installs the logger (info and above) and a panic hook that logs the
/// panic's message at critical before the VM traps.
pub fn install() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
    std::panic::set_hook(Box::new(|panic| {
        abi::log(Level::Critical, &panic.to_string());
    }));
}

impl log::Log for EnvoyLog {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Error => Level::Error,
            log::Level::Warn => Level::Warn,
            log::Level::Info => Level::Info,
            log::Level::Debug | log::Level::Trace => Level::Debug,
        };
        abi::log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}
