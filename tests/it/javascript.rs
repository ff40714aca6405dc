//! JavaScript guests (issue 17): the `node` command (QuickJS-NG compiled to WebAssembly with
//! our Node.js builtins layer, `runtime-js/`) run by the real binary through the protocol, on
//! the kernel, inside the wasmtime sandbox. `scripts/build-node.sh` builds it (through
//! `testkit::node`).

use std::path::Path;
use std::time::Duration;

use client::Client;
use schema::wire::*;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_secure-exec-sidecar"))
}

const OPEN: &str = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"}}"#;

/// A VM with `config` on a sidecar that has `node`.
fn node_vm(config: &str, seed: &str) -> (Client, OwnershipScope) {
    let dir = testkit::node::built().display().to_string();
    let mut sidecar = Client::spawn(binary(), &["--node-dir", &dir, "--seed", seed]).unwrap();
    sidecar.timeout = Duration::from_secs(300);
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let vm = sidecar.create_vm(&auth.connection_id, &session, config).unwrap();
    (sidecar, OwnershipScope::vm(auth.connection_id, session, vm))
}

/// Starts `execute` and collects it to its exit: (stdout, stderr, exit code).
fn run(sidecar: &mut Client, scope: &OwnershipScope, execute: ExecuteRequest) -> (String, String, i32) {
    let id = execute.process_id.clone();
    let started = sidecar.request(scope.clone(), RequestPayload::ExecuteRequest(execute)).unwrap();
    assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
    let close = CloseStdinRequest { process_id: id.clone() };
    let _ = sidecar.request(scope.clone(), RequestPayload::CloseStdinRequest(close));
    crate::wait_for_exit(sidecar, &id)
}

/// `runtime: JAVA_SCRIPT` with `args` (and an `entrypoint`, if given).
fn javascript(id: &str, entrypoint: Option<&str>, args: &[&str]) -> ExecuteRequest {
    ExecuteRequest {
        command: None,
        runtime: Some(GuestRuntimeKind::JavaScript),
        entrypoint: entrypoint.map(str::to_owned),
        ..ExecuteRequest::command(id, "", args.iter().copied())
    }
}

fn write(sidecar: &mut Client, scope: &OwnershipScope, path: &str, content: &str) {
    let request = GuestFilesystemCallRequest {
        content: Some(content.into()),
        encoding: Some(RootFilesystemEntryEncoding::Utf8),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::WriteFile, path)
    };
    let answer = sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(request)).unwrap();
    assert!(matches!(answer, ResponsePayload::GuestFilesystemResultResponse(_)), "{answer:?}");
}

fn read(sidecar: &mut Client, scope: &OwnershipScope, path: &str) -> Option<String> {
    let request = GuestFilesystemCallRequest {
        encoding: Some(RootFilesystemEntryEncoding::Utf8),
        ..GuestFilesystemCallRequest::new(GuestFilesystemOperation::ReadFile, path)
    };
    match sidecar.request(scope.clone(), RequestPayload::GuestFilesystemCallRequest(request)).unwrap() {
        ResponsePayload::GuestFilesystemResultResponse(result) => result.content,
        other => panic!("{other:?}"),
    }
}

#[test]
fn node_e_prints_and_the_node_command_and_runtime_agree() {
    let (mut sidecar, scope) = node_vm(OPEN, "1");
    let by_runtime = run(&mut sidecar, &scope, javascript("e1", None, &["-e", "console.log(1+1)"]));
    assert_eq!(by_runtime, ("2\n".into(), String::new(), 0));
    let by_command = ExecuteRequest::command("e2", "node", ["-p", "[1, 'a', {b: [2]}]"]);
    assert_eq!(run(&mut sidecar, &scope, by_command), ("[ 1, 'a', { b: [ 2 ] } ]\n".into(), String::new(), 0));
    let exit_code = ExecuteRequest::command("e3", "node", ["-e", "process.exitCode = 3; console.error('x', {y: 1})"]);
    assert_eq!(run(&mut sidecar, &scope, exit_code), (String::new(), "x { y: 1 }\n".into(), 3));
    let version = run(&mut sidecar, &scope, ExecuteRequest::command("e4", "node", ["--version"]));
    assert!(version.0.starts_with("v22."), "{version:?}");
}

