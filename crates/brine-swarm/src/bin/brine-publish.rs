//! `brine-publish`: publish jobs at a steady rate through a master's clear
//! `publish` command (`brine_client::LocalClient`, with the user's key file), for
//! load tests. Prints one JSON line per job (`jid`, `minions`, `sent_us`,
//! `reply_ms`) and a summary.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use brine_client::{ClientError, LocalClient, MasterAddr, Publish, UserKey};
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
    let key = UserKey::from_file(Path::new(&key_file), &user)?;
    let timeout = Duration::from_secs_f64(timeout.max(0.001));
    let mut client = LocalClient::new(MasterAddr::new(&master, port, None), key).request_timeout(timeout);
    let job = Publish::new(tgt.as_str(), &fun)
        .args(args)
        .tgt_type(&tgt_type)
        .kwarg("show_timeout", true)
        .kwarg("show_jid", false);
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let t0 = Instant::now();
    let (mut ok, mut failed) = (0usize, 0usize);
    for i in 0..count {
        let due = t0 + interval.mul_f64(i as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let sent = Instant::now();
        let sent_us = brine_swarm::stats::epoch_us();
        let (jid, minions) = match client.publish(&job) {
            Ok(Some(j)) => {
                ok += 1;
                (j.jid, j.minions.len())
            }
            Ok(None) => {
                failed += 1;
                eprintln!("brine-publish: no minion matched, no jid");
                (String::new(), 0)
            }
            Err(e @ ClientError::Timeout { .. }) => {
                failed += 1;
                eprintln!("brine-publish: {e}");
                continue;
            }
            Err(e) => {
                failed += 1;
                eprintln!("brine-publish: no jid: {e}");
                (String::new(), 0)
            }
        };
        println!(
            "{}",
            json!({"jid": jid, "minions": minions, "sent_us": sent_us,
                   "reply_ms": sent.elapsed().as_secs_f64() * 1e3})
        );
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
