"""Seed inputs for the fuzz targets: one well-formed request of each kind a
peer can send, so that libFuzzer starts from loads that reach each command
instead of having to guess their names. Run with any Python that has
msgpack (the venvs scripts/salt-venv builds do):

    python3 fuzz/seeds.py fuzz/corpus

Writes <corpus>/<target>/seed-<name> files; libFuzzer grows the corpus
from there (scripts/fuzz)."""

import os
import sys

import msgpack


def pack(v):
    return msgpack.packb(v, use_bin_type=True)


FILE = {"path": "web/init.sls", "saltenv": "base", "loc": 0}
AES = {
    "pillar": {"cmd": "_pillar", "saltenv": "base", "pillarenv": None, "grains": {"os": "Debian"}, "ver": "2"},
    "return": {"cmd": "_return", "jid": "20250101000000000001", "fun": "test.ping", "return": True, "retcode": 0, "success": True},
    "syndic_return": {"cmd": "_syndic_return", "jid": "20250101000000000001", "return": {"other": True}},
    "minion_event": {"cmd": "_minion_event", "events": [{"tag": "salt/beacon/fuzzer/x", "data": {"a": 1}}], "pretag": "salt"},
    "minion_event_tag": {"cmd": "_minion_event", "tag": "custom/tag", "data": {"a": 1}},
    "mine": {"cmd": "_mine", "data": {"network.ip_addrs": ["10.0.0.1"]}, "clear": False},
    "mine_get": {"cmd": "_mine_get", "tgt": "web* and G@os:Debian", "fun": "network.ip_addrs", "tgt_type": "compound"},
    "mine_delete": {"cmd": "_mine_delete", "fun": "network.ip_addrs"},
    "mine_flush": {"cmd": "_mine_flush"},
    "master_opts": {"cmd": "_master_opts", "env_only": True},
    "master_tops": {"cmd": "_master_tops", "opts": {}},
    "file_envs": {"cmd": "_file_envs"},
    "file_list": {"cmd": "_file_list", "saltenv": "base", "prefix": "web"},
    "file_list_emptydirs": {"cmd": "_file_list_emptydirs", "saltenv": "base", "prefix": ""},
    "dir_list": {"cmd": "_dir_list", "saltenv": "base", "prefix": ""},
    "symlink_list": {"cmd": "_symlink_list", "saltenv": "base", "prefix": ""},
    "file_find": dict(FILE, cmd="_file_find"),
    "file_hash": dict(FILE, cmd="_file_hash"),
    "file_hash_and_stat": dict(FILE, cmd="_file_hash_and_stat"),
    "serve_file": dict(FILE, cmd="_serve_file", gzip=1),
    "file_recv": {"cmd": "_file_recv", "path": ["var", "log", "x.log"], "loc": 0, "size": 3, "data": b"abc"},
    "minion_runner": {"cmd": "minion_runner", "fun": "manage.up", "arg": []},
    "minion_pub": {"cmd": "minion_pub", "tgt": "web*", "fun": "test.ping", "arg": [], "tgt_type": "glob", "ret": "", "tmo": 5},
    "minion_publish": {"cmd": "minion_publish", "tgt": "web*", "fun": "test.ping", "arg": [], "tgt_type": "glob", "ret": "", "tmo": 5},
    "pub_ret": {"cmd": "pub_ret", "jid": "20250101000000000001"},
    "revoke_auth": {"cmd": "revoke_auth"},
}
CLEAR = {
    "auth": {"enc": "clear", "version": 3, "load": {"cmd": "_auth", "id": "m1", "pub": "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----\n", "nonce": "0123456789abcdef0123456789abcdef", "token": b"x"}},
    "publish": {"enc": "clear", "version": 3, "load": {"cmd": "publish", "tgt": "*", "fun": "test.ping", "arg": [], "tgt_type": "glob", "key": "nope", "user": "root", "jid": "", "ret": "", "kwargs": {}}},
    "runner": {"enc": "clear", "version": 3, "load": {"cmd": "runner", "fun": "manage.up", "eauth": "auto", "username": "u", "password": "p", "kwarg": {}}},
    "wheel": {"enc": "clear", "version": 3, "load": {"cmd": "wheel", "fun": "key.list_all", "key": "nope", "user": "root"}},
    "ping": {"enc": "clear", "version": 3, "load": {"cmd": "ping", "id": "m1"}},
    "mk_token": {"enc": "clear", "version": 3, "load": {"cmd": "mk_token", "eauth": "auto", "username": "u", "password": "p"}},
    "aes": {"enc": "aes", "version": 3, "id": "fuzzer", "load": b"\x00" * 48},
}
TARGETS = [
    (0, b"web*"), (1, b"^web[0-9]$"), (2, b"web1,db1"), (3, b"os:Debian"), (4, b"os:Deb.*"),
    (5, b"role:web"), (6, b"role:w.*"), (7, b"role:web"),
    (8, b"web* and G@os:Debian or ( L@db1,web2 and not I@role:db ) or S@10.0.0.0/24 or N@webs or E@^d"),
    (10, b"webs"), (11, b"10.0.0.0/30"), (0x88, b"G@nested:a:b:1 and P@os:Red.* and J@role:web"),
]
FILES = [
    bytes([0]) + b"base\0web/init.sls", bytes([1]) + b"base\0../secret.txt", bytes([2]) + b"base\0leak",
    bytes([3]) + b"dev\0dev.sls", bytes([4]) + b"base\0\0web", bytes([5]) + b"base\0\0", bytes([6]) + b"base\0\0",
    bytes([0]) + b"base\0salt://web/files/a.conf?saltenv=dev", bytes([0]) + b"base\0|web/leak2",
]
EVENTS = [
    pack({"tag": "salt/job/1/ret/m", "data": {"a": 1}}),
    (12).to_bytes(4, "big") + b"\x82\xa3tag\xa1x\xa4data\x80"[:12] + pack({"k": 1}),
    b"x\n\n" + pack({"a": 1}),
]


def main(out):
    def write(target, name, data):
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "seed-" + name), "wb") as f:
            f.write(data)

    for name, load in AES.items():
        write("aes_request", name, pack(load))
        write("msgpack", "aes-" + name, pack(load))
    for name, env in CLEAR.items():
        write("clear_request", name, pack(env))
        write("msgpack", "clear-" + name, pack(env))
    for n, (sel, tgt) in enumerate(TARGETS):
        write("targets", str(n), bytes([sel]) + tgt)
    for n, f in enumerate(FILES):
        write("fileserver_paths", str(n), f)
    for n, e in enumerate(EVENTS):
        write("event_frames", str(n), e)


if __name__ == "__main__":
    main(sys.argv[1])
