//! A small stderr logger: `<UTC time> [<thread>] <LEVEL> <target> - <message>`.
//! Level from `PADDOCK_LOG` (error, warn, info, debug, trace; default info).

use std::io::Write;

struct Logger;

impl log::Log for Logger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.level() <= log::max_level()
    }
    fn log(&self, r: &log::Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let ms = crate::server::now_ms();
        let (secs, milli) = (ms / 1000, ms % 1000);
        let (h, m, s) = ((secs / 3600) % 24, (secs / 60) % 60, secs % 60);
        let t = std::thread::current();
        let _ = writeln!(
            std::io::stderr().lock(),
            "{h:02}:{m:02}:{s:02}.{milli:03} [{}] {} {} - {}",
            t.name().unwrap_or("?"),
            r.level(),
            r.target(),
            r.args()
        );
    }
    fn flush(&self) {}
}

pub fn init() {
    let level = match std::env::var("PADDOCK_LOG")
        .unwrap_or_default()
        .to_ascii_lowercase()
        .as_str()
    {
        "error" => log::LevelFilter::Error,
        "warn" => log::LevelFilter::Warn,
        "debug" => log::LevelFilter::Debug,
        "trace" => log::LevelFilter::Trace,
        "off" => log::LevelFilter::Off,
        _ => log::LevelFilter::Info,
    };
    if log::set_logger(&Logger).is_ok() {
        log::set_max_level(level);
    }
}
