//! Jinja as Salt runs it in pillar SLS files: Brine's `pillar::compile`
//! and Python Salt's `compile_pillar` on the same tree, compared as JSON.

mod common;

use common::{case, compare, web_grains, Tree};

/// Jinja as Salt runs it, one feature group per SLS (a difference shows
/// as that SLS's render error or value).
const JINJA_FILES: &[(&str, &str)] = &[
    (
        "srv/pillar/top.sls",
        "base:\n  '*':\n    - match: glob\n    - j.*\n",
    ),
    (
        "srv/pillar/j/printing.sls",
        r#"printing:
  float: {{ 1.0 }}
  div: {{ 7 / 2 }}
  floordiv: {{ 7 // 2 }}
  pow: {{ 2 ** 10 }}
  big: '{{ 1e20 }}'
  small: '{{ 0.00001 }}'
  neg: {{ -3 }}
  str_mul: {{ '-' * 3 }}
  list_add: {{ [1, 2] + [3] }}
  slice: {{ 'abcdef'[1:3] }}
  none_lower: {{ none }}
  true_lower: {{ true }}
  quote_in_dict: {{ {'q': "it's", 'u': 'é'} }}
  nested_list: {{ [[1, 'a'], {'k': None}] }}
  unicode: {{ 'héllo' }}
  range: {{ range(3)|list }}
  dict_fn: {{ dict(a=1, b='x') }}
  tuple: "{{ (1, 'a') }}"
  empty: '{{ '' }}'
  bool_cmp: {{ 1 == 1.0 }}
  in_list: {{ 'web' in grains.roles }}
  not_in: {{ 'x' not in grains.roles }}
  ternary: {{ 'yes' if grains.num_cpus > 1 else 'no' }}
"#,
    ),
    (
        "srv/pillar/j/tests.sls",
        r#"tests:
  number: {{ grains.num_cpus is number }}
  string: {{ grains.os is string }}
  mapping: {{ grains.nested is mapping }}
  iterable: {{ grains.roles is iterable }}
  sequence: {{ grains.roles is sequence }}
  none: {{ grains.get('nope') is none }}
  defined: {{ grains.nope is defined }}
  undefined: {{ grains.nope is undefined }}
  odd: {{ 3 is odd }}
  even: {{ 3 is even }}
  divisibleby: {{ 9 is divisibleby 3 }}
  sameas: {{ none is sameas none }}
  equalto: {{ 2 is equalto 2 }}
  lower: {{ 'abc' is lower }}
  in: {{ 'a' is in ['a'] }}
"#,
    ),
    (
        "srv/pillar/j/filters.sls",
        r#"filters:
  dictsort_len: {{ {'b': 1, 'a': 2}|dictsort|length }}
  dictsort_first: {{ ({'b': 1, 'a': 2}|dictsort|first)[0] }}
  sort: {{ [3, 1, 2]|sort }}
  sort_rev: {{ [3, 1, 2]|sort(reverse=True) }}
  first: {{ grains.roles|first }}
  last: {{ grains.roles|last }}
  length: {{ grains.roles|length }}
  sum: {{ [1, 2, 3]|sum }}
  int: {{ '42'|int }}
  int_bad: {{ 'x'|int }}
  int_float: {{ '3.7'|int }}
  float: {{ '2.5'|float }}
  round: {{ 2.567|round(1) }}
  round0: {{ 2.5|round }}
  abs: {{ -3|abs }}
  replace: {{ 'a-b-c'|replace('-', '+') }}
  trim: '{{ '  x  '|trim }}'
  title: {{ 'hello world'|title }}
  capitalize: {{ 'hello World'|capitalize }}
  lower: {{ 'ABC'|lower }}
  reverse: {{ [1, 2, 3]|reverse|list }}
  string: '{{ True|string }}'
  string_list: "{{ [1, None]|string }}"
  join_none: '{{ [1, None, True]|join(",") }}'
  join_attr: '{{ [{'n': 'a'}, {'n': 'b'}]|join(",", attribute="n") }}'
  list: {{ 'abc'|list }}
  map_attr: {{ [{'n': 1}, {'n': 2}]|map(attribute='n')|list }}
  selectattr: {{ [{'n': 1, 'on': True}, {'n': 2, 'on': False}]|selectattr('on')|map(attribute='n')|list }}
  select: {{ [1, 2, 3, 4]|select('odd')|list }}
  reject: {{ [1, 2, 3, 4]|reject('odd')|list }}
  batch: {{ [1, 2, 3]|batch(2)|list }}
  min: {{ [3, 1, 2]|min }}
  max: {{ [3, 1, 2]|max }}
  default_none: {{ None|default('d') }}
  default_bool: {{ ''|default('d', true) }}
  d: {{ grains.nope|d('short') }}
  tojson_dict: {{ {'b': 1, 'a': 'é'}|tojson }}
  json_dict: {{ {'b': 1, 'a': 'é'}|json }}
  yaml_str: {{ 'on'|yaml }}
  yaml_list: {{ ['a', 'yes', 1.5, None]|yaml }}
  yaml_dquote_u: {{ 'é\n'|yaml_dquote }}
  indent: |
    {{ 'a\nb\nc'|indent(4) }}
  wordcount: {{ 'a b c'|wordcount }}
  unique_str_len: {{ 'aab'|unique|list|length }}
  sequence_dict: {{ {'a': 1}|sequence }}
  traverse: {{ grains.nested|traverse('a:b:0') }}
  regex_escape: '{{ 'a.b'|regex_escape }}'
  regex_search_none: '{{ 'abc'|regex_search('x') }}'
  to_bool_list: {{ []|to_bool }}
  flatten: {{ [1, [2, [3]]]|flatten }}
  difference: {{ [1, 2, 3]|difference([2, 4]) }}
  intersect: {{ [1, 2, 3]|intersect([2, 3, 4]) }}
  symmetric_difference: {{ [1, 2]|symmetric_difference([2, 3]) }}
  avg: {{ [1, 2, 3, 4]|avg }}
  md5: {{ 'abc'|md5 }}
  base64_decode: {{ 'YWJj'|base64_decode }}
  is_ip: {{ '10.0.0.1'|is_ip }}
  is_ipv6: {{ '::1'|is_ipv6 }}
  path_join: {{ '/srv'|path_join('pillar', 'x.sls') }}
  to_num: {{ '1.5'|to_num }}
  str_to_num: {{ '12'|str_to_num }}
  is_hex: {{ '0x1f'|is_hex }}
  contains_whitespace: {{ 'a b'|contains_whitespace }}
  set_dict: {{ {'a': {}}|set_dict_key_value('a:b', 1) }}
  append_dict: {{ {}|append_dict_key_value('x:y', 1) }}
  to_snake: {{ 'someName'|to_snake_case }}
  to_camel: {{ 'some_name'|to_camelcase }}
"#,
    ),
    (
        "srv/pillar/j/control.sls",
        r#"{%- set ns = namespace(total=0) %}
{%- for i in range(10) %}
  {%- if i == 2 %}{% continue %}{% endif %}
  {%- if i > 4 %}{% break %}{% endif %}
  {%- set ns.total = ns.total + i %}
{%- endfor %}
control:
  total: {{ ns.total }}
  loop:
{%- for r in grains.roles %}
    - {{ loop.index0 }} {{ loop.first }} {{ loop.last }} {{ loop.length }} {{ loop.revindex }} {{ r }}
{%- endfor %}
  items:
{%- for k, v in grains.nested.items() %}
    {{ k }}: {{ v }}
{%- endfor %}
{% macro row(name, value='dflt') -%}
{{ name }}={{ value }}
{%- endmacro %}
  macro: {{ row('a') }} {{ row('b', 2) }}
{% set block %}
text {{ grains.os }}
{% endset %}
  set_block: {{ block|trim }}
{% filter upper %}
  filtered: yes
{% endfilter %}
  raw: '{% raw %}{{ not rendered }}{% endraw %}'
{# a comment #}
  with: {% with x = 3 %}{{ x }}{% endwith %}
  call: {% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner{% endcall %}
{% do range(1) %}
  do: done
"#,
    ),
    (
        "srv/pillar/j/salt_funcs.sls",
        r#"salt_funcs:
  pillar_get_dict: {{ salt['pillar.get']('x', {}) }}
  pillar_get_list: {{ salt['pillar.get']('x', []) }}
  pillar_get_kw: {{ salt['pillar.get']('x', default='kw') }}
  pillar_get_merge: {{ salt['pillar.get']('x', {'a': 1}, merge=True) }}
  grains_get_list_idx: {{ salt['grains.get']('roles:1') }}
  grains_get_delim: {{ salt['grains.get']('nested,a,b', delimiter=',') }}
  grains_item: {{ salt['grains.item']('os', 'nope') }}
  config_get_opt: {{ salt['config.get']('pillar_source_merging_strategy') }}
  config_get_default: {{ salt['config.get']('nope:nope', 'cd') }}
  config_get_nested_opt: {{ salt['config.get']('pillar_roots:base')|length }}
  attr_style: {{ salt.pillar.get('x', 'attr') }}
  opts_get: {{ opts.get('renderer') }}
  opts_file_client: {{ opts['file_client'] }}
  opts_minion_id: {{ opts['minion_id'] }}
  grains_id: {{ grains['id'] }}
  filter_by: {{ salt['grains.filter_by']({'Debian': {'pkg': 'apache2'}, 'RedHat': {'pkg': 'httpd'}}) }}
  filter_by_grain: {{ salt['grains.filter_by']({'De*': 'glob', 'default': 'd'}, grain='os') }}
  filter_by_list: {{ salt['grains.filter_by']({'db': 'from-list'}, grain='roles') }}
  filter_by_default: {{ salt['grains.filter_by']({'default': {'a': 1}, 'x': {}}, grain='nope') }}
  filter_by_base: {{ salt['grains.filter_by']({'base': {'a': 1, 'b': 1}, 'Debian': {'b': 2}}, base='base', merge={'c': 3}) }}
  filter_by_none: {{ salt['grains.filter_by']({'x': 1}, grain='nope') }}
  pillar_filter_by: {{ salt['pillar.filter_by']({'default': 'pd'}, pillar='role') }}
  match_glob: {{ salt['match.glob']('web*') }}
  match_glob_other: {{ salt['match.glob']('web*', minion_id='db1') }}
  match_pcre: {{ salt['match.pcre']('w.b\\d') }}
  match_list: {{ salt['match.list']('a,web1') }}
  match_grain: {{ salt['match.grain']('os:Deb*') }}
  match_grain_pcre: {{ salt['match.grain_pcre']('os:D.b') }}
  match_pillar: {{ salt['match.pillar']('role:x') }}
"#,
    ),
    (
        "srv/pillar/j/serializers.sls",
        r#"{%- load_yaml as loaded %}
a: 1
b: [x, {{ grains.os }}]
{%- endload %}
{%- load_json as js %}{"k": [1, 2]}{% endload %}
{%- import_yaml 'data/defaults.yaml' as defaults %}
{%- import_json 'data/more.json' as more %}
{%- import_text 'data/note.txt' as note %}
serializers:
  loaded: {{ loaded }}
  js: {{ js.k }}
  defaults: {{ defaults }}
  more: {{ more }}
  note: {{ note|trim }}
{%- from 'data/map.jinja' import settings with context %}
  map: {{ settings }}
{%- import 'data/map.jinja' as m %}
  imported: {{ m.settings.port }}
{% include 'data/snippet.jinja' %}
{%- from './helpers.jinja' import helper %}
  relative_after_absolute: {{ helper() }}
"#,
    ),
    // Salt resolves `./` against the directory of the template it loaded
    // last by a plain name (here data/), not the importing file's.
    ("srv/pillar/data/helpers.jinja", "{% macro helper() %}data helper{% endmacro %}\n"),
    (
        "srv/pillar/j/relative.sls",
        "{%- from './helpers.jinja' import helper %}\n{%- import_yaml './local.yaml' as local %}\nrelative:\n  \
         helper: {{ helper() }}\n  yaml: {{ local }}\n  up: {% include '../data/word.txt' %}\n",
    ),
    ("srv/pillar/data/word.txt", "{{ 'wo' ~ 'rd' }}"),
    ("srv/pillar/j/helpers.jinja", "{% macro helper() %}j helper{% endmacro %}\n"),
    ("srv/pillar/j/local.yaml", "local: {{ sls }}\n"),
    ("srv/pillar/data/defaults.yaml", "port: 80\nos: {{ grains.os }}\n"),
    ("srv/pillar/data/more.json", "{\"n\": [1, {\"x\": null}]}\n"),
    ("srv/pillar/data/note.txt", "some text\n"),
    (
        "srv/pillar/data/map.jinja",
        "{% set settings = {'port': 8080, 'os': grains.os, 'dir': tpldir} %}\n",
    ),
    ("srv/pillar/data/snippet.jinja", "  included: {{ grains.os_family }}\n"),
    (
        "srv/pillar/j/whitespace.sls",
        "whitespace:\n  {%- if True %}\n  a: 1\n  {%- endif %}\n  {% if True -%}\n  b: 2\n  {%- endif %}\n  c: |\n    line1\n    {{ 'line2' }}\n\n",
    ),
    (
        "srv/pillar/j/mutation.sls",
        r#"{% set l = [] %}
{%- for r in grains.roles %}{% do l.append(r|upper) %}{% endfor %}
{%- set d = {'a': {'x': 1}} %}
{%- do d.update({'b': 2}) %}
{%- do d['a'].update({'y': 2}, z=3) %}
{%- do d.setdefault('c', []).append(3) %}
{%- set alias = d %}
{%- do alias.update({'via_alias': True}) %}
{%- set p = salt['pillar.get']('nope', {}) %}
{%- do p.update({'k': 'v'}) %}
{%- set popped = d.pop('b') %}
{%- set ext = [1] %}{% do ext.extend([2, 3]) %}{% do ext.insert(0, 0) %}
{%- do ext.remove(2) %}
{%- set last = ext.pop() %}
{%- set cp = d.copy() %}{% do cp.update({'only_copy': 1}) %}
{%- import_yaml 'data/defaults.yaml' as defaults %}
{%- do defaults.update({'port': 81}) %}
{%- set users = {} %}
{%- for name in ['a', 'b'] %}{% do users.update({name: {'home': '/home/' ~ name}}) %}{% endfor %}
mutation:
  l: {{ l }}
  d: {{ d }}
  cp: {{ cp }}
  p: {{ p }}
  popped: {{ popped }}
  ext: {{ ext }}
  last: {{ last }}
  len: {{ l|length }}
  joined: {{ l|join('+') }}
  json: {{ d|json }}
  yaml: {{ d|yaml }}
  keys: {{ d.keys()|list }}
  items_len: {{ d.items()|list|length }}
  get: {{ d.get('a') }}
  in: {{ 'a' in d }}
  first: {{ l|first }}
  index: {{ l[0] }} {{ l[-1] }}
  loop: '{% for k, v in d.items() %}{{ k }}={{ v|string|length }};{% endfor %}'
  defaults: {{ defaults }}
  truthy: {{ 'yes' if l else 'no' }}
  sorted: {{ l|sort }}
  is_mapping: {{ d is mapping }}
  is_list: {{ l is list }}
  eq: {{ ext == [0, 1] }}
  dictsort: {{ d|dictsort|length }}
  tojson: {{ l|tojson }}
  users: {{ users }}
  selectattr: {{ users.values()|map(attribute='home')|list }}
"#,
    ),
    ("srv/pillar/j/undefined.sls", "undef: {{ grains.nope.deeper }}\n"),
    ("srv/pillar/j/raise.sls", "{{ raise('custom failure') }}\n"),
];

#[test]
fn jinja_semantics() {
    let tree = Tree::new("", JINJA_FILES);
    compare(&tree, &[case("web1", web_grains())]);
    let tree = Tree::new("allow_undefined: True\n", JINJA_FILES);
    compare(&tree, &[case("web1", web_grains())]);
}

/// `salt['match.*']` and `salt['grains.filter_by']` as a pillar SLS calls
/// them on the master, for the minion being compiled.
const MATCH_FILES: &[(&str, &str)] = &[
    ("srv/pillar/top.sls", "base:\n  '*':\n    - m.*\n"),
    (
        "srv/pillar/m/salt_suite.sls",
        // Salt's test_pillar_match_filter_by_minion_id, its three SLS.
        r#"{% set as_documented = salt['match.filter_by']({
    'web*': ['app', 'caching'],
    grains['id'] ~ '*': ['db'],
}, default='web*') %}
{% set with_minion_id = salt['match.filter_by']({
    'web*': ['app', 'caching'],
    grains['id'] ~ '*': ['db'],
}, minion_id=grains['id'], default='web*') %}
{% set regex_compound = salt['match.filter_by']({
    'web*': ['app', 'caching'],
    'E@' ~ grains['id']: ['db'],
}, minion_id=grains['id'], default='web*') %}
roles_as_documented: {{ as_documented | yaml() }}
roles_with_minion_id: {{ with_minion_id | yaml() }}
roles_regex_compound: {{ regex_compound | yaml() }}
"#,
    ),
    (
        "srv/pillar/m/filter_by.sls",
        r#"filter_by:
  glob: {{ salt['match.filter_by']({'db*': 1, 'web*': 2}, tgt_type='glob') }}
  pcre: {{ salt['match.filter_by']({'^db': 1, '^web\d': 2}, tgt_type='pcre') }}
  grain: {{ salt['match.filter_by']({'os:RedHat': 1, 'os:Debian': 2}, tgt_type='grain') }}
  list: {{ salt['match.filter_by']({'a,b': 1, 'web1,db1': 2}, tgt_type='list_') }}
  other_minion: {{ salt['match.filter_by']({'db*': 1, 'web*': 2}, minion_id='db7') }}
  compound: {{ salt['match.filter_by']({'G@os:Debian and not web*': 1, 'G@os:Debian and web*': 2}) }}
  nodegroup: {{ salt['match.filter_by']({'N@dbs': 1, 'N@webs': 2}) }}
  default: {{ salt['match.filter_by']({'x*': 1, 'default': 'dflt'}) }}
  no_default: {{ salt['match.filter_by']({'x*': 1}) }}
  other_default: {{ salt['match.filter_by']({'x*': 1, 'fallback': 3}, default='fallback') }}
  merged: {{ salt['match.filter_by']({'web*': {'a': 1, 'l': [1]}}, merge={'b': 2, 'l': [2]}) }}
  merged_lists: {{ salt['match.filter_by']({'web*': {'l': [1]}}, merge={'l': [1, 2]}, merge_lists=True) }}
  merged_none: {{ salt['match.filter_by']({'web*': None}, merge={'b': 2}) }}
  first_match: {{ salt['match.filter_by']({'*': 'star', 'web1': 'exact'}) }}
  int_key: {{ salt['match.filter_by']({1: 'one', 'web1': 'id'}) }}
  grain_delim: {{ salt['match.filter_by']({'nested|a|b|1': 'deep'}, tgt_type='grain', minion_id='|') }}
search_by:
  found: {{ salt['match.search_by']({'web': ['web*', 'G@os:Debian'], 'db': ['db*'], 'all': ['*']}) }}
  none: {{ salt['match.search_by']({'db': ['db*']}) }}
  glob: {{ salt['match.search_by']({'w': ['w*']}, tgt_type='glob') }}
ifelse:
  first: {{ salt['match.ifelse']('web*', 'web', 'db*', 'db', 'other') }}
  default: {{ salt['match.ifelse']('x*', 'x', 'other') }}
  true_false: {{ salt['match.ifelse'](False, 'never', True, 'always', 'other') }}
  one: {{ salt['match.ifelse']('only') }}
  grain: {{ salt['match.ifelse']('os:Debian', 'deb', 'other', tgt_type='grain') }}
matchers:
  glob_other_id: {{ salt['match.glob']('db*', minion_id='db2') }}
  pcre: {{ salt['match.pcre']('w.b\d') }}
  list: {{ salt['match.list']('x,web1') }}
  list_other: {{ salt['match.list'](['db9'], minion_id='db9') }}
  grain: {{ salt['match.grain']('roles:web') }}
  grain_delim: {{ salt['match.grain']('nested/a/b/1', delimiter='/') }}
  grain_pcre: {{ salt['match.grain_pcre']('fqdn:web\d\.example') }}
  ipcidr: {{ salt['match.ipcidr']('10.0.0.0/24') }}
  ipcidr_bad: {{ salt['match.ipcidr']('not an ip') }}
  compound: {{ salt['match.compound']('G@virtual:kvm and L@web1,web2') }}
  compound_other: {{ salt['match.compound']('db* or N@webs', minion_id='db3') }}
  pillar: {{ salt['match.pillar']('any:thing') }}
  data_list: {{ salt['match.data']('roles:WEB') }}
  data_dict: {{ salt['match.data']('conf:k') }}
  data_text: {{ salt['match.data']('env:pro*') }}
  data_missing: {{ salt['match.data']('nope:x') }}
  data_int: {{ salt['match.data']('count:1') }}
"#,
    ),
    (
        "srv/pillar/m/grains_filter_by.sls",
        r#"grains_filter_by:
  os_family: {{ salt['grains.filter_by']({'Debian': 'deb', 'RedHat': 'rh', 'default': 'd'}) }}
  grain: {{ salt['grains.filter_by']({'web*': 'w', 'db*': 'd'}, grain='fqdn') }}
  list_grain: {{ salt['grains.filter_by']({'db': 'is db', 'web': 'is web'}, grain='roles') }}
  none_value_goes_on: {{ salt['grains.filter_by']({'web': None, 'db': 'db'}, grain='roles') }}
  default: {{ salt['grains.filter_by']({'x': 1, 'default': 'dflt'}, grain='os') }}
  other_default: {{ salt['grains.filter_by']({'x': 1, 'alt': 2}, grain='os', default='alt') }}
  missing: {{ salt['grains.filter_by']({'x': 1}, grain='os') }}
  base: {{ salt['grains.filter_by']({'Debian': {'a': 1}, 'common': {'a': 0, 'b': 0}}, base='common') }}
  base_only: {{ salt['grains.filter_by']({'x': {'a': 1}, 'common': {'b': 0}}, base='common') }}
  merge: {{ salt['grains.filter_by']({'Debian': {'a': 1, 'n': {'x': 1}}}, merge={'n': {'y': 2}}) }}
  merge_none: {{ salt['grains.filter_by']({'x': 1}, merge={'m': 1}) }}
  int_grain: {{ salt['grains.filter_by']({2: 'two', 8: 'eight'}, grain='num_cpus') }}
  nested: {{ salt['grains.filter_by']({1: 'one', 2: 'two'}, grain='nested:a:b') }}
  glob_chars: {{ salt['grains.filter_by']({'web[0-9]*': 'glob', 'x': 1}, grain='fqdn') }}
  positional: {{ salt['grains.filter_by']({'Debian': {'a': 1}}, 'os_family', {'b': 2}) }}
"#,
    ),
];

#[test]
fn matchers_in_pillar_templates() {
    let conf = "nodegroups:\n  webs: 'web*'\n  dbs: ['db1', 'db2']\n";
    let tree = Tree::new(conf, MATCH_FILES);
    // A `data` module store on the master: Salt's match.data still
    // answers False (its matcher calls a function the module lost).
    let store = brine_proto::Value::map([
        ("roles", brine_proto::Value::Array(vec!["web".into(), "app".into()])),
        ("conf", brine_proto::Value::map([("k", brine_proto::Value::Int(1))])),
        ("env", "production".into()),
        ("count", brine_proto::Value::Int(1)),
    ]);
    tree.write_bytes("var/cache/salt/master/datastore", &store.to_file());
    compare(&tree, &[case("web1", web_grains()), case("db1", common::db_grains())]);
}
