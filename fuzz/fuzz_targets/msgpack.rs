//! msgpack from the network (every request on ret_port, every event frame):
//! decoding never panics or recurses without bound; what decodes
//! re-encodes (with bin types, as cache files and events are) to bytes
//! that decode to the same value, and as a network body (bytes written as
//! str, as Salt's `payload.dumps` does, so `b""` and `""` keys may merge)
//! to bytes that decode; the scanner the event bus frames with agrees with
//! the decoder on where a value ends.
#![no_main]

use brine_proto::msgpack::value_len;
use brine_proto::Value;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let scanned = value_len(data);
    if let Ok((v, used)) = Value::decode_prefix(data) {
        assert_eq!(scanned, Ok(Some(used)), "scanner and decoder disagree");
        let again = Value::decode(&v.to_file()).expect("re-encoded value decodes");
        // NaN floats are not equal to themselves; compare encodings.
        assert_eq!(again.to_file(), v.to_file(), "round trip changed the value");
        Value::decode(&v.to_network()).expect("a network body decodes");
    }
    let _ = Value::decode(data);
});
