//! A drop-in P2PCF signalling worker for Cloudflare Workers and R2.
//!
//! The crate is a functional core with a thin shell. Everything that decides anything
//! (`protocol`, `room`, `quota`, `service`, `http`) is plain Rust over the `store::Store` trait
//! and is tested natively; `wasm` holds the only code that touches the Workers runtime: the R2
//! adapter and the fetch entry point.

pub mod batch;
pub mod http;
pub mod protocol;
pub mod quota;
pub mod room;
pub mod service;
pub mod store;

#[cfg(test)]
mod testing;

#[cfg(target_arch = "wasm32")]
mod wasm;
