// The series selectors of a PromQL expression, for tests that check what
// alerting rules and dashboard queries name against a real Prometheus. A
// small tokenizer, not a parser: enough for PromQL as Prometheus prints
// it back (/api/v1/rules) and as ops/grafana/dashboard.mjs writes it.

// Words that are PromQL's own, not metric names: operators, and the
// aggregations (followed by `by (...)` as often as by their argument).
const KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'atan2',
  'sum', 'min', 'max', 'avg', 'group', 'stddev', 'stdvar', 'count', 'count_values', 'bottomk', 'topk', 'quantile']);
// Words followed by a parenthesised list of label names, not an argument.
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);

/** The end of the string literal that starts at `i` (past its closing quote). */
function stringEnd(s, i) {
  const quote = s[i];
  let j = i + 1;
  while (j < s.length && s[j] !== quote) j += s[j] === '\\' ? 2 : 1;
  return j + 1;
}

/** The value of the string literal s[i..end) (Go's escapes, as JSON's for what PromQL uses). */
function stringValue(s, i, end) {
  const body = s.slice(i + 1, end - 1);
  if (s[i] === '`') return body;
  return JSON.parse(`"${s[i] === "'" ? body.replaceAll("\\'", "'").replaceAll('"', '\\"') : body}"`);
}

/** Label matchers in `{...}` starting at `i`: [{ label, op, value }], and where they end. */
function matchers(s, i) {
  const out = [];
  let j = i + 1;
  for (;;) {
    while (/[\s,]/.test(s[j])) j += 1;
    if (s[j] === '}') return { list: out, end: j + 1 };
    const m = /^([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*/.exec(s.slice(j));
    if (!m) throw new Error(`cannot read the label matchers at ${j} of ${s}`);
    j += m[0].length;
    const end = stringEnd(s, j);
    out.push({ label: m[1], op: m[2], value: stringValue(s, j, end) });
    j = end;
  }
}

/** Every series selector of `expr`: [{ name, matchers: [{ label, op, value }] }]. */
export function selectors(expr) {
  const out = [];
  let i = 0;
  while (i < expr.length) {
    const c = expr[i];
    if (c === '"' || c === "'" || c === '`') {
      i = stringEnd(expr, i);
    } else if (c === '[') {
      i = expr.indexOf(']', i) + 1; // a range or subquery: durations
    } else if (/[0-9.]/.test(c)) {
      i += /^[0-9.a-zA-Z_]+/.exec(expr.slice(i))[0].length; // 1e3, 0x1f, 5m
    } else if (/[a-zA-Z_:]/.test(c)) {
      const word = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i))[0];
      i += word.length;
      while (/\s/.test(expr[i])) i += 1;
      if (LABEL_LISTS.has(word.toLowerCase()) && expr[i] === '(') {
        i = expr.indexOf(')', i) + 1;
      } else if (expr[i] === '(' || KEYWORDS.has(word.toLowerCase())) {
        // a function, or an operator
      } else if (expr[i] === '{') {
        const { list, end } = matchers(expr, i);
        out.push({ name: word, matchers: list });
        i = end;
      } else {
        out.push({ name: word, matchers: [] });
      }
    } else if (c === '{') {
      const { list, end } = matchers(expr, i); // {__name__="x", ...}
      const name = list.find((m) => m.label === '__name__' && m.op === '=');
      out.push({ name: name ? name.value : '', matchers: list.filter((m) => m !== name) });
      i = end;
    } else {
      i += 1;
    }
  }
  return out;
}

/** A selector as PromQL text. */
export function selectorText({ name, matchers: list }) {
  const inner = list.map((m) => `${m.label}${m.op}${JSON.stringify(m.value)}`).join(',');
  return inner ? `${name}{${inner}}` : name;
}

/**
 * The series that `selector` expects to exist: a `=~` of alternatives
 * spelt out (`limit=~"participants|meetings"` names both).
 */
export function expectedSeries(selector) {
  let variants = [{ name: selector.name, matchers: [] }];
  for (const m of selector.matchers) {
    const literals = m.op === '=~' && /^[A-Za-z0-9_.:+-]+(\|[A-Za-z0-9_.:+-]+)*$/.test(m.value)
      ? m.value.split('|') : null;
    const choices = literals ? literals.map((v) => ({ label: m.label, op: '=', value: v })) : [m];
    variants = variants.flatMap((v) => choices.map((ch) => ({ name: v.name, matchers: [...v.matchers, ch] })));
  }
  return variants;
}
