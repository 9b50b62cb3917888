//! The few browser calls the app needs: fetch, yield, download, read a file, draw pixels. The
//! ones the training session uses work both on the page and in its worker.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::{Clamped, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, BlobPropertyBag, CanvasRenderingContext2d, HtmlAnchorElement, HtmlCanvasElement, ImageData, Response, Url,
    WorkerGlobalScope,
};

/// The page's window or the worker's global scope.
enum Scope {
    Window(web_sys::Window),
    Worker(WorkerGlobalScope),
}

fn scope() -> Scope {
    match web_sys::window() {
        Some(window) => Scope::Window(window),
        None => Scope::Worker(js_sys::global().unchecked_into()),
    }
}

/// Whether this code runs in a Web Worker (the training session) rather than on the page.
pub fn in_worker() -> bool {
    matches!(scope(), Scope::Worker(_))
}

pub fn describe(e: JsValue) -> String {
    e.as_string()
        .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| "unknown error".into())
}

/// GETs a same-origin URL as bytes.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let request = match scope() {
        Scope::Window(window) => window.fetch_with_str(url),
        Scope::Worker(worker) => worker.fetch_with_str(url),
    };
    let response = JsFuture::from(request).await.map_err(|e| format!("{url}: {}", describe(e)))?;
    let response: Response = response.dyn_into().map_err(|_| format!("{url}: not a response"))?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    let buffer = response.array_buffer().map_err(describe)?;
    let buffer = JsFuture::from(buffer).await.map_err(describe)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Gives the event loop a turn (a zero-delay timeout), so the page stays responsive.
pub async fn yield_now(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = match scope() {
            Scope::Window(window) => window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms),
            Scope::Worker(worker) => worker.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms),
        };
    });
    let _ = JsFuture::from(promise).await;
}

/// Offers `bytes` as a file download.
pub fn download(bytes: &[u8], file_name: &str, mime: &str) -> Result<(), String> {
    let array = Uint8Array::from(bytes);
    let parts = Array::of1(&array.buffer());
    let options = BlobPropertyBag::new();
    options.set_type(mime);
    let blob = Blob::new_with_u8_array_sequence_and_options(&parts, &options).map_err(describe)?;
    let url = Url::create_object_url_with_blob(&blob).map_err(describe)?;
    let document = web_sys::window().and_then(|w| w.document()).ok_or("no document")?;
    let anchor: HtmlAnchorElement = document.create_element("a").map_err(describe)?.unchecked_into();
    anchor.set_href(&url);
    anchor.set_download(file_name);
    anchor.click();
    let _ = Url::revoke_object_url(&url);
    Ok(())
}

/// Reads a user-chosen file.
pub async fn read_file(file: &web_sys::File) -> Result<Vec<u8>, String> {
    let buffer = JsFuture::from(file.array_buffer()).await.map_err(describe)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Draws RGBA pixels into a 2D canvas (WebGPU canvases fail headless; 2D always works).
pub fn draw_rgba(canvas: &HtmlCanvasElement, rgba: &[u8], width: u32, height: u32) -> Result<(), String> {
    canvas.set_width(width);
    canvas.set_height(height);
    let context: CanvasRenderingContext2d = canvas
        .get_context("2d")
        .map_err(describe)?
        .ok_or("no 2d context")?
        .unchecked_into();
    let image = ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), width, height).map_err(describe)?;
    context.put_image_data(&image, 0.0, 0.0).map_err(describe)
}

/// Whether the browser exposes WebGPU at all (`navigator.gpu`).
pub fn has_webgpu() -> bool {
    let navigator: JsValue = match scope() {
        Scope::Window(window) => window.navigator().into(),
        Scope::Worker(worker) => worker.navigator().into(),
    };
    js_sys::Reflect::has(&navigator, &JsValue::from_str("gpu")).unwrap_or(false)
}

/// `performance.now()` in milliseconds.
pub fn now_ms() -> f64 {
    let performance = match scope() {
        Scope::Window(window) => window.performance(),
        Scope::Worker(worker) => worker.performance(),
    };
    performance.map_or(0.0, |p| p.now())
}

/// The query of this page's or worker's URL (`?model=tiny&batch=8`).
pub fn query() -> String {
    match scope() {
        Scope::Window(window) => window.location().search().unwrap_or_default(),
        Scope::Worker(worker) => worker.location().search(),
    }
}

/// A parameter of [`query`].
pub fn query_param(name: &str) -> Option<String> {
    web_sys::UrlSearchParams::new_with_str(&query()).ok()?.get(name)
}

/// The origin-private file system's root (OPFS: browser storage that only this site sees).
async fn storage_root() -> Result<web_sys::FileSystemDirectoryHandle, String> {
    let storage = match scope() {
        Scope::Window(window) => window.navigator().storage(),
        Scope::Worker(worker) => worker.navigator().storage(),
    };
    let root = JsFuture::from(storage.get_directory()).await.map_err(|e| format!("browser storage is not available: {}", describe(e)))?;
    Ok(root.unchecked_into())
}

fn is_not_found(e: &JsValue) -> bool {
    e.dyn_ref::<web_sys::DomException>().is_some_and(|e| e.name() == "NotFoundError")
}

/// Reads a file of the browser storage; `None` if there is none.
pub async fn stored(name: &str) -> Result<Option<Vec<u8>>, String> {
    let root = storage_root().await?;
    let handle = match JsFuture::from(root.get_file_handle(name)).await {
        Ok(handle) => handle.unchecked_into::<web_sys::FileSystemFileHandle>(),
        Err(e) if is_not_found(&e) => return Ok(None),
        Err(e) => return Err(describe(e)),
    };
    let file: web_sys::File = JsFuture::from(handle.get_file()).await.map_err(describe)?.unchecked_into();
    read_file(&file).await.map(Some)
}

/// Writes a file of the browser storage. The browser writes to a temporary file and swaps it
/// in on `close`, so an interrupted write leaves the previous file whole.
pub async fn store(name: &str, bytes: &[u8]) -> Result<(), String> {
    let root = storage_root().await?;
    let options = web_sys::FileSystemGetFileOptions::new();
    options.set_create(true);
    let handle: web_sys::FileSystemFileHandle =
        JsFuture::from(root.get_file_handle_with_options(name, &options)).await.map_err(describe)?.unchecked_into();
    let stream: web_sys::FileSystemWritableFileStream =
        JsFuture::from(handle.create_writable()).await.map_err(describe)?.unchecked_into();
    JsFuture::from(stream.write_with_u8_array(bytes).map_err(describe)?).await.map_err(describe)?;
    JsFuture::from(stream.close()).await.map_err(describe)?;
    Ok(())
}

/// Removes a file of the browser storage (nothing to do if there is none).
pub async fn unstore(name: &str) -> Result<(), String> {
    let root = storage_root().await?;
    match JsFuture::from(root.remove_entry(name)).await {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(describe(e)),
    }
}
