//! The Reactor on Brine's own bus, without minions: reactions to fired
//! events, no reaction to the reactor's own (`user: Reactor`), the
//! `reactor` runner's management events (master key checked, leadership,
//! add/list/delete), `caller` refused, and an event storm against a full
//! queue: events dropped and logged, the Reactor alive and reacting after.

mod common;

use std::time::{Duration, Instant};

use brine_client::{BusAddr, EventBus};
use brine_config::MasterConfig;
use brine_proto::event::EventSender;
use brine_proto::Value;
use common::*;

struct Bus {
    bus: EventBus,
    send: EventSender,
}

impl Bus {
    fn new(env: &Env) -> Bus {
        let cfg = MasterConfig::load(&env.conf_dir).unwrap();
        Bus {
            bus: EventBus::subscribe(&BusAddr::from_config(&cfg)).unwrap(),
            send: EventSender::new(&cfg.sock_dir),
        }
    }

    fn fire(&mut self, tag: &str, data: Value) {
        self.send.fire(tag, &data).unwrap();
    }

    /// The data of the next event tagged `tag` within `secs`.
    fn wait(&mut self, tag: &str, secs: u64) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while let Some(ev) = self.bus.next(deadline).unwrap() {
            if ev.tag == tag {
                return Some(ev.data);
            }
        }
        None
    }
}

fn master_key(env: &Env) -> String {
    std::fs::read_to_string(env.root().join(format!("cache/.{}_key", current_user()))).unwrap()
}

fn reactor_pid(m: &Master) -> i32 {
    children_of(m.pid)
        .into_iter()
        .find(|p| cmdline(*p).ends_with(" Reactor"))
        .expect("a Reactor")
}

#[test]
fn reactor_reacts_obeys_its_manager_and_survives_a_storm() {
    // The reactor's configuration in master.d/, as operators keep it.
    let env = Env::new(2);
    let root = env.root();
    std::fs::create_dir_all(env.conf_dir.join("master.d")).unwrap();
    std::fs::write(
        env.conf_dir.join("master.d/reactor.conf"),
        "reactor:\n  - 'test/fire':\n    - {root}/reactor/send.sls\n  - 'test/caller':\n    - {root}/reactor/caller.sls\n  - 'test/storm':\n    - {root}/reactor/send.sls\nreactor_worker_threads: 1\nreactor_worker_hwm: 1\n"
            .replace("{root}", &root.display().to_string()),
    )
    .unwrap();
    std::fs::create_dir_all(root.join("reactor")).unwrap();
    std::fs::write(
        root.join("reactor/send.sls"),
        "send:\n  runner.event.send:\n    - args:\n      - tag: reacted/{{ tag }}\n      - data:\n          n: {{ data.get('n', 0) }}\n",
    )
    .unwrap();
    std::fs::write(
        root.join("reactor/caller.sls"),
        "touch:\n  caller.file.touch:\n    - args:\n      - name: /tmp/never\n",
    )
    .unwrap();
    let mut m = env.start();
    m.wait_ready();
    let pid = reactor_pid(&m);
    let mut bus = Bus::new(&env);

    bus.fire("test/fire", Value::map([("n", Value::Int(1))]));
    let got = bus.wait("reacted/test/fire", 20).expect("a reaction");
    assert_eq!(got.get("n"), Some(&Value::Int(1)));

    // The reactor's own events start nothing.
    bus.fire(
        "test/fire",
        Value::map([("n", Value::Int(2)), ("user", Value::from("Reactor"))]),
    );
    assert!(bus.wait("reacted/test/fire", 3).is_none());

    // Management: only with the master's key.
    let key = master_key(&env);
    bus.fire(
        "salt/reactors/manage/is_leader",
        Value::map([("key", Value::from("forged"))]),
    );
    assert!(bus.wait("salt/reactors/manage/leader/value", 3).is_none());
    bus.fire(
        "salt/run/20990101000000000000/salt/reactors/manage/is_leader",
        Value::map([("key", Value::from(key.as_str()))]),
    );
    let v = bus.wait("salt/reactors/manage/leader/value", 10).expect("leader value");
    assert_eq!(v.get("result"), Some(&Value::Bool(true)));

    let id = MasterConfig::load(&env.conf_dir).unwrap().master_id();
    let set = |value: bool| {
        Value::map([
            ("id", Value::from(id.as_str())),
            ("value", Value::Bool(value)),
            ("key", Value::from(key.as_str())),
        ])
    };
    bus.fire("salt/reactors/manage/set_leader", set(false));
    let v = bus.wait("salt/reactors/manage/leader/value", 10).unwrap();
    assert_eq!(v.get("result"), Some(&Value::Bool(false)));
    bus.fire("test/fire", Value::map([("n", Value::Int(3))]));
    assert!(
        bus.wait("reacted/test/fire", 3).is_none(),
        "not the leader: no reaction"
    );
    bus.fire("salt/reactors/manage/set_leader", set(true));
    assert_eq!(
        bus.wait("salt/reactors/manage/leader/value", 10).unwrap().get("result"),
        Some(&Value::Bool(true))
    );

    // add / list / delete.
    let add = Value::map([
        ("event", Value::from("test/added")),
        ("reactors", Value::from(root.join("reactor/send.sls").to_str().unwrap())),
        ("key", Value::from(key.as_str())),
    ]);
    bus.fire("salt/reactors/manage/add", add);
    let v = bus.wait("salt/reactors/manage/add-complete", 10).unwrap();
    assert_eq!(v.get("result").and_then(|r| r.get("status")), Some(&Value::Bool(true)));
    bus.fire("test/added", Value::map([("n", Value::Int(4))]));
    assert!(bus.wait("reacted/test/added", 20).is_some());
    bus.fire(
        "salt/reactors/manage/delete",
        Value::map([("event", Value::from("test/added")), ("key", Value::from(key.as_str()))]),
    );
    assert!(bus.wait("salt/reactors/manage/delete-complete", 10).is_some());
    bus.fire(
        "salt/reactors/manage/list",
        Value::map([("key", Value::from(key.as_str()))]),
    );
    let list = bus.wait("salt/reactors/manage/list-results", 10).unwrap();
    assert_eq!(
        brine_py::repr(list.get("reactors").unwrap()).matches("test/").count(),
        3,
        "{list:?}"
    );

    bus.fire("test/caller", Value::Map(vec![]));
    // A storm against one thread and a queue of one.
    for n in 0..3000 {
        bus.fire("test/storm", Value::map([("n", Value::Int(n))]));
    }
    let log = || read(&env.log_file());
    assert!(
        wait_until(Duration::from_secs(20), || log()
            .contains("runs functions on a masterless minion")
            && log().contains("is dropped")),
        "{}",
        log()
    );
    assert_eq!(reactor_pid(&m), pid, "the Reactor did not die");
    // Still reacting once the storm has passed.
    let mut reacted = false;
    for n in 100..110 {
        bus.fire("test/fire", Value::map([("n", Value::Int(n))]));
        if bus.wait("reacted/test/fire", 3).is_some() {
            reacted = true;
            break;
        }
    }
    assert!(reacted, "{}", log());
}
