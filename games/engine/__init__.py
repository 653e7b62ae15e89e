"""Pure game engines: no Django, no database, no clock, randomness passed in.

- :mod:`games.engine.match3`: the match-three classification game (state machine).
- :mod:`games.engine.progression`: skill estimate, adaptive gold rate, level unlocks, leagues,
  badges and delayed points for match-three.
- :mod:`games.engine.contour_race`: the contour-race room state machine, its scoring rule and
  skill-based matchmaking.
- :mod:`games.engine.contours`: server-side contour validation/repair and Dice between masks.

Each engine exposes ``apply(state, move, ...) -> (state, events)`` on frozen dataclasses that
round-trip through JSON (``to_dict`` / ``from_dict``); services persist the state and turn events
into annotations and broadcasts.
"""
