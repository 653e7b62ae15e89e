import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from games.engine.common import InvalidMove
from games.engine.contour_race import (
    ContourSubmitted,
    Disconnect,
    GhostReplay,
    Join,
    Leave,
    Matches,
    NextRound,
    PhaseChanged,
    PlayerJoined,
    PlayerLeft,
    Presence,
    ProgressChanged,
    ReadyChanged,
    ReadyToStart,
    Reconnect,
    ReportProgress,
    RoomClosed,
    RoomConfig,
    RoomState,
    RoundEnded,
    RoundSpec,
    Scored,
    Scores,
    SetReady,
    StartRound,
    SubmissionRejected,
    Submit,
    Tick,
    WaitingPlayer,
    apply,
    broadcast_events,
    match_players,
    new_room,
    next_wakeup,
    race_score,
    skill_tolerance,
    view_for,
)

SPEC = RoundSpec("img-1", 200, 100, "liver", "ref-1")
SQUARE = ((10.0, 10.0), (60.0, 10.0), (60.0, 60.0), (10.0, 60.0))
SMALL = ((20.0, 20.0), (50.0, 20.0), (50.0, 50.0), (20.0, 50.0))
CFG = RoomConfig(countdown_ms=3_000, draw_ms=60_000, ghost_wait_ms=10_000)


def run(state, *moves):
    events = []
    for move in moves:
        state, more = apply(state, move)
        events += more
    return state, events


def lobby_ab():
    state = new_room("r1", CFG)
    return run(state, Join("a", 0, 0.5), Join("b", 100, 0.6))[0]


def drawing_ab():
    """a and b drawing since t=5000; deadline 65000."""
    state, _ = run(
        lobby_ab(), SetReady("a", 1000), SetReady("b", 1500), StartRound(2000, SPEC), Tick(5000)
    )
    assert state.phase == "drawing"
    return state


# ------------------------------------------------------------------------------------------ lobby
def test_lobby_asks_to_start_once_everyone_is_ready():
    state = lobby_ab()
    state, events = apply(state, SetReady("a", 1000))
    assert events == [ReadyChanged("a", True)]
    state, events = apply(state, SetReady("b", 1500))
    assert events == [ReadyChanged("b", True), ReadyToStart(players=2, ghosts_wanted=0)]
    state, events = apply(state, Tick(3000))
    assert events == []  # asked once


def test_unready_player_withdraws_the_request_and_blocks_the_start():
    state, _ = run(lobby_ab(), SetReady("a", 1000), SetReady("b", 1500))
    state, events = apply(state, SetReady("b", 1600, ready=False))
    assert events == [ReadyChanged("b", False)]
    assert state.start_requested is False
    with pytest.raises(InvalidMove, match="ready"):
        apply(state, StartRound(2000, SPEC))


def test_join_rules():
    state = new_room("r1", RoomConfig(max_players=2))
    state, events = run(state, Join("a", 0), Join("b", 0))
    assert events == [PlayerJoined("a", False), PlayerJoined("b", False)]
    with pytest.raises(InvalidMove, match="full"):
        apply(state, Join("c", 0))
    same, events = apply(state, Join("a", 10))  # already here: nothing to do
    assert events == []
    assert same.players == state.players


def test_nobody_can_join_a_round_in_progress():
    with pytest.raises(InvalidMove, match="in progress"):
        apply(drawing_ab(), Join("c", 6000))


def test_leaving_the_lobby_frees_the_seat_and_the_last_one_closes_the_room():
    state, events = run(lobby_ab(), Leave("a", 200))
    assert events == [PlayerLeft("a")]
    assert [p.player_id for p in state.players] == ["b"]
    state, events = apply(state, Leave("b", 300))
    assert events == [PlayerLeft("b"), PhaseChanged("closed", 300, None), RoomClosed()]
    with pytest.raises(InvalidMove, match="closed"):
        apply(state, Join("c", 400))


# -------------------------------------------------------------------------------- countdown/draw
def test_countdown_then_drawing_on_the_server_clock():
    state, _ = run(lobby_ab(), SetReady("a", 1000), SetReady("b", 1500))
    state, events = apply(state, StartRound(2000, SPEC))
    assert events == [PhaseChanged("countdown", 2000, 5000)]
    assert next_wakeup(state) == 5000
    state, events = apply(state, Tick(4999))
    assert events == [] and state.phase == "countdown"
    state, events = apply(state, Tick(5200))  # a late tick: drawing began at 5000 all the same
    assert events == [PhaseChanged("drawing", 5000, 65000)]
    assert state.drawing_started_at == 5000
    assert next_wakeup(state) == 65000


