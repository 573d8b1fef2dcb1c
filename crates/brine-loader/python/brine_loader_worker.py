# Brine's Python loader worker: one of the PythonLoader-N processes.
#
# It runs Salt's own loader (salt.loader.pillars, tops, runner, ...) with
# the master's options, so that the modules Brine does not implement
# natively (custom ones in extension_modules, and Salt's own built-in
# ones) run exactly as inside Salt's master, with __opts__, __salt__,
# __grains__, __pillar__ and __context__ as Salt sets them.
#
# The ProcessManager forks this process and executes Python with this
# code; everything it needs comes in the environment:
#
#   BRINE_LOADER_LISTEN_FD  a listening unix stream socket, shared by every
#                           worker of the pool (whichever is idle accepts)
#   BRINE_STATUS_FD         the supervisor's datagram channel ("READY <pid>")
#   BRINE_LOG_FD            the MultiprocessingLoggingQueue's datagram channel
#   BRINE_CONF_FILE         the master's configuration file
#   BRINE_TITLE / BRINE_TITLE_BASE / BRINE_LOG_LEVEL
#
# Protocol, one request per connection: the worker writes a hello frame
# {"pid": <pid>} (so that a caller whose request times out can kill the
# worker that holds it), reads one request frame, writes one answer frame.
# A frame is a 4-byte big-endian length and a msgpack body. An answer is
# {"ret": <value>} or {"error": <text>}.

import copy
import logging
import os
import signal
import socket
import struct
import sys
import time
import traceback

MAX_REQUEST = 64 * 1024 * 1024
# What `ps` shows before a process's title (the master's command line).
TITLE_BASE = "salt-master"
READ_TIMEOUT = 30.0

log = logging.getLogger("brine.loader")


def _env_fd(name):
    try:
        return int(os.environ.get(name, "-1"))
    except ValueError:
        return -1


class BrineLogHandler(logging.Handler):
    """Sends each record to Brine's log writer in brine-log's datagram
    format: level, time, pid, process name, logger, line, message,
    separated by 0x1f."""

    def __init__(self, fd, process_name):
        super().__init__()
        self.sock = socket.socket(fileno=fd)
        self.process_name = process_name

    def emit(self, record):
        try:
            n = record.levelno
            level = 0 if n >= 50 else 1 if n >= 40 else 2 if n >= 30 else 3 if n >= 20 else 4 if n >= 10 else 5
            msg = record.getMessage()
            if record.exc_info:
                msg += "\n" + "".join(traceback.format_exception(*record.exc_info))
            line = "\x1f".join(
                [
                    str(level),
                    "%.6f" % record.created,
                    str(os.getpid()),
                    self.process_name,
                    record.name,
                    str(record.lineno),
                    msg.replace("\x1f", " "),
                ]
            ).encode("utf-8", "replace")
            self.sock.send(line[: 60 * 1024], socket.MSG_DONTWAIT)
        except Exception:  # pylint: disable=broad-except
            pass


def _level(name):
    levels = {
        "all": 0,
        "garbage": 1,
        "trace": 5,
        "debug": 10,
        "profile": 15,
        "info": 20,
        "warning": 30,
        "error": 40,
        "critical": 50,
        "quiet": 1000,
    }
    return levels.get(str(name).lower(), 30)


def set_title(title):
    """`<master command line> <title>` for ps, and comm `salt-master`
    (setproctitle sets comm from the title; it is put back)."""
    try:
        import setproctitle

        setproctitle.setproctitle("%s %s" % (TITLE_BASE, title))
    except ImportError:
        pass
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, b"salt-master", 0, 0, 0)  # PR_SET_NAME
    except Exception:  # pylint: disable=broad-except
        pass


def setup_process(title):
    global TITLE_BASE
    TITLE_BASE = os.environ.get("BRINE_TITLE_BASE", "salt-master")
    set_title(title)
    try:
        import ctypes

        # PR_SET_PDEATHSIG: die with the parent (the ProcessManager, or
        # the runner job's process).
        ctypes.CDLL(None).prctl(1, signal.SIGKILL, 0, 0, 0)
    except Exception:  # pylint: disable=broad-except
        pass
    log_fd = _env_fd("BRINE_LOG_FD")
    root = logging.getLogger()
    if log_fd >= 0:
        for h in list(root.handlers):
            root.removeHandler(h)
        root.addHandler(BrineLogHandler(log_fd, title))
    root.setLevel(_level(os.environ.get("BRINE_LOG_LEVEL", "warning")))


