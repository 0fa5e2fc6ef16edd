"""Completion from the text before the cursor: the statement being typed rarely parses,
so the context (inside a string after `Action::`, after `context.input.`, inside a
clause, at the top level) is read from its tokens, and the tools in scope from its
`action` constraint."""

from __future__ import annotations

import re

from lsprotocol import types as t

from mcpp.lang.program import LimitInfo, PolicyInfo

from .documents import PolicyDocument
from .locate import here
from .reference import KEYWORDS, OPERATORS
from .tools import properties, text_tools

K = t.CompletionItemKind
METHODS = {
    "contains": ("contains(${1:value})", "contains(value)"),
    "containsAll": ("containsAll([${1}])", "containsAll([])"),
    "containsAny": ("containsAny([${1}])", "containsAny([])"),
    "isEmpty": ("isEmpty()", "isEmpty()"),
    "matches": ('matches("^${1:regex}$")', 'matches("^$")'),
}
SNIPPETS = {
    "permit": ('@id("${1:name}")\npermit (principal, action == Action::"${2:tool}", resource)\n'
               'when { ${3:context.input.${4:arg} == "${5:value}"} };',
               'permit (principal, action == Action::"tool", resource)\nwhen { true };',
               "a policy that allows matching calls"),
    "forbid": ('@id("${1:name}")\n@reason("${2:why the call is denied}")\n'
               'forbid (principal, action == Action::"${3:tool}", resource)\n'
               'when { ${4:context.input.${5:arg} == "${6:value}"} };',
               'forbid (principal, action == Action::"tool", resource)\nwhen { true };',
               "a policy that denies matching calls"),
    "limit": ('@id("${1:name}")\nlimit "${2:counter}" (principal, action == Action::"${3:tool}", resource)\n'
              '  max ${4:10} per ${5|minute,hour,day|} scope ${6|grant,principal,policy|};',
              'limit "counter" (principal, action == Action::"tool", resource)\n  max 10 per hour scope grant;',
              "a budget: at most N calls (or units) per window"),
    "assert": ('@id("${1:name}")\nassert ${2|deny,allow,approval,hidden,visible|} (principal, action == Action::"${3:tool}", '
               'resource)\nwhen { ${4:context.input.${5:arg} == "${6:value}"} };',
               'assert deny (principal, action == Action::"tool", resource)\nwhen { true };',
               "a property the analyzer proves"),
    "default": ("default ${1|deny,allow|};", "default deny;", "what tools no permit names get"),
    "hide": ('hide [Action::"${1:tool}"];', 'hide [Action::"tool"];', "tools never listed nor callable"),
    "group": ('group Action::"${1:name}" = [Action::"${2:tool}"];', 'group Action::"name" = [Action::"tool"];',
              "an action group"),
    "entity": ("entity User in [Group] { ${1:email}: ${2|String,Long,Bool,Set<String>|} };",
               "entity User in [Group] { email: String };", "the attributes of user callers"),
}
CLAUSES = {
    "when": ("when { ${1:true} }", "when { true }"),
    "unless": ("unless { ${1:false} }", "unless { false }"),
}
EXPR_WORDS = ["context", "principal", "action", "resource", "if", "then", "else", "has", "like", "in", "is",
              "true", "false", "null"]
ENTITY_TYPES = ["Action", "Group", "Grant", "User", "Server"]

_INPUT_PATH = re.compile(r'context\s*\.\s*input((?:\s*\.\s*[_A-Za-z]\w*|\s*\[\s*"(?:[^"\\\n]|\\.)*"\s*\])*)\s*\.\s*(\w*)$')
_SEGMENT = re.compile(r'\.\s*([_A-Za-z]\w*)|\[\s*"((?:[^"\\\n]|\\.)*)"\s*\]')
_IDENT = re.compile(r"[_A-Za-z]\w*\Z")