/// A script in the VM's files: fs reads and writes, `require` of a local CommonJS module and of
/// a package in node_modules, `import` of an ES module, and a chain of timers.
#[test]
fn a_script_uses_files_modules_and_timers() {
    let (mut sidecar, scope) = node_vm(OPEN, "2");
    write(&mut sidecar, &scope, "/app/lib/math.js", "exports.add = (a, b) => a + b;\n");
    write(&mut sidecar, &scope, "/app/lib/shout.mjs", "export default (s) => s.toUpperCase() + '!';\n");
    write(
        &mut sidecar,
        &scope,
        "/app/node_modules/pad/package.json",
        r#"{"name":"pad","exports":{".":{"require":"./cjs.js","import":"./esm.mjs"}}}"#,
    );
    write(
        &mut sidecar,
        &scope,
        "/app/node_modules/pad/cjs.js",
        "module.exports = (s, n) => String(s).padStart(n, '.');\n",
    );
    write(
        &mut sidecar,
        &scope,
        "/app/node_modules/pad/esm.mjs",
        "export default (s, n) => String(s).padStart(n, '_');\n",
    );
    write(&mut sidecar, &scope, "/app/in.txt", "from the host");
    let main = r#"
const fs = require('fs');
const path = require('path');
const { add } = require('./lib/math');
const pad = require('pad');
const text = fs.readFileSync(path.join(__dirname, 'in.txt'), 'utf8');
fs.writeFileSync('/app/out.txt', `${text} and back ${add(2, 3)}`);
console.log(pad('x', 3), fs.existsSync('/app/out.txt'), fs.readdirSync('/app').sort().join(','));
import('./lib/shout.mjs').then(({ default: shout }) => console.log(shout('esm')));
let n = 0;
const step = () => { console.log('tick', ++n); if (n < 3) setTimeout(step, 5); };
setTimeout(step, 5);
process.on('exit', (code) => console.log('exit', code));
"#;
    write(&mut sidecar, &scope, "/app/main.js", main);
    let (stdout, stderr, code) = run(&mut sidecar, &scope, javascript("script", Some("/app/main.js"), &[]));
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), code),
        ("..x true in.txt,lib,main.js,node_modules,out.txt\nESM!\ntick 1\ntick 2\ntick 3\nexit 0\n", "", 0)
    );
    assert_eq!(read(&mut sidecar, &scope, "/app/out.txt").as_deref(), Some("from the host and back 5"));
    let module = "import pad from 'pad';\nimport { readFileSync } from 'node:fs';\nimport { add } from './lib/math.js';\n\
                  await new Promise((resolve) => setTimeout(resolve, 1));\nconsole.log(pad('y', 3), add(1, 1), readFileSync('/app/in.txt', 'utf8').length);\n";
    write(&mut sidecar, &scope, "/app/main.mjs", module);
    let (stdout, stderr, code) = run(&mut sidecar, &scope, javascript("module", Some("/app/main.mjs"), &[]));
    assert_eq!((stdout.as_str(), stderr.as_str(), code), ("__y 2 13\n", "", 0));
}

#[test]
fn an_uncaught_exception_exits_1_with_its_stack() {
    let (mut sidecar, scope) = node_vm(OPEN, "3");
    let code = "function inner() { throw new TypeError('boom') }\nfunction outer() { inner() }\nouter()";
    let (stdout, stderr, exit) = run(&mut sidecar, &scope, javascript("throw", None, &["-e", code]));
    assert_eq!((stdout.as_str(), exit), ("", 1));
    assert!(stderr.starts_with("TypeError: boom\n    at inner ([eval]:1:"), "{stderr}");
    assert!(stderr.contains("    at outer ([eval]:2:"), "{stderr}");
    let (_, stderr, exit) =
        run(&mut sidecar, &scope, javascript("reject", None, &["-e", "Promise.reject(new RangeError('later'))"]));
    assert_eq!(exit, 1);
    assert!(stderr.starts_with("RangeError: later\n"), "{stderr}");
}