def _dumps(obj):
    try:
        import salt.payload

        return salt.payload.dumps(obj, use_bin_type=True)
    except ImportError:
        import msgpack

        return msgpack.packb(obj, use_bin_type=True, default=str)


def _loads(body):
    try:
        import salt.payload

        return salt.payload.loads(body, raw=False)
    except ImportError:
        import msgpack

        return msgpack.unpackb(body, raw=False)


def send_frame(conn, obj):
    body = _dumps(obj)
    conn.sendall(struct.pack(">I", len(body)) + body)


def recv_exact(conn, n):
    chunks = []
    while n:
        b = conn.recv(min(n, 1 << 20))
        if not b:
            raise EOFError("the caller closed the connection")
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def recv_frame(conn):
    (n,) = struct.unpack(">I", recv_exact(conn, 4))
    if n > MAX_REQUEST:
        raise ValueError("a request of %d bytes is over the limit" % n)
    return _loads(recv_exact(conn, n))


class Refused(Exception):
    """An error whose text is the whole answer (no traceback logged)."""


class Missing(Refused):
    """The module asked for is not there (Salt logs it and goes on)."""


def _loader_modules(loader):
    """The module objects a LazyLoader has loaded so far."""
    base = getattr(loader, "loaded_base_name", "salt.loaded")
    tag = getattr(loader, "tag", "")
    for name in list(getattr(loader, "loaded_modules", ())):
        for kind in ("int", "ext", "e_int"):
            mod = sys.modules.get("%s.%s.%s.%s" % (base, kind, tag, name))
            if mod is not None:
                yield mod


def _retarget(loader, opts_changes, grains, pillar=None):
    """Point a long-lived loader at one call: Salt's master builds its
    loaders afresh for each pillar compilation; Brine keeps them and
    changes, in place, what differs between two calls (the options the
    modules see, the minion's grains and pillar, a fresh __context__)."""
    loader.opts.update(opts_changes)
    for mod in _loader_modules(loader):
        mod_opts = getattr(mod, "__opts__", None)
        if isinstance(mod_opts, dict):
            mod_opts.update(opts_changes)
    pack = loader.pack
    for key, value in (("__grains__", grains), ("__pillar__", pillar)):
        if value is not None and isinstance(pack.get(key), dict):
            pack[key].clear()
            pack[key].update(value)
    if isinstance(pack.get("__context__"), dict):
        pack["__context__"].clear()


def _inner(loader):
    """The LazyLoader itself, or the one behind Salt's FilterDictWrapper
    (whose _dict is the loader; a LazyLoader's own _dict is a dict)."""
    inner = getattr(loader, "_dict", None)
    return inner if hasattr(inner, "pack") else loader


class Loaders:
    def __init__(self, opts):
        self.opts = opts
        self._pillar = None
        self._tops = None
        self._runner = None
        self._returners = None
        self._pillar_render = None
        self._cache = None
        self._wheel = None
        self._auth = None

    def pillar(self):
        if self._pillar is None:
            import salt.loader

            opts = copy.deepcopy(self.opts)
            opts["file_client"] = "local"
            opts["grains"] = {}
            opts.setdefault("pillar", {})
            utils = salt.loader.utils(opts)
            functions = salt.loader.minion_mods(opts, utils=utils)
            ext_opts = copy.deepcopy(opts)
            ext_opts["id"] = self.opts.get("id")
            pillars = salt.loader.pillars(ext_opts, functions)
            self._pillar = (functions, pillars)
        return self._pillar

    def tops(self):
        if self._tops is None:
            import salt.loader

            self._tops = salt.loader.tops(self.opts)
        return self._tops

    def runner(self):
        if self._runner is None:
            import salt.loader

            self._runner = salt.loader.runner(self.opts, utils=salt.loader.utils(self.opts))
        return self._runner


    def returners(self):
        if self._returners is None:
            import salt.loader

            # As Salt's MasterMinion: the execution modules the returners
            # call as __salt__, with the master's options.
            opts = copy.deepcopy(self.opts)
            opts.setdefault("grains", {})
            utils = salt.loader.utils(opts)
            functions = salt.loader.minion_mods(opts, utils=utils)
            self._returners = salt.loader.returners(opts, functions)
        return self._returners


    def pillar_render(self):
        """The execution modules and renderers of Salt's Pillar (built
        with its __gen_opts: the local file client, the minion's grains
        and id), kept and retargeted for each request."""
        if self._pillar_render is None:
            import salt.loader

            opts = copy.deepcopy(self.opts)
            opts["file_client"] = "local"
            opts["grains"] = {}
            opts["pillar"] = {}
            utils = salt.loader.utils(opts)
            functions = salt.loader.minion_mods(opts, utils=utils)
            rend = salt.loader.render(copy.deepcopy(opts), functions)
            self._pillar_render = (functions, rend)
        return self._pillar_render


    def cache(self):
        """Salt's minion data cache (salt.cache.Cache: the `cache` driver,
        with its init_kwargs), kept."""
        if self._cache is None:
            import salt.cache

            self._cache = salt.cache.Cache(copy.deepcopy(self.opts))
        return self._cache


    def wheel(self):
        if self._wheel is None:
            import salt.loader

            self._wheel = salt.loader.wheels(self.opts)
        return self._wheel


    def auth(self):
        if self._auth is None:
            import salt.loader

            self._auth = salt.loader.auth(self.opts)
        return self._auth


