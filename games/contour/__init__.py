"""Contour race: lobby, rooms, scoring and ghosts around the pure engine
(:mod:`games.engine.contour_race`, validation in :mod:`games.engine.contours`)."""
