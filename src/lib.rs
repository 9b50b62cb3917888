//! Train and sample a diffusion model in a browser tab (WebGPU through burn), and natively.
//!
//! The pipeline, inward-pointing: `data` (bytes -> images) -> `model` (the U-Net) ->
//! `diffusion` (schedule, forward process, samplers) -> `train` (Algorithm 1, Adam, EMA) ->
//! `checkpoint` (config + weights <-> safetensors bytes). These do no I/O and take a
//! `burn::tensor::Device` from the shell: `web` (wasm32, Leptos) or `cli` (native, clap).

#[macro_use]
pub mod names;
pub mod fields;

pub mod checkpoint;
pub mod data;
pub mod diffusion;
pub mod eval;
pub mod features;
pub mod limits;
pub mod ops;
pub mod model;
pub mod pipeline;
pub mod spec;
pub mod playground;
pub mod train;

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
/// The browser shell. Only its pure parts (the URL's settings, the charts) build natively, so
/// that their tests run with `cargo test`.
pub mod web;
