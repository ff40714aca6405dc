//! The `host_fs`, `host_net`, `host_tty` and `host_user` imports and the hidden preopen
//! descriptors (`0x4000_0000 | N`), served by the kernel: WAT guests call each import and report
//! the values it wrote to their memory.

use schema::wire::*;

use crate::exec::{answer, next_prompt, outcome, response, started, Host};
use crate::support::wat;

/// Every permission granted, and small filesystem limits `statfs` reports.
const VM_CONFIG: &str = r#"{"permissions":{"fs":"allow","env":"allow","childProcess":"allow","process":"allow"},
  "limits":{"resources":{"maxFilesystemBytes":1048576,"maxInodeCount":1000}}}"#;

/// Where a guest's strings start (see [`guest`]); each gets its own 256-byte slot.
const STRINGS_AT: u32 = 4096;
/// Bytes per string slot.
const STRING_SLOT: u32 = 256;

/// `0x4000_0003`: the hidden alias of the root preopen.
const TAGGED_ROOT: u32 = 0x4000_0003;
/// The working-directory sentinel the original's tools pass as a directory descriptor.
const CWD: u32 = u32::MAX;
/// What `path_size` and `fd_size` answer when they fail.
const NO_SIZE: u64 = u64::MAX;

/// A guest importing everything under test. In `body`, `$S{i}` stands for the two arguments
/// `ptr len` of `strings[i]`; `body` calls the imports and reports values with
/// `(call $r (i64 …))` or `(call $r32 (i32 …))`; they reach stdout as little-endian `u64`s, in
/// order.
fn guest(strings: &[&str], body: &str) -> Vec<u8> {
    assert!(strings.len() <= 10, "$S1 would match $S10");
    let mut data = String::new();
    let mut body = body.to_owned();
    for (index, text) in strings.iter().enumerate() {
        let at = STRINGS_AT + STRING_SLOT * u32::try_from(index).unwrap();
        assert!(text.len() < STRING_SLOT as usize);
        data.push_str(&format!("(data (i32.const {at}) \"{text}\")\n"));
        body = body.replace(&format!("$S{index}"), &format!("(i32.const {at}) (i32.const {})", text.len()));
    }
    wat(&format!(
        r#"(module
        (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_renumber" (func $fd_renumber (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_fdstat_get" (func $fd_fdstat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_fdstat_set_flags" (func $fd_fdstat_set_flags (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_advise" (func $fd_advise (param i32 i64 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_allocate" (func $fd_allocate (param i32 i64 i64) (result i32)))
        (import "wasi_snapshot_preview1" "fd_fdstat_set_rights" (func $fd_fdstat_set_rights (param i32 i64 i64) (result i32)))
        (import "wasi_snapshot_preview1" "fd_prestat_get" (func $fd_prestat_get (param i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_prestat_dir_name" (func $fd_prestat_dir_name (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "fd_readdir" (func $fd_readdir (param i32 i32 i32 i64 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_open"
          (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_filestat_get"
          (func $path_filestat_get (param i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_symlink" (func $path_symlink (param i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_create_directory" (func $path_create_directory (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_unlink_file" (func $path_unlink_file (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_remove_directory" (func $path_remove_directory (param i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_rename" (func $path_rename (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_link" (func $path_link (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (import "wasi_snapshot_preview1" "path_filestat_set_times"
          (func $path_filestat_set_times (param i32 i32 i32 i32 i64 i64 i32) (result i32)))
        (import "host_process" "fd_dup" (func $fd_dup (param i32 i32) (result i32)))
        (import "host_process" "fd_dup2" (func $fd_dup2 (param i32 i32) (result i32)))
        (import "host_process" "fd_pipe" (func $fd_pipe (param i32 i32) (result i32)))
        (import "host_fs" "path_mode" (func $path_mode (param i32 i32 i32 i32) (result i32)))
        (import "host_fs" "path_size" (func $path_size (param i32 i32 i32 i32) (result i64)))
        (import "host_fs" "path_rdev" (func $path_rdev (param i32 i32 i32 i32) (result i64)))
        (import "host_fs" "fd_mode" (func $fd_mode (param i32) (result i32)))
        (import "host_fs" "fd_size" (func $fd_size (param i32) (result i64)))
        (import "host_fs" "set_open_mode" (func $set_open_mode (param i32) (result i32)))
        (import "host_fs" "chmod" (func $chmod (param i32 i32 i32 i32) (result i32)))
        (import "host_fs" "ftruncate" (func $ftruncate (param i32 i64) (result i32)))
        (import "host_fs" "path_owner" (func $path_owner (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "host_fs" "path_chown" (func $path_chown (param i32 i32 i32 i32 i32 i32) (result i32)))
        (import "host_fs" "path_statfs" (func $path_statfs (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
        (import "host_fs" "remount" (func $remount (param i32 i32 i32 i32) (result i32)))
        (import "host_net" "net_send" (func $net_send (param i32 i32 i32 i32 i32) (result i32)))
        (import "host_net" "net_recv" (func $net_recv (param i32 i32 i32 i32 i32) (result i32)))
        (import "host_net" "net_poll" (func $net_poll (param i32 i32 i32 i32) (result i32)))
        (import "host_tty" "read" (func $tty_read (param i32 i32 i32) (result i32)))
        (import "host_tty" "set_raw_mode" (func $set_raw_mode (param i32) (result i32)))
        (import "host_user" "getpwuid" (func $getpwuid (param i32 i32 i32 i32) (result i32)))
        (import "host_user" "getpwnam" (func $getpwnam (param i32 i32 i32 i32 i32) (result i32)))
        (import "host_user" "getpwent" (func $getpwent (param i32 i32 i32 i32) (result i32)))
        (import "host_user" "getgrgid" (func $getgrgid (param i32 i32 i32 i32) (result i32)))
        (import "host_user" "getgrnam" (func $getgrnam (param i32 i32 i32 i32 i32) (result i32)))
        (import "host_user" "getgrent" (func $getgrent (param i32 i32 i32 i32) (result i32)))
        (import "host_user" "getgroups" (func $getgroups (param i32 i32 i32) (result i32)))
        (import "host_user" "setuid" (func $setuid (param i32) (result i32)))
        (import "host_user" "setgid" (func $setgid (param i32) (result i32)))
        (import "host_user" "setgroups" (func $setgroups (param i32 i32) (result i32)))
        (memory (export "memory") 1)
        {data}
        (global $out (mut i32) (i32.const 32768))
        (func $r (param i64)
          (i64.store (global.get $out) (local.get 0))
          (global.set $out (i32.add (global.get $out) (i32.const 8))))
        (func $r32 (param i32) (call $r (i64.extend_i32_u (local.get 0))))
        (func (export "_start")
          {body}
          (i32.store (i32.const 0) (i32.const 32768))
          (i32.store (i32.const 4) (i32.sub (global.get $out) (i32.const 32768)))
          (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#
    ))
}

/// Installs `module` as `/bin/probe`, runs it in `cwd` with `tier`, and returns the values it
/// reported.
fn run_in(host: &mut Host, vm: &str, module: &[u8], cwd: &str, tier: Option<WasmPermissionTier>) -> Vec<u64> {
    host.write_file(vm, "/bin/probe", module);
    let request = ExecuteRequest {
        cwd: Some(cwd.into()),
        wasm_permission_tier: tier,
        ..ExecuteRequest::command("probe", "probe", std::iter::empty::<&str>())
    };
    let frames = host.request(host.scope(vm), RequestPayload::ExecuteRequest(request));
    started(response(&frames[0]));
    let (stdout, stderr, code) = outcome(&host.run("probe"));
    assert_eq!((code, stderr.as_str()), (0, ""), "the probe failed");
    assert_eq!(stdout.len() % 8, 0, "{stdout:?}");
    stdout.chunks_exact(8).map(|value| u64::from_le_bytes(value.try_into().unwrap())).collect()
}

/// A VM with `files` written by the host, and the values `body` reports run in `cwd`.
fn run(files: &[(&str, &[u8])], strings: &[&str], body: &str, cwd: &str) -> Vec<u64> {
    let mut host = Host::new();
    let vm = host.vm(VM_CONFIG);
    for (path, content) in files {
        host.write_file(&vm, path, content);
    }
    run_in(&mut host, &vm, &guest(strings, body), cwd, None)
}

/// A `path_open` of string `index` relative to `dirfd`, for reading and writing (every right),
/// with `oflags`; the new descriptor is stored at `at`, the errno reported.
fn open(dirfd: u32, index: usize, oflags: u32, at: u32) -> String {
    format!(
        "(call $r32 (call $path_open (i32.const {dirfd}) (i32.const 1) $S{index} (i32.const {oflags}) \
         (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const {at})))"
    )
}

/// Values in octal, for failure messages about modes.
fn octal(values: &[u64]) -> String {
    values.iter().map(|value| format!("{value:o}")).collect::<Vec<_>>().join(" ")
}

const S_IFREG: u64 = 0o100_000;
const S_IFDIR: u64 = 0o040_000;
const S_IFLNK: u64 = 0o120_000;
const S_IFCHR: u64 = 0o020_000;
const S_IFIFO: u64 = 0o010_000;

#[test]
fn hidden_preopens_alias_the_root_and_outlive_fd_3() {
    let values = run(
        &[],
        &["etc/passwd", "etc"],
        &format!(
            r#"
            ;; the libc's scan: 0x40000003 is "/", 0x40000004 ends it with EBADF
            (call $r32 (call $fd_prestat_get (i32.const {TAGGED_ROOT}) (i32.const 100)))
            (call $r32 (i32.load8_u (i32.const 100)))
            (call $r32 (i32.load (i32.const 104)))
            (call $r32 (call $fd_prestat_dir_name (i32.const {TAGGED_ROOT}) (i32.const 200) (i32.const 1)))
            (call $r32 (i32.load8_u (i32.const 200)))
            (call $r32 (call $fd_prestat_get (i32.const 0x40000004) (i32.const 100)))
            ;; nothing changes an alias
            (call $r32 (call $fd_close (i32.const {TAGGED_ROOT})))
            (call $r32 (call $fd_renumber (i32.const {TAGGED_ROOT}) (i32.const 3)))
            (call $r32 (call $fd_dup (i32.const {TAGGED_ROOT}) (i32.const 100)))
            (call $r32 (call $fd_dup2 (i32.const 0) (i32.const {TAGGED_ROOT})))
            (call $r32 (call $fd_fdstat_set_flags (i32.const {TAGGED_ROOT}) (i32.const 1)))
            ;; the visible fd 3 goes; the alias still resolves paths, describes and lists "/"
            (call $r32 (call $fd_close (i32.const 3)))
            (call $r32 (call $fd_prestat_get (i32.const 3) (i32.const 100)))
            {open_passwd}
            (call $r32 (i32.load (i32.const 300)))
            (call $r32 (call $path_filestat_get (i32.const {TAGGED_ROOT}) (i32.const 1) $S1 (i32.const 400)))
            (call $r32 (i32.load8_u (i32.const 416)))
            (call $r32 (call $fd_fdstat_get (i32.const {TAGGED_ROOT}) (i32.const 500)))
            (call $r32 (i32.load8_u (i32.const 500)))
            (call $r32 (call $fd_readdir (i32.const {TAGGED_ROOT}) (i32.const 1024) (i32.const 2048) (i64.const 0) (i32.const 600)))
            (call $r32 (i32.gt_u (i32.load (i32.const 600)) (i32.const 24)))
            (call $r32 (call $fd_prestat_get (i32.const {TAGGED_ROOT}) (i32.const 100)))
            "#,
            open_passwd = open(TAGGED_ROOT, 0, 0, 300),
        ),
        "/",
    );
    let (badf, ok) = (8, 0);
    assert_eq!(values[..6], [ok, 0, 1, ok, u64::from(b'/'), badf], "the scan");
    assert_eq!(values[6..11], [badf; 5], "close, renumber, dup, dup2 to, set flags");
    assert_eq!(values[11..13], [ok, badf], "fd 3 closed");
    assert_eq!(values[13..15], [ok, 3], "opened through the alias, at the lowest free number");
    assert_eq!(values[15..17], [ok, 3], "etc is a directory");
    assert_eq!(values[17..19], [ok, 3], "the alias is a directory");
    assert_eq!(values[19..22], [ok, 1, ok], "listed, and still a preopen");
}

#[test]
fn host_fs_getters_report_type_bits_sizes_owners_and_devices() {
    let values = run(
        &[("/tmp/f", b"hello")],
        &["tmp/f", "tmp", "/dev/null", "tmp/l", "f", "../dev/null", "/home/user", "/etc/passwd", "tmp/missing"],
        &format!(
            r#"
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S0 (i32.const 1)))
            (call $r (call $path_size (i32.const {TAGGED_ROOT}) $S0 (i32.const 1)))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S1 (i32.const 1)))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S2 (i32.const 1)))
            (call $r (call $path_rdev (i32.const {TAGGED_ROOT}) $S2 (i32.const 1)))
            (call $r (call $path_rdev (i32.const {TAGGED_ROOT}) $S0 (i32.const 1)))
            ;; a symlink: its own mode without follow, its target's with
            (call $r32 (call $path_symlink $S4 (i32.const {TAGGED_ROOT}) $S3))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S3 (i32.const 0)))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S3 (i32.const 1)))
            ;; Rust std's path_rdev(3, raw path): relative to the working directory (/tmp)
            (call $r (call $path_rdev (i32.const 3) $S5 (i32.const 1)))
            ;; owners through the working-directory sentinel
            (call $r32 (call $path_owner (i32.const {CWD}) $S6 (i32.const 1) (i32.const 100) (i32.const 104)))
            (call $r32 (i32.load (i32.const 100)))
            (call $r32 (i32.load (i32.const 104)))
            (call $r32 (call $path_owner (i32.const {CWD}) $S7 (i32.const 1) (i32.const 100) (i32.const 104)))
            (call $r32 (i32.load (i32.const 100)))
            (call $r32 (call $path_owner (i32.const {CWD}) $S7 (i32.const 1) (i32.const 65534) (i32.const 104)))
            ;; failures are the sentinels
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S8 (i32.const 1)))
            (call $r (call $path_size (i32.const {TAGGED_ROOT}) $S8 (i32.const 1)))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) (i32.const 65530) (i32.const 100) (i32.const 1)))
            (call $r32 (call $path_mode (i32.const 0x40000009) $S0 (i32.const 1)))
            ;; descriptors: stdin, the root, an open file, a pipe end, nothing
            (call $r32 (call $fd_mode (i32.const 0)))
            (call $r32 (call $fd_mode (i32.const {TAGGED_ROOT})))
            {open_f}
            (call $r32 (call $fd_mode (i32.load (i32.const 200))))
            (call $r (call $fd_size (i32.load (i32.const 200))))
            (call $r32 (call $fd_pipe (i32.const 300) (i32.const 304)))
            (call $r32 (call $fd_mode (i32.load (i32.const 300))))
            (call $r32 (call $fd_mode (i32.const 99)))
            (call $r (call $fd_size (i32.const 99)))
            "#,
            open_f = open(TAGGED_ROOT, 0, 0, 200),
        ),
        "/tmp",
    );
    let expected = [
        S_IFREG | 0o644,
        5,
        S_IFDIR | 0o1777,
        S_IFCHR | 0o666,
        0x103,
        0,
        0,
        S_IFLNK | 0o777,
        S_IFREG | 0o644,
        0x103,
        0,
        1000,
        1000,
        0,
        0,
        21,
        0,
        NO_SIZE,
        0,
        0,
        S_IFCHR | 0o666,
        S_IFDIR | 0o755,
        0,
        S_IFREG | 0o644,
        5,
        0,
        S_IFIFO | 0o600,
        0,
        NO_SIZE,
    ];
    assert_eq!(values, expected, "{}", octal(&values));
}

/// Rust std's `fs::metadata` passes the hidden root alias with the user's raw path, relative to
/// the working directory; the libc passes it with a path relative to `/`.
#[test]
fn path_mode_reads_the_root_alias_as_the_libc_or_rust_std_meant_it() {
    let values = run(
        &[("/tmp/etc", b"a file, not /etc")],
        &["etc", "tmp/etc", "etc/passwd", "home"],
        &format!(
            r#"
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S0 (i32.const 1)))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S1 (i32.const 1)))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S2 (i32.const 1)))
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S3 (i32.const 1)))
            "#
        ),
        "/tmp",
    );
    // "etc": /tmp/etc (Rust std's, it exists); "tmp/etc": below the working directory, the
    // libc's; "etc/passwd" is not under /tmp/etc (a file), so /etc/passwd; "home": /home.
    assert_eq!(values, [S_IFREG | 0o644, S_IFREG | 0o644, S_IFREG | 0o644, S_IFDIR | 0o755], "{}", octal(&values));
    // In `/` the alias is just the root.
    let values =
        run(&[], &["etc"], &format!("(call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S0 (i32.const 1)))"), "/");
    assert_eq!(values, [S_IFDIR | 0o755], "{}", octal(&values));
}

