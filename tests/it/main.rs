//! One integration-test binary (one link): each module drives a real server over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod auth;
mod binary;
mod bounds;
mod concurrency;
mod flows;
mod fuzz;
mod getid;
mod pools;
mod protocol;
mod providers;
mod roles;
mod tags;
mod tokens;
