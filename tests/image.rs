//! Image writers.
