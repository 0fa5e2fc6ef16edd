// Tokenizes every policy in examples/ with the extension's TextMate grammar, through the
// same engine VS Code uses (vscode-textmate + vscode-oniguruma), and checks the scopes
// given to keywords, strings, entity references, comments, operators and annotations.
// Run: node --test test/   (from editors/vscode, after npm ci)
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const fs = require("node:fs");
const path = require("node:path");
const vsctm = require("vscode-textmate");
const oniguruma = require("vscode-oniguruma");

const ROOT = path.resolve(__dirname, "..", "..", "..");
const EXAMPLES = path.join(ROOT, "examples");
const GRAMMAR = path.join(__dirname, "..", "syntaxes", "mcpp.tmLanguage.json");

let grammarPromise;
function grammar() {
  if (!grammarPromise) {
    const wasm = fs.readFileSync(require.resolve("vscode-oniguruma/release/onig.wasm"));
    const onigLib = oniguruma.loadWASM(wasm.buffer).then(() => ({
      createOnigScanner: (patterns) => new oniguruma.OnigScanner(patterns),
      createOnigString: (s) => new oniguruma.OnigString(s),
    }));
    const registry = new vsctm.Registry({
      onigLib,
      loadGrammar: async (scopeName) =>
        scopeName === "source.mcpp"
          ? vsctm.parseRawGrammar(fs.readFileSync(GRAMMAR, "utf8"), GRAMMAR)
          : null,
    });
    grammarPromise = registry.loadGrammar("source.mcpp");
  }
  return grammarPromise;
}

/** [{text, scopes, line}] for every token of `source`. */
async function tokenize(source) {
  const g = await grammar();
  let state = vsctm.INITIAL;
  const out = [];
  source.split(/\r?\n/).forEach((line, n) => {
    const r = g.tokenizeLine(line, state);
    for (const tok of r.tokens) {
      out.push({ text: line.slice(tok.startIndex, tok.endIndex), scopes: tok.scopes, line: n + 1 });
    }
    state = r.ruleStack;
  });
  return out;
}

function has(tok, scope) {
  return tok.scopes.some((s) => s === scope || s.startsWith(scope + "."));
}

function tokensOf(tokens, text) {
  return tokens.filter((t) => t.text.trim() === text);
}

const files = fs.readdirSync(EXAMPLES).filter((f) => f.endsWith(".mcpp")).sort();

test("there are examples to tokenize", () => {
  assert.ok(files.length >= 5, `found ${files.length} examples in ${EXAMPLES}`);
});

for (const file of files) {
  test(`scopes in examples/${file}`, async () => {
    const source = fs.readFileSync(path.join(EXAMPLES, file), "utf8");
    const tokens = await tokenize(source);

    // nothing is left unscoped except whitespace
    for (const t of tokens) {
      if (t.text.trim() && t.scopes.length === 1) {
        assert.fail(`${file}:${t.line}: ${JSON.stringify(t.text)} has no scope beyond source.mcpp`);
      }
    }

    // comments: whole lines starting with //
    const commentLines = source.split(/\r?\n/).map((l, i) => [l, i + 1]).filter(([l]) => l.trimStart().startsWith("//"));
    for (const [, n] of commentLines) {
      const onLine = tokens.filter((t) => t.line === n && t.text.trim());
      assert.ok(onLine.length > 0 && onLine.every((t) => has(t, "comment.line.double-slash.mcpp")),
        `${file}:${n}: comment line not scoped as a comment`);
    }

    // statement keywords
    for (const kw of ["permit", "forbid"]) {
      for (const t of tokensOf(tokens, kw).filter((t) => !has(t, "comment") && !has(t, "string"))) {
        assert.ok(has(t, "keyword.control.effect.mcpp"), `${file}:${t.line}: ${kw} → ${t.scopes}`);
      }
    }
    for (const kw of ["default", "hide", "group", "limit", "assert"]) {
      for (const t of tokensOf(tokens, kw).filter((t) => !has(t, "comment") && !has(t, "string"))) {
        assert.ok(has(t, "keyword.other.declaration.mcpp"), `${file}:${t.line}: ${kw} → ${t.scopes}`);
      }
    }
    for (const kw of ["when", "unless"]) {
      for (const t of tokensOf(tokens, kw).filter((t) => !has(t, "comment") && !has(t, "string"))) {
        assert.ok(has(t, "keyword.control.clause.mcpp"), `${file}:${t.line}: ${kw} → ${t.scopes}`);
      }
    }
    for (const v of ["principal", "action", "resource", "context"]) {
      for (const t of tokensOf(tokens, v).filter((t) => !has(t, "comment") && !has(t, "string"))) {
        assert.ok(has(t, "variable.language.mcpp"), `${file}:${t.line}: ${v} → ${t.scopes}`);
      }
    }

    // entity references: Type, ::, "id"
    const types = tokens.filter((t) => ["Action", "Group", "Grant", "Server"].includes(t.text) && !has(t, "comment"));
    assert.ok(types.length > 0, `${file}: no entity references found`);
    for (const t of types) {
      assert.ok(has(t, "entity.name.type.mcpp") && has(t, "meta.entity-reference.mcpp"), `${file}:${t.line}: ${t.scopes}`);
      const i = tokens.indexOf(t);
      assert.ok(has(tokens[i + 1], "punctuation.separator.namespace.mcpp"), `${file}:${t.line}: :: → ${tokens[i + 1].scopes}`);
      assert.ok(has(tokens[i + 2], "string.quoted.double.entity-id.mcpp"), `${file}:${t.line}: id → ${tokens[i + 2].scopes}`);
    }

    // strings: every double-quoted literal outside comments is a string (or a regex in matches())
    const quoted = tokens.filter((t) => t.text.startsWith('"') && !has(t, "comment"));
    for (const t of quoted) {
      assert.ok(has(t, "string"), `${file}:${t.line}: ${t.text} → ${t.scopes}`);
    }

    // operators
    for (const op of ["==", "!=", "<=", ">=", ">", "<"]) {
      for (const t of tokensOf(tokens, op).filter((t) => !has(t, "comment") && !has(t, "string"))) {
        assert.ok(has(t, "keyword.operator.comparison.mcpp"), `${file}:${t.line}: ${op} → ${t.scopes}`);
      }
    }
    for (const op of ["&&", "||", "!"]) {
      for (const t of tokensOf(tokens, op).filter((t) => !has(t, "comment") && !has(t, "string"))) {
        assert.ok(has(t, "keyword.operator.logical.mcpp"), `${file}:${t.line}: ${op} → ${t.scopes}`);
      }
    }
    for (const op of ["in", "like", "has"]) {
      for (const t of tokensOf(tokens, op).filter((t) => !has(t, "comment") && !has(t, "string") && !has(t, "variable.other.property"))) {
        assert.ok(has(t, "keyword.operator.word.mcpp"), `${file}:${t.line}: ${op} → ${t.scopes}`);
      }
    }

    // annotations
    for (const t of tokens.filter((t) => t.text === "@" && !has(t, "comment") && !has(t, "string"))) {
      const name = tokens[tokens.indexOf(t) + 1];
      assert.ok(has(t, "punctuation.definition.annotation.mcpp"), `${file}:${t.line}: @ → ${t.scopes}`);
      assert.ok(has(name, "storage.type.annotation.mcpp"), `${file}:${t.line}: ${name.text} → ${name.scopes}`);
    }
  });
}

