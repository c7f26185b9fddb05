//! Switchyard operator.
