//! Frame codec: a 4-byte big-endian length prefix followed by a BARE-encoded `ProtocolFrame`.
//!
//! The codec only frames and (de)serialises; protocol rules live in [`crate::validate`]. The
//! encoder validates before writing (a sidecar must never emit an invalid frame); decoders
//! return what they decoded and leave validation to the caller, who may want to answer an
//! invalid-but-decodable request with a rejection carrying its id.

use crate::wire::ProtocolFrame;
use crate::{validate_frame, FrameError, FRAME_PREFIX_BYTES};
use serde::Deserialize;

/// How many body bytes of an oversized or undecodable frame are kept to recover its request id
/// (tag + schema name + version + id need ~31 bytes; the rest is never buffered).
pub const RECOVERY_HEADER_BYTES: usize = 64;

/// Validates `frame` and appends its prefix and body to `out`.
pub fn encode_frame_into(frame: &ProtocolFrame, max_frame_bytes: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    validate_frame(frame)?;
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_PREFIX_BYTES]);
    if let Err(error) = serde_bare::to_writer(&mut *out, frame) {
        out.truncate(start);
        return Err(FrameError::EncodeFailure { message: error.to_string() });
    }
    let size = out.len() - start - FRAME_PREFIX_BYTES;
    let prefix = match u32::try_from(size) {
        Ok(length) if size <= max_frame_bytes => length.to_be_bytes(),
        _ => {
            out.truncate(start);
            return Err(FrameError::FrameTooLarge { size, max: max_frame_bytes });
        }
    };
    if let Some(slot) = out.get_mut(start..start + FRAME_PREFIX_BYTES) {
        slot.copy_from_slice(&prefix);
    }
    Ok(())
}

/// Validates and encodes one frame, prefix included, into a buffer of exactly its size.
///
/// A counting pass first (no copy: it only adds lengths) sizes the buffer, so a 15 MiB answer
/// costs 15 MiB, not the 30 MiB a doubling `Vec` reaches (and the copies on the way), and an
/// oversized frame is refused before anything is allocated.
pub fn encode_frame(frame: &ProtocolFrame, max_frame_bytes: usize) -> Result<Vec<u8>, FrameError> {
    let mut counter = ByteCounter(0);
    serde_bare::to_writer(&mut counter, frame)
        .map_err(|error| FrameError::EncodeFailure { message: error.to_string() })?;
    if counter.0 > max_frame_bytes {
        validate_frame(frame)?;
        return Err(FrameError::FrameTooLarge { size: counter.0, max: max_frame_bytes });
    }
    let mut out = Vec::with_capacity(counter.0.saturating_add(FRAME_PREFIX_BYTES));
    encode_frame_into(frame, max_frame_bytes, &mut out)?;
    debug_assert_eq!(out.len(), counter.0 + FRAME_PREFIX_BYTES, "the counting pass sized the frame");
    Ok(out)
}

/// An `io::Write` that only counts.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0 = self.0.saturating_add(bytes.len());
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Decodes exactly one frame from a buffer holding its prefix and body, nothing more.
pub fn decode_frame(bytes: &[u8], max_frame_bytes: usize) -> Result<ProtocolFrame, FrameError> {
    let Some((prefix, body)) = bytes.split_first_chunk::<FRAME_PREFIX_BYTES>() else {
        return Err(FrameError::TruncatedFrame { actual: bytes.len() });
    };
    let declared = declared_length(*prefix);
    // The prefix is checked first, so an absurd length is refused without looking further.
    if declared > max_frame_bytes {
        return Err(FrameError::FrameTooLarge { size: declared, max: max_frame_bytes });
    }
    if declared != body.len() {
        return Err(FrameError::LengthPrefixMismatch { declared, actual: body.len() });
    }
    decode_payload(body)
}

/// Decodes a frame body (no prefix). Every byte must belong to the frame.
pub fn decode_payload(body: &[u8]) -> Result<ProtocolFrame, FrameError> {
    let decoded = serde_bare::from_slice::<FrameThenEnd>(body)
        .map_err(|error| FrameError::Malformed { message: error.to_string() })?;
    match decoded {
        FrameThenEnd::End(frame) => {
            check_canonical(&frame, body)?;
            Ok(frame)
        }
        FrameThenEnd::Trailing(frame) => {
            // Error path only: the frame's own length tells how many bytes were left over.
            let used = serde_bare::to_vec(&frame).map_or(body.len(), |bytes| bytes.len());
            Err(FrameError::TrailingBytes { extra: body.len().saturating_sub(used) })
        }
    }
}

