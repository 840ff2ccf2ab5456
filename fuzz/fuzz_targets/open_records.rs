//! Any bytes into a keyed connection's input after its handshake: records that fail their MAC
//! or AEAD tag, or announce absurd lengths, are refused; nothing panics and nothing is opened
//! that the fixed key did not seal (the fuzzer cannot forge a tag).
#![no_main]

use harness::auth::{Inbound, Opener};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, bytes)) = data.split_first() else { return };
    let mut inbound = Inbound::default();
    inbound.start_session(Opener::new(mode & 1 == 1, &[7; 32]));
    for chunk in bytes.chunks(usize::from(mode >> 1).max(1)) {
        inbound.extend(chunk);
        match inbound.next_frame(1 << 20) {
            Ok(None) => {}
            Ok(Some(frame)) => panic!("a forged record opened: {frame:?}"),
            Err(_) => return,
        }
    }
});
