"""The invariants `switchyard verify` checks, as pure functions: the revision spine, and
the history folded into the rows it says the tables hold."""

from __future__ import annotations

from datetime import UTC, datetime

from switchyard.domain.integrity import (
    HistoryFold,
    Spine,
    chain_violations,
    recorded_rows,
    spine_violations,
)
from switchyard.domain.models import ChangeKind, HistoryAction, HistoryEntry, JSONValue

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _spine(**fields: object) -> Spine:
    values: dict[str, object] = {
        "current": 5,
        "oldest": 1,
        "newest": 5,
        "kept_from": 0,
        "revisions": 5,
        "rows": 7,
    }
    values.update(fields)
    return Spine(**values)  # type: ignore[arg-type]


def _entry(
    revision: int,
    kind: ChangeKind,
    *,
    index: int = 0,
    key: str = "k",
    record_id: str = "r",
    table: str = "pf_system_config",
    new: JSONValue = None,
    rows_after: dict[str, JSONValue] | None = None,
) -> HistoryEntry:
    return HistoryEntry(
        id=f"{revision}.{index}", revision=revision, change_index=index, kind=kind,
        table_name=table, record_id=record_id, key=key, environment=None,
        action=HistoryAction.UPDATE, old_value=None, new_value=new, value_diff=[],
        reason=None, ticket=None, changed_by="u", changed_by_role="site_admin",
        client_address=None, changed_at=NOW, rows_after=rows_after,
    )  # fmt: skip


def test_a_whole_spine_holds() -> None:
    assert spine_violations(_spine()) == []
    assert spine_violations(_spine(current=0, oldest=0, newest=0, revisions=0, rows=0)) == []


def test_each_break_of_the_spine_is_named_with_its_revision() -> None:
    found = spine_violations(
        _spine(current=9, newest=8, gaps=((2, 4), (5, 8)), uneven=((6, 2, 0, 2),))
    )
    lines = [v.line() for v in found]
    assert lines == [
        "spine: pf_revision revision 9: the current revision is 9, the newest the history "
        "holds is 8",
        "spine: pf_config_history revision 3: revision 3 has no history rows",
        "spine: pf_config_history revision 6: revisions 6 to 7 have no history rows",
        "spine: pf_config_history revision 6: its 2 rows are numbered 0 to 2, not 0 to 1",
    ]


def test_a_history_pruned_only_below_a_recorded_retention_holds() -> None:
    assert spine_violations(_spine(oldest=4, kept_from=4)) == []
    (missing,) = spine_violations(_spine(oldest=4, kept_from=2))
    assert missing.revision == 2 and "revisions 2 to 3 have no history rows" in missing.message
    (unrecorded,) = spine_violations(_spine(oldest=3))
    assert "no retention allows their removal" in unrecorded.message


def test_the_fold_keeps_the_last_row_each_change_left() -> None:
    fold = HistoryFold()
    fold.add(_entry(1, ChangeKind.CONFIG, rows_after={"pf_system_config": {"key": "k", "v": 1}}))
    fold.add(
        _entry(
            2,
            ChangeKind.CONFIG,
            table="pf_environment_config",
            record_id="o1",
            rows_after={
                "pf_system_config": {"key": "k", "v": 2},
                "pf_environment_config": {"id": "o1", "key": "k", "value": "x"},
            },
        )
    )
    fold.add(
        _entry(
            3,
            ChangeKind.CONFIG,
            table="pf_environment_config",
            record_id="o1",
            rows_after={"pf_system_config": {"key": "k", "v": 3}, "pf_environment_config": None},
        )
    )
    fold.add(_entry(4, ChangeKind.FLAG, table="pf_feature_flags", key="f", new={"key": "f"}))
    fold.add(_entry(5, ChangeKind.FLAG, table="pf_feature_flags", key="f", new=None))

    assert {k: (r.document, r.revision) for k, r in fold.rows.items()} == {
        ("pf_system_config", "k"): ({"key": "k", "v": 3}, 3),
        ("pf_environment_config", "o1"): (None, 3),
        ("pf_feature_flags", "f"): (None, 5),
    }
    assert fold.unrecorded_tables == set()


def test_a_row_recorded_without_rows_after_marks_its_tables_unrecorded() -> None:
    entry = _entry(1, ChangeKind.CONFIG)
    assert recorded_rows(entry) is None
    fold = HistoryFold()
    fold.add(entry)
    assert fold.unrecorded_tables == {"pf_system_config", "pf_environment_config"}


def _fold(*documents: tuple[str, dict[str, JSONValue] | None]) -> HistoryFold:
    fold = HistoryFold()
    for revision, (table, document) in enumerate(documents, start=1):
        key = str(document["key"]) if document else "gone"
        fold.add(_entry(revision, ChangeKind.FLAG, table=table, key=key, new=document))
    return fold


def test_the_chain_compares_recorded_rows_with_the_tables() -> None:
    fold = _fold(
        ("pf_feature_flags", {"key": "same", "on": True, "evaluation_count": 1}),
        ("pf_feature_flags", {"key": "changed", "on": True}),
        ("pf_feature_flags", {"key": "lost", "on": True}),
        ("pf_feature_flags", None),
    )
    current: dict[tuple[str, str], dict[str, JSONValue]] = {
        ("pf_feature_flags", "same"): {"key": "same", "on": True, "evaluation_count": 9},
        ("pf_feature_flags", "changed"): {"key": "changed", "on": False},
        ("pf_feature_flags", "gone"): {"key": "gone"},
        ("pf_feature_flags", "stray"): {"key": "stray"},
        ("pf_environments", "production"): {"name": "production"},
    }

    found = chain_violations(fold, current, complete=True)

    assert [(v.row, v.revision, v.message.split(" (")[0]) for v in found] == [
        ("changed", 2, "on differ from what the history recorded last"),
        ("gone", 4, "the history says this row was removed, but the table holds it"),
        ("lost", 3, "the history says this row exists, but the table does not hold it"),
        ("stray", None, "no history row records this row"),
    ]
    # A pruned history cannot name every row: only the unrecorded ones are let be.
    assert [v.row for v in chain_violations(fold, current, complete=False)] == [
        "changed",
        "gone",
        "lost",
    ]
