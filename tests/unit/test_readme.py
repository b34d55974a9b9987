"""The README is the charm's Charmhub page: its shape and its reference tables.

It opens with what the charm is, then the two local commands, then deploy
and relate. Every config option, action, relation and status message the
charm has is a row in the table an operator looks for it in, and every row
there names something the charm has: a later option, action, relation or
message without its row fails here. Links and anchors resolve, in the
README, CONTRIBUTING.md and the docs/ pages the README links to; every
docs/ page is linked from the README, which stays short enough to be the
charm's Charmhub page.
"""

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
METADATA = yaml.safe_load((ROOT / "metadata.yaml").read_text())
APP = METADATA["name"]
DOC_PAGES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md"))
# Charmhub shows the README as the charm's page: the long how-tos go to docs/.
MAX_README_LINES = 450
# The deploy-and-relate commands start within what one screen shows.
FIRST_SCREEN_LINES = 60

# The calls whose first argument is a message a person reads in `juju status`
# (or as a failed action's message).
STATUS_CALLS = {
    "ActiveStatus": "active",
    "Degraded": "active",
    "Blocked": "blocked",
    "BlockedStatus": "blocked",
    "Waiting": "waiting",
    "WaitingStatus": "waiting",
    "MaintenanceStatus": "maintenance",
    "fail": "action failed",
}
# A message's identifying part ends where its explanation starts: the README
# may shorten what follows (a command line, a list of characters).
KEY_END = re.compile(r": |; | \(")
MIN_KEY = 12


# --- Markdown, as far as these checks need it ---------------------------------------


