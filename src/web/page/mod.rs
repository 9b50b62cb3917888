//! What runs on the page (the main thread): the Leptos app, its panels and charts. It sends
//! commands to the worker and draws what the worker reports; it never holds a tensor of the
//! worker's (the playground trains its small network on the page's CPU). The pure parts,
//! [`charts`], [`objective`] (the training equation), [`mathml`], and the panels' logic
//! ([`sampling_form`], [`playground_logic`], [`plane`]), also build natively for their tests.

pub mod charts;
pub mod mathml;
pub mod objective;
pub mod plane;
pub mod playground_logic;
pub mod sampling_form;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod kernel_watch;
#[cfg(target_arch = "wasm32")]
mod panels;
#[cfg(target_arch = "wasm32")]
mod playground;
#[cfg(target_arch = "wasm32")]
mod playground_canvas;
#[cfg(target_arch = "wasm32")]
mod playground_work;
#[cfg(target_arch = "wasm32")]
mod quality_chart;
#[cfg(target_arch = "wasm32")]
mod sampling_panel;
#[cfg(target_arch = "wasm32")]
mod view;

#[cfg(target_arch = "wasm32")]
pub use app::App;
