//! The README's first command: spawns this binary as a sidecar child process and drives it
//! through the Rust client, narrating each step.

use client::Client;
use std::process::ExitCode;
use std::time::Duration;

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
    let config = r#"{"cwd":"/home/user","permissions":{"fs":"allow"},"limits":{"resources":{"maxProcesses":16}}}"#;
    let vm = sidecar.create_vm(&connection.connection_id, &session, config)?;
    println!("created VM {vm}");
    narrate_events(&mut sidecar, 2)?;
    sidecar.dispose_vm(&connection.connection_id, &session, &vm)?;
    println!("disposed VM {vm}");
    narrate_events(&mut sidecar, 2)?;
    let status = sidecar.close()?;
    println!("sidecar exited with {status}");
    Ok(())
}

#[allow(clippy::print_stdout)]
fn narrate_events(sidecar: &mut Client, count: usize) -> Result<(), client::ClientError> {
    for _ in 0..count {
        let event = sidecar.next_event(Duration::from_secs(5))?;
        println!("  event: {}", client::describe_event(&event));
    }
    Ok(())
}
