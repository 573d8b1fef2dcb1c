//! What the EventPublisher reads from a writer on master_event_pull.ipc,
//! fed in two writes: the frames it splits off are msgpack maps that a
//! subscriber (brine-client's EventBus) can unpack, and a writer can never
//! make it hold more than one incomplete frame.
#![no_main]

use brine_master::roles::events::split_frames;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let cut = data.first().map_or(0, |b| *b as usize % (data.len().max(1)));
    let (a, b) = data.split_at(cut);
    let mut buf = Vec::new();
    let mut prefixed = None;
    let mut frames = Vec::new();
    for part in [a, b] {
        buf.extend_from_slice(part);
        match split_frames(&mut buf, &mut prefixed) {
            Ok(f) => frames.extend(f),
            Err(_) => return,
        }
    }
    for f in frames {
        assert!(matches!(f.first(), Some(0x80..=0x8f | 0xde | 0xdf)), "not a map");
        // A subscriber's view (brine-client's EventBus): the frame as the
        // EventPublisher forwards it, bare or after its length, is that
        // one frame again; unpacking it may fail but never panics.
        let mut prefixed = (f.len() as u32).to_be_bytes().to_vec();
        prefixed.extend_from_slice(&f);
        let mut bare = f.clone();
        for (buf, p) in [(&mut prefixed, true), (&mut bare, false)] {
            let one = brine_proto::event::take_frame(buf, p);
            assert_eq!(one.as_deref(), Some(&f[..]));
            assert!(buf.is_empty());
        }
        let _ = brine_proto::event::unpack_frame(&f);
    }
});
