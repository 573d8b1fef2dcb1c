//! The EventPublisher relays frames from master_event_pull.ipc to every
//! subscriber of master_event_pub.ipc, accepting bare and length-prefixed
//! writers, and drops garbage without dying.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::*;

fn frame(body: &[u8]) -> Vec<u8> {
    // {"head": {}, "body": bin8}
    let mut f = vec![
        0x82,
        0xa4,
        b'h',
        b'e',
        b'a',
        b'd',
        0x80,
        0xa4,
        b'b',
        b'o',
        b'd',
        b'y',
        0xc4,
        body.len() as u8,
    ];
    f.extend_from_slice(body);
    f
}

fn read_exact_timeout(s: &mut UnixStream, n: usize) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = vec![0u8; n];
    s.read_exact(&mut buf).unwrap();
    buf
}

#[test]
fn events_reach_every_subscriber_and_garbage_is_dropped() {
    let env = Env::new(3);
    let mut m = env.start();
    m.wait_ready();
    let argv = format!("{BIN} -c {}", env.conf_dir.display());
    let evpub = m.named_children(m.pid, &argv)["EventPublisher"];

    let mut sub1 = UnixStream::connect(env.sock("master_event_pub.ipc")).unwrap();
    let mut sub2 = UnixStream::connect(env.sock("master_event_pub.ipc")).unwrap();
    std::thread::sleep(Duration::from_millis(100));

    // A writer that sends garbage is disconnected; the publisher lives on.
    let mut bad = UnixStream::connect(env.sock("master_event_pull.ipc")).unwrap();
    bad.write_all(&[0x82, 0xc1, 0xc1]).unwrap();
    let mut huge = UnixStream::connect(env.sock("master_event_pull.ipc")).unwrap();
    huge.write_all(&[0x7f, 0xff, 0xff, 0xff]).unwrap();

    let e1 = frame(b"salt/test\n\n\x80");
    let e2 = frame(b"salt/other\n\n\x80");
    // Bare writer (Salt <= 3006.25 / early 3007), split across writes.
    let mut w1 = UnixStream::connect(env.sock("master_event_pull.ipc")).unwrap();
    w1.write_all(&e1[..5]).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    w1.write_all(&e1[5..]).unwrap();
    // Length-prefixed writer (3006.26+, 3007.17).
    let mut w2 = UnixStream::connect(env.sock("master_event_pull.ipc")).unwrap();
    let mut pre = (e2.len() as u32).to_be_bytes().to_vec();
    pre.extend_from_slice(&e2);
    std::thread::sleep(Duration::from_millis(50));
    w2.write_all(&pre).unwrap();

    let mut want = e1.clone();
    want.extend_from_slice(&e2);
    assert_eq!(read_exact_timeout(&mut sub1, want.len()), want);
    assert_eq!(read_exact_timeout(&mut sub2, want.len()), want);

    // The garbage writers were hung up on.
    bad.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 1];
    assert_eq!(bad.read(&mut b).unwrap_or(0), 0);
    assert!(alive(evpub));
    let log = read(&env.log_file());
    assert!(log.contains("dropping writer connection"), "{log}");
}
