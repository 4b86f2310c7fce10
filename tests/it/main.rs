//! One integration-test binary (one link): each module drives a real server over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod auth;
mod binary;
mod concurrency;
mod flows;
mod fuzz;
mod getid;
mod pools;
mod protocol;
mod providers;
mod roles;
mod slow_clients;
mod tags;
mod tokens;
