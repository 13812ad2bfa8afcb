// Where each value of a request body starts (1-based line and column), by its path in ARM's
// notation (`properties.template.resources[0].name`), read from the text as ARM's deserializer
// reads it: JSON plus property names without quotes and comments (armLenientJson's dialect).
// ARM's errors give these positions (TemplateViolation's lineNumber and linePosition) after the
// template engine, which sees the parsed JSON only, named the path.

export interface JsonPosition {
  line: number;
  column: number;
}

/**
 * Every value's position in `text`, keyed by its path with property names lower-cased (ARM's
 * names ignore case). A text that is not JSON gives the positions read before the problem.
 *
 * @example
 * jsonPositions('{"a": [1, {"b": 2}]}').get("a[1].b") // { line: 1, column: 18 }
 */
export function jsonPositions(text: string): Map<string, JsonPosition> {
  const out = new Map<string, JsonPosition>();
  let i = 0;
  let line = 1;
  let lineStart = 0;
  const here = (): JsonPosition => ({ line, column: i - lineStart + 1 });
  const advance = (n = 1) => {
    for (let k = 0; k < n && i < text.length; k++, i++) {
      if (text[i] === "\n") {
        line++;
        lineStart = i + 1;
      }
    }
  };
  const skipSpace = () => {
    for (;;) {
      if (/\s/.test(text[i] ?? "")) advance();
      else if (text.startsWith("//", i)) while (i < text.length && text[i] !== "\n") advance();
      else if (text.startsWith("/*", i)) {
        const end = text.indexOf("*/", i + 2);
        advance((end < 0 ? text.length : end + 2) - i);
      } else return;
    }
  };
  const readString = (): string => {
    const start = i;
    advance();
    while (i < text.length && text[i] !== '"') advance(text[i] === "\\" ? 2 : 1);
    advance();
    try {
      return JSON.parse(text.slice(start, i)) as string;
    } catch {
      return text.slice(start + 1, i - 1);
    }
  };
  const value = (path: string, depth: number): void => {
    skipSpace();
    if (i >= text.length || depth > 200) throw new RangeError("Cannot read the JSON: it ends early or nests too deep");
    out.set(path, here());
    const ch = text[i];
    if (ch === "{") {
      advance();
      for (skipSpace(); text[i] !== "}"; skipSpace()) {
        let key: string;
        if (text[i] === '"') key = readString();
        else {
          const m = /^[A-Za-z_$][\w$]*/.exec(text.slice(i, i + 256));
          if (!m) throw new RangeError("Cannot read the JSON: a property name is expected");
          key = m[0];
          advance(key.length);
        }
        skipSpace();
        if (text[i] !== ":") throw new RangeError("Cannot read the JSON: ':' is expected");
        advance();
        value(path ? `${path}.${key.toLowerCase()}` : key.toLowerCase(), depth + 1);
        skipSpace();
        if (text[i] === ",") advance();
        else if (text[i] !== "}") throw new RangeError("Cannot read the JSON: ',' or '}' is expected");
      }
      advance();
    } else if (ch === "[") {
      advance();
      let n = 0;
      for (skipSpace(); text[i] !== "]"; skipSpace()) {
        value(`${path}[${n++}]`, depth + 1);
        skipSpace();
        if (text[i] === ",") advance();
        else if (text[i] !== "]") throw new RangeError("Cannot read the JSON: ',' or ']' is expected");
      }
      advance();
    } else if (ch === '"') {
      readString();
    } else {
      const m = /^[^\s,\]}]+/.exec(text.slice(i, i + 512));
      advance(m ? m[0].length : 1);
    }
  };
  try {
    value("", 0);
  } catch {
    // What was read so far stays usable.
  }
  return out;
}
