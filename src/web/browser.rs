//! The few browser calls the app needs: fetch, yield, download, read a file, draw pixels. The
//! ones the training session uses work both on the page and in its worker.

use js_sys::{Array, Uint8Array};
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{Clamped, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Blob, BlobPropertyBag, CanvasRenderingContext2d, HtmlAnchorElement, HtmlCanvasElement, ImageData, Response, Url,
    WorkerGlobalScope,
};

use crate::web::kernels::AdapterFacts;

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

/// Resolves once the page's offline copy (the service worker index.html registers) controls
/// the page, or once index.html has given up on it; at once where the page has none.
pub async fn offline_copy_ready() {
    let ready = js_sys::Reflect::get(&js_sys::global(), &JsValue::from_str("tabdiffusionOffline"));
    if let Ok(promise) = ready.and_then(|p| p.dyn_into::<js_sys::Promise>()) {
        let _ = JsFuture::from(promise).await;
    }
}

/// A thrown JS value in words: an exception's name and message (`QuotaExceededError: …`),
/// a string as it is, anything else as JSON.
pub fn describe(e: JsValue) -> String {
    if let Some(e) = e.dyn_ref::<web_sys::DomException>() {
        return format!("{}: {}", e.name(), e.message());
    }
    if let Some(e) = e.dyn_ref::<js_sys::Error>() {
        return format!("{}: {}", String::from(e.name()), String::from(e.message()));
    }
    e.as_string()
        .or_else(|| js_sys::JSON::stringify(&e).ok().and_then(|s| s.as_string()))
        .unwrap_or_else(|| "unknown error".into())
}

/// Why a browser-storage write failed, in words.
#[derive(Debug)]
pub enum StoreError {
    /// The site's storage quota is used up (`QuotaExceededError`).
    Full(String),
    Other(String),
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Full(detail) => write!(f, "this browser's storage for this page is full ({detail})"),
            Self::Other(detail) => f.write_str(detail),
        }
    }
}

impl From<String> for StoreError {
    fn from(detail: String) -> Self {
        Self::Other(detail)
    }
}

impl From<JsValue> for StoreError {
    fn from(e: JsValue) -> Self {
        let full = e.dyn_ref::<web_sys::DomException>().is_some_and(|e| e.name() == "QuotaExceededError");
        if full { Self::Full(describe(e)) } else { Self::Other(describe(e)) }
    }
}

/// GETs a same-origin URL: its response, if the server answered it with success.
async fn fetch_ok(url: &str) -> Result<Response, String> {
    let request = match scope() {
        Scope::Window(window) => window.fetch_with_str(url),
        Scope::Worker(worker) => worker.fetch_with_str(url),
    };
    let response = JsFuture::from(request).await.map_err(|e| format!("{url}: {}", describe(e)))?;
    let response: Response = response.dyn_into().map_err(|_| format!("{url}: not a response"))?;
    if !response.ok() {
        return Err(format!("{url}: HTTP {}", response.status()));
    }
    Ok(response)
}

/// GETs a same-origin URL as bytes.
pub async fn fetch_bytes(url: &str) -> Result<Vec<u8>, String> {
    let response = fetch_ok(url).await?;
    let buffer = response.array_buffer().map_err(describe)?;
    let buffer = JsFuture::from(buffer).await.map_err(describe)?;
    Ok(Uint8Array::new(&buffer).to_vec())
}

