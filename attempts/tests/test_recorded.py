"""A live page's position: the newest row it saw and the keys below it still in flight, settled
only once PostgreSQL's snapshot says every transaction that could hold them has ended."""

import pytest

from attempts.recorded import MAX_IN_FLIGHT, RECORDED_SINCE_WINDOW, Since, advance


class TestSince:
    def test_its_token_reads_back(self):
        since = Since(40, ((3, 5), (9, 9), (12, 30)), 7_000_000_123, 20)
        assert since.token() == "7000000123.20.3-5,9,12-30"
        assert Since.parse(40, since.token()) == since

    def test_no_keys_in_flight_is_an_empty_token(self):
        assert Since(40).token() == ""
        assert Since.parse(40, "") == Since(40)

    @pytest.mark.parametrize(
        "token",
        ["x", "1.2", "1.2.", "1.2.5-3", "1.2.3-5,4", "1.2.3-50", "-1.2.3", "1.2.3-", "1.2.a"],
    )
    def test_it_rejects_a_malformed_token(self, token):
        with pytest.raises(ValueError, match="in_flight"):
            Since.parse(40, token)


class TestAdvance:
    def test_it_takes_the_window_and_keeps_its_gaps_in_flight(self):
        taken, after = advance(Since(10), [11, 12, 15, 16], [], xmin=100, xmax=105)
        assert taken == [11, 12, 15, 16]
        assert after.newest == 16 and after.in_flight == ((13, 14),)
        # Found by this look: its horizon comes with the next one.
        assert after.aged_up_to < 13

    def test_a_gap_is_kept_while_transactions_older_than_its_horizon_run(self):
        _, found = advance(Since(10), [11, 15], [], xmin=100, xmax=105)
        _, aged = advance(found, [], [], xmin=101, xmax=110)
        assert aged.in_flight == ((12, 14),) and aged.horizon == 110
        _, waiting = advance(aged, [16], [], xmin=109, xmax=120)
        assert waiting.in_flight == ((12, 14),) and waiting.horizon == 110
        _, settled = advance(waiting, [], [], xmin=110, xmax=121)
        assert settled == Since(16)

    def test_keys_arriving_in_flight_are_taken_once(self):
        since = Since(20, ((12, 14), (17, 17)), 110, 20)
        taken, after = advance(since, [21], [13, 17], xmin=105, xmax=115)
        assert taken == [13, 17, 21]
        assert after.in_flight == ((12, 12), (14, 14))

    def test_younger_gaps_wait_for_the_older_ones(self):
        since = Since(20, ((12, 12), (19, 19)), 110, 15)
        _, after = advance(since, [], [], xmin=105, xmax=130)
        assert after.horizon == 110 and after.aged_up_to == 15

    def test_a_full_batch_of_arrivals_settles_nothing(self):
        since = Since(5000, ((1, 4000),), 110, 5000)
        arrived = list(range(1, RECORDED_SINCE_WINDOW + 1))
        taken, after = advance(since, [], arrived, xmin=200, xmax=210)
        assert taken == arrived
        assert after.in_flight == ((RECORDED_SINCE_WINDOW + 1, 4000),)

    def test_past_the_most_ranges_the_rest_of_the_window_waits(self):
        window = list(range(2, 2 * MAX_IN_FLIGHT + 10, 2))
        taken, after = advance(Since(0), window, [], xmin=1, xmax=2)
        assert len(after.in_flight) == MAX_IN_FLIGHT
        assert taken == window[:MAX_IN_FLIGHT] and after.newest == taken[-1]
