//! The pieces of compound targeting that the master (`CkMinions`) and
//! the minion-side matcher share: Salt's `parse_target` (`G@`, `P:@`…),
//! `nodegroup_comp` (nodegroup expansion), and the two evaluations of the
//! expression Salt builds as Python source and `eval`s — sets joined by
//! `&`, `|`, `-` on the master, `True`/`False` joined by `and`, `or`,
//! `not` on the minion. Both are evaluated here with Python's grammar and
//! precedence, so what Python would reject (a syntax error, calling a set
//! or a bool) fails here too.

use std::collections::BTreeSet;

use brine_proto::Value;
use brine_py::to_str;
use log::{error, warn};

use super::TargetError;

/// The compound operators.
pub const OPERS: [&str; 5] = ["and", "or", "not", "(", ")"];

/// How deep parentheses may nest: Python's tokenizer refuses more than 200
/// levels ("too many nested parentheses"), so Salt's `eval` of such a
/// target raises and matches nothing; here the parsers stop there too,
/// which also bounds their recursion on network data.
pub const MAX_NESTING: usize = 200;

fn too_deep() -> Option<()> {
    warn!("compound target nests parentheses deeper than {MAX_NESTING} levels (Python's limit): refused");
    None
}

/// One word of a compound expression, split as Salt's `TARGET_REX` does:
/// an optional engine letter, for `G`/`P`/`I`/`J` an optional delimiter
/// character, then `@` and the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word {
    pub engine: Option<char>,
    pub delimiter: Option<char>,
    pub pattern: String,
}

/// Python's `.+$` over `rest`: the pattern (without a final newline), if
/// one is there.
fn rest_pattern(rest: &str) -> Option<&str> {
    let body = rest.strip_suffix('\n').unwrap_or(rest);
    (!body.is_empty() && !body.contains('\n')).then_some(body)
}

/// Salt's `parse_target`.
pub fn parse_target(word: &str) -> Word {
    let chars: Vec<(usize, char)> = word.char_indices().collect();
    let at = |i: usize| chars.get(i).map(|(_, c)| *c);
    let from = |i: usize| chars.get(i).map_or("", |(b, _)| &word[*b..]);
    if let Some(e) = at(0).filter(|c| "GPIJLNSER".contains(*c)) {
        if "GPIJ".contains(e) && at(2) == Some('@') && at(1) != Some('\n') {
            if let Some(p) = rest_pattern(from(3)) {
                return Word {
                    engine: Some(e),
                    delimiter: at(1),
                    pattern: p.to_string(),
                };
            }
        }
        if at(1) == Some('@') {
            if let Some(p) = rest_pattern(from(2)) {
                return Word {
                    engine: Some(e),
                    delimiter: None,
                    pattern: p.to_string(),
                };
            }
        }
    }
    let pattern = match rest_pattern(word) {
        Some(p) => p.to_string(),
        None => {
            warn!("Unable to parse target \"{word}\"");
            word.to_string()
        }
    };
    Word {
        engine: None,
        delimiter: None,
        pattern,
    }
}

/// Salt's `nodegroup_comp`: nodegroup `name` as compound words, nested
/// `N@` groups expanded in parentheses. A group without operators, `*`
/// or engine prefixes is a list (`L@a,b`), or with regex characters an
/// `E@` expression. Unknown or self-nesting groups log an error and give
/// nothing. Words that are not text are Python's `TypeError`.
pub fn nodegroup_comp(name: &str, nodegroups: &Value) -> Result<Vec<Value>, TargetError> {
    let mut skip = Vec::new();
    comp(name, nodegroups, &mut skip, true)
}

