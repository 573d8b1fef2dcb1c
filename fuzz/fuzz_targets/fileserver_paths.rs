//! The fileserver's answers to paths and saltenvs a minion chooses
//! (`_serve_file`, `_file_hash`, `_file_find`, `_file_list`): never a byte
//! of a file outside `file_roots`, whatever the `..`, symlink, URL-escape
//! or absolute-path tricks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    brine_fuzz::files::check(data);
});
