"""Expected outputs of Salt's outputters for brine-output's tests.

Run through scripts/gen-output-fixtures (Python Salt 3007.17's venv).
Each case is an outputter, its data, the options that differ from the
master's defaults and a retcode; the file written holds each with
`salt.output.try_printout`'s text (None when the outputter printed
nothing). Data that JSON cannot hold is tagged: {"__bytes__": "hex"} is
bytes and {"__map__": [[k, v], ...]} a dict with keys of any type; the
Rust side decodes the same tags.
"""

import copy
import json
import sys

import salt.config
import salt.output


def st(mod, fun, sid, name, result, comment, changes=None, run=0, sls="web", **extra):
    key = f"{mod}_|-{sid}_|-{name}_|-{fun}"
    val = {
        "name": name,
        "result": result,
        "comment": comment,
        "changes": changes if changes is not None else {},
        "__id__": sid,
        "__sls__": sls,
        "__run_num__": run,
        "start_time": f"12:00:0{run}.123456",
        "duration": 1.5 + run * 10.25,
    }
    val.update(extra)
    return key, val


def states(*entries):
    return dict(entries)


DIFF = "--- \n+++ \n@@ -1,2 +1,2 @@\n-old line\n+new line\n keep\n"

success = states(
    st("file", "managed", "motd", "/etc/motd", True, "File /etc/motd updated", {"diff": DIFF}, 0),
    st("pkg", "installed", "nginx", "nginx", True, "All specified packages are already installed", run=1),
    st("service", "running", "nginx-svc", "nginx", True, "The service nginx is already running", run=2),
)

failure = states(
    st("file", "managed", "conf", "/etc/app.conf", False,
       "Unable to manage file: Source file salt://app.conf not found in saltenv 'base'", run=0),
    st("cmd", "run", "exit three", "exit 3", False, 'Command "exit 3" run',
       {"pid": 4242, "retcode": 3, "stderr": "", "stdout": ""}, 1),
    st("service", "running", "app", "app", False,
       "One or more requisite failed: web.conf\nand another line", run=2, duration=0),
    st("file", "directory", "ok", "/srv", True, "Directory /srv is in the correct state", run=3),
)

testrun = states(
    st("file", "managed", "motd", "/etc/motd", None,
       "The file /etc/motd is set to be changed\nNote: No changes made, actual changes may\nbe different due to other states.",
       {"diff": "New file", "mode": "0644"}, 0),
    st("pkg", "installed", "vim", "vim", None, "The following packages would be installed: vim", run=1),
    st("file", "directory", "tmp", "/tmp", True, "The directory /tmp is in the correct state", run=2),
)

nested_changes = states(
    st("user", "present", "alice", "alice", True, "Updated user alice",
       {"groups": {"old": ["users"], "new": ["users", "wheel"]},
        "shell": {"old": "/bin/sh", "new": "/bin/bash"},
        "home": {"old": None, "new": "/home/alice"},
        "uid": 1001, "ratio": 0.25, "enabled": True,
        "notes": "line one\nline two é\n\nline four",
        "list_of_dicts": [{"a": 1, "b": [1, 2]}, {"c": None}, [3, [4]], "x"]}, 0),
    st("cmd", "run", "echo", "echo hi", True, "Command \"echo hi\" run",
       {"pid": 1, "retcode": 0, "stderr": "", "stdout": "hi"}, 1),
)

mixed = dict(success)
mixed.update(failure)
mixed.update(states(
    st("test", "nop", "nothing", "nothing", True, "Success!", run=7),
    st("test", "succeed_with_changes", "chg", "chg", None, "Would change", {"testing": {"old": "Unchanged", "new": "Something pretended to change"}}, 8),
))
# __run_num__ must be unique for a stable order.
for i, v in enumerate(mixed.values()):
    v["__run_num__"] = i

warn = states(
    st("test", "configurable_test_state", "warned", "warned", True, "Warning test", run=0,
       warnings=["This is a long warning that should be wrapped by the textwrap module because it is longer than eighty characters in total", "second"]),
)

