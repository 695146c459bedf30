//! Google Workspace and Cloud Identity: one scope per customer, collected
//! from the Admin SDK Directory API or read from saved `users.list` pages.
//!
//! The only collection is `users`, which carries each user's super admin
//! and delegated admin status. Groups, role assignments in detail, OAuth
//! tokens and application-specific passwords are not collected.

pub mod api;
pub mod export;
pub mod records;
