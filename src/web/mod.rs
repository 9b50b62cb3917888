//! The browser shell (wasm32 only): a Leptos page, and a Web Worker that runs the training
//! session so that the page never waits on the GPU. Both are this same wasm module.

mod app;
mod browser;
mod panels;
mod protocol;
mod session;
mod worker;

pub use app::{App, chart_points};

/// Mounts the app on the page, or, inside the page's worker, starts the training session.
pub fn start() {
    console_error_panic_hook::set_once();
    if browser::in_worker() {
        worker::start();
    } else {
        leptos::mount::mount_to_body(App);
    }
}
