//! The master's side of the status board ([`brine_metrics`]): the
//! ProcessManager makes it in `sock_dir` before its first fork and names a
//! row for each process; the supervisors keep those rows current; every
//! process counts what it does into it; Maintenance serves it to
//! Prometheus on `metrics_port` (off by default, on `metrics_interface`,
//! 127.0.0.1 by default); `salt-master status` reads it from the file.

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;

use brine_config::MasterConfig;
use brine_metrics::Board;
use brine_proc::supervisor::{ChildSpec, Supervisor};

use crate::names;

/// The board's file: `sock_dir/master_status.board` (0600, the master's
/// user), made new at every start.
pub fn board_path(cfg: &MasterConfig) -> PathBuf {
    cfg.sock_dir.join("master_status.board")
}

/// Make the board for the ProcessManager's children `specs` (and, under
/// ReqServer_ProcessManager, MWorkerQueue and the MWorkers), install it
/// for this process and those it forks, and have the job caches report
/// their writes to it.
pub fn create(cfg: &MasterConfig, specs: &[ChildSpec]) -> Result<&'static Board, brine_metrics::board::BoardError> {
    let board = Board::create(&board_path(cfg), cfg.worker_threads)?;
    let mut row = 0;
    for spec in specs {
        board.name_role(row, &spec.name, None);
        let parent = row;
        row += 1;
        if spec.name == names::REQ_SERVER {
            board.name_role(row, names::WORKER_QUEUE, Some(parent));
            row += 1;
            for i in 0..cfg.worker_threads {
                board.name_role(row, &format!("{}{i}", names::WORKER_PREFIX), Some(parent));
                row += 1;
            }
        }
    }
    brine_cache::jobs::observe_writes(brine_metrics::cache_write);
    Ok(brine_metrics::install(board))
}

/// A supervisor's rows on the board, found by name once.
#[derive(Default)]
pub struct TreeRows(HashMap<String, Option<usize>>);

impl TreeRows {
    /// Copy `sup`'s view of its children into their rows.
    pub fn write(&mut self, sup: &Supervisor) {
        let Some(board) = brine_metrics::board() else {
            return;
        };
        let now = brine_metrics::board::now_ms();
        for c in sup.status() {
            let row = *self.0.entry(c.name.clone()).or_insert_with(|| board.role_row(&c.name));
            let Some(row) = row else { continue };
            let started = c.up.map_or(0, |up| now.saturating_sub(up.as_millis() as u64));
            board.set_role(
                row,
                c.pid.map(|p| p.as_raw() as u32),
                started,
                u64::from(c.restarts),
                c.ready,
            );
        }
    }
}

/// The metrics endpoint's socket, when `metrics_port` asks for one.
pub fn bind_endpoint(cfg: &MasterConfig) -> Result<Option<TcpListener>, String> {
    let port = cfg.get_u64("metrics_port").unwrap_or(0);
    if port == 0 {
        return Ok(None);
    }
    let port = u16::try_from(port).map_err(|_| format!("metrics_port {port} is not a TCP port"))?;
    let interface = cfg.get_str("metrics_interface").unwrap_or("127.0.0.1");
    let host = interface.trim_start_matches('[').trim_end_matches(']');
    let addr = match host.parse::<std::net::IpAddr>() {
        Ok(ip) => std::net::SocketAddr::new(ip, port),
        Err(_) => return Err(format!("metrics_interface {interface:?} is not an IP address")),
    };
    TcpListener::bind(addr)
        .map(Some)
        .map_err(|e| format!("cannot bind the metrics endpoint to {addr}: {e}"))
}

/// Serve scrapes on `listener` from a thread of this process.
pub fn serve_endpoint(cfg: &MasterConfig, listener: TcpListener) -> std::io::Result<()> {
    let Some(board) = brine_metrics::board() else {
        return Ok(());
    };
    let publish_port = cfg.publish_port;
    let backend = cfg.get_str("master_job_cache").unwrap_or("local_cache").to_string();
    if let Ok(addr) = listener.local_addr() {
        log::info!("metrics endpoint: http://{addr}/metrics");
    }
    std::thread::Builder::new().name("metrics".into()).spawn(move || {
        brine_metrics::http::serve(listener, || {
            let connected = brine_targeting::connected::connections_to(publish_port) as u64;
            brine_metrics::render::Snapshot::take(board, connected, &backend).render()
        })
    })?;
    Ok(())
}
