//! The browser shell (wasm32 only): a Leptos app over the browser training session.

mod app;
mod browser;
mod session;

pub use app::{App, chart_points};

/// Mounts the app on the page.
pub fn start() {
    console_error_panic_hook::set_once();
    leptos::mount::mount_to_body(App);
}
