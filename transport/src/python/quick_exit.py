# Run once, when the sidecar pre-initialises its base interpreter (see `transport::python`):
# after the install's own start-up imports, it lets a process whose exit can show nothing end
# as soon as its program has, rather than tear the whole interpreter down object by object.
#
# CPython's exit (`Py_FinalizeEx`) runs atexit callbacks, flushes the standard streams, then
# collects and frees every object of every module: about three quarters of a short program's
# time, nearly all of it spent on the start-up's own objects, whose teardown nobody can see.
# What a program *can* see of it: atexit callbacks, finalizers (`__del__`, generators' and
# files' closing, which flush buffered writes), weakref callbacks, warnings and audit events
# raised on the way, trace and profile functions called by what runs, and buffered output of
# native code. So a process ends at once, with the status its program gave, only when none of
# these can happen; otherwise it exits exactly as the install's interpreter does.
#
# The check runs when the interpreter's `_reactor.run` (which runs the program, then flushes
# the standard streams) returns its status, seen through `sys.monitoring` on that one function:
# the program's own frames and stack depth are those of the install's interpreter, and a
# monitoring callback is never traced or profiled. The traces of this script a program can find:
# the monitoring tool id it holds (4, which Python names for no one), and `sys.addaudithook`
# and `gc.freeze` being Python functions (they note that a hook was added, or objects frozen
# out of the scan below, then call the builtins).


def _install():
    import _io
    import _warnings
    import _weakref
    import atexit
    import gc
    import sys

    import posix

    reactor = sys.modules["_reactor"]
    run_code = reactor.run.__code__
    add_audit_hook = sys.addaudithook
    gc_freeze = gc.freeze
    monitoring = sys.monitoring
    events = monitoring.events
    # sys.monitoring's ids 0-2 and 5 are named for debuggers, coverage, profilers, optimizers.
    tool = 4
    stdlib = sys.stdlib_module_names
    # Native modules outside the standard library (numpy, scipy, lxml, ...) may hold output in
    # C's stdio buffers, which only the interpreter's own exit flushes.
    native = frozenset(name for name in sys.builtin_module_names if name.partition(".")[0] not in stdlib)
    # Standard modules whose objects close on-disk state when freed (a database's journal).
    closing_modules = ("_sqlite3", "_dbm", "_gdbm")
    initial_filters = list(_warnings.filters)
    inert_io = (_io.StringIO, _io.BytesIO)
    proxies = (_weakref.ProxyType, _weakref.CallableProxyType)
    function_type = type(_install)
    # Weakref callbacks of the standard containers: they only drop an entry of their own.
    internal_callbacks = {
        ("_weakrefset", "WeakSet.__init__.<locals>._remove"),
        ("weakref", "WeakValueDictionary.__init__.<locals>.remove"),
        ("weakref", "WeakKeyDictionary.__init__.<locals>.remove"),
    }

    def standard_streams():
        streams = []
        for stream in (sys.__stdin__, sys.__stdout__, sys.__stderr__):
            buffer = getattr(stream, "buffer", None)
            streams += [stream, buffer, getattr(buffer, "raw", None)]
        return streams

    # The start-up's mutable classes: one that gains a finalizer later makes its frozen
    # instances (not scanned below) visible at exit. Held weakly, so a teardown frees them when
    # the install's interpreter would.
    immutable = 1 << 8
    startup = gc.get_objects()
    startup_classes = [
        _weakref.ref(o)
        for o in startup
        if isinstance(o, type) and not o.__flags__ & immutable and "__del__" not in o.__dict__
    ]
    # The start-up's own objects are not scanned at exit: none may have a finalizer but the
    # standard streams (flushed before a quick exit; they do not close their descriptors).
    streams = standard_streams()
    finalizing = [o for o in startup if not isinstance(o, type) and hasattr(type(o), "__del__")]
    state = {"audited": False, "froze": False, "off": any(not any(o is s for s in streams) for o in finalizing)}
    del startup, finalizing, streams
    if state["off"]:
        return "off: the start-up holds objects with finalizers"

    def internal_callback(callback):
        if type(callback) is function_type:
            return (callback.__module__, callback.__qualname__) in internal_callbacks
        # `abc`'s registries: a builtin `_destroy` bound to the registry's own weakref.
        self = getattr(callback, "__self__", None)
        return getattr(callback, "__name__", None) == "_destroy" and type(self) is _weakref.ReferenceType

    def streams_are_the_interpreters():
        return (
            sys.stdout is not None
            and sys.stderr is not None
            and sys.stdout is sys.__stdout__
            and sys.stderr is sys.__stderr__
        )

    def nothing_else_runs():
        if state["audited"] or sys.gettrace() is not None or sys.getprofile() is not None:
            return False
        if any(monitoring.get_tool(other) is not None for other in range(6) if other != tool):
            return False
        if atexit._ncallbacks() or gc.callbacks or gc.garbage or gc.get_debug():
            return False
        threading = sys.modules.get("threading")
        if threading is not None and threading._threading_atexits:
            return False
        warnings = sys.modules.get("warnings")
        filters = warnings.filters if warnings is not None else _warnings.filters
        return not sys.warnoptions and not sys.flags.dev_mode and filters == initial_filters

    def no_native_state():
        return not any(name in native or name in closing_modules for name in sys.modules)

    def no_finalizers():
        # Objects the program froze are not scanned; the interpreter unfreezes them for its exit.
        if state["froze"]:
            return False
        for ref in startup_classes:
            cls = ref()
            if cls is not None and "__del__" in cls.__dict__:
                return False
        streams = standard_streams()
        for o in gc.get_objects():
            kind = type(o)
            if isinstance(o, type):
                if hasattr(o, "__del__"):
                    return False
            elif isinstance(o, _weakref.ReferenceType):
                callback = o.__callback__
                if callback is not None and not internal_callback(callback):
                    return False
            elif kind in proxies:
                # A proxy's callback cannot be read from Python.
                return False
            elif hasattr(kind, "__del__") and kind not in inert_io and not any(o is s for s in streams):
                return False
        return True

    def on_start(code, offset):
        # The start-up's own `gc.freeze()` (right after this script) is not the program's.
        state["froze"] = False

    def on_return(code, offset, status):
        # The program is done and the standard streams flushed; the interpreter's exit is next.
        try:
            if (
                not state["off"]
                and type(status) is int
                and 0 <= status <= 255
                and streams_are_the_interpreters()
                and nothing_else_runs()
                and no_native_state()
                and no_finalizers()
            ):
                sys.stdout.flush()
                sys.stderr.flush()
                posix._exit(status)
        except Exception:
            pass

    def freeze():
        state["froze"] = True
        return gc_freeze()

    def addaudithook(hook, /):
        state["audited"] = True
        return add_audit_hook(hook)

    for wrapper, wrapped, module in ((addaudithook, add_audit_hook, "sys"), (freeze, gc_freeze, "gc")):
        wrapper.__doc__ = wrapped.__doc__
        wrapper.__module__ = module
    monitoring.use_tool_id(tool, "secure-exec quick exit")
    monitoring.register_callback(tool, events.PY_START, on_start)
    monitoring.register_callback(tool, events.PY_RETURN, on_return)
    monitoring.set_local_events(tool, run_code, events.PY_START | events.PY_RETURN)
    sys.addaudithook = addaudithook
    gc.freeze = freeze
    return "installed"


_quick_exit = _install()
del _install
