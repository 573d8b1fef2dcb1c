//! The request commands the master serves, as explicit allow-lists
//! (Salt's exposed `ClearFuncs` and `AESFuncs`). A `cmd` that is not listed here is refused before any
//! handler sees it, as Salt answers unexposed names with `{}`.

use std::str::FromStr;

macro_rules! commands {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $wire:literal),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),* }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),*];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),* }
            }
        }

        impl FromStr for $name {
            type Err = UnknownCommand;
            fn from_str(s: &str) -> Result<Self, UnknownCommand> {
                match s { $($wire => Ok($name::$variant),)* other => Err(UnknownCommand(other.to_string())) }
            }
        }
    };
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown or unexposed command {0:?}")]
pub struct UnknownCommand(pub String);

commands! {
    /// Clear (unencrypted) commands: `_auth` in the channel layer, the rest
    /// Salt's `ClearFuncs` for local clients.
    ClearCmd {
        Auth = "_auth",
        Publish = "publish",
        Runner = "runner",
        Wheel = "wheel",
        MkToken = "mk_token",
        GetToken = "get_token",
        Ping = "ping",
    }
}

commands! {
    /// Encrypted minion commands (Salt's exposed `AESFuncs`).
    AesCmd {
        Pillar = "_pillar",
        Return = "_return",
        SyndicReturn = "_syndic_return",
        MinionEvent = "_minion_event",
        Mine = "_mine",
        MineGet = "_mine_get",
        MineDelete = "_mine_delete",
        MineFlush = "_mine_flush",
        MasterOpts = "_master_opts",
        MasterTops = "_master_tops",
        FileEnvs = "_file_envs",
        FileList = "_file_list",
        FileListEmptydirs = "_file_list_emptydirs",
        DirList = "_dir_list",
        SymlinkList = "_symlink_list",
        FileFind = "_file_find",
        FileHash = "_file_hash",
        FileHashAndStat = "_file_hash_and_stat",
        ServeFile = "_serve_file",
        FileRecv = "_file_recv",
        MinionRunner = "minion_runner",
        MinionPub = "minion_pub",
        MinionPublish = "minion_publish",
        PubRet = "pub_ret",
        RevokeAuth = "revoke_auth",
        RegisterResources = "_register_resources",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_lists_round_trip_and_refuse_the_rest() {
        for c in ClearCmd::ALL {
            assert_eq!(c.as_str().parse::<ClearCmd>().unwrap(), *c);
        }
        for c in AesCmd::ALL {
            assert_eq!(c.as_str().parse::<AesCmd>().unwrap(), *c);
        }
        for bad in [
            "",
            "__init__",
            "_ext_nodes",
            "_master_state",
            "_auth ",
            "PUBLISH",
            "_prep_auth_info",
        ] {
            assert!(
                bad.parse::<ClearCmd>().is_err() && bad.parse::<AesCmd>().is_err(),
                "{bad:?}"
            );
        }
    }
}
