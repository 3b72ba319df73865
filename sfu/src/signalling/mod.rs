//! Wire protocols at the edge. Each is an adapter: it parses what a client
//! sends into the room core's commands and turns the core's events into
//! its own messages; nothing inside the core knows any of them.

pub mod v1;
