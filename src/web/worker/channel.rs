//! The session's command queue: the worker's message handler puts the page's commands in,
//! the session takes them out between training steps.

use std::cell::RefCell;
use std::collections::VecDeque;

use crate::web::protocol::Command;

thread_local! {
    static QUEUE: RefCell<VecDeque<(Command, Vec<Vec<u8>>)>> = const { RefCell::new(VecDeque::new()) };
}

/// Queues a command and its byte payloads (handled between training steps).
pub fn send(command: Command, bytes: Vec<Vec<u8>>) {
    QUEUE.with(|q| q.borrow_mut().push_back((command, bytes)));
}

/// The next command; of several queued forward-panel requests only the newest is kept (a
/// dragged slider sends dozens).
pub fn next_command() -> Option<(Command, Vec<Vec<u8>>)> {
    QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        let is_forward = |c: &(Command, Vec<Vec<u8>>)| matches!(c.0, Command::Forward { .. });
        while q.front().is_some_and(is_forward) && q.iter().skip(1).any(is_forward) {
            q.pop_front();
        }
        q.pop_front()
    })
}
