"""One rule for every "did you mean": typos are suggested, sibling names are not."""

import pytest

from mcpp.lang.diagnostics import did_you_mean

CASES = [
    ("pth", ["path", "url"], "path"),  # a dropped letter in a short word
    ("delete_pdo", ["delete_pod", "delete_repo"], "delete_pod"),  # swapped neighbours
    ("amout", ["amount", "currency"], "amount"),
    ("namespce", ["namespace"], "namespace"),
    ("create_isue", ["create_issue", "create_pull_request"], "create_issue"),
    ("delete_repo", ["delete_pod", "create_issue"], None),  # a sibling, not a typo
    ("get_repo", ["get_pod"], None),
    ("repo", ["path"], None),
    ("path", ["path"], None),  # the word itself is not a suggestion
    ("x", [], None),
    ("list_issue", ["list_issues", "list_issue_comments"], "list_issues"),  # the nearest wins
    ("list_nodes", ["list_pods"], None),
]


@pytest.mark.parametrize("word,candidates,expected", CASES)
def test_did_you_mean(word, candidates, expected):
    assert did_you_mean(word, candidates) == expected
