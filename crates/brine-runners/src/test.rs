//! Salt's `test` runner (salt/runners/test.py): arguments echoed back,
//! a sleep, a stream of progress events, the master's options. Used by
//! Salt's own tests and by operators checking that runners work.

use brine_client::low::CallArgs;
use brine_config::MasterConfig;
use brine_proto::event::EventSender;
use brine_proto::Value;

/// Python's `**kwargs`, keeping (`raw`) or dropping names that start
/// with `__` (`test.arg` drops them).
fn kwargs(args: &CallArgs, raw: bool) -> Value {
    Value::Map(
        args.named()
            .iter()
            .filter(|(k, _)| raw || !k.starts_with("__"))
            .map(|(k, v)| (Value::from(k.as_str()), v.clone()))
            .collect(),
    )
}

pub(crate) fn call(
    cfg: &MasterConfig,
    name: &str,
    args: &CallArgs,
    jid: &str,
    events: &mut EventSender,
) -> Result<Value, String> {
    match name {
        "arg" | "raw_arg" => Ok(Value::map([
            ("args", Value::Array(args.positional().to_vec())),
            ("kwargs", kwargs(args, name == "raw_arg")),
        ])),
        "metasyntactic" => {
            let locality = args
                .get(0, "locality")
                .map(brine_py::to_str)
                .unwrap_or_else(|| "us".into());
            let words: &[&str] = match locality.as_str() {
                "us" => &[
                    "foo", "bar", "baz", "qux", "quux", "quuz", "corge", "grault", "garply", "waldo", "fred", "plugh",
                    "xyzzy", "thud",
                ],
                "uk" => &["wibble", "wobble", "wubble", "flob"],
                _ => return Ok(Value::Nil),
            };
            Ok(Value::Array(words.iter().map(|w| Value::from(*w)).collect()))
        }
        // Salt prints "foo" on the master's stdout; a runner job's stdout
        // here carries its return, so only the return is kept.
        "stdout_print" => Ok(Value::from("bar")),
        "sleep" => {
            let secs = match args.get(0, "s_time") {
                None => 10.0,
                Some(v) => brine_py::to_str(v)
                    .parse::<f64>()
                    .map_err(|_| format!("s_time must be a number, not {}", brine_py::repr(v)))?,
            };
            std::thread::sleep(std::time::Duration::from_secs_f64(secs.clamp(0.0, 86400.0)));
            Ok(Value::Bool(true))
        }
        "stream" => {
            for i in 1..100 {
                let data = Value::map([("message", Value::from(format!("Runner is {i}% done")))]);
                let _ = events.fire(&format!("salt/run/{jid}/progress"), &data);
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok(Value::Bool(true))
        }
        "get_opts" => Ok(brine_proto::json::from_json(&brine_config::Value::Object(
            cfg.raw.clone(),
        ))),
        _ => Err(crate::not_available(&format!("test.{name}"))),
    }
}
