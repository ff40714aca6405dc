//! The frame codec's error paths: truncation, mismatched prefixes, oversized frames (refused on
//! the prefix, never buffered), garbage bodies, and recovery of the request id for rejections.

use crate::support::valid_frame;
use schema::codec::{recover_request_id, Decoded};
use schema::wire::*;
use schema::{decode_frame, encode_frame, FrameDecoder, FrameError, DEFAULT_MAX_FRAME_BYTES};

fn request(id: i64) -> ProtocolFrame {
    ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: id,
        ownership: OwnershipScope::connection("conn-1"),
        payload: RequestPayload::OpenSessionRequest(OpenSessionRequest {
            placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: Some("p".repeat(100)) }),
            metadata: Default::default(),
        }),
    })
}

#[test]
fn four_gib_prefix_is_refused_at_once() {
    let mut bytes = vec![0xff, 0xff, 0xff, 0xff];
    bytes.extend_from_slice(&[9; 10]);
    assert_eq!(
        decode_frame(&bytes, DEFAULT_MAX_FRAME_BYTES),
        Err(FrameError::FrameTooLarge { size: u32::MAX as usize, max: DEFAULT_MAX_FRAME_BYTES })
    );
    // Streaming: reported as soon as the body's first bytes show no request id can be
    // recovered; nothing of the 4 GiB is buffered.
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let items: Vec<Decoded> = decoder.feed(&bytes).collect();
    assert_eq!(
        items,
        [Decoded::Error {
            error: FrameError::FrameTooLarge { size: u32::MAX as usize, max: DEFAULT_MAX_FRAME_BYTES },
            request_id: None
        }]
    );
    assert_eq!(decoder.buffered_bytes(), 0);
}

#[test]
fn oversized_request_is_skipped_and_its_id_recovered() {
    let big = encode_frame(&request(42), DEFAULT_MAX_FRAME_BYTES).unwrap();
    let small_limit = big.len() - 10;
    let next = encode_frame(&valid_frame(&[1; 8]), DEFAULT_MAX_FRAME_BYTES).unwrap();
    let mut stream = big.clone();
    stream.extend_from_slice(&next);
    let mut decoder = FrameDecoder::new(small_limit);
    let mut items = Vec::new();
    for byte in &stream {
        items.extend(decoder.feed(std::slice::from_ref(byte)));
        assert!(decoder.buffered_bytes() <= schema::codec::RECOVERY_HEADER_BYTES + schema::FRAME_PREFIX_BYTES);
    }
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(
        items[0],
        Decoded::Error {
            error: FrameError::FrameTooLarge { size: big.len() - 4, max: small_limit },
            request_id: Some(42)
        }
    );
    assert!(matches!(items[1], Decoded::Frame(_)));
}

#[test]
fn whole_buffer_errors() {
    assert_eq!(decode_frame(&[0, 0, 1], 64), Err(FrameError::TruncatedFrame { actual: 3 }));
    assert_eq!(decode_frame(&[0, 0, 0, 5, 1, 2], 64), Err(FrameError::LengthPrefixMismatch { declared: 5, actual: 2 }));
    assert_eq!(decode_frame(&[0, 0, 0, 65], 64), Err(FrameError::FrameTooLarge { size: 65, max: 64 }));
    assert!(matches!(decode_frame(&[0, 0, 0, 1, 9], 64), Err(FrameError::Malformed { .. })));
    let mut with_trailing = encode_frame(&request(1), DEFAULT_MAX_FRAME_BYTES).unwrap();
    with_trailing.push(0);
    let body_len = (with_trailing.len() - 4) as u32;
    with_trailing[..4].copy_from_slice(&body_len.to_be_bytes());
    assert_eq!(decode_frame(&with_trailing, DEFAULT_MAX_FRAME_BYTES), Err(FrameError::TrailingBytes { extra: 1 }));
}

#[test]
fn garbage_body_is_reported_with_its_request_id_and_decoding_continues() {
    let good = encode_frame(&request(7), DEFAULT_MAX_FRAME_BYTES).unwrap();
    let mut corrupted = good.clone();
    let last = corrupted.len() - 1;
    corrupted[last] = 0x80; // the metadata map length becomes an unterminated varint
    let mut stream = corrupted;
    stream.extend_from_slice(&good);
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    let items: Vec<Decoded> = decoder.feed(&stream).collect();
    assert!(
        matches!(&items[0], Decoded::Error { error: FrameError::Malformed { .. }, request_id: Some(7) }),
        "{items:?}"
    );
    assert_eq!(items[1], Decoded::Frame(request(7)));
}

