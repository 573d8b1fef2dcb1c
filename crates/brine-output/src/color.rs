//! `salt.utils.color.get_colors`: the ANSI sequences Salt's outputters
//! use (`salt.utils.textformat.TextFormat`), or empty strings when colour
//! is off.

/// The colours of `get_colors(use)`; every field is `""` when off.
#[derive(Debug, Clone, Copy)]
pub struct Colors {
    pub red: &'static str,
    pub light_red: &'static str,
    pub green: &'static str,
    pub light_green: &'static str,
    pub yellow: &'static str,
    pub light_yellow: &'static str,
    pub blue: &'static str,
    pub light_blue: &'static str,
    pub magenta: &'static str,
    pub light_magenta: &'static str,
    pub cyan: &'static str,
    pub endc: &'static str,
}

const ON: Colors = Colors {
    red: "\x1b[0;31m",
    light_red: "\x1b[0;1;31m",
    green: "\x1b[0;32m",
    light_green: "\x1b[0;1;32m",
    yellow: "\x1b[0;33m",
    light_yellow: "\x1b[0;1;33m",
    blue: "\x1b[0;34m",
    light_blue: "\x1b[0;1;34m",
    magenta: "\x1b[0;35m",
    light_magenta: "\x1b[0;1;35m",
    cyan: "\x1b[0;36m",
    endc: "\x1b[0;0m",
};

const OFF: Colors = Colors {
    red: "",
    light_red: "",
    green: "",
    light_green: "",
    yellow: "",
    light_yellow: "",
    blue: "",
    light_blue: "",
    magenta: "",
    light_magenta: "",
    cyan: "",
    endc: "",
};

/// `get_colors(use)`.
pub fn get_colors(on: bool) -> Colors {
    if on {
        ON
    } else {
        OFF
    }
}

/// `salt.output.strip_esc_sequence`: ESC becomes `?`, so data cannot
/// drive the terminal.
pub fn strip_esc(s: &str) -> String {
    s.replace('\x1b', "?")
}
