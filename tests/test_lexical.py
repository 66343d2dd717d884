"""The shared BM25 layer as an application embedding it sees it."""

import logging

from mcphive.lexical import LexicalIndex


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_building_an_index_logs_nothing_below_the_applications_level() -> None:
    # The CLI's set-up: a root handler with no level of its own, the root logger at WARNING. bm25s sets
    # its logger to DEBUG at import, which let "Building index from tokens" through on every run.
    root, handler = logging.getLogger(), _Collect()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    try:
        index = LexicalIndex(["rotate the leaked key", "fix the flaky test", "document the API"])
        assert index.rank("flaky test", limit=1) == [1]
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    assert [r.getMessage() for r in handler.records if r.levelno < logging.WARNING] == []
