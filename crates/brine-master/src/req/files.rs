//! The fileserver commands of the request channel (Salt's `AESFuncs`
//! file functions and `_master_opts`/`_master_tops`), served by
//! [`crate::fileserver::Fileserver`].

use brine_proto::commands::AesCmd;
use brine_proto::Value;

use super::ReqHandler;

impl ReqHandler {
    /// One fileserver command; not served yet.
    pub(super) fn file_cmd(&mut self, _cmd: AesCmd, _id: &str, _load: &Value) -> Value {
        Value::Map(Vec::new())
    }
}
