//! Salt's reactor (`salt/utils/reactor.py`), the parts that decide what
//! to do for an event; the master's Reactor process runs the result.
//!
//! * [`map`]: the `reactor:` option (a list of `{tag glob: [sls …]}`, or
//!   the path of a YAML file holding one), `reactor_*` settings, and
//!   which files an event's tag selects (`fnmatch`, as Salt).
//! * [`render`]: each selected file (`salt://` from `file_roots`, or a
//!   filesystem glob) rendered with the master's renderer pipe and
//!   `tag`, `data`, `opts`/`__opts__` in the template context.
//! * Salt's state `Compiler` over the rendered high data (`pad_funcs`,
//!   `verify_high`, `compile_high_data`, `order_chunks`) is brine-state's,
//!   the one the state run uses; re-exported here.
//! * [`reaction`]: one low chunk as the call `ReactWrap.run` makes:
//!   `local` (`cmd` is an alias) publishes, `runner` and `wheel` run on
//!   the master as user `Reactor`, `caller` is refused; the current
//!   `args:` form and the legacy `arg:`/`kwarg:`/named forms.

pub mod map;
pub mod reaction;
pub mod render;

pub use brine_state::compile::{compile_high_data, verify_high, Chunk};
pub use map::{ReactorMap, Settings};
pub use reaction::{reaction, Reaction, EVENT_USER};
pub use render::Renderer;