def test_image_is_revealed_only_when_drawing_starts():
    state, _ = run(lobby_ab(), SetReady("a", 1000), SetReady("b", 1500), StartRound(2000, SPEC))
    assert view_for(state, "a")["round"] == {"structure": "liver", "round_no": 1}
    state, _ = apply(state, Tick(5000))
    assert view_for(state, "a")["round"] == {
        "structure": "liver",
        "round_no": 1,
        "image_id": "img-1",
        "width": 200,
        "height": 100,
        "reference_image_id": "ref-1",
    }


def test_submit_during_countdown_is_rejected():
    state, _ = run(lobby_ab(), SetReady("a", 1000), SetReady("b", 1500), StartRound(2000, SPEC))
    _, events = apply(state, Submit("a", 3000, SQUARE, closed=True))
    assert events == [SubmissionRejected("a", "not_drawing", "The room is in countdown.")]


def test_progress_is_visible_to_others_but_contours_are_not():
    state = drawing_ab()
    state, events = apply(state, ReportProgress("a", 6000))
    assert events == [ProgressChanged("a", "drawing")]
    state, events = apply(state, Submit("a", 25000, SQUARE, closed=True))
    assert events == [
        ContourSubmitted("a", 1, "img-1", 1000, 20000, SQUARE, ()),
        ProgressChanged("a", "submitted"),
    ]
    seen_by_b = {p["player_id"]: p for p in view_for(state, "b")["players"]}
    assert seen_by_b["a"]["progress"] == "submitted"
    assert "contour" not in seen_by_b["a"]
    assert "elapsed_ms" not in seen_by_b["a"]
    assert "10.0" not in json.dumps(view_for(state, "b"))
    own = {p["player_id"]: p for p in view_for(state, "a")["players"]}["a"]
    assert own["contour"] == [list(p) for p in SQUARE]


def test_broadcast_hides_contours_and_service_events():
    state = drawing_ab()
    _, events = apply(state, Submit("a", 25000, SQUARE, closed=True))
    assert broadcast_events(events) == [
        {"kind": "progress", "player_id": "a", "progress": "submitted"}
    ]


def test_invalid_contour_is_rejected_with_a_reason_and_can_be_fixed():
    state = drawing_ab()
    open_stroke = ((10.0, 10.0), (60.0, 10.0), (60.0, 60.0), (10.0, 90.0))
    state, events = apply(state, Submit("a", 20000, open_stroke))
    assert [(e.kind, e.code) for e in events] == [("submission_rejected", "open_contour")]
    assert state.player("a").progress == "waiting"
    state, events = apply(state, Submit("a", 21000, SQUARE, closed=True))
    assert events[-1] == ProgressChanged("a", "submitted")


def test_second_submission_is_refused():
    state = drawing_ab()
    state, _ = apply(state, Submit("a", 20000, SQUARE, closed=True))
    _, events = apply(state, Submit("a", 21000, SMALL, closed=True))
    assert events == [SubmissionRejected("a", "already_submitted", "You already submitted.")]


def test_round_ends_when_everyone_connected_submitted():
    state = drawing_ab()
    state, _ = apply(state, Submit("a", 20000, SQUARE, closed=True))
    state, events = apply(state, Submit("b", 30000, SMALL, closed=True))
    assert events[-2:] == [
        PhaseChanged("results", 30000, None),
        RoundEnded(1, "img-1", (("a", False, 15000), ("b", False, 25000))),
    ]
    assert state.phase == "results"


def test_disconnected_player_does_not_stall_the_room():
    state = drawing_ab()
    state, _ = apply(state, Submit("a", 20000, SQUARE, closed=True))
    state, events = apply(state, Disconnect("b", 22000))
    assert events == [
        Presence("b", False),
        ProgressChanged("b", "timed_out"),
        PhaseChanged("results", 22000, None),
        RoundEnded(1, "img-1", (("a", False, 15000),)),
    ]