fn comp(name: &str, nodegroups: &Value, skip: &mut Vec<String>, first_call: bool) -> Result<Vec<Value>, TargetError> {
    if skip.iter().any(|s| s == name) {
        error!("Failed nodegroup expansion: illegal nested nodegroup \"{name}\"");
        return Ok(Vec::new());
    }
    // Nil: no `nodegroups` option, Salt's default `{}`.
    let groups: &[(Value, Value)] = match nodegroups {
        Value::Map(groups) => groups,
        Value::Nil => &[],
        other => return Err(TargetError::Invalid(format!("nodegroups is not a dict: {other:?}"))),
    };
    let Some((_, lookup)) = groups.iter().find(|(k, _)| matches!(k, Value::Str(s) if s == name)) else {
        error!("Failed nodegroup expansion: unknown nodegroup \"{name}\"");
        return Ok(Vec::new());
    };
    let words: Vec<Value> = match lookup {
        Value::Str(s) => py_split(s),
        Value::Array(items) => items.clone(),
        other => {
            error!(
                "Nodegroup '{name}' ({}) is neither a string, list nor tuple",
                to_str(other)
            );
            return Ok(Vec::new());
        }
    };
    skip.push(name.to_string());
    let mut ret: Vec<Value> = Vec::new();
    let mut expanded = false;
    for w in &words {
        let w = to_str(w);
        if OPERS.contains(&w.as_str()) {
            ret.push(Value::from(w));
        } else if w.chars().count() >= 3 && w.starts_with("N@") {
            expanded = true;
            ret.extend(comp(&w[2..], nodegroups, skip, false)?);
        } else {
            ret.push(Value::from(w));
        }
    }
    if !ret.is_empty() {
        ret.insert(0, Value::from("("));
        ret.push(Value::from(")"));
    }
    skip.retain(|s| s != name);
    if expanded || !first_call {
        if !first_call {
            if let Some(joined) = plain_group(&words)? {
                return Ok(vec![joined]);
            }
        }
        Ok(ret)
    } else {
        Ok(plain_group(&words)?.map_or(words, |joined| vec![joined]))
    }
}

/// Salt's `_nodegroup_regex`: a group of bare names is `L@a,b`, or
/// `E@a,b` when a name has regex characters; `None` when the group has
/// operators, globs or engine prefixes.
fn plain_group(words: &[Value]) -> Result<Option<Value>, TargetError> {
    let mut texts = Vec::with_capacity(words.len());
    for w in words {
        match w {
            Value::Str(s) if OPERS.contains(&s.as_str()) => return Ok(None),
            Value::Str(s) => texts.push(s.as_str()),
            other => return Err(TargetError::Invalid(format!("nodegroup word {other:?} is not text"))),
        }
    }
    let typed = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 2 && b[0].is_ascii_uppercase() && b[1] == b'@'
    };
    if texts.iter().any(|s| s.contains('*') || typed(s)) {
        return Ok(None);
    }
    let regexy = texts
        .iter()
        .any(|s| s.contains(['(', '[', '{', '\\', '?', '}', ']', ')']));
    let prefix = if regexy { "E@" } else { "L@" };
    Ok(Some(Value::from(format!("{prefix}{}", texts.join(",")))))
}

/// Python's `str.split()`: Unicode whitespace and the separators
/// U+001C..U+001F.
fn py_split(s: &str) -> Vec<Value> {
    s.split(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
        .filter(|w| !w.is_empty())
        .map(Value::from)
        .collect()
}

/// The words of a compound target: a string split on whitespace, or a
/// list as given; `None` for anything else.
pub fn compound_words(tgt: &Value) -> Option<Vec<Value>> {
    match tgt {
        Value::Str(s) => Some(py_split(s)),
        Value::Array(items) => Some(items.clone()),
        _ => None,
    }
}

// ---------------------------------------------------------------------
// The master's set expression.

/// A token of the master's expression (Salt's `str(set(...))`, `&`, `|`,
/// `-`, parentheses).
#[derive(Debug, Clone, PartialEq)]
pub enum SetTok {
    Set(BTreeSet<String>),
    And,
    Or,
    Minus,
    Open,
    Close,
}

#[derive(Debug)]
enum SetVal {
    Set(BTreeSet<String>),
    /// `()`: an empty tuple, which no set operator accepts.
    Tuple,
}

/// Evaluate the master's expression as Python would; `None` where Python
/// raises (a syntax error, an operator on a tuple, a call, unary minus).
pub fn eval_sets(toks: &[SetTok]) -> Option<BTreeSet<String>> {
    let mut p = SetParser {
        t: toks,
        i: 0,
        depth: 0,
    };
    let v = p.or()?;
    if p.i != toks.len() {
        return None;
    }
    match v {
        SetVal::Set(s) => Some(s),
        SetVal::Tuple => Some(BTreeSet::new()),
    }
}

struct SetParser<'a> {
    t: &'a [SetTok],
    i: usize,
    /// Open parentheses around the current position.
    depth: usize,
}