/// `OFLAGS_CREAT`.
const CREAT: u32 = 1;

#[test]
fn host_fs_sets_creation_modes_permissions_sizes_and_owners() {
    let values = run(
        &[("/tmp/old", b"keep")],
        &["tmp/new", "tmp/old", "tmp/plain", "new", "/tmp/new", "/home/user", "/", "/nowhere", "rw,remount"],
        &format!(
            r#"
            ;; the latch gives the next creation its mode (less the umask), and only that open
            (call $r32 (call $set_open_mode (i32.const 384)))
            {create_new}
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S0 (i32.const 1)))
            (call $r32 (call $set_open_mode (i32.const 511)))
            {open_old}
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S1 (i32.const 1)))
            {create_plain}
            (call $r32 (call $path_mode (i32.const {TAGGED_ROOT}) $S2 (i32.const 1)))
            ;; chmod: Rust std's (fd 3, relative to the working directory) and the libc's
            (call $r32 (call $chmod (i32.const 3) $S3 (i32.const 416)))
            (call $r32 (call $path_mode (i32.const {CWD}) $S4 (i32.const 1)))
            (call $r32 (call $chmod (i32.const {TAGGED_ROOT}) $S0 (i32.const 35309)))
            (call $r32 (call $path_mode (i32.const {CWD}) $S4 (i32.const 1)))
            ;; ftruncate: shorter, longer, negative
            (call $r32 (call $ftruncate (i32.load (i32.const 100)) (i64.const 2)))
            (call $r (call $path_size (i32.const {TAGGED_ROOT}) $S1 (i32.const 1)))
            (call $r32 (call $ftruncate (i32.load (i32.const 100)) (i64.const 10)))
            (call $r (call $fd_size (i32.load (i32.const 100))))
            (call $r32 (call $ftruncate (i32.load (i32.const 100)) (i64.const -1)))
            ;; chown: nothing to change; another owner; a group the guest is not in
            (call $r32 (call $path_chown (i32.const {CWD}) $S4 (i32.const -1) (i32.const -1) (i32.const 1)))
            (call $r32 (call $path_chown (i32.const {CWD}) $S4 (i32.const 1000) (i32.const -1) (i32.const 1)))
            (call $r32 (call $path_chown (i32.const {CWD}) $S5 (i32.const 1000) (i32.const 1000) (i32.const 1)))
            (call $r32 (call $path_chown (i32.const {CWD}) $S5 (i32.const -1) (i32.const 0) (i32.const 1)))
            ;; statfs of /, five u64s at their own pointers; of nothing
            (call $r32 (call $path_statfs (i32.const {CWD}) $S6
              (i32.const 200) (i32.const 208) (i32.const 216) (i32.const 224) (i32.const 232)))
            (call $r (i64.load (i32.const 200)))
            (call $r (i64.load (i32.const 208)))
            (call $r (i64.load (i32.const 216)))
            (call $r (i64.load (i32.const 224)))
            (call $r (i64.load (i32.const 232)))
            (call $r32 (call $path_statfs (i32.const {CWD}) $S7
              (i32.const 200) (i32.const 208) (i32.const 216) (i32.const 224) (i32.const 232)))
            (call $r32 (call $path_statfs (i32.const {CWD}) $S6
              (i32.const 200) (i32.const 208) (i32.const 65530) (i32.const 224) (i32.const 232)))
            ;; guests are not root
            (call $r32 (call $remount $S6 $S8))
            "#,
            create_new = open(TAGGED_ROOT, 0, CREAT, 100),
            open_old = open(TAGGED_ROOT, 1, CREAT, 100),
            create_plain = open(TAGGED_ROOT, 2, CREAT, 104),
        ),
        "/tmp",
    );
    let (ok, perm, inval, noent, fault) = (0, 63, 28, 44, 21);
    let creations = [ok, ok, S_IFREG | 0o600, ok, ok, S_IFREG | 0o644, ok, S_IFREG | 0o644];
    assert_eq!(values[..8], creations, "latched, existing, unlatched: {}", octal(&values));
    assert_eq!(values[8..12], [ok, S_IFREG | 0o640, ok, S_IFREG | 0o4755], "chmod: {}", octal(&values));
    assert_eq!(values[12..17], [ok, 2, ok, 10, inval], "ftruncate");
    // Unchanged ids, another owner, the guest's own ids on its home (a no-op), a foreign group.
    assert_eq!(values[17..21], [ok, perm, ok, perm], "chown");
    let (total, used, available, inodes, free_inodes) = (values[22], values[23], values[24], values[25], values[26]);
    assert_eq!((values[21], total, inodes), (ok, 1_048_576, 1000), "statfs");
    assert!(used > 0 && used + available == total, "{used} + {available} != {total}");
    assert!(free_inodes > 0 && free_inodes < inodes, "{free_inodes}");
    assert_eq!(values[27..], [noent, fault, perm], "statfs failures, remount");
}

