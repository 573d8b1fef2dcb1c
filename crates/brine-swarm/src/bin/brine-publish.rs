//! `brine-publish`: publish jobs at a steady rate through a master's clear
//! `publish` command (as LocalClient does, with the user's key file), for
//! load tests. Prints one JSON line per job (`jid`, `minions`, `sent_us`,
//! `reply_ms`) and a summary.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brine_proto::Value;
use serde_json::json;

const USAGE: &str = "usage: brine-publish --key-file FILE [options]
  --master HOST        (127.0.0.1)     --ret-port PORT (4506)
  --key-file FILE      the user's key (cachedir/.<user>_key)
  --user NAME          (root)
  --tgt T              ('*')           --tgt-type TYPE (glob)
  --fun F              (test.ping)     --arg A (repeatable; integers sent as integers)
  --rate R             jobs per second (1)
  --count K            jobs to send (1)
  --timeout S          per publish reply (30)";

fn main() -> Result<()> {
    let mut master = "127.0.0.1".to_string();
    let mut port = 4506u16;
    let mut key_file = None;
    let mut user = "root".to_string();
    let mut tgt = "*".to_string();
    let mut tgt_type = "glob".to_string();
    let mut fun = "test.ping".to_string();
    let mut args: Vec<Value> = Vec::new();
    let mut rate = 1.0f64;
    let mut count = 1usize;
    let mut timeout = 30.0f64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut val = || it.next().with_context(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--master" => master = val()?,
            "--ret-port" => port = val()?.parse()?,
            "--key-file" => key_file = Some(val()?),
            "--user" => user = val()?,
            "--tgt" => tgt = val()?,
            "--tgt-type" => tgt_type = val()?,
            "--fun" => fun = val()?,
            "--arg" => {
                let a = val()?;
                args.push(a.parse::<i64>().map(Value::Int).unwrap_or(Value::Str(a)));
            }
            "--rate" => rate = val()?.parse()?,
            "--count" => count = val()?.parse()?,
            "--timeout" => timeout = val()?.parse()?,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown option {other:?}\n{USAGE}"),
        }
    }
    let key_file = key_file.context("--key-file is required")?;
    let key = std::fs::read_to_string(&key_file).with_context(|| key_file.clone())?;
    let ctx = zmq::Context::new();
    let mut sock = None;
    let endpoint = format!("tcp://{master}:{port}");
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let t0 = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    for i in 0..count {
        let due = t0 + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        if sock.is_none() {
            let s = ctx.socket(zmq::REQ)?;
            s.set_linger(0)?;
            s.set_rcvtimeo((timeout * 1000.0) as i32)?;
            s.connect(&endpoint)?;
            sock = Some(s);
        }
        let s = sock.as_ref().expect("connected above");
        let load = Value::map([
            ("cmd", Value::from("publish")),
            ("tgt", Value::from(tgt.as_str())),
            ("fun", Value::from(fun.as_str())),
            ("arg", Value::Array(args.clone())),
            ("key", Value::from(key.as_str())),
            ("tgt_type", Value::from(tgt_type.as_str())),
            ("ret", Value::from("")),
            ("jid", Value::from("")),
            (
                "kwargs",
                Value::map([("show_timeout", Value::Bool(true)), ("show_jid", Value::Bool(false))]),
            ),
            ("user", Value::from(user.as_str())),
        ]);
        let env = Value::map([
            ("enc", Value::from("clear")),
            ("load", load),
            ("version", Value::Int(3)),
        ]);
        let sent = Instant::now();
        let sent_us = brine_swarm::stats::epoch_us();
        s.send(env.to_network(), 0)?;
        match s.recv_bytes(0) {
            Ok(reply) => {
                let v = Value::decode(&reply).unwrap_or(Value::Nil);
                let load = v.get("load").cloned().unwrap_or(v);
                let jid = load.get("jid").and_then(Value::as_str).unwrap_or("").to_string();
                let minions = match load.get("minions") {
                    Some(Value::Array(m)) => m.len(),
                    _ => 0,
                };
                if jid.is_empty() {
                    failed += 1;
                    eprintln!("brine-publish: no jid in reply: {load:?}");
                } else {
                    ok += 1;
                }
                println!(
                    "{}",
                    json!({"jid": jid, "minions": minions, "sent_us": sent_us,
                           "reply_ms": sent.elapsed().as_secs_f64() * 1e3})
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("brine-publish: no reply within {timeout} s: {e}");
                sock = None; // a REQ socket without its reply is stuck
            }
        }
    }
    println!(
        "{}",
        json!({"summary": true, "published": ok, "failed": failed,
               "seconds": t0.elapsed().as_secs_f64()})
    );
    if failed > 0 {
        std::process::exit(1);
    }
    Ok(())
}
