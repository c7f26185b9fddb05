//! Switchyard operator: reconciles the seven kinds into a routing snapshot, writes status,
//! streams snapshots to data planes, stores interception records and writes usage back.

pub mod aggregate;
pub mod channel;
pub mod circuits;
pub mod config;
pub mod controller;
pub mod events;
pub mod facade;
pub mod probes;
pub mod run;
pub mod status;
pub mod status_writer;
pub mod store;