def do_eauth(loaders, req):
    """Salt's LoadAuth.time_auth and get_groups for one eauth load: the
    backend's auth(...) with the load's arguments it takes, then its
    groups(...) if it has one."""
    import salt.auth
    import salt.utils.args

    auth = loaders.auth()
    load = req.get("load") or {}
    eauth = load.get("eauth")
    fstr = "%s.auth" % eauth
    if fstr not in auth:
        raise Missing("The eauth system %s is not available" % eauth)
    fcall = salt.utils.args.format_call(auth[fstr], load, expected_extra_kws=salt.auth.AUTH_INTERNAL_KEYWORDS)
    try:
        ok = bool(auth[fstr](*fcall["args"], **fcall["kwargs"]))
    except Exception as exc:  # pylint: disable=broad-except
        log.error("Authentication function threw %s", exc, exc_info=True)
        ok = False
    groups = None
    gstr = "%s.groups" % eauth
    if ok and gstr in auth:
        gcall = salt.utils.args.format_call(auth[gstr], load, expected_extra_kws=salt.auth.AUTH_INTERNAL_KEYWORDS)
        try:
            groups = auth[gstr](*gcall["args"], **gcall["kwargs"])
        except Exception as exc:  # pylint: disable=broad-except
            log.error("Group lookup for %s failed: %s", load.get("username"), exc)
    return {"auth": ok, "groups": list(groups) if isinstance(groups, (list, tuple, set)) else None}


def do_wheel(loaders, req):
    """A wheel function as Salt's WheelClient.low calls it: {return,
    success}, an exception answered with its traceback."""
    wheels = loaders.wheel()
    fun = req["fun"]
    if fun not in wheels:
        raise Missing("'%s' is not available." % fun)
    func = wheels[fun]
    args = list(req.get("arg") or [])
    kwargs = _accepted_kwargs(func, dict(req.get("kwarg") or {}))
    try:
        try:
            return {"return": func(*args, **kwargs), "success": True}
        except TypeError as exc:
            return {"return": "\nPassed invalid arguments: {}\n\nUsage:\n{}".format(exc, func.__doc__), "success": False}
    except Exception:  # pylint: disable=broad-except
        log.error("wheel %s raised", fun, exc_info=True)
        return {"return": "Exception occurred in wheel %s: %s" % (fun, traceback.format_exc()), "success": False}


def do_cache(loaders, req):
    """One operation of the minion data cache's driver."""
    cache = loaders.cache()
    op = req.get("op")
    bank = req.get("bank")
    if op == "store":
        return cache.store(bank, req.get("key"), req.get("data"))
    if op == "fetch":
        return cache.fetch(bank, req.get("key"))
    if op == "flush":
        return cache.flush(bank, req.get("key"))
    if op == "list":
        return cache.list(bank)
    if op == "contains":
        return cache.contains(bank, req.get("key"))
    raise Refused("unknown cache operation %r" % (op,))


