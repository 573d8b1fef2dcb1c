//! CLIs: being written.
