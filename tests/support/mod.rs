//! Helpers shared by the integration tests.

#![allow(dead_code)]

pub(crate) mod fake_egnyte;
pub(crate) mod fixtures;
pub(crate) mod nginx;
pub(crate) mod oracle;
pub(crate) mod server;
