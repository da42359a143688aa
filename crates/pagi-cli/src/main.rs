//! `pagi-server`: serves one of the bundled example apps.
//!
//! ```text
//! pagi-server --app examples/18-bidirectional-websocket --port 5018
//! ```

use std::process::ExitCode;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    pagi_cli::run_with(|spec| {
        let names: Vec<&str> = pagi_examples::ALL.iter().map(|e| e.name).collect();
        let Some(spec) = spec else {
            return Err(format!(
                "no app given; use --app with one of: {}",
                names.join(", ")
            ));
        };
        pagi_examples::find(spec).map(|e| e.app()).ok_or_else(|| {
            format!(
                "unknown app '{spec}'; available: {} (as examples/NAME, NAME, or its number)",
                names.join(", ")
            )
        })
    })
}
