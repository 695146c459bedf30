//! idrift finds cloud identities nobody meant to create.
//!
//! The pipeline runs one way: [`collect`] turns API pages or CLI exports
//! into [`model::Snapshot`]s, [`store`] keeps them on disk, [`diff`] turns
//! two snapshots into changes, [`judge`] turns changes into findings,
//! [`attribute`] finds who made them in the audit logs and [`report`]
//! renders them, with [`rules`] marking the changes a team
//! expected; [`notify`] posts the report to a webhook. [`cli`] and
//! [`config`] only resolve settings.

pub mod attribute;
pub mod cli;
pub mod collect;
pub mod commands;
pub mod config;
pub mod diff;
pub mod exit;
pub mod git;
pub mod judge;
pub mod lock;
pub mod model;
pub mod notify;
pub mod progress;
pub mod report;
pub mod rules;
pub mod settings;
pub mod store;
