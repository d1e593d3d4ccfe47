//! The application layer: what the adapters (the JSON API, the HTML pages, MCP, the
//! command line) call to change state. It turns decisions into appends to the log, and
//! decides again when another request changed the state first.

pub mod commands;
