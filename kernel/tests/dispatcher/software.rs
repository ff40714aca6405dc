//! ConfigureVm `software`: command packages mounted read-only under `/opt/agentos`, their
//! commands found by name, every way a package or a request can be wrong refused by name.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kernel::host::package::{InMemoryPackage, Package, PackageError, PackageSource};
use kernel::host::software::MAX_SOFTWARE_PACKAGES;
use kernel::{Sidecar, SidecarConfig};
use schema::wire::GuestFilesystemOperation as Op;
use schema::wire::*;
use testkit::packages::PackageWriter;
use testkit::requests::execute;
use testkit::script::{module, ScriptEngine};

use crate::filesystem::*;
use crate::harness::*;

/// Packages by root, built in memory; counts how often each root was opened.
#[derive(Debug, Default)]
struct Shelf {
    archives: BTreeMap<String, Vec<u8>>,
    opened: Mutex<BTreeMap<String, usize>>,
}

impl PackageSource for Shelf {
    fn open(&self, root: &str) -> Result<Arc<Package>, PackageError> {
        *self.opened.lock().unwrap().entry(root.to_owned()).or_default() += 1;
        let bytes = self
            .archives
            .get(root)
            .cloned()
            .ok_or_else(|| PackageError::Io { origin: root.to_owned(), detail: "no such file".to_owned() })?;
        Package::parse(Arc::new(InMemoryPackage { origin: root.to_owned(), bytes })).map(Arc::new)
    }
}

fn shelf() -> Shelf {
    let tools = PackageWriter::new("tools", "1.0.0")
        .file("/bin/greet", 0o755, &module("exit"))
        .file("/share/motd", 0o644, b"hello from a package\n")
        .symlink("/bin/again", "greet");
    let broken = b"\x89AOS\x01\x00\x00\x00\xff\xff\x00\x00".to_vec();
    let clash = PackageWriter::new("clash", "2").file("/bin/greet", 0o755, b"\0asm");
    Shelf {
        archives: BTreeMap::from([
            ("/pkgs/tools".to_owned(), tools.build()),
            ("/pkgs/broken".to_owned(), broken),
            ("/pkgs/clash".to_owned(), clash.build()),
        ]),
        opened: Mutex::default(),
    }
}

fn software(roots: &[&str]) -> RequestPayload {
    RequestPayload::ConfigureVmRequest(ConfigureVmRequest {
        software: roots
            .iter()
            .map(|root| SoftwareDescriptor {
                package_name: root.trim_start_matches("/pkgs/").into(),
                root: (*root).into(),
            })
            .collect(),
        ..ConfigureVmRequest::mounts(Vec::new())
    })
}