#[test]
fn a_read_only_command_changes_nothing_and_an_isolated_one_sees_no_files() {
    let mut host = Host::new();
    let vm = host.vm(VM_CONFIG);
    host.write_file(&vm, "/tmp/f", b"x");
    let probe = guest(
        &["/tmp/f"],
        &format!(
            r#"
            (call $r32 (call $chmod (i32.const {CWD}) $S0 (i32.const 384)))
            (call $r32 (call $path_chown (i32.const {CWD}) $S0 (i32.const -1) (i32.const -1) (i32.const 1)))
            (call $r32 (call $path_mode (i32.const {CWD}) $S0 (i32.const 1)))
            (call $r32 (call $path_owner (i32.const {CWD}) $S0 (i32.const 1) (i32.const 100) (i32.const 104)))
            (call $r32 (call $fd_prestat_get (i32.const {TAGGED_ROOT}) (i32.const 100)))
            "#
        ),
    );
    let read_only = run_in(&mut host, &vm, &probe, "/", Some(WasmPermissionTier::ReadOnly));
    assert_eq!(read_only, [69, 69, S_IFREG | 0o644, 0, 0], "EROFS; reads still work");
    let isolated = run_in(&mut host, &vm, &probe, "/", Some(WasmPermissionTier::Isolated));
    assert_eq!(isolated, [8, 8, 0, 8, 8], "no preopen, and no working directory either");
}

