//! One binary, two shells: in the browser (wasm32) it mounts the Leptos app; natively it runs
//! the command line.

#[cfg(target_arch = "wasm32")]
fn main() {
    tabdiffusion::web::start();
}

#[cfg(not(target_arch = "wasm32"))]
fn main() {
    use clap::Parser;
    keep_freed_memory();
    let cli = tabdiffusion::cli::Cli::parse();
    if let Err(message) = tabdiffusion::cli::run(cli) {
        eprintln!("error: {message}");
        std::process::exit(1);
    }
}

/// The CPU backend allocates and frees tensors of megabytes for every operation. glibc serves
/// blocks above its mmap threshold with fresh pages from the kernel and returns them on free, so
/// each one is page-faulted and zeroed anew (12% of a training step of `mnist-small` in
/// `scripts/bench/profile-cpu`'s profile), and it hands the top of its heap back above 128 KiB free.
/// Serving blocks up to 32 MiB (mallopt's maximum) from the heap, never trimming it, and growing
/// it 64 MiB at a time keeps the freed memory for the next tensor: training runs about 1.1×
/// faster (`scripts/bench/profile-cpu`). The process keeps its peak memory until it exits.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    const MIB: libc::c_int = 1 << 20;
    // SAFETY: mallopt only changes allocator parameters; called before any thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 * MIB);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
        libc::mallopt(libc::M_TOP_PAD, 64 * MIB);
    }
}

#[cfg(all(not(target_arch = "wasm32"), not(all(target_os = "linux", target_env = "gnu"))))]
fn keep_freed_memory() {}
