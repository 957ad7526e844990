//! PII and secret redaction.

pub mod detect;
