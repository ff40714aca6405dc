//! `FrameDecoder` under arbitrary chunking.
//!
//! Input layout: byte 0 picks the frame limit, byte 1 the number `n` of chunk-size bytes that
//! follow (0..=15), then `n` chunk-size bytes (cycled), then the stream itself.
//!
//! Oracles:
//! - nothing panics, and `decode_next` always makes progress;
//! - `buffered_bytes() <= max(max_frame, RECOVERY_HEADER_BYTES) + 4` after every call;
//! - the items decoded from the chunked stream equal the items decoded from the whole stream fed
//!   at once, and so do `finish()` and the final `buffered_bytes()`;
//! - the items equal those of a straightforward reference framer built on `decode_payload`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schema::codec::{recover_request_id, Decoded, RECOVERY_HEADER_BYTES};
use schema::{decode_payload, FrameDecoder, FrameError, FRAME_PREFIX_BYTES};

/// Frame limits to run with: tiny ones (below the recovery header) exercise the skip path with
/// small inputs; 4096 is the "small realistic" limit.
const LIMITS: [usize; 8] = [0, 1, 7, 31, 63, 64, 200, 4096];

fuzz_target!(|data: &[u8]| {
    let Some((&limit_byte, rest)) = data.split_first() else { return };
    let Some((&count_byte, rest)) = rest.split_first() else { return };
    let max_frame = LIMITS[usize::from(limit_byte) % LIMITS.len()];
    let count = usize::from(count_byte % 16).min(rest.len());
    let (size_bytes, stream) = rest.split_at(count);
    let sizes: Vec<usize> = size_bytes.iter().map(|&b| chunk_size(b)).collect();

    let bound = max_frame.max(RECOVERY_HEADER_BYTES) + FRAME_PREFIX_BYTES;

    // Whole stream at once, through the iterator API.
    let mut whole = FrameDecoder::new(max_frame);
    let whole_items: Vec<Decoded> = whole.feed(stream).collect();
    assert!(whole.buffered_bytes() <= bound, "buffered {} > {bound}", whole.buffered_bytes());

    // Chunked, through `decode_next`, checking the memory bound after every call.
    let mut chunked = FrameDecoder::new(max_frame);
    let mut chunked_items = Vec::new();
    let mut offset = 0;
    let mut index = 0;
    while offset < stream.len() {
        let size = sizes.get(index % sizes.len().max(1)).copied().unwrap_or(usize::MAX);
        index += 1;
        let end = offset.saturating_add(size).min(stream.len());
        let mut chunk = &stream[offset..end];
        offset = end;
        while !chunk.is_empty() {
            let (consumed, item) = chunked.decode_next(chunk);
            assert!(consumed <= chunk.len(), "consumed {consumed} of {}", chunk.len());
            assert!(consumed > 0 || item.is_some(), "decode_next made no progress");
            assert!(chunked.buffered_bytes() <= bound, "buffered {} > {bound}", chunked.buffered_bytes());
            chunk = &chunk[consumed..];
            chunked_items.extend(item);
        }
    }

    assert_eq!(chunked_items, whole_items, "chunking changed the decoded items");
    assert_eq!(chunked.finish(), whole.finish());
    assert_eq!(chunked.buffered_bytes(), whole.buffered_bytes());
    if whole.finish().is_ok() {
        // Nothing held towards a frame; an oversized frame being skipped holds nothing either.
        assert_eq!(whole.buffered_bytes(), 0);
    }

    check_against_reference(stream, max_frame, &whole_items);
});

/// Chunk sizes: mostly small (1..=192), sometimes "the rest of the input".
fn chunk_size(byte: u8) -> usize {
    if byte >= 0xC0 {
        usize::MAX
    } else {
        usize::from(byte) + 1
    }
}

/// The framing rules written out directly: every complete frame becomes exactly the item the
/// decoder must yield; an incomplete tail may yield at most one early `frame_too_large` error.
fn check_against_reference(stream: &[u8], max_frame: usize, items: &[Decoded]) {
    let mut expected = Vec::new();
    let mut rest = stream;
    let mut tail_oversized = None;
    while rest.len() >= FRAME_PREFIX_BYTES {
        let (prefix, body_and_more) = rest.split_at(FRAME_PREFIX_BYTES);
        let declared = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
        if declared > body_and_more.len() {
            if declared > max_frame {
                tail_oversized = Some(declared);
            }
            break;
        }
        let (body, next) = body_and_more.split_at(declared);
        let header = &body[..body.len().min(RECOVERY_HEADER_BYTES)];
        expected.push(if declared > max_frame {
            Decoded::Error {
                error: FrameError::FrameTooLarge { size: declared, max: max_frame },
                request_id: recover_request_id(header),
            }
        } else {
            match decode_payload(body) {
                Ok(frame) => Decoded::Frame(frame),
                Err(error) => Decoded::Error { error, request_id: recover_request_id(header) },
            }
        });
        rest = next;
    }
    assert_eq!(items.get(..expected.len()), Some(&expected[..]), "decoder disagrees with the reference framer");
    match &items[expected.len()..] {
        [] => {}
        [Decoded::Error { error: FrameError::FrameTooLarge { size, max }, request_id }] => {
            assert_eq!(Some(*size), tail_oversized, "early frame_too_large for a frame that is not the tail");
            assert_eq!(*max, max_frame);
            assert!(request_id.is_none_or(|id| id > 0), "recovered a non-positive id {request_id:?}");
        }
        extra => panic!("decoder yielded unexpected items for an incomplete tail: {extra:?}"),
    }
}