#[test]
fn host_user_serves_the_account_database_and_refuses_other_ids() {
    let values = run(
        &[],
        &["user", "nobody", "root"],
        r#"
        ;; by name: the record, its length; too small a buffer: ERANGE, the length, nothing copied
        (call $r32 (call $getpwnam $S0 (i32.const 1024) (i32.const 256) (i32.const 100)))
        (call $r32 (i32.load (i32.const 100)))
        (call $r32 (i32.load8_u (i32.const 1024)))
        (call $r32 (call $getpwnam $S2 (i32.const 2048) (i32.const 4) (i32.const 104)))
        (call $r32 (i32.load (i32.const 104)))
        (call $r32 (i32.load8_u (i32.const 2048)))
        (call $r32 (call $getpwnam $S1 (i32.const 2048) (i32.const 256) (i32.const 104)))
        (call $r32 (call $getpwuid (i32.const 0) (i32.const 2048) (i32.const 5) (i32.const 104)))
        (call $r32 (i32.load (i32.const 104)))
        ;; enumerations end with ENOENT
        (call $r32 (call $getpwent (i32.const 0) (i32.const 2048) (i32.const 256) (i32.const 104)))
        (call $r32 (call $getpwent (i32.const 1) (i32.const 2048) (i32.const 256) (i32.const 104)))
        (call $r32 (call $getpwent (i32.const 2) (i32.const 2048) (i32.const 256) (i32.const 104)))
        (call $r32 (call $getgrent (i32.const 1) (i32.const 2048) (i32.const 256) (i32.const 104)))
        (call $r32 (call $getgrent (i32.const 2) (i32.const 2048) (i32.const 256) (i32.const 104)))
        ;; groups by id and name
        (call $r32 (call $getgrgid (i32.const 1000) (i32.const 3072) (i32.const 256) (i32.const 108)))
        (call $r32 (i32.load (i32.const 108)))
        (call $r32 (call $getgrnam $S2 (i32.const 3584) (i32.const 256) (i32.const 112)))
        (call $r32 (i32.load (i32.const 112)))
        (call $r32 (call $getgrgid (i32.const 7) (i32.const 3072) (i32.const 256) (i32.const 108)))
        ;; a bad result pointer
        (call $r32 (call $getgrgid (i32.const 0) (i32.const 3072) (i32.const 256) (i32.const 65534)))
        ;; getgroups: the count alone, then the groups
        (call $r32 (call $getgroups (i32.const 0) (i32.const 0) (i32.const 120)))
        (call $r32 (i32.load (i32.const 120)))
        (call $r32 (call $getgroups (i32.const 4) (i32.const 124) (i32.const 120)))
        (call $r32 (i32.load (i32.const 124)))
        ;; credentials: only the guest's own ids
        (call $r32 (call $setuid (i32.const 1000)))
        (call $r32 (call $setuid (i32.const 0)))
        (call $r32 (call $setgid (i32.const 1000)))
        (call $r32 (call $setgid (i32.const 0)))
        (call $r32 (call $setgroups (i32.const 1) (i32.const 124)))
        (call $r32 (call $setgroups (i32.const 65) (i32.const 124)))
        (call $r32 (call $setgroups (i32.const 1) (i32.const 65534)))
        ;; the user's record itself (40 bytes), for the test to read
        (call $r (i64.load (i32.const 1024)))
        (call $r (i64.load (i32.const 1032)))
        (call $r (i64.load (i32.const 1040)))
        (call $r (i64.load (i32.const 1048)))
        (call $r (i64.load (i32.const 1056)))
        "#,
        "/",
    );
    let (ok, noent, range, perm, too_big, fault) = (0, 44, 68, 63, 1, 21);
    let user = b"user:x:1000:1000:user:/home/user:/bin/sh";
    let root = b"root:x:0:0:root:/root:/bin/sh";
    assert_eq!(values[..6], [ok, user.len() as u64, u64::from(b'u'), range, root.len() as u64, 0], "getpwnam");
    assert_eq!(values[6..9], [noent, range, root.len() as u64], "getpwnam nobody, getpwuid too small");
    assert_eq!(values[9..14], [ok, ok, noent, ok, noent], "enumerations");
    assert_eq!(values[14..19], [ok, b"user:x:1000:user".len() as u64, ok, b"root:x:0:".len() as u64, noent]);
    assert_eq!(values[19], fault);
    assert_eq!(values[20..24], [ok, 1, ok, 1000], "getgroups");
    assert_eq!(values[24..31], [ok, perm, ok, perm, perm, too_big, fault], "set*id, setgroups");
    let record: Vec<u8> = values[31..].iter().flat_map(|word| word.to_le_bytes()).collect();
    assert_eq!(record, user);
}

