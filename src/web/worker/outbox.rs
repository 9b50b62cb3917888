//! The worker's side of the channel to the page: updates out, and what the session is doing
//! (for the message a crash leaves).

use std::cell::RefCell;

use wasm_bindgen::JsCast;
use web_sys::DedicatedWorkerGlobalScope;

use crate::web::protocol::{Update, encode};

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

/// What the session was doing when it stopped.
pub fn doing_now() -> String {
    DOING.with(|d| d.borrow().clone())
}
