//! What runs in the page's Web Worker: the training session, which owns the device, the data
//! and the trainer, and its side of the page ↔ worker channel. Nothing here touches the page.

mod channel;
mod gpu;
mod outbox;
mod saved_run;
mod session;
mod tuning;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::web::browser::query_param;
use self::outbox::{Outbox, doing_now};
use crate::web::protocol::{Command, Notice, Update, decode};
use crate::web::settings::Settings;

/// A panic ends the worker (wasm cannot unwind): before it does, the page gets what was being
/// done and the panic's message, and offers the reload that resumes the saved run.
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let doing = doing_now();
        let notice = if gpu::gpu_lost() {
            // What failed on a lost GPU fails because of the loss: say that.
            gpu::lost_gpu()
        } else {
            Notice::new(
                format!("The training worker crashed while {doing}. Your run is saved in this browser as of its last save; reload the page to resume it."),
                "",
            )
            .with_reload()
        };
        Outbox.send(Update::Error(Notice { detail: format!("while {doing}: {info}"), ..notice }));
    }));
}

/// Starts the session of this worker: its settings are the page's query.
pub fn start() {
    report_panics();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| match decode::<Command>(&event.data()) {
        Ok((command, bytes)) => channel::send(command, bytes),
        Err(message) => Outbox.send(Update::Error(message.into())),
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget(); // lives as long as the worker
    match Settings::from_query(query_param) {
        Ok(settings) => wasm_bindgen_futures::spawn_local(session::run(settings, Outbox)),
        Err(message) => Outbox.send(Update::Error(message.into())),
    }
}
