"""Active learning: acquisition functions, a small CNN classifier and the crowd simulation.

Importing this package (or :mod:`ml.al.acquisition`, :mod:`ml.al.crowd`, :mod:`ml.al.metrics`)
never imports torch; only :mod:`ml.al.model`, :mod:`ml.al.augment` and :mod:`ml.al.simulate`
do, so a web process that reads stored priorities never pays for it.
"""
