//! Any bytes into the frame decoder: it may refuse them, never panic, and what it accepts has
//! exactly one encoding.
#![no_main]

use harness::wire::{decode, encode_peer, encode_reply, encode_request, frame_len, Frame};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(total)) = frame_len(data) {
        assert!(total <= data.len());
    }
    if let Ok(frame) = decode(data) {
        let mut again = Vec::new();
        match &frame {
            Frame::Peer(frame) => encode_peer(frame, &mut again),
            Frame::Request(request) => encode_request(request, &mut again),
            Frame::Reply(reply) => encode_reply(reply, &mut again),
        }
        assert_eq!(again, data, "accepted bytes are not canonical");
    }
});