/// Fetches `url` like [`fetch_bytes`], reporting the bytes received so far (and the response's
/// declared length, where it has one) as they arrive, and refusing a response of more than
/// `limit` bytes before (by its declared length) or while reading it.
pub async fn fetch_bytes_with_progress(url: &str, limit: u64, mut progress: impl FnMut(u64, Option<u64>)) -> Result<Vec<u8>, String> {
    let response = fetch_ok(url).await?;
    let too_big = |n: u64| format!("{url}: {n} bytes, more than the {limit} this file may have");
    // Through JS properties: the streams API is plain JavaScript here (no web-sys bindings).
    let get = |object: &JsValue, key: &str| js_sys::Reflect::get(object, &JsValue::from_str(key)).map_err(describe);
    let call = |object: &JsValue, method: &str| -> Result<JsValue, String> {
        get(object, method)?.dyn_into::<js_sys::Function>().map_err(|_| format!("{url}: no {method}()"))?.call0(object).map_err(describe)
    };
    let declared = get(&response, "headers").ok().and_then(|headers| {
        let length = get(&headers, "get").ok()?.dyn_into::<js_sys::Function>().ok()?.call1(&headers, &"content-length".into()).ok()?;
        length.as_string()?.parse::<u64>().ok()
    });
    if let Some(n) = declared.filter(|&n| n > limit) {
        return Err(too_big(n));
    }
    let body = get(&response, "body")?;
    if body.is_null() || body.is_undefined() {
        return Ok(Vec::new());
    }
    let reader = call(&body, "getReader")?;
    let mut bytes = Vec::with_capacity(declared.unwrap_or(0).min(limit) as usize);
    loop {
        let chunk = call(&reader, "read")?.dyn_into::<js_sys::Promise>().map_err(|_| format!("{url}: read() gave no promise"))?;
        let chunk = JsFuture::from(chunk).await.map_err(|e| format!("{url}: {}", describe(e)))?;
        if get(&chunk, "done")?.as_bool().unwrap_or(true) {
            return Ok(bytes);
        }
        let value: Uint8Array = get(&chunk, "value")?.dyn_into().map_err(|_| format!("{url}: the body is not bytes"))?;
        let received = bytes.len() as u64 + u64::from(value.length());
        if received > limit {
            let _ = call(&reader, "cancel");
            return Err(too_big(received));
        }
        let start = bytes.len();
        bytes.resize(received as usize, 0);
        value.copy_to(&mut bytes[start..]);
        progress(received, declared);
    }
}

/// Gives the event loop a turn, so that the page stays responsive and the worker sees the
/// page's messages: after `ms` milliseconds, or at once for 0.
///
/// A zero wait in the worker is a message to itself, not a timeout: HTML clamps a timeout set
/// from within a chain of more than five timeouts to at least 4 ms (the "timer nesting level"),
/// so a sampling loop that yields after each step would sleep 4 ms a step, which on a real GPU
/// is longer than the step. A message task runs after the messages already queued (the page's
/// Pause) without a floor. On the page, timeouts stay: there a chain of messages would hold off
/// rendering.
pub async fn yield_now(ms: i32) {
    // Held until the message arrives, so that nothing collects the ports before.
    let channel = (ms == 0 && in_worker()).then(|| web_sys::MessageChannel::new().ok()).flatten();
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = match (&channel, scope()) {
            (Some(channel), _) => {
                channel.port1().set_onmessage(Some(&resolve));
                channel.port2().post_message(&JsValue::NULL)
            }
            (None, Scope::Window(window)) => window.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms).map(|_| ()),
            (None, Scope::Worker(worker)) => worker.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms).map(|_| ()),
        };
    });
    let _ = JsFuture::from(promise).await;
    drop(channel);
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

/// What the browser tells about its WebGPU adapter (`navigator.gpu.requestAdapter()` and the
/// adapter's `info`), or `None` without WebGPU or an adapter.
pub async fn adapter_facts() -> Option<AdapterFacts> {
    let get = |object: &JsValue, key: &str| {
        js_sys::Reflect::get(object, &JsValue::from_str(key)).ok().filter(|v| !v.is_undefined() && !v.is_null())
    };
    let navigator: JsValue = match scope() {
        Scope::Window(window) => window.navigator().into(),
        Scope::Worker(worker) => worker.navigator().into(),
    };
    let gpu = get(&navigator, "gpu")?;
    let request: js_sys::Function = get(&gpu, "requestAdapter")?.dyn_into().ok()?;
    let promise: js_sys::Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = JsFuture::from(promise).await.ok().filter(|a| !a.is_undefined() && !a.is_null())?;
    let info = get(&adapter, "info").unwrap_or(JsValue::UNDEFINED);
    let text = |key| get(&info, key).and_then(|v| v.as_string()).unwrap_or_default();
    let flag = |object: &JsValue, key| get(object, key).and_then(|v| v.as_bool()).unwrap_or(false);
    Some(AdapterFacts {
        vendor: text("vendor"),
        architecture: text("architecture"),
        device: text("device"),
        description: text("description"),
        fallback: flag(&info, "isFallbackAdapter") || flag(&adapter, "isFallbackAdapter"),
    })
}

/// `performance.now()` in milliseconds.
pub fn now_ms() -> f64 {
    let performance = match scope() {
        Scope::Window(window) => window.performance(),
        Scope::Worker(worker) => worker.performance(),
    };
    performance.map_or(0.0, |p| p.now())
}

