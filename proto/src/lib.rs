//! Generated types and gRPC stubs for the `sovereign.v1` protocol.
//!
//! The `.proto` source in `proto/sovereign/v1/` is the documentation of the
//! wire contract; this crate only compiles it. Fields are only ever added.

#![allow(clippy::all, clippy::pedantic, clippy::unwrap_used)]

pub mod codec;

pub mod v1 {
    tonic::include_proto!("sovereign.v1");
}
