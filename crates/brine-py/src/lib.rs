//! Python and Salt semantics, in one place, for every Brine crate: what
//! Salt's Python code computes from the same input, so Brine answers the
//! same.
//!
//! * Values as Python sees them ([`PyValue`], over both msgpack
//!   [`brine_proto::Value`] and `serde_json::Value`): truthiness, `==`,
//!   `str()`, `repr()`, `type(v).__name__`, `int()`; `repr` of floats,
//!   strings and bytes.
//! * `fnmatch.fnmatch` ([`fnmatch`], [`Glob`]) and `glob.glob` ([`glob`]).
//! * `shlex.split` ([`shlex_split`]).
//! * `posixpath` (`normpath`, `join`, `split`, `dirname`, `abspath`,
//!   `expanduser`), `urlparse(...).scheme`, `salt.utils.path.join`.
//! * Salt's YAML loader (`salt.utils.yaml.safe_load`, YAML 1.1 scalars)
//!   and dumper (`safe_dump`, block style), and `salt.utils.args`
//!   (`yamlify_arg`, `parse_kwarg`, `parse_input`).
//! * `salt.utils.stringutils.is_binary`; `str()` of an `OSError`.
//! * Salt's `clean_key` for PEM public keys.
//! * Python's `dict` over msgpack map pairs ([`dict`]).
//! * `salt.utils.dicttrim.trim_dict` and `sys.getsizeof` ([`dicttrim`]).
//!
//! POSIX flavour, as CPython 3.11 implements these functions.

use std::path::PathBuf;

mod args;
pub mod dict;
pub mod dicttrim;
mod fnmatch;
mod glob;
mod keys;
mod path;
mod repr;
mod shlex;
mod stringutils;
mod value;
mod yaml;
mod yaml_dump;

pub use args::{parse_input, parse_kwarg, split_input, yamlify, yamlify_arg};
pub use fnmatch::{fnmatch, Glob};
pub use glob::{glob, has_magic};
pub use keys::clean_key;
pub use path::{abspath, dirname, expanduser, join, normpath, salt_join, split, url_scheme};
pub use repr::{bytes_repr, float_repr, json_str, os_error, str_repr};
pub use shlex::shlex_split;
pub use stringutils::is_binary;
pub use value::{eq, int, int_str, repr, text, to_str, truthy, type_name, Key, PyValue, View};
pub use yaml::{parse_yaml, parse_yaml_value};
pub use yaml_dump::{
    safe_dump as yaml_safe_dump, safe_dump_indent as yaml_safe_dump_indent, yaml_dquote, yaml_float, yaml_squote,
    yaml_str,
};

/// What Salt's Python code raises here.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A YAML document Salt's loader refuses (`path` only names the text).
    #[error("{path}: line {line}, column {col}: {msg}")]
    Yaml {
        path: PathBuf,
        line: usize,
        col: usize,
        msg: String,
    },
    /// What PyYAML's representer refuses (`str()` of its RepresenterError).
    #[error("{0}")]
    Represent(String),
    /// `shlex.split`'s `ValueError`.
    #[error("{0}")]
    Shlex(&'static str),
}