/// A path the policy denies throws EACCES in JavaScript, as Node's fs does.
#[test]
fn a_denied_path_throws_eacces() {
    let config = r#"{"permissions":{"childProcess":"allow","env":"allow",
        "fs":{"default":"allow","rules":[{"mode":"deny","operations":["read"],"paths":["/secret","/secret/**"]}]}}}"#;
    let (mut sidecar, scope) = node_vm(config, "4");
    write(&mut sidecar, &scope, "/secret/key", "k");
    let code = "try { require('fs').readFileSync('/secret/key') } catch (e) { console.log(e.code, e.errno, e.syscall, e.message) }";
    let (stdout, stderr, exit) = run(&mut sidecar, &scope, javascript("denied", None, &["-e", code]));
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), exit),
        ("EACCES -13 open EACCES: permission denied, open '/secret/key'\n", "", 0)
    );
}

/// Unbounded recursion hits the interpreter's own stack bound (`NODE_MAX_STACK_BYTES`): a
/// `RangeError` the program can catch, not a trap of the WebAssembly stack.
#[test]
fn deep_recursion_is_a_range_error() {
    let (mut sidecar, scope) = node_vm(OPEN, "15");
    let code = "let depth = 0; const dive = () => { depth++; dive(); };\n\
                try { dive() } catch (e) { console.log(e instanceof RangeError, e.message, depth > 1000) }";
    let (stdout, stderr, exit) = run(&mut sidecar, &scope, javascript("deep", None, &["-e", code]));
    assert_eq!((stdout.as_str(), stderr.as_str(), exit), ("true Maximum call stack size exceeded true\n", "", 0));
}

#[test]
fn an_endless_loop_is_stopped_by_the_limit() {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"},"limits":{"resources":{"maxWasmFuel":2000000000}}}"#;
    let (mut sidecar, scope) = node_vm(config, "5");
    let (_, _, exit) = run(&mut sidecar, &scope, javascript("spin", None, &["-e", "for (;;) {}"]));
    assert_eq!(exit, 124);
    // The sidecar goes on serving.
    assert_eq!(run(&mut sidecar, &scope, javascript("after", None, &["-e", "console.log('ok')"])).0, "ok\n");
}

/// The same seed gives the same Math.random() and crypto bytes; another seed others.
#[test]
fn the_same_seed_gives_the_same_randomness() {
    let code = "console.log(Math.random(), require('crypto').randomBytes(4).toString('hex'))";
    let outputs: Vec<String> = ["7", "7", "8"]
        .iter()
        .map(|seed| {
            let (mut sidecar, scope) = node_vm(OPEN, seed);
            run(&mut sidecar, &scope, javascript("random", None, &["-e", code])).0
        })
        .collect();
    assert_eq!(outputs[0], outputs[1]);
    assert_ne!(outputs[0], outputs[2]);
    assert!(outputs[0].starts_with("0."), "{outputs:?}");
}

/// With the command packages installed, `node` runs from a shell pipeline and
/// `child_process.execSync` runs other commands through the kernel.
#[test]
fn node_runs_in_a_shell_and_child_process_runs_commands() {
    let dir = testkit::node::built().display().to_string();
    let mut vm = crate::commands::Vm::start_with(&["--node-dir", &dir]);
    let run = vm.sh("echo 'console.log(6 * 7)' | node | tr 4 X");
    assert_eq!((run.exit_code, run.stdout.as_str()), (0, "X2\n"), "{}", run.stderr);
    let code = "const cp = require('child_process');\n\
                process.stdout.write(cp.execSync('echo hi').toString());\n\
                const r = cp.spawnSync('sh', ['-c', 'echo out; echo err >&2; exit 3'], { encoding: 'utf8' });\n\
                console.log(r.status, JSON.stringify(r.stdout), JSON.stringify(r.stderr));\n\
                try { cp.execSync('exit 2', { stdio: 'pipe' }) } catch (e) { console.log('failed', e.status) }\n\
                cp.exec('echo async', (error, stdout) => console.log(error, stdout.trim()));";
    vm.write("/data/cp.js", code);
    let run = vm.run("node", &["/data/cp.js"]);
    assert_eq!(
        (run.exit_code, run.stdout.as_str(), run.stderr.as_str()),
        (0, "hi\n3 \"out\\n\" \"err\\n\"\nfailed 2\nnull async\n", "")
    );
}

