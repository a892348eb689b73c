//! The Durable Object that holds one room's (or namespace's) WebSockets: a thin shell around
//! `hub::Hub`.
//!
//! Sockets are accepted through the object's state (hibernation API), tagged with their id, and
//! carry their `Member` as the attachment. No timers, alarms or outgoing connections keep the
//! object awake, and `ping` is answered with `pong` by the runtime without waking it. When the
//! object wakes (a message, a close, a new socket), the hub is rebuilt from the attachments.
//! Everything the hub decides comes back as effects, carried out here in order; no handler awaits,
//! so no borrow is ever held across an await. Input never reaches an `unwrap` here; the worker
//! crate's own state calls (`accept_websocket_with_tags`, `get_websockets`) unwrap the runtime's
//! answers internally, which fail only if the runtime itself does.

use super::Workers;
use crate::hub::route::{self, Endpoint};
use crate::hub::{answer_close_code, Effect, Frame, Hub, Member, Protocol};
use crate::platform::Platform;
use std::cell::RefCell;
use std::collections::HashMap;
use worker::worker_sys::WebSocketRequestResponsePair;
use worker::{durable_object, Date, DurableObject, Env, Request, Response, Result, State, WebSocket, WebSocketIncomingMessage, WebSocketPair};

#[durable_object]
pub struct SignalHub {
    state: State,
    /// `None` until the first event after construction (the object just woke or was created).
    hub: RefCell<Option<Hub>>,
    /// The hub's socket ids to the runtime's sockets.
    sockets: RefCell<HashMap<String, WebSocket>>,
}

impl DurableObject for SignalHub {
    fn new(state: State, _env: Env) -> Self {
        if let Ok(pair) = WebSocketRequestResponsePair::new("ping", "pong") {
            state.set_websocket_auto_response(&pair);
        }
        SignalHub { state, hub: RefCell::new(None), sockets: RefCell::new(HashMap::new()) }
    }

    /// A socket request the fetch entry already checked; checked again here (cheap), since the
    /// object must not trust what reaches it.
    async fn fetch(&self, req: Request) -> Result<Response> {
        let url = req.url()?;
        let upgrade = req.headers().get("Upgrade").ok().flatten();
        let endpoint: Endpoint = match route::endpoint("GET", url.path(), url.query().unwrap_or(""), upgrade.as_deref()) {
            Some(Ok(endpoint)) => endpoint,
            Some(Err((status, text))) => return Response::error(text, status),
            None => return Response::error("Not a socket path", 404),
        };
        self.wake(Some(endpoint.protocol));
        let (client_id, key) = (endpoint.client_id.as_deref(), endpoint.key.as_deref());
        let admitted = self.hub.borrow().as_ref().map(|hub| hub.admit(client_id, key)).unwrap_or(Ok(()));
        if let Err((status, text)) = admitted {
            return Response::error(text, status);
        }
        let pair = WebSocketPair::new()?;
        let socket = Workers.random_key(16);
        self.state.accept_websocket_with_tags(&pair.server, &[socket.as_str()]);
        self.sockets.borrow_mut().insert(socket.clone(), pair.server);
        let effects = self.with_hub(|hub| hub.connect(&socket, client_id, key, now_ms()));
        self.apply(effects);
        Response::from_websocket(pair.client)
    }

    async fn websocket_message(&self, ws: WebSocket, message: WebSocketIncomingMessage) -> Result<()> {
        let Some(member) = attachment(&ws) else {
            let _ = ws.close(Some(1011), Some("unknown socket"));
            return Ok(());
        };
        self.wake(Some(member.protocol));
        let effects = self.with_hub(|hub| match &message {
            WebSocketIncomingMessage::String(text) => hub.receive(&member.socket, Frame::Text(text), now_ms()),
            WebSocketIncomingMessage::Binary(bytes) => hub.receive(&member.socket, Frame::Binary(bytes.len()), now_ms()),
        });
        self.apply(effects);
        Ok(())
    }

    async fn websocket_close(&self, ws: WebSocket, code: usize, _reason: String, _was_clean: bool) -> Result<()> {
        let code = u16::try_from(code).unwrap_or(1000);
        let _ = ws.close(Some(answer_close_code(code)), Some("closed"));
        self.forget(&ws);
        Ok(())
    }

    async fn websocket_error(&self, ws: WebSocket, _error: worker::Error) -> Result<()> {
        self.forget(&ws);
        Ok(())
    }
}

impl SignalHub {
    /// Rebuild the hub from the sockets' attachments if the object just woke.
    fn wake(&self, protocol: Option<Protocol>) {
        if self.hub.borrow().is_some() {
            return;
        }
        let mut members = Vec::new();
        let mut sockets = HashMap::new();
        for ws in self.state.get_websockets() {
            if let Some(member) = attachment(&ws) {
                sockets.insert(member.socket.clone(), ws);
                members.push(member);
            }
        }
        let Some(protocol) = protocol.or_else(|| members.first().map(|m| m.protocol)) else { return };
        let (hub, effects) = Hub::rebuild(protocol, members);
        *self.sockets.borrow_mut() = sockets;
        *self.hub.borrow_mut() = Some(hub);
        self.apply(effects);
    }

    fn with_hub(&self, change: impl FnOnce(&mut Hub) -> Vec<Effect>) -> Vec<Effect> {
        self.hub.borrow_mut().as_mut().map(change).unwrap_or_default()
    }

    /// A socket closed or failed: the hub lets the others know.
    fn forget(&self, ws: &WebSocket) {
        let Some(member) = attachment(ws) else { return };
        self.wake(Some(member.protocol));
        self.sockets.borrow_mut().remove(&member.socket);
        let effects = self.with_hub(|hub| hub.disconnect(&member.socket, now_ms()));
        self.apply(effects);
    }

    /// Carry out the hub's effects. A send to a socket that is closing fails harmlessly: its close
    /// event follows and updates the hub.
    fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Send { to, text } => {
                    if let Some(ws) = self.sockets.borrow().get(&to) {
                        let _ = ws.send_with_str(&text);
                    }
                }
                Effect::Close { to, code, reason } => {
                    if let Some(ws) = self.sockets.borrow_mut().remove(&to) {
                        // Forget it first: a closing socket whose client never answers stays in
                        // the state's list, and must not come back as a member after a wake.
                        let _ = ws.serialize_attachment(());
                        let _ = ws.close(Some(code), Some(reason));
                    }
                }
                Effect::Save { member } => {
                    if let Some(ws) = self.sockets.borrow().get(&member.socket) {
                        if let Err(err) = ws.serialize_attachment(&member) {
                            Workers.log(&format!("could not store a socket's attachment: {err}"));
                        }
                    }
                }
            }
        }
    }
}

fn attachment(ws: &WebSocket) -> Option<Member> {
    ws.deserialize_attachment::<Member>().ok().flatten()
}

fn now_ms() -> f64 {
    Date::now().as_millis() as f64
}