def test_player_who_leaves_mid_round_keeps_their_submission():
    state = drawing_ab()
    state, _ = apply(state, Submit("b", 10000, SMALL, closed=True))
    state, events = apply(state, Leave("b", 11000))
    assert events == [PlayerLeft("b")]
    state, events = apply(state, Submit("a", 20000, SQUARE, closed=True))
    assert events[-1] == RoundEnded(1, "img-1", (("a", False, 15000), ("b", False, 5000)))


def test_when_everyone_drops_the_round_waits_for_the_deadline():
    state = drawing_ab()
    state, _ = run(state, Disconnect("a", 6000), Disconnect("b", 7000))
    assert state.phase == "drawing"
    state, events = apply(state, Tick(64_999))
    assert events == []
    state, events = apply(state, Tick(65_000))
    assert events == [
        ProgressChanged("a", "timed_out"),
        ProgressChanged("b", "timed_out"),
        PhaseChanged("results", 65_000, None),
        RoundEnded(1, "img-1", ()),
    ]


def test_reconnect_resumes_the_round():
    state = drawing_ab()
    state, _ = run(state, Submit("a", 8000, SQUARE, closed=True), Disconnect("a", 9000))
    state, events = apply(state, Reconnect("a", 12000))
    assert events == [Presence("a", True)]
    view = view_for(state, "a", now=12000)
    assert view["phase"] == "drawing"
    assert view["deadline_at"] == 65000
    assert view["server_time"] == 12000
    me = [p for p in view["players"] if p["you"]][0]
    assert me["progress"] == "submitted"
    assert me["contour"] == [list(p) for p in SQUARE]
    # Join with the same id is a reconnect too
    state, _ = apply(state, Disconnect("a", 13000))
    state, events = apply(state, Join("a", 14000))
    assert events == [Presence("a", True)]


def test_deadline_times_out_and_late_submission_is_refused():
    state = drawing_ab()
    state, _ = apply(state, ReportProgress("a", 6000))
    state, events = apply(state, Submit("a", 70000, SQUARE, closed=True))
    assert events == [
        ProgressChanged("a", "timed_out"),
        ProgressChanged("b", "timed_out"),
        PhaseChanged("results", 65000, None),
        RoundEnded(1, "img-1", ()),
        SubmissionRejected("a", "round_over", "The room is in results."),
    ]


def test_clock_never_runs_backwards():
    state = drawing_ab()
    state, _ = apply(state, Tick(9000))
    state, events = apply(state, Submit("a", 8000, SQUARE, closed=True))
    assert events[0].elapsed_ms == 4000  # treated as happening at 9000
    assert events[0].started_ms == 4000  # no progress report: started when submitted


# ------------------------------------------------------------------------------------------ ghosts
GHOSTS = (
    GhostReplay(
        "ghost-1", "ann-11", SMALL, start_offset_ms=2000, submit_offset_ms=10000, skill=0.5
    ),
    GhostReplay("ghost-2", "ann-12", SQUARE, start_offset_ms=1000, submit_offset_ms=30000),
    GhostReplay("ghost-3", "ann-13", SQUARE, start_offset_ms=5000, submit_offset_ms=90000),
)


def lone_drawing():
    state, _ = run(new_room("r2", CFG), Join("a", 0), SetReady("a", 1000))
    return state


def test_lone_player_is_offered_ghosts_after_waiting():
    state = lone_drawing()
    assert next_wakeup(state) == 11000
    state, events = apply(state, Tick(10999))
    assert events == []
    state, events = apply(state, Tick(11000))
    assert events == [ReadyToStart(players=1, ghosts_wanted=3)]
    state, events = apply(state, StartRound(11500, SPEC, GHOSTS))
    assert events == [
        PlayerJoined("ghost-1", True),
        PlayerJoined("ghost-2", True),
        PlayerJoined("ghost-3", True),
        PhaseChanged("countdown", 11500, 14500),
    ]


