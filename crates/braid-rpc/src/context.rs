//! Per-thread context: the settings a proxy decoded here inherits, and the call a daemon
//! thread is serving.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::frame::DEFAULT_MAX_MESSAGE_SIZE;
use crate::security::ClientTls;

/// How a proxy connects: its key, TLS, timeout and message limit.
#[derive(Clone)]
pub(crate) struct Settings {
    pub key: Option<Arc<[u8]>>,
    pub tls: Option<ClientTls>,
    pub timeout: Option<Duration>,
    pub max_message_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            key: None,
            tls: None,
            timeout: None,
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
        }
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("key", &self.key.as_ref().map(|_| "<set>"))
            .field("tls", &self.tls.is_some())
            .field("timeout", &self.timeout)
            .field("max_message_size", &self.max_message_size)
            .finish()
    }
}

/// The call a daemon thread is serving, as [`current_call`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// The caller's address.
    pub peer: SocketAddr,
    /// The object called.
    pub object: String,
    /// The method called.
    pub method: String,
}

struct Context {
    settings: Settings,
    call: Option<CallInfo>,
}

thread_local! {
    static CONTEXT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// The call being served on this thread, when it is a daemon thread inside a remote
/// method (like Pyro's `current_context`).
pub fn current_call() -> Option<CallInfo> {
    CONTEXT.with(|c| c.borrow().as_ref().and_then(|c| c.call.clone()))
}

/// The settings a proxy created or decoded on this thread starts with.
pub(crate) fn inherited_settings() -> Settings {
    CONTEXT.with(|c| {
        c.borrow()
            .as_ref()
            .map(|c| c.settings.clone())
            .unwrap_or_default()
    })
}

/// Sets this thread's context until dropped, then restores the previous one.
pub(crate) struct Scope {
    previous: Option<Context>,
}

impl Scope {
    pub fn enter(settings: Settings, call: Option<CallInfo>) -> Scope {
        let previous = CONTEXT.with(|c| c.replace(Some(Context { settings, call })));
        Scope { previous }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let previous = self.previous.take();
        CONTEXT.with(|c| *c.borrow_mut() = previous);
    }
}