def _pillar_context(loaders, req):
    """The pillar loaders, pointed at the request's minion."""
    functions, rend = loaders.pillar_render()
    grains = req.get("grains") or {}
    pillar = req.get("pillar") or {}
    changes = {
        "id": req.get("minion_id"),
        "minion_id": req.get("minion_id"),
        "grains": grains,
        "pillar": pillar,
        "saltenv": req.get("saltenv"),
        "pillarenv": req.get("pillarenv"),
    }
    _retarget(functions, changes, grains, pillar)
    _retarget(_inner(rend), changes, grains, pillar)
    return functions, rend


def do_render(loaders, req):
    """One stage of a render pipe (salt.template.compile_template) with a
    renderer Brine does not have: the text or data before it, the answer
    as {"text": ...} or {"data": ...}."""
    import io

    _, rend = _pillar_context(loaders, req)
    name = req["renderer"]
    if name not in rend:
        raise Missing("The renderer %s is not available" % name)
    data = req.get("data")
    if isinstance(data, str):
        data = io.StringIO(data)
    kwargs = dict(req.get("context") or {})
    kwargs.update(renderers=rend, tmplpath=req.get("path"))
    if req.get("pillar_render"):
        kwargs["_pillar_rend"] = True
    if req.get("argline"):
        kwargs["argline"] = req["argline"]
    ret = rend[name](data, req.get("saltenv") or "base", req.get("sls") or "", **kwargs)
    if hasattr(ret, "read"):
        ret = ret.read()
    if isinstance(ret, bytes):
        ret = ret.decode()
    return {"text": ret} if isinstance(ret, str) else {"data": ret}


def do_decrypt_pillar(loaders, req):
    """Salt's Pillar.decrypt_pillar for a compiled pillar: each key
    `decrypt_pillar` names, through its renderer (decrypt_pillar_default
    when it names none); answers the pillar and the errors."""
    import salt.utils.crypt
    import salt.utils.data

    _, rend = _pillar_context(loaders, req)
    opts = loaders.opts
    pillar = req.get("pillar") or {}
    conf = opts.get("decrypt_pillar")
    if not isinstance(conf, dict):
        conf = salt.utils.data.repack_dictlist(conf)
    errors = []
    if not conf:
        errors.append("decrypt_pillar config option is malformed")
    delim = opts.get("decrypt_pillar_delimiter", ":")
    for key, renderer in (conf or {}).items():
        value = salt.utils.data.traverse_dict(pillar, key, default=None, delimiter=delim)
        if value is None:
            log.debug("Pillar key %s not present", key)
            continue
        try:
            clear = salt.utils.crypt.decrypt(
                value,
                renderer or opts.get("decrypt_pillar_default", "gpg"),
                renderers=rend,
                opts=opts,
                valid_rend=opts.get("decrypt_pillar_renderers", ["gpg"]),
            )
        except Exception as exc:  # pylint: disable=broad-except
            msg = "Failed to decrypt pillar key '%s': %s" % (key, exc)
            errors.append(msg)
            log.error(msg, exc_info=True)
            continue
        parent, _, child = key.rpartition(delim)
        holder = pillar if not parent else salt.utils.data.traverse_dict(pillar, parent, default=None, delimiter=delim)
        if isinstance(holder, dict):
            holder[child] = clear
    return {"pillar": pillar, "errors": errors}


def do_execution(loaders, req):
    """salt['mod.fun'](...) in a pillar template, for a function Brine
    does not have: Salt's execution module on the master, as Salt's
    Pillar loads them for the minion."""
    functions, _ = _pillar_context(loaders, req)
    fun = req["fun"]
    if fun not in functions:
        raise Missing("'%s' is not available." % fun)
    return functions[fun](*(req.get("args") or []), **(req.get("kwargs") or {}))


def do_ext_pillar(loaders, req):
    import salt.utils.args

    functions, pillars = loaders.pillar()
    key = req["module"]
    minion_id = req["minion_id"]
    grains = req.get("grains") or {}
    pillar = req.get("pillar") or {}
    val = req.get("val")
    extra = req.get("extra_minion_data") or {}
    changes = {
        "saltenv": req.get("saltenv"),
        "pillarenv": req.get("pillarenv"),
        "minion_id": minion_id,
        "grains": grains,
    }
    _retarget(functions, dict(changes, id=minion_id), grains)
    _retarget(_inner(pillars), changes, grains)
    if key not in pillars:
        raise Missing("Specified ext_pillar interface %s is unavailable" % key)
    fun = pillars[key]
    # Salt's Pillar._external_pillar_data.
    args = salt.utils.args.get_function_argspec(fun).args
    kw = {"extra_minion_data": extra} if ("extra_minion_data" in args and extra) else {}
    if isinstance(val, dict):
        return fun(minion_id, pillar, **dict(val, **kw))
    if isinstance(val, list):
        return fun(minion_id, pillar, *val, **kw)
    return fun(minion_id, pillar, val, **kw)


