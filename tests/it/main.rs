//! One integration-test binary (one link): each module drives a real server over loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

mod auth;
mod backup;
mod binary;
mod bounds;
mod cache_coherence;
mod concurrency;
mod defaults;
mod delete_races;
mod faults;
mod flows;
mod fuzz;
mod getid;
mod health;
mod observability;
mod own_tokens;
mod pools;
mod protocol;
mod providers;
mod regions;
mod replicas;
mod roles;
mod seed;
mod slow_clients;
mod tags;
mod tokens;
mod transfer;
