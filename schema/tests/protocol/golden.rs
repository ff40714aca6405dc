//! Golden vectors: bytes written out by hand from the BARE rules (uint = LEB128 varint; u16/u32/
//! i64 little-endian fixed width; str/data = uint length + bytes; optional = u8 flag; union tag
//! = uint member position; enum = uint; struct = fields in order), framed by a 4-byte big-endian
//! length. None of these bytes come from the encoder under test.

use schema::wire::*;
use schema::{decode_frame, encode_frame, DEFAULT_MAX_FRAME_BYTES};
use std::collections::BTreeMap;

/// `secure-exec-sidecar` with its length (19) and the version 7 (u16 LE).
const SCHEMA: &[u8] = b"\x13secure-exec-sidecar\x07\x00";

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn check(frame: ProtocolFrame, expected: Vec<u8>) {
    let encoded = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();
    assert_eq!(encoded, expected, "encoding of {frame:?}");
    assert_eq!(decode_frame(&expected, DEFAULT_MAX_FRAME_BYTES).unwrap(), frame);
}

#[test]
fn authenticate_request() {
    let frame = ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: 1,
        ownership: OwnershipScope::connection("client"),
        payload: RequestPayload::AuthenticateRequest(AuthenticateRequest {
            client_name: "host".into(),
            auth_token: "tok".into(),
            protocol_version: 7,
            bridge_version: 1,
        }),
    });
    let expected = concat(&[
        b"\x00\x00\x00\x37", // 55-byte body
        b"\x00",             // ProtocolFrame tag 0: RequestFrame
        SCHEMA,
        b"\x01\x00\x00\x00\x00\x00\x00\x00", // requestId 1 (i64 LE)
        b"\x00\x06client",                   // OwnershipScope tag 0, connectionId
        b"\x00",                             // RequestPayload tag 0: AuthenticateRequest
        b"\x04host\x03tok",                  // clientName, authToken
        b"\x07\x00",                         // protocolVersion u16
        b"\x01\x00\x00\x00",                 // bridgeVersion u32
    ]);
    check(frame, expected);
}

#[test]
fn open_session_request() {
    let frame = ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: 2,
        ownership: OwnershipScope::connection("conn-1"),
        payload: RequestPayload::OpenSessionRequest(OpenSessionRequest {
            placement: SidecarPlacement::SidecarPlacementShared(SidecarPlacementShared { pool: None }),
            metadata: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        }),
    });
    let expected = concat(&[
        b"\x00\x00\x00\x2f",
        b"\x00",
        SCHEMA,
        b"\x02\x00\x00\x00\x00\x00\x00\x00",
        b"\x00\x06conn-1",
        b"\x01",     // RequestPayload tag 1: OpenSessionRequest
        b"\x00\x00", // placement tag 0 (shared), pool = none
        b"\x01",     // metadata: one entry
        b"\x01k\x01v",
    ]);
    check(frame, expected);
}

#[test]
fn create_vm_request_with_json_config() {
    let frame = ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: 3,
        ownership: OwnershipScope::session("conn-1", "session-1"),
        payload: RequestPayload::CreateVmRequest(CreateVmRequest {
            runtime: GuestRuntimeKind::WebAssembly,
            config: r#"{"cwd":"/home/user"}"#.into(),
        }),
    });
    let expected = concat(&[
        b"\x00\x00\x00\x48", // 72-byte body
        b"\x00",
        SCHEMA,
        b"\x03\x00\x00\x00\x00\x00\x00\x00",
        b"\x01\x06conn-1\x09session-1", // OwnershipScope tag 1: SessionOwnership
        b"\x02",                        // RequestPayload tag 2: CreateVmRequest
        b"\x02",                        // runtime WEB_ASSEMBLY = 2
        b"\x14{\"cwd\":\"/home/user\"}",
    ]);
    check(frame, expected);
}

fn vm_scope() -> OwnershipScope {
    OwnershipScope::vm("conn-1", "session-1", "vm-1")
}

const VM_SCOPE: &[u8] = b"\x02\x06conn-1\x09session-1\x04vm-1";

#[test]
fn guest_filesystem_call_request() {
    let frame = ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: 4,
        ownership: vm_scope(),
        payload: RequestPayload::GuestFilesystemCallRequest(GuestFilesystemCallRequest {
            operation: GuestFilesystemOperation::WriteFile,
            path: "/tmp/a.txt".into(),
            destination_path: None,
            target: None,
            content: Some("hi".into()),
            encoding: Some(RootFilesystemEntryEncoding::Utf8),
            recursive: false,
            mode: Some(0o644),
            uid: None,
            gid: None,
            atime_ms: None,
            mtime_ms: None,
            len: None,
            offset: None,
        }),
    });
    let expected = concat(&[
        b"\x00\x00\x00\x57", // 87-byte body
        b"\x00",
        SCHEMA,
        b"\x04\x00\x00\x00\x00\x00\x00\x00",
        VM_SCOPE,
        b"\x0c",                     // RequestPayload tag 12: GuestFilesystemCallRequest
        b"\x01",                     // WRITE_FILE = 1
        b"\x0a/tmp/a.txt",           // path
        b"\x00\x00",                 // destinationPath, target: none
        b"\x01\x02hi",               // content: some("hi")
        b"\x01\x00",                 // encoding: some(UTF8 = 0)
        b"\x00",                     // recursive false
        b"\x01\xa4\x01\x00\x00",     // mode: some(0o644 = 420, u32 LE)
        b"\x00\x00\x00\x00\x00\x00", // uid gid atimeMs mtimeMs len offset: none
    ]);
    check(frame, expected);
}