def do_master_tops(loaders, req):
    import salt.utils.dictupdate

    tops = loaders.tops()
    _retarget(_inner(tops), {}, None)
    minion_opts = req.get("opts") or {}
    grains = minion_opts.get("grains", {}) if isinstance(minion_opts, dict) else {}
    ret = {}
    # Salt's RemoteFuncs._master_tops: every configured tops module, a
    # failing one logged and skipped.
    configured = loaders.opts.get("master_tops") or {}
    for fun in tops:
        if fun not in configured:
            continue
        try:
            ret = salt.utils.dictupdate.merge(ret, tops[fun](opts=minion_opts, grains=grains), merge_lists=True)
        except Exception as exc:  # pylint: disable=broad-except
            log.error("Top function %s failed with error %s for minion %s", fun, exc, req.get("minion_id"))
    return ret


def _accepted_kwargs(func, kwargs):
    """Salt's runner clients drop the keyword arguments a function does
    not take (load_args_and_kwargs with ignore_invalid), with a warning."""
    import salt.utils.args

    spec = salt.utils.args.get_function_argspec(func)
    if spec.keywords:
        return kwargs
    known = set(spec.args)
    dropped = sorted(k for k in kwargs if k not in known)
    if dropped:
        log.warning("Ignoring invalid keyword arguments %s for %s", ", ".join(dropped), getattr(func, "__name__", func))
    return {k: v for k, v in kwargs.items() if k in known}


def do_runner(loaders, req):
    """A runner function as Salt's RunnerClient.low calls it: __jid__,
    __user__, __tag__ and __jid_event__ (progress events on the job's
    tag) in the module's globals. Answers {return, success}: success is
    false when the runner set __context__["retcode"]."""
    import weakref

    import salt.utils.event

    if isinstance(req.get("opts"), dict) and loaders._runner is None:
        # A peer's runner sees the minion's id (RemoteFuncs.minion_runner).
        loaders.opts = dict(loaders.opts, **req["opts"])
    runners = loaders.runner()
    fun = req["fun"]
    if fun not in runners:
        raise Missing("'%s' is not available." % fun)
    jid = req.get("jid")
    tag = req.get("tag") or "salt/run/%s" % jid
    event = salt.utils.event.get_master_event(loaders.opts, loaders.opts["sock_dir"], listen=False)
    namespaced = salt.utils.event.NamespacedEvent(event, tag)
    globals_ = {
        "__jid__": jid,
        "__user__": req.get("user"),
        "__tag__": tag,
        "__jid_event__": weakref.proxy(namespaced),
    }
    done = set()
    for name in list(runners.keys()):
        mod = name.split(".", 1)[0]
        if mod in done:
            continue
        done.add(mod)
        func_globals = getattr(runners[name], "__globals__", None)
        if func_globals is not None:
            func_globals.update(globals_)
    func = runners[fun]
    args = list(req.get("arg") or [])
    kwargs = _accepted_kwargs(func, dict(req.get("kwarg") or {}))
    context = _inner(runners).pack.get("__context__")
    try:
        try:
            ret = func(*args, **kwargs)
        except TypeError as exc:
            # SyncClientMixin.low: a call that does not fit the function.
            ret = "\nPassed invalid arguments: {}\n\nUsage:\n{}".format(exc, func.__doc__)
        retcode = context.get("retcode", 0) if isinstance(context, dict) else 0
        return {"return": ret, "success": retcode == 0}
    except Exception:  # pylint: disable=broad-except
        # Salt's SyncClientMixin.low answers with the traceback.
        log.error("%s: runner %s raised", "runner", fun, exc_info=True)
        raise Refused("Exception occurred in runner %s: %s" % (fun, traceback.format_exc()))
    finally:
        event.destroy()


def _returner_call(returners, call):
    fun = call.get("fun") or ""
    if fun not in returners:
        name, _, function = fun.partition(".")
        raise Missing("Returner '%s' does not support function %s" % (name, function))
    return returners[fun](*(call.get("args") or []), **(call.get("kwargs") or {}))