/// Re-encodes `frame` against the bytes it was decoded from, without allocating: decoding then
/// encoding must give the same bytes (a pair of checks around the codec, and the reason two
/// decoders can never disagree about what a frame said).
fn check_canonical(frame: &ProtocolFrame, body: &[u8]) -> Result<(), FrameError> {
    let mut compare = CompareWriter { expected: body, offset: 0, mismatch: None };
    let encoded = serde_bare::to_writer(&mut compare, frame);
    if let Some(offset) = compare.mismatch {
        return Err(FrameError::NonCanonical { offset });
    }
    if let Err(error) = encoded {
        return Err(FrameError::Malformed { message: error.to_string() });
    }
    if compare.offset != body.len() {
        return Err(FrameError::NonCanonical { offset: compare.offset });
    }
    Ok(())
}

/// An `io::Write` that checks what is written against `expected` and stops at the first byte
/// that differs.
struct CompareWriter<'a> {
    expected: &'a [u8],
    offset: usize,
    mismatch: Option<usize>,
}

impl std::io::Write for CompareWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let end = self.offset.saturating_add(bytes.len());
        let same = self.expected.get(self.offset..end).is_some_and(|expected| expected == bytes);
        if !same {
            let differs_at = self
                .expected
                .get(self.offset..)
                .unwrap_or_default()
                .iter()
                .zip(bytes)
                .position(|(a, b)| a != b)
                .unwrap_or_else(|| bytes.len().min(self.expected.len().saturating_sub(self.offset)));
            self.mismatch = Some(self.offset.saturating_add(differs_at));
            return Err(std::io::Error::other("not canonical"));
        }
        self.offset = end;
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A `ProtocolFrame` followed by either the end of the input or at least one more byte.
///
/// Decoding straight from the slice is several times faster than through `io::Read`, but
/// `serde_bare` does not say where it stopped; asking for one more byte after the frame does.
enum FrameThenEnd {
    End(ProtocolFrame),
    Trailing(ProtocolFrame),
}

impl<'de> Deserialize<'de> for FrameThenEnd {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = FrameThenEnd;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a ProtocolFrame")
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let frame: ProtocolFrame =
                    seq.next_element()?.ok_or_else(|| serde::de::Error::custom("missing ProtocolFrame"))?;
                // End of input surfaces as an error here: exactly the "no trailing bytes" case.
                Ok(match seq.next_element::<u8>() {
                    Ok(Some(_)) => FrameThenEnd::Trailing(frame),
                    Ok(None) | Err(_) => FrameThenEnd::End(frame),
                })
            }
        }
        deserializer.deserialize_tuple(2, Visitor)
    }
}

/// Best-effort recovery of the request id of a host request from the first bytes of its body,
/// so that an oversized or undecodable request can still be answered by id.
pub fn recover_request_id(body_prefix: &[u8]) -> Option<i64> {
    match peek_request_id(body_prefix) {
        HeaderPeek::Settled(id) => id,
        HeaderPeek::NeedMore => None,
    }
}

/// What the first bytes of a body say about its request id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HeaderPeek {
    /// Known: the id, or that this is not a host request with a usable id.
    Settled(Option<i64>),
    /// The bytes so far are a valid beginning of a request header.
    NeedMore,
}

/// Reads `tag (uint) · schema.name (str) · schema.version (u16) · requestId (i64)` — the fixed
/// start of a `RequestFrame` — without trusting any of it.
fn peek_request_id(bytes: &[u8]) -> HeaderPeek {
    let mut cursor = 0;
    let Some(tag) = read_uint(bytes, &mut cursor) else { return HeaderPeek::NeedMore };
    if tag != Some(0) {
        return HeaderPeek::Settled(None);
    }
    let Some(name_length) = read_uint(bytes, &mut cursor) else { return HeaderPeek::NeedMore };
    let Some(name_length) = name_length.and_then(|n| usize::try_from(n).ok()).filter(|n| *n <= RECOVERY_HEADER_BYTES)
    else {
        return HeaderPeek::Settled(None);
    };
    let id_start = cursor + name_length + 2;
    match bytes.get(id_start..id_start + 8).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
        Some(id) => HeaderPeek::Settled(Some(i64::from_le_bytes(id)).filter(|id| *id > 0)),
        None => HeaderPeek::NeedMore,
    }
}

