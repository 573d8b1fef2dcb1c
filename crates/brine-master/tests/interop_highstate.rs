//! What `salt` prints for state runs and other returns: Brine's `salt`
//! against Brine's master and Python's `salt` against Python's master,
//! each with two real 3007.17 minions and the same state trees, print the
//! same text (the highstate outputter in its modes, its colours, the
//! Summary block, nested, txt, yaml, json, --static, --summary) and exit
//! with the same status, once durations, start times, pids, jids and
//! each side's temp root are masked; so do their `salt-run
//! state.orchestrate` (the highstate outputter over the orchestration).

mod common;

use common::minion::run_cli;
use common::pysalt::{mask, py, Side};

const VERSION: &str = "3007.17";

fn write_trees(root: &std::path::Path) {
    let files = [
        (
            "srv/salt/good.sls",
            "motd:\n  file.managed:\n    - name: {{ opts['root_dir'] }}/motd\n    - contents: |\n        hello {{ grains['id'] }}\n        second line\n    - mode: '0644'\n\n\
             nothing:\n  test.succeed_without_changes\n\n\
             changes:\n  test.succeed_with_changes\n\n\
             configured:\n  test.configurable_test_state:\n    - changes: True\n    - result: True\n    - comment: \"first line\\nsecond line\"\n",
        ),
        (
            "srv/salt/bad.sls",
            "missing-source:\n  file.managed:\n    - name: {{ opts['root_dir'] }}/never\n    - source: salt://files/does-not-exist\n\n\
             exit-three:\n  cmd.run:\n    - name: exit 3\n\n\
             after:\n  test.succeed_without_changes:\n    - require:\n      - cmd: exit-three\n\n\
             fine:\n  test.succeed_without_changes\n",
        ),
        ("srv/salt/broken.sls", "this: is: not: yaml\n  - at all\n"),
        (
            "srv/salt/orch/deploy.sls",
            "ping:\n  salt.function:\n    - name: test.ping\n    - tgt: a1\n\n\
             apply:\n  salt.state:\n    - tgt: a1\n    - sls: good\n\n\
             failing:\n  salt.state:\n    - tgt: a1\n    - sls: bad\n",
        ),
    ];
    for (rel, text) in files {
        let p = root.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

fn side(brine: bool) -> Side {
    Side::start(brine, VERSION, "auto_accept: True\n", "", "", |env| {
        let root = env.root();
        write_trees(&root);
        let conf = env.conf_dir.join("master");
        let mut text = std::fs::read_to_string(&conf).unwrap();
        text.push_str(&format!("file_roots:\n  base:\n    - {}/srv/salt\n", root.display()));
        std::fs::write(&conf, text).unwrap();
    })
}

/// The text with what differs run to run masked, and the minions' blocks
/// (`a1:` … and `a2:` …, in the order they returned) sorted.
fn normalize(text: &str, root: &str) -> String {
    let text = mask(&text.replace(root, "<root>"));
    let rules = [
        (r"Started: \d{2}:\d{2}:\d{2}\.\d{6}", "Started: <time>"),
        (r"Duration: [0-9.]+ ms", "Duration: <ms>"),
        (r"Total run time: +[0-9.]+ m?s", "Total run time: <total>"),
        (r"(pid(?:\x1b\[[0-9;]*m)?:\n(?:\s|\x1b\[[0-9;]*m)*)\d+", "${1}<pid>"),
        (r#""pid": \d+"#, r#""pid": <pid>"#),
        (r#""(start_time|duration)": [^,\n]+"#, r#""$1": <t>"#),
        (r"(start_time|duration): [^\n]+", "$1: <t>"),
    ];
    let mut text = text;
    for (re, with) in rules {
        text = regex::Regex::new(re).unwrap().replace_all(&text, with).into_owned();
    }
    // Split before each minion's first line (its id at column 0, possibly
    // coloured, or a JSON/YAML top-level key).
    let start = regex::Regex::new(r#"^\{?(\x1b\[[0-9;]*m)?["']?a[12]["']?(\x1b\[[0-9;]*m)?:"#).unwrap();
    // --summary's block comes after all of them.
    let (text, trailer) = match text.find("\n\n\n-------------------------------------------\nSummary") {
        Some(at) => (&text[..at + 1], &text[at + 1..]),
        None => (text.as_str(), ""),
    };
    let mut blocks: Vec<String> = Vec::new();
    for line in text.split_inclusive('\n') {
        if start.is_match(line) || blocks.is_empty() {
            blocks.push(String::new());
        }
        blocks.last_mut().unwrap().push_str(line);
    }
    blocks.sort();
    blocks.concat() + trailer
}

#[test]
fn salt_prints_state_runs_as_python_salt() {
    let brine = side(true);
    let python = side(false);
    let cases: &[&[&str]] = &[
        &["*", "state.apply", "good", "test=True"],
        &["*", "state.apply", "good"],
        &["*", "state.apply", "good", "--state-output=terse"],
        &[
            "*",
            "state.apply",
            "good",
            "--state-output=mixed",
            "--state-verbose=False",
        ],
        &["*", "state.apply", "good", "--state_output=changes_id"],
        &["*", "state.apply", "bad"],
        &["*", "state.apply", "bad", "--force-color"],
        &["*", "state.apply", "bad", "--state-output=terse", "--force-color"],
        &["*", "state.apply", "broken"],
        &["*", "state.apply", "good", "--static"],
        &["*", "test.ping"],
        &["*", "test.ping", "--summary"],
        &["*", "test.ping", "--force-color"],
        &["*", "test.false"],
        &["*", "grains.item", "id", "os_family", "--out=yaml"],
        &["*", "grains.item", "id", "os_family", "--out=txt"],
        &["*", "grains.item", "id", "--out=json", "--out-indent=-1"],
        &["*", "grains.item", "id", "--out=pprint"],
        &["*", "test.arg", "a", "1", "k=v", "--out=raw"],
        &["*", "test.outputter", "x", "--out=newline_values_only"],
    ];
    let mut differ = Vec::new();
    for args in cases {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-t", "60"]);
        let (bo, be, bc) = run_cli(&brine.env.conf_dir, "salt", &all);
        let (po, pe, pc) = py(&python.env, python.version, "salt", &all);
        let b = normalize(&bo, &brine.env.root().display().to_string());
        let p = normalize(&po, &python.env.root().display().to_string());
        eprintln!("== salt {args:?}: exit brine {bc}, python {pc}\n-- brine:\n{b}{be}\n-- python:\n{p}{pe}");
        if b != p || bc != pc {
            differ.push(args.join(" "));
        }
    }
    assert!(differ.is_empty(), "Brine's salt and Python's differ for: {differ:#?}");

    // An orchestration through salt-run: the runner's return is shown
    // with the highstate outputter it names, the minions' state runs
    // nested in its steps' changes.
    for args in [
        &["state.orchestrate", "orch.deploy"][..],
        &["state.orchestrate", "orch.deploy", "--state-output=terse"][..],
    ] {
        let (bo, be, bc) = run_cli(&brine.env.conf_dir, "salt-run", args);
        let (po, pe, pc) = py(&python.env, python.version, "salt-run", args);
        let b = normalize(&bo, &brine.env.root().display().to_string());
        let p = normalize(&po, &python.env.root().display().to_string());
        assert_eq!(
            (&b, bc),
            (&p, pc),
            "salt-run {args:?}\n-- brine:\n{b}{be}\n-- python:\n{p}{pe}"
        );
        assert!(
            b.contains("_master:") && (args.len() > 2 || b.contains("Summary for a1")),
            "{b}"
        );
    }

    // --out-file: each display appended to the file (truncated first
    // unless --out-file-append), nothing on stdout.
    let to_file = |side: &Side, brine: bool| {
        let path = side.env.root().join("out.txt");
        std::fs::write(&path, "old\n").unwrap();
        let file = format!("--out-file={}", path.display());
        let args = ["*", "state.apply", "good", "--state-output=terse", &file, "-t", "60"];
        let (out, _, code) = if brine {
            run_cli(&side.env.conf_dir, "salt", &args)
        } else {
            py(&side.env, side.version, "salt", &args)
        };
        let text = std::fs::read_to_string(&path).unwrap();
        (out, normalize(&text, &side.env.root().display().to_string()), code)
    };
    let (b, p) = (to_file(&brine, true), to_file(&python, false));
    assert_eq!(b, p, "--out-file");
    assert!(b.1.contains("Summary for a1") && !b.1.contains("old"), "{}", b.1);

    // -p: a bar on stderr while the returns come, then the summary (Salt
    // needs the progressbar package for this, which its venv lacks).
    let (out, err, code) = run_cli(&brine.env.conf_dir, "salt", &["-p", "*", "test.ping", "-t", "60"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(err.contains("Returns: [2/2]") && err.contains("100% |"), "{err}");
    assert!(
        out.contains("# of minions targeted: 2\n# of minions returned: 2\n") && !out.contains("True"),
        "{out}"
    );
}