impl SetParser<'_> {
    fn peek(&self) -> Option<&SetTok> {
        self.t.get(self.i)
    }

    fn sets(a: SetVal, b: SetVal) -> Option<(BTreeSet<String>, BTreeSet<String>)> {
        match (a, b) {
            (SetVal::Set(a), SetVal::Set(b)) => Some((a, b)),
            _ => None,
        }
    }

    fn or(&mut self) -> Option<SetVal> {
        let mut left = self.and()?;
        while self.peek() == Some(&SetTok::Or) {
            self.i += 1;
            let right = self.and()?;
            let (a, b) = Self::sets(left, right)?;
            left = SetVal::Set(a.union(&b).cloned().collect());
        }
        Some(left)
    }

    fn and(&mut self) -> Option<SetVal> {
        let mut left = self.minus()?;
        while self.peek() == Some(&SetTok::And) {
            self.i += 1;
            let right = self.minus()?;
            let (a, b) = Self::sets(left, right)?;
            left = SetVal::Set(a.intersection(&b).cloned().collect());
        }
        Some(left)
    }

    fn minus(&mut self) -> Option<SetVal> {
        let mut left = self.unary()?;
        while self.peek() == Some(&SetTok::Minus) {
            self.i += 1;
            let right = self.unary()?;
            let (a, b) = Self::sets(left, right)?;
            left = SetVal::Set(a.difference(&b).cloned().collect());
        }
        Some(left)
    }

    fn unary(&mut self) -> Option<SetVal> {
        if self.peek() == Some(&SetTok::Minus) {
            // `-set` is a TypeError.
            return None;
        }
        let atom = match self.peek()? {
            SetTok::Set(s) => {
                let s = s.clone();
                self.i += 1;
                SetVal::Set(s)
            }
            SetTok::Open => {
                self.i += 1;
                if self.peek() == Some(&SetTok::Close) {
                    self.i += 1;
                    SetVal::Tuple
                } else {
                    if self.depth >= MAX_NESTING {
                        too_deep()?;
                    }
                    self.depth += 1;
                    let v = self.or()?;
                    self.depth -= 1;
                    if self.peek() != Some(&SetTok::Close) {
                        return None;
                    }
                    self.i += 1;
                    v
                }
            }
            _ => return None,
        };
        // `x (…)` is a call: a TypeError for sets and tuples.
        if self.peek() == Some(&SetTok::Open) {
            return None;
        }
        Some(atom)
    }
}

// ---------------------------------------------------------------------
// The minion's boolean expression.

/// A token of the minion's expression: a matcher's result (its Python
/// truth value: `True`, `False`, or `[]` from a bad ipcidr target),
/// `and`, `or`, `not`, parentheses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolTok {
    Val(bool),
    And,
    Or,
    Not,
    Open,
    Close,
}

/// The parsed expression. `a or b or c` is one `Or` of three (not a
/// chain of pairs) and `not not x` one `Not` with a count, so only
/// parentheses make the tree deeper, and they are bounded by
/// [`MAX_NESTING`]: neither parsing, evaluating nor dropping a tree
/// recurses further than that, however long the target.
#[derive(Debug)]
enum Node {
    Val(bool),
    Or(Vec<Node>),
    And(Vec<Node>),
    /// `not` applied `n` times.
    Not(usize, Box<Node>),
    /// `x(…)`: valid syntax, a TypeError when evaluated.
    Call,
}

/// Evaluate the minion's expression as Python would: parsed whole first
/// (a syntax error is `None`), then evaluated with `and`/`or`
/// short-circuiting (a call that is reached is `None`).
pub fn eval_bools(toks: &[BoolTok]) -> Option<bool> {
    let mut p = BoolParser {
        t: toks,
        i: 0,
        depth: 0,
    };
    let node = p.or()?;
    if p.i != toks.len() {
        return None;
    }
    eval_node(&node)
}

fn eval_node(n: &Node) -> Option<bool> {
    match n {
        Node::Val(b) => Some(*b),
        // Python's `or`/`and` stop at the first operand that decides.
        Node::Or(items) => {
            for item in items {
                if eval_node(item)? {
                    return Some(true);
                }
            }
            Some(false)
        }
        Node::And(items) => {
            for item in items {
                if !eval_node(item)? {
                    return Some(false);
                }
            }
            Some(true)
        }
        Node::Not(n, a) => Some(eval_node(a)? ^ (n % 2 == 1)),
        Node::Call => None,
    }
}

struct BoolParser<'a> {
    t: &'a [BoolTok],
    i: usize,
    /// Open parentheses around the current position.
    depth: usize,
}

