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
    /// new operation and shape times its candidates; the fixed kernels run meanwhile), and
    /// the results last only as long as the worker (CubeCL keeps them across visits only in its
    /// `persistence` feature, a database engine in the wasm, which the tab does without).
    pub fn training_status(self) -> &'static str {
        match self {
            Self::Plain => "Training…",
            Self::Tuned => "Training… (the first steps also tune burn's kernels for this GPU, so they are slower)",
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