class Completer:
    def __init__(self, doc: PolicyDocument, caps: t.ClientCapabilities | None, docs_base: str):
        self.doc = doc
        self.docs_base = docs_base
        comp = caps.text_document.completion if caps and caps.text_document and caps.text_document.completion else None
        item = comp.completion_item if comp else None
        self.snippets = bool(item and item.snippet_support)
        fmts = item.documentation_format if item and item.documentation_format else []
        self.markdown = t.MarkupKind.Markdown in fmts

    def _doc(self, text: str):
        if not text:
            return None
        if self.markdown:
            return t.MarkupContent(kind=t.MarkupKind.Markdown, value=text)
        return text

    def item(self, label, kind, detail=None, doc="", insert=None, snippet=None, edit_range=None, sort=None):
        fmt = None
        text = insert
        if snippet is not None and self.snippets:
            text, fmt = snippet, t.InsertTextFormat.Snippet
        it = t.CompletionItem(label=label, kind=kind, detail=detail, documentation=self._doc(doc),
                              insert_text_format=fmt, sort_text=sort)
        if edit_range is not None:
            it.text_edit = t.TextEdit(range=edit_range, new_text=text if text is not None else label)
        elif text is not None:
            it.insert_text = text
        return it

    def complete(self, offset: int) -> t.CompletionList:
        doc = self.doc
        h = here(doc.parser.chunks, doc.text, offset, touching=True)
        if h.comment is not None:
            return t.CompletionList(is_incomplete=False, items=[])
        chunk = h.chunk
        start = chunk.start if chunk is not None else 0
        before = doc.text[start:offset]
        tok = h.token
        if tok is not None and tok.type == "STRING" and tok.start_pos < offset < tok.end_pos:
            return self._in_string(offset)
        if tok is None and _open_string(before):
            return self._in_string(offset)
        items = self._by_context(before, offset)
        return t.CompletionList(is_incomplete=False, items=items)

    # -- strings: tool names after Action:: -------------------------------------------
    def _in_string(self, offset: int) -> t.CompletionList:
        text = self.doc.text
        q = text.rfind('"', 0, offset)
        if q < 0 or not text[:q].rstrip().endswith("Action::"):
            return t.CompletionList(is_incomplete=False, items=[])
        end = offset
        while end < len(text) and (text[end].isalnum() or text[end] in "_-.:/"):
            end += 1
        rng = self.doc.index.range(q + 1, end)
        return t.CompletionList(is_incomplete=False, items=self._tool_items(rng))

    def _tool_items(self, rng=None, quoted=False) -> list[t.CompletionItem]:
        doc = self.doc
        program = doc.program
        items: dict[str, t.CompletionItem] = {}
        if program is not None:
            for g, members in sorted(program.groups.items()):
                items[g] = self.item(g, K.Module, "action group", "Tools: " + ", ".join(sorted(members)),
                                     insert=f'"{g}"' if quoted else g, edit_range=rng, sort="1" + g)
        if doc.catalog is not None:
            for name, info in doc.catalog.tools.items():
                if name in items:
                    continue
                detail = info.title or "tool"
                items[name] = self.item(name, K.Function, detail, info.description,
                                        insert=f'"{name}"' if quoted else name, edit_range=rng, sort="0" + name)
        if program is not None:
            for name in sorted(program.named_tools()):
                if name not in items:
                    items[name] = self.item(name, K.Function, "tool named in this policy",
                                            insert=f'"{name}"' if quoted else name, edit_range=rng, sort="2" + name)
        return list(items.values())

    # -- everything outside strings ---------------------------------------------------
    def _by_context(self, before: str, offset: int) -> list[t.CompletionItem]:
        m = _INPUT_PATH.search(before)
        if m:
            return self._arguments(m, before, offset)
        if re.search(r"\bcontext\s*\.\s*(\w*)$", before):
            return [self.item("input", K.Property, "the call's arguments", KEYWORDS["input"][1])]
        if re.search(r"\bprincipal\s*\.\s*(\w*)$", before):
            return self._principal_attrs()
        if re.search(r"\.\s*(\w*)$", before) and not re.search(r"\d\.\s*\w*$", before):
            return self._methods()
        if re.search(r"\bAction::$", before):
            return self._tool_items(quoted=True)
        depth_brace, depth_paren = _depths(before)
        trailing = re.search(r"(\w*)$", before)
        assert trailing is not None  # `\w*$` matches every string
        word = trailing.group(1)
        prev = _prev_word(before[: len(before) - len(word)])
        if depth_brace > 0:
            return self._expression_items()
        if depth_paren > 0:
            return self._scope_items()
        if prev == "default":
            return [self.kw("allow"), self.kw("deny")]
        if prev == "assert":
            return [self.kw(w) for w in ("deny", "allow", "approval", "hidden", "visible")]
        if prev == "per":
            return [self.item(w, K.EnumMember, "limit window") for w in ("minute", "hour", "day")]
        if prev == "scope":
            return [self.item(w, K.EnumMember, "limit scope") for w in ("grant", "principal", "policy")]
        stripped = before.rstrip()
        if stripped.endswith("@") or re.search(r"@\w*$", before):
            return [self.item(k, K.Property, "annotation", KEYWORDS[k][1]) for k in ("id", "reason", "catalog")]
        items = []
        if re.search(r"\)\s*(\w*)$", before) or re.search(r"}\s*(\w*)$", before):
            if re.search(r"\blimit\b", before):
                items += [self.kw(w) for w in ("max", "per", "scope", "increment")]
            for name, (snip, plain) in CLAUSES.items():
                items.append(self.item(name, K.Snippet, f"{name} clause", KEYWORDS[name][1], insert=plain,
                                       snippet=snip))
            return items
        for name, (snip, plain, detail) in SNIPPETS.items():
            items.append(self.item(name, K.Snippet, detail, KEYWORDS[name][1], insert=plain, snippet=snip))
        return items

    def _principal_attrs(self) -> list[t.CompletionItem]:
        """A grant's `label` and the attributes `entity User` declares."""
        items = [self.item("label", K.Property, "the grant's label", KEYWORDS["label"][1])]
        program = self.doc.program
        for a in (program.user_decl.attrs if program is not None and program.user_decl is not None else ()):
            if a.name == "label" or not _IDENT.match(a.name):
                continue  # a quoted name is read as principal["x-y"], not after a dot
            opt = " (optional: guard with `principal has " + a.name + "`)" if a.optional else ""
            items.append(self.item(a.name, K.Property, f"user attribute: {a.type}{'?' if a.optional else ''}",
                                   f"**principal.{a.name}** — a user's `{a.type}` attribute, declared by "
                                   f"`entity User`{opt}. Grants do not have it."))
        return items

    def kw(self, word: str) -> t.CompletionItem:
        entry = KEYWORDS.get(word)
        return self.item(word, K.Keyword, "keyword", entry[1] if entry else "")

    def _expression_items(self) -> list[t.CompletionItem]:
        items = [self.kw(w) for w in EXPR_WORDS]
        items += [self.item(f"{e}::", K.Class, "entity type", KEYWORDS[e][1]) for e in ENTITY_TYPES]
        items += [self.item(op, K.Operator, "operator", text) for op, (_, text) in OPERATORS.items() if op != "::"]
        return items

    def _scope_items(self) -> list[t.CompletionItem]:
        items = [self.kw(w) for w in ("principal", "action", "resource", "in", "is")]
        items.append(self.item("==", K.Operator, "operator", OPERATORS["=="][1]))
        names: list[str] = list(self.doc.catalog.tools) if self.doc.catalog else []
        items += [self.item(f'Action::"{name}"', K.Function, "tool", insert=f'Action::"{name}"') for name in names]
        items += [self.item(f"{e}::", K.Class, "entity type", KEYWORDS[e][1]) for e in ENTITY_TYPES]
        return items

    def _arguments(self, m, before: str, offset: int) -> list[t.CompletionItem]:
        doc = self.doc
        path = tuple(a or b for a, b in _SEGMENT.findall(m.group(1)))
        typed = m.group(2)
        # the tools in scope: from the statement's action constraint, typed or parsed
        tools = text_tools(doc.program, before)
        catalog = doc.catalog
        items: list[t.CompletionItem] = []
        dot = offset - len(typed) - 1  # where `.` is, for keys that need ["…"]
        while dot > 0 and doc.text[dot] != ".":
            dot -= 1
        if catalog is not None:
            scope = tools if tools is not None else sorted(catalog.tools)
            for name, info in sorted(properties(catalog, scope, path).items()):
                which = "" if tools is not None and len(info["tools"]) == len(scope) else \
                    " (" + ", ".join(info["tools"][:4]) + (", …" if len(info["tools"]) > 4 else "") + ")"
                detail = info["types"] + ("" if info["required"] else ", optional") + which
                if _IDENT.match(name):
                    items.append(self.item(name, K.Property, detail, info["doc"]))
                else:
                    rng = doc.index.range(dot, offset)
                    items.append(self.item(name, K.Property, detail, info["doc"], insert=f'["{name}"]',
                                           edit_range=rng))
        if not items and doc.program is not None:
            # no catalog: offer the argument paths this policy already reads at that depth
            from mcpp.lang.atoms import input_path
            from mcpp.lang.ir import walk

            seen = set()
            infos: list[PolicyInfo | LimitInfo] = [*doc.program.policies, *doc.program.limits]
            for info in infos:
                if tools is not None and info.tools is not None and not set(tools) & set(info.tools):
                    continue
                for c in info.stmt.clauses:
                    for n in walk(c.expr):
                        p = input_path(n)
                        if p and len(p) > len(path) and p[: len(path)] == path:
                            seen.add(p[len(path)])
            for name in sorted(seen):
                if _IDENT.match(name):
                    items.append(self.item(name, K.Property, "argument used in this policy"))
        if path:  # an argument's value may be a set or a string: its methods apply
            items += self._methods()
        return items

    def _methods(self) -> list[t.CompletionItem]:
        return [self.item(name, K.Method, "method", KEYWORDS[name][1], insert=plain, snippet=snip, sort="~" + name)
                for name, (snip, plain) in METHODS.items()]


def _open_string(before: str) -> bool:
    """Is the end of `before` inside a double-quoted string on its last line?"""
    line = before.rsplit("\n", 1)[-1]
    inside = False
    i = 0
    while i < len(line):
        c = line[i]
        if not inside and line.startswith("//", i):
            return False
        if c == "\\" and inside:
            i += 2
            continue
        if c == '"':
            inside = not inside
        i += 1
    return inside


def _depths(before: str) -> tuple[int, int]:
    """Open `{` and `(` at the end of `before`, ignoring strings and comments."""
    brace = paren = 0
    i, n = 0, len(before)
    while i < n:
        c = before[i]
        if c == '"':
            j = i + 1
            while j < n and before[j] != '"' and before[j] != "\n":
                j += 2 if before[j] == "\\" else 1
            i = j + 1
            continue
        if c == "/" and before.startswith("//", i):
            j = before.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == "{":
            brace += 1
        elif c == "}":
            brace = max(0, brace - 1)
        elif c == "(":
            paren += 1
        elif c == ")":
            paren = max(0, paren - 1)
        i += 1
    return brace, paren


def _prev_word(text: str) -> str:
    m = re.search(r"(\w+)\s*$", text)
    return m.group(1) if m else ""
