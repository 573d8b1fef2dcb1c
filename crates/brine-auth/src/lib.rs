//! Salt's authentication and authorization for people and programs:
//! who sent a request ([`LoadAuth`]: eauth backends, tokens, local user
//! keys) and what they may do ([`acl`]: `external_auth`,
//! `publisher_acl`, `peer`).
//!
//! The master's request handlers ask [`LoadAuth::check_authentication`]
//! and then the matching check ([`acl::auth_check`] for a publish,
//! [`acl::spec_check`] for a runner or wheel call). The token store is
//! behind [`tokens::TokenStore`] so another backend plugs in without
//! touching the callers.

pub mod acl;
pub mod eauth;
mod load;
pub mod tokens;

pub use load::{is_user_name, key_users, now, running_user, AuthType, Authed, Failure, LoadAuth};
