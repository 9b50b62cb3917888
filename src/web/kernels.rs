//! Which of burn's GPU kernel paths the tab runs on a WebGPU adapter.
//!
//! burn chooses its kernels at compile time: with its `autotune` feature it times the candidate
//! kernels of each operation and shape on the GPU once and keeps the fastest; without it, one
//! fixed kernel per operation. Tuning pays on a real GPU, and stalls a software one (SwiftShader,
//! lavapipe: the candidates are timed on the CPU, minutes for the `tiny` model's first steps).
//! So the site ships the wasm twice (`scripts/dev/finish-site`): the plain build, which draws the
//! page, and the tuned one (`--features web-autotune`, `dist/tuned/`), which the page starts its
//! training worker on when the adapter is hardware. The tuned build also has burn's kernel
//! fusion (element-wise operations joined into the kernels around them), as the native build
//! does; `tests/lockstep.rs` checks that fused kernels train and sample as burn-flex does.

use std::fmt;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

/// The kernels of one wasm build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelPath {
    /// One fixed kernel per operation: what a software adapter (and the CPU) runs.
    Plain,
    /// burn's autotuned and fused kernels: what a hardware adapter runs.
    Tuned,
}

named!(serde KernelPath, "kernel path", [Plain => "plain", Tuned => "tuned"]);

/// What the browser says about its adapter: `GPUAdapter.info` (WebGPU's `GPUAdapterInfo`:
/// vendor, architecture, device, description, all possibly empty) and whether it is a fallback
/// adapter (`info.isFallbackAdapter`, formerly `GPUAdapter.isFallbackAdapter`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AdapterFacts {
    pub vendor: String,
    pub architecture: String,
    pub device: String,
    pub description: String,
    pub fallback: bool,
}

/// Software implementations of WebGPU's backends, as adapters name themselves: Chromium's
/// SwiftShader (vendor `google`, architecture `swiftshader`), Mesa's llvmpipe / lavapipe /
/// softpipe, and Windows' WARP ("Microsoft Basic Render Driver").
const SOFTWARE: &[&str] = &["swiftshader", "llvmpipe", "lavapipe", "softpipe", "microsoft basic render"];

impl AdapterFacts {
    /// Whether the adapter runs on the CPU: a fallback adapter, or one that names a software
    /// implementation.
    pub fn is_software(&self) -> bool {
        let words = [&self.vendor, &self.architecture, &self.device, &self.description].map(|s| s.to_lowercase());
        self.fallback || SOFTWARE.iter().any(|name| words.iter().any(|w| w.contains(name)))
    }
}

impl fmt::Display for AdapterFacts {
    /// The adapter's non-empty names, joined: "google swiftshader".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [&self.vendor, &self.architecture, &self.device, &self.description]
            .into_iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
            .collect();
        if names.is_empty() { f.write_str("an adapter that gives no name") } else { f.write_str(&names.join(" ")) }
    }
}

impl KernelPath {
    /// The kernels for an adapter: tuned on hardware, plain on software. `None` (no adapter,
    /// no WebGPU): plain, for the CPU backend.
    pub fn for_adapter(adapter: Option<&AdapterFacts>) -> Self {
        match adapter {
            Some(facts) if !facts.is_software() => Self::Tuned,
            _ => Self::Plain,
        }
    }

    /// The kernels this build was compiled with.
    pub fn of_this_build() -> Self {
        if cfg!(feature = "web-autotune") { Self::Tuned } else { Self::Plain }
    }

    /// What the page says when training starts: tuning makes a GPU's first steps slower (each
    /// new operation and shape times its candidates; the fixed kernels run meanwhile). The
    /// results are kept for the next visit (the worker's tune store, `web/worker/tuning.rs`).
    pub fn training_status(self) -> &'static str {
        match self {
            Self::Plain => "Training…",
            Self::Tuned => "Training… (the first steps of a first visit also tune burn's kernels for this GPU, so they are slower)",
        }
    }

    /// In words, for the page.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Plain => "plain (one kernel per operation)",
            Self::Tuned => "autotuned and fused (burn times its candidate kernels on this GPU and joins element-wise operations)",
        }
    }
}

/// How long the tuned build's first training step may run before the page restarts the run on
/// the plain build. That step compiles and tunes every operation of the model: on a hardware GPU
/// seconds to a minute; on a software adapter, which the tuned build never gets unless asked,
/// minutes (SwiftShader: docs/numbers.md#the-tuned-build-on-swiftshader). Three minutes is
/// past any GPU worth tuning for, and still "training moves within a few minutes".
pub const FIRST_STEP_LIMIT: Duration = Duration::from_secs(180);

/// A crash of the tuned worker before it finished this many steps is taken as its kernels'
/// fault (the plain build takes over); a later one is an ordinary crash (reload resumes).
pub const TRUSTED_AFTER_STEPS: usize = 10;