extra_data = states(
    st("module", "run", "mod", "test.ping", True, "Module function test.ping executed", {"ret": True}, 0, data={"k": "v", "n": 2}),
    st("module", "run", "mod2", "test.ping", True, ["a", "list", "comment"], run=1, data=["x", 1]),
    st("module", "run", "mod3", "test.ping", True, 42, run=2, data="scalar"),
)

slow = states(
    st("cmd", "run", "slow", "sleep 2", True, "ran", {"retcode": 0}, 0, duration=2004.5),
    st("cmd", "run", "fast", "true", True, "ran", {"retcode": 0}, 1, duration=3.25, __parallel__=True),
    st("cmd", "run", "fast2", "true", True, "ran", {"retcode": 0}, 2, duration="7.5 ms", __parallel__=True),
)

no_profile = states(
    st("file", "managed", "a", "/a", True, "ok", {"x": 1}, 0),
)
del no_profile["file_|-a_|-/a_|-managed"]["start_time"]

orch_inner = {"m1": dict(success), "m2": dict(failure)}
orchestrate = {
    "outputter": "highstate",
    "data": {
        "brine_master": states(
            st("salt", "state", "deploy", "deploy", False, "Run failed on minions: m2",
               {"ret": copy.deepcopy(orch_inner), "out": "highstate"}, 0, sls="orch.deploy"),
            st("salt", "function", "ping", "test.ping", True, "Function ran successfully.",
               {"ret": {"m1": True, "m2": True}}, 1, sls="orch.deploy"),
        ),
        "retcode": 1,
    },
    "retcode": 1,
}

state_sls = {
    "m1": states(
        st("salt", "state", "sub", "state.sls", True, "nested run",
           {"m9": dict(testrun)}, 0),
    )
}

lookup_jid = {"20240101": {"jid": "20240101", "fun": "state.apply", "return": {"data": {"m1": dict(success)}}}}

CASES = []


def case(name, out, data, retcode=0, **opts):
    CASES.append({"name": name, "out": out, "data": data, "opts": opts, "retcode": retcode})


# highstate
case("hs_success", "highstate", {"m1": success})
case("hs_failure", "highstate", {"m1": failure}, retcode=2)
case("hs_test", "highstate", {"m1": testrun})
case("hs_nested_changes", "highstate", {"m1": nested_changes})
for mode in ["full", "terse", "mixed", "changes", "full_id", "terse_id", "mixed_id", "changes_id", "filter"]:
    case(f"hs_mode_{mode}", "highstate", {"m1": mixed}, state_output=mode,
         state_output_exclude=["True"], state_output_terse="None,False")
case("hs_filter_cli", "highstate", {"m1": mixed}, state_output="filter",
     state_output_exclude=["True"], arg=["web", {"__kwarg__": True, "exclude": "None", "terse": "True,False"}])
case("hs_filter_cli_list", "highstate", {"m1": mixed}, state_output="filter",
     arg=[{"__kwarg__": True, "exclude": ["False", True]}])
case("hs_verbose_false", "highstate", {"m1": mixed}, state_verbose=False)
case("hs_verbose_false_all_clean", "highstate",
     {"m1": states(st("test", "nop", "n", "n", True, "ok"))}, state_verbose=False)
case("hs_output_diff", "highstate", {"m1": mixed}, state_output_diff=True)
case("hs_pct", "highstate", {"m1": mixed}, state_output_pct=True)
case("hs_tabular", "highstate", {"m1": mixed}, state_output="terse", state_tabular=True)
case("hs_tabular_noprofile", "highstate", {"m1": mixed}, state_output="mixed", state_tabular=True, state_output_profile=False)
case("hs_noprofile", "highstate", {"m1": mixed}, state_output_profile=False)
case("hs_multi_minion", "highstate", {"m1": success, "m2": failure, "m3": testrun})
case("hs_warnings", "highstate", {"m1": warn})
case("hs_warnings_terse", "highstate", {"m1": warn}, state_output="terse")
case("hs_extra_data", "highstate", {"m1": extra_data})
case("hs_slow", "highstate", {"m1": slow})
case("hs_missing_start", "highstate", {"m1": no_profile})
case("hs_orchestrate", "highstate", orchestrate)
case("hs_orchestrate_data", "highstate", orchestrate["data"])
case("hs_orchestrate_terse", "highstate", orchestrate, state_output="terse")
case("hs_state_sls", "highstate", state_sls)
case("hs_lookup_jid", "highstate", lookup_jid)
case("hs_compile_error", "highstate",
     {"m1": ["Rendering SLS 'base:broken' failed: mapping values are not allowed here", "Second \x1b[31merror"]}, retcode=1)