impl BoolParser<'_> {
    fn peek(&self) -> Option<BoolTok> {
        self.t.get(self.i).copied()
    }

    fn or(&mut self) -> Option<Node> {
        let first = self.and()?;
        if self.peek() != Some(BoolTok::Or) {
            return Some(first);
        }
        let mut items = vec![first];
        while self.peek() == Some(BoolTok::Or) {
            self.i += 1;
            items.push(self.and()?);
        }
        Some(Node::Or(items))
    }

    fn and(&mut self) -> Option<Node> {
        let first = self.not()?;
        if self.peek() != Some(BoolTok::And) {
            return Some(first);
        }
        let mut items = vec![first];
        while self.peek() == Some(BoolTok::And) {
            self.i += 1;
            items.push(self.not()?);
        }
        Some(Node::And(items))
    }

    fn not(&mut self) -> Option<Node> {
        let mut n = 0;
        while self.peek() == Some(BoolTok::Not) {
            self.i += 1;
            n += 1;
        }
        let operand = self.primary()?;
        Some(if n == 0 {
            operand
        } else {
            Node::Not(n, Box::new(operand))
        })
    }

    fn primary(&mut self) -> Option<Node> {
        let mut node = match self.peek()? {
            BoolTok::Val(b) => {
                self.i += 1;
                Node::Val(b)
            }
            BoolTok::Open => {
                self.i += 1;
                if self.peek() == Some(BoolTok::Close) {
                    self.i += 1;
                    // `()`, an empty tuple: false.
                    Node::Val(false)
                } else {
                    if self.depth >= MAX_NESTING {
                        too_deep()?;
                    }
                    self.depth += 1;
                    let n = self.or()?;
                    self.depth -= 1;
                    if self.peek() != Some(BoolTok::Close) {
                        return None;
                    }
                    self.i += 1;
                    n
                }
            }
            _ => return None,
        };
        // Call trailers: `x()` or `x(expr)`.
        while self.peek() == Some(BoolTok::Open) {
            self.i += 1;
            if self.peek() != Some(BoolTok::Close) {
                if self.depth >= MAX_NESTING {
                    too_deep()?;
                }
                self.depth += 1;
                self.or()?;
                self.depth -= 1;
            }
            if self.peek() != Some(BoolTok::Close) {
                return None;
            }
            self.i += 1;
            node = Node::Call;
        }
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(e: Option<char>, d: Option<char>, p: &str) -> Word {
        Word {
            engine: e,
            delimiter: d,
            pattern: p.into(),
        }
    }

    #[test]
    fn words_split_as_target_rex_does() {
        assert_eq!(parse_target("G@os:Debian"), w(Some('G'), None, "os:Debian"));
        assert_eq!(parse_target("G|@os|Debian"), w(Some('G'), Some('|'), "os|Debian"));
        assert_eq!(parse_target("L@a,b"), w(Some('L'), None, "a,b"));
        assert_eq!(parse_target("L|@a"), w(None, None, "L|@a"));
        assert_eq!(parse_target("G@@x"), w(Some('G'), Some('@'), "x"));
        assert_eq!(parse_target("G@\n"), w(None, None, "G@"));
        assert_eq!(parse_target("G@x\n"), w(Some('G'), None, "x"));
        assert_eq!(parse_target("G@@@x"), w(Some('G'), Some('@'), "@x"));
        assert_eq!(parse_target("G:@"), w(None, None, "G:@"));
        assert_eq!(parse_target("G@"), w(None, None, "G@"));
        assert_eq!(parse_target("X@foo"), w(None, None, "X@foo"));
        assert_eq!(parse_target("web*"), w(None, None, "web*"));
        assert_eq!(parse_target("N@group"), w(Some('N'), None, "group"));
    }

    fn ngs() -> Value {
        Value::map([
            ("web", Value::from("web*")),
            ("pair", Value::from("a b")),
            ("re", Value::Array(vec![Value::from("db[12]")])),
            ("both", Value::from("N@web or N@pair")),
            ("loop", Value::from("N@loop or x")),
            ("bad", Value::Int(3)),
        ])
    }

    fn strs(v: &[Value]) -> Vec<String> {
        v.iter().map(to_str).collect()
    }

    #[test]
    fn nodegroups_expand_as_salt_does() {
        let n = ngs();
        assert_eq!(strs(&nodegroup_comp("web", &n).unwrap()), ["web*"]);
        assert_eq!(strs(&nodegroup_comp("pair", &n).unwrap()), ["L@a,b"]);
        assert_eq!(strs(&nodegroup_comp("re", &n).unwrap()), ["E@db[12]"]);
        assert_eq!(
            strs(&nodegroup_comp("both", &n).unwrap()),
            ["(", "(", "web*", ")", "or", "L@a,b", ")"]
        );
        assert_eq!(strs(&nodegroup_comp("loop", &n).unwrap()), ["(", "or", "x", ")"]);
        assert!(nodegroup_comp("nope", &n).unwrap().is_empty());
        assert!(nodegroup_comp("bad", &n).unwrap().is_empty());
        assert!(nodegroup_comp("web", &Value::Nil).unwrap().is_empty());
        assert_eq!(
            strs(&compound_words(&Value::from(" a\u{1f}b\u{3000}c\n")).unwrap()),
            ["a", "b", "c"]
        );
    }

    fn set(items: &[&str]) -> SetTok {
        SetTok::Set(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn set_expressions_follow_python() {
        use SetTok::*;
        let ab = || set(&["a", "b"]);
        let b = || set(&["b"]);
        let c = || set(&["c"]);
        let got = |t: &[SetTok]| eval_sets(t).map(|s| s.into_iter().collect::<Vec<_>>());
        // `-` binds tighter than `&`, which binds tighter than `|`.
        assert_eq!(got(&[c(), Or, ab(), And, b()]).unwrap(), ["b", "c"]);
        assert_eq!(got(&[ab(), Minus, b(), Or, c()]).unwrap(), ["a", "c"]);
        assert_eq!(got(&[Open, ab(), Close]).unwrap(), ["a", "b"]);
        assert_eq!(got(&[Open, Close]).unwrap(), Vec::<String>::new());
        assert_eq!(got(&[ab(), b()]), None);
        assert_eq!(got(&[ab(), And]), None);
        assert_eq!(got(&[ab(), Open, b(), Close]), None);
        assert_eq!(got(&[Open, Close, Or, b()]), None);
        assert_eq!(got(&[Minus, b()]), None);
        assert_eq!(got(&[]), None);
    }

    #[test]
    fn bool_expressions_follow_python() {
        use BoolTok::*;
        assert_eq!(eval_bools(&[Val(true), Or, Val(false), And, Val(false)]), Some(true));
        assert_eq!(eval_bools(&[Not, Val(false), And, Val(true)]), Some(true));
        assert_eq!(eval_bools(&[Not, And, Not, Val(true)]), None);
        assert_eq!(eval_bools(&[Val(true), Val(true)]), None);
        // `True or False(True)`: the call is never reached.
        assert_eq!(
            eval_bools(&[Val(true), Or, Val(false), Open, Val(true), Close]),
            Some(true)
        );
        assert_eq!(eval_bools(&[Val(false), Or, Val(false), Open, Val(true), Close]), None);
        assert_eq!(eval_bools(&[Open, Val(true)]), None);
        assert_eq!(eval_bools(&[Not, Open, Close]), Some(true));
        assert_eq!(eval_bools(&[]), None);
        assert_eq!(eval_bools(&[Not, Not, Not, Val(false)]), Some(true));
        assert_eq!(eval_bools(&[Not, Not, Val(false), Or, Not, Val(true)]), Some(false));
    }

    /// Targets a hostile peer could send: nesting past Python's limit is
    /// refused, long flat chains and `not` runs evaluate without deep
    /// recursion (a stack overflow would kill the MWorker).
    #[test]
    fn deep_and_long_expressions_are_bounded() {
        use BoolTok::*;
        let nested = |n: usize, inner: Vec<BoolTok>| {
            let mut t = vec![Open; n];
            t.extend(inner);
            t.extend(vec![Close; n]);
            t
        };
        assert_eq!(eval_bools(&nested(MAX_NESTING, vec![Val(true)])), Some(true));
        assert_eq!(eval_bools(&nested(MAX_NESTING + 1, vec![Val(true)])), None);
        assert_eq!(eval_bools(&nested(100_000, vec![Val(true)])), None);
        let mut nots = vec![Not; 1_000_001];
        nots.push(Val(false));
        assert_eq!(eval_bools(&nots), Some(true));
        let mut chain = vec![Val(true)];
        for _ in 0..200_000 {
            chain.extend([And, Val(true), Or, Val(false)]);
        }
        assert_eq!(eval_bools(&chain), Some(true));

        let s = || set(&["a"]);
        let mut t = vec![SetTok::Open; MAX_NESTING];
        t.push(s());
        t.extend((0..MAX_NESTING).map(|_| SetTok::Close));
        assert!(eval_sets(&t).is_some());
        let mut t = vec![SetTok::Open; 100_000];
        t.push(s());
        t.extend((0..100_000).map(|_| SetTok::Close));
        assert_eq!(eval_sets(&t), None);
        let mut chain = vec![s()];
        for _ in 0..200_000 {
            chain.extend([SetTok::Or, s(), SetTok::And, s(), SetTok::Minus, set(&[])]);
        }
        assert_eq!(eval_sets(&chain).map(|s| s.len()), Some(1));
    }
}