/// Why the page left the tuned kernels, in words for the visitor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fallback {
    /// The tuned worker failed before it could train (its wasm, its device).
    DidNotStart(String),
    /// It crashed in its first steps.
    Crashed { step: usize, detail: String },
    /// Its first step was still running after [`FIRST_STEP_LIMIT`].
    Stalled { seconds: u64 },
    /// Its loss was not finite at `step`, and the plain build's, from the same save, was.
    NotFinite { step: usize },
}

impl fmt::Display for Fallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DidNotStart(detail) => write!(f, "the tuned kernels' build failed to start ({detail})"),
            Self::Crashed { step, detail } => write!(f, "the tuned kernels crashed in training step {step} ({detail})"),
            Self::Stalled { seconds } => write!(f, "the tuned kernels' first training step was still running after {seconds} s"),
            Self::NotFinite { step } => write!(f, "the tuned kernels gave a loss that is not a number at step {step}, where the plain ones gave a finite one"),
        }
    }
}

/// What the page does about an event of its training worker ([`KernelWatch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing: the worker goes on.
    Keep,
    /// Restart the run on the plain build from its last save, and remember the choice for this
    /// adapter and build.
    FallBack(Fallback),
    /// Restart on the plain build from the last save to find out whether the kernels gave the
    /// non-finite loss at `step`; remember nothing yet.
    CheckOnPlain { step: usize },
    /// The plain build passed the step where the tuned one gave a non-finite loss: remember.
    Confirmed(Fallback),
    /// The plain build diverged too: the learning rate did it, not the kernels (the session's
    /// divergence message says what to do); nothing is remembered.
    NotTheKernels,
}

/// The page's watch over its training worker's kernels: which events of a tuned worker mean
/// its kernels failed, and the check of a non-finite loss on the plain build. Pure, so that each
/// rule is tested natively; the page (`web/page/kernel_watch.rs`) feeds it the worker's events
/// and acts on its verdicts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KernelWatch {
    /// The plain build runs, or the visitor chose the kernels (`?kernels=`): nothing to watch.
    Off,
    /// A tuned worker, with the training steps it finished so far.
    Tuned { steps: usize },
    /// The plain build retrains from the last save past `step`, where the tuned one diverged.
    Checking { step: usize },
}

impl KernelWatch {
    /// The watch of a worker started on `path`; `chosen`: the address named the kernels.
    pub fn new(path: KernelPath, chosen: bool) -> Self {
        match (path, chosen) {
            (KernelPath::Tuned, false) => Self::Tuned { steps: 0 },
            _ => Self::Off,
        }
    }

    /// A training step finished (the run is now at `step`).
    pub fn on_step(&mut self, step: usize) -> Verdict {
        match self {
            Self::Tuned { steps } => {
                *steps += 1;
                Verdict::Keep
            }
            Self::Checking { step: diverged } if step >= *diverged => {
                let fallback = Fallback::NotFinite { step: *diverged };
                *self = Self::Off;
                Verdict::Confirmed(fallback)
            }
            _ => Verdict::Keep,
        }
    }

    /// The worker died or panicked, while it was at training step `step` (the run's step + 1 while
    /// training) or before it was ready (`started`: false).
    pub fn on_crash(&mut self, started: bool, step: usize, detail: &str) -> Verdict {
        match *self {
            Self::Tuned { .. } if !started => {
                *self = Self::Off;
                Verdict::FallBack(Fallback::DidNotStart(detail.to_string()))
            }
            Self::Tuned { steps } if steps < TRUSTED_AFTER_STEPS => {
                *self = Self::Off;
                Verdict::FallBack(Fallback::Crashed { step, detail: detail.to_string() })
            }
            _ => Verdict::Keep,
        }
    }

    /// The worker reported the kernels of the build it runs: the plain ones where the tuned were
    /// asked for means the tuned build's wasm did not load (`worker.js` then runs the plain one
    /// in the same worker): nothing to restart, but remembered as a failure to start.
    pub fn on_build(&mut self, path: KernelPath) -> Verdict {
        match (&*self, path) {
            (Self::Tuned { .. }, KernelPath::Plain) => {
                *self = Self::Off;
                Verdict::Confirmed(Fallback::DidNotStart("its wasm did not load; the browser's console says why".into()))
            }
            _ => Verdict::Keep,
        }
    }

    /// The first step has run for [`FIRST_STEP_LIMIT`] (the page's timer, armed when training
    /// starts on a tuned worker that has finished no step).
    pub fn on_first_step_timer(&mut self) -> Verdict {
        match *self {
            Self::Tuned { steps: 0 } => {
                *self = Self::Off;
                Verdict::FallBack(Fallback::Stalled { seconds: FIRST_STEP_LIMIT.as_secs() })
            }
            _ => Verdict::Keep,
        }
    }

