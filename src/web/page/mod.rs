//! What runs on the page (the main thread): the Leptos app, its panels and charts. It sends
//! commands to the worker and draws what the worker reports; it never holds a tensor. The pure
//! parts, [`charts`], [`objective`] (the training equation) and [`mathml`], also build natively
//! for their tests.

pub mod charts;
pub mod mathml;
pub mod objective;

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod panels;
#[cfg(target_arch = "wasm32")]
mod playground;
#[cfg(target_arch = "wasm32")]
mod quality_chart;
#[cfg(target_arch = "wasm32")]
mod view;

#[cfg(target_arch = "wasm32")]
pub use app::App;
