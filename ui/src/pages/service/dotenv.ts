// A .env file read as the CLI's `hoist env import` reads one (it uses the dotenvy crate):
// KEY=VALUE lines, `#` comments, blank lines, an `export ` prefix, single quotes (literal),
// double quotes (with \n, \t, \", \\ escapes), values over several lines inside quotes, and a
// ` #` comment after an unquoted value. Each line that cannot be read gets its own error, so
// the page can show them all before anything is sent.

export interface DotenvEntry {
  /** The 1-based line the variable starts on. */
  line: number;
  name: string;
  value: string;
}

export interface DotenvError {
  line: number;
  error: string;
}

export interface Dotenv {
  /** The variables in file order; a name set twice keeps its last value (as dotenvy does). */
  entries: DotenvEntry[];
  errors: DotenvError[];
}

/** The server's rule for a variable name (`EnvVars::validate_name`). */
export const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const ENV_NAME_RULE = "A name is letters, digits and _, not starting with a digit.";

const ESCAPES: Record<string, string> = { n: "\n", r: "\r", t: "\t", '"': '"', "\\": "\\", $: "$" };

/** What may follow a closing quote: nothing, or a comment. */
const trailerOk = (rest: string) => /^\s*(#.*)?$/.test(rest);

export function parseDotenv(text: string): Dotenv {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const found = new Map<string, DotenvEntry>();
  const errors: DotenvError[] = [];
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let body = (lines[i] ?? "").trim();
    if (body === "" || body.startsWith("#")) continue;
    body = body.replace(/^export\s+/, "");
    const eq = body.indexOf("=");
    if (eq < 0) {
      errors.push({ line: lineNo, error: "Expected NAME=VALUE (no '=' on this line)." });
      continue;
    }
    const name = body.slice(0, eq).trim();
    if (!ENV_NAME.test(name)) {
      errors.push({ line: lineNo, error: `"${name}" is not a variable name. ${ENV_NAME_RULE}` });
      continue;
    }
    let rest = body.slice(eq + 1).trimStart();
    let value: string;
    const quote = rest[0];
    if (quote === "'" || quote === '"') {
      // A quoted value may go on over the next lines until its closing quote.
      let out = "";
      let j = 1;
      let closed = false;
      let end = i;
      for (;;) {
        while (j < rest.length) {
          const c = rest[j] ?? "";
          if (c === quote) {
            closed = true;
            break;
          }
          if (quote === '"' && c === "\\" && j + 1 < rest.length) {
            const next = rest[j + 1] ?? "";
            out += ESCAPES[next] ?? `\\${next}`;
            j += 2;
            continue;
          }
          out += c;
          j++;
        }
        if (closed || end + 1 >= lines.length) break;
        end++;
        out += "\n";
        rest = rest.slice(0, j) + (lines[end] ?? "");
      }
      if (!closed) {
        errors.push({ line: lineNo, error: `The ${quote === "'" ? "single" : "double"} quote is never closed.` });
        i = end;
        continue;
      }
      i = end;
      if (!trailerOk(rest.slice(j + 1))) {
        errors.push({ line: end + 1, error: "Only a # comment may follow the closing quote." });
        continue;
      }
      value = out;
    } else {
      // Unquoted: up to a comment that follows whitespace, trimmed.
      const hash = rest.search(/\s#/);
      value = (hash >= 0 ? rest.slice(0, hash) : rest).trim();
    }
    if (value.includes("\0")) {
      errors.push({ line: lineNo, error: "A value cannot hold a NUL byte." });
      continue;
    }
    found.delete(name);
    found.set(name, { line: lineNo, name, value });
  }
  return { entries: [...found.values()], errors };
}
