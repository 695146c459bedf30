//! One module per subcommand, each with a `run` that returns the report.

pub mod diff;
pub mod history;
pub mod rules;
pub mod scan;
