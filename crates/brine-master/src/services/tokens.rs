//! `mk_token` and `get_token` (Salt's `ClearFuncs.mk_token` /
//! `get_token`): salt-api's `/login` and `salt -T` exchange eauth
//! credentials for a token, and salt-api asks whether a session's token
//! is still good.
//!
//! Answers are Salt's: `mk_token` gives the token data (`{start, expire,
//! name, eauth, [groups], token}`) or `""`; `get_token` gives the data or
//! `{}` (an unknown, expired or malformed token; expired ones are removed
//! on the way), and `False` for a load without a token.

use brine_proto::Value;
use log::{info, warn};

use super::Ctx;

pub(super) fn mk_token(ctx: &Ctx, load: &Value) -> Value {
    match ctx.auth.mk_token(&ctx.cfg, load) {
        Some(tdata) => {
            info!(
                "token {} minted for {} user {}",
                tdata
                    .get("token")
                    .and_then(Value::as_str)
                    .map(brine_auth::tokens::short)
                    .unwrap_or_default(),
                tdata
                    .get("eauth")
                    .map(brine_py::to_str)
                    .unwrap_or_default()
                    .escape_debug(),
                tdata
                    .get("name")
                    .map(brine_py::to_str)
                    .unwrap_or_default()
                    .escape_debug(),
            );
            tdata
        }
        None => {
            warn!("Authentication failure of type \"eauth\" occurred.");
            Value::from("")
        }
    }
}

pub(super) fn get_token(ctx: &Ctx, load: &Value) -> Value {
    let Some(tok) = load.get("token") else {
        return Value::Bool(false);
    };
    let tok = tok.as_str().unwrap_or("");
    if !brine_auth::tokens::is_token_name(tok) {
        // The name itself stays out of the log (it may be a token).
        warn!("get_token for a name that cannot be a token: refused");
        return Value::Map(vec![]);
    }
    ctx.auth.get_tok(tok).unwrap_or(Value::Map(vec![]))
}