fn guest_with(shelf: Arc<Shelf>, engine: &ScriptEngine) -> Guest {
    let sidecar =
        Sidecar::new(SidecarConfig::default()).with_packages(shelf).with_guest_engine(Arc::new(engine.clone()));
    Guest::on(Harness::with_sidecar(sidecar), r#"{"permissions":{"fs":"allow","childProcess":"allow"}}"#)
}

#[test]
fn packages_are_mounted_read_only_with_their_commands_linked_in_bin() {
    let shelf = Arc::new(shelf());
    let mut guest = guest_with(Arc::clone(&shelf), &ScriptEngine::new());
    match guest.send(software(&["/pkgs/tools"])) {
        ResponsePayload::VmConfiguredResponse(configured) => assert_eq!(configured.applied_software, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(guest.entries("/opt/agentos"), ["bin", "pkgs"]);
    assert_eq!(guest.entries("/opt/agentos/bin"), ["again", "greet"]);
    assert_eq!(guest.entries("/opt/agentos/pkgs/tools"), ["1.0.0", "current"]);
    assert_eq!(guest.read("/opt/agentos/pkgs/tools/current/share/motd"), "hello from a package\n");
    let link = guest.ok(req(Op::ReadLink, "/opt/agentos/bin/greet"));
    assert_eq!(link.target.as_deref(), Some("../pkgs/tools/current/bin/greet"));
    let real = guest.ok(req(Op::Realpath, "/opt/agentos/bin/again"));
    assert_eq!(real.target.as_deref(), Some("/opt/agentos/pkgs/tools/1.0.0/bin/greet"));
    let stat = guest.stat("/opt/agentos/bin/greet");
    assert_eq!(stat.mode & 0o170777, 0o100755);
    // Nothing in it can change, whatever the policy allows.
    let (code, message) = guest.err(write("/opt/agentos/pkgs/tools/1.0.0/share/motd", "mine"));
    assert_eq!(code, "kernel_error");
    assert!(message.starts_with("EROFS"), "{message}");
    assert!(guest.err(mkdir_p("/opt/agentos/bin/new")).1.starts_with("EROFS"));
    // The packages take none of the VM's filesystem quota: nothing was copied into it.
    assert!(guest.snapshot().iter().all(|entry| !entry.path.starts_with("/opt/agentos")));
}

#[test]
fn a_command_of_a_package_runs_by_name_and_through_its_aliases() {
    let engine = ScriptEngine::new();
    let mut guest = guest_with(Arc::new(shelf()), &engine);
    guest.send(software(&["/pkgs/tools"]));
    for (id, command) in [("p1", "greet"), ("p2", "again"), ("p3", "/opt/agentos/bin/greet")] {
        let frames = guest.host.request(guest.scope.clone(), execute(id, command, ["7"]));
        assert!(
            matches!(response_payload(&frames[0]), ResponsePayload::ProcessStartedResponse(_)),
            "{command}: {:?}",
            frames[0]
        );
    }
    let exits: Vec<i32> = guest
        .host
        .advance(0)
        .iter()
        .filter_map(|frame| match frame {
            ProtocolFrame::EventFrame(EventFrame { payload: EventPayload::ProcessExitedEvent(exited), .. }) => {
                Some(exited.exit_code)
            }
            _ => None,
        })
        .collect();
    assert_eq!(exits, [7, 7, 7]);
}

#[test]
fn bad_packages_and_clashes_are_refused_by_name_and_leave_the_vm_as_it_was() {
    let shelf = Arc::new(shelf());
    let mut guest = guest_with(Arc::clone(&shelf), &ScriptEngine::new());
    guest.send(software(&["/pkgs/tools"]));
    let refused = |guest: &mut Guest, roots: &[&str]| match guest.send(software(roots)) {
        ResponsePayload::RejectedResponse(rejected) => (rejected.code, rejected.message),
        other => panic!("{other:?}"),
    };
    let (code, message) = refused(&mut guest, &["/pkgs/missing"]);
    assert_eq!(code, "plugin_error");
    assert_eq!(message, "software \"missing\": cannot read /pkgs/missing: no such file");
    let (code, message) = refused(&mut guest, &["/pkgs/broken"]);
    assert_eq!(code, "plugin_error");
    assert!(message.contains("/pkgs/broken is not a command package"), "{message}");
    let (_, message) = refused(&mut guest, &["/pkgs/tools", "/pkgs/clash"]);
    assert_eq!(message, "command \"greet\" is already provided by another package");
    let (_, message) = refused(&mut guest, &["/pkgs/tools", "/pkgs/tools"]);
    assert_eq!(message, "package tools is loaded twice");
    let (_, message) = refused(&mut guest, &[""]);
    assert!(message.contains("needs a root"), "{message}");
    let too_many: Vec<&str> = std::iter::repeat_n("/pkgs/tools", MAX_SOFTWARE_PACKAGES + 1).collect();
    let (code, _) = refused(&mut guest, &too_many);
    assert_eq!(code, "limit_exceeded");
    // Every refusal left the first configuration in place.
    assert_eq!(guest.read("/opt/agentos/pkgs/tools/current/share/motd"), "hello from a package\n");
    // A configured mount may not take the packages' place.
    let over = RequestPayload::ConfigureVmRequest(ConfigureVmRequest {
        software: vec![SoftwareDescriptor { package_name: "tools".into(), root: "/pkgs/tools".into() }],
        ..ConfigureVmRequest::mounts(vec![MountDescriptor::memory("/opt/agentos")])
    });
    match guest.send(over) {
        ResponsePayload::RejectedResponse(rejected) => assert!(rejected.message.contains("software packages go")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_new_configuration_without_software_removes_the_packages() {
    let mut guest = guest_with(Arc::new(shelf()), &ScriptEngine::new());
    guest.send(software(&["/pkgs/tools"]));
    assert!(guest.exists("/opt/agentos/bin/greet"));
    guest.send(software(&[]));
    assert!(!guest.exists("/opt/agentos/bin/greet"));
}
