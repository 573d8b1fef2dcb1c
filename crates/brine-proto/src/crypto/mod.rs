//! Salt crypto: being written.
