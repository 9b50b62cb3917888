//! The browser shell (wasm32 only): a Leptos page, and a Web Worker that runs the training
//! session so that the page never waits on the GPU. Both are this same wasm module. The pure
//! parts, [`settings`] (the URL), [`charts`], [`objective`] (the training equation) and
//! [`mathml`] (equations that wrap), also build natively for their tests.
//!
//! Who imports whom (no circles): `app` → `panels` → `quality`, `view` → `protocol`; `app` → `playground`; `worker` →
//! `session` → `channel`, `gpu`, `outbox`, `saved_run`, `settings`; `worker` → `outbox`.

pub mod charts;
pub mod kernels;
pub mod mathml;
pub mod objective;
pub mod settings;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod browser;
#[cfg(target_arch = "wasm32")]
mod channel;
#[cfg(target_arch = "wasm32")]
mod gpu;
#[cfg(target_arch = "wasm32")]
mod outbox;
#[cfg(target_arch = "wasm32")]
mod panels;
#[cfg(target_arch = "wasm32")]
mod playground;
#[cfg(target_arch = "wasm32")]
mod protocol;
#[cfg(target_arch = "wasm32")]
mod quality;
#[cfg(target_arch = "wasm32")]
mod saved_run;
#[cfg(target_arch = "wasm32")]
mod session;
#[cfg(target_arch = "wasm32")]
mod view;
#[cfg(target_arch = "wasm32")]
mod worker;

/// Mounts the app on the page, or, inside the page's worker, starts the training session.
#[cfg(target_arch = "wasm32")]
pub fn start() {
    console_error_panic_hook::set_once();
    if browser::in_worker() {
        worker::start();
    } else {
        leptos::mount::mount_to_body(app::App);
    }
}
