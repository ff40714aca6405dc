//! Every type of the vendored schema exists in Rust, with members in schema order.

use crate::support::{pseudo_random_bytes, valid_frame};
use schema::idl::{self, TypeExpr};
use schema::wire::*;
use schema::{decode_frame, encode_frame, DEFAULT_MAX_FRAME_BYTES};
use std::collections::BTreeSet;

fn vendored_schema() -> Vec<idl::Definition> {
    // The crate's directory as cargo names it when it runs the test, not when it compiled it: a
    // target directory shared by two checkouts may hold a binary built in the other one.
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_owned());
    idl::parse(&std::fs::read_to_string(format!("{dir}/secure-exec-v1.bare")).unwrap()).unwrap()
}

fn union_members(definitions: &[idl::Definition], name: &str) -> Vec<String> {
    let definition = definitions.iter().find(|d| d.name == name).unwrap();
    let TypeExpr::Union(members) = &definition.ty else { panic!("{name} is not a union") };
    members
        .iter()
        .map(|m| match &m.ty {
            TypeExpr::Named(n) => n.clone(),
            other => panic!("unnamed member {other:?}"),
        })
        .collect()
}

#[test]
fn every_schema_type_is_generated_in_order() {
    let definitions = vendored_schema();
    let names: Vec<&str> = definitions.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, SCHEMA_TYPE_NAMES);
    assert_eq!(names.len(), 121, "the vendored schema defines 121 types");
}

#[test]
fn union_members_match_the_schema() {
    let definitions = vendored_schema();
    let generated: [(&str, &[&str]); 10] = [
        ("ProtocolFrame", ProtocolFrame::MEMBER_NAMES),
        ("RequestPayload", RequestPayload::MEMBER_NAMES),
        ("ResponsePayload", ResponsePayload::MEMBER_NAMES),
        ("EventPayload", EventPayload::MEMBER_NAMES),
        ("SidecarRequestPayload", SidecarRequestPayload::MEMBER_NAMES),
        ("SidecarResponsePayload", SidecarResponsePayload::MEMBER_NAMES),
        ("OwnershipScope", OwnershipScope::MEMBER_NAMES),
        ("SidecarPlacement", SidecarPlacement::MEMBER_NAMES),
        ("FsPermissionScope", FsPermissionScope::MEMBER_NAMES),
        ("RootFilesystemLowerDescriptor", RootFilesystemLowerDescriptor::MEMBER_NAMES),
    ];
    for (union, members) in generated {
        assert_eq!(union_members(&definitions, union), members, "{union}");
    }
    assert_eq!(ProtocolFrame::MEMBER_NAMES.len(), 5);
    assert_eq!(RequestPayload::MEMBER_NAMES.len(), 28);
    assert_eq!(ResponsePayload::MEMBER_NAMES.len(), 30);
    assert_eq!(EventPayload::MEMBER_NAMES.len(), 5);
}

#[test]
fn enum_values_match_the_schema() {
    let definitions = vendored_schema();
    let values = |name: &str| -> Vec<String> {
        let d = definitions.iter().find(|d| d.name == name).unwrap();
        let TypeExpr::Enum(members) = &d.ty else { panic!("{name}") };
        members.iter().map(|m| m.name.clone()).collect()
    };
    let names = |all: &[&'static str]| all.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(values("GuestFilesystemOperation"), names(&GuestFilesystemOperation::ALL.map(|v| v.schema_name())));
    assert_eq!(values("GuestRuntimeKind"), names(&GuestRuntimeKind::ALL.map(|v| v.schema_name())));
    assert_eq!(values("PermissionMode"), names(&PermissionMode::ALL.map(|v| v.schema_name())));
    assert_eq!(values("VmLifecycleState"), names(&VmLifecycleState::ALL.map(|v| v.schema_name())));
    assert_eq!(values("WasmPermissionTier"), names(&WasmPermissionTier::ALL.map(|v| v.schema_name())));
    assert_eq!(values("FilesystemOperation"), names(&FilesystemOperation::ALL.map(|v| v.schema_name())));
    assert_eq!(GuestFilesystemOperation::ALL.len(), 20);
    assert_eq!(GuestRuntimeKind::JavaScript.schema_name(), "JAVA_SCRIPT");
}

/// The member name of the payload inside any frame, through exhaustive matches: adding or
/// removing a frame variant without updating this test fails to compile.
fn payload_member(frame: &ProtocolFrame) -> (&'static str, &'static str) {
    match frame {
        ProtocolFrame::RequestFrame(f) => ("RequestFrame", f.payload.member_name()),
        ProtocolFrame::ResponseFrame(f) => ("ResponseFrame", f.payload.member_name()),
        ProtocolFrame::EventFrame(f) => ("EventFrame", f.payload.member_name()),
        ProtocolFrame::SidecarRequestFrame(f) => ("SidecarRequestFrame", f.payload.member_name()),
        ProtocolFrame::SidecarResponseFrame(f) => ("SidecarResponseFrame", f.payload.member_name()),
    }
}

/// Generates frames until every frame variant × payload member has round-tripped once.
#[test]
fn every_frame_variant_and_payload_member_round_trips() {
    let mut expected = BTreeSet::new();
    let pairs: [(&str, &[&str]); 5] = [
        ("RequestFrame", RequestPayload::MEMBER_NAMES),
        ("ResponseFrame", ResponsePayload::MEMBER_NAMES),
        ("EventFrame", EventPayload::MEMBER_NAMES),
        ("SidecarRequestFrame", SidecarRequestPayload::MEMBER_NAMES),
        ("SidecarResponseFrame", SidecarResponsePayload::MEMBER_NAMES),
    ];
    for (frame, members) in pairs {
        for member in members {
            expected.insert((frame, *member));
        }
    }
    assert_eq!(expected.len(), 28 + 30 + 5 + 3 + 3);
    let mut seen = BTreeSet::new();
    for seed in 0..200_000u64 {
        let frame = valid_frame(&pseudo_random_bytes(seed, 96));
        let bytes = encode_frame(&frame, DEFAULT_MAX_FRAME_BYTES).unwrap();
        assert_eq!(decode_frame(&bytes, DEFAULT_MAX_FRAME_BYTES).unwrap(), frame);
        seen.insert(payload_member(&frame));
        if seen.len() == expected.len() {
            break;
        }
    }
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}
