//! Reactor: Salt's reactor process. It follows the master event bus
//! (`master_event_pub.ipc`, reconnecting when the EventPublisher
//! restarts), and for each event whose tag the `reactor:` map selects it
//! queues the event for a pool of `reactor_worker_threads` threads
//! (`reactor_worker_hwm` events at most; when full the event is dropped
//! and logged, so the bus is always read). A thread renders the reaction
//! files (`brine_reactor`), compiles them into ordered chunks and runs
//! them: `local` publishes at once (as `LocalClient`, through the
//! master's request port with the master user's key), `runner` and
//! `wheel` reactions are queued again as their own tasks and run as user
//! `Reactor` (runners from brine-runners, wheel in the same functions as
//! the `wheel` command). Events whose data says `user: Reactor` start no
//! reaction.
//!
//! It also answers the `reactor` runner's management events
//! (`salt/reactors/manage/{is_leader,set_leader,add,delete,list}`),
//! which must carry the master user's key; a reactor that is not the
//! leader takes no action.

use brine_metrics::Counter;
use std::collections::VecDeque;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::Condvar;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brine_client::{BusAddr, LocalClient, Publish, UserKey};
use brine_config::MasterConfig;
use brine_proc::supervisor::{poll_fds, ChildSpec};
use brine_proto::Value;
use brine_reactor::{compile_high_data, reaction, verify_high, Reaction, ReactorMap, Renderer, Settings, EVENT_USER};
use log::{debug, error, info, warn};

use super::{role, stop_signals, stopping, subscribe_bus};
use crate::loglimit::LogLimiter;
use crate::names;

/// How often a reactor map kept in a file is checked for changes.
const MAP_CHECK: Duration = Duration::from_secs(1);
/// How long a reaction's publish waits for the master's answer.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(15);

/// Work for the pool.
enum Task {
    /// Render and run the reactions of one event.
    Event {
        tag: String,
        data: Value,
        reactors: Vec<String>,
    },
    /// A runner or wheel reaction.
    Run { tag: String, reaction: Reaction },
}

pub fn spec(cfg: Rc<MasterConfig>) -> ChildSpec {
    role(names::REACTOR, move |ctx| {
        let sig = stop_signals()?;
        let settings = Settings::from_config(&cfg);
        if let Some(n) = settings.niceness {
            info!("Reactor setting niceness to {n}");
            // SAFETY: nice(2) only changes this process's priority.
            unsafe { libc::nice(n) };
        }
        let addr = BusAddr::from_config(&cfg);
        let mut reactor = Reactor::new(&cfg, &settings);
        let mut ready = false;
        let started = Instant::now();
        loop {
            let Some(mut bus) = subscribe_bus(&addr, &sig, started, ready)? else {
                return Ok(());
            };
            if !ready {
                ctx.ready();
                ready = true;
            } else {
                info!("re-subscribed to the event bus");
            }
            'conn: loop {
                poll_fds(&[sig.fd(), bus.as_raw_fd()], Some(MAP_CHECK))?;
                sig.drain();
                if stopping() {
                    return Ok(());
                }
                reactor.tick();
                loop {
                    match bus.next_raw_now() {
                        Ok(Some(ev)) => {
                            // Most events start nothing: their data is not
                            // decoded.
                            if reactor.wants(&ev.tag) {
                                if let Some(ev) = ev.decode() {
                                    reactor.handle(&ev.tag, ev.data);
                                }
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            warn!("event bus: {e}; subscribing again");
                            break 'conn;
                        }
                    }
                }
            }
        }
    })
}

/// The Reactor's own state: the map, leadership, the pool's queue.
struct Reactor {
    cfg: MasterConfig,
    map: ReactorMap,
    leader: bool,
    queue: Arc<TaskQueue>,
    events: brine_proto::event::EventSender,
    last_check: Instant,
    dropped_log: LogLimiter,
}