case("hs_not_state_bool", "highstate", {"m1": True})
case("hs_not_state_str", "highstate", {"m1": "some text\nover lines"})
case("hs_not_state_dict", "highstate", {"m1": {"a": 1, "b": {"c": 2}}})
case("hs_missing_run_num", "highstate", {"m1": {"x_|-y_|-z_|-w": {"result": True, "changes": {}, "comment": "c"}}})
case("hs_none", "highstate", {"m1": None})
case("hs_list_fallback", "highstate", [1, 2, {"a": "b"}])
case("hs_int", "highstate", 5)
case("hs_str", "highstate", "just text  \n")
case("hs_missing_changes_fallback", "highstate", {"m1": {"a_|-b_|-c_|-d": {"result": True, "__run_num__": 0, "comment": "x"}}})
case("hs_invalid_changes", "highstate", {"m1": states(st("a", "b", "c", "d", True, "x", ["not", "a", "dict"]))})
case("hs_empty", "highstate", {"m1": {}})
case("hs_color", "highstate", {"m1": mixed, "m2": testrun}, color=True)
case("hs_color_terse", "highstate", {"m1": mixed, "m2": warn}, color=True, state_output="mixed")
case("hs_color_compile_error", "highstate", {"m1": ["bad"]}, color=True)

# nested
ndata = {
    "minion": {
        "unicode": "héllo wörld ✓",
        "multi": "first\nsecond\r\nthird\n",
        "empty": "",
        "none": None, "t": True, "f": False, "i": -3, "big": 18446744073709551615,
        "floats": [0.1, 1e16, 1.5e-07, 2.0, -0.0],
        "lod": [{"a": 1, "b": {"c": [1, 2]}}, {"d": []}, [1, [2, [3]]], "tail"],
        "edict": {}, "elist": [],
        "esc": "\x1b[31mred\x1b[0m",
    }
}
case("nested_mix", "nested", ndata)
case("nested_indent", "nested", ndata, nested_indent=4)
case("nested_retcode", "nested", ndata, retcode=1)
case("nested_color", "nested", ndata, color=True)
case("nested_color_retcode", "nested", ndata, color=True, retcode=2)
case("nested_strip_colors_off", "nested", {"m": "\x1b[1mbold"}, strip_colors=False)
case("nested_scalar", "nested", "plain text")
case("nested_list_top", "nested", [1, "a", None])
case("nested_int_keys", "nested", {"__map__": [[10, "ten"], [2, "two"], [1.5, "x"]]})
case("nested_mixed_keys", "nested", {"__map__": [["b", 1], [2, "two"], [None, "n"], ["a", 3]]})
case("nested_bytes", "nested", {"m": {"__bytes__": "68690a7468657265"}, "bad": {"__bytes__": "ff00"}})
case("nested_unknown_outputter", "no_such_outputter", {"m": [1, 2]})
case("nested_text_alias", "text", {"m": "a\nb"})

# json
jdata = {"m1": {"z": 1, "a": [1.0, None, True, "é\"\n"], "d": {}, "l": []}, "m2": "x"}
case("json_default", "json", jdata)
case("json_indent2", "json", jdata, output_indent=2)
case("json_indent0", "json", jdata, output_indent=0)
case("json_indent_neg", "json", jdata, output_indent=-1)
case("json_pretty", "json", jdata, output_indent="pretty")
case("json_null", "json", jdata, output_indent=None)
case("json_bytes_and_keys", "json", {"__map__": [[1, {"__bytes__": "00ff"}], [2.5, "f"], [False, "t"], [None, "n"]]})
case("json_bad_key", "json", {"__map__": [[{"__bytes__": "61"}, 1]]})

