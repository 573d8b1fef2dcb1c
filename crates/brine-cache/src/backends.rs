//! The stores this master keeps its state in, chosen by its configuration
//! as Salt chooses them: the job cache (`master_job_cache`). Callers take
//! the narrow read+write interface ([`JobCache`]), so another backend
//! plugs in here without touching them.
//!
//! Brine has Salt's default job cache, `local_cache`. A configuration that
//! names another returner (`master_job_cache: mysql`) or asks for event
//! returners (`event_return`) is told so once at start-up, and the jobs
//! are kept in `local_cache`, where Salt's own tools read them.

use crate::{JobCache, LocalCache, LOCAL_CACHE};
use brine_config::MasterConfig;
use log::warn;

fn job_cache_name(cfg: &MasterConfig) -> &str {
    cfg.get_str("master_job_cache").unwrap_or(LOCAL_CACHE)
}

/// The master's job cache.
pub fn job_cache(cfg: &MasterConfig) -> Box<dyn JobCache + Send> {
    crate::jobs::open(job_cache_name(cfg), &cfg.cachedir, cfg.hash_type())
        .unwrap_or_else(|_| Box::new(LocalCache::new(&cfg.cachedir, cfg.hash_type())))
}

/// Start-up warnings for the backends asked for that Brine does not have.
pub fn warn_unsupported(cfg: &MasterConfig) {
    let name = job_cache_name(cfg);
    if let Err(e) = crate::jobs::open(name, &cfg.cachedir, cfg.hash_type()) {
        warn!(
            "master_job_cache: {e}; jobs are kept in local_cache under {}",
            cfg.cachedir.join("jobs").display()
        );
    }
    if let Some(returners) = cfg.get("event_return").filter(|v| brine_py::truthy(*v)) {
        warn!("event_return {returners}: event returners are not available in Brine; events are not sent to them");
    }
}
