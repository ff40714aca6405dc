/*
 * The `node` command: QuickJS-NG embedded in a WASI program, plus the native calls our
 * JavaScript layer (runtime-js/lib) builds the Node.js builtins on.
 *
 * Everything outside the interpreter goes through WASI calls served by the sidecar's kernel:
 * files, clocks, randomness, the environment, standard streams. This file only adapts them to
 * JavaScript values; what they mean (errors as Node's `SystemError`s, streams, modules) is the
 * JavaScript layer's. A native call returns a negative errno instead of throwing, so the layer
 * decides how each error surfaces.
 *
 * Start: a WASI reactor. `boot` runs the bundled layer (`node_bootstrap_bytecode`, compiled at
 * build time) as a script with the global `__native`; it takes that object away from user code,
 * installs the globals and leaves its hooks at `__native.hooks`. That load depends on nothing of
 * the process, so it can be made once into a snapshot (`wizer.initialize`). `run` loads it when
 * the module is not such a snapshot, gives the layer the process's arguments and environment,
 * and `hooks.main()` runs the program; then the event loop below runs microtasks and asks
 * `hooks.tick()` for timers until nothing is left; `hooks.exit()` gives the status.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <wasi/api.h>
#include <wasi/libc-environ.h>

#include "quickjs.h"
#include "node_bootstrap.h"
#include "node_deps.h"

/* The interpreter's own stack bound, of the 1 MiB shadow stack the link gives: deep recursion
 * (about 2,300 JavaScript calls) throws a RangeError before either that stack or the engine's
 * native one (`maxWasmStackBytes`, 8 MiB by default; it fills about three times as fast) runs
 * out. A larger bound overflowed the native stack first. */
#define NODE_MAX_STACK_BYTES (768 * 1024)
/* The longest path a native call takes (Linux's PATH_MAX). */
#define NODE_MAX_PATH_BYTES 4096
/* Entries one readdir call returns; a directory past it is refused with EFBIG rather than
 * growing a JavaScript array without bound. */
#define NODE_MAX_DIR_ENTRIES (1 << 20)

extern char **environ;

/* The sidecar's process calls (the original's `host_process` ABI): argv and envp are
 * NUL-separated strings; every call returns a WASI errno. */
#define HOST_PROCESS(name) __attribute__((import_module("host_process"), import_name(#name)))
HOST_PROCESS(proc_spawn) uint32_t host_proc_spawn(const uint8_t *argv, uint32_t argv_len, const uint8_t *envp,
                                                  uint32_t envp_len, uint32_t stdin_fd, uint32_t stdout_fd,
                                                  uint32_t stderr_fd, const uint8_t *cwd, uint32_t cwd_len,
                                                  uint32_t *ret_pid);
HOST_PROCESS(proc_waitpid) uint32_t host_proc_waitpid(uint32_t pid, uint32_t options, uint32_t *ret_status,
                                                      uint32_t *ret_pid);
HOST_PROCESS(proc_kill) uint32_t host_proc_kill(uint32_t pid, uint32_t signal);
HOST_PROCESS(fd_pipe) uint32_t host_fd_pipe(uint32_t *ret_read_fd, uint32_t *ret_write_fd);

/* The sidecar's socket calls (the original's `host_net` ABI): addresses cross as `IP:PORT`
 * text; every call returns a WASI errno. */
#define HOST_NET(name) __attribute__((import_module("host_net"), import_name(#name)))
HOST_NET(net_socket) uint32_t host_net_socket(uint32_t domain, uint32_t type, uint32_t protocol, uint32_t *ret_fd);
HOST_NET(net_bind) uint32_t host_net_bind(uint32_t fd, const uint8_t *addr, uint32_t addr_len);
HOST_NET(net_listen) uint32_t host_net_listen(uint32_t fd, uint32_t backlog);
HOST_NET(net_accept) uint32_t host_net_accept(uint32_t fd, uint32_t *ret_fd, uint8_t *ret_addr, uint32_t *ret_addr_len);
HOST_NET(net_connect) uint32_t host_net_connect(uint32_t fd, const uint8_t *addr, uint32_t addr_len);
HOST_NET(net_send) uint32_t host_net_send(uint32_t fd, const uint8_t *buf, uint32_t len, uint32_t flags,
                                          uint32_t *ret_sent);
HOST_NET(net_recv) uint32_t host_net_recv(uint32_t fd, uint8_t *buf, uint32_t len, uint32_t flags,
                                          uint32_t *ret_received);
HOST_NET(net_close) uint32_t host_net_close(uint32_t fd);
HOST_NET(net_tls_connect) uint32_t host_net_tls_connect(uint32_t fd, const uint8_t *name, uint32_t name_len);
HOST_NET(net_poll) uint32_t host_net_poll(uint8_t *fds, uint32_t nfds, int32_t timeout_ms, uint32_t *ret_ready);
HOST_NET(net_getsockname) uint32_t host_net_getsockname(uint32_t fd, uint8_t *ret_addr, uint32_t *ret_addr_len);
HOST_NET(net_getaddrinfo) uint32_t host_net_getaddrinfo(const uint8_t *host, uint32_t host_len, const uint8_t *port,
                                                        uint32_t port_len, uint32_t family, uint8_t *ret_addr,
                                                        uint32_t *ret_addr_len);
/* Descriptors one poll watches (a server's listener and its connections, a client's sockets). */
#define NODE_MAX_POLL_FDS 1024
/* The longest address text (an IPv6 address, brackets and port) or name answer. */
#define NODE_MAX_ADDRESS_BYTES 4096

static JSValue hooks;
static int hooks_ready;

/* Linux's open(2) flag bits, which Node's fs.constants carry. */
enum {
    LINUX_O_WRONLY = 01,
    LINUX_O_RDWR = 02,
    LINUX_O_CREAT = 0100,
    LINUX_O_EXCL = 0200,
    LINUX_O_TRUNC = 01000,
    LINUX_O_APPEND = 02000,
    LINUX_O_NONBLOCK = 04000,
    LINUX_O_DIRECTORY = 0200000,
    LINUX_O_NOFOLLOW = 0400000,
    LINUX_O_SYNC = 04010000,
};