#[test]
fn process_output_event_with_binary_chunk() {
    let frame = ProtocolFrame::EventFrame(EventFrame {
        schema: ProtocolSchema::current(),
        ownership: vm_scope(),
        payload: EventPayload::ProcessOutputEvent(ProcessOutputEvent {
            process_id: "p1".into(),
            channel: StreamChannel::Stderr,
            chunk: vec![0x00, 0xff, 0x10],
        }),
    });
    let expected = concat(&[
        b"\x00\x00\x00\x37", // 55-byte body
        b"\x02",             // ProtocolFrame tag 2: EventFrame (no request id)
        SCHEMA,
        VM_SCOPE,
        b"\x01",             // EventPayload tag 1: ProcessOutputEvent
        b"\x02p1",           // processId
        b"\x01",             // STDERR = 1
        b"\x03\x00\xff\x10", // chunk: data
    ]);
    check(frame, expected);
}

#[test]
fn process_output_event_with_a_two_byte_length() {
    let frame = ProtocolFrame::EventFrame(EventFrame {
        schema: ProtocolSchema::current(),
        ownership: vm_scope(),
        payload: EventPayload::ProcessOutputEvent(ProcessOutputEvent {
            process_id: "p1".into(),
            channel: StreamChannel::Stdout,
            chunk: vec![b'A'; 200],
        }),
    });
    let chunk = [b'A'; 200];
    let expected = concat(&[
        b"\x00\x00\x00\xfd", // 253-byte body: 1 + 22 + 23 + 1 + 3 + 1 + 2 + 200
        b"\x02",
        SCHEMA,
        VM_SCOPE,
        b"\x01\x02p1\x00",
        b"\xc8\x01", // 200 as a varint: 0x48 | 0x80, 0x01
        &chunk,
    ]);
    check(frame, expected);
}

#[test]
fn rejected_response() {
    let frame = ProtocolFrame::ResponseFrame(ResponseFrame {
        schema: ProtocolSchema::current(),
        request_id: 9,
        ownership: OwnershipScope::connection("conn-1"),
        payload: ResponsePayload::RejectedResponse(RejectedResponse {
            code: "unauthorized".into(),
            message: "no".into(),
        }),
    });
    let expected = concat(&[
        b"\x00\x00\x00\x38", // 56-byte body
        b"\x01",             // ProtocolFrame tag 1: ResponseFrame
        SCHEMA,
        b"\x09\x00\x00\x00\x00\x00\x00\x00",
        b"\x00\x06conn-1",
        b"\x1b", // ResponsePayload tag 27: RejectedResponse
        b"\x0cunauthorized\x02no",
    ]);
    check(frame, expected);
}

#[test]
fn void_member_is_a_tag_without_body() {
    let frame = ProtocolFrame::RequestFrame(RequestFrame {
        schema: ProtocolSchema::current(),
        request_id: 5,
        ownership: vm_scope(),
        payload: RequestPayload::CreateLayerRequest,
    });
    let expected = concat(&[
        b"\x00\x00\x00\x37",
        b"\x00",
        SCHEMA,
        b"\x05\x00\x00\x00\x00\x00\x00\x00",
        VM_SCOPE,
        b"\x07", // RequestPayload tag 7: CreateLayerRequest (void)
    ]);
    check(frame, expected);
}

#[test]
fn negative_sidecar_request_id_is_twos_complement() {
    let frame = ProtocolFrame::SidecarRequestFrame(SidecarRequestFrame {
        schema: ProtocolSchema::current(),
        request_id: -1,
        ownership: vm_scope(),
        payload: SidecarRequestPayload::HostCallbackRequest(HostCallbackRequest {
            invocation_id: "i".into(),
            callback_key: "k".into(),
            input: "{}".into(),
            timeout_ms: 1000,
        }),
    });
    let expected = concat(&[
        b"\x00\x00\x00\x46", // 70-byte body
        b"\x03",             // ProtocolFrame tag 3: SidecarRequestFrame
        SCHEMA,
        b"\xff\xff\xff\xff\xff\xff\xff\xff", // -1
        VM_SCOPE,
        b"\x00\x01i\x01k\x02{}",
        b"\xe8\x03\x00\x00\x00\x00\x00\x00", // 1000 as u64 LE
    ]);
    check(frame, expected);
}