#[test]
fn host_net_says_not_a_socket_and_host_tty_no_terminal() {
    let values = run(
        &[],
        &["data"],
        r#"
        (call $r32 (call $net_send (i32.const 1) $S0 (i32.const 0) (i32.const 100)))
        (call $r32 (call $net_recv (i32.const 0) (i32.const 1024) (i32.const 64) (i32.const 0) (i32.const 100)))
        (call $r32 (call $net_send (i32.const 77) (i32.const 65530) (i32.const 64) (i32.const 0) (i32.const 100)))
        (call $r32 (call $net_recv (i32.const 0) (i32.const 1024) (i32.const 64) (i32.const 0) (i32.const 65534)))
        (call $r32 (call $tty_read (i32.const 1024) (i32.const 1) (i32.const 10)))
        (call $r32 (call $set_raw_mode (i32.const 1)))
        "#,
        "/",
    );
    // ENOTSOCK (57) for stdio, then EFAULT (21) for bad pointers, checked before the descriptor.
    assert_eq!(values, [57, 57, 21, 21, 0, 59]);
}

/// A getter waits for a permission prompt like any path call, and answers once allowed.
#[test]
fn a_getter_waits_for_a_permission_prompt() {
    const ASK_STAT: &str = r#"{"permissions":{"fs":{"default":"allow","rules":[{"mode":"ask","operations":["stat"],"paths":["/tmp/**"]}]},"childProcess":"allow"},"permissionPrompts":{"enabled":true,"timeoutMs":5000}}"#;
    let mut host = Host::new();
    let vm = host.vm(ASK_STAT);
    host.write_file(&vm, "/tmp/f", b"abc");
    host.write_file(
        &vm,
        "/bin/probe",
        &guest(&["/tmp/f"], &format!("(call $r32 (call $path_mode (i32.const {CWD}) $S0 (i32.const 1)))")),
    );
    started(&host.execute(&vm, "probe", "probe", &[]));
    let prompt = next_prompt(&mut host);
    answer(&mut host, &prompt, "allow");
    let (stdout, stderr, code) = outcome(&host.run("probe"));
    assert_eq!((code, stderr.as_str()), (0, ""));
    assert_eq!(stdout, (S_IFREG | 0o644).to_le_bytes());
}