static int wasi_open_flags(int linux_flags)
{
    int flags;
    switch (linux_flags & 3) {
    case LINUX_O_WRONLY: flags = O_WRONLY; break;
    case LINUX_O_RDWR: flags = O_RDWR; break;
    default: flags = O_RDONLY; break;
    }
    if (linux_flags & LINUX_O_CREAT) flags |= O_CREAT;
    if (linux_flags & LINUX_O_EXCL) flags |= O_EXCL;
    if (linux_flags & LINUX_O_TRUNC) flags |= O_TRUNC;
    if (linux_flags & LINUX_O_APPEND) flags |= O_APPEND;
    if (linux_flags & LINUX_O_NONBLOCK) flags |= O_NONBLOCK;
    if (linux_flags & LINUX_O_DIRECTORY) flags |= O_DIRECTORY;
    if (linux_flags & LINUX_O_NOFOLLOW) flags |= O_NOFOLLOW;
    if ((linux_flags & LINUX_O_SYNC) == LINUX_O_SYNC) flags |= O_SYNC;
    return flags;
}

/* A failed call's value: the negative errno (WASI's numbering; the layer names it). */
#define errno_value() JS_NewInt32(ctx, -errno)

/* A string argument copied into `out` (at most `capacity - 1` bytes); -1 with an exception. */
static int text_arg(JSContext *ctx, JSValueConst value, char *out, size_t capacity)
{
    size_t len;
    const char *str = JS_ToCStringLen(ctx, &len, value);
    if (!str)
        return -1;
    if (len >= capacity || memchr(str, 0, len)) {
        JS_FreeCString(ctx, str);
        JS_ThrowRangeError(ctx, "argument too long or holding a NUL byte");
        return -1;
    }
    memcpy(out, str, len + 1);
    JS_FreeCString(ctx, str);
    return 0;
}

/* A path argument, copied into `out` (see text_arg). */
static int path_arg(JSContext *ctx, JSValueConst value, char out[NODE_MAX_PATH_BYTES])
{
    return text_arg(ctx, value, out, NODE_MAX_PATH_BYTES);
}

/* The bytes of a Uint8Array argument, checked against `offset` and `length`. */
static uint8_t *bytes_arg(JSContext *ctx, JSValueConst value, int64_t offset, int64_t length)
{
    size_t size;
    uint8_t *data = JS_GetUint8Array(ctx, &size, value);
    if (!data)
        return NULL;
    if (offset < 0 || length < 0 || (uint64_t)offset > size || (uint64_t)length > size - (uint64_t)offset) {
        JS_ThrowRangeError(ctx, "offset and length out of the buffer's bounds");
        return NULL;
    }
    return data + offset;
}

static JSValue native_open(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char path[NODE_MAX_PATH_BYTES];
    int32_t flags, mode;
    if (path_arg(ctx, argv[0], path) || JS_ToInt32(ctx, &flags, argv[1]) || JS_ToInt32(ctx, &mode, argv[2]))
        return JS_EXCEPTION;
    int fd = open(path, wasi_open_flags(flags), (mode_t)mode);
    return fd < 0 ? errno_value() : JS_NewInt32(ctx, fd);
}

static JSValue native_close(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    return close(fd) < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

/* read(fd, u8, offset, length, position) and write(...): position < 0 moves the file's offset. */
enum { OP_READ, OP_WRITE };

static JSValue native_transfer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int op)
{
    int32_t fd;
    int64_t offset, length, position;
    if (JS_ToInt32(ctx, &fd, argv[0]) || JS_ToInt64(ctx, &offset, argv[2]) || JS_ToInt64(ctx, &length, argv[3]) ||
        JS_ToInt64(ctx, &position, argv[4]))
        return JS_EXCEPTION;
    uint8_t *data = bytes_arg(ctx, argv[1], offset, length);
    if (!data)
        return JS_EXCEPTION;
    ssize_t n;
    if (op == OP_READ)
        n = position < 0 ? read(fd, data, (size_t)length) : pread(fd, data, (size_t)length, (off_t)position);
    else
        n = position < 0 ? write(fd, data, (size_t)length) : pwrite(fd, data, (size_t)length, (off_t)position);
    return n < 0 ? errno_value() : JS_NewInt64(ctx, n);
}