impl Reactor {
    fn new(cfg: &MasterConfig, settings: &Settings) -> Reactor {
        let tx = TaskQueue::new(cfg, settings);
        let map = ReactorMap::from_config(cfg);
        if !map.is_empty() {
            info!(
                "reactor: {} map entries, {} worker threads, queue of {}",
                map.len(),
                settings.worker_threads,
                settings.worker_hwm
            );
        }
        Reactor {
            cfg: cfg.clone(),
            map,
            leader: true,
            queue: tx,
            events: brine_client::event_sender(cfg),
            last_check: Instant::now(),
            dropped_log: LogLimiter::new(5, Duration::from_secs(60)),
        }
    }

    fn tick(&mut self) {
        if self.last_check.elapsed() >= MAP_CHECK {
            self.map.refresh();
            self.last_check = Instant::now();
        }
    }

    /// Whether an event under `tag` may need handling: a management
    /// event, or one the map selects while this reactor leads.
    fn wants(&self, tag: &str) -> bool {
        tag.contains("salt/reactors/manage") || (self.leader && !self.map.reactors(tag).is_empty())
    }

    /// One event off the bus (Salt's `Reactor.run` loop body).
    fn handle(&mut self, tag: &str, data: Value) {
        if data.get("user").and_then(Value::as_str) == Some(EVENT_USER) {
            return;
        }
        if tag.contains("salt/reactors/manage") {
            if !self.master_key_ok(&data) {
                error!("received salt/reactors/manage event without matching master_key. discarding");
                return;
            }
            if tag.ends_with("salt/reactors/manage/is_leader") {
                self.fire_leader();
            }
            if tag.ends_with("salt/reactors/manage/set_leader") {
                let id = self.cfg.master_id();
                if data.get("id").and_then(Value::as_str) == Some(id.as_str()) {
                    self.leader = data.get("value").map(brine_py::truthy).unwrap_or(true);
                    info!("reactor leadership set to {}", self.leader);
                }
                self.fire_leader();
            }
            if tag.ends_with("salt/reactors/manage/add") {
                let glob = data.get("event").map(brine_py::to_str).unwrap_or_default();
                let paths = match data.get("reactors") {
                    Some(Value::Array(a)) => a.iter().map(brine_py::to_str).collect(),
                    Some(v) => vec![brine_py::to_str(v)],
                    None => Vec::new(),
                };
                let res = self.map.add(&glob, paths);
                self.fire_manage("salt/reactors/manage/add-complete", res, "Reactor added.");
                return;
            } else if tag.ends_with("salt/reactors/manage/delete") {
                let glob = data.get("event").map(brine_py::to_str).unwrap_or_default();
                let res = self.map.delete(&glob);
                self.fire_manage("salt/reactors/manage/delete-complete", res, "Reactor deleted.");
                return;
            } else if tag.ends_with("salt/reactors/manage/list") {
                let data = Value::map([("reactors", self.map.to_value())]);
                let _ = self.events.fire("salt/reactors/manage/list-results", &data);
                return;
            }
        }
        if !self.leader {
            return;
        }
        let reactors: Vec<String> = self.map.reactors(tag).into_iter().map(String::from).collect();
        if reactors.is_empty() {
            return;
        }
        debug!(
            "Gathering reactors for tag {}: {}",
            tag.escape_debug(),
            reactors.join(", ")
        );
        let task = Task::Event {
            tag: tag.to_string(),
            data,
            reactors,
        };
        match self.queue.push(task) {
            Ok(()) => {}
            Err(Full) => {
                if let Some(held) = self.dropped_log.allow() {
                    error!(
                        "Reactor: {} events already queued (reactor_worker_hwm); the event {} is dropped ({held} more dropped since the last report). Consider tuning reactor_worker_threads and/or reactor_worker_hwm",
                        self.queue.hwm,
                        tag.escape_debug()
                    );
                }
            }
        }
    }

    /// Salt's check: the event carries the key of the master's user.
    fn master_key_ok(&self, data: &Value) -> bool {
        let Some(sent) = data.get("key").and_then(Value::as_str) else {
            return false;
        };
        // Salt's get_master_key("root"): the key of the master's user.
        UserKey::of_user(&self.cfg, &self.cfg.user).is_ok_and(|k| k.matches(sent))
    }

    fn fire_leader(&mut self) {
        let data = Value::map([("result", Value::Bool(self.leader))]);
        let _ = self.events.fire("salt/reactors/manage/leader/value", &data);
    }

