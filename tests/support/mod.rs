//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub mod fixtures;
pub mod nginx;
pub mod oracle;
pub mod server;
