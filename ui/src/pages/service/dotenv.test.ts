/// <reference types="node" />
// The .env reader of the Environment tab: `npx tsx --test src/pages/service/dotenv.test.ts`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { parseDotenv } from "./dotenv";

const vars = (text: string) => Object.fromEntries(parseDotenv(text).entries.map((e) => [e.name, e.value]));

test("KEY=VALUE lines, comments, blank lines and the export prefix", () => {
  const text = "# settings\n\nexport GREETING=hi\nPORT=8080\n  SPACED = yes  \n";
  assert.deepEqual(vars(text), { GREETING: "hi", PORT: "8080", SPACED: "yes" });
  assert.deepEqual(parseDotenv(text).errors, []);
});

test("quotes: single ones are literal, double ones read escapes, both may span lines", () => {
  const text = [
    `A='a \\n b # not a comment'`,
    `B="tab\\there \\"quoted\\""`,
    `C="line1`,
    `line2"`,
    `D='x=y'  # a comment after the quote`,
    `E=`,
  ].join("\n");
  assert.deepEqual(vars(text), {
    A: "a \\n b # not a comment",
    B: 'tab\there "quoted"',
    C: "line1\nline2",
    D: "x=y",
    E: "",
  });
});

test("an unquoted value ends at a comment that follows a space, keeps a # inside it", () => {
  assert.deepEqual(vars("URL=http://x/#frag # the home page\nX=a#b"), { URL: "http://x/#frag", X: "a#b" });
});

test("each line that cannot be read gets its own error, with its line number", () => {
  const r = parseDotenv("GOOD=1\nNOEQUALS\n1BAD=x\nQ=\"never closed\nLATER=2");
  assert.deepEqual(
    r.errors.map((e) => e.line),
    [2, 3, 4],
  );
  assert.match(r.errors[0]?.error ?? "", /NAME=VALUE/);
  assert.match(r.errors[1]?.error ?? "", /not a variable name/);
  assert.match(r.errors[2]?.error ?? "", /never closed/);
  // An unclosed quote swallows the rest of the file, as it would for any reader.
  assert.deepEqual(vars("GOOD=1\nNOEQUALS"), { GOOD: "1" });
});

test("a name set twice keeps its last value, at its last line", () => {
  const r = parseDotenv("A=1\nB=2\nA=3\r\n");
  assert.deepEqual(
    r.entries.map((e) => [e.name, e.value, e.line]),
    [
      ["B", "2", 2],
      ["A", "3", 3],
    ],
  );
});

test("text after a closing quote is an error, not part of the value", () => {
  const r = parseDotenv(`A="x" y`);
  assert.equal(r.entries.length, 0);
  assert.match(r.errors[0]?.error ?? "", /after the closing quote|follow the closing quote/);
});