    fn fire_manage(&mut self, tag: &str, res: Result<(), &str>, ok: &str) {
        let result = match res {
            Ok(()) => Value::map([("status", Value::Bool(true)), ("comment", Value::from(ok))]),
            Err(why) => Value::map([("status", Value::Bool(false)), ("comment", Value::from(why))]),
        };
        let data = Value::map([("reactors", self.map.to_value()), ("result", result)]);
        let _ = self.events.fire(tag, &data);
    }
}

/// The queue is full (`reactor_worker_hwm` tasks wait).
struct Full;

/// The pool's queue (Salt's TaskPool): at most `reactor_worker_hwm` tasks,
/// held in a deque that grows as they come (a channel of that many slots
/// made up front cost 2 MiB for a reactor that most masters never use),
/// and its threads started as work arrives, up to
/// `reactor_worker_threads`: one more whenever tasks outnumber the idle
/// threads.
struct TaskQueue {
    cfg: MasterConfig,
    state: Mutex<QueueState>,
    ready: Condvar,
    hwm: usize,
    max_threads: usize,
}

struct QueueState {
    tasks: VecDeque<Task>,
    /// Threads waiting in `pop`.
    idle: usize,
    threads: usize,
}

impl TaskQueue {
    fn new(cfg: &MasterConfig, settings: &Settings) -> Arc<TaskQueue> {
        Arc::new(TaskQueue {
            cfg: cfg.clone(),
            state: Mutex::new(QueueState {
                tasks: VecDeque::new(),
                idle: 0,
                threads: 0,
            }),
            ready: Condvar::new(),
            hwm: settings.worker_hwm,
            max_threads: settings.worker_threads,
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(self: &Arc<Self>, task: Task) -> Result<(), Full> {
        let mut st = self.lock();
        if st.tasks.len() >= self.hwm {
            brine_metrics::count(Counter::ReactorDropped, 1);
            return Err(Full);
        }
        st.tasks.push_back(task);
        brine_metrics::gauge(Counter::ReactorQueue, st.tasks.len() as u64);
        // More tasks waiting than idle threads to take them (a woken
        // thread counts as idle until it has taken its task).
        let spawn = st.tasks.len() > st.idle && st.threads < self.max_threads;
        let index = st.threads;
        if spawn {
            st.threads += 1;
        }
        drop(st);
        self.ready.notify_one();
        if spawn {
            let queue = self.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("reactor-{index}"))
                .spawn(move || Worker::new(queue.cfg.clone(), queue).run());
            if let Err(e) = spawned {
                // The task stays queued for the threads there are, or for
                // the next try.
                self.lock().threads -= 1;
                error!("cannot start reactor worker thread {index}: {e}");
            }
        }
        Ok(())
    }

    fn pop(&self) -> Task {
        let mut st = self.lock();
        loop {
            if let Some(task) = st.tasks.pop_front() {
                brine_metrics::gauge(Counter::ReactorQueue, st.tasks.len() as u64);
                brine_metrics::count(Counter::Reactions, 1);
                return task;
            }
            st.idle += 1;
            st = self.ready.wait(st).unwrap_or_else(|p| p.into_inner());
            st.idle -= 1;
        }
    }
}

/// One pool thread: its renderer, its client of the request port, its
/// wheel context (each thread its own: nothing shared but the queue).
struct Worker {
    cfg: MasterConfig,
    queue: Arc<TaskQueue>,
    renderer: Option<Renderer>,
    local: Option<LocalClient>,
    wheel: Option<crate::services::Ctx>,
}

impl Worker {
    fn new(cfg: MasterConfig, queue: Arc<TaskQueue>) -> Worker {
        Worker {
            cfg,
            queue,
            renderer: None,
            local: None,
            wheel: None,
        }
    }

    fn run(mut self) {
        loop {
            match self.queue.pop() {
                Task::Event { tag, data, reactors } => self.react(&tag, &data, &reactors),
                Task::Run { tag, reaction } => self.run_master_side(&tag, reaction),
            }
        }
    }

    /// Salt's `Reactor.reactions` + `call_reactions` for one event.
    fn react(&mut self, tag: &str, data: &Value, reactors: &[String]) {
        let renderer = self.renderer.get_or_insert_with(|| Renderer::new(&self.cfg));
        let mut pairs = Vec::new();
        for r in reactors {
            renderer.render_reaction(r, tag, data, &mut pairs);
        }
        let high = Value::Map(pairs);
        if !brine_py::truthy(&high) {
            debug!("no reactions for {}", tag.escape_debug());
            return;
        }
        let errors = verify_high(&high);
        if !errors.is_empty() {
            error!(
                "Unable to render reactions for event {} due to errors ({}) in one or more of the sls files ({})",
                tag.escape_debug(),
                errors.join("; ").escape_debug(),
                reactors.join(", ").escape_debug()
            );
            return;
        }
        for chunk in compile_high_data(&high) {
            match reaction(&chunk) {
                Err(e) => error!("{} (event {})", e.escape_debug(), tag.escape_debug()),
                Ok(r @ Reaction::Local { .. }) => self.publish(tag, &r),
                Ok(r) => {
                    let (id, kind, fun) = (r.id().to_string(), r.kind(), r.fun().to_string());
                    let task = Task::Run {
                        tag: tag.to_string(),
                        reaction: r,
                    };
                    if self.queue.push(task).is_err() {
                        error!(
                            "Reactor '{}' failed to execute {kind} '{}': TaskPool queue is full! Consider tuning reactor_worker_threads and/or reactor_worker_hwm",
                            id.escape_debug(),
                            fun.escape_debug()
                        );
                    }
                }
            }
        }
    }

    /// A `local` reaction: publish and move on (no waiting for returns).
    fn publish(&mut self, tag: &str, r: &Reaction) {
        let Reaction::Local {
            id,
            fun,
            tgt,
            tgt_type,
            arg,
            ret,
            jid,
            kwargs,
        } = r
        else {
            return;
        };
        if self.local.is_none() {
            match LocalClient::of_master(&self.cfg) {
                Ok(client) => self.local = Some(client.request_timeout(PUBLISH_TIMEOUT)),
                Err(e) => {
                    error!("Reactor '{}' failed to execute local '{fun}': {e}", id.escape_debug());
                    return;
                }
            }
        }
        let job = Publish {
            tgt: tgt.clone(),
            fun: fun.clone(),
            arg: arg.clone(),
            tgt_type: tgt_type.clone(),
            ret: ret.clone(),
            jid: jid.clone(),
            kwargs: kwargs.clone(),
        };
        let client = self.local.as_mut().expect("set above");
        match client.publish(&job) {
            Ok(Some(job)) => info!(
                "Reactor '{}' (event {}): local {fun} on {} → job {} for {} minion(s)",
                id.escape_debug(),
                tag.escape_debug(),
                brine_py::to_str(tgt).escape_debug(),
                job.jid,
                job.minions.len()
            ),
            Ok(None) => info!(
                "Reactor '{}' (event {}): local {fun}: no minion matches {}",
                id.escape_debug(),
                tag.escape_debug(),
                brine_py::to_str(tgt).escape_debug()
            ),
            Err(e) => {
                error!("Reactor '{}' failed to execute local '{fun}': {e}", id.escape_debug());
                // A fresh connection for the next one.
                self.local = None;
            }
        }
    }

    /// A `runner` or `wheel` reaction, as user `Reactor`.
    fn run_master_side(&mut self, tag: &str, r: Reaction) {
        match r {
            Reaction::Runner { id, fun, low } => {
                info!(
                    "Reactor '{}' (event {}): runner {fun}",
                    id.escape_debug(),
                    tag.escape_debug()
                );
                brine_runners::run_now(&self.cfg, &fun, &low, EVENT_USER);
            }
            Reaction::Wheel { id, fun, low } => {
                info!(
                    "Reactor '{}' (event {}): wheel {fun}",
                    id.escape_debug(),
                    tag.escape_debug()
                );
                let ctx = self
                    .wheel
                    .get_or_insert_with(|| crate::services::Ctx::new(Rc::new(self.cfg.clone())));
                crate::services::wheel::reaction(ctx, &fun, &low, EVENT_USER);
            }
            Reaction::Local { .. } => self.publish(tag, &r),
        }
    }
}
