//! What the `pagi-bench` binaries share: TLS for the benchmark peers and the load client (a
//! throw-away CA and server certificate, an acceptor and a connector) on rustls with aws-lc-rs,
//! the provider pagi-server uses, so TLS workloads compare servers, not crypto libraries.

pub mod tls;
