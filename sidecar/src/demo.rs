//! The README's first command: spawns this binary as a sidecar child process and drives it
//! through the Rust client, narrating each step.

use client::Client;
use schema::wire::*;
use std::process::ExitCode;
use std::time::Duration;

/// A `wc`-like WebAssembly command (C, built by `runtime-wasm/fixtures/c/build.sh`).
const WC_WASM: &[u8] = include_bytes!("../../runtime-wasm/fixtures/c/wc.wasm");
/// What the demo feeds it, in two chunks.
const INPUT: [&str; 2] = ["hello from the host\nthis text goes to ", "a guest's stdin\n"];

pub fn run() -> ExitCode {
    match drive() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("demo failed: {error}");
            ExitCode::FAILURE
        }
    }
}

#[allow(clippy::print_stdout)]
fn drive() -> Result<(), client::ClientError> {
    let binary = std::env::current_exe().map_err(client::ClientError::Spawn)?;
    println!("starting the sidecar: {}", binary.display());
    let mut sidecar = Client::spawn(&binary, &[])?;
    let connection = sidecar.authenticate("demo", "demo-token")?;
    println!("authenticated as connection {}", connection.connection_id);
    let session = sidecar.open_session(&connection.connection_id)?;
    println!("opened session {session}");
    let config = r#"{"cwd":"/home/user","permissions":{"fs":"allow","childProcess":"allow"},"limits":{"resources":{"maxProcesses":16}}}"#;
    let vm = sidecar.create_vm(&connection.connection_id, &session, config)?;
    println!("created VM {vm}");
    narrate_events(&mut sidecar, 2)?;
    run_wc(&mut sidecar, OwnershipScope::vm(connection.connection_id.clone(), session.clone(), vm.clone()))?;
    sidecar.dispose_vm(&connection.connection_id, &session, &vm)?;
    println!("disposed VM {vm}");
    narrate_events(&mut sidecar, 2)?;
    let status = sidecar.close()?;
    println!("sidecar exited with {status}");
    Ok(())
}

/// Installs `wc` in the VM, runs it with two stdin chunks, and prints what it writes.
#[allow(clippy::print_stdout)]
fn run_wc(sidecar: &mut Client, scope: OwnershipScope) -> Result<(), client::ClientError> {
    use base64::Engine as _;
    let install = GuestFilesystemCallRequest {
        content: Some(base64::engine::general_purpose::STANDARD.encode(WC_WASM)),
        encoding: Some(RootFilesystemEntryEncoding::Base64),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, "/usr/local/bin/wc")
    };
    sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(install))?;
    println!("installed /usr/local/bin/wc ({} bytes of WebAssembly)", WC_WASM.len());
    let execute = ExecuteRequest::command("wc-1", "wc", Vec::<String>::new());
    if let ResponsePayload::ProcessStartedResponse(started) =
        sidecar.request(scope.clone(), RequestPayload::ExecuteRequest(execute))?
    {
        println!("started wc as process {} (pid {})", started.process_id, started.pid.unwrap_or_default());
    }
    for chunk in INPUT {
        let write = WriteStdinRequest { process_id: "wc-1".into(), chunk: chunk.as_bytes().to_vec() };
        sidecar.request(scope.clone(), RequestPayload::WriteStdinRequest(write))?;
        println!("  stdin <- {chunk:?}");
    }
    sidecar.request(scope, RequestPayload::CloseStdinRequest(CloseStdinRequest { process_id: "wc-1".into() }))?;
    println!("  stdin closed");
    loop {
        let event = sidecar.next_event(Duration::from_secs(10))?;
        match &event.payload {
            EventPayload::ProcessOutputEvent(output) => {
                print!(
                    "  {} -> {}",
                    output.channel.schema_name().to_lowercase(),
                    String::from_utf8_lossy(&output.chunk)
                );
            }
            EventPayload::ProcessExitedEvent(exited) => {
                println!("  wc exited with {}", exited.exit_code);
                return Ok(());
            }
            _ => println!("  event: {}", client::describe_event(&event)),
        }
    }
}

#[allow(clippy::print_stdout)]
fn narrate_events(sidecar: &mut Client, count: usize) -> Result<(), client::ClientError> {
    for _ in 0..count {
        let event = sidecar.next_event(Duration::from_secs(5))?;
        println!("  event: {}", client::describe_event(&event));
    }
    Ok(())
}