def do_returner(loaders, req):
    """One returner function (a read: get_load, get_jid, get_jids, ...)."""
    return _returner_call(loaders.returners(), req)


def do_returner_batch(loaders, req):
    """Writes in order (prep_jid, save_load, returner, event_return, ...),
    each failure logged as Salt's master logs it and the others done;
    answers how many failed and the first error."""
    returners = loaders.returners()
    failed = 0
    first = None
    for call in req.get("calls") or []:
        try:
            _returner_call(returners, call)
        except Missing as exc:
            log.error("%s", exc)
            failed += 1
            first = first or str(exc)
        except Exception as exc:  # pylint: disable=broad-except
            log.critical(
                "The specified '%s' returner threw a stack trace",
                (call.get("fun") or "").partition(".")[0],
                exc_info=True,
            )
            failed += 1
            first = first or "%s: %s" % (type(exc).__name__, exc)
    return {"failed": failed, "error": first}


def do_runner_doc(loaders, req):
    """Salt's RunnerClient.get_docs: the runner functions `arg` names (all
    for none, a glob with *, else the function and its module's), their
    docstrings with Salt's strip_rst."""
    import fnmatch

    import salt.utils.doc

    runners = loaders.runner()
    arg = req.get("arg") or ""
    prefix = arg if arg.endswith(".") else arg + "."
    docs = {}
    for name in list(runners.keys()):
        if not arg or (fnmatch.fnmatch(name, arg) if "*" in arg else (name == arg or name.startswith(prefix))):
            docs[name] = runners[name].__doc__
    return salt.utils.doc.strip_rst(docs)


def do_has(loaders, req):
    kind = req.get("type")
    name = req.get("name")
    if kind == "pillar":
        return name in loaders.pillar()[1]
    if kind == "tops":
        return name in loaders.tops()
    if kind == "runner":
        return name in loaders.runner()
    if kind == "returner":
        return name in loaders.returners()
    raise Refused("unknown module type %r" % kind)


HANDLERS = {
    "ext_pillar": do_ext_pillar,
    "master_tops": do_master_tops,
    "runner": do_runner,
    "returner": do_returner,
    "render": do_render,
    "cache": do_cache,
    "wheel": do_wheel,
    "eauth": do_eauth,
    "execution": do_execution,
    "decrypt_pillar": do_decrypt_pillar,
    "returner_batch": do_returner_batch,
    "runner_doc": do_runner_doc,
    "has": do_has,
    "ping": lambda loaders, req: {"pid": os.getpid(), "salt": __import__("salt.version").version.__version__},
}


def serve(listener, loaders, title, broken):
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        with conn:
            try:
                conn.settimeout(READ_TIMEOUT)
                send_frame(conn, {"pid": os.getpid()})
                req = recv_frame(conn)
                conn.settimeout(None)
            except Exception as exc:  # pylint: disable=broad-except
                log.warning("%s: a request could not be read: %s", title, exc)
                continue
            answer = handle(loaders, req, title, broken)
            try:
                send_frame(conn, answer)
            except TypeError as exc:
                send_frame(conn, {"error": "the answer cannot be serialized: %s" % exc})
            except OSError as exc:
                log.warning("%s: the caller went away: %s", title, exc)


def handle(loaders, req, title, broken):
    """The answer to one request."""
    kind = req.get("kind") if isinstance(req, dict) else None
    handler = HANDLERS.get(kind)
    started = time.time()
    try:
        if broken is not None:
            raise Refused(broken)
        if handler is None:
            raise Refused("unknown request kind %r" % (kind,))
        answer = {"ret": handler(loaders, req)}
    except Missing as exc:
        answer = {"error": str(exc), "missing": True}
    except Refused as exc:
        answer = {"error": str(exc)}
    except Exception as exc:  # pylint: disable=broad-except
        # str(exc), as Salt puts a module's exception in its answers (the
        # pillar's _errors), and the traceback, which the caller logs once
        # with its own words for the failure (here only at debug level).
        log.debug("%s: %s raised %s: %s", title, kind, type(exc).__name__, exc, exc_info=True)
        answer = {"error": str(exc), "exc_type": type(exc).__name__, "traceback": traceback.format_exc()}
    log.debug("%s: %s answered in %.3f s", title, kind, time.time() - started)
    return answer


