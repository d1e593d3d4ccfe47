//! keyward: a self-hosted secrets vault and signing proxy for AI agents.
//!
//! The service around the pure crates: configuration, the event store adapters, the
//! projector that keeps read models current, the application layer that runs the use
//! cases (src/app), the HTTP API and the command line.

pub mod api;
pub mod app;
pub mod auth;
pub mod bench;
pub mod cli;
pub mod config;
pub mod crypto;
pub mod mail;
pub mod mcp;
pub mod platform_admin;
pub mod projector;
pub mod replay;
pub mod router;
pub mod store;
pub mod telemetry;
pub mod verify;
pub mod web;