/// A BARE varint: `None` if more bytes are needed, `Some(None)` if it is invalid.
fn read_uint(bytes: &[u8], cursor: &mut usize) -> Option<Option<u64>> {
    let mut value = 0u64;
    for shift in 0..10u32 {
        let byte = *bytes.get(*cursor)?;
        *cursor += 1;
        if shift == 9 && byte > 1 {
            return Some(None);
        }
        value |= u64::from(byte & 0x7f) << (7 * shift);
        if byte < 0x80 {
            return Some(Some(value));
        }
    }
    Some(None)
}

fn declared_length(prefix: [u8; FRAME_PREFIX_BYTES]) -> usize {
    // u32 always fits in usize on the 32/64-bit targets this crate supports.
    usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX)
}

/// One item produced by the [`FrameDecoder`].
// Frames are moved, not copied around in bulk; boxing every frame would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Frame(ProtocolFrame),
    /// A frame that could not be decoded. The stream is still framed after it: the decoder has
    /// skipped exactly the declared body, so decoding continues with the next frame.
    Error {
        error: FrameError,
        request_id: Option<i64>,
    },
}

/// Incremental decoder: accepts bytes in arbitrary chunks (down to one byte at a time) and
/// yields frames as soon as they are complete.
///
/// Memory is bounded by `max_frame_bytes`: the length prefix is checked before any body byte is
/// buffered, and an oversized body is skipped (only [`RECOVERY_HEADER_BYTES`] of it are kept).
/// A body that arrives whole inside one input chunk is decoded in place; otherwise it is copied
/// once into the decoder's buffer.
#[derive(Debug)]
pub struct FrameDecoder {
    max_frame_bytes: usize,
    state: State,
    prefix: [u8; FRAME_PREFIX_BYTES],
    prefix_filled: usize,
    body: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Prefix,
    Body {
        declared: usize,
    },
    /// Skipping an oversized body; `reported` once its error has been yielded.
    Skip {
        declared: usize,
        remaining: usize,
        reported: bool,
    },
}

impl FrameDecoder {
    pub fn new(max_frame_bytes: usize) -> Self {
        Self {
            max_frame_bytes,
            state: State::Prefix,
            prefix: [0; FRAME_PREFIX_BYTES],
            prefix_filled: 0,
            body: Vec::new(),
        }
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.max_frame_bytes
    }

    /// Iterates over the frames completed by `input`. Bytes of a frame still incomplete when
    /// `input` is exhausted are kept for the next call.
    pub fn feed<'d, 'i>(&'d mut self, input: &'i [u8]) -> Frames<'d, 'i> {
        Frames { decoder: self, input }
    }

    /// Bytes held towards an incomplete frame (prefix and body).
    pub fn buffered_bytes(&self) -> usize {
        match self.state {
            State::Prefix => self.prefix_filled,
            // An oversized frame already reported is only being skipped: nothing is held.
            State::Skip { reported: true, .. } => 0,
            State::Body { .. } | State::Skip { .. } => FRAME_PREFIX_BYTES + self.body.len(),
        }
    }

    /// Call at end of stream: a partially received frame is a [`FrameError::TruncatedFrame`].
    pub fn finish(&self) -> Result<(), FrameError> {
        match self.state {
            State::Prefix if self.prefix_filled == 0 => Ok(()),
            // The oversized frame was already reported; its missing tail changes nothing.
            State::Skip { reported: true, .. } => Ok(()),
            _ => Err(FrameError::TruncatedFrame { actual: self.buffered_bytes() }),
        }
    }

