//! 12 – UTF-8 round trip: where text is decoded, and by whom.
//!
//! - `path` arrives percent-decoded by the server (as UTF-8, bad bytes
//!   replaced by U+FFFD); `raw_path` is the path exactly as sent, as bytes.
//! - `query_string` stays percent-encoded: the app decodes it (`+` is a
//!   space, as in HTML forms).
//! - The request body is bytes: the app decodes it as UTF-8 text, or, for
//!   `application/x-www-form-urlencoded`, as form fields. A body that is not
//!   valid UTF-8 gets `400`.
//! - The response is text the app encodes as UTF-8 itself, so its
//!   `Content-Length` counts bytes, not characters (`café ☕` is 6
//!   characters, 9 bytes).
//!
//! Try `curl -H 'Content-Type: text/plain; charset=utf-8' --data-binary 'café ☕'
//! 'URL/caf%C3%A9%20%E2%98%95?drink=caf%C3%A9+%E2%98%95'` (without the
//! header curl labels the body a form).

use pagi::{BoxError, Headers, ReceiveEvent, Receiver, Scope, SendEvent, Sender};

/// The app.
pub async fn app(scope: Scope, mut receive: Receiver, send: Sender) -> Result<(), BoxError> {
    let Scope::Http(http) = scope else {
        return Err(pagi::unsupported_scope(&scope));
    };
    let mut body = Vec::new();
    loop {
        match receive.recv().await {
            ReceiveEvent::HttpRequest { body: chunk, more } => {
                body.extend_from_slice(&chunk);
                if !more {
                    break;
                }
            }
            _ => return Ok(()), // the client left
        }
    }

    let form = http
        .headers
        .get("content-type")
        .is_some_and(|ct| ct.starts_with(b"application/x-www-form-urlencoded"));
    let mut report = String::new();
    report.push_str(&format!("path: {}\n", http.path));
    report.push_str(&format!("raw_path: {}\n", show_bytes(&http.raw_path)));
    report.push_str(&format!(
        "query_string: {}\n",
        show_bytes(&http.query_string)
    ));
    for (name, value) in form_fields(&http.query_string) {
        report.push_str(&format!("query {name} = {value}\n"));
    }
    let status = if form {
        for (name, value) in form_fields(&body) {
            report.push_str(&format!("form {name} = {value}\n"));
        }
        200
    } else {
        match std::str::from_utf8(&body) {
            Ok(text) => {
                report.push_str(&format!(
                    "body: {text} ({} characters, {} bytes)\n",
                    text.chars().count(),
                    body.len()
                ));
                200
            }
            Err(e) => {
                report.push_str(&format!(
                    "body: not valid UTF-8 (bad byte at offset {})\n",
                    e.valid_up_to()
                ));
                400
            }
        }
    };

    // A Rust `String` is UTF-8 already: its bytes are the response body, and
    // the length that counts is `len()` (bytes), not `chars().count()`.
    let headers = Headers::new()
        .with("content-type", "text/plain; charset=utf-8")
        .with("content-length", report.len().to_string());
    send.send(SendEvent::response_start(status, headers))
        .await?;
    send.send(SendEvent::response_body(report, false)).await?;
    Ok(())
}

/// Bytes for display: ASCII as is, anything else as `\xNN`.
fn show_bytes(bytes: &[u8]) -> String {
    bytes
        .iter()
        .flat_map(|b| b.escape_ascii())
        .map(char::from)
        .collect()
}

/// `name=value` pairs of a query string or form body, percent-decoded
/// (with `+` as a space) and read as UTF-8 (bad bytes become U+FFFD).
fn form_fields(encoded: &[u8]) -> Vec<(String, String)> {
    encoded
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = match pair.iter().position(|&b| b == b'=') {
                Some(i) => (&pair[..i], &pair[i + 1..]),
                None => (pair, &pair[..0]),
            };
            (decode(name), decode(value))
        })
        .collect()
}

/// Percent-decode one form component, then read it as UTF-8.
fn decode(component: &[u8]) -> String {
    let mut out = Vec::with_capacity(component.len());
    let mut i = 0;
    while i < component.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        match component[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < component.len() => {
                match (hex(component[i + 1]), hex(component[i + 2])) {
                    (Some(hi), Some(lo)) => {
                        out.push((hi * 16 + lo) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
