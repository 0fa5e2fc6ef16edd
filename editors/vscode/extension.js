// The mcpp extension: starts `mcpp lsp` and adds a few commands around it.
// Everything language-aware (diagnostics, hover, completion, formatting, lenses,
// quick fixes) comes from the server; this file only wires it into VS Code.
"use strict";

const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;
let output;

function serverOptions() {
  const cfg = vscode.workspace.getConfiguration("mcpp");
  const command = cfg.get("server.path") || "mcpp";
  const args = cfg.get("server.args") || ["lsp"];
  return { command, args, transport: TransportKind.stdio, options: { env: process.env } };
}

function start(context) {
  client = new LanguageClient("mcpp", "mcpp language server", serverOptions(), {
    documentSelector: [
      { scheme: "file", language: "mcpp" },
      { scheme: "untitled", language: "mcpp" },
    ],
    outputChannel: output,
    // settings changes reach the server as workspace/didChangeConfiguration; it then
    // pulls the `mcpp` section with workspace/configuration
    synchronize: {
      configurationSection: "mcpp",
      fileEvents: vscode.workspace.createFileSystemWatcher("**/{*.calls.jsonl,mcpp.toml,*.json}"),
    },
  });
  context.subscriptions.push(client);
  return client.start().catch((err) => {
    // vscode-languageclient rejects with a string when the executable cannot be spawned
    const why = err instanceof Error ? err.message : String(err);
    vscode.window.showErrorMessage(
      `mcpp: could not start the language server (${serverOptions().command} ${serverOptions().args.join(" ")}): ` +
        `${why.replace(/\.$/, "")}. Install mcpp (pip install mcpp-policy) or set "mcpp.server.path".`
    );
  });
}

async function evaluateCall() {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "mcpp") {
    vscode.window.showWarningMessage("mcpp: open a .mcpp policy first.");
    return;
  }
  const text = await vscode.window.showInputBox({
    title: "Evaluate a tools/call against this policy",
    prompt: 'The call: {"name": "tool", "arguments": {…}, "grant": "id" or {"id", "label", "groups"}}',
    value: '{"name": "", "arguments": {}}',
    validateInput: (v) => {
      try {
        const obj = JSON.parse(v);
        return obj && typeof obj === "object" && !Array.isArray(obj) ? null : "a JSON object";
      } catch (e) {
        return `not JSON: ${e.message}`;
      }
    },
  });
  if (!text) return;
  const call = { uri: editor.document.uri.toString(), ...JSON.parse(text) };
  try {
    // the server shows the decision too (window/showMessage); keep it in the output as well
    const decision = await client.sendRequest("workspace/executeCommand", { command: "mcpp.evaluate", arguments: [call] });
    output.appendLine(JSON.stringify(decision, null, 2));
  } catch (e) {
    vscode.window.showErrorMessage(`mcpp: ${e.message}`);
  }
}

async function analyzeNow() {
  const editor = vscode.window.activeTextEditor;
  if (!editor || editor.document.languageId !== "mcpp") return;
  try {
    await client.sendRequest("workspace/executeCommand", {
      command: "mcpp.analyze",
      arguments: [editor.document.uri.toString()],
    });
  } catch (e) {
    vscode.window.showErrorMessage(`mcpp: ${e.message}`);
  }
}

function activate(context) {
  output = vscode.window.createOutputChannel("mcpp");
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand("mcpp.evaluateCall", evaluateCall),
    vscode.commands.registerCommand("mcpp.analyzeNow", analyzeNow),
    vscode.commands.registerCommand("mcpp.restartServer", async () => {
      if (client) await client.restart();
    }),
    vscode.workspace.onDidChangeConfiguration(async (e) => {
      if (client && (e.affectsConfiguration("mcpp.server.path") || e.affectsConfiguration("mcpp.server.args"))) {
        await client.stop();
        await start(context);
      }
    })
  );
  return start(context);
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