/// An `http.createServer` guest is reachable from the host with VmFetch.
#[test]
fn an_http_server_guest_answers_vm_fetch() {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow","network":"allow"}}"#;
    let (mut sidecar, scope) = node_vm(config, "6");
    let server = r#"
const http = require('http');
let served = 0;
const server = http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => (body += chunk));
  req.on('end', () => {
    res.setHeader('content-type', 'text/plain');
    res.end(`${req.method} ${req.url} ${req.headers.accept} ${body}`);
    if (++served === 2) server.close();
  });
});
server.listen(8080, () => console.log('listening'));
"#;
    write(&mut sidecar, &scope, "/srv/server.js", server);
    let started = sidecar
        .request(scope.clone(), RequestPayload::ExecuteRequest(javascript("web", Some("/srv/server.js"), &[])))
        .unwrap();
    assert!(matches!(started, ResponsePayload::ProcessStartedResponse(_)), "{started:?}");
    loop {
        match sidecar.next_event(Duration::from_secs(60)).unwrap().payload {
            EventPayload::ProcessOutputEvent(event) if event.chunk.starts_with(b"listening") => break,
            EventPayload::ProcessExitedEvent(event) => panic!("the server exited: {event:?}"),
            _ => {}
        }
    }
    for (method, path, body, expected) in [
        ("GET", "/status", None, "GET /status text/plain "),
        ("PUT", "/items/7", Some("{\"n\":7}"), "PUT /items/7 text/plain {\"n\":7}"),
    ] {
        assert_eq!(crate::vm_fetch(&mut sidecar, &scope, method, path, body), (200, expected.to_owned()));
    }
    loop {
        if let EventPayload::ProcessExitedEvent(event) = sidecar.next_event(Duration::from_secs(60)).unwrap().payload {
            assert_eq!((event.process_id.as_str(), event.exit_code), ("web", 0));
            break;
        }
    }
}

/// `jsRuntime` in the CreateVm config reaches every `node` process, and a process's own
/// environment cannot replace it.
#[test]
fn the_js_runtime_config_is_honoured_and_cannot_be_overridden() {
    let config = r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"},
        "jsRuntime":{"platform":"node","allowedBuiltins":["fs"],"moduleResolution":"relative"}}"#;
    let (mut sidecar, scope) = node_vm(config, "9");
    let code = "console.log(typeof require('fs').readFileSync);\n\
                for (const name of ['path', 'node:os', 'left-pad']) {\n\
                  try { require(name) } catch (e) { console.log(name, e.code) }\n\
                }\n\
                console.log(process.env.SECURE_EXEC_JS_RUNTIME);";
    let mut execute = javascript("limited", None, &["-e", code]);
    execute.env = [("SECURE_EXEC_JS_RUNTIME".to_owned(), "{}".to_owned())].into_iter().collect();
    let (stdout, stderr, exit) = run(&mut sidecar, &scope, execute);
    assert_eq!(
        (stdout.as_str(), stderr.as_str(), exit),
        ("function\npath ERR_ACCESS_DENIED\nnode:os ERR_ACCESS_DENIED\nleft-pad ERR_ACCESS_DENIED\nundefined\n", "", 0)
    );
    let config =
        r#"{"permissions":{"fs":"allow","childProcess":"allow","env":"allow"},"jsRuntime":{"platform":"neutral"}}"#;
    let (mut sidecar, scope) = node_vm(config, "10");
    let code = "console.log(typeof process, typeof Buffer, typeof fetch, typeof setTimeout)";
    assert_eq!(
        run(&mut sidecar, &scope, javascript("neutral", None, &["-e", code])),
        ("undefined undefined undefined function\n".into(), String::new(), 0)
    );
}