/// The page's query (`?model=tiny&batch=8`), on the page and in its training worker.
///
/// The page starts the worker with its query as the worker's *name*, not in the worker's URL:
/// a worker's URL is that of the response that served its script, and a service worker's cached
/// copy of `worker.js` has no query (the settings would silently become the defaults).
pub fn query() -> String {
    match scope() {
        Scope::Window(window) => window.location().search().unwrap_or_default(),
        Scope::Worker(worker) => worker.unchecked_into::<web_sys::DedicatedWorkerGlobalScope>().name(),
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
/// in on `close`; a failed write (a full quota) aborts the temporary file, so the previous
/// file stays whole either way.
pub async fn store(name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let root = storage_root().await?;
    let options = web_sys::FileSystemGetFileOptions::new();
    options.set_create(true);
    let handle: web_sys::FileSystemFileHandle =
        JsFuture::from(root.get_file_handle_with_options(name, &options)).await?.unchecked_into();
    let stream: web_sys::FileSystemWritableFileStream = JsFuture::from(handle.create_writable()).await?.unchecked_into();
    let written = match stream.write_with_u8_array(bytes) {
        Ok(promise) => JsFuture::from(promise).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        let _ = JsFuture::from(stream.abort()).await; // drops the temporary file
        return Err(e.into());
    }
    JsFuture::from(stream.close()).await?;
    Ok(())
}

/// A Web Lock this page or worker holds until [`HeldLock::release`] (or until it closes).
pub struct HeldLock {
    release: Option<js_sys::Function>,
}

impl HeldLock {
    /// Lets go of the lock (a tab waiting for it gets it).
    pub fn release(mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::UNDEFINED);
        }
    }
}

/// A promise and the function that resolves it.
fn promise_with_resolve() -> (js_sys::Promise, js_sys::Function) {
    let mut resolve = None;
    let promise = js_sys::Promise::new(&mut |res, _| resolve = Some(res));
    (promise, resolve.expect("the Promise executor runs at once"))
}

/// Takes the Web Lock `name` (`navigator.locks`, shared by the site's tabs and workers). With
/// `wait`, waits until it is free; without, returns `None` at once if another holds it. A
/// browser without Web Locks gets a lock that guards nothing (one tab is then all it can
/// check).
pub async fn lock(name: &str, wait: bool) -> Result<Option<HeldLock>, String> {
    let navigator: JsValue = match scope() {
        Scope::Window(window) => window.navigator().into(),
        Scope::Worker(worker) => worker.navigator().into(),
    };
    let locks = js_sys::Reflect::get(&navigator, &"locks".into()).map_err(describe)?;
    if locks.is_undefined() {
        return Ok(Some(HeldLock { release: None }));
    }
    let request: js_sys::Function = js_sys::Reflect::get(&locks, &"request".into()).map_err(describe)?.unchecked_into();
    let (granted, grant) = promise_with_resolve();
    let (held, release) = promise_with_resolve();
    // Called with the lock, or with null when `ifAvailable` finds it taken; the lock is held
    // until the promise it returns settles.
    let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
        let got = !lock.is_null();
        let _ = grant.call1(&JsValue::UNDEFINED, &JsValue::from_bool(got));
        if got { held.into() } else { JsValue::UNDEFINED }
    });
    let options = js_sys::Object::new();
    js_sys::Reflect::set(&options, &"ifAvailable".into(), &JsValue::from_bool(!wait)).map_err(describe)?;
    let args = Array::of3(&JsValue::from_str(name), &options, &callback);
    request.apply(&locks, &args).map_err(describe)?;
    let got = JsFuture::from(granted).await.map_err(describe)?.as_bool().unwrap_or(false);
    Ok(got.then_some(HeldLock { release: Some(release) }))
}

/// A `BroadcastChannel` (messages between the site's tabs and workers) that hands each text
/// message to `on_message`; it listens as long as the returned channel lives.
pub fn channel(name: &str, mut on_message: impl FnMut(String) + 'static) -> Result<web_sys::BroadcastChannel, String> {
    let channel = web_sys::BroadcastChannel::new(name).map_err(describe)?;
    let listener = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
        if let Some(text) = event.data().as_string() {
            on_message(text);
        }
    });
    channel.set_onmessage(Some(listener.as_ref().unchecked_ref()));
    listener.forget(); // as long as the channel: the worker's life
    Ok(channel)
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
