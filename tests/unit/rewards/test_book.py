"""The pair book (fpai_node/rewards/book.py): pairs grouped by the epoch of their receipt,
regrouped when the epoch length changes, old epochs forgotten whole."""

from fpai_node.rewards.book import PairBook
from fpai_node.testing.pairs import NOW, make_pair


def test_pairs_are_grouped_by_their_receipts_epoch_and_regrouped() -> None:
    book = PairBook(60_000)
    first, second, later = (
        make_pair(1, at_ms=NOW),
        make_pair(2, at_ms=NOW + 1),
        make_pair(3, at_ms=NOW + 60_000),
    )
    for pair in (first, second, later, first):  # a pair added twice is kept once
        book.add(pair)
    epoch = NOW // 60_000
    assert book.epochs() == [epoch, epoch + 1] and len(book) == 3
    assert set(book.of(epoch)) == {first, second} and list(book.of(epoch + 1)) == [later]
    book.regroup(3_600_000)
    assert book.epochs() == [NOW // 3_600_000] and len(book) == 3
    book.regroup(60_000)
    book.forget_before(epoch + 1)
    assert book.epochs() == [epoch + 1] and list(book.of(epoch)) == []
