//! BARE decode → re-encode → decode, on raw bytes and on `arbitrary`-built frames.
//!
//! Oracles, for bytes that `decode_payload` accepts:
//! - decoding is canonical: re-encoding (`serde_bare::to_vec`) gives back exactly the input
//!   bytes (a `bool` or `optional` tag other than 0/1, or an over-long varint, is refused), and
//!   it decodes to the same frame and is a fixed point of re-encoding;
//! - the whole-buffer framing (`decode_frame` of prefix + body) agrees with `decode_payload`;
//! - if `validate_frame` accepts the frame, `encode_frame` succeeds, its body is the canonical
//!   encoding and `decode_frame` gives the frame back; if it refuses it, so does `encode_frame`.
//!
//! The same input is also read as an `arbitrary` `ProtocolFrame`, which reaches deep unions the
//! byte-level mutator rarely builds, and put through encode → decode.
#![no_main]

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use schema::wire::ProtocolFrame;
use schema::{decode_frame, decode_payload, encode_frame, validate_frame, FrameError, FRAME_PREFIX_BYTES};

const MAX: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_payload(data);

    // Whole-buffer framing is the same decoder behind a length prefix.
    if data.len() <= MAX {
        let mut framed = (data.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(data);
        assert_eq!(decode_frame(&framed, MAX), decoded, "decode_frame disagrees with decode_payload");
    }

    match decoded {
        Ok(frame) => {
            let canonical = check_frame(&frame);
            assert_eq!(canonical, data, "an accepted body is not the canonical encoding of its frame");
        }
        Err(FrameError::Malformed { .. } | FrameError::TrailingBytes { .. } | FrameError::NonCanonical { .. }) => {}
        Err(other) => panic!("decode_payload returned a non-decoding error: {other:?}"),
    }

    if let Ok(frame) = ProtocolFrame::arbitrary(&mut Unstructured::new(data)) {
        check_frame(&frame);
    }
});

/// Checks every round trip of `frame`; returns its canonical body.
fn check_frame(frame: &ProtocolFrame) -> Vec<u8> {
    let canonical = serde_bare::to_vec(frame).expect("a decoded frame always re-encodes");
    let again = decode_payload(&canonical).expect("the canonical encoding decodes");
    assert_eq!(&again, frame, "re-encoding changed the frame");
    assert_eq!(serde_bare::to_vec(&again).expect("re-encodes"), canonical, "canonical encoding is not stable");

    match validate_frame(frame) {
        Ok(()) => {
            let encoded = encode_frame(frame, MAX.max(canonical.len())).expect("a valid frame encodes");
            assert_eq!(&encoded[FRAME_PREFIX_BYTES..], &canonical[..], "encode_frame body is not canonical");
            let back = decode_frame(&encoded, MAX.max(canonical.len())).expect("an encoded frame decodes");
            assert_eq!(&back, frame);
        }
        Err(error) => {
            assert_eq!(encode_frame(frame, usize::MAX), Err(error), "encode_frame accepted an invalid frame");
        }
    }
    canonical
}