def test_ghosts_draw_and_submit_at_their_recorded_offsets():
    state, _ = run(lone_drawing(), Tick(11000), StartRound(11500, SPEC, GHOSTS), Tick(14500))
    t0 = state.drawing_started_at
    assert t0 == 14500
    assert next_wakeup(state) == t0 + 1000
    state, events = apply(state, Tick(t0 + 2500))
    assert events == [ProgressChanged("ghost-2", "drawing"), ProgressChanged("ghost-1", "drawing")]
    assert next_wakeup(state) == t0 + 5000
    state, events = apply(state, Tick(t0 + 10000))
    assert events == [
        ProgressChanged("ghost-3", "drawing"),
        ProgressChanged("ghost-1", "submitted"),
    ]
    assert state.player("ghost-1").elapsed_ms == 10000
    # ghosts never reveal their source to players
    assert "ann-1" not in json.dumps(view_for(state, "a"))
    # the player finishes: ghost-2 completes at its recorded time, ghost-3 (past the deadline) times out
    state, events = apply(state, Submit("a", t0 + 20000, SQUARE, closed=True))
    assert events[2:] == [
        ProgressChanged("ghost-2", "submitted"),
        ProgressChanged("ghost-3", "timed_out"),
        PhaseChanged("results", t0 + 20000, None),
        RoundEnded(
            1, "img-1", (("a", False, 20000), ("ghost-1", True, 10000), ("ghost-2", True, 30000))
        ),
    ]


def test_ghost_ids_are_not_players():
    state, _ = run(lone_drawing(), Tick(11000), StartRound(11500, SPEC, GHOSTS), Tick(14500))
    with pytest.raises(InvalidMove):
        apply(state, Submit("ghost-1", 15000, SQUARE, closed=True))
    with pytest.raises(InvalidMove):
        view_for(state, "ghost-1")


def test_start_needs_enough_players_or_ghosts():
    state, _ = run(lone_drawing(), Tick(11000))
    with pytest.raises(InvalidMove, match="enough"):
        apply(state, StartRound(11500, SPEC))


def test_ghosts_are_capped_by_room_size():
    state, _ = run(
        new_room("r3", RoomConfig(max_players=2)), Join("a", 0), SetReady("a", 0), Tick(10000)
    )
    state, events = apply(state, StartRound(10000, SPEC, GHOSTS))
    assert [p.player_id for p in state.players] == ["a", "ghost-1"]


# ----------------------------------------------------------------------------- results and scores
def scored_round():
    state = drawing_ab()
    state, _ = run(
        state,
        Submit("a", 35000, SQUARE, closed=True),  # 30 s: half the time left
        Disconnect("b", 36000),
    )
    return apply(state, Scores(40000, (("a", 0.8),), "consensus"))


def test_scores_rank_players_and_reveal_contours():
    state, events = scored_round()
    assert events == [Scored((("a", 840), ("b", 0)))]
    view = view_for(state, "b")
    players = {p["player_id"]: p for p in view["players"]}
    assert players["a"]["contour"] == [list(p) for p in SQUARE]
    assert players["a"]["score"] == 840
    assert players["a"]["dice"] == 0.8
    assert players["b"]["score"] == 0
    assert view["ranking"] == [["a", 840], ["b", 0]]
    assert view["reference"] == "consensus"


def test_scores_are_checked():
    state = drawing_ab()
    with pytest.raises(InvalidMove, match="results"):
        apply(state, Scores(6000, (("a", 0.5),), "gold"))
    state, _ = apply(state, Tick(70000))
    with pytest.raises(InvalidMove, match="unknown"):
        apply(state, Scores(70000, (("zed", 0.5),), "gold"))
    with pytest.raises(InvalidMove, match="reference"):
        apply(state, Scores(70000, (("a", 0.5),), "vibes"))


def test_next_round_returns_to_the_lobby_without_ghosts():
    state, _ = run(lone_drawing(), Tick(11000), StartRound(11500, SPEC, GHOSTS), Tick(14500))
    state, _ = apply(state, Submit("a", 20000, SQUARE, closed=True))
    state, events = apply(state, NextRound(30000))
    assert events == [PhaseChanged("lobby", 30000, None)]
    assert [(p.player_id, p.ready, p.progress, p.contour) for p in state.players] == [
        ("a", False, "waiting", None)
    ]
    assert state.ghosts == ()
    assert state.round_no == 1


