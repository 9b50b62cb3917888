//! The tuned build's kernel tuning, as the training worker runs it: CubeCL's settings for the
//! tab, the tune store that keeps each adapter's results across visits, and a count of what
//! this visit tuned and compiled, which the page shows while it happens.
//!
//! CubeCL tells of each finished tune ("Fastest result …", target `cubecl::autotune`) and each
//! compiled kernel (`cubecl::compilation`) through the `log` crate when asked to; the worker's
//! logger counts them. A plain build tunes nothing and compiles its kernels unlogged.

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::web::protocol::Update;
use crate::web::worker::outbox::Outbox;

/// The `log` target of CubeCL's autotune results.
const AUTOTUNE: &str = "cubecl::autotune";
/// The `log` targets of CubeCL's tuner at work ("Tuning …", "Load autotune cache …").
const TUNER: &str = "cubecl_runtime::tune";
/// The `log` target of CubeCL's kernel compilations.
const COMPILATION: &str = "cubecl::compilation";

static TUNED: AtomicUsize = AtomicUsize::new(0);
static COMPILED: AtomicUsize = AtomicUsize::new(0);

/// The worker's `log` sink: counts CubeCL's tunes and compilations, and tells the page of each
/// tune as it finishes (the step that tunes can run for minutes on a slow adapter); other
/// warnings and errors go to the console (a shader the browser refused, say), except the tuner's
/// own notes of each tune it starts and of its cache, which the count stands for.
struct Counter;

impl log::Log for Counter {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn || metadata.target() == AUTOTUNE || metadata.target() == COMPILATION
    }

    fn log(&self, record: &log::Record) {
        match record.target() {
            AUTOTUNE => {
                let tuned = TUNED.fetch_add(1, Ordering::Relaxed) + 1;
                Outbox.send(Update::Tuned { tuned, compiled: COMPILED.load(Ordering::Relaxed) });
            }
            COMPILATION => {
                COMPILED.fetch_add(1, Ordering::Relaxed);
            }
            target if target.starts_with(TUNER) => {}
            _ => web_sys::console::warn_1(&format!("{}: {}", record.target(), record.args()).into()),
        }
    }

    fn flush(&self) {}
}

/// Operations tuned and kernels compiled in this visit, so far.
pub fn counts() -> (usize, usize) {
    (TUNED.load(Ordering::Relaxed), COMPILED.load(Ordering::Relaxed))
}

/// Installs the counting logger (once; a second call is harmless).
fn install_logger() {
    static COUNTER: Counter = Counter;
    if log::set_logger(&COUNTER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
    }
}

/// Before the device comes up: CubeCL's settings for the tab, and its tune store opened.
///
/// The store is CubeCL's own persistence (a Turso database on the origin's private file system,
/// which a dedicated worker reaches synchronously), one file per `store` name: the page names it
/// after the adapter and the site's build (`kernels::tune_store_name`), so that a new build or
/// another GPU tunes afresh and never reads another's results. CubeCL validates every stored
/// result against the candidate kernels it was tuned among, as natively. Where the store cannot
/// open (no OPFS, another tab holds it), CubeCL tunes into memory, as before: nothing fails.
#[cfg(feature = "web-autotune")]
pub async fn prepare(store: &str) {
    use cubecl_environment::config::logger::{LogCrateLevel, LoggerConfig};
    use cubecl_runtime::config::autotune::AutotuneLogLevel;
    use cubecl_runtime::config::compilation::CompilationLogLevel;
    use cubecl_runtime::config::{CubeClRuntimeConfig, RuntimeConfig};

    install_logger();
    let mut config = CubeClRuntimeConfig::default();
    config.autotune.logger = LoggerConfig { log: Some(LogCrateLevel::Info), level: AutotuneLogLevel::Minimal, ..Default::default() };
    config.compilation.logger = LoggerConfig { log: Some(LogCrateLevel::Info), level: CompilationLogLevel::Basic, ..Default::default() };
    config.environment.name = store.to_string();
    // Unless something read CubeCL's settings first (nothing does before the device): then
    // its defaults stay, and the results last this visit only.
    if !CubeClRuntimeConfig::try_set(config) {
        web_sys::console::warn_1(&"CubeCL's settings were read before the worker set them: this visit's tune results are not stored".into());
    }
    cubecl_environment::environment::open().await;
}

/// The plain build tunes nothing: only the logger, for warnings.
#[cfg(not(feature = "web-autotune"))]
pub async fn prepare(_store: &str) {
    install_logger();
}