/// `fd_advise`, `fd_allocate` and `fd_fdstat_set_rights` answer as wasmtime does, from what the
/// descriptor is: an advice is checked and accepted on a file; nothing is preallocated and no
/// right is dropped (`ENOTSUP`); a directory, a stream or a closed number is `EBADF`.
#[test]
fn advice_allocation_and_rights_answer_by_the_descriptors_kind() {
    let values = run(
        &[("/tmp/f", b"data")],
        &["tmp/f"],
        &format!(
            r#"
            {open_file}
            (call $r32 (call $fd_advise (i32.load (i32.const 300)) (i64.const 0) (i64.const 4) (i32.const 1)))
            (call $r32 (call $fd_advise (i32.load (i32.const 300)) (i64.const 0) (i64.const 4) (i32.const 6)))
            (call $r32 (call $fd_advise (i32.const 3) (i64.const 0) (i64.const 4) (i32.const 0)))
            (call $r32 (call $fd_advise (i32.const 1) (i64.const 0) (i64.const 4) (i32.const 0)))
            (call $r32 (call $fd_allocate (i32.load (i32.const 300)) (i64.const 0) (i64.const 4096)))
            (call $r32 (call $fd_allocate (i32.const 3) (i64.const 0) (i64.const 1)))
            (call $r32 (call $fd_allocate (i32.const 99) (i64.const 0) (i64.const 1)))
            (call $r32 (call $fd_fdstat_set_rights (i32.const 1) (i64.const 0) (i64.const 0)))
            (call $r32 (call $fd_fdstat_set_rights (i32.const 99) (i64.const 0) (i64.const 0)))
            "#,
            open_file = open(3, 0, 0, 300)
        ),
        "/",
    );
    // ok, then EINVAL 28, EBADF 8, ENOTSUP 58.
    assert_eq!(values, [0, 0, 28, 8, 8, 58, 8, 8, 58, 8]);
}

/// `path_open` without `SYMLINK_FOLLOW` (O_NOFOLLOW) refuses a final symlink with `ELOOP`,
/// dangling or not, creating or not; with it, a dangling link is `ENOENT` and a live one opens
/// its target.
#[test]
fn opening_without_follow_refuses_a_final_symlink() {
    let open_with = |lookup: u32, index: usize, oflags: u32| {
        format!(
            "(call $r32 (call $path_open (i32.const 3) (i32.const {lookup}) $S{index} (i32.const {oflags}) \
             (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 400)))"
        )
    };
    let values = run(
        &[("/tmp/target", b"data")],
        &["/tmp/target", "tmp/live", "/tmp/missing", "tmp/dangling"],
        &format!(
            r#"
            (call $r32 (call $path_symlink $S0 (i32.const 3) $S1))
            (call $r32 (call $path_symlink $S2 (i32.const 3) $S3))
            {live_nofollow}
            {dangling_nofollow}
            {dangling_create_nofollow}
            {dangling_follow}
            {live_follow}
            "#,
            live_nofollow = open_with(0, 1, 0),
            dangling_nofollow = open_with(0, 3, 0),
            dangling_create_nofollow = open_with(0, 3, 1),
            dangling_follow = open_with(1, 3, 0),
            live_follow = open_with(1, 1, 0),
        ),
        "/",
    );
    // The two links made, then ELOOP 32, ELOOP, ELOOP, ENOENT 44, opened.
    assert_eq!(values, [0, 0, 32, 32, 32, 44, 0]);
}

/// A name ending in `/` names a directory: on a file it is `ENOTDIR` for every call, a new file
/// cannot be created under it (`EISDIR`), and a link cannot take it (`ENOENT`); directories are
/// reached as before.
#[test]
fn a_trailing_slash_names_only_a_directory() {
    let values = run(
        &[("/tmp/f", b"data")],
        &["tmp/f/", "tmp/d/", "tmp/new/", "tmp/f", "tmp/g/", "tmp/d2/", "tmp/d"],
        &format!(
            r#"
            (call $r32 (call $path_create_directory (i32.const 3) $S6))
            (call $r32 (call $path_filestat_get (i32.const 3) (i32.const 1) $S0 (i32.const 500)))
            (call $r32 (call $path_filestat_get (i32.const 3) (i32.const 1) $S1 (i32.const 500)))
            {open_file}
            {open_dir}
            {create_new}
            (call $r32 (call $path_unlink_file (i32.const 3) $S0))
            (call $r32 (call $path_rename (i32.const 3) $S0 (i32.const 3) $S4))
            (call $r32 (call $path_rename (i32.const 3) $S3 (i32.const 3) $S4))
            (call $r32 (call $path_symlink $S3 (i32.const 3) $S4))
            (call $r32 (call $path_remove_directory (i32.const 3) $S0))
            (call $r32 (call $path_rename (i32.const 3) $S1 (i32.const 3) $S5))
            "#,
            open_file = open(3, 0, 0, 400),
            open_dir = "(call $r32 (call $path_open (i32.const 3) (i32.const 1) $S1 (i32.const 2) \
                        (i64.const 2) (i64.const 2) (i32.const 0) (i32.const 400)))",
            create_new = open(3, 2, 1, 400),
        ),
        "/",
    );
    // The directory made, then ENOTDIR 54, ok, ENOTDIR, ok, EISDIR 31, ENOTDIR, ENOTDIR, ENOTDIR,
    // ENOENT 44, ENOTDIR, ok.
    assert_eq!(values, [0, 54, 0, 54, 0, 31, 54, 54, 54, 44, 54, 0]);
}

