//! Property tests: encode→decode is the identity; the incremental decoder agrees with the
//! whole-buffer decoder for any chunking; arbitrary bytes never panic.

use crate::support::valid_frame;
use proptest::prelude::*;
use schema::codec::Decoded;
use schema::wire::ProtocolFrame;
use schema::{decode_frame, decode_payload, encode_frame, FrameDecoder, DEFAULT_MAX_FRAME_BYTES};

fn arbitrary_frame() -> impl Strategy<Value = ProtocolFrame> {
    proptest::collection::vec(any::<u8>(), 0..512).prop_map(|bytes| valid_frame(&bytes))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn encode_then_decode_is_identity(frame in arbitrary_frame()) {
        let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();
        prop_assert_eq!(decode_frame(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap(), frame);
    }

    /// The codec layer (no validation) round-trips even frames that break protocol rules.
    #[test]
    fn bare_layer_round_trips_unvalidated_frames(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let frame: ProtocolFrame = arbitrary::Arbitrary::arbitrary(&mut arbitrary::Unstructured::new(&bytes)).unwrap();
        let body = serde_bare::to_vec(&frame).unwrap();
        prop_assert_eq!(decode_payload(&body).unwrap(), frame);
    }

    /// Canonical decoding: whatever bytes are accepted re-encode to exactly those bytes, so no
    /// two byte strings mean the same frame.
    #[test]
    fn accepted_bodies_are_canonical(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        if let Ok(frame) = decode_payload(&bytes) {
            prop_assert_eq!(serde_bare::to_vec(&frame).unwrap(), bytes);
        }
    }

    /// The same from valid frames with one byte changed, which reach deep into the body.
    #[test]
    fn mutated_frames_are_accepted_only_when_canonical(
        frame in arbitrary_frame(),
        at in any::<prop::sample::Index>(),
        value in any::<u8>(),
    ) {
        let mut body = serde_bare::to_vec(&frame).unwrap();
        let at = at.index(body.len());
        body[at] = value;
        if let Ok(decoded) = decode_payload(&body) {
            prop_assert_eq!(serde_bare::to_vec(&decoded).unwrap(), body);
        }
    }

    #[test]
    fn any_chunking_yields_the_same_frames(
        frames in proptest::collection::vec(arbitrary_frame(), 1..8),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..24),
    ) {
        let stream: Vec<u8> = frames.iter().flat_map(|f| encode_frame(f, DEFAULT_MAX_FRAME_BYTES).unwrap()).collect();
        let mut boundaries: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        boundaries.extend([0, stream.len()]);
        boundaries.sort_unstable();
        let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
        let mut decoded = Vec::new();
        for window in boundaries.windows(2) {
            for item in decoder.feed(&stream[window[0]..window[1]]) {
                match item {
                    Decoded::Frame(frame) => decoded.push(frame),
                    Decoded::Error { error, .. } => prop_assert!(false, "unexpected error {error}"),
                }
            }
        }
        prop_assert_eq!(decoded, frames);
        prop_assert!(decoder.finish().is_ok());
    }

    /// Garbage in: never a panic, and the decoder never buffers more than one frame's bound.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048), max in 1usize..512) {
        let _ = decode_frame(&bytes, max);
        let _ = decode_payload(&bytes);
        let mut decoder = FrameDecoder::new(max);
        for chunk in bytes.chunks(7) {
            for _ in decoder.feed(chunk) {}
            prop_assert!(decoder.buffered_bytes() <= max.max(schema::codec::RECOVERY_HEADER_BYTES) + schema::FRAME_PREFIX_BYTES);
        }
    }
}

#[test]
fn one_byte_at_a_time_works() {
    let frames: Vec<ProtocolFrame> = (0..20u8).map(|i| valid_frame(&[i; 64])).collect();
    let stream: Vec<u8> = frames.iter().flat_map(|f| encode_frame(f, DEFAULT_MAX_FRAME_BYTES).unwrap()).collect();
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let mut decoded = Vec::new();
    for byte in &stream {
        for item in decoder.feed(std::slice::from_ref(byte)) {
            let Decoded::Frame(frame) = item else { panic!("{item:?}") };
            decoded.push(frame);
        }
    }
    assert_eq!(decoded, frames);
}