# yaml
ydata = {"m1": {"b": [1, {"x": "y", "z": [1, 2]}], "a": {"n": None, "s": "yes", "f": 1.5}, "e": {}, "l": [[1, 2], [3]]}}
case("yaml_default", "yaml", ydata)
case("yaml_indent4", "yaml", ydata, output_indent=4)
case("yaml_indent3", "yaml", ydata, output_indent=3)
case("yaml_indent0", "yaml", ydata, output_indent=0)
case("yaml_flow", "yaml", {"m1": {"a": [1, 2], "b": "x", "c": None, "d": "a,b"}}, output_indent=-1)
case("yaml_pretty_fallback", "yaml", ydata, output_indent="pretty")

# txt, raw
case("txt_dict", "txt", {"m1": "line1\nline2", "m2": 5, "m3": {"a": [1]}, "m4": None})
case("txt_str", "txt", "hello\nworld")
case("txt_list", "txt", [1, {"a": 2}])
case("raw_dict", "raw", {"m1": {"a": [1, "it's", None, 1.0, True], "b": {"__bytes__": "0001"}}})
case("raw_str", "raw", "text")

# pprint
pdata = {"m1": {"key_%02d" % i: ("value " * i).strip() for i in range(12)},
         "m2": ["a" * 30, "b" * 30, {"nested": ["c" * 40, "d" * 40]}],
         "m3": "a long string " * 12,
         "m4": "multi\nline\nstring that is long enough to need wrapping across the line " * 2,
         "m5": {"__bytes__": "00" * 40}}
case("pprint_default", "pprint", pdata)
case("pprint_indent4", "pprint", pdata, output_indent=4)
case("pprint_short", "pprint", {"m1": True})
case("pprint_long_str_top", "pprint", "word " * 40)
case("pprint_null_fallback", "pprint", {"m1": 1}, output_indent=None)

# newline_values_only
case("nvo", "newline_values_only", {"m1": ["127.0.0.1", "10.0.0.1"], "m2": 8, "m3": {"a": 1}, "m4": None})
case("nvo_fallback", "newline_values_only", [1, 2])

# key
case("key_list", "key", {"minions": ["b", "a"], "minions_pre": ["p"], "minions_rejected": [], "minions_denied": ["d"]})
case("key_dict", "key", {"minions": {"b": "ab:cd", "a": "12:34"}, "local": {"master.pem": "ff:ee"}})
case("key_color", "key", {"minions": ["a"], "minions_pre": ["p"], "minions_denied": ["d"], "minions_rejected": ["r"]}, color=True)
case("key_fallback", "key", {"bogus": ["x"]})

# no_return, quiet
case("no_return", "no_return", {"m1": "Minion did not return. [No response]\nThe minions may not have all finished running\n\nsalt-run jobs.lookup_jid 1"})
case("no_return_color", "no_return", {"m1": "Minion did not return"}, color=True)
case("quiet", "quiet", {"m1": True})

# --out overrides the outputter a return asks for; highstate does not.
case("out_overrides", "highstate", {"m1": success}, output="json")
case("out_highstate_keeps", "nested", {"m1": success}, output="highstate")
case("static_state_fun", "", {"m1": success}, static=True, fun="state.apply")
case("static_other_fun", "", {"m1": True}, static=True, fun="test.ping")

# More shapes, for the corners of each outputter.
odd = states(
    st("a", "b", "str result", "n1", "weird", "x", run=0),
    st("a", "b", "none comment", "n2", True, None, {"k": "v"}, 1),
    st("a", "b", "bad duration", "n3", False, "c", run=2, duration="soon"),
    st("a", "b", "int result", "n4", 1, "x", run=3),
    st("a", "b", "empty comment", "n5", True, "  \n  ", {"x": ""}, 4),
)
case("hs_odd_results", "highstate", {"m1": odd})
case("hs_odd_results_terse", "highstate", {"m1": odd}, state_output="terse", state_output_pct=True)
case("hs_hyphen_warnings", "highstate", {"m1": states(st("t", "s", "w", "w", True, "c", run=0,
     warnings=["short", "x" * 100, "a\ttab and   spaces here"]))})