def _prose(markdown: str) -> str:
    """The text outside code blocks (fenced or indented) and inline code spans."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)
    kept, in_code, previous_blank = [], False, True
    for line in markdown.splitlines():
        if line.startswith("    ") and (in_code or previous_blank):
            in_code = True
        elif line.strip():
            in_code = False
            kept.append(line)
        previous_blank = not line.strip()
    return re.sub(r"`[^`]*`", "", "\n".join(kept))


def _section(title: str, level: int = 2, text: str = README) -> str:
    hashes = "#" * level
    match = re.search(
        rf"^{hashes} {re.escape(title)}\n(.*?)(?=^#{{1,{level}}} |\Z)",
        text,
        re.M | re.S,
    )
    assert match, f"README has no '{hashes} {title}' section"
    return match.group(1)


def _table_rows(section: str):
    """The body rows of the Markdown tables in a section, as lists of cells."""
    lines = section.splitlines()
    separator = re.compile(r"^\|[-| :]+\|$")
    headers = {i - 1 for i, line in enumerate(lines) if i and separator.match(line)}
    return [
        [cell.strip() for cell in line.strip().strip("|").split(" | ")]
        for i, line in enumerate(lines)
        if line.startswith("|") and not separator.match(line) and i not in headers
    ]


def _code(cell: str) -> str:
    match = re.fullmatch(r"`([^`]+)`", cell)
    return match.group(1) if match else ""


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower().replace("`", ""))
    return text.replace(" ", "-")


def _anchors(markdown: str):
    seen, anchors = {}, set()
    for heading in re.findall(r"^#{1,6} (.+)$", _strip_fences(markdown), re.M):
        slug = _slug(heading)
        anchors.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return anchors


def _strip_fences(markdown: str) -> str:
    return re.sub(r"^```.*?^```", "", markdown, flags=re.M | re.S)


# --- what it opens with --------------------------------------------------------------


def test_it_opens_with_what_the_charm_is_before_any_command():
    title, _, rest = README.partition("\n")
    assert title == f"# {APP}"
    opening = rest.split("\n## ", 1)[0]
    assert "MLflow" in opening and "Kubernetes" in opening, "the opening must say what the charm runs, and where"
    assert not re.search(r"^(    |```)", opening, re.M), "no command before the charm is introduced"
    assert len(opening.split()) < 160, "the opening is a few lines, not a manual"


def test_then_the_two_local_commands_then_deploy_and_relate():
    headings = re.findall(r"^## (.+)$", _strip_fences(README), re.M)
    assert headings[:2] == ["Try it locally", "Deploy and relate"], headings
    box = re.search(r"((?:^    .*\n)+)", _section("Try it locally"), re.M)
    assert box, "'Try it locally' shows its commands in a code block"
    commands = [line.split("#")[0].strip() for line in box.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text()
    for target in ("demo", "test"):
        assert re.search(rf"^{target}:", makefile, re.M), f"the Makefile has no `{target}` target"


def test_the_deploy_and_relate_commands_are_on_the_first_screen():
    box = re.search(r"^## Deploy and relate\n(?:(?!    |## ).*\n)*((?:    .*\n)+)", README, re.M)
    assert box, "'Deploy and relate' opens with its commands in a code block"
    commands = box.group(1).split()
    assert f"juju deploy {APP}".split() == commands[:3]
    assert box.group(1).count("juju relate ") == 4, "the four relations of the tutorial"
    last_line = README[: box.end(1)].count("\n")
    assert last_line <= FIRST_SCREEN_LINES, f"the deploy-and-relate flow ends on line {last_line}"


def test_the_readme_stays_short_enough_for_charmhub():
    lines = len(README.splitlines())
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines: move how-to prose into a docs/ page and link it"


def test_developer_material_lives_in_contributing():
    headings = re.findall(r"^#{2,3} (.+)$", _strip_fences(README), re.M)
    assert "Hook cost" not in headings and "How it is tested" not in headings
    assert "](CONTRIBUTING.md#hook-cost)" in README, "the README keeps one line on hook cost, with a link"


@pytest.mark.parametrize(
    "section",
    ["Upgrade", "Remove", "Supported versions", "Security", "Troubleshooting"],
)
def test_operator_sections_exist(section):
    assert _section(section).strip()


def test_supported_versions_says_what_each_juju_does_with_the_charm():
    juju = {row[1].split()[0] for row in _table_rows(_section("Supported versions")) if row[0] == "Juju"}
    assert {"2.9", "3.6", "4.0"} <= juju


# --- the reference tables ------------------------------------------------------------


def test_every_config_option_has_a_row_with_its_default():
    options = yaml.safe_load((ROOT / "config.yaml").read_text())["options"]
    rows = {_code(row[0]): row for row in _table_rows(_section("Configuration")) if _code(row[0])}
    assert sorted(rows) == sorted(options), "the Configuration table lists exactly config.yaml's options"
    for name, option in options.items():
        default = option.get("default")
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        assert rows[name][1] in (f"`{shown}`", "empty" if shown == "" else None), name


def test_every_action_has_a_row_with_its_juju_2_9_command():
    actions = yaml.safe_load((ROOT / "actions.yaml").read_text()) or {}
    rows = {_code(row[0]): row for row in _table_rows(_section("Actions")) if _code(row[0])}
    assert sorted(rows) == sorted(actions), "the Actions table lists exactly actions.yaml's actions"
    for action in actions:
        assert rows[action][1] == f"`juju run-action {APP}/0 {action} --wait`", action


def test_every_relation_has_a_row_with_its_interface():
    endpoints = {}
    for role in ("requires", "provides", "peers"):
        for name, spec in (METADATA.get(role) or {}).items():
            endpoints[name] = spec["interface"]
    rows = {_code(row[0]): row for row in _table_rows(_section("Relations", level=3)) if _code(row[0])}
    assert sorted(rows) == sorted(endpoints), "the Relations table lists exactly metadata.yaml's endpoints"
    for name, interface in endpoints.items():
        assert rows[name][1] == f"`{interface}`", name


def _message_alternatives(node, names, depth=0):
    """Every message an expression can be, each as text pieces (None for a formatted value).

    `names` (from _module_names) lets a message kept in a module constant
    (`STANDBY`) or built by a function that returns it (`unreachable(app,
    model)`) be read too. None when the expression is anything else.
    """
    if depth > 10:  # a constant defined through itself: give up rather than recurse forever
        return None

    def again(child):
        return _message_alternatives(child, names, depth + 1)

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [[node.value]]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            parts.extend([value.value] if isinstance(value, ast.Constant) else [None])
        return [parts]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = again(node.left), again(node.right)
        if left is None or right is None:
            return None
        return [a + b for a in left for b in right]
    if isinstance(node, ast.IfExp):
        body, orelse = again(node.body), again(node.orelse)
        return body + orelse if body is not None and orelse is not None else None
    name = node.func if isinstance(node, ast.Call) else node
    name = name.id if isinstance(name, ast.Name) else name.attr if isinstance(name, ast.Attribute) else None
    if name in names and isinstance(node, ast.Call) == isinstance(names[name], ast.Lambda):
        definition = names[name]
        return again(definition.body if isinstance(definition, ast.Lambda) else definition)
    return None


def _module_names(trees):
    """Module-level string constants and functions that only return a message, by name.

    A function is kept as an ast.Lambda around its returned expression; the
    calls that use it are told apart from uses of a constant by that type.
    """
    names = {}
    for tree in trees:
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name) and target.id.isupper():
                    names[target.id] = statement.value
            elif isinstance(statement, ast.FunctionDef):
                body = [
                    s for s in statement.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))
                ]
                if len(body) == 1 and isinstance(body[0], ast.Return) and body[0].value is not None:
                    returned = body[0].value
                    if not isinstance(returned, ast.Call):  # a function returning a Problem is found where it builds it
                        names[statement.name] = ast.Lambda(args=statement.args, body=returned)
    return names


def _key(parts):
    """The message up to its explanation, formatted values as None."""
    key, literal = [], 0
    for part in parts:
        if part is None:
            key.append(None)
            continue
        # A separator this early is part of the name ("standby: ..."), not its end.
        end = next((m for m in KEY_END.finditer(part) if literal + m.start() >= MIN_KEY), None)
        key.append(part[: end.start()] if end else part)
        literal += end.start() if end else len(part)
        if end:
            break
    return key


def source_messages(src: Path = ROOT / "src"):
    """(file:line, status, key) of every status message literal in src/."""
    trees = {path: ast.parse(path.read_text(), str(path)) for path in sorted(src.glob("*.py"))}
    names = _module_names(trees.values())
    found = []
    for path, tree in trees.items():
        # The module's own names win over a namesake elsewhere (two modules have an `unreachable`).
        local = {**names, **_module_names([tree])}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and node.args):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in STATUS_CALLS:
                continue
            alternatives = _message_alternatives(node.args[0], local)
            if alternatives is None:
                continue  # a message passed on (e.g. a Problem's), documented where it is built
            for parts in alternatives:
                found.append((f"{path.name}:{node.lineno}", STATUS_CALLS[name], _key(parts)))
    return found


def documents(key, text: str) -> bool:
    """Whether a README message documents a message of src/.

    Either side may stand for a part by a placeholder: src formats values in
    (`{peer}`), the README writes `<peer>` or `...` where src has a value or
    a literal it generalises (`<endpoint>` for `ingress`).
    """
    src_pattern = "".join(".*?" if part is None else re.escape(part) for part in key)
    if re.match(src_pattern, text):
        return True
    sample = "".join("<x>" if part is None else part for part in key)
    readme_pattern = "".join(
        ".+?" if re.fullmatch(r"<[^>]+>", piece) else ".*" if piece == "..." else re.escape(piece)
        for piece in re.split(r"(<[^>]+>|\.\.\.)", _key([text])[0])
    )
    return bool(re.match(readme_pattern, sample))


def readme_messages(readme: str = README):
    """(status, message) of each row of the Status messages table."""
    rows = _table_rows(_section("Status messages", text=readme))
    return [(row[0], _code(row[1])) for row in rows if _code(row[1])]


def undocumented(messages, documented):
    return [
        f"{where}: {status} {''.join('{...}' if p is None else p for p in key)!r}"
        for where, status, key in messages
        if not any(s == status and documents(key, text) for s, text in documented)
    ]


def unknown(messages, documented):
    return [
        f"{status} {text!r}"
        for status, text in documented
        if not any(s == status and documents(key, text) for _, s, key in messages)
    ]


def test_status_messages_are_found_in_src():
    messages = source_messages()
    # At least one of each kind, or the scan itself has broken.
    assert {"active", "blocked", "waiting", "action failed"} <= {status for _, status, _ in messages}
    vague = [m for m in messages if len("".join(p for p in m[2] if p)) < MIN_KEY]
    assert not vague, f"messages too vague to find in the README (say what is wrong in words): {vague}"


def test_every_status_message_in_src_has_a_row():
    missing = undocumented(source_messages(), readme_messages())
    assert not missing, "status messages with no row in the README's Status messages table:\n" + "\n".join(missing)


def test_every_status_row_is_a_message_src_sets():
    stale = unknown(source_messages(), readme_messages())
    assert not stale, "Status messages rows no code sets (any more):\n" + "\n".join(stale)


def test_the_status_check_catches_a_new_message_and_tolerates_formatted_parts(tmp_path):
    (tmp_path / "new.py").write_text(
        "def f(peer, n):\n"
        "    raise Blocked(f'{peer} sent {n} bananas on db: remove them')\n"
        "    raise Waiting('waiting for ' + 'the bananas; retrying')\n"
    )
    messages = source_messages(tmp_path)
    assert [status for _, status, _ in messages] == ["blocked", "waiting"]
    assert len(undocumented(messages, readme_messages())) == 2
    table = (
        "## Status messages\n\n| Status | Message | What to do |\n|---|---|---|\n"
        "| blocked | `<peer> sent <n> bananas on db: ...` | Remove them. |\n"
        "| waiting | `waiting for the bananas; retrying` | Nothing. |\n"
    )
    assert undocumented(messages, readme_messages(table)) == []
    # A row under the wrong status does not count.
    assert len(undocumented(messages, readme_messages(table.replace("| waiting |", "| blocked |")))) == 1


def test_the_status_check_reads_messages_kept_in_constants_and_functions(tmp_path):
    (tmp_path / "hints.py").write_text("HINT = 'peel them first'\n")
    (tmp_path / "new.py").write_text(
        "from hints import HINT\n"
        "RIPE = 'waiting for the bananas to ripen'\n"
        "GREEN = 'the bananas are still green: ' + HINT\n"
        "def rotten(n):\n"
        "    '''Why it is blocked.'''\n"
        "    return f'{n} bananas are rotten: throw them away'\n"
        "def f(ripe, n, problem):\n"
        "    raise Waiting(RIPE if ripe else GREEN)\n"
        "    raise Blocked(rotten(n))\n"
        "    raise Blocked(problem.message)\n"
    )
    messages = source_messages(tmp_path)
    keys = [(status, "".join("{...}" if p is None else p for p in key)) for _, status, key in messages]
    assert keys == [
        ("waiting", "waiting for the bananas to ripen"),
        ("waiting", "the bananas are still green"),
        ("blocked", "{...} bananas are rotten"),
    ]


# --- links ---------------------------------------------------------------------------


def _links(document: str):
    return re.findall(r"\]\(([^)\s]+)\)", _prose((ROOT / document).read_text()))


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md", *DOC_PAGES])
def test_links_and_anchors_resolve(document):
    links = _links(document)
    if document in ("README.md", "CONTRIBUTING.md"):
        assert links, f"{document}: no links found: is the link pattern broken?"
    broken = []
    for target in links:
        if re.match(r"https?://", target):
            if not target.startswith("https://"):
                broken.append(f"{target}: use https")
            continue
        path, _, anchor = target.partition("#")
        linked = ROOT / document if not path else (ROOT / document).parent / path
        if not linked.exists():
            broken.append(f"{target}: no file {path}")
        elif anchor and anchor not in _anchors(linked.read_text()):
            broken.append(f"{target}: no heading with anchor #{anchor} in {linked.name}")
    assert not broken, f"{document}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme():
    assert DOC_PAGES, "no docs/*.md pages found: has docs/ moved?"
    linked = {target.partition("#")[0] for target in _links("README.md")}
    orphans = [page for page in DOC_PAGES if page not in linked]
    assert not orphans, f"docs pages no README link leads to (Charmhub readers only see the README): {orphans}"


def test_the_anchor_check_follows_githubs_slugs():
    anchors = _anchors("# A\n## MLflow 3.x: 403 on the dashboard\n## What `make test` runs\n## A\n")
    assert anchors == {"a", "mlflow-3x-403-on-the-dashboard", "what-make-test-runs", "a-1"}