/// Real pure-JavaScript npm packages, installed by `scripts/fetch-js-packages.sh`, run unchanged
/// from a read-only `node_modules` mounted from the host: js-yaml's CLI (with its dependency
/// argparse), semver's CLI, and marked's CLI (an ES module).
#[test]
fn npm_packages_run_unchanged_from_node_modules() {
    let (mut sidecar, scope) = node_vm(OPEN, "11");
    let packages = testkit::node::packages().display().to_string();
    let configure = ConfigureVmRequest::mounts(vec![MountDescriptor::host_dir("/opt/npm", &packages, true)]);
    let configured = sidecar.request(scope.clone(), RequestPayload::ConfigureVmRequest(configure)).unwrap();
    assert!(matches!(configured, ResponsePayload::VmConfiguredResponse(_)), "{configured:?}");
    write(&mut sidecar, &scope, "/work/in.yaml", "name: sandbox\nlist:\n  - 1\n  - two\nnested: {a: true}\n");
    write(&mut sidecar, &scope, "/work/in.md", "# Title\n\nSome *text*.\n");
    let bin = "/opt/npm/node_modules";
    let yaml =
        ExecuteRequest::command("yaml", "node", [format!("{bin}/js-yaml/bin/js-yaml.js"), "/work/in.yaml".into()]);
    assert_eq!(
        run(&mut sidecar, &scope, yaml),
        (
            "{\n  \"name\": \"sandbox\",\n  \"list\": [\n    1,\n    \"two\"\n  ],\n  \"nested\": {\n    \"a\": true\n  }\n}\n".into(),
            String::new(),
            0
        )
    );
    let semver = ExecuteRequest::command(
        "semver",
        "node",
        [
            format!("{bin}/semver/bin/semver.js"),
            "-r".into(),
            "^1.2.0".into(),
            "1.2.3".into(),
            "1.3.0".into(),
            "2.0.0".into(),
        ],
    );
    assert_eq!(run(&mut sidecar, &scope, semver), ("1.2.3\n1.3.0\n".into(), String::new(), 0));
    let marked = ExecuteRequest::command(
        "marked",
        "node",
        [format!("{bin}/marked/bin/marked.js"), "-i".into(), "/work/in.md".into()],
    );
    assert_eq!(
        run(&mut sidecar, &scope, marked),
        ("<h1>Title</h1>\n<p>Some <em>text</em>.</p>\n\n".into(), String::new(), 0)
    );
}

/// The compatibility suite (`tests/js-compat/cases`, written for this project): every case's
/// stdout must be what Node.js printed (its `.out` file, recorded from Node), with status 0,
/// except the cases `known-failures.txt` lists with a reason, which must still fail (a fixed
/// one is taken off the list). `docs/compatibility.md` states the pass count this checks.
#[test]
fn the_compatibility_suite_passes_as_documented() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/js-compat");
    let known: std::collections::BTreeMap<String, String> = std::fs::read_to_string(root.join("known-failures.txt"))
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once(':').map(|(name, why)| (name.trim().to_owned(), why.trim().to_owned())))
        .collect();
    let mut cases: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("cases"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "js" || extension == "mjs"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 150, "the suite has {} cases", cases.len());
    let (mut sidecar, scope) = node_vm(OPEN, "12");
    let work = "/tmp/jscompat-work";
    let (mut passed, mut failures) = (0, Vec::new());
    for (index, case) in cases.iter().enumerate() {
        let name = case.file_name().unwrap().to_str().unwrap().to_owned();
        let expected = std::fs::read_to_string(case.with_extension("out")).unwrap();
        write(&mut sidecar, &scope, &format!("{work}/{name}"), &std::fs::read_to_string(case).unwrap());
        let execute = ExecuteRequest {
            cwd: Some(work.to_owned()),
            ..ExecuteRequest::command(format!("case-{index}"), "node", [format!("{work}/{name}")])
        };
        let (stdout, stderr, exit) = run(&mut sidecar, &scope, execute);
        let passes = exit == 0 && stdout == expected;
        match (passes, known.contains_key(&name)) {
            (true, false) => passed += 1,
            (false, true) => {}
            (true, true) => failures.push(format!("{name} passes now: take it off known-failures.txt")),
            (false, false) => failures
                .push(format!("{name}: exit {exit}\n--- stdout\n{stdout}--- expected\n{expected}--- stderr\n{stderr}")),
        }
    }
    assert!(failures.is_empty(), "{} failing:\n{}", failures.len(), failures.join("\n"));
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compatibility.md")).unwrap();
    let claim = format!("**{passed} of {} JavaScript cases pass**", cases.len());
    assert!(docs.contains(&claim), "docs/compatibility.md should say {claim}");
}