    /// The loss was not finite at `step`.
    pub fn on_diverged(&mut self, step: usize) -> Verdict {
        match *self {
            Self::Tuned { .. } => {
                *self = Self::Checking { step };
                Verdict::CheckOnPlain { step }
            }
            Self::Checking { .. } => {
                *self = Self::Off;
                Verdict::NotTheKernels
            }
            Self::Off => Verdict::Keep,
        }
    }

    /// Whether the first-step timer means anything now: a tuned worker that has finished no step.
    pub fn awaits_first_step(&self) -> bool {
        matches!(self, Self::Tuned { steps: 0 })
    }
}

/// Where the page remembers, across visits, that the tuned kernels failed on an adapter in a
/// build (`localStorage`): the site's build stamp (`scripts/dev/finish-site`) and the adapter in
/// words ([`AdapterFacts`]'s `Display`, whatever of it the browser gives). A new build tries
/// the tuned kernels again.
pub fn memory_key(build: &str, adapter: &AdapterFacts) -> String {
    format!("tabdiffusion/kernels/{build}/{adapter}")
}

/// The prefix of every [`memory_key`], for removing other builds' entries.
pub const MEMORY_PREFIX: &str = "tabdiffusion/kernels/";

/// The name of CubeCL's tune store (its "environment": one database file on the origin's
/// private file system) for an adapter in a build: its results are this adapter's, measured
/// with this build's kernels. Letters, digits and dashes, as a file name wants.
pub fn tune_store_name(build: &str, adapter: &AdapterFacts) -> String {
    let clean = |s: &str| s.chars().filter(char::is_ascii_alphanumeric).collect::<String>();
    // A hash of the adapter's words as well, since their letters alone may coincide for two
    // adapters. (std's hasher may change with the compiler; so does the build, and its stamp.)
    let mut hasher = DefaultHasher::new();
    adapter.to_string().hash(&mut hasher);
    format!("tabdiffusion-{}-{}-{:x}", clean(build), clean(&adapter.to_string()), hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(vendor: &str, architecture: &str, description: &str, fallback: bool) -> AdapterFacts {
        AdapterFacts { vendor: vendor.into(), architecture: architecture.into(), description: description.into(), fallback, ..Default::default() }
    }

    /// Adapters as browsers describe them (Chromium's `GPUAdapterInfo`, its `chrome://gpu`
    /// page; Mesa's and Windows' driver names).
    #[test]
    fn software_adapters_get_the_plain_kernels_and_hardware_the_tuned() {
        let software = [
            facts("google", "swiftshader", "", false),
            facts("", "", "SwiftShader Device (Subzero)", false),
            facts("mesa", "", "llvmpipe (LLVM 19.1.7, 256 bits)", false),
            facts("", "", "Lavapipe", false),
            facts("microsoft", "", "Microsoft Basic Render Driver", false),
            facts("nvidia", "ampere", "", true),
        ];
        for adapter in &software {
            assert!(adapter.is_software(), "{adapter:?}");
            assert_eq!(KernelPath::for_adapter(Some(adapter)), KernelPath::Plain, "{adapter:?}");
        }
        let hardware = [
            facts("nvidia", "ampere", "NVIDIA GeForce RTX 3080", false),
            facts("apple", "metal-3", "", false),
            facts("intel", "gen-12lp", "", false),
            facts("amd", "rdna-3", "", false),
            facts("", "", "", false),
        ];
        for adapter in &hardware {
            assert_eq!(KernelPath::for_adapter(Some(adapter)), KernelPath::Tuned, "{adapter:?}");
        }
        assert_eq!(KernelPath::for_adapter(None), KernelPath::Plain, "no adapter: the CPU");
    }

    /// A crash or a stall in the first steps falls back at once; a crash after them, or any
    /// event of a plain worker or one whose kernels the address chose, does not.
    #[test]
    fn the_watch_falls_back_on_a_tuned_worker_that_fails_early_only() {
        let mut watch = KernelWatch::new(KernelPath::Tuned, false);
        assert!(watch.awaits_first_step());
        assert_eq!(watch.on_crash(false, 0, "no adapter"), Verdict::FallBack(Fallback::DidNotStart("no adapter".into())));
        assert_eq!(watch, KernelWatch::Off, "one fallback per worker");

        // worker.js ran the plain build because the tuned one did not load: remembered, no restart.
        let mut watch = KernelWatch::new(KernelPath::Tuned, false);
        assert_eq!(watch.on_build(KernelPath::Tuned), Verdict::Keep);
        assert!(matches!(watch.on_build(KernelPath::Plain), Verdict::Confirmed(Fallback::DidNotStart(_))));
        assert_eq!(watch, KernelWatch::Off);

        let mut watch = KernelWatch::new(KernelPath::Tuned, false);
        assert_eq!(watch.on_first_step_timer(), Verdict::FallBack(Fallback::Stalled { seconds: FIRST_STEP_LIMIT.as_secs() }));

        let mut watch = KernelWatch::new(KernelPath::Tuned, false);
        assert_eq!(watch.on_step(4), Verdict::Keep);
        assert!(!watch.awaits_first_step());
        assert_eq!(watch.on_first_step_timer(), Verdict::Keep, "a step finished: the timer is stale");
        assert_eq!(watch.on_crash(true, 6, "panic"), Verdict::FallBack(Fallback::Crashed { step: 6, detail: "panic".into() }));

        let mut watch = KernelWatch::new(KernelPath::Tuned, false);
        for step in 1..=TRUSTED_AFTER_STEPS {
            watch.on_step(step);
        }
        assert_eq!(watch.on_crash(true, TRUSTED_AFTER_STEPS + 1, "panic"), Verdict::Keep, "after the first steps a crash is an ordinary one");

        for mut watch in [KernelWatch::new(KernelPath::Plain, false), KernelWatch::new(KernelPath::Tuned, true)] {
            assert_eq!(watch.on_crash(false, 0, "x"), Verdict::Keep);
            assert_eq!(watch.on_first_step_timer(), Verdict::Keep);
            assert_eq!(watch.on_diverged(3), Verdict::Keep);
            assert_eq!(watch.on_build(KernelPath::Plain), Verdict::Keep);
        }
    }

    /// A non-finite loss of the tuned kernels is checked on the plain ones from the last save:
    /// remembered only if the plain ones pass that step; if they diverge too, it was the
    /// learning rate.
    #[test]
    fn a_non_finite_loss_is_the_kernels_only_if_the_plain_build_passes_the_step() {
        let mut watch = KernelWatch::new(KernelPath::Tuned, false);
        watch.on_step(1);
        assert_eq!(watch.on_diverged(7), Verdict::CheckOnPlain { step: 7 });
        assert_eq!(watch.on_step(5), Verdict::Keep, "before the step it diverged at");
        assert_eq!(watch.on_step(7), Verdict::Confirmed(Fallback::NotFinite { step: 7 }));
        assert_eq!(watch, KernelWatch::Off);

        let mut watch = KernelWatch::new(KernelPath::Tuned, false);
        watch.on_diverged(7);
        assert_eq!(watch.on_diverged(7), Verdict::NotTheKernels);
        assert_eq!(watch, KernelWatch::Off);
    }

    #[test]
    fn the_memory_and_the_tune_store_are_per_adapter_and_build() {
        let nvidia = facts("nvidia", "ampere", "", false);
        let apple = facts("apple", "metal-3", "", false);
        assert_eq!(memory_key("0123abcd", &nvidia), "tabdiffusion/kernels/0123abcd/nvidia ampere");
        assert!(memory_key("0123abcd", &nvidia).starts_with(MEMORY_PREFIX));
        let stores = [tune_store_name("0123abcd", &nvidia), tune_store_name("0123abcd", &apple), tune_store_name("4567ef01", &nvidia)];
        assert!(stores[0].starts_with("tabdiffusion-0123abcd-nvidiaampere-"), "{}", stores[0]);
        assert!(stores.iter().all(|s| s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')), "{stores:?}");
        assert!(stores[0] != stores[1] && stores[0] != stores[2] && stores[1] != stores[2], "{stores:?}");
        // Two adapters whose letters coincide still get two stores.
        assert_ne!(tune_store_name("b", &facts("a b", "", "", false)), tune_store_name("b", &facts("ab", "", "", false)));
    }

    #[test]
    fn paths_and_adapters_read_in_words() {
        assert_eq!("tuned".parse::<KernelPath>(), Ok(KernelPath::Tuned));
        assert_eq!("fused".parse::<KernelPath>().unwrap_err().to_string(), "fused is not a kernel path (pick one of plain, tuned)");
        assert_eq!(facts("google", "swiftshader", " ", true).to_string(), "google swiftshader");
        assert_eq!(AdapterFacts::default().to_string(), "an adapter that gives no name");
    }

    /// The build's own label: plain without `web-autotune` (every native test build and the
    /// tab's first wasm), tuned with it (`dist/tuned/`). Written as the two cases with their
    /// expected answers, so that a label the wrong way round fails.
    #[test]
    fn this_build_names_its_kernels() {
        #[cfg(not(feature = "web-autotune"))]
        assert_eq!(KernelPath::of_this_build(), KernelPath::Plain);
        #[cfg(feature = "web-autotune")]
        assert_eq!(KernelPath::of_this_build(), KernelPath::Tuned);
        assert_ne!(KernelPath::Plain.describe(), KernelPath::Tuned.describe());
    }
}