names = states(*[
    st("cmd", "run", "mix", n, r, "ran", {"retcode": 0 if r else 1} if i != 1 else {}, i, duration=1.25 + i)
    for i, (n, r) in enumerate([("true", True), ("false", False), ("/bin/true", True), ("/bin/false", False), ("x", True)])
], st("file", "absent", "gone", "/tmp/a", True, "absent", run=5), st("file", "absent", "gone", "/tmp/b", True, "absent", run=6))
case("hs_compress_ids", "highstate", {"m1": names}, state_compress_ids=True)
case("hs_compress_ids_terse", "highstate", {"m1": names}, state_compress_ids=True, state_output="terse_id")
case("nested_deep", "nested", {"m": [[[]], [{}], {"a": [{"b": [None]}]}, [[1, "x\ny"]]]})
case("nested_bool_keys", "nested", {"__map__": [[True, "t"], [False, "f"], [3, "3"]]})
case("nested_unicode_breaks", "nested", {"m": "a\u2028b\x1cc\x85d\re"})
case("pprint_fit", "pprint", {"m": {"k" * 30: ["v" * 20, "w" * 20], "z": {"deep": {"deeper": list(range(30))}}}})
case("pprint_unicode", "pprint", {"m": "é" * 100, "n": ["ü" * 70, "x"]})
case("pprint_mixed_keys", "pprint", {"__map__": [[2, "b"], [1, "a"], [1.5, "c"]]})
case("pprint_bytes_top", "pprint", {"__bytes__": "41" * 120})
case("pprint_long_words", "pprint", {"m": "x" * 90 + " " + "y" * 90})
case("json_unicode_ctrl", "json", {"m": "tab\there \u2028 \x7f \x00 é"}, output_indent=1)
case("json_floats", "json", {"m": [1e16, 1.5e-07, 0.1, -0.0, 100.0]})
case("yaml_strings", "yaml", {"m": {"multi": "a\nb", "colon": "a: b", "num": "012", "t": "true", "e": "", "u": "é", "space": " lead"}})
ylong = {"m": {
    "plain": "word " * 30 + "end",
    "single": "word " * 30,
    "double": "tab\there " + "word " * 30,
    "lines": "line1\nline2 and more\n\nlast\n",
    "stdout": "total 8\ndrwxr-xr-x 2 root root 4096 Jan  1 00:00 dir\n-rw-r--r-- 1 root root    0 Jan  1 00:00 file",
    "break_space": "a\n b",
    "list": ["x: " + "word " * 25, "short", "l1\nl2"],
    "long_key_" + "k" * 60: "value " * 12,
    "unicode": "é " * 50,
    "ctrl": "a\x01b " + "c " * 45,
}}
case("yaml_long_strings", "yaml", ylong)
case("yaml_long_strings_indent4", "yaml", ylong, output_indent=4)
case("yaml_root_multiline", "yaml", "a\n\nb\n")
case("txt_bytes", "txt", {"m": {"__bytes__": "610a62"}, "n": ""})
case("raw_unicode", "raw", {"m": "é'\"\n\x01", "n": [1.0, 1e100, None]})
case("nvo_nested", "newline_values_only", {"m": [[1, 2], {"a": "b"}, "s"], "n": "x\ny"})


def untag(v):
    if isinstance(v, dict):
        if set(v) == {"__bytes__"}:
            return bytes.fromhex(v["__bytes__"])
        if set(v) == {"__map__"}:
            return {untag(k): untag(x) for k, x in v["__map__"]}
        return {k: untag(x) for k, x in v.items()}
    if isinstance(v, list):
        return [untag(x) for x in v]
    return v


def main(path):
    base = copy.deepcopy(salt.config.DEFAULT_MASTER_OPTS)
    for c in CASES:
        opts = copy.deepcopy(base)
        opts["color"] = False
        opts.update(c["opts"])
        data = untag(copy.deepcopy(c["data"]))
        c["expected"] = salt.output.try_printout(data, c["out"], opts, _retcode=c["retcode"])
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(CASES, fh, indent=1, ensure_ascii=False)
        fh.write("\n")
    print(f"{len(CASES)} cases written to {path}")


if __name__ == "__main__":
    main(sys.argv[1])