/// A recorded run of `node` (its Math.random() from the VM's seed, its Date.now() and
/// performance.now() from the kernel's clock readings, which the trace holds) replays to the
/// same frames byte for byte.
#[test]
fn a_recorded_node_run_replays_to_the_same_frames() {
    let trace = std::env::temp_dir().join(format!("sidecar-it-node-{}.trace", std::process::id()));
    let dir = testkit::node::built().display().to_string();
    let mut sidecar =
        Client::spawn(binary(), &["--node-dir", &dir, "--seed", "13", "--record", trace.to_str().unwrap()]).unwrap();
    sidecar.timeout = Duration::from_secs(300);
    let auth = sidecar.authenticate("it", "token").unwrap();
    let session = sidecar.open_session(&auth.connection_id).unwrap();
    let vm = sidecar.create_vm(&auth.connection_id, &session, OPEN).unwrap();
    let scope = OwnershipScope::vm(auth.connection_id.clone(), session.clone(), vm.clone());
    let code = "setTimeout(() => console.log(Math.random(), Date.now() > 0, performance.now() >= 0, require('crypto').randomUUID().length), 3)";
    let (stdout, stderr, exit) = run(&mut sidecar, &scope, javascript("record", None, &["-e", code]));
    assert_eq!((stderr.as_str(), exit), ("", 0));
    assert!(stdout.starts_with("0.") && stdout.ends_with(" true true 36\n"), "{stdout}");
    sidecar.dispose_vm(&auth.connection_id, &session, &vm).unwrap();
    assert!(sidecar.close().unwrap().success());
    crate::assert_replays(&trace, &[("SECURE_EXEC_NODE", &dir)]);
    let _ = std::fs::remove_file(&trace);
}

