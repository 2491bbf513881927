"""Allowlist entries: exact methods, services, globs, deny wins, helpful errors."""

from __future__ import annotations

import pytest

from toolgen import Allowlist, AllowlistError

METHODS = [
    "examples.ledger.v1.LedgerService/ListTransactions",
    "examples.ledger.v1.LedgerService/GetVendor",
    "examples.ledger.v1.LedgerService/UpdateVendor",
    "examples.calculator.v1.CalculatorService/Evaluate",
]


def selected(allowlist: Allowlist) -> list[str]:
    return [m for m in METHODS if allowlist.allows(m)]


def test_exact_method_and_leading_slash() -> None:
    assert selected(Allowlist(["/examples.ledger.v1.LedgerService/GetVendor"])) == [METHODS[1]]


def test_service_wildcard_and_bare_service_mean_the_same() -> None:
    star = Allowlist(["examples.ledger.v1.LedgerService/*"])
    bare = Allowlist(["examples.ledger.v1.LedgerService"])
    assert selected(star) == selected(bare) == METHODS[:3]


def test_glob_over_full_path() -> None:
    assert selected(Allowlist(["*/Get*", "examples.calculator.*"])) == [METHODS[1], METHODS[3]]


def test_matching_is_case_sensitive() -> None:
    assert selected(Allowlist(["*/getvendor"])) == []


def test_deny_wins() -> None:
    allowlist = Allowlist(["examples.ledger.v1.LedgerService/*"], deny=["*/UpdateVendor"])
    assert selected(allowlist) == METHODS[:2]
    assert allowlist.denied_by(METHODS[2]) == "*/UpdateVendor"


def test_entry_matching_nothing_names_closest_methods() -> None:
    allowlist = Allowlist(["examples.ledger.v1.LedgerService/GetVendr", "*/Evaluate"])
    with pytest.raises(AllowlistError) as caught:
        allowlist.check(METHODS)
    ((entry, close),) = caught.value.unmatched
    assert entry == "examples.ledger.v1.LedgerService/GetVendr"
    assert close[0] == "examples.ledger.v1.LedgerService/GetVendor"
    assert "GetVendor" in str(caught.value)


def test_misspelt_service_suggests_its_methods() -> None:
    with pytest.raises(AllowlistError) as caught:
        Allowlist(["examples.ledger.v1.LedgerServce/*"]).check(METHODS)
    assert caught.value.unmatched[0][1][0].startswith("examples.ledger.v1.LedgerService/")


def test_service_prefilter_is_conservative() -> None:
    allowlist = Allowlist(["examples.ledger.v1.LedgerService/Get*"])
    assert allowlist.may_select_service("examples.ledger.v1.LedgerService")
    assert not allowlist.may_select_service("examples.calculator.v1.CalculatorService")
    # Without a "/", a glob may match any service.
    assert Allowlist(["*Vendor*"]).may_select_service("anything.Else")


def test_empty_entry_is_rejected() -> None:
    with pytest.raises(AllowlistError):
        Allowlist([" "])