test("scopes of a constructed policy cover every construct", async () => {
  const src = [
    '@id("x") // trailing comment',
    'limit "c" (principal in Group::"ops", action in [Action::"a", Action::"b"], resource is Server)',
    "  max 5 per hour scope policy increment context.input.bytes;",
    'forbid (principal, action, resource) when { context.input.url.matches("^https?://[^/]+\\\\.evil$") ||',
    '  context.input["x-key"] like "sk_*" || !(context.input has n) || context.input.n >= 1.5e3 ||',
    "  [1, 2].containsAny(context.input.tags) || if true then false else null };",
    "default allow;",
    "assert hidden (principal, action == Action::\"get_secret\", resource);",
  ].join("\n");
  const tokens = await tokenize(src);
  const scopeOf = (text, n = 0) => tokens.filter((t) => t.text === text)[n].scopes.join(" ");
  assert.match(scopeOf("max"), /keyword\.other\.option\.mcpp/);
  assert.match(scopeOf("hour"), /constant\.language\.window\.mcpp/);
  assert.match(scopeOf("policy"), /constant\.language\.scope\.mcpp/);
  assert.match(scopeOf("increment"), /keyword\.other\.option\.mcpp/);
  assert.match(scopeOf("5"), /constant\.numeric\.mcpp/);
  assert.match(scopeOf("1.5e3"), /constant\.numeric\.mcpp/);
  assert.match(tokens.find((t) => t.text.startsWith("^https?://")).scopes.join(" "), /string\.regexp\.mcpp/);
  assert.match(scopeOf("matches"), /support\.function\.method\.mcpp/);
  assert.match(scopeOf("containsAny"), /support\.function\.method\.mcpp/);
  assert.match(scopeOf("url"), /variable\.other\.property\.mcpp/);
  assert.match(scopeOf("allow"), /constant\.language\.decision\.mcpp/);
  assert.match(scopeOf("hidden"), /constant\.language\.decision\.mcpp/);
  assert.match(scopeOf("true"), /constant\.language\.mcpp/);
  assert.match(scopeOf("null"), /constant\.language\.mcpp/);
  assert.match(scopeOf("if"), /keyword\.control\.conditional\.mcpp/);
  assert.match(scopeOf("is"), /keyword\.operator\.word\.mcpp/);
  assert.match(scopeOf(" trailing comment"), /comment\.line\.double-slash\.mcpp/);
  assert.match(scopeOf("//"), /punctuation\.definition\.comment\.mcpp/);
  assert.match(scopeOf("sk_*"), /string\.quoted\.double\.mcpp/);
  assert.match(scopeOf("x-key"), /string\.quoted\.double\.mcpp/);
  assert.match(scopeOf("\\\\"), /constant\.character\.escape\.mcpp/);
});
