//! Server-Sent Events on top of an HTTP exchange: the `sse.*` send events
//! and their first-send-wins ordering rules (the wire format is in
//! `wire::sse`). `sse.keepalive` comments are emitted by the connection.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use pagi::{EventSink, SendError, SendEvent};

use super::exchange::{Exchange, Out};
use pagi::sse_wire::{format_comment, format_event};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    Init,
    Streaming,
    Declined,
    Closed,
}

/// The app's `send` for an `sse` scope.
pub(crate) struct SseSink {
    ex: Arc<Exchange>,
    stage: Mutex<Stage>,
}

impl SseSink {
    pub(crate) fn new(ex: Arc<Exchange>) -> Self {
        SseSink {
            ex,
            stage: Mutex::new(Stage::Init),
        }
    }
}

fn after(stage: Stage, t: &str) -> SendError {
    match stage {
        Stage::Init => SendError::out_of_order(format!("cannot send '{t}' before sse.start")),
        Stage::Streaming => {
            SendError::out_of_order(format!("cannot decline with {t} after sse.start"))
        }
        Stage::Declined => {
            SendError::out_of_order(format!("cannot send '{t}' after sse.http.response.start"))
        }
        Stage::Closed => SendError::out_of_order(format!("cannot send '{t}' after sse.close")),
    }
}

impl EventSink for SseSink {
    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ex.transport.poll_writable(cx)
    }

    fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.ex.transport.poll_closed(cx)
    }

    fn is_closed(&self) -> bool {
        self.ex.transport.is_closed()
    }

    fn start_send(&self, event: SendEvent) -> Result<(), SendError> {
        let mut stage = self.stage.lock().unwrap_or_else(|e| e.into_inner());
        if self.ex.is_closed() && *stage != Stage::Closed {
            return Ok(()); // client gone: a no-op
        }
        let type_name = event.type_name();
        match (event, *stage) {
            (SendEvent::SseStart { status, headers }, Stage::Init) => {
                let mut headers = headers;
                pagi::sse_wire::add_default_headers(&mut headers);
                self.ex.start(status, headers, false)?;
                *stage = Stage::Streaming;
                Ok(())
            }
            (
                SendEvent::SseSend {
                    event: e,
                    data,
                    id,
                    retry,
                },
                Stage::Streaming,
            ) => {
                let frame = format_event(e.as_deref(), &data, id.as_deref(), retry)?;
                self.ex.push_body(Out::Data(frame), true)
            }
            (SendEvent::SseComment { comment }, Stage::Streaming) => {
                self.ex.push_body(Out::Data(format_comment(&comment)), true)
            }
            (SendEvent::SseKeepalive { interval, comment }, Stage::Init | Stage::Streaming) => {
                self.ex.set_keepalive(interval, format_comment(&comment));
                Ok(())
            }
            (SendEvent::SseClose { .. }, Stage::Closed) => Ok(()),
            (SendEvent::SseClose { reason }, Stage::Streaming) => {
                *stage = Stage::Closed;
                tracing::debug!(
                    "SSE stream closed by the app: {}",
                    reason.as_deref().unwrap_or("no reason given")
                );
                self.ex.push_body(Out::Data(Bytes::new()), false)
            }
            (SendEvent::SseHttpResponseStart { status, headers }, Stage::Init) => {
                self.ex.start(status, headers, false)?;
                *stage = Stage::Declined;
                Ok(())
            }
            (SendEvent::SseHttpResponseBody { body, more }, Stage::Declined) => {
                self.ex.push_body(Out::Data(body), more)
            }
            (
                SendEvent::SseStart { .. }
                | SendEvent::SseSend { .. }
                | SendEvent::SseComment { .. }
                | SendEvent::SseKeepalive { .. }
                | SendEvent::SseClose { .. }
                | SendEvent::SseHttpResponseStart { .. }
                | SendEvent::SseHttpResponseBody { .. },
                s,
            ) => Err(after(s, type_name)),
            (other, _) => Err(SendError::unrecognized(&other, "sse")),
        }
    }
}
