"""PEP 752 namespace rules: names, what a namespace covers, overlaps, parents and children."""

from __future__ import annotations

import pytest

from pypicloud_lite.errors import Conflict, InvalidInput
from pypicloud_lite.namespaces import (
    MAX_HYPHENS,
    Namespace,
    check_namespace_name,
    check_new_namespace,
    children_of,
    governing,
    matching,
    parent_of,
    parse_owner,
)

CORP = Namespace("corp", "Corp", "group", "platform")
CORP_ML = Namespace("corp-ml", "corp.ml", "group", "ml")
ACME = Namespace("acme", "acme", "user", "alice")
ALL = [ACME, CORP, CORP_ML]


@pytest.mark.parametrize(
    ("project", "covered"),
    [
        ("corp", True),  # the namespace itself
        ("corp-tool", True),
        ("corp-ml-x", True),
        ("corptool", False),  # a hyphen must follow
        ("my-corp", False),
        ("cor", False),
    ],
)
def test_a_namespace_covers_itself_and_names_it_starts_followed_by_a_hyphen(project: str, covered: bool) -> None:
    assert CORP.covers(project) is covered


def test_names_match_after_normalization() -> None:
    assert [ns.name for ns in matching(ALL, "Corp_ML.Tools")] == ["corp", "corp-ml"]
    assert matching(ALL, "other") == []


def test_the_deepest_matching_namespace_governs() -> None:
    assert governing(ALL, "corp-ml-tools") == CORP_ML
    assert governing(ALL, "corp-web") == CORP
    assert governing(ALL, "acme") == ACME
    assert governing(ALL, "other") is None


@pytest.mark.parametrize(("given", "normalized"), [("Corp", "corp"), ("foo.bar", "foo-bar"), ("Foo__Bar", "foo-bar")])
def test_namespace_names_are_normalized(given: str, normalized: str) -> None:
    assert check_namespace_name(given) == normalized


@pytest.mark.parametrize("bad", ["", "-corp", "corp-", "co rp", "corp/x", "ü", "a" * 101])
def test_a_namespace_must_be_a_valid_project_name(bad: str) -> None:
    with pytest.raises(InvalidInput, match="namespace"):
        check_namespace_name(bad)


def test_namespaces_have_a_depth_limit() -> None:
    deepest = "-".join(["a"] * (MAX_HYPHENS + 1))
    assert check_namespace_name(deepest) == deepest
    with pytest.raises(InvalidInput, match="hyphens"):
        check_namespace_name(deepest + "-a")


def test_a_namespace_cannot_be_reserved_twice() -> None:
    with pytest.raises(Conflict, match="already reserved"):
        check_new_namespace(ALL, Namespace("corp", "CORP", "group", "platform"))


def test_a_broader_namespace_over_another_owners_namespace_is_refused() -> None:
    # PEP 752: with `foo-bar` granted, a new `foo` is possible only for the owner of `foo-bar`.
    existing = [Namespace("foo-bar", "foo-bar", "user", "alice")]
    with pytest.raises(Conflict, match="foo-bar"):
        check_new_namespace(existing, Namespace("foo", "foo", "user", "bob"))
    check_new_namespace(existing, Namespace("foo", "foo", "user", "alice"))


def test_a_child_namespace_may_be_given_to_another_owner() -> None:
    # The overlap the PEP detects is an existing namespace starting with the proposed one, not the reverse.
    check_new_namespace([CORP], Namespace("corp-ml", "corp-ml", "group", "ml"))
    # A name that merely starts with the same letters does not overlap.
    check_new_namespace([CORP], Namespace("corpus", "corpus", "user", "bob"))


def test_parents_and_direct_children() -> None:
    deep = Namespace("corp-ml-vision", "corp-ml-vision", "group", "ml")
    every = [*ALL, deep]
    assert parent_of(every, "corp-ml") == "corp"
    assert parent_of(every, "corp-ml-vision") == "corp-ml"
    assert parent_of(every, "corp") is None
    assert children_of(every, "corp") == ["corp-ml"]
    assert children_of(every, "corp-ml") == ["corp-ml-vision"]
    assert children_of(every, "acme") == []
    # Without corp-ml, corp-ml-vision is corp's direct child.
    assert children_of([CORP, deep], "corp") == ["corp-ml-vision"]


@pytest.mark.parametrize(("text", "owner"), [("user:alice", ("user", "alice")), (" group:ml ", ("group", "ml"))])
def test_owners_are_written_as_principals(text: str, owner: tuple[str, str]) -> None:
    assert parse_owner(text) == owner


@pytest.mark.parametrize("bad", ["alice", "user:", "team:x", "group:everyone", "group:authenticated", "user:a b"])
def test_bad_owners_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="owner"):
        parse_owner(bad)
