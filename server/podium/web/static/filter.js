// The search box's filter language, a dialect of Xen Orchestra's "complex-matcher":
//
//   web                     a word: case-insensitive substring of any string anywhere in the object
//   "web server"            a quoted word (\" and \\ escape); a word also equals a number or true/false
//   power_state:running     a property; for an array, any element (tags:prod)
//   CPUs.number:2           a nested property ("quoted" segments may hold dots: addresses."a.b":x)
//   name_label:/^web\d+$/i  a regular expression (flag i optional)
//   memory.size:>=2GiB      a comparison > >= < <=; units KiB MiB GiB TiB (1024) or KB MB GB TB (1000)
//   mainIpAddress?          the property is set (not missing, null, false, "", [] or {})
//   !term                   negation: !web, !key:value, !(a b)
//   a b  (a b)  |(a b)      AND by juxtaposition, AND group, OR group; groups nest; key:|(a b) too
//
// The empty text matches everything. Parse once with compile(); the predicate it returns is cheap.

/** A malformed filter; `position` is the offset in the text where the problem is. */
export class FilterError extends Error {
  constructor(message, position) {
    super(`${message} at ${position}`);
    this.name = "FilterError";
    this.position = position;
  }
}

const UNITS = { kib: 2 ** 10, mib: 2 ** 20, gib: 2 ** 30, tib: 2 ** 40, kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12 };
const NUMBER = /^([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?)(kib|mib|gib|tib|kb|mb|gb|tb)?$/i;
const NUMERIC_STRING = /^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?\s*$/i;
const STOP = /[\s()":?!|]/; // ends a bare word
const RAW_WORD = /^[^\s()":?!|/<>][^\s()":?!|]*$/; // a word toString() may leave unquoted
const RAW_SEGMENT = /^[^\s()":?!|/<>.][^\s()":?!|.]*$/;
const MAX_DEPTH = 64;

/** "2GiB" → 2147483648, "1.5" → 1.5; null when the text is no number. */
function parseNumber(text) {
  const m = NUMBER.exec(text);
  if (!m) return null;
  const n = Number(m[1]) * (m[2] ? UNITS[m[2].toLowerCase()] : 1);
  return Number.isFinite(n) ? n : null;
}

/**
 * Parses a filter into a tree of plain objects: {type: "all"} (the empty filter), {type: "and"|"or",
 * children}, {type: "not", child}, {type: "property", path: [keys], child}, {type: "has", path},
 * {type: "string", value}, {type: "regex", pattern, flags}, {type: "compare", op, value: number}.
 * @param {string} text
 * @returns {object} the tree
 * @throws {FilterError} when the text is malformed, e.g. `unclosed "(" at 5`
 */
export function parse(text) {
  const end = text.length;
  let pos = 0;
  let depth = 0;
  const fail = (message, at = pos) => { throw new FilterError(message, at); };
  const skipSpace = () => { while (pos < end && /\s/.test(text[pos])) pos++; };
  const bareWord = () => {
    const start = pos;
    while (pos < end && !STOP.test(text[pos])) pos++;
    return text.slice(start, pos);
  };
  const quoted = () => {
    const start = pos++;
    let value = "";
    while (pos < end && text[pos] !== '"') {
      if (text[pos] === "\\") pos++;
      if (pos < end) value += text[pos++];
    }
    if (pos >= end) fail("unterminated string", start);
    pos++;
    return value;
  };
  const regex = () => {
    const start = pos++;
    let inClass = false; // a "/" inside [...] does not end the pattern, as in JavaScript
    while (pos < end && (text[pos] !== "/" || inClass)) {
      const c = text[pos++];
      if (c === "\\") pos++;
      else if (c === "[") inClass = true;
      else if (c === "]") inClass = false;
    }
    if (pos >= end) fail("unterminated regular expression", start);
    const pattern = text.slice(start + 1, pos++);
    const flagsAt = pos;
    while (pos < end && /[a-z]/i.test(text[pos])) pos++;
    const flags = text.slice(flagsAt, pos);
    if (flags !== "" && flags !== "i") fail(`unsupported regular expression flag "${flags}"`, flagsAt);
    try {
      new RegExp(pattern, flags);
    } catch (error) {
      fail(`invalid regular expression (${error.message.split(": ").pop()})`, start);
    }
    return { type: "regex", pattern, flags };
  };
  const comparison = () => {
    const op = text[pos + 1] === "=" ? text.slice(pos, pos + 2) : text[pos];
    pos += op.length;
    const at = pos;
    const value = parseNumber(bareWord());
    if (value === null) fail(`expected a number after "${op}"`, at);
    return { type: "compare", op, value };
  };
  const segment = () => {
    if (text[pos] === '"') return quoted();
    const start = pos;
    while (pos < end && !STOP.test(text[pos]) && text[pos] !== ".") pos++;
    return pos > start ? text.slice(start, pos) : null;
  };
  const path = () => {
    const segments = [];
    for (;;) {
      const key = segment();
      if (key === null) return null;
      segments.push(key);
      if (text[pos] !== ".") return segments;
      pos++;
    }
  };
  const operand = (after) => {
    skipSpace();
    if (pos >= end || text[pos] === ")") fail(`expected a term after "${after}"`);
    return term();
  };
  const group = (type, start, label) => {
    pos++; // the "("
    const children = terms(true);
    if (pos >= end) fail(`unclosed "${label}"`, start);
    pos++;
    if (children.length === 0) fail("empty group", start);
    return children.length === 1 ? children[0] : { type, children };
  };
  const propertyOrWord = () => {
    const start = pos;
    const keys = path();
    const mark = keys === null ? "" : text[pos];
    if (mark === ":" || mark === "?") {
      pos++;
      return mark === "?" ? { type: "has", path: keys } : { type: "property", path: keys, child: operand(":") };
    }
    pos = start;
    if (text[pos] === '"') return { type: "string", value: quoted() };
    const word = bareWord();
    if (word === "") fail(`unexpected "${text[pos]}"`);
    return { type: "string", value: word };
  };
  const term = () => {
    const start = pos;
    if (++depth > MAX_DEPTH) fail("too deeply nested");
    let node;
    const c = text[pos];
    if (c === "!") {
      pos++;
      node = { type: "not", child: operand("!") };
    } else if (c === "|") {
      pos++;
      if (text[pos] !== "(") fail('expected "(" after "|"');
      node = group("or", start, "|(");
    } else if (c === "(") node = group("and", start, "(");
    else if (c === "/") node = regex();
    else if (c === "<" || c === ">") node = comparison();
    else node = propertyOrWord();
    depth--;
    return node;
  };
  const terms = (inGroup) => {
    const children = [];
    for (;;) {
      skipSpace();
      if (pos >= end) return children;
      if (text[pos] === ")") {
        if (inGroup) return children;
        fail('unexpected ")"');
      }
      children.push(term());
    }
  };
  const children = terms(false);
  if (children.length === 0) return { type: "all" };
  return children.length === 1 ? children[0] : { type: "and", children };
}

const quote = (s) => `"${s.replace(/[\\"]/g, "\\$&")}"`;

function format(node, nested) {
  switch (node.type) {
    case "all": return "";
    case "and": {
      const terms = node.children.map((c) => format(c, true)).join(" ");
      return nested ? `(${terms})` : terms;
    }
    case "or": return `|(${node.children.map((c) => format(c, true)).join(" ")})`;
    case "not": return `!${format(node.child, true)}`;
    case "property":
    case "has": {
      const keys = node.path.map((k) => (RAW_SEGMENT.test(k) ? k : quote(k))).join(".");
      return node.type === "has" ? `${keys}?` : `${keys}:${format(node.child, true)}`;
    }
    case "string": return RAW_WORD.test(node.value) ? node.value : quote(node.value);
    case "regex": return `/${node.pattern}/${node.flags}`;
    case "compare": return `${node.op}${node.value}`;
    default:
      throw new TypeError(`unknown filter node "${node.type}"`);
  }
}

/**
 * The canonical text of a tree: parse(toString(tree)) equals tree.
 * @param {object} tree from parse()
 * @returns {string}
 */
export function toString(tree) {
  return format(tree, false);
}

/** A test of one scalar, applied to a value and, recursively, to everything inside it. */
function deep(test) {
  const walk = (v) => {
    if (typeof v !== "object" || v === null) return test(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) if (walk(v[i])) return true;
      return false;
    }
    for (const key in v) if (walk(v[key])) return true;
    return false;
  };
  return walk;
}

/** Follows `path` from a value, fanning out over arrays met on the way (VIFs.MAC). */
function atPath(path, test) {
  const at = (v, i) => {
    if (i === path.length) return test(v);
    if (typeof v !== "object" || v === null) return false;
    const key = path[i];
    if (Array.isArray(v) && !Object.hasOwn(v, key)) {
      for (let j = 0; j < v.length; j++) if (at(v[j], i)) return true;
      return false;
    }
    return Object.hasOwn(v, key) && at(v[key], i + 1);
  };
  return (v) => at(v, 0);
}

function isSet(v) {
  if (v === undefined || v === null || v === false || v === "") return false;
  if (typeof v !== "object") return true;
  if (Array.isArray(v)) return v.length > 0;
  for (const _ in v) return true;
  return false;
}

const COMPARE = { ">": (a, b) => a > b, ">=": (a, b) => a >= b, "<": (a, b) => a < b, "<=": (a, b) => a <= b };

function compileNode(node) {
  switch (node.type) {
    case "all": return () => true;
    case "and":
    case "or": {
      const tests = node.children.map(compileNode);
      const want = node.type === "or"; // the answer that ends the loop early
      return (v) => {
        for (let i = 0; i < tests.length; i++) if (tests[i](v) === want) return want;
        return !want;
      };
    }
    case "not": {
      const test = compileNode(node.child);
      return (v) => !test(v);
    }
    case "property": return atPath(node.path, compileNode(node.child));
    case "has": return atPath(node.path, isSet);
    case "string": {
      const needle = node.value.toLowerCase();
      const number = parseNumber(node.value);
      const bool = needle === "true" ? true : needle === "false" ? false : null;
      return deep((v) => {
        if (typeof v === "string") return v.toLowerCase().includes(needle);
        if (typeof v === "number") return v === number;
        return typeof v === "boolean" && v === bool;
      });
    }
    case "regex": {
      const re = new RegExp(node.pattern, node.flags);
      return deep((v) => typeof v === "string" && re.test(v));
    }
    case "compare": {
      const compare = COMPARE[node.op];
      const bound = node.value;
      return deep((v) => {
        if (typeof v === "string" && NUMERIC_STRING.test(v)) v = Number(v);
        return typeof v === "number" && compare(v, bound);
      });
    }
    default:
      throw new TypeError(`unknown filter node "${node.type}"`);
  }
}

/**
 * Turns a filter into a predicate on objects. Everything (lower-cased needles, regular expressions, unit
 * conversions) is worked out here, once, so that filtering thousands of objects per keystroke stays cheap.
 * @param {string|object} filter the text, or a tree from parse()
 * @returns {(object: object) => boolean}
 * @throws {FilterError} when the text is malformed
 */
export function compile(filter) {
  return compileNode(typeof filter === "string" ? parse(filter) : filter);
}