/// Truncating a file and setting its times on a `host_dir` mount: both calls reach the host
/// directory through effects the driver performs, and wait for them (they once answered EAGAIN).
#[test]
fn files_on_a_host_directory_mount_truncate_and_take_times() {
    let host = std::env::temp_dir().join(format!("sidecar-it-node-mount-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&host);
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("f.txt"), "0123456789").unwrap();
    let (mut sidecar, scope) = node_vm(OPEN, "14");
    let configure = ConfigureVmRequest::mounts(vec![MountDescriptor::host_dir("/mnt", host.to_str().unwrap(), false)]);
    let configured = sidecar.request(scope.clone(), RequestPayload::ConfigureVmRequest(configure)).unwrap();
    assert!(matches!(configured, ResponsePayload::VmConfiguredResponse(_)), "{configured:?}");
    let code = "const fs = require('fs');\n\
                const fd = fs.openSync('/mnt/f.txt', 'r+');\n\
                fs.ftruncateSync(fd, 4);\n\
                fs.closeSync(fd);\n\
                fs.truncateSync('/mnt/f.txt', 2);\n\
                fs.utimesSync('/mnt/f.txt', 3000, 4000);\n\
                console.log(fs.readFileSync('/mnt/f.txt', 'utf8'), fs.statSync('/mnt/f.txt').mtimeMs);";
    let (stdout, stderr, exit) = run(&mut sidecar, &scope, javascript("mount", None, &["-e", code]));
    assert_eq!((stdout.as_str(), stderr.as_str(), exit), ("01 4000000\n", "", 0));
    assert_eq!(std::fs::read_to_string(host.join("f.txt")).unwrap(), "01");
    let _ = std::fs::remove_dir_all(&host);
}

/// `fetch` and `https.get` over TLS, which the driver terminates and verifies against the
/// configured CA, from a server on the host's loopback (an exempt port).
#[test]
fn node_fetches_over_https_with_the_configured_ca() {
    use crate::network::{body_bytes, https_server, network_config, temp_path, test_pki};
    let pki = test_pki();
    let ca_file = temp_path("node-test-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let dir = testkit::node::built().display().to_string();
    for (id, code) in [
        ("fetch", "fetch(`https://localhost:${process.argv[1]}/secure`).then(async (r) => {\n\
                   const text = await r.text(); console.log(r.status, text.length, text.slice(0, 5)) })"),
        ("get", "require('https').get(`https://localhost:${process.argv[1]}/secure`, (r) => {\n\
                 let n = 0; r.on('data', (c) => (n += c.length)); r.on('end', () => console.log(r.statusCode, n, 'abcde')) })"),
    ] {
        let (port, server) = https_server(&pki);
        let mut sidecar =
            Client::spawn(binary(), &["--node-dir", &dir, "--tls-ca-file", ca_file.to_str().unwrap()]).unwrap();
        sidecar.timeout = Duration::from_secs(300);
        let auth = sidecar.authenticate("it", "token").unwrap();
        let session = sidecar.open_session(&auth.connection_id).unwrap();
        let vm = sidecar.create_vm(&auth.connection_id, &session, &network_config(&[port])).unwrap();
        let scope = OwnershipScope::vm(auth.connection_id, session, vm);
        let (stdout, stderr, exit) =
            run(&mut sidecar, &scope, javascript(id, None, &["-e", code, &port.to_string()]));
        assert_eq!((stdout.as_str(), stderr.as_str(), exit), (format!("200 {} abcde\n", body_bytes().len()).as_str(), "", 0));
        assert!(String::from_utf8(server.join().unwrap()).unwrap().starts_with("GET /secure HTTP/1.1\r\n"));
    }
}

/// The sidecar loads `node`'s layer once, into a snapshot beside the build, on its first start
/// with that build; a process started from the snapshot gives what one started from the build
/// gives (arguments, the seed's Math.random, a fresh clock origin).
#[test]
fn node_starts_from_a_snapshot_made_on_first_start_and_runs_as_the_build_does() {
    let build = testkit::node::built().join("node.wasm");
    let dir = |name: &str| {
        let dir = std::env::temp_dir().join(format!("sidecar-it-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&build, dir.join("node.wasm")).unwrap();
        dir
    };
    let fresh = dir("node-snapshot");
    // A snapshot that cannot be written (a directory in its place): none, the build runs.
    let unsnapshotted = dir("node-no-snapshot");
    std::fs::create_dir(unsnapshotted.join("node-snapshot.wasm")).unwrap();
    let code = "console.log(process.argv.slice(1).join(','), Math.random(), performance.now() < 1000)";
    let output = |node_dir: &Path| {
        let node_dir = node_dir.display().to_string();
        let mut sidecar = Client::spawn(binary(), &["--node-dir", &node_dir, "--seed", "7"]).unwrap();
        sidecar.timeout = Duration::from_secs(300);
        let auth = sidecar.authenticate("it", "token").unwrap();
        let session = sidecar.open_session(&auth.connection_id).unwrap();
        let vm = sidecar.create_vm(&auth.connection_id, &session, OPEN).unwrap();
        let scope = OwnershipScope::vm(auth.connection_id, session, vm);
        run(&mut sidecar, &scope, javascript("snapshot", None, &["-e", code, "a", "b"]))
    };
    let from_snapshot = output(&fresh);
    assert!(fresh.join("node-snapshot.wasm").is_file() && fresh.join("node-snapshot.key").is_file());
    let snapshot = std::fs::read(fresh.join("node-snapshot.wasm")).unwrap();
    assert_ne!(snapshot, std::fs::read(&build).unwrap());
    let from_build = output(&unsnapshotted);
    assert!(unsnapshotted.join("node-snapshot.wasm").is_dir() && !unsnapshotted.join("node-snapshot.key").exists());
    assert_eq!(from_snapshot, from_build);
    assert!(from_snapshot.0.starts_with("a,b 0.") && from_snapshot.0.ends_with(" true\n"), "{from_snapshot:?}");
    // Made once: a second start finds it current and leaves it as it was.
    assert_eq!(output(&fresh), from_snapshot);
    assert_eq!(std::fs::read(fresh.join("node-snapshot.wasm")).unwrap(), snapshot);
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&unsnapshotted);
}