    /// Consumes bytes from `input` until one item completes or `input` runs out. Returns the
    /// number of bytes consumed and the item, if one completed.
    pub fn decode_next(&mut self, input: &[u8]) -> (usize, Option<Decoded>) {
        let mut consumed = 0;
        loop {
            let rest = input.get(consumed..).unwrap_or_default();
            if rest.is_empty() {
                return (consumed, None);
            }
            match self.state {
                State::Prefix => {
                    let (used, item) = self.take_prefix(rest);
                    consumed += used;
                    if item.is_some() {
                        return (consumed, item);
                    }
                }
                State::Body { declared } => {
                    // Fast path: the whole body is in this chunk and nothing is buffered yet.
                    if self.body.is_empty() && rest.len() >= declared {
                        let body = rest.get(..declared).unwrap_or_default();
                        consumed += declared;
                        self.state = State::Prefix;
                        return (consumed, Some(decode_body(body)));
                    }
                    let wanted = declared - self.body.len();
                    let take = wanted.min(rest.len());
                    self.body.extend_from_slice(rest.get(..take).unwrap_or_default());
                    consumed += take;
                    if self.body.len() == declared {
                        self.state = State::Prefix;
                        let item = decode_body(&self.body);
                        self.body.clear();
                        return (consumed, Some(item));
                    }
                }
                State::Skip { declared, remaining, reported } => {
                    let take = remaining.min(rest.len());
                    if !reported {
                        let keep = RECOVERY_HEADER_BYTES.saturating_sub(self.body.len()).min(take);
                        self.body.extend_from_slice(rest.get(..keep).unwrap_or_default());
                    }
                    consumed += take;
                    let remaining = remaining - take;
                    self.state =
                        if remaining == 0 { State::Prefix } else { State::Skip { declared, remaining, reported } };
                    if reported {
                        continue;
                    }
                    let peek = peek_request_id(&self.body);
                    let settled = match peek {
                        HeaderPeek::Settled(id) => Some(id),
                        HeaderPeek::NeedMore if remaining == 0 || self.body.len() >= RECOVERY_HEADER_BYTES => {
                            Some(None)
                        }
                        HeaderPeek::NeedMore => None,
                    };
                    if let Some(request_id) = settled {
                        self.body.clear();
                        if remaining > 0 {
                            self.state = State::Skip { declared, remaining, reported: true };
                        }
                        let error = FrameError::FrameTooLarge { size: declared, max: self.max_frame_bytes };
                        return (consumed, Some(Decoded::Error { error, request_id }));
                    }
                }
            }
        }
    }

    fn take_prefix(&mut self, rest: &[u8]) -> (usize, Option<Decoded>) {
        let wanted = FRAME_PREFIX_BYTES - self.prefix_filled;
        let take = wanted.min(rest.len());
        if let (Some(slot), Some(bytes)) =
            (self.prefix.get_mut(self.prefix_filled..self.prefix_filled + take), rest.get(..take))
        {
            slot.copy_from_slice(bytes);
        }
        self.prefix_filled += take;
        if self.prefix_filled < FRAME_PREFIX_BYTES {
            return (take, None);
        }
        self.prefix_filled = 0;
        let declared = declared_length(self.prefix);
        if declared > self.max_frame_bytes {
            // Nothing of the body is buffered beyond the recovery header; the error is yielded
            // as soon as the request id is known (or known to be unrecoverable).
            self.state = State::Skip { declared, remaining: declared, reported: false };
            return (take, None);
        }
        if declared == 0 {
            // An empty body can never be a ProtocolFrame (the union tag alone needs a byte).
            return (take, Some(decode_body(&[])));
        }
        self.body.reserve_exact(declared);
        self.state = State::Body { declared };
        (take, None)
    }
}

fn decode_body(body: &[u8]) -> Decoded {
    match decode_payload(body) {
        Ok(frame) => Decoded::Frame(frame),
        Err(error) => {
            let header = body.get(..RECOVERY_HEADER_BYTES.min(body.len())).unwrap_or_default();
            Decoded::Error { error, request_id: recover_request_id(header) }
        }
    }
}

/// Iterator returned by [`FrameDecoder::feed`].
#[derive(Debug)]
pub struct Frames<'d, 'i> {
    decoder: &'d mut FrameDecoder,
    input: &'i [u8],
}

impl Iterator for Frames<'_, '_> {
    type Item = Decoded;

    fn next(&mut self) -> Option<Decoded> {
        let (consumed, item) = self.decoder.decode_next(self.input);
        self.input = self.input.get(consumed..).unwrap_or_default();
        item
    }
}
