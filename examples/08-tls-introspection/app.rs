//! 08 – TLS introspection: reports what the scope says about the connection
//! (`scheme`, `client`, and the `tls` extension's fields) or that it does
//! not use TLS. Run it with a certificate:
//!
//! ```text
//! pagi-server --app 08 --ssl-cert cert.pem --ssl-key key.pem
//! curl -k https://127.0.0.1:5000/
//! ```

use std::fmt::Write;

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender, Value};

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let Scope::Http(http) = &scope else {
        return Err(pagi::unsupported_scope(&scope));
    };
    while let ReceiveEvent::HttpRequest { more: true, .. } = receive.recv().await {}
    let mut report = String::new();
    writeln!(report, "scheme: {}", http.scheme)?;
    match http.client {
        Some(c) => writeln!(report, "client: {c}")?,
        None => writeln!(report, "client: (none: a Unix socket)")?,
    }
    match http.extensions.get("tls") {
        None => writeln!(report, "not using TLS")?,
        Some(tls) => {
            for (key, value) in tls {
                match value {
                    Value::Null => writeln!(report, "{key}: (none)")?,
                    Value::Int(n) => writeln!(report, "{key}: {n:#06x}")?,
                    Value::Str(s) if key == "server_cert" => {
                        let first = s.lines().nth(1).unwrap_or_default();
                        writeln!(report, "{key}: PEM, {} bytes ({first}...)", s.len())?;
                    }
                    Value::Str(s) => writeln!(report, "{key}: {s}")?,
                    Value::List(certs) => {
                        writeln!(report, "{key}: {} certificate(s)", certs.len())?
                    }
                    other => writeln!(report, "{key}: {other:?}")?,
                }
            }
        }
    }
    let headers = Headers::new()
        .with("content-type", "text/plain; charset=utf-8")
        .with("content-length", report.len().to_string());
    send.send(SendEvent::response_start(200, headers)).await?;
    send.send(SendEvent::response_body(report, false)).await?;
    Ok(())
}
