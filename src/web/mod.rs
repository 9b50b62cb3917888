//! The browser shell: a Leptos page ([`page`], the main thread) and a Web Worker ([`worker`])
//! that runs the training session, so that the page never waits on the GPU; both are this same
//! wasm module. What both threads share: the messages between them ([`protocol`]), the
//! browser's APIs ([`browser`]), the settings of the address ([`settings`]) and the kernels of
//! this build ([`kernels`]). The pure parts (settings, kernels, the page's charts and
//! equations) also build natively for their tests.

pub mod kernels;
pub mod page;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
mod protocol;
#[cfg(target_arch = "wasm32")]
mod worker;

/// Mounts the app on the page, or, inside the page's worker, starts the training session.
#[cfg(target_arch = "wasm32")]
pub fn start() {
    console_error_panic_hook::set_once();
    if browser::in_worker() {
        worker::start();
    } else {
        leptos::mount::mount_to_body(page::App);
    }
}
