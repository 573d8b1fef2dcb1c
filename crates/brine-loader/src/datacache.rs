//! The minion data cache (`cache`) through a Salt cache driver Brine
//! does not have: `redis`, `consul`, `etcd`, `mysql_cache`, or a custom
//! module in `extension_modules/cache` (which overrides Brine's `localfs`
//! as it overrides Salt's).
//!
//! Brine keeps its own `localfs` copy, which its targeting, mine and
//! runners read; what a minion's `_pillar` stores (its grains and pillar
//! under `minions/<id>`, key `data`) is also stored through the driver,
//! from the thread that compiled the pillar, before the pillar is
//! answered. A driver that raises fails the request as Salt's master
//! fails it: the minion gets Salt's error string instead of a pillar.

use brine_config::MasterConfig;
use brine_proto::Value;

use crate::client::{Client, LoaderError};
use brine_cache::LOCALFS;

use crate::resolve::{self, ModuleType};

/// Salt's answer to a request whose handler raised.
pub const SALT_HANDLER_ERROR: &str = "Some exception handling minion payload";

/// The driver, when it runs through the pool (and the pool runs).
pub fn python_driver(cfg: &MasterConfig) -> Option<(String, Client)> {
    let driver = resolve::cache_driver(&cfg.raw);
    if !resolve::use_python(&cfg.raw, ModuleType::Cache, &driver, driver == LOCALFS) {
        return None;
    }
    crate::pool(cfg).map(|c| (driver, c))
}

/// `Cache.store(bank, key, data)` through the driver.
pub fn store(client: &Client, bank: &str, key: &str, data: &Value) -> Result<(), LoaderError> {
    let req = Value::map([
        ("kind", Value::from("cache")),
        ("op", Value::from("store")),
        ("bank", Value::from(bank)),
        ("key", Value::from(key)),
        ("data", data.clone()),
    ]);
    client.call(&req).map(|_| ())
}