/// One `net_poll` watches at most `MAX_POLL_FDS` (1024) descriptors: more is `EINVAL`.
#[test]
fn a_poll_of_more_than_1024_descriptors_is_refused() {
    // 1024 (and 1025) zeroed entries at 50000: fd 0 (stdin), no events asked, no wait.
    let values = run(
        &[],
        &[],
        r#"
        (call $r32 (call $net_poll (i32.const 50000) (i32.const 1024) (i32.const 0) (i32.const 100)))
        (call $r32 (i32.load (i32.const 100)))
        (call $r32 (call $net_poll (i32.const 50000) (i32.const 1025) (i32.const 0) (i32.const 100)))
        "#,
        "/",
    );
    // ok with nothing ready, then EINVAL 28.
    assert_eq!(values, [0, 0, 28]);
}

/// `fd_fdstat_get` reports rights as wasmtime does, from what the descriptor is: a directory
/// has the directory rights (never `fd_read`/`fd_write`) and passes on those and a file's; a
/// standard stream only reads or only writes, never append; a file has every right but the
/// reading or writing its open mode lacks. A directory takes no flags and a standard stream no
/// append (`EBADF`); a standard stream may be made non-blocking, as on POSIX.
#[test]
fn rights_and_flags_follow_what_the_descriptor_is() {
    let fdstat = |fd: &str| {
        format!(
            "(call $r32 (call $fd_fdstat_get {fd} (i32.const 500)))
             (call $r32 (i32.load16_u (i32.const 502)))
             (call $r (i64.load (i32.const 508)))
             (call $r (i64.load (i32.const 516)))"
        )
    };
    let values = run(
        &[("/tmp/f", b"data")],
        &["tmp/f"],
        &format!(
            r#"
            (call $r32 (call $path_open (i32.const 3) (i32.const 1) $S0 (i32.const 0)
              (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 300)))
            {root}
            {stdin}
            {stdout}
            {file}
            (call $r32 (call $fd_fdstat_set_flags (i32.const 1) (i32.const 1)))
            (call $r32 (call $fd_fdstat_set_flags (i32.const 0) (i32.const 4)))
            (call $r32 (call $fd_fdstat_set_flags (i32.const 3) (i32.const 4)))
            (call $r32 (call $fd_fdstat_set_flags (i32.load (i32.const 300)) (i32.const 4)))
            {file}
            "#,
            root = fdstat("(i32.const 3)"),
            stdin = fdstat("(i32.const 0)"),
            stdout = fdstat("(i32.const 1)"),
            file = fdstat("(i32.load (i32.const 300))"),
        ),
        "/",
    );
    const FD_READ: u64 = 1 << 1;
    const FD_WRITE: u64 = 1 << 6;
    const ALL: u64 = (1 << 30) - 1;
    // path_create_directory 9 … path_rename_target 17, path_filestat_get 18,
    // path_filestat_set_times 20, fd_filestat_get 21, fd_filestat_set_times 23,
    // path_symlink 24, path_remove_directory 25, path_unlink_file 26.
    let directory: u64 =
        [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 20, 21, 23, 24, 25, 26].iter().fold(0, |rights, bit| rights | 1 << bit);
    let (ok, badf) = (0, 8);
    assert_eq!(values[0], ok, "opened read-only");
    let root = &values[1..5];
    assert_eq!((root[0], root[1]), (ok, 0), "a directory has no flags");
    assert_eq!(root[2] & (FD_READ | FD_WRITE), 0, "a directory neither reads nor writes: {:#x}", root[2]);
    assert_eq!(root[2], directory, "{:#x}", root[2]);
    assert_eq!(
        root[3] & (FD_READ | FD_WRITE | directory),
        FD_READ | FD_WRITE | directory,
        "it passes on a file's rights"
    );
    assert_eq!(values[5..9], [ok, 0, FD_READ, FD_READ], "stdin only reads");
    assert_eq!(values[9..13], [ok, 0, FD_WRITE, FD_WRITE], "stdout only writes, without append");
    assert_eq!(values[13..17], [ok, 0, ALL & !FD_WRITE, ALL & !FD_WRITE], "a read-only file");
    assert_eq!(values[17..21], [badf, ok, badf, ok], "stdout takes no append, stdin non-blocking, a directory nothing");
    assert_eq!(values[21..25], [ok, 4, ALL & !FD_WRITE, ALL & !FD_WRITE], "the file is non-blocking now");
}

/// `fd_readdir` of the directory stored at `fd_at` from cookie 0: the bytes it filled.
fn listing_bytes(fd_at: u32) -> String {
    format!(
        "(call $r32 (call $fd_readdir (i32.load (i32.const {fd_at})) (i32.const 1024) (i32.const 2048) \
         (i64.const 0) (i32.const 600)))
         (call $r32 (i32.load (i32.const 600)))"
    )
}

