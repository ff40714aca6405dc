//! Every command of the installed `@agentos-software` packages, run unchanged through the
//! protocol with a representative invocation and its expected result. This test checks them;
//! `scripts/compatibility.sh` runs it with `SECURE_EXEC_WRITE_COMPAT` set, which also writes
//! `docs/compatibility.md` (the table and the pass count) from the same cases.

use std::fmt::Write as _;

use kernel::host::package::PackageSource;
use testkit::packages::{self, PACKAGES};
use transport::packages::OsPackages;

use crate::commands::{Run, Vm};

/// Where the hand-written part of `docs/compatibility.md` starts.
const KEPT_SECTIONS: &str = "\n## WASI";

/// What a case expects.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Exit 0 with exactly this on stdout.
    Out(&'static str),
    /// Exit 0 with stdout containing this.
    Contains(&'static str),
    /// Exit 0 with something on stdout.
    Any,
    /// This exit code, whatever the output.
    Exit(i32),
    /// The package ships this name as a stub of one shared module (it answers that the command
    /// is not supported, exit 1): nothing to run here but the stub itself.
    Stub,
    /// The package's command runs another command that no published package provides: it
    /// reports that one missing (exit 127).
    Needs(&'static str),
    /// A bug in the package itself makes the command fail (exit 1) whatever runs it: what it
    /// is, and what the command says on stderr.
    PackageBug(&'static str, &'static str),
    /// Runs correctly but the result differs from Linux because of a known gap in this
    /// sidecar (exit 1): the gap, and what the command says on stderr.
    Gap(&'static str, &'static str),
}

impl Expect {
    fn holds(self, run: &Run) -> bool {
        match self {
            Expect::Out(out) => run.exit_code == 0 && run.stdout == out,
            Expect::Contains(part) => run.exit_code == 0 && run.stdout.contains(part),
            Expect::Any => run.exit_code == 0 && !run.stdout.trim().is_empty(),
            Expect::Exit(code) => run.exit_code == code,
            Expect::Stub => run.exit_code == 1 && !run.stderr.is_empty(),
            Expect::Needs(missing) => run.exit_code == 127 && run.stderr.contains(&format!("failed to run {missing}")),
            Expect::PackageBug(_, stderr) | Expect::Gap(_, stderr) => run.exit_code == 1 && run.stderr.contains(stderr),
        }
    }

    fn describe(self) -> String {
        match self {
            Expect::Out(out) => format!("`{}`", out.escape_debug()),
            Expect::Contains(part) => format!("output contains `{}`", part.escape_debug()),
            Expect::Any => "some output, exit 0".to_owned(),
            Expect::Exit(code) => format!("exit {code}"),
            Expect::Stub => "the package's stub: not supported, exit 1".to_owned(),
            Expect::Needs(missing) => format!("needs `{missing}`, which no published package provides: exit 127"),
            Expect::PackageBug(bug, _) => format!("a bug in the package: {bug}; exit 1"),
            Expect::Gap(gap, _) => format!("known gap here: {gap}; exit 1"),
        }
    }
}

/// `(command, script run by sh in /data, expectation)`. Files prepared: `a.txt`
/// (`banana apple cherry`, a line each), `b.txt` (`apple banana date`), `d/x`, `d/y`.
const CASES: &[(&str, &str, Expect)] = &[
    ("[", "[ 1 -lt 2 ] && echo yes", Expect::Out("yes\n")),
    ("arch", "arch", Expect::Any),
    (
        "b2sum",
        "printf abc | b2sum",
        Expect::Out("ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d17d87c5392aab792dc252d5de4533cc9518d38aa8dbf1925ab92386edd4009923  -\n"),
    ),
    ("base32", "printf hi | base32", Expect::Out("NBUQ====\n")),
    ("base64", "printf hi | base64", Expect::Out("aGk=\n")),
    ("basename", "basename /a/b/c.txt .txt", Expect::Out("c\n")),
    ("basenc", "printf hi | basenc --base64", Expect::Out("aGk=\n")),
    ("bash", "bash -c 'echo $((6*7))'", Expect::Out("42\n")),
    ("bc", "echo '6*7' | bc", Expect::Out("42\n")),
    ("cat", "cat a.txt", Expect::Out("banana\napple\ncherry\n")),
    ("chcon", "chcon", Expect::Stub),
    ("chgrp", "touch f1 && chgrp 1000 f1", Expect::Gap("files a guest creates are owned by root, so the guest (uid 1000) may not change them (EPERM)", "errno 63")),
    ("chmod", "touch f2 && chmod 600 f2 && stat -c %a f2", Expect::Out("600\n")),
    ("chown", "touch f3 && chown 1000:1000 f3", Expect::Gap("files a guest creates are owned by root, so the guest (uid 1000) may not change them (EPERM)", "errno 63")),
    ("chroot", "chroot", Expect::Stub),
    ("cksum", "printf abc | cksum", Expect::Out("1219131554 3\n")),
    ("cmp", "cmp a.txt a.txt && echo same", Expect::Out("same\n")),
    ("column", "printf 'a b\\nccc d\\n' | column -t", Expect::Out("a    b\nccc  d\n")),
    ("comm", "sort a.txt > s1 && sort b.txt > s2 && comm -12 s1 s2", Expect::Out("apple\nbanana\n")),
    ("cp", "cp a.txt c.txt && cat c.txt", Expect::Out("banana\napple\ncherry\n")),
    ("cut", "echo a:b:c | cut -d: -f2", Expect::Out("b\n")),
    ("date", "date -u -d @86400 +%F", Expect::Out("1970-01-02\n")),
    ("dd", "printf hello | dd bs=1 count=3 2>/dev/null", Expect::Out("hel")),
    ("df", "df / > /dev/null && echo ok", Expect::Out("ok\n")),
    ("dir", "dir -1 d", Expect::Out("x\ny\n")),
    ("dircolors", "dircolors -b", Expect::Contains("LS_COLORS")),
    ("dirname", "dirname /a/b/c", Expect::Out("/a/b\n")),
    ("du", "du -s d > /dev/null && echo ok", Expect::Out("ok\n")),
    ("echo", "echo hi", Expect::Out("hi\n")),
    ("env", "env -i A=1 env", Expect::Out("A=1\n")),
    ("expand", "printf 'a\\tb\\n' | expand -t 4", Expect::Out("a   b\n")),
    ("expr", "expr 6 '*' 7", Expect::Out("42\n")),
    ("factor", "factor 12", Expect::Out("12: 2 2 3\n")),
    ("false", "false", Expect::Exit(1)),
    ("findmnt", "findmnt", Expect::Exit(0)),
    ("fmt", "echo hello | fmt", Expect::Out("hello\n")),
    ("fold", "echo abcdef | fold -w 2", Expect::Out("ab\ncd\nef\n")),
    ("getent", "getent passwd root", Expect::Out("root:x:0:0:root:/root:/bin/sh\n")),
    ("groups", "groups", Expect::Stub),
    ("head", "head -n 1 a.txt", Expect::Out("banana\n")),
    ("hostid", "hostid", Expect::Out("00000000\n")),
    ("hostname", "hostname", Expect::Any),
    ("id", "id -u", Expect::Out("1000\n")),
    ("install", "install", Expect::Stub),
    ("join", "printf '1 a\\n2 b\\n' > j1 && printf '1 x\\n2 y\\n' > j2 && join j1 j2", Expect::Out("1 a x\n2 b y\n")),
    ("kill", "kill -l 9", Expect::Contains("KILL")),
    (
        "link",
        "link a.txt l1",
        Expect::PackageBug(
            "its libc keeps both paths of link() in one buffer, so it asks to link the new name to itself (ENOENT)",
            "No such file or directory",
        ),
    ),
    ("ln", "ln -s a.txt l2 && readlink l2", Expect::Out("a.txt\n")),
    ("logname", "logname", Expect::Any),
    ("ls", "ls d", Expect::Out("x\ny\n")),
    ("md5sum", "printf abc | md5sum", Expect::Out("900150983cd24fb0d6963f7d28e17f72  -\n")),
    ("mkdir", "mkdir -p m/n && test -d m/n && echo ok", Expect::Out("ok\n")),
    ("mktemp", "mktemp -d > /dev/null && echo ok", Expect::Out("ok\n")),
    ("more", "more a.txt", Expect::Out("banana\napple\ncherry\n")),
    // The package's `mount` only remounts, which needs root (EPERM here, its exit 32).
    ("mount", "mount -o remount,ro /data", Expect::Exit(32)),
    ("mv", "cp a.txt m1 && mv m1 m2 && head -n 1 m2 && test ! -e m1", Expect::Out("banana\n")),
    ("nice", "nice echo hi", Expect::Out("hi\n")),
    ("nl", "printf 'a\\nb\\n' | nl", Expect::Out("     1\ta\n     2\tb\n")),
    ("nohup", "nohup echo hi 2> /dev/null", Expect::Out("hi\n")),
    ("nproc", "nproc", Expect::Any),
    ("numfmt", "numfmt --to=iec 2048", Expect::Out("2.0K\n")),
    ("od", "printf AB | od -An -tx1", Expect::Out(" 41 42\n")),
    ("paste", "printf '1\\n2\\n' > p1 && printf 'a\\nb\\n' > p2 && paste p1 p2", Expect::Out("1\ta\n2\tb\n")),
    ("pathchk", "pathchk a/b && echo ok", Expect::Out("ok\n")),
    ("pinky", "pinky", Expect::Stub),
    ("printenv", "A=5 printenv A", Expect::Out("5\n")),
    ("printf", "printf '%03d\\n' 7", Expect::Out("007\n")),
    ("ptx", "echo 'alpha beta' | ptx", Expect::Contains("alpha")),
    ("pwd", "pwd", Expect::Out("/data\n")),
    ("readlink", "ln -s a.txt l3 && readlink l3", Expect::Out("a.txt\n")),
    ("realpath", "realpath /data/./d/../a.txt", Expect::Out("/data/a.txt\n")),
    ("rev", "echo abc | rev", Expect::Out("cba\n")),
    ("rm", "touch r1 && rm r1 && test ! -e r1 && echo ok", Expect::Out("ok\n")),
    ("rmdir", "mkdir r2 && rmdir r2 && echo ok", Expect::Out("ok\n")),
    ("runas", "runas", Expect::Exit(1)),
    ("runcon", "runcon", Expect::Stub),
    ("seq", "seq 3", Expect::Out("1\n2\n3\n")),
    ("sh", "sh -c 'echo $((1+2))'", Expect::Out("3\n")),
    ("sha1sum", "printf abc | sha1sum", Expect::Out("a9993e364706816aba3e25717850c26c9cd0d89d  -\n")),
    ("sha224sum", "printf abc | sha224sum", Expect::Out("23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7  -\n")),
    (
        "sha256sum",
        "printf abc | sha256sum",
        Expect::Out("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad  -\n"),
    ),
    (
        "sha384sum",
        "printf abc | sha384sum",
        Expect::Out("cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358baeca134c825a7  -\n"),
    ),
    (
        "sha512sum",
        "printf abc | sha512sum",
        Expect::Out("ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f  -\n"),
    ),
    ("shred", "printf secret > s3 && shred s3 && echo ok", Expect::Out("ok\n")),
    ("shuf", "shuf -i 1-3 | sort", Expect::Out("1\n2\n3\n")),
    ("sleep", "sleep 0.01 && echo ok", Expect::Out("ok\n")),
    ("sort", "sort a.txt", Expect::Out("apple\nbanana\ncherry\n")),
    ("split", "printf '1\\n2\\n3\\n' > sp && split -l 1 sp part && cat partab", Expect::Out("2\n")),
    ("stat", "stat -c %s a.txt", Expect::Out("20\n")),
    ("stdbuf", "stdbuf -o0 echo hi", Expect::Out("hi\n")),
    ("strings", "printf 'hello\\001\\002world\\n' | strings", Expect::Out("hello\nworld\n")),
    ("stty", "stty", Expect::Stub),
    ("su", "su", Expect::Exit(1)),
    ("sum", "printf abc | sum", Expect::Contains(" 1")),
    ("sync", "sync && echo ok", Expect::Out("ok\n")),
    ("tac", "tac a.txt", Expect::Out("cherry\napple\nbanana\n")),
    ("tail", "tail -n 1 a.txt", Expect::Out("cherry\n")),
    ("tee", "echo hi | tee t1 > /dev/null && cat t1", Expect::Out("hi\n")),
    ("test", "test 2 -gt 1 && echo yes", Expect::Out("yes\n")),
    ("timeout", "timeout 5 echo hi", Expect::Out("hi\n")),
    ("touch", "touch t2 && test -e t2 && echo ok", Expect::Out("ok\n")),
    ("tr", "echo abc | tr a-c A-C", Expect::Out("ABC\n")),
    ("true", "true", Expect::Exit(0)),
    ("truncate", "printf hello > t3 && truncate -s 2 t3 && cat t3", Expect::Out("he")),
    ("tsort", "printf 'a b\\nb c\\n' | tsort", Expect::Out("a\nb\nc\n")),
    ("tty", "tty", Expect::Stub),
    ("uname", "uname -s", Expect::Any),
    ("unexpand", "printf '        a\\n' | unexpand", Expect::Out("\ta\n")),
    ("uniq", "printf 'a\\na\\nb\\n' | uniq", Expect::Out("a\nb\n")),
    ("unlink", "touch u1 && unlink u1 && test ! -e u1 && echo ok", Expect::Out("ok\n")),
    ("uptime", "uptime", Expect::Stub),
    ("users", "users", Expect::Stub),
    ("vdir", "vdir d", Expect::Contains("x\n")),
    ("wc", "wc -l < a.txt", Expect::Out("3\n")),
    ("which", "which ls", Expect::Contains("/ls")),
    ("who", "who", Expect::Stub),
    ("whoami", "whoami", Expect::Out("user\n")),
    ("yes", "yes | head -n 2", Expect::Out("y\ny\n")),
    ("diff", "diff a.txt b.txt > /dev/null; echo $?", Expect::Out("1\n")),
    ("find", "find d -type f | sort", Expect::Out("d/x\nd/y\n")),
    ("xargs", "echo a b | xargs -n 1 echo", Expect::Out("a\nb\n")),
    ("awk", "echo a:b | awk -F: '{ print $2 }'", Expect::Out("b\n")),
    ("egrep", "egrep 'an+' a.txt", Expect::Needs("grep")),
    ("fgrep", "fgrep app a.txt", Expect::Needs("grep")),
    ("gzip", "gzip -c a.txt > a.gz && zcat a.gz | head -n 1", Expect::Out("banana\n")),
    ("gunzip", "gzip -c b.txt > b.gz && gunzip b.gz && cat b.txt | tail -n 1", Expect::Out("date\n")),
    ("zcat", "printf hello | gzip | zcat", Expect::Out("hello")),
    ("sed", "echo abc | sed s/b/X/", Expect::Out("aXc\n")),
    ("tar", "tar cf t.tar a.txt && tar tf t.tar", Expect::Out("a.txt\n")),
];

/// Every case's command, in the package that provides it.
fn commands_by_package() -> Vec<(String, String)> {
    let source = OsPackages::new();
    PACKAGES
        .iter()
        .flat_map(|name| {
            let package = source.open(&packages::root(name)).unwrap();
            package.commands.iter().map(|command| (command.name.clone(), (*name).to_owned())).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_installed_command_runs_its_representative_invocation() {
    let provided = commands_by_package();
    // Each provided command has exactly one case, and each case names a provided command.
    for (command, _) in &provided {
        assert_eq!(CASES.iter().filter(|case| case.0 == command).count(), 1, "one case for {command}");
    }
    assert_eq!(CASES.len(), provided.len());

    let mut vm = Vm::start();
    vm.write("/data/a.txt", "banana\napple\ncherry\n");
    vm.write("/data/b.txt", "apple\nbanana\ndate\n");
    assert_eq!(vm.run("mkdir", &["-p", "/data/d"]).exit_code, 0);
    vm.write("/data/d/x", "");
    vm.write("/data/d/y", "");

    let mut rows = String::new();
    let mut failed = Vec::new();
    for (command, package) in &provided {
        let Some((_, script, expect)) = CASES.iter().find(|case| case.0 == command) else { continue };
        let run = vm.sh(&format!("cd /data && {script}"));
        let passed = expect.holds(&run);
        if !passed {
            failed.push(format!("{command}: `{script}` expected {}, got {run:?}", expect.describe()));
        }
        let got = if passed { "pass".to_owned() } else { format!("**fail**: exit {}", run.exit_code) };
        let _ = writeln!(
            rows,
            "| `{command}` | {package} | `{}` | {} | {got} |",
            script.replace('|', "\\|"),
            expect.describe().replace('|', "\\|")
        );
    }
    let passed = provided.len() - failed.len();
    let gaps = CASES.iter().filter(|case| matches!(case.2, Expect::Gap(..))).count();
    let limited =
        CASES.iter().filter(|case| matches!(case.2, Expect::Stub | Expect::Needs(_) | Expect::PackageBug(..))).count();
    if let Some(path) = std::env::var_os("SECURE_EXEC_WRITE_COMPAT") {
        let doc = format!(
            "# Compatibility: the original's command packages\n\n\
             Every command of the `@agentos-software` packages `scripts/fetch-packages.sh` installs \
             ({}), run unchanged through the protocol (`sh -c` in `/data` of a VM with every package \
             loaded), with a representative invocation and its expected result. Generated by \
             `scripts/compatibility.sh` from the cases in `tests/it/compatibility.rs`, which CI runs \
             as a test.\n\n**{} of {} commands behave as they do on Linux.** Of the others, {limited} \
             cannot do more in any runtime: names the coreutils package ships as one shared stub \
             module (it reports the command as unsupported), wrappers that run a `grep` no package \
             ships, and one bug in the package's own libc; each passes when it does exactly that. \
             {gaps} are gaps of this sidecar, listed as such (the test passes when the gap shows \
             as described, so a fix makes it fail until the case is updated). {passed} of {} cases \
             pass.\n\n| command | package | invocation | expected | result |\n|---|---|---|---|---|\n{rows}",
            PACKAGES.join(", "),
            provided.len() - gaps - limited,
            provided.len(),
            provided.len(),
        );
        // The hand-written sections after the table (WASI) are kept as they are.
        let kept =
            std::fs::read_to_string(&path).ok().and_then(|old| old.find(KEPT_SECTIONS).map(|at| old[at..].to_owned()));
        std::fs::write(path, format!("{doc}{}", kept.unwrap_or_default())).unwrap();
    }
    assert!(failed.is_empty(), "{passed} of {} pass; failing:\n{}", provided.len(), failed.join("\n"));
}
