//! HTTP exchanges with the app, whatever carries them: the `http` or `sse`
//! scope built from a request head, and the app started with its
//! `receive` and `send` (see `exchange`). The connection that reads and
//! writes the bytes is `crate::http1` or, one stream each, `crate::http2`.

pub(crate) mod exchange;
mod sse;

use std::borrow::Cow;
use std::sync::Arc;

use pagi::server::TransportControl;
use pagi::{HttpScope, Receiver, Scope, Sender};

use exchange::{AppDriver, Exchange, HttpSource};

use crate::ctx::Ctx;
use crate::listener::ConnInfo;
use crate::wire::request::RequestHead;
use pagi::sse_wire;

/// An exchange that began: the app (not yet polled) and whether it is an
/// event stream.
pub(crate) struct Started {
    pub(crate) app: AppDriver,
    pub(crate) sse: bool,
}

/// Build the scope and the app's handles and call the app (not yet
/// polled).
pub(crate) fn start(
    head: RequestHead,
    method: Cow<'static, str>,
    ctx: &Arc<Ctx>,
    info: &ConnInfo,
) -> Started {
    let cfg = &ctx.config;
    let sse = sse_wire::wants_event_stream(&head.headers);
    let transport = TransportControl::new(cfg.ws_write_high_watermark, cfg.ws_write_low_watermark);
    let ex = Exchange::new(transport, if sse { "sse" } else { "http" });
    // Every field spelled out: `..HttpScope::default()` would build (and
    // drop) a throwaway `Connection` per request.
    let scope = Box::new(HttpScope {
        info: ctx.request_info(
            head,
            info,
            ("http", "https"),
            info.extensions(),
            ex.transport.view(),
        ),
        method,
        connection: ex.conn.view(),
    });
    let receiver = Receiver::new(HttpSource::new(ex.clone(), sse));
    let (scope, sender) = if sse {
        if let Some(limit) = cfg.sse_idle_timeout {
            ex.set_idle_limit(limit);
        }
        let sink = Arc::new(sse::SseSink::new(ex.clone()));
        (Scope::Sse(scope), Sender::new(sink))
    } else {
        let sink: Arc<dyn pagi::EventSink> = ex.clone();
        (Scope::Http(scope), Sender::new(sink))
    };
    let fut = ctx.app.call(scope, receiver, sender);
    Started {
        app: AppDriver::new(fut, ex, ctx.live.guard()),
        sse,
    }
}