def one_shot(loaders, title, broken):
    """BRINE_LOADER_ONESHOT: one request on stdin, its answer on stdout
    (a runner job's own Python, so that a long runner holds no worker of
    the pool)."""
    stdin = os.fdopen(0, "rb", buffering=0)
    (n,) = struct.unpack(">I", stdin.read(4))
    if n > MAX_REQUEST:
        raise ValueError("a request of %d bytes is over the limit" % n)
    body = b""
    while len(body) < n:
        chunk = stdin.read(n - len(body))
        if not chunk:
            raise EOFError("the request was cut short")
        body += chunk
    answer = handle(loaders, _loads(body), title, broken)
    try:
        out = _dumps(answer)
    except TypeError as exc:
        out = _dumps({"error": "the answer cannot be serialized: %s" % exc})
    stdout = os.fdopen(1, "wb", buffering=0)
    stdout.write(struct.pack(">I", len(out)) + out)
    stdout.flush()
    return 0


def _report_ready(status_fd, title):
    if status_fd < 0:
        return
    status = socket.socket(fileno=status_fd)
    try:
        status.send(b"READY %d" % os.getpid())
    except OSError as exc:
        log.warning("%s: cannot report to the supervisor: %s", title, exc)


def run_engine(opts, spec, title, status_fd):
    """BRINE_LOADER_ENGINE: one engine of `engines:`, as Salt's
    start_engines and Engine.run run it: the loaders made in this process,
    `engine_module` honoured, the process titled as Salt titles it, and
    the engine's start(**opts) called; when it returns, the process ends
    and the ProcessManager starts it again."""
    import salt.loader

    name = spec["name"]
    engine_opts = dict(spec.get("opts") or {})
    if "engine_module" in engine_opts:
        fun = "%s.start" % engine_opts.pop("engine_module")
        engine_name = name
    else:
        fun = "%s.start" % name
        engine_name = None
    utils = salt.loader.utils(opts)
    runners = salt.loader.runner(opts, utils=utils)
    funcs = salt.loader.minion_mods(opts, utils=utils)
    engines = salt.loader.engines(opts, funcs, runners, utils)
    if fun not in engines:
        # Salt skips an engine it cannot load; Brine says so, once, and
        # keeps the process idle so that it is not respawned in a loop.
        log.error("%s: engine %s is not available (no %s in Salt's engines loader)", title, name, fun)
        _report_ready(status_fd, title)
        while True:
            signal.pause()
    start = engines[fun]
    proc_name = "Engine(%s%s)" % (start.__module__, ", name=%s" % engine_name if engine_name else "")
    set_title(proc_name)
    _report_ready(status_fd, title)
    log.info("Starting Engine %s", proc_name)
    start(**engine_opts)
    return 0


def main():
    title = os.environ.get("BRINE_TITLE", "PythonLoader")
    oneshot = os.environ.get("BRINE_LOADER_ONESHOT") == "1"
    setup_process(title)
    listen_fd = _env_fd("BRINE_LOADER_LISTEN_FD")
    status_fd = _env_fd("BRINE_STATUS_FD")
    conf_file = os.environ.get("BRINE_CONF_FILE", "/etc/salt/master")
    engine = os.environ.get("BRINE_LOADER_ENGINE")
    for name in list(os.environ):
        if name.startswith("BRINE_"):
            del os.environ[name]
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    loaders = None
    broken = None
    try:
        import salt.config
        import salt.loader  # noqa: F401
        import salt.payload  # noqa: F401

        opts = salt.config.master_config(conf_file)
        opts["__role"] = "master"
        loaders = Loaders(opts)
    except Exception as exc:  # pylint: disable=broad-except
        # Stay up and say why to every caller: a worker that exits would
        # be respawned into the same failure.
        broken = "Salt cannot load %s: %s: %s" % (conf_file, type(exc).__name__, exc)
        log.error("%s: %s", title, broken, exc_info=True)
    if oneshot:
        return one_shot(loaders, title, broken)
    if engine is not None:
        if broken is not None:
            _report_ready(status_fd, title)
            while True:
                signal.pause()
        import json

        return run_engine(loaders.opts, json.loads(engine), title, status_fd)
    listener = socket.socket(fileno=listen_fd)
    _report_ready(status_fd, title)
    serve(listener, loaders, title, broken)
    return 0


sys.exit(main())
