//! The GPU's state as the session sees it: whether it was lost, and reading values back from
//! it (asynchronously: a synchronous read panics on WebGPU in wasm).

use burn::tensor::Tensor;

use crate::web::protocol::Notice;

/// Set by the GPU's device-lost callback: nothing is read from or saved off a lost GPU.
static GPU_LOST: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Notes that the GPU was lost (its device-lost callback).
pub fn mark_gpu_lost() {
    GPU_LOST.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Whether the GPU was lost.
pub fn gpu_lost() -> bool {
    GPU_LOST.load(std::sync::atomic::Ordering::Relaxed)
}

/// What the page says once the GPU is lost (the device-lost callback, and every later try).
pub fn lost_gpu() -> Notice {
    Notice::new(
        "The GPU was lost (its driver restarted, another program took it, or it ran out of memory): training stopped. Your run is saved in this browser as of its last save; reload the page to resume it, with a smaller batch (?batch=8) if memory ran out.",
        "",
    )
    .with_reload()
}

/// A tensor's values, read back from the GPU.
pub async fn read_values<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, String> {
    crate::model::state_dict::read_values(tensor).await.map_err(|e| format!("reading from the GPU failed: {e}"))
}

/// A one-element tensor's value (a loss), read back from the device.
pub async fn read_scalar(tensor: Tensor<1>) -> Result<f32, String> {
    tensor.into_scalar_async::<f32>().await.map_err(|e| format!("{e:?}"))
}