#[test]
fn rewinding_a_directory_lists_it_again() {
    let values = run(
        &[("/tmp/a", b"1")],
        &["tmp", "tmp/bb", "tmp/a"],
        &format!(
            r#"
            (call $r32 (call $path_open (i32.const 3) (i32.const 1) $S0 (i32.const 2)
              (i64.const 0x4000) (i64.const 0x1fffffff) (i32.const 0) (i32.const 300)))
            {list}
            {create}
            {list}
            (call $r32 (call $path_unlink_file (i32.const 3) $S1))
            (call $r32 (call $path_unlink_file (i32.const 3) $S2))
            {list}
            "#,
            list = listing_bytes(300),
            create = open(3, 1, 1, 304),
        ),
        "/",
    );
    // A dirent is 24 bytes and its name.
    let entries = |names: &[&str]| names.iter().map(|name| 24 + name.len() as u64).sum::<u64>();
    assert_eq!(values[0], 0, "opened");
    assert_eq!(values[1..3], [0, entries(&[".", "..", "a"])]);
    assert_eq!(values[3], 0, "created tmp/bb");
    assert_eq!(values[4..6], [0, entries(&[".", "..", "a", "bb"])], "a rewind sees the new entry");
    assert_eq!(values[6..8], [0, 0], "both removed");
    assert_eq!(values[8..10], [0, entries(&[".", ".."])], "and sees them gone");
}

#[test]
fn synchronized_io_flags_are_reported_back_and_fixed_at_open() {
    const DSYNC: u64 = 2;
    const RSYNC: u64 = 8;
    const SYNC: u64 = 16;
    let fdflags = |fd_at: u32| {
        format!(
            "(call $r32 (call $fd_fdstat_get (i32.load (i32.const {fd_at})) (i32.const 500)))
             (call $r32 (i32.load16_u (i32.const 502)))"
        )
    };
    let values = run(
        &[("/tmp/f", b"data")],
        &["tmp/f"],
        &format!(
            r#"
            (call $r32 (call $path_open (i32.const 3) (i32.const 1) $S0 (i32.const 0)
              (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 26) (i32.const 300)))
            {synced}
            (call $r32 (call $path_open (i32.const 3) (i32.const 1) $S0 (i32.const 0)
              (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 3) (i32.const 304)))
            {appending}
            (call $r32 (call $fd_fdstat_set_flags (i32.load (i32.const 304)) (i32.const 16)))
            (call $r32 (call $fd_fdstat_set_flags (i32.load (i32.const 304)) (i32.const 0)))
            {appending}
            "#,
            synced = fdflags(300),
            appending = fdflags(304),
        ),
        "/",
    );
    let (ok, inval) = (0, 28);
    assert_eq!(values[0..3], [ok, ok, DSYNC | RSYNC | SYNC], "O_DSYNC | O_RSYNC | O_SYNC read back");
    assert_eq!(values[3..6], [ok, ok, 1 | DSYNC], "append and O_DSYNC");
    assert_eq!(values[6], inval, "synchronized I/O is chosen at open, as in wasmtime");
    assert_eq!(values[7..10], [ok, ok, DSYNC], "append cleared, O_DSYNC kept");
}

#[test]
fn a_hard_link_follows_a_final_symlink_only_when_asked() {
    // path_filestat_get: the filetype byte is at offset 16 of the filestat.
    let filetype = |index: usize| {
        format!(
            "(call $r32 (call $path_filestat_get (i32.const 3) (i32.const 0) $S{index} (i32.const 400)))
             (call $r32 (i32.load8_u (i32.const 416)))"
        )
    };
    let values = run(
        &[("/tmp/f", b"data")],
        &["f", "tmp/l", "missing", "tmp/dangling", "tmp/hard", "tmp/hard2", "tmp/hard3"],
        &format!(
            r#"
            (call $r32 (call $path_symlink $S0 (i32.const 3) $S1))
            (call $r32 (call $path_symlink $S2 (i32.const 3) $S3))
            (call $r32 (call $path_link (i32.const 3) (i32.const 1) $S1 (i32.const 3) $S4))
            {hard}
            (call $r32 (call $path_link (i32.const 3) (i32.const 0) $S1 (i32.const 3) $S5))
            {hard2}
            (call $r32 (call $path_link (i32.const 3) (i32.const 1) $S3 (i32.const 3) $S6))
            "#,
            hard = filetype(4),
            hard2 = filetype(5),
        ),
        "/",
    );
    let (regular_file, symlink) = (4, 7);
    assert_eq!(values[0..2], [0, 0], "two symlinks made");
    assert_eq!(values[2..5], [0, 0, regular_file], "following: a new name of the file");
    assert_eq!(values[5..8], [0, 0, symlink], "not following: a new name of the link itself");
    assert_eq!(values[8], 44, "following a dangling link: ENOENT");
}

#[test]
fn times_are_kept_to_the_nanosecond_and_a_symlink_has_its_own() {
    const FSTFLAGS_MTIM: u32 = 4;
    let mtime = |index: usize, follow: u32| {
        format!(
            "(call $r32 (call $path_filestat_get (i32.const 3) (i32.const {follow}) $S{index} (i32.const 400)))
             (call $r (i64.load (i32.const 448)))"
        )
    };
    let values = run(
        &[("/tmp/f", b"data")],
        &["tmp/f", "f", "tmp/l"],
        &format!(
            r#"
            (call $r32 (call $path_filestat_set_times (i32.const 3) (i32.const 1) $S0
              (i64.const 0) (i64.const 1700000000123456789) (i32.const {FSTFLAGS_MTIM})))
            {file}
            (call $r32 (call $path_symlink $S1 (i32.const 3) $S2))
            (call $r32 (call $path_filestat_set_times (i32.const 3) (i32.const 0) $S2
              (i64.const 0) (i64.const 1600000000000000007) (i32.const {FSTFLAGS_MTIM})))
            {link}
            {file}
            {through_link}
            "#,
            file = mtime(0, 0),
            link = mtime(2, 0),
            through_link = mtime(2, 1),
        ),
        "/",
    );
    assert_eq!(values[0..3], [0, 0, 1_700_000_000_123_456_789], "set and read back to the nanosecond");
    assert_eq!(values[3..7], [0, 0, 0, 1_600_000_000_000_000_007], "the symlink's own time");
    assert_eq!(values[7..9], [0, 1_700_000_000_123_456_789], "its target's unchanged");
    assert_eq!(values[9..11], [0, 1_700_000_000_123_456_789], "and seen through it");
}