static double timespec_ms(struct timespec ts)
{
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* [dev, ino, mode, nlink, uid, gid, rdev, size, blksize, blocks, atimeMs, mtimeMs, ctimeMs] */
static JSValue stat_value(JSContext *ctx, const struct stat *st)
{
    JSValue array = JS_NewArray(ctx);
    double fields[] = {
        (double)st->st_dev, (double)st->st_ino, (double)st->st_mode, (double)st->st_nlink,
        (double)st->st_uid, (double)st->st_gid, (double)st->st_rdev, (double)st->st_size,
        (double)st->st_blksize, (double)st->st_blocks, timespec_ms(st->st_atim), timespec_ms(st->st_mtim),
        timespec_ms(st->st_ctim),
    };
    for (uint32_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        JS_SetPropertyUint32(ctx, array, i, JS_NewFloat64(ctx, fields[i]));
    return array;
}

/* stat(path, follow) */
static JSValue native_stat(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char path[NODE_MAX_PATH_BYTES];
    struct stat st;
    if (path_arg(ctx, argv[0], path))
        return JS_EXCEPTION;
    int rc = JS_ToBool(ctx, argv[1]) ? stat(path, &st) : lstat(path, &st);
    return rc < 0 ? errno_value() : stat_value(ctx, &st);
}

static JSValue native_fstat(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    struct stat st;
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    return fstat(fd, &st) < 0 ? errno_value() : stat_value(ctx, &st);
}

/* readdir(path) -> [name, type, name, type, ...]; type is d_type (DT_*). */
static JSValue native_readdir(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char path[NODE_MAX_PATH_BYTES];
    if (path_arg(ctx, argv[0], path))
        return JS_EXCEPTION;
    DIR *dir = opendir(path);
    if (!dir)
        return errno_value();
    JSValue array = JS_NewArray(ctx);
    uint32_t count = 0;
    struct dirent *entry;
    errno = 0;
    while ((entry = readdir(dir)) != NULL) {
        if (!strcmp(entry->d_name, ".") || !strcmp(entry->d_name, ".."))
            continue;
        if (count >= 2 * NODE_MAX_DIR_ENTRIES) {
            closedir(dir);
            JS_FreeValue(ctx, array);
            return JS_NewInt32(ctx, -EFBIG);
        }
        JS_SetPropertyUint32(ctx, array, count++, JS_NewString(ctx, entry->d_name));
        JS_SetPropertyUint32(ctx, array, count++, JS_NewInt32(ctx, entry->d_type));
    }
    int failed = errno;
    closedir(dir);
    if (failed) {
        JS_FreeValue(ctx, array);
        return JS_NewInt32(ctx, -failed);
    }
    return array;
}

/* path(op, path): the calls that take one path and return 0 or -errno. */
enum { OP_RMDIR, OP_UNLINK, OP_CHDIR };

static JSValue native_path_op(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int op)
{
    char path[NODE_MAX_PATH_BYTES];
    if (path_arg(ctx, argv[0], path))
        return JS_EXCEPTION;
    int rc;
    switch (op) {
    case OP_RMDIR: rc = rmdir(path); break;
    case OP_UNLINK: rc = unlink(path); break;
    default: rc = chdir(path); break;
    }
    return rc < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

static JSValue native_mkdir(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char path[NODE_MAX_PATH_BYTES];
    int32_t mode;
    if (path_arg(ctx, argv[0], path) || JS_ToInt32(ctx, &mode, argv[1]))
        return JS_EXCEPTION;
    return mkdir(path, (mode_t)mode) < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

/* Two-path calls: rename, symlink (target, path), link. */
enum { OP_RENAME, OP_SYMLINK, OP_LINK };

static JSValue native_two_paths(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int op)
{
    char from[NODE_MAX_PATH_BYTES], to[NODE_MAX_PATH_BYTES];
    if (path_arg(ctx, argv[0], from) || path_arg(ctx, argv[1], to))
        return JS_EXCEPTION;
    int rc;
    switch (op) {
    case OP_RENAME: rc = rename(from, to); break;
    case OP_SYMLINK: rc = symlink(from, to); break;
    default: rc = link(from, to); break;
    }
    return rc < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

static JSValue native_readlink(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char path[NODE_MAX_PATH_BYTES], target[NODE_MAX_PATH_BYTES];
    if (path_arg(ctx, argv[0], path))
        return JS_EXCEPTION;
    ssize_t n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return errno_value();
    return JS_NewStringLen(ctx, target, (size_t)n);
}

static JSValue native_ftruncate(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    int64_t length;
    if (JS_ToInt32(ctx, &fd, argv[0]) || JS_ToInt64(ctx, &length, argv[1]))
        return JS_EXCEPTION;
    return ftruncate(fd, (off_t)length) < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

static JSValue native_fsync(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    return fsync(fd) < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

/* utimes(path, atimeMs, mtimeMs) */
static JSValue native_utimes(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char path[NODE_MAX_PATH_BYTES];
    double atime_ms, mtime_ms;
    if (path_arg(ctx, argv[0], path) || JS_ToFloat64(ctx, &atime_ms, argv[1]) || JS_ToFloat64(ctx, &mtime_ms, argv[2]))
        return JS_EXCEPTION;
    struct timespec times[2] = {
        { (time_t)(atime_ms / 1e3), (long)((atime_ms - (double)(int64_t)(atime_ms / 1e3) * 1e3) * 1e6) },
        { (time_t)(mtime_ms / 1e3), (long)((mtime_ms - (double)(int64_t)(mtime_ms / 1e3) * 1e3) * 1e6) },
    };
    return utimensat(AT_FDCWD, path, times, 0) < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

/* access(path, mode): F_OK/R_OK/W_OK/X_OK with Linux's values, which WASI libc shares. */
static JSValue native_access(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char path[NODE_MAX_PATH_BYTES];
    int32_t mode;
    if (path_arg(ctx, argv[0], path) || JS_ToInt32(ctx, &mode, argv[1]))
        return JS_EXCEPTION;
    return access(path, mode) < 0 ? errno_value() : JS_NewInt32(ctx, 0);
}

static JSValue native_getcwd(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char cwd[NODE_MAX_PATH_BYTES];
    if (!getcwd(cwd, sizeof(cwd)))
        return errno_value();
    return JS_NewString(ctx, cwd);
}

static JSValue native_isatty(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    return JS_NewBool(ctx, isatty(fd));
}

/* now() -> the wall clock in ms; hrtime() -> the monotonic clock in ns, as a BigInt. */
static JSValue native_now(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return JS_NewFloat64(ctx, timespec_ms(ts));
}

static JSValue native_hrtime(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return JS_NewBigInt64(ctx, (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec);
}

/* sleep(ms): blocks the program (the kernel parks it) until the next timer is due. */
static JSValue native_sleep(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    double ms;
    if (JS_ToFloat64(ctx, &ms, argv[0]))
        return JS_EXCEPTION;
    if (ms > 0) {
        struct timespec ts = { (time_t)(ms / 1e3), (long)((ms - (double)(int64_t)(ms / 1e3) * 1e3) * 1e6) };
        nanosleep(&ts, NULL);
    }
    return JS_UNDEFINED;
}

/* random(u8): fills it from the kernel's random source (seeded, so a run replays). */
static JSValue native_random(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    size_t size;
    uint8_t *data = JS_GetUint8Array(ctx, &size, argv[0]);
    if (!data)
        return JS_EXCEPTION;
    for (size_t done = 0; done < size;) {
        size_t chunk = size - done < 256 ? size - done : 256; /* getentropy's bound */
        if (getentropy(data + done, chunk) < 0)
            return errno_value();
        done += chunk;
    }
    return JS_NewInt32(ctx, 0);
}

static JSValue native_exit(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t code;
    if (JS_ToInt32(ctx, &code, argv[0]))
        return JS_EXCEPTION;
    _Exit(code & 0xff);
}

/* compile(source, filename, module): a script's value, or a module evaluated (its promise). */
static JSValue native_compile(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    size_t len;
    const char *source = JS_ToCStringLen(ctx, &len, argv[0]);
    if (!source)
        return JS_EXCEPTION;
    const char *filename = JS_ToCString(ctx, argv[1]);
    if (!filename) {
        JS_FreeCString(ctx, source);
        return JS_EXCEPTION;
    }
    int module = JS_ToBool(ctx, argv[2]);
    JSValue value = JS_Eval(ctx, source, len, filename,
                            module ? JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY : JS_EVAL_TYPE_GLOBAL);
    JS_FreeCString(ctx, source);
    if (module && !JS_IsException(value)) {
        JSModuleDef *def = JS_VALUE_GET_PTR(value);
        JSValue meta = JS_GetImportMeta(ctx, def);
        if (!JS_IsException(meta)) {
            char url[NODE_MAX_PATH_BYTES + 8];
            snprintf(url, sizeof(url), "file://%s", filename);
            JS_SetPropertyStr(ctx, meta, "url", JS_NewString(ctx, url));
            JS_SetPropertyStr(ctx, meta, "filename", JS_NewString(ctx, filename));
        }
        JS_FreeValue(ctx, meta);
        value = JS_EvalFunction(ctx, value);
    }
    JS_FreeCString(ctx, filename);
    return value;
}

/* Joins a JavaScript array of strings into NUL-separated bytes (each string NUL-terminated). */
static uint8_t *nul_joined(JSContext *ctx, JSValueConst array, uint32_t *out_len)
{
    int64_t count;
    if (JS_GetLength(ctx, array, &count) || count < 0)
        return NULL;
    size_t capacity = 256, len = 0;
    uint8_t *out = js_malloc(ctx, capacity);
    if (!out)
        return NULL;
    for (int64_t i = 0; i < count; i++) {
        JSValue item = JS_GetPropertyUint32(ctx, array, (uint32_t)i);
        size_t item_len;
        const char *str = JS_ToCStringLen(ctx, &item_len, item);
        JS_FreeValue(ctx, item);
        if (!str || memchr(str, 0, item_len)) {
            if (str)
                JS_FreeCString(ctx, str);
            js_free(ctx, out);
            if (str)
                JS_ThrowTypeError(ctx, "an argument or environment entry holds a NUL byte");
            return NULL;
        }
        while (len + item_len + 1 > capacity) {
            capacity *= 2;
            uint8_t *grown = js_realloc(ctx, out, capacity);
            if (!grown) {
                JS_FreeCString(ctx, str);
                js_free(ctx, out);
                return NULL;
            }
            out = grown;
        }
        memcpy(out + len, str, item_len);
        out[len + item_len] = 0;
        len += item_len + 1;
        JS_FreeCString(ctx, str);
    }
    *out_len = (uint32_t)len;
    return out;
}

/* spawn(argv, env, cwd, stdin, stdout, stderr) -> pid, or -errno. */
static JSValue native_spawn(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    uint32_t argv_len, env_len, pid = 0;
    int32_t fds[3];
    char cwd[NODE_MAX_PATH_BYTES];
    if (path_arg(ctx, argv[2], cwd))
        return JS_EXCEPTION;
    for (int i = 0; i < 3; i++)
        if (JS_ToInt32(ctx, &fds[i], argv[3 + i]))
            return JS_EXCEPTION;
    uint8_t *args = nul_joined(ctx, argv[0], &argv_len);
    if (!args)
        return JS_EXCEPTION;
    uint8_t *env = nul_joined(ctx, argv[1], &env_len);
    if (!env) {
        js_free(ctx, args);
        return JS_EXCEPTION;
    }
    uint32_t rc = host_proc_spawn(args, argv_len, env, env_len, (uint32_t)fds[0], (uint32_t)fds[1], (uint32_t)fds[2],
                                  (const uint8_t *)cwd, (uint32_t)strlen(cwd), &pid);
    js_free(ctx, args);
    js_free(ctx, env);
    return rc ? JS_NewInt32(ctx, -(int32_t)rc) : JS_NewInt64(ctx, pid);
}

/* waitpid(pid) -> [status, pid], or -errno; blocks (the kernel parks the program). */
static JSValue native_waitpid(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t pid;
    uint32_t status = 0, waited = 0;
    if (JS_ToInt32(ctx, &pid, argv[0]))
        return JS_EXCEPTION;
    uint32_t rc = host_proc_waitpid((uint32_t)pid, 0, &status, &waited);
    if (rc)
        return JS_NewInt32(ctx, -(int32_t)rc);
    JSValue pair = JS_NewArray(ctx);
    JS_SetPropertyUint32(ctx, pair, 0, JS_NewInt64(ctx, status));
    JS_SetPropertyUint32(ctx, pair, 1, JS_NewInt64(ctx, waited));
    return pair;
}

static JSValue native_kill(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t pid, signal;
    if (JS_ToInt32(ctx, &pid, argv[0]) || JS_ToInt32(ctx, &signal, argv[1]))
        return JS_EXCEPTION;
    uint32_t rc = host_proc_kill((uint32_t)pid, (uint32_t)signal);
    return JS_NewInt32(ctx, -(int32_t)rc);
}

/* pipe() -> [readFd, writeFd], or -errno. */
static JSValue native_pipe(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    uint32_t read_fd, write_fd;
    uint32_t rc = host_fd_pipe(&read_fd, &write_fd);
    if (rc)
        return JS_NewInt32(ctx, -(int32_t)rc);
    JSValue pair = JS_NewArray(ctx);
    JS_SetPropertyUint32(ctx, pair, 0, JS_NewInt64(ctx, read_fd));
    JS_SetPropertyUint32(ctx, pair, 1, JS_NewInt64(ctx, write_fd));
    return pair;
}

/* poll(fds) -> the readiness (POLLIN|POLLHUP bits) of each, blocking until one is ready. */
static JSValue native_poll(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int64_t count;
    struct pollfd fds[8];
    if (JS_GetLength(ctx, argv[0], &count))
        return JS_EXCEPTION;
    if (count < 1 || count > 8)
        return JS_ThrowRangeError(ctx, "poll takes 1 to 8 descriptors");
    for (int64_t i = 0; i < count; i++) {
        JSValue item = JS_GetPropertyUint32(ctx, argv[0], (uint32_t)i);
        int32_t fd;
        int failed = JS_ToInt32(ctx, &fd, item);
        JS_FreeValue(ctx, item);
        if (failed)
            return JS_EXCEPTION;
        fds[i].fd = fd;
        fds[i].events = POLLIN;
        fds[i].revents = 0;
    }
    if (poll(fds, (nfds_t)count, -1) < 0)
        return errno_value();
    JSValue ready = JS_NewArray(ctx);
    for (int64_t i = 0; i < count; i++)
        JS_SetPropertyUint32(ctx, ready, (uint32_t)i, JS_NewInt32(ctx, fds[i].revents));
    return ready;
}

/* dependency(name) -> the source of a bundled npm builtin (runtime-js/deps), or undefined. */
static JSValue native_dependency(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    const char *name = JS_ToCString(ctx, argv[0]);
    if (!name)
        return JS_EXCEPTION;
    JSValue found = JS_UNDEFINED;
    for (size_t i = 0; i < sizeof(node_deps) / sizeof(node_deps[0]); i++) {
        if (!strcmp(node_deps[i].name, name)) {
            found = JS_NewStringLen(ctx, (const char *)node_deps[i].source, node_deps[i].len);
            break;
        }
    }
    JS_FreeCString(ctx, name);
    return found;
}

#define WASI_RESULT(rc, value) ((rc) ? JS_NewInt32(ctx, -(int32_t)(rc)) : (value))

/* netSocket(datagram) -> fd, or -errno. A stream (TCP) socket unless `datagram`. */
static JSValue native_net_socket(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    uint32_t fd = 0;
    uint32_t rc = host_net_socket(1, JS_ToBool(ctx, argv[0]) ? 5 : 6, 0, &fd);
    return WASI_RESULT(rc, JS_NewInt64(ctx, fd));
}

/* netAddress(op, fd, "ip:port"): bind (0) or connect (1). */
static JSValue native_net_address(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int op)
{
    int32_t fd;
    char address[NODE_MAX_ADDRESS_BYTES];
    if (JS_ToInt32(ctx, &fd, argv[0]) || text_arg(ctx, argv[1], address, sizeof(address)))
        return JS_EXCEPTION;
    uint32_t len = (uint32_t)strlen(address);
    uint32_t rc = op == 0 ? host_net_bind((uint32_t)fd, (const uint8_t *)address, len)
                          : host_net_connect((uint32_t)fd, (const uint8_t *)address, len);
    return WASI_RESULT(rc, JS_NewInt32(ctx, 0));
}

/* netTls(fd, servername): TLS on a connected socket, verified for `servername` by the driver
 * (the kernel and the program see plaintext); 0 or -errno. */
static JSValue native_net_tls(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    char name[NODE_MAX_ADDRESS_BYTES];
    if (JS_ToInt32(ctx, &fd, argv[0]) || text_arg(ctx, argv[1], name, sizeof(name)))
        return JS_EXCEPTION;
    uint32_t rc = host_net_tls_connect((uint32_t)fd, (const uint8_t *)name, (uint32_t)strlen(name));
    return WASI_RESULT(rc, JS_NewInt32(ctx, 0));
}

static JSValue native_net_listen(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd, backlog;
    if (JS_ToInt32(ctx, &fd, argv[0]) || JS_ToInt32(ctx, &backlog, argv[1]))
        return JS_EXCEPTION;
    uint32_t rc = host_net_listen((uint32_t)fd, (uint32_t)backlog);
    return WASI_RESULT(rc, JS_NewInt32(ctx, 0));
}

/* netAccept(fd) -> [fd, "ip:port"], or -errno. */
static JSValue native_net_accept(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    uint32_t accepted = 0;
    uint8_t peer[NODE_MAX_ADDRESS_BYTES];
    uint32_t peer_len = sizeof(peer);
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    uint32_t rc = host_net_accept((uint32_t)fd, &accepted, peer, &peer_len);
    if (rc)
        return JS_NewInt32(ctx, -(int32_t)rc);
    JSValue pair = JS_NewArray(ctx);
    JS_SetPropertyUint32(ctx, pair, 0, JS_NewInt64(ctx, accepted));
    JS_SetPropertyUint32(ctx, pair, 1, JS_NewStringLen(ctx, (const char *)peer, peer_len < sizeof(peer) ? peer_len : 0));
    return pair;
}

/* netSend(fd, u8, offset, length) / netRecv(fd, u8, offset, length) -> bytes, or -errno. */
static JSValue native_net_transfer(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv, int receive)
{
    int32_t fd;
    int64_t offset, length;
    if (JS_ToInt32(ctx, &fd, argv[0]) || JS_ToInt64(ctx, &offset, argv[2]) || JS_ToInt64(ctx, &length, argv[3]))
        return JS_EXCEPTION;
    uint8_t *data = bytes_arg(ctx, argv[1], offset, length);
    if (!data)
        return JS_EXCEPTION;
    uint32_t done = 0;
    uint32_t rc = receive ? host_net_recv((uint32_t)fd, data, (uint32_t)length, 0, &done)
                          : host_net_send((uint32_t)fd, data, (uint32_t)length, 0, &done);
    return WASI_RESULT(rc, JS_NewInt64(ctx, done));
}

static JSValue native_net_close(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    uint32_t rc = host_net_close((uint32_t)fd);
    return WASI_RESULT(rc, JS_NewInt32(ctx, 0));
}

/* netPoll(fds, events, timeoutMs) -> revents per descriptor, or -errno; waits (parked by the
 * kernel) until one is ready or the timeout passes (-1: no timeout). */
static JSValue native_net_poll(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    static uint8_t entries[NODE_MAX_POLL_FDS * 8];
    int64_t count;
    int32_t timeout_ms;
    if (JS_GetLength(ctx, argv[0], &count) || JS_ToInt32(ctx, &timeout_ms, argv[2]))
        return JS_EXCEPTION;
    if (count < 0 || count > NODE_MAX_POLL_FDS)
        return JS_ThrowRangeError(ctx, "poll takes at most %d descriptors", NODE_MAX_POLL_FDS);
    for (int64_t i = 0; i < count; i++) {
        int32_t fd, events;
        JSValue fd_value = JS_GetPropertyUint32(ctx, argv[0], (uint32_t)i);
        JSValue events_value = JS_GetPropertyUint32(ctx, argv[1], (uint32_t)i);
        int failed = JS_ToInt32(ctx, &fd, fd_value) || JS_ToInt32(ctx, &events, events_value);
        JS_FreeValue(ctx, fd_value);
        JS_FreeValue(ctx, events_value);
        if (failed)
            return JS_EXCEPTION;
        uint8_t *entry = entries + i * 8;
        memcpy(entry, &fd, 4);
        uint16_t wanted = (uint16_t)events, none = 0;
        memcpy(entry + 4, &wanted, 2);
        memcpy(entry + 6, &none, 2);
    }
    uint32_t ready = 0;
    uint32_t rc = host_net_poll(entries, (uint32_t)count, timeout_ms, &ready);
    if (rc)
        return JS_NewInt32(ctx, -(int32_t)rc);
    JSValue revents = JS_NewArray(ctx);
    for (int64_t i = 0; i < count; i++) {
        uint16_t value;
        memcpy(&value, entries + i * 8 + 6, 2);
        JS_SetPropertyUint32(ctx, revents, (uint32_t)i, JS_NewInt32(ctx, value));
    }
    return revents;
}

/* netSockname(fd) -> "ip:port", or -errno. */
static JSValue native_net_sockname(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    int32_t fd;
    uint8_t address[NODE_MAX_ADDRESS_BYTES];
    uint32_t len = sizeof(address);
    if (JS_ToInt32(ctx, &fd, argv[0]))
        return JS_EXCEPTION;
    uint32_t rc = host_net_getsockname((uint32_t)fd, address, &len);
    return WASI_RESULT(rc, JS_NewStringLen(ctx, (const char *)address, len < sizeof(address) ? len : 0));
}

/* netResolve(host, port, family) -> the runtime's JSON answer, or -errno. */
static JSValue native_net_resolve(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    char host[NODE_MAX_ADDRESS_BYTES], port[16];
    int32_t family;
    static uint8_t answer[NODE_MAX_ADDRESS_BYTES];
    if (text_arg(ctx, argv[0], host, sizeof(host)) || text_arg(ctx, argv[1], port, sizeof(port)) ||
        JS_ToInt32(ctx, &family, argv[2]))
        return JS_EXCEPTION;
    uint32_t len = sizeof(answer);
    uint32_t rc = host_net_getaddrinfo((const uint8_t *)host, (uint32_t)strlen(host), (const uint8_t *)port,
                                       (uint32_t)strlen(port), (uint32_t)family, answer, &len);
    return WASI_RESULT(rc, JS_NewStringLen(ctx, (const char *)answer, len < sizeof(answer) ? len : 0));
}

/* promiseState(p) -> [state, result]: 0 pending, 1 fulfilled, 2 rejected (-1: not a promise). A
 * module's evaluation is a promise; without top-level await it is settled at once. */
static JSValue native_promise_state(JSContext *ctx, JSValueConst this_val, int argc, JSValueConst *argv)
{
    JSPromiseStateEnum state = JS_PromiseState(ctx, argv[0]);
    JSValue pair = JS_NewArray(ctx);
    JS_SetPropertyUint32(ctx, pair, 0, JS_NewInt32(ctx, (int32_t)state));
    JS_SetPropertyUint32(ctx, pair, 1, state == JS_PROMISE_PENDING || (int)state < 0 ? JS_UNDEFINED : JS_PromiseResult(ctx, argv[0]));
    return pair;
}

/* ES module resolution and loading go to the layer's hooks (`resolve`, `load`). */
static char *module_normalize(JSContext *ctx, const char *base, const char *name, void *opaque)
{
    JSValue resolve = JS_GetPropertyStr(ctx, hooks, "resolve");
    JSValue args[2] = { JS_NewString(ctx, base), JS_NewString(ctx, name) };
    JSValue resolved = JS_Call(ctx, resolve, hooks, 2, args);
    JS_FreeValue(ctx, resolve);
    JS_FreeValue(ctx, args[0]);
    JS_FreeValue(ctx, args[1]);
    if (JS_IsException(resolved))
        return NULL;
    const char *str = JS_ToCString(ctx, resolved);
    JS_FreeValue(ctx, resolved);
    if (!str)
        return NULL;
    char *copy = js_strdup(ctx, str);
    JS_FreeCString(ctx, str);
    return copy;
}

static JSModuleDef *module_load(JSContext *ctx, const char *name, void *opaque)
{
    JSValue load = JS_GetPropertyStr(ctx, hooks, "load");
    JSValue arg = JS_NewString(ctx, name);
    JSValue source = JS_Call(ctx, load, hooks, 1, &arg);
    JS_FreeValue(ctx, load);
    JS_FreeValue(ctx, arg);
    if (JS_IsException(source))
        return NULL;
    size_t len;
    const char *text = JS_ToCStringLen(ctx, &len, source);
    JS_FreeValue(ctx, source);
    if (!text)
        return NULL;
    JSValue compiled = JS_Eval(ctx, text, len, name, JS_EVAL_TYPE_MODULE | JS_EVAL_FLAG_COMPILE_ONLY);
    JS_FreeCString(ctx, text);
    if (JS_IsException(compiled))
        return NULL;
    JSModuleDef *def = JS_VALUE_GET_PTR(compiled);
    JSValue meta = JS_GetImportMeta(ctx, def);
    if (!JS_IsException(meta)) {
        char url[NODE_MAX_PATH_BYTES + 8];
        snprintf(url, sizeof(url), "%s%s", name[0] == '/' ? "file://" : "", name);
        JS_SetPropertyStr(ctx, meta, "url", JS_NewString(ctx, url));
        JS_SetPropertyStr(ctx, meta, "filename", JS_NewString(ctx, name));
    }
    JS_FreeValue(ctx, meta);
    JS_FreeValue(ctx, compiled); /* the module stays registered with the runtime */
    return def;
}

/* Promise rejections: the layer tracks which stay unhandled past a microtask drain. */
static void rejection_tracker(JSContext *ctx, JSValueConst promise, JSValueConst reason, bool is_handled,
                              void *opaque)
{
    if (!hooks_ready)
        return;
    JSValue track = JS_GetPropertyStr(ctx, hooks, "rejection");
    JSValue args[3] = { JS_DupValue(ctx, promise), JS_DupValue(ctx, reason), JS_NewBool(ctx, is_handled) };
    JSValue result = JS_Call(ctx, track, hooks, 3, args);
    for (int i = 0; i < 3; i++)
        JS_FreeValue(ctx, args[i]);
    JS_FreeValue(ctx, track);
    JS_FreeValue(ctx, result);
}

static JSValue string_array(JSContext *ctx, char **strings, int count)
{
    JSValue array = JS_NewArray(ctx);
    for (int i = 0; (count < 0 ? strings[i] != NULL : i < count); i++)
        JS_SetPropertyUint32(ctx, array, (uint32_t)i, JS_NewString(ctx, strings[i]));
    return array;
}

static const JSCFunctionListEntry native_funcs[] = {
    JS_CFUNC_DEF("open", 3, native_open),
    JS_CFUNC_DEF("close", 1, native_close),
    JS_CFUNC_MAGIC_DEF("read", 5, native_transfer, OP_READ),
    JS_CFUNC_MAGIC_DEF("write", 5, native_transfer, OP_WRITE),
    JS_CFUNC_DEF("stat", 2, native_stat),
    JS_CFUNC_DEF("fstat", 1, native_fstat),
    JS_CFUNC_DEF("readdir", 1, native_readdir),
    JS_CFUNC_MAGIC_DEF("rmdir", 1, native_path_op, OP_RMDIR),
    JS_CFUNC_MAGIC_DEF("unlink", 1, native_path_op, OP_UNLINK),
    JS_CFUNC_MAGIC_DEF("chdir", 1, native_path_op, OP_CHDIR),
    JS_CFUNC_DEF("mkdir", 2, native_mkdir),
    JS_CFUNC_MAGIC_DEF("rename", 2, native_two_paths, OP_RENAME),
    JS_CFUNC_MAGIC_DEF("symlink", 2, native_two_paths, OP_SYMLINK),
    JS_CFUNC_MAGIC_DEF("link", 2, native_two_paths, OP_LINK),
    JS_CFUNC_DEF("readlink", 1, native_readlink),
    JS_CFUNC_DEF("ftruncate", 2, native_ftruncate),
    JS_CFUNC_DEF("fsync", 1, native_fsync),
    JS_CFUNC_DEF("utimes", 3, native_utimes),
    JS_CFUNC_DEF("access", 2, native_access),
    JS_CFUNC_DEF("getcwd", 0, native_getcwd),
    JS_CFUNC_DEF("isatty", 1, native_isatty),
    JS_CFUNC_DEF("now", 0, native_now),
    JS_CFUNC_DEF("hrtime", 0, native_hrtime),
    JS_CFUNC_DEF("sleep", 1, native_sleep),
    JS_CFUNC_DEF("random", 1, native_random),
    JS_CFUNC_DEF("exit", 1, native_exit),
    JS_CFUNC_DEF("compile", 3, native_compile),
    JS_CFUNC_DEF("promiseState", 1, native_promise_state),
    JS_CFUNC_DEF("dependency", 1, native_dependency),
    JS_CFUNC_DEF("netSocket", 1, native_net_socket),
    JS_CFUNC_MAGIC_DEF("netBind", 2, native_net_address, 0),
    JS_CFUNC_MAGIC_DEF("netConnect", 2, native_net_address, 1),
    JS_CFUNC_DEF("netListen", 2, native_net_listen),
    JS_CFUNC_DEF("netTls", 2, native_net_tls),
    JS_CFUNC_DEF("netAccept", 1, native_net_accept),
    JS_CFUNC_MAGIC_DEF("netSend", 4, native_net_transfer, 0),
    JS_CFUNC_MAGIC_DEF("netRecv", 4, native_net_transfer, 1),
    JS_CFUNC_DEF("netClose", 1, native_net_close),
    JS_CFUNC_DEF("netPoll", 3, native_net_poll),
    JS_CFUNC_DEF("netSockname", 1, native_net_sockname),
    JS_CFUNC_DEF("netResolve", 3, native_net_resolve),
    JS_CFUNC_DEF("spawn", 6, native_spawn),
    JS_CFUNC_DEF("waitpid", 1, native_waitpid),
    JS_CFUNC_DEF("kill", 2, native_kill),
    JS_CFUNC_DEF("pipe", 0, native_pipe),
    JS_CFUNC_DEF("poll", 1, native_poll),
};

/* Calls hooks[name](arg?) and returns its value; an exception thrown out of a hook is the
 * layer's own failure, reported raw. */
static JSValue call_hook(JSContext *ctx, const char *name, int argc, JSValueConst *argv)
{
    JSValue hook = JS_GetPropertyStr(ctx, hooks, name);
    JSValue result = JS_Call(ctx, hook, hooks, argc, argv);
    JS_FreeValue(ctx, hook);
    return result;
}

/* An exception that reached the top: the layer prints it (process 'uncaughtException', or the
 * stack and status 1). */
static void report_uncaught(JSContext *ctx)
{
    JSValue error = JS_GetException(ctx);
    JSValue result = call_hook(ctx, "uncaught", 1, &error);
    JS_FreeValue(ctx, error);
    if (JS_IsException(result)) {
        fputs("node: the runtime failed while reporting an uncaught exception\n", stderr);
        _Exit(70);
    }
    JS_FreeValue(ctx, result);
}

static void run_microtasks(JSRuntime *rt)
{
    JSContext *job_ctx;
    for (;;) {
        int rc = JS_ExecutePendingJob(rt, &job_ctx);
        if (rc == 0)
            break;
        if (rc < 0)
            report_uncaught(job_ctx);
    }
}

static int32_t hook_int(JSContext *ctx, const char *name, int32_t otherwise)
{
    JSValue result = call_hook(ctx, name, 0, NULL);
    if (JS_IsException(result)) {
        report_uncaught(ctx);
        return otherwise;
    }
    int32_t value = otherwise;
    JS_ToInt32(ctx, &value, result);
    JS_FreeValue(ctx, result);
    return value;
}

/* The interpreter and the loaded layer: made once by `boot`, whether at build time (the
 * snapshot's `wizer.initialize`) or when `run` finds them missing. */
static JSRuntime *runtime;
static JSContext *context;
static JSValue native;

/* Loads the layer: the runtime, the context, the native calls, and the bundled layer run to
 * its hooks. Nothing here may depend on the process (its arguments, environment, clocks or
 * randomness): `start` in the layer reads those, after `run` gives them. 0, else a status. */
static int boot(void)
{
    runtime = JS_NewRuntime();
    if (!runtime) {
        fputs("node: cannot allocate the JavaScript runtime\n", stderr);
        return 70;
    }
    JS_SetMaxStackSize(runtime, NODE_MAX_STACK_BYTES);
    context = JS_NewContext(runtime);
    if (!context) {
        fputs("node: cannot allocate the JavaScript context\n", stderr);
        return 70;
    }
    JSContext *ctx = context;
    JS_SetModuleLoaderFunc(runtime, module_normalize, module_load, NULL);
    JS_SetHostPromiseRejectionTracker(runtime, rejection_tracker, NULL);

    JSValue global = JS_GetGlobalObject(ctx);
    native = JS_NewObject(ctx);
    JS_SetPropertyFunctionList(ctx, native, native_funcs, sizeof(native_funcs) / sizeof(native_funcs[0]));
    JS_SetPropertyStr(ctx, global, "__native", JS_DupValue(ctx, native));
    JS_FreeValue(ctx, global);

    /* The layer was compiled to bytecode at build time (runtime-js/tools/bytecode.c). */
    JSValue script = JS_ReadObject(ctx, node_bootstrap_bytecode, node_bootstrap_bytecode_len, JS_READ_OBJ_BYTECODE);
    JSValue booted = JS_IsException(script) ? script : JS_EvalFunction(ctx, script);
    hooks = JS_IsException(booted) ? JS_EXCEPTION : JS_GetPropertyStr(ctx, native, "hooks");
    JS_FreeValue(ctx, booted);
    if (JS_IsException(hooks) || !JS_IsObject(hooks)) {
        JSValue error = JS_GetException(ctx);
        const char *text = JS_ToCString(ctx, error);
        JSValue stack = JS_IsObject(error) ? JS_GetPropertyStr(ctx, error, "stack") : JS_UNDEFINED;
        const char *trace = JS_IsString(stack) ? JS_ToCString(ctx, stack) : NULL;
        fprintf(stderr, "node: the runtime failed to start: %s\n%s", text ? text : "?", trace ? trace : "");
        return 70;
    }
    hooks_ready = 1;
    return 0;
}

/* Pre-initialisation: the layer loaded once, into a snapshot every process starts from. A
 * failure traps, so no snapshot is made of it. */
__attribute__((export_name("wizer.initialize"))) void preinitialize(void)
{
    if (boot() != 0)
        __builtin_trap();
}

/* The process's arguments, from WASI (a reactor has no `main` to receive them). */
static JSValue process_argv(JSContext *ctx)
{
    __wasi_size_t count = 0, bytes = 0;
    if (__wasi_args_sizes_get(&count, &bytes) != 0)
        return JS_NewArray(ctx);
    char **argv = calloc(count + 1, sizeof(char *));
    char *buffer = malloc(bytes ? bytes : 1);
    JSValue array = JS_NewArray(ctx);
    if (argv && buffer && __wasi_args_get((uint8_t **)argv, (uint8_t *)buffer) == 0)
        for (__wasi_size_t i = 0; i < count; i++)
            JS_SetPropertyUint32(ctx, array, (uint32_t)i, JS_NewString(ctx, argv[i]));
    free(argv);
    free(buffer);
    return array;
}

/* The program: the layer (loaded now unless the snapshot holds it), the process's arguments
 * and environment given to it, `hooks.main()`, the event loop, and `hooks.exit()`'s status. */
__attribute__((export_name("run"))) int run(void)
{
    if (!hooks_ready) {
        int status = boot();
        if (status != 0)
            return status;
    }
    JSContext *ctx = context;
    /* The stack bound is measured from here, where the program's calls start (a snapshot's
     * was measured inside `wizer.initialize`). */
    JS_UpdateStackTop(runtime);
    /* The environment as this process has it (a snapshot holds the one it was made with). */
    __wasilibc_deinitialize_environ();
    __wasilibc_initialize_environ();
    JS_SetPropertyStr(ctx, native, "argv", process_argv(ctx));
    JS_SetPropertyStr(ctx, native, "env", string_array(ctx, environ, -1));

    JSValue started = call_hook(ctx, "main", 0, NULL);
    if (JS_IsException(started))
        report_uncaught(ctx);
    JS_FreeValue(ctx, started);
    /* The event loop: microtasks, then one due timer (or the wait for the next) at a time. */
    for (;;) {
        run_microtasks(runtime);
        int32_t wait_ms = hook_int(ctx, "tick", 0);
        if (wait_ms < 0)
            break;
        if (wait_ms > 0) {
            struct timespec ts = { wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    int32_t status = hook_int(ctx, "exit", 1);
    fflush(stdout);
    fflush(stderr);
    return status & 0xff;
}
