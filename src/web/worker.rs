//! The training worker's side of the page ↔ worker channel.

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use super::browser::query_param;
use super::protocol::{Command, Notice, Update, decode, encode};
use super::session::{self, Settings};

/// Posts [`Update`]s to the page.
#[derive(Clone, Copy, Debug)]
pub struct Outbox;

impl Outbox {
    pub fn send(self, update: Update) {
        self.send_with(update, Vec::new());
    }

    /// Sends an update with byte payloads (moved to the page, not copied).
    pub fn send_with(self, update: Update, bytes: Vec<Vec<u8>>) {
        let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
        let (message, transfer) = encode(&update, bytes);
        if let Err(e) = scope.post_message_with_transfer(&message, &transfer) {
            web_sys::console::error_1(&e);
        }
    }
}

thread_local! {
    /// What the session is doing, in words, for the message a crash leaves.
    static DOING: RefCell<String> = RefCell::new("starting".into());
}

/// Notes what the session is doing now ("training step 12", "importing weights").
pub fn doing(what: impl Into<String>) {
    DOING.with(|d| *d.borrow_mut() = what.into());
}

/// A panic ends the worker (wasm cannot unwind): before it does, the page gets what was being
/// done and the panic's message, and offers the reload that resumes the saved run.
fn report_panics() {
    std::panic::set_hook(Box::new(|info| {
        console_error_panic_hook::hook(info);
        let doing = DOING.with(|d| d.borrow().clone());
        let notice = if session::gpu_lost() {
            // What failed on a lost GPU fails because of the loss: say that.
            session::lost_gpu()
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

/// Starts the session of this worker: its settings are the worker URL's query (the page's).
pub fn start() {
    report_panics();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(|event: MessageEvent| match decode::<Command>(&event.data()) {
        Ok((command, bytes)) => session::send(command, bytes),
        Err(message) => Outbox.send(Update::Error(message.into())),
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    on_message.forget(); // lives as long as the worker
    match Settings::from_query(query_param) {
        Ok(settings) => wasm_bindgen_futures::spawn_local(session::run(settings, Outbox)),
        Err(message) => Outbox.send(Update::Error(message.into())),
    }
}
