//! A drop-in P2PCF signalling worker for Cloudflare Workers and R2.
//!
//! A functional core with a thin shell. Layers, each using only the ones above it in this list:
//!
//! - `platform`: the clock, randomness and sleep, as a trait; `store`: storage, as a trait;
//! - `protocol`: the wire format, validated at the door;
//! - `room`: the pure room rules (one document per room, its bounds);
//! - `layout`: where a room lives in the bucket, each operation within R2's limits;
//! - `commit`: landing a change under R2's one-write-per-second-per-key, from a lone request;
//! - `service`: poll, publish and leave; `quota`: per-origin monthly quotas;
//! - `hub`: the WebSocket protocols (P2PCF-WS rooms, relay, pub/sub) over socket ids;
//! - `http`: request to response, status codes and texts as the reference;
//! - `wasm`: the only runtime code (R2 adapter, fetch entry, platform, the Durable Object).
//!
//! Everything but `wasm` is plain Rust, tested natively against `store::MemoryStore` and a
//! virtual clock.

pub mod commit;
pub mod http;
pub mod hub;
pub mod layout;
pub mod platform;
pub mod protocol;
pub mod quota;
pub mod room;
pub mod service;
pub mod store;

#[cfg(test)]
mod testing;

#[cfg(all(target_arch = "wasm32", feature = "runtime"))]
mod wasm;