#[test]
fn truncated_stream_is_reported_at_finish() {
    let good = encode_frame(&request(7), DEFAULT_MAX_FRAME_BYTES).unwrap();
    let mut decoder = FrameDecoder::new(DEFAULT_MAX_FRAME_BYTES);
    assert_eq!(decoder.feed(&good[..good.len() - 3]).count(), 0);
    assert_eq!(decoder.finish(), Err(FrameError::TruncatedFrame { actual: good.len() - 3 }));
}

#[test]
fn empty_body_is_malformed_not_fatal() {
    let mut decoder = FrameDecoder::new(64);
    let items: Vec<Decoded> = decoder.feed(&[0, 0, 0, 0]).collect();
    assert!(matches!(items[..], [Decoded::Error { error: FrameError::Malformed { .. }, request_id: None }]));
}

#[test]
fn request_id_recovery_refuses_non_requests() {
    let event = encode_frame(&valid_frame(&[2; 40]), DEFAULT_MAX_FRAME_BYTES).unwrap();
    if event[4] != 0 {
        assert_eq!(recover_request_id(&event[4..]), None);
    }
    let req = encode_frame(&request(99), DEFAULT_MAX_FRAME_BYTES).unwrap();
    assert_eq!(recover_request_id(&req[4..]), Some(99));
    assert_eq!(recover_request_id(&req[4..20]), None, "incomplete header");
}

/// A guest filesystem request whose `recursive` bool and `mode` optional differ between the two
/// frames returned, so the bytes that encode them can be found by comparing encodings.
fn fs_request(recursive: bool, mode: Option<u32>) -> ProtocolFrame {
    let mut request = GuestFilesystemCallRequest::new(GuestFilesystemOperation::Mkdir, "/a");
    request.recursive = recursive;
    request.mode = mode;
    ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: 7,
        ownership: OwnershipScope::vm("conn-1", "session-1", "vm-1"),
        payload: RequestPayload::GuestFilesystemCallRequest(request),
    })
}

/// The first index after the length prefix where two encodings differ.
fn first_difference(a: &[u8], b: &[u8]) -> usize {
    4 + a[4..].iter().zip(&b[4..]).position(|(x, y)| x != y).unwrap()
}

#[test]
fn bool_and_optional_tags_other_than_zero_or_one_are_refused() {
    let (plain, recursive) = (fs_request(false, None), fs_request(true, None));
    let (plain_bytes, recursive_bytes) =
        (encode_frame(&plain, 1 << 20).unwrap(), encode_frame(&recursive, 1 << 20).unwrap());
    let bool_at = first_difference(&plain_bytes, &recursive_bytes);
    assert_eq!(recursive_bytes[bool_at], 1);
    // The tag position of `mode`: Some(0) encodes as tag 1 then a varint 0, one byte longer.
    let with_mode = encode_frame(&fs_request(false, Some(0)), 1 << 20).unwrap();
    let option_at = first_difference(&plain_bytes, &with_mode);
    for (at, base) in [(bool_at, &recursive_bytes), (option_at, &with_mode)] {
        for tag in [2u8, 255] {
            let mut bytes = base.clone();
            bytes[at] = tag;
            let error = decode_frame(&bytes, 1 << 20).unwrap_err();
            assert!(matches!(error, FrameError::NonCanonical { .. } | FrameError::Malformed { .. }), "{error}");
            // Streaming: rejected with the request id recovered, so the host gets an answer.
            let mut decoder = FrameDecoder::new(1 << 20);
            let items: Vec<Decoded> = decoder.feed(&bytes).collect();
            assert!(matches!(items[..], [Decoded::Error { request_id: Some(7), .. }]), "tag {tag} at {at}: {items:?}");
        }
    }
    // The canonical encodings still decode.
    assert_eq!(decode_frame(&recursive_bytes, 1 << 20).unwrap(), recursive);
}

#[test]
fn over_long_varints_are_refused() {
    // The path "/a" is a string: its length 2 is the one-byte varint `0x02`; `0x82 0x00` is the
    // same number, over-long.
    let canonical = encode_frame(&fs_request(false, None), 1 << 20).unwrap();
    let length_at = canonical.windows(3).position(|w| w == [2, b'/', b'a']).unwrap();
    let mut bytes = canonical.clone();
    bytes[length_at] = 0x82;
    bytes.insert(length_at + 1, 0x00);
    let length = u32::try_from(bytes.len() - 4).unwrap();
    bytes[..4].copy_from_slice(&length.to_be_bytes());
    assert!(matches!(decode_frame(&bytes, 1 << 20), Err(FrameError::NonCanonical { .. })));
    assert!(decode_frame(&canonical, 1 << 20).is_ok());
}