def test_state_round_trips_through_json_at_every_step():
    state = new_room("r9", CFG)
    moves = [
        Join("a", 0, 0.4),
        Join("b", 10),
        SetReady("a", 20),
        SetReady("b", 30),
        StartRound(40, SPEC, GHOSTS[:1]),
        Tick(3040),
        ReportProgress("a", 4000),
        Submit("a", 5000, SQUARE, closed=True),
        Disconnect("b", 6000),
        Scores(7000, (("a", 0.9), ("ghost-1", 0.7)), "gold"),
        NextRound(8000),
    ]
    for move in moves:
        state, _ = apply(state, move)
        assert RoomState.from_dict(json.loads(json.dumps(state.to_dict()))) == state


# ----------------------------------------------------------------------------------------- scoring
def test_race_score_values():
    assert race_score(1.0, 60000, 60000) == 1000
    assert race_score(1.0, 0, 60000) == 1100
    assert race_score(0.8, 30000, 60000) == 840
    assert race_score(0.0, 0, 60000) == 0
    assert race_score(0.5, 90000, 60000) == 500  # late counts as no bonus, never a malus
    with pytest.raises(ValueError):
        race_score(1.2, 0, 60000)


@settings(max_examples=300, deadline=None)
@given(
    slow_dice=st.floats(0, 1),
    fast_dice=st.floats(0, 1),
    slow_ms=st.integers(0, 120_000),
    fast_ms=st.integers(0, 120_000),
)
def test_speed_never_outweighs_accuracy(slow_dice, fast_dice, slow_ms, fast_ms):
    # the bonus is at most 10 % of what accuracy earned...
    assert race_score(fast_dice, fast_ms, 60000) - race_score(fast_dice, 60000, 60000) <= 100
    # ...so Dice at least 1.1 times higher always wins or ties, whatever the times
    if slow_dice >= 1.1 * fast_dice + 1e-9:
        assert race_score(slow_dice, slow_ms, 60000) >= race_score(fast_dice, fast_ms, 60000)


# ------------------------------------------------------------------------------------- matchmaking
def test_matchmaking_groups_similar_players():
    waiting = [
        WaitingPlayer("p1", 0.10, 0),
        WaitingPlayer("p2", 0.15, 0),
        WaitingPlayer("p3", 0.90, 0),
        WaitingPlayer("p4", 0.85, 0),
        WaitingPlayer("p5", 0.50, 0),
    ]
    assert match_players(waiting, now=0) == Matches(
        rooms=(("p1", "p2"), ("p4", "p3")), waiting=("p5",)
    )


def test_waiting_widens_the_tolerance():
    waiting = [WaitingPlayer("p1", 0.1, 0), WaitingPlayer("p5", 0.5, 0)]
    assert match_players(waiting, now=0).rooms == ()
    assert skill_tolerance(40_000) == pytest.approx(0.5)
    assert match_players(waiting, now=40_000).rooms == (("p1", "p5"),)


def test_large_groups_split_into_balanced_rooms():
    waiting = [WaitingPlayer(f"p{i:02}", 0.5, 0) for i in range(9)]
    rooms = match_players(waiting, now=0).rooms
    assert [len(r) for r in rooms] == [5, 4]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 1), st.integers(0, 120_000)), min_size=0, max_size=40),
    st.integers(1, 4),
    st.integers(4, 8),
)
def test_matchmaking_properties(raw, min_size, max_size):
    waiting = [WaitingPlayer(f"p{i}", s, 120_000 - w) for i, (s, w) in enumerate(raw)]
    result = match_players(waiting, now=120_000, min_size=min_size, max_size=max_size)
    placed = [pid for room in result.rooms for pid in room]
    assert sorted(placed + list(result.waiting)) == sorted(w.player_id for w in waiting)
    by_id = {w.player_id: w for w in waiting}
    for room in result.rooms:
        assert min_size <= len(room) <= max_size
        skills = [by_id[p].skill for p in room]
        widest = max(skill_tolerance(120_000 - by_id[p].waiting_since) for p in room)
        assert max(skills) - min(skills) <= widest + 1e-12


def test_every_move_bumps_the_sequence_that_orders_views():
    state = new_room("r", CFG)
    state, _ = apply(state, Join("a", 0))
    later, _ = apply(state, SetReady("a", 10))

    assert (state.seq, later.seq) == (1, 2)
    assert view_for(later, "a")["seq"] == view_for(later, None)["seq"] == 2
    assert RoomState.from_dict(later.to_dict()) == later
