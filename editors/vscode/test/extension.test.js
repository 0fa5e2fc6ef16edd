// Activates extension.js against stand-ins for the `vscode` API and the language client,
// and checks what it would start: `mcpp lsp` (or the configured executable), for .mcpp
// documents, with the `mcpp` settings section synchronised, and its commands registered.
"use strict";

const test = require("node:test");
const assert = require("node:assert/strict");
const Module = require("node:module");
const path = require("node:path");

function load(settings, startError) {
  const calls = { commands: [], clients: [], watchers: [], messages: [] };
  const config = { get: (key) => settings[key] };
  const vscode = {
    workspace: {
      getConfiguration: (section) => (section === "mcpp" ? config : { get: () => undefined }),
      createFileSystemWatcher: (glob) => (calls.watchers.push(glob), { dispose() {} }),
      onDidChangeConfiguration: () => ({ dispose() {} }),
    },
    window: {
      createOutputChannel: (name) => ({ name, appendLine() {}, dispose() {} }),
      showErrorMessage: (m) => calls.messages.push(m),
      showWarningMessage: (m) => calls.messages.push(m),
      activeTextEditor: undefined,
    },
    commands: { registerCommand: (id, fn) => (calls.commands.push(id), { dispose() {} }) },
  };
  class LanguageClient {
    constructor(id, name, serverOptions, clientOptions) {
      this.args = { id, name, serverOptions, clientOptions };
      calls.clients.push(this);
    }
    start() { return startError === undefined ? Promise.resolve() : Promise.reject(startError); }
    stop() { return Promise.resolve(); }
    dispose() {}
  }
  const fakes = { vscode, "vscode-languageclient/node": { LanguageClient, TransportKind: { stdio: 0 } } };
  const original = Module._load;
  Module._load = function (request, parent, isMain) {
    if (request in fakes) return fakes[request];
    return original.call(this, request, parent, isMain);
  };
  try {
    const file = path.join(__dirname, "..", "extension.js");
    delete require.cache[file];
    return { ext: require(file), calls };
  } finally {
    Module._load = original;
  }
}

test("activation starts `mcpp lsp` for .mcpp documents", async () => {
  const { ext, calls } = load({});
  const subscriptions = [];
  await ext.activate({ subscriptions });
  assert.equal(calls.clients.length, 1);
  const { serverOptions, clientOptions } = calls.clients[0].args;
  assert.equal(serverOptions.command, "mcpp");
  assert.deepEqual(serverOptions.args, ["lsp"]);
  assert.deepEqual(clientOptions.documentSelector.map((s) => s.language), ["mcpp", "mcpp"]);
  assert.equal(clientOptions.synchronize.configurationSection, "mcpp");
  assert.deepEqual(calls.commands.sort(), ["mcpp.analyzeNow", "mcpp.evaluateCall", "mcpp.restartServer"]);
  assert.ok(subscriptions.length >= 4);
});

test("the server path and arguments come from the settings", async () => {
  const { ext, calls } = load({ "server.path": "/opt/venv/bin/mcpp", "server.args": ["lsp", "--verbose"] });
  await ext.activate({ subscriptions: [] });
  const { serverOptions } = calls.clients[0].args;
  assert.equal(serverOptions.command, "/opt/venv/bin/mcpp");
  assert.deepEqual(serverOptions.args, ["lsp", "--verbose"]);
});

test("the commands the package declares are the ones the extension registers", async () => {
  const pkg = require("../package.json");
  const { ext, calls } = load({});
  await ext.activate({ subscriptions: [] });
  assert.deepEqual(pkg.contributes.commands.map((c) => c.command).sort(), calls.commands.sort());
  assert.equal(pkg.contributes.languages[0].id, "mcpp");
  assert.deepEqual(pkg.contributes.languages[0].extensions, [".mcpp"]);
  assert.equal(pkg.contributes.grammars[0].scopeName, "source.mcpp");
});

test("a server that cannot be started is reported with the client's reason", async () => {
  // vscode-languageclient rejects with a string when the executable cannot be spawned
  // (seen in code-server: the message used to end in "undefined")
  for (const [err, reason] of [
    ["Launching server using command /nope/mcpp failed. Error: spawn /nope/mcpp ENOENT", "spawn /nope/mcpp ENOENT"],
    [new Error("connection closed"), "connection closed"],
  ]) {
    const { ext, calls } = load({ "server.path": "/nope/mcpp" }, err);
    await ext.activate({ subscriptions: [] });
    assert.equal(calls.messages.length, 1);
    const [m] = calls.messages;
    assert.ok(m.startsWith("mcpp: could not start the language server (/nope/mcpp lsp): "), m);
    assert.ok(m.includes(reason) && !m.includes("undefined") && !m.includes(".."), m);
    assert.ok(m.endsWith('set "mcpp.server.path".'), m);
  }
});
